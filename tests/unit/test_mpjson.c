/* test_mpjson.c - msgpack to JSON conversion rules (keys, depth, floats, bin/ext, duplicates,
 * UTF-8) and JSON to msgpack packing round trips. */
#include "check.h"
#include "util/mpjson.h"

#include <errno.h>
#include <math.h>

static msgpack_sbuffer sb;
static msgpack_packer pk;
static msgpack_zone *zone;

/* start resets the packer for a new test object. */
static void start(void)
{
    msgpack_sbuffer_clear(&sb);
}

/* convert unpacks the packed bytes and runs mpjson_to_json on them. */
static int convert(int depth, json_t **out, char *err, size_t errlen)
{
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_clear(zone);
    if (msgpack_unpack(sb.data, sb.size, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS) return -999;
    err[0] = '\0';
    return mpjson_to_json(&o, depth, out, err, errlen);
}

/* pack_key packs a string. */
static void pack_s(const char *s, size_t n)
{
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, s, n);
}

/* roundtrip packs a JSON text, converts back and compares. */
static void roundtrip(const char *text)
{
    char err[256];
    json_t *in = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *out = NULL;
    CHECK(in != NULL);
    start();
    mpjson_pack_json(&pk, in);
    CHECK_INT(convert(64, &out, err, sizeof err), 0);
    CHECK(out && json_equal(in, out));
    json_decref(in);
    json_decref(out);
}

/* bad_string checks that a string value of raw bytes is refused as invalid UTF-8. */
static void bad_string(const char *bytes, size_t n)
{
    char err[256];
    json_t *out = NULL;
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("name", 4);
    pack_s(bytes, n);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "name: string is not valid UTF-8");
    CHECK(out == NULL);
}

int main(void)
{
    char err[256];
    json_t *out = NULL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);

    roundtrip("{\"type\":\"opportunity.created\",\"n\":-5,\"big\":9007199254740993,"
              "\"f\":1200.5,\"t\":true,\"x\":false,\"z\":null,"
              "\"arr\":[1,\"two\",{\"three\":[]}],\"uni\":\"h\\u00e9llo \\ud83d\\ude00\"}");
    roundtrip("[]");
    roundtrip("\"plain\"");
    roundtrip("{\"nul\":\"a\\u0000b\"}");

    /* the numbers keep their JSON types */
    start();
    msgpack_pack_map(&pk, 2);
    pack_s("i", 1);
    msgpack_pack_uint64(&pk, 42);
    pack_s("f", 1);
    msgpack_pack_float(&pk, 0.5f);
    CHECK_INT(convert(8, &out, err, sizeof err), 0);
    CHECK(json_is_integer(json_object_get(out, "i")));
    CHECK(json_is_real(json_object_get(out, "f")));
    CHECK(json_real_value(json_object_get(out, "f")) == 0.5);
    json_decref(out);

    /* a non-string key, with the path to it */
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("opportunity", 11);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_nil(&pk);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "opportunity: map key is not a string");

    /* binary and ext values, with array indices in the path */
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("a", 1);
    msgpack_pack_map(&pk, 1);
    pack_s("b", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_bin(&pk, 2);
    msgpack_pack_bin_body(&pk, "xy", 2);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "a.b[1]: binary data is not allowed");

    start();
    msgpack_pack_ext(&pk, 1, 5);
    msgpack_pack_ext_body(&pk, "x", 1);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "(top level): extension types are not allowed");

    /* floats must be finite */
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("v", 1);
    msgpack_pack_double(&pk, NAN);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "v: number is not finite");
    start();
    msgpack_pack_array(&pk, 1);
    msgpack_pack_float(&pk, INFINITY);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "[0]: number is not finite");

    /* integers beyond int64 */
    start();
    msgpack_pack_uint64(&pk, UINT64_MAX);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);

    /* duplicate keys */
    start();
    msgpack_pack_map(&pk, 2);
    pack_s("id", 2);
    pack_s("a", 1);
    pack_s("id", 2);
    pack_s("b", 1);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "id: duplicate key");

    /* depth: three nested containers pass a limit of 3 and fail a limit of 2 */
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("a", 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 0);
    CHECK_INT(convert(3, &out, err, sizeof err), 0);
    json_decref(out);
    CHECK_INT(convert(2, &out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "a[0]: nested too deeply");

    /* UTF-8 */
    bad_string("\xff", 1);
    bad_string("abc\xc3", 4);          /* truncated sequence */
    bad_string("\xc0\x80", 2);         /* overlong NUL */
    bad_string("\xe0\x80\xaf", 3);     /* overlong '/' */
    bad_string("\xed\xa0\x80", 3);     /* surrogate */
    bad_string("\xf4\x90\x80\x80", 4); /* above U+10FFFF */
    bad_string("\x80", 1);             /* lone continuation */
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("k\xff", 2);
    msgpack_pack_nil(&pk);
    CHECK_INT(convert(8, &out, err, sizeof err), -EINVAL);
    start();
    msgpack_pack_map(&pk, 1);
    pack_s("name", 4);
    pack_s("\xc3\xa9\xf0\x9f\x98\x80", 6);
    CHECK_INT(convert(8, &out, err, sizeof err), 0);
    CHECK_STR(json_string_value(json_object_get(out, "name")), "\xc3\xa9\xf0\x9f\x98\x80");
    json_decref(out);

    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&sb);
    return check_done("mpjson");
}
