/* sched_id.c - invocation ids in 16 bytes: every id the router makes is "inv_" + 32 lowercase hex
 * (payload_invocation_id), kept as the bytes it spells; any other id (none is made today, but
 * RETRY and REDELIVER frames carry whatever they were given) is kept as a malloc'd copy. */
#include "sched_id.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_ID_PREFIX "inv_"
#define SCHED_ID_PREFIX_LEN 4
#define SCHED_ID_TEXT_LEN (SCHED_ID_PREFIX_LEN + 2 * SCHED_ID_BIN)

_Static_assert(SCHED_ID_TEXT_LEN < INVOCATION_ID_LEN, "a packed id fits the text form");

/* sched_id_nibble is the value of one lowercase hex digit, or -1. */
static int sched_id_nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* sched_id_pack fills bin and returns 1 when inv is "inv_" + 32 lowercase hex, else 0. Only
 * lowercase packs, so that each id has one form and packed ids sort as their text does. */
static int sched_id_pack(const char *inv, size_t n, uint8_t bin[SCHED_ID_BIN])
{
    if (n != SCHED_ID_TEXT_LEN || memcmp(inv, SCHED_ID_PREFIX, SCHED_ID_PREFIX_LEN) != 0) return 0;
    const char *hex = inv + SCHED_ID_PREFIX_LEN;
    for (size_t i = 0; i < SCHED_ID_BIN; i++) {
        int hi = sched_id_nibble(hex[2 * i]), lo = sched_id_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        bin[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

int sched_id_set(sched_entry_t *e, const char *inv, size_t n)
{
    if (sched_id_pack(inv, n, e->id.bin)) {
        e->id_text = 0;
        return 0;
    }
    char *t = strndup(inv, n);
    if (!t) return -ENOMEM;
    e->id.text = t;
    e->id_text = 1;
    return 0;
}

int sched_id_key(sched_entry_t *k, const char *inv, size_t n, char buf[INVOCATION_ID_LEN])
{
    if (n >= INVOCATION_ID_LEN) return -EINVAL;
    if (sched_id_pack(inv, n, k->id.bin)) {
        k->id_text = 0;
        return 0;
    }
    memcpy(buf, inv, n);
    buf[n] = 0;
    k->id.text = buf;
    k->id_text = 1;
    return 0;
}

void sched_id_clear(sched_entry_t *e)
{
    if (e->id_text) free(e->id.text);
    e->id_text = 0;
}

const char *sched_id_str(const sched_entry_t *e, char buf[INVOCATION_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    if (e->id_text) return e->id.text;
    memcpy(buf, SCHED_ID_PREFIX, SCHED_ID_PREFIX_LEN);
    for (size_t i = 0; i < SCHED_ID_BIN; i++) {
        buf[SCHED_ID_PREFIX_LEN + 2 * i] = hex[e->id.bin[i] >> 4];
        buf[SCHED_ID_PREFIX_LEN + 2 * i + 1] = hex[e->id.bin[i] & 15];
    }
    buf[SCHED_ID_TEXT_LEN] = 0;
    return buf;
}

int sched_id_cmp(const sched_entry_t *a, const sched_entry_t *b)
{
    if (!a->id_text && !b->id_text) return memcmp(a->id.bin, b->id.bin, SCHED_ID_BIN);
    char ba[INVOCATION_ID_LEN], bb[INVOCATION_ID_LEN];
    return strcmp(sched_id_str(a, ba), sched_id_str(b, bb));
}

int sched_id_equal(const sched_entry_t *a, const sched_entry_t *b)
{
    if (a->id_text != b->id_text) return 0; /* each id has one form */
    if (!a->id_text) return memcmp(a->id.bin, b->id.bin, SCHED_ID_BIN) == 0;
    return strcmp(a->id.text, b->id.text) == 0;
}

uint64_t sched_id_hash(const sched_entry_t *e, uint64_t seed)
{
    uint64_t x;
    if (!e->id_text) {
        memcpy(&x, e->id.bin, sizeof x); /* already a slice of a SHA-256 */
    } else {
        x = 14695981039346656037ull; /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)e->id.text; *p; p++)
            x = (x ^ *p) * 1099511628211ull;
    }
    /* Mixed with the seed (splitmix64's finalizer): producers choose event ids, and so could
     * aim many ids at one run of slots if the table's positions were predictable. */
    x ^= seed;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
