/* crc32c.h - CRC-32C (Castagnoli), the checksum of journal records. */
#ifndef HL_CRC32C_H
#define HL_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* crc32c extends crc (start with 0) over n bytes. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);
#endif
