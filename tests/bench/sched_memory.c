/* sched_memory.c - writes a scheduler journal of N pending retries ("r" records exactly as
 * scheduler/sched_queue.c journals them) for the memory and restart benchmark (sched_memory.py).
 * usage: sched_memory DATA_DIR N DUE_NOW_COUNT WEBHOOK_ID [BODY_BYTES]
 * The first DUE_NOW_COUNT records are due now, the rest a year away; ids are real invocation ids
 * (payload_invocation_id of "evt_mem<i>" and WEBHOOK_ID). */
#include "domain/payload.h"
#include "domain/proto.h"
#include "util/frame.h"
#include "util/journal.h"
#include "util/timeutil.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define YEAR_MS (365LL * 86400000LL)

/* bench_record packs retry i in the scheduler's record layout (sched_pack_record). */
static void bench_record(msgpack_sbuffer *sb, uint64_t i, const char *wh, const char *body,
                         size_t bodylen, int64_t due, int64_t created)
{
    char ev[64], inv[INVOCATION_ID_LEN];
    snprintf(ev, sizeof ev, "evt_mem%08llu", (unsigned long long)i);
    payload_invocation_id(ev, wh, inv);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 10);
    frame_pack_kv_str(&pk, "k", "r");
    frame_pack_kv_u64(&pk, "gen", i + 1);
    frame_pack_kv_str(&pk, PK_INVOCATION, inv);
    frame_pack_kv_str(&pk, PK_WEBHOOK, wh);
    frame_pack_kv_str(&pk, PK_EVENT_ID, ev);
    frame_pack_kv_str(&pk, PK_EVENT_TYPE, "opportunity.created");
    frame_pack_kv_strn(&pk, PK_BODY, body, bodylen);
    frame_pack_kv_i64(&pk, PK_ATTEMPT, 2);
    frame_pack_kv_i64(&pk, PK_CREATED, created);
    frame_pack_kv_i64(&pk, "due", due);
}

/* bench_skip ignores records already in the journal (the filler appends after them). */
static int bench_skip(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    (void)arg, (void)pos, (void)rec, (void)len;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s DATA_DIR N DUE_NOW_COUNT WEBHOOK_ID [BODY_BYTES]\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10), now_count = strtoull(argv[3], NULL, 10);
    const char *wh = argv[4];
    size_t bodylen = argc > 5 ? strtoul(argv[5], NULL, 10) : 256;
    char *body = malloc(bodylen + 1);
    if (!body) return 1;
    /* A JSON body of the requested size: {"p":"xxxx..."} */
    memset(body, 'x', bodylen);
    if (bodylen >= 8) {
        memcpy(body, "{\"p\":\"", 6);
        memcpy(body + bodylen - 2, "\"}", 2);
    }
    char dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s/journal", argv[1]);
    mkdir(argv[1], 0755);
    journal_t *j;
    if (journal_open(&j, dir, "scheduler", JOURNAL_SEGMENT_MAX_DEFAULT, err, sizeof err) < 0 ||
        journal_replay(j, bench_skip, NULL) < 0) {
        fprintf(stderr, "journal %s: %s\n", dir, err);
        return 1;
    }
    int64_t now = time_now_ms();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint64_t i = 0; i < n; i++) {
        msgpack_sbuffer_clear(&sb);
        bench_record(&sb, i, wh, body, bodylen, i < now_count ? now : now + YEAR_MS + (int64_t)i,
                     now);
        journal_pos_t pos;
        if (journal_append(j, sb.data, sb.size, 1, &pos, err, sizeof err) < 0 ||
            (i % 4096 == 4095 && journal_sync(j, 0, err, sizeof err) < 0)) {
            fprintf(stderr, "journal %s: %s\n", dir, err);
            return 1;
        }
    }
    if (journal_sync(j, 1, err, sizeof err) < 0) {
        fprintf(stderr, "journal %s: %s\n", dir, err);
        return 1;
    }
    journal_close(j);
    msgpack_sbuffer_destroy(&sb);
    free(body);
    return 0;
}
