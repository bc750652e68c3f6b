/* test_frame.c - frame encoder and streaming decoder: batched frames, byte-by-byte feeds, size
 * limit, garbage, non-map frames and the typed map readers. */
#include "check.h"
#include "util/frame.h"

#include <errno.h>
#include <stdlib.h>

/* pack_sample appends one frame {t: i, s: "hello-i", n: -i} to sb. */
static void pack_sample(msgpack_sbuffer *sb, int i)
{
    msgpack_packer pk;
    size_t mark;
    char s[32];
    snprintf(s, sizeof s, "hello-%d", i);
    frame_begin(sb, &pk, &mark);
    msgpack_pack_map(&pk, 3);
    frame_pack_kv_u64(&pk, "t", (uint64_t)i);
    frame_pack_kv_str(&pk, "s", s);
    frame_pack_kv_i64(&pk, "n", -(int64_t)i);
    frame_end(sb, mark);
}

/* check_sample verifies a decoded sample frame. */
static void check_sample(const msgpack_object *m, int i)
{
    uint64_t t = 99;
    int64_t n = 99;
    const char *s;
    size_t sl;
    char want[32];
    snprintf(want, sizeof want, "hello-%d", i);
    CHECK_INT(frame_get_u64(m, "t", &t), 0);
    CHECK_INT(t, i);
    CHECK_INT(frame_get_i64(m, "n", &n), 0);
    CHECK_INT(n, -i);
    CHECK_INT(frame_get_str(m, "s", &s, &sl), 0);
    CHECK(sl == strlen(want) && memcmp(s, want, sl) == 0);
    char *dup = frame_dup_str(m, "s");
    CHECK_STR(dup, want);
    free(dup);
}

/* raw_frame builds a frame with a given length prefix around arbitrary bytes. */
static size_t raw_frame(char *out, uint32_t len, const char *body, size_t n)
{
    out[0] = (char)(len >> 24);
    out[1] = (char)(len >> 16);
    out[2] = (char)(len >> 8);
    out[3] = (char)len;
    memcpy(out + 4, body, n);
    return 4 + n;
}

int main(void)
{
    msgpack_sbuffer sb;
    msgpack_object m;
    frame_decoder_t d;
    char err[256];

    /* several frames in one buffer, fed at once */
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 5; i++)
        pack_sample(&sb, i);
    CHECK_INT((unsigned char)sb.data[0], 0); /* big-endian length: first byte 0 */
    frame_decoder_init(&d, FRAME_MAX_DEFAULT);
    CHECK_INT(frame_decoder_feed(&d, sb.data, sb.size), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), 1);
        check_sample(&m, i);
    }
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), 0);
    frame_decoder_close(&d);

    /* the same bytes fed one at a time: each frame appears exactly when its last byte arrives */
    frame_decoder_init(&d, FRAME_MAX_DEFAULT);
    int got = 0;
    for (size_t k = 0; k < sb.size; k++) {
        CHECK_INT(frame_decoder_feed(&d, sb.data + k, 1), 0);
        int r;
        while ((r = frame_decoder_next(&d, &m, err, sizeof err)) == 1)
            check_sample(&m, got++);
        CHECK_INT(r, 0);
    }
    CHECK_INT(got, 5);
    frame_decoder_close(&d);
    msgpack_sbuffer_destroy(&sb);

    /* typed readers: absent and wrong type */
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb, 7);
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, sb.data, sb.size);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), 1);
    uint64_t u;
    int64_t i64;
    const char *s;
    size_t sl;
    CHECK_INT(frame_get_u64(&m, "missing", &u), -ENOENT);
    CHECK_INT(frame_get_u64(&m, "s", &u), -EINVAL);
    CHECK_INT(frame_get_u64(&m, "n", &u), -EINVAL); /* negative is not a u64 */
    CHECK_INT(frame_get_i64(&m, "t", &i64), 0);
    CHECK_INT(i64, 7);
    CHECK_INT(frame_get_str(&m, "t", &s, &sl), -EINVAL);
    CHECK(frame_get(&m, "nope") == NULL);
    CHECK(frame_dup_str(&m, "t") == NULL);
    frame_decoder_close(&d);
    msgpack_sbuffer_destroy(&sb);

    /* oversize: the prefix alone is enough to refuse */
    char buf[64];
    frame_decoder_init(&d, FRAME_MAX_DEFAULT);
    raw_frame(buf, 20u << 20, "", 0);
    frame_decoder_feed(&d, buf, 4);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EMSGSIZE);
    CHECK_STR(err, "frame of 20971520 bytes exceeds limit 16777216");
    frame_decoder_close(&d);

    /* a small custom limit */
    frame_decoder_init(&d, 8);
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb, 1);
    frame_decoder_feed(&d, sb.data, sb.size);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EMSGSIZE);
    frame_decoder_close(&d);
    msgpack_sbuffer_destroy(&sb);

    /* garbage: 0xc1 is never valid msgpack */
    frame_decoder_init(&d, 0);
    size_t n = raw_frame(buf, 3, "\xc1\xc1\xc1", 3);
    frame_decoder_feed(&d, buf, n);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EBADMSG);
    CHECK(strstr(err, "not valid msgpack") != NULL);
    frame_decoder_close(&d);

    /* trailing bytes after the map: {} then a nil */
    frame_decoder_init(&d, 0);
    n = raw_frame(buf, 2, "\x80\xc0", 2);
    frame_decoder_feed(&d, buf, n);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EBADMSG);
    CHECK(strstr(err, "trailing") != NULL);
    frame_decoder_close(&d);

    /* truncated object inside a complete frame: a map announcing one pair, no pair */
    frame_decoder_init(&d, 0);
    n = raw_frame(buf, 1, "\x81", 1);
    frame_decoder_feed(&d, buf, n);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EBADMSG);
    frame_decoder_close(&d);

    /* a valid object that is not a map: an array [1] */
    frame_decoder_init(&d, 0);
    n = raw_frame(buf, 2, "\x91\x01", 2);
    frame_decoder_feed(&d, buf, n);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EBADMSG);
    CHECK(strstr(err, "not a map") != NULL);
    frame_decoder_close(&d);

    /* empty frame */
    frame_decoder_init(&d, 0);
    n = raw_frame(buf, 0, "", 0);
    frame_decoder_feed(&d, buf, n);
    CHECK_INT(frame_decoder_next(&d, &m, err, sizeof err), -EBADMSG);
    frame_decoder_close(&d);

    return check_done("frame");
}
