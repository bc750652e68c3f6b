/* frame.h - length-prefixed msgpack frames: a 4-byte big-endian length, then one msgpack map. */
#ifndef HL_FRAME_H
#define HL_FRAME_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_DEFAULT (16u << 20) /* 16 MiB: larger lengths close the connection */

/* Encoder: frame_begin() reserves the length prefix in sb and returns a packer writing after
 * it; frame_end() patches the prefix. Several frames may be appended to one sbuffer (batched
 * writes). */
void frame_begin(msgpack_sbuffer *sb, msgpack_packer *pk, size_t *mark);
void frame_end(msgpack_sbuffer *sb, size_t mark);

/* Packing helpers for the short fixed keys of proto.h. */
void frame_pack_str(msgpack_packer *pk, const char *s);
void frame_pack_strn(msgpack_packer *pk, const char *s, size_t n);
void frame_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void frame_pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t n);
void frame_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void frame_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val);

/* Streaming decoder: feed bytes as they arrive, take whole frames out. */
typedef struct frame_decoder {
    char *buf;
    size_t len, off, cap, max;
    msgpack_zone *zone;
} frame_decoder_t;

void frame_decoder_init(frame_decoder_t *d, size_t max);
void frame_decoder_close(frame_decoder_t *d);
/* frame_decoder_feed copies n bytes in. Returns 0 or -ENOMEM. */
int frame_decoder_feed(frame_decoder_t *d, const char *data, size_t n);
/* frame_decoder_next: 1 and *out = the next frame's map (valid until the next call), 0 when no
 * whole frame is buffered, or a negative errno with err filled: -EMSGSIZE (length over max),
 * -EBADMSG (not msgpack, trailing bytes, or not a map). After an error the stream is unusable. */
int frame_decoder_next(frame_decoder_t *d, msgpack_object *out, char *err, size_t errlen);

/* frame_scan walks the msgpack object at the start of buf[0..n) without building it, so that a
 * few bytes declaring a container of 2^32 elements cannot make msgpack_unpack allocate for all of
 * them. Returns 1 with *used = the object's length when it is complete, 0 when the bytes end
 * before it does, -EMSGSIZE when a declared container count or string/bin/ext length cannot fit
 * in limit bytes from the object's start (every element takes at least one byte), -EBADMSG on
 * the never-used byte 0xc1. Unpacking an object it accepted allocates at most a small multiple
 * of its length. Streams check each object with limit = their frame limit before unpacking. */
int frame_scan(const char *buf, size_t n, size_t limit, size_t *used);

/* Reading helpers on a decoded map. Each returns 0 when the key is present with the right type,
 * -ENOENT when absent, -EINVAL when the type is wrong. Strings are not NUL terminated. */
const msgpack_object *frame_get(const msgpack_object *map, const char *key);
int frame_get_str(const msgpack_object *map, const char *key, const char **s, size_t *n);
int frame_get_u64(const msgpack_object *map, const char *key, uint64_t *v);
int frame_get_i64(const msgpack_object *map, const char *key, int64_t *v);
/* frame_dup_str: malloc'd NUL-terminated copy of a string value, or NULL when absent/wrong. */
char *frame_dup_str(const msgpack_object *map, const char *key);

#endif
