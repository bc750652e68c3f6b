/* fuzz_frame.c - libFuzzer target for the inter-stage frame decoder: the input fed in pieces of
 * random size must decode to the same frames, the same verdict, as the input fed whole; every
 * decoded map is read with the frame_get_* helpers and re-encoded to an equal frame. */
#include "fuzz.h"

#include "domain/proto.h"
#include "util/frame.h"

#include <errno.h>
#include <string.h>

#define FUZZ_MAX_OUT 64 /* frames compared per input */

/* Every key of proto.h, and a few that are not. */
static const char *const fuzz_keys[] = {PK_TYPE,
                                        PK_VERSION,
                                        PK_STAGE,
                                        PK_INSTANCE,
                                        PK_PID,
                                        PK_STATE,
                                        PK_UPTIME,
                                        PK_STATS,
                                        PK_SEQ,
                                        PK_EVENT_JSON,
                                        PK_INVOCATION,
                                        PK_WEBHOOK,
                                        PK_EVENT_ID,
                                        PK_EVENT_TYPE,
                                        PK_ATTEMPT,
                                        PK_BODY,
                                        PK_CREATED,
                                        PK_RETRY_AFTER,
                                        PK_STATUS,
                                        PK_NEXT,
                                        PK_OK,
                                        PK_ERROR,
                                        "",
                                        "unknown",
                                        NULL};

/* A decode run: the frames seen (re-encoded) and how it ended. */
typedef struct fuzz_run {
    msgpack_sbuffer frames[FUZZ_MAX_OUT];
    int nframes;
    int end; /* 0: ran out of bytes, else the negative errno */
} fuzz_run_t;

/* fuzz_read_map exercises every reader on one decoded map. */
static void fuzz_read_map(const msgpack_object *m)
{
    for (const char *const *k = fuzz_keys; *k; k++) {
        const char *s;
        size_t n;
        uint64_t u;
        int64_t i;
        const msgpack_object *v = frame_get(m, *k);
        int rs = frame_get_str(m, *k, &s, &n);
        int ru = frame_get_u64(m, *k, &u);
        int ri = frame_get_i64(m, *k, &i);
        FUZZ_ASSERT(v ? rs != -ENOENT && ru != -ENOENT && ri != -ENOENT
                      : rs == -ENOENT && ru == -ENOENT && ri == -ENOENT,
                    "key %s: presence disagrees", *k);
        if (rs == 0) {
            FUZZ_ASSERT(v->type == MSGPACK_OBJECT_STR && n == v->via.str.size &&
                            (n ? s == v->via.str.ptr : s && *s == '\0'),
                        "key %s: string", *k);
            if (n) FUZZ_ASSERT(s[0] == v->via.str.ptr[0] && s[n - 1] == v->via.str.ptr[n - 1], "");
        }
        if (ru == 0) FUZZ_ASSERT(u == v->via.u64, "key %s: u64", *k);
        if (ri == 0)
            FUZZ_ASSERT(i >= 0 ? (uint64_t)i == v->via.u64 : i == v->via.i64, "key %s", *k);
        char *dup = frame_dup_str(m, *k);
        if (dup) {
            FUZZ_ASSERT(rs == 0 && strlen(dup) == n && memcmp(dup, s, n) == 0, "key %s: dup", *k);
            free(dup);
        }
    }
    /* every string key of the map is found by frame_get */
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size > 64 ||
            (k->via.str.size && memchr(k->via.str.ptr, '\0', k->via.str.size)))
            continue;
        char key[65];
        if (k->via.str.size) memcpy(key, k->via.str.ptr, k->via.str.size); /* "": NULL ptr */
        key[k->via.str.size] = '\0';
        FUZZ_ASSERT(frame_get(m, key) != NULL, "key %s in the map but not found", key);
    }
}

/* fuzz_take drains whole frames out of d into run; returns 1 once the run has ended in error. */
static int fuzz_take(frame_decoder_t *d, fuzz_run_t *run)
{
    for (;;) {
        msgpack_object m;
        char err[256];
        err[0] = '\0';
        int r = frame_decoder_next(d, &m, err, sizeof err);
        if (r == 0) return 0;
        if (r < 0) {
            FUZZ_ASSERT(r == -EMSGSIZE || r == -EBADMSG || r == -ENOMEM, "error %d", r);
            FUZZ_ASSERT(err[0], "error %d without a message", r);
            run->end = r;
            return 1;
        }
        FUZZ_ASSERT(r == 1 && m.type == MSGPACK_OBJECT_MAP, "frame is not a map");
        fuzz_read_map(&m);
        if (run->nframes < FUZZ_MAX_OUT) {
            msgpack_sbuffer *sb = &run->frames[run->nframes++];
            msgpack_packer pk;
            size_t mark;
            msgpack_sbuffer_init(sb);
            frame_begin(sb, &pk, &mark);
            msgpack_pack_object(&pk, m);
            frame_end(sb, mark);
        }
    }
}

/* fuzz_decode feeds bytes in pieces whose sizes come from the seed (0: all at once). */
static void fuzz_decode(const uint8_t *data, size_t size, size_t max, uint32_t seed,
                        fuzz_run_t *run)
{
    frame_decoder_t d;
    frame_decoder_init(&d, max);
    memset(run, 0, sizeof *run);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % (n < 64 ? n : 64);
        }
        FUZZ_ASSERT(frame_decoder_feed(&d, (const char *)data + off, n) == 0, "feed");
        off += n;
        if (fuzz_take(&d, run)) break;
    }
    frame_decoder_close(&d);
}

/* fuzz_redecode: a re-encoded frame decodes to itself. */
static void fuzz_redecode(const msgpack_sbuffer *sb)
{
    fuzz_run_t again;
    fuzz_decode((const uint8_t *)sb->data, sb->size, 0, 0, &again);
    FUZZ_ASSERT(again.end == 0 && again.nframes == 1, "re-encoded frame does not decode");
    FUZZ_ASSERT(again.frames[0].size == sb->size &&
                    memcmp(again.frames[0].data, sb->data, sb->size) == 0,
                "re-encoded frame decodes differently");
    msgpack_sbuffer_destroy(&again.frames[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_run_t whole, pieces;
    if (size < 2) return 0;
    /* byte 0: the piece-size seed; byte 1: the frame limit (0 = the default 16 MiB) */
    uint32_t seed = (uint32_t)data[0] * 2654435761u | 1u;
    size_t max = data[1] < 128 ? 0 : (size_t)(data[1] - 127) * 8;
    data += 2, size -= 2;
    fuzz_decode(data, size, max, 0, &whole);
    fuzz_decode(data, size, max, seed, &pieces);
    FUZZ_ASSERT(whole.end == pieces.end && whole.nframes == pieces.nframes,
                "whole: %d frames, end %d; in pieces: %d frames, end %d", whole.nframes, whole.end,
                pieces.nframes, pieces.end);
    for (int i = 0; i < whole.nframes; i++) {
        FUZZ_ASSERT(whole.frames[i].size == pieces.frames[i].size &&
                        memcmp(whole.frames[i].data, pieces.frames[i].data, whole.frames[i].size) ==
                            0,
                    "frame %d differs when fed in pieces", i);
        fuzz_redecode(&whole.frames[i]);
        msgpack_sbuffer_destroy(&whole.frames[i]);
        msgpack_sbuffer_destroy(&pieces.frames[i]);
    }
    return 0;
}
