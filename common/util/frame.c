/* frame.c - length-prefixed msgpack frames: encoder helpers over an sbuffer, a streaming decoder
 * bounded by a maximum frame size, and typed readers for the maps inside. */
#include "util/frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void frame_begin(msgpack_sbuffer *sb, msgpack_packer *pk, size_t *mark)
{
    static const char zero[4] = {0, 0, 0, 0};
    *mark = sb->size;
    msgpack_sbuffer_write(sb, zero, sizeof zero);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

void frame_end(msgpack_sbuffer *sb, size_t mark)
{
    uint32_t n = (uint32_t)(sb->size - mark - 4);
    unsigned char *p = (unsigned char *)sb->data + mark;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

void frame_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void frame_pack_str(msgpack_packer *pk, const char *s)
{
    frame_pack_strn(pk, s ? s : "", s ? strlen(s) : 0);
}

void frame_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    frame_pack_str(pk, key);
    frame_pack_str(pk, val);
}

void frame_pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t n)
{
    frame_pack_str(pk, key);
    frame_pack_strn(pk, val, n);
}

void frame_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
    frame_pack_str(pk, key);
    msgpack_pack_uint64(pk, val);
}

void frame_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val)
{
    frame_pack_str(pk, key);
    msgpack_pack_int64(pk, val);
}

void frame_decoder_init(frame_decoder_t *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max ? max : FRAME_MAX_DEFAULT;
}

void frame_decoder_close(frame_decoder_t *d)
{
    free(d->buf);
    if (d->zone) msgpack_zone_free(d->zone);
    memset(d, 0, sizeof *d);
}

int frame_decoder_feed(frame_decoder_t *d, const char *data, size_t n)
{
    if (d->off > 0) { /* drop consumed frames; objects handed out earlier are now invalid */
        memmove(d->buf, d->buf + d->off, d->len - d->off);
        d->len -= d->off;
        d->off = 0;
    }
    if (n > SIZE_MAX - d->len) return -ENOMEM;
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->len + n)
            cap = cap > SIZE_MAX / 2 ? d->len + n : cap * 2;
        char *nb = realloc(d->buf, cap);
        if (!nb) return -ENOMEM;
        d->buf = nb;
        d->cap = cap;
    }
    if (n) memcpy(d->buf + d->len, data, n);
    d->len += n;
    return 0;
}

/* frame_scan_head decodes one msgpack header: *hdr bytes of it, *body bytes of payload after it,
 * *elems objects inside it (container elements). Returns 0, or -EBADMSG for 0xc1. The header's
 * size fields are read only when *hdr <= avail (else the caller needs more bytes first). */
static int frame_scan_head(const unsigned char *p, size_t avail, size_t *hdr, uint64_t *body,
                           uint64_t *elems)
{
    unsigned c = p[0];
    size_t w = 0; /* width of a big-endian size field after the type byte */
    int kind = 0; /* 0 fixed size, 1 body length, 2 array count, 3 map count, 4 ext length */
    *body = *elems = 0;
    *hdr = 1;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0;
    if (c <= 0x8f) {
        *elems = 2u * (c & 0x0fu);
        return 0;
    }
    if (c <= 0x9f) {
        *elems = c & 0x0fu;
        return 0;
    }
    if (c <= 0xbf) {
        *body = c & 0x1fu;
        return 0;
    }
    switch (c) {
    case 0xc1:
        return -EBADMSG;
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
        w = (size_t)1 << (c - 0xc4), kind = 1;
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: size, then a type byte */
        w = (size_t)1 << (c - 0xc7), kind = 4;
        break;
    case 0xca:
        *body = 4;
        return 0;
    case 0xcb:
        *body = 8;
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: /* uint 8..64 */
        *body = (uint64_t)1 << (c - 0xcc);
        return 0;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: /* int 8..64 */
        *body = (uint64_t)1 << (c - 0xd0);
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1..16, after a type byte */
        *body = 1 + ((uint64_t)1 << (c - 0xd4));
        return 0;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
        w = (size_t)1 << (c - 0xd9), kind = 1;
        break;
    case 0xdc:
    case 0xdd: /* array 16/32 */
        w = (size_t)2 << (c - 0xdc), kind = 2;
        break;
    default: /* 0xde, 0xdf: map 16/32 */
        w = (size_t)2 << (c - 0xde), kind = 3;
        break;
    }
    *hdr = 1 + w;
    if (*hdr > avail) return 0;
    uint64_t v = 0;
    for (size_t i = 1; i <= w; i++)
        v = v << 8 | p[i];
    if (kind == 1) *body = v;
    if (kind == 4) *body = v + 1;
    if (kind == 2) *elems = v;
    if (kind == 3) *elems = 2 * v;
    return 0;
}

int frame_scan(const char *buf, size_t n, size_t limit, size_t *used)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t pending = 1; /* objects still to walk, each at least one byte */
    size_t pos = 0;
    *used = 0;
    while (pending > 0) {
        size_t hdr;
        uint64_t body, elems;
        if (pos >= n) return 0;
        if (frame_scan_head(p + pos, n - pos, &hdr, &body, &elems) < 0) return -EBADMSG;
        if (hdr > limit - pos || (uint64_t)(limit - pos - hdr) < body) return -EMSGSIZE;
        if (hdr > n - pos || (uint64_t)(n - pos - hdr) < body) return 0;
        pos += hdr + (size_t)body;
        pending = pending - 1 + elems;
        if (pending > limit - pos) return -EMSGSIZE;
    }
    *used = pos;
    return 1;
}

int frame_decoder_next(frame_decoder_t *d, msgpack_object *out, char *err, size_t errlen)
{
    size_t avail = d->len - d->off;
    if (avail < 4) return 0;
    const unsigned char *p = (const unsigned char *)d->buf + d->off;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n > d->max) {
        snprintf(err, errlen, "frame of %" PRIu32 " bytes exceeds limit %zu", n, d->max);
        return -EMSGSIZE;
    }
    if (n == 0) {
        snprintf(err, errlen, "empty frame: a frame must hold one msgpack map");
        return -EBADMSG;
    }
    if (avail - 4 < n) return 0;
    if (!d->zone) {
        d->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
        if (!d->zone) {
            snprintf(err, errlen, "out of memory decoding a frame");
            return -ENOMEM;
        }
    } else {
        msgpack_zone_clear(d->zone);
    }
    size_t used = 0;
    /* walk it first: unpacking allocates for every element a header declares */
    int s = frame_scan(d->buf + d->off + 4, n, n, &used);
    if (s == -EMSGSIZE) {
        snprintf(err, errlen, "frame of %" PRIu32 " bytes declares more contents than it holds", n);
        return -EBADMSG;
    }
    if (s == 0) {
        snprintf(err, errlen, "frame of %" PRIu32 " bytes holds a truncated msgpack object", n);
        return -EBADMSG;
    }
    if (s < 0) {
        snprintf(err, errlen, "frame of %" PRIu32 " bytes is not valid msgpack", n);
        return -EBADMSG;
    }
    used = 0;
    msgpack_object obj;
    msgpack_unpack_return r = msgpack_unpack(d->buf + d->off + 4, n, &used, d->zone, &obj);
    switch (r) {
    case MSGPACK_UNPACK_SUCCESS:
        break;
    case MSGPACK_UNPACK_EXTRA_BYTES:
        snprintf(err, errlen, "frame of %" PRIu32 " bytes has %zu trailing bytes after its map", n,
                 n - used);
        return -EBADMSG;
    case MSGPACK_UNPACK_CONTINUE:
        snprintf(err, errlen, "frame of %" PRIu32 " bytes holds a truncated msgpack object", n);
        return -EBADMSG;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        snprintf(err, errlen, "out of memory decoding a frame of %" PRIu32 " bytes", n);
        return -ENOMEM;
    default:
        snprintf(err, errlen, "frame of %" PRIu32 " bytes is not valid msgpack", n);
        return -EBADMSG;
    }
    if (obj.type != MSGPACK_OBJECT_MAP) {
        snprintf(err, errlen, "frame holds a msgpack object of type %d, not a map", (int)obj.type);
        return -EBADMSG;
    }
    d->off += 4 + (size_t)n;
    *out = obj;
    return 1;
}

const msgpack_object *frame_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            (klen == 0 || memcmp(k->via.str.ptr, key, klen) == 0)) /* "" has a NULL ptr */
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int frame_get_str(const msgpack_object *map, const char *key, const char **s, size_t *n)
{
    const msgpack_object *v = frame_get(map, key);
    if (!v) return -ENOENT;
    if (v->type != MSGPACK_OBJECT_STR) return -EINVAL;
    *s = v->via.str.size ? v->via.str.ptr : ""; /* msgpack-c leaves "" with a NULL ptr */
    *n = v->via.str.size;
    return 0;
}

int frame_get_u64(const msgpack_object *map, const char *key, uint64_t *val)
{
    const msgpack_object *v = frame_get(map, key);
    if (!v) return -ENOENT;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return -EINVAL;
    *val = v->via.u64;
    return 0;
}

int frame_get_i64(const msgpack_object *map, const char *key, int64_t *val)
{
    const msgpack_object *v = frame_get(map, key);
    if (!v) return -ENOENT;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *val = v->via.i64;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX) {
        *val = (int64_t)v->via.u64;
        return 0;
    }
    return -EINVAL;
}

char *frame_dup_str(const msgpack_object *map, const char *key)
{
    const char *s;
    size_t n;
    if (frame_get_str(map, key, &s, &n) != 0 || (n && memchr(s, '\0', n))) return NULL;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    if (n) memcpy(out, s, n);
    out[n] = '\0';
    return out;
}
