/* mpjson.c - strict conversion between msgpack objects and jansson values, so producer frames in
 * msgpack go through the same validation as JSON lines. */
#include "util/mpjson.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MPJSON_DEPTH_DEFAULT 64

typedef struct mpjson_ctx {
    int max_depth;
    char path[512];
    size_t plen;
    char *err;
    size_t errlen;
} mpjson_ctx_t;

/* mpjson_utf8_valid accepts well-formed UTF-8 only: no overlongs, surrogates or > U+10FFFF. */
static int mpjson_utf8_valid(const char *s, size_t n)
{
    if (n == 0) return 1; /* s may be NULL then */
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < len) return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        p += len;
    }
    return 1;
}

/* mpjson_str_ptr: a string object's bytes; msgpack-c leaves ptr NULL for "", which jansson
 * refuses (json_stringn(NULL, 0) fails as if out of memory), so "" gets a real empty string. */
static const char *mpjson_str_ptr(const msgpack_object *o)
{
    return o->via.str.size ? o->via.str.ptr : "";
}

/* mpjson_fail fills err with "path: reason" and returns -EINVAL. */
static int mpjson_fail(mpjson_ctx_t *c, const char *reason)
{
    snprintf(c->err, c->errlen, "%s: %s", c->plen ? c->path : "(top level)", reason);
    return -EINVAL;
}

/* mpjson_path_push appends ".key" or "[i]" to the path; returns the length to restore. */
static size_t mpjson_path_push(mpjson_ctx_t *c, const char *key, size_t klen, long idx)
{
    size_t old = c->plen, room = sizeof c->path - c->plen;
    int w;
    if (key)
        w = snprintf(c->path + c->plen, room, "%s%.*s", c->plen ? "." : "", (int)klen, key);
    else
        w = snprintf(c->path + c->plen, room, "[%ld]", idx);
    c->plen = (w < 0 || (size_t)w >= room) ? sizeof c->path - 1 : c->plen + (size_t)w;
    return old;
}

/* mpjson_path_pop restores the path to an earlier length. */
static void mpjson_path_pop(mpjson_ctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* mpjson_conv converts one object at the given container depth. */
static int mpjson_conv(mpjson_ctx_t *c, const msgpack_object *o, int depth, json_t **out)
{
    json_t *v = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        v = json_null();
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        v = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) return mpjson_fail(c, "integer out of range");
        v = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) return mpjson_fail(c, "number is not finite");
        v = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        if (!mpjson_utf8_valid(o->via.str.ptr, o->via.str.size))
            return mpjson_fail(c, "string is not valid UTF-8");
        v = json_stringn(mpjson_str_ptr(o), o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        return mpjson_fail(c, "binary data is not allowed");
    case MSGPACK_OBJECT_EXT:
        return mpjson_fail(c, "extension types are not allowed");
    case MSGPACK_OBJECT_ARRAY:
        if (depth + 1 > c->max_depth) return mpjson_fail(c, "nested too deeply");
        v = json_array();
        for (uint32_t i = 0; v && i < o->via.array.size; i++) {
            json_t *e;
            size_t old = mpjson_path_push(c, NULL, 0, (long)i);
            int r = mpjson_conv(c, &o->via.array.ptr[i], depth + 1, &e);
            if (r < 0) {
                json_decref(v);
                return r;
            }
            mpjson_path_pop(c, old);
            if (json_array_append_new(v, e) < 0) {
                json_decref(v);
                v = NULL;
            }
        }
        break;
    case MSGPACK_OBJECT_MAP:
        if (depth + 1 > c->max_depth) return mpjson_fail(c, "nested too deeply");
        v = json_object();
        for (uint32_t i = 0; v && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR) {
                json_decref(v);
                return mpjson_fail(c, "map key is not a string");
            }
            const char *ks = mpjson_str_ptr(k);
            size_t kn = k->via.str.size;
            if (!mpjson_utf8_valid(ks, kn) || memchr(ks, '\0', kn)) {
                json_decref(v);
                return mpjson_fail(c, "map key is not valid UTF-8 text");
            }
            size_t old = mpjson_path_push(c, ks, kn, 0);
            if (json_object_getn(v, ks, kn)) {
                json_decref(v);
                return mpjson_fail(c, "duplicate key");
            }
            json_t *e;
            int r = mpjson_conv(c, &o->via.map.ptr[i].val, depth + 1, &e);
            if (r < 0) {
                json_decref(v);
                return r;
            }
            mpjson_path_pop(c, old);
            if (json_object_setn_new(v, ks, kn, e) < 0) {
                json_decref(v);
                v = NULL;
            }
        }
        break;
    default:
        return mpjson_fail(c, "unknown msgpack type");
    }
    if (!v) {
        snprintf(c->err, c->errlen, "out of memory converting msgpack to JSON");
        return -ENOMEM;
    }
    *out = v;
    return 0;
}

int mpjson_to_json(const msgpack_object *o, int max_depth, json_t **out, char *err, size_t errlen)
{
    mpjson_ctx_t c = {.max_depth = max_depth > 0 ? max_depth : MPJSON_DEPTH_DEFAULT,
                      .err = err,
                      .errlen = errlen};
    *out = NULL;
    return mpjson_conv(&c, o, 0, out);
}

void mpjson_pack_json(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_keylen_foreach((json_t *)v, key, klen, val)
        {
            msgpack_pack_str(pk, klen);
            msgpack_pack_str_body(pk, key, klen);
            mpjson_pack_json(pk, val);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val) mpjson_pack_json(pk, val);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    default:
        msgpack_pack_nil(pk);
        break;
    }
}
