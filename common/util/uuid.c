/* uuid.c - UUIDv7 (RFC 9562 section 5.7): 48-bit big-endian unix milliseconds, version 7, 74
 * random bits from arc4random_buf, variant 10. */
#include "util/uuid.h"

#include <stdlib.h> /* arc4random_buf: glibc 2.36 or the libbsd overlay */

void uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t ts = (uint64_t)unix_ms & 0xffffffffffffull;
    arc4random_buf(b + 6, 10);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ts >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
}
