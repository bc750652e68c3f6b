/* uuid.h - UUIDv7 (RFC 9562): 48-bit unix ms timestamp, version, random bits from arc4random_buf.
 */
#ifndef HL_UUID_H
#define HL_UUID_H
#include <stdint.h>
#define UUID_STR_LEN 37 /* 36 chars and NUL */
/* uuid_v7 writes the canonical lowercase text form into out. */
void uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN]);
#endif
