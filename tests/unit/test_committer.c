/* test_committer.c - group commit on a real loop and journal: always, batch and off each write
 * (on the worker thread) before calling back, in registration order; failures reach every
 * waiter and seal the segment; compaction moves records off the loop; close is clean. */
#include "check.h"
#include "util/committer.h"
#include "util/journal.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct test_ctx {
    uv_loop_t loop;
    uv_timer_t kick;
    journal_t *j;
    committer_t *c;
    int order[32], status[32], n;
    long long size_at_cb[32];
    uint64_t t_start, t_cb;
    int rearm; /* the first callback appends and waits again */
} test_ctx_t;

typedef struct waiter {
    test_ctx_t *t;
    int id;
} waiter_t;

static char dir[64];
static char err[512];
static char seg[128];
static waiter_t ws[32];

/* file_size returns the size of path or -1. */
static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* on_commit records the order, status and the file size seen by each callback. */
static void on_commit(void *arg, int status)
{
    waiter_t *w = arg;
    test_ctx_t *t = w->t;
    if (t->n < 32) {
        t->order[t->n] = w->id;
        t->status[t->n] = status;
        t->size_at_cb[t->n] = file_size(seg);
    }
    t->n++;
    t->t_cb = uv_hrtime();
    if (t->rearm && w->id == 1) {
        journal_pos_t pos;
        CHECK_INT(journal_append(t->j, "again", 5, 1, &pos, err, sizeof err), 0);
        ws[9] = (waiter_t){t, 9};
        committer_after(t->c, on_commit, &ws[9]);
    }
}

/* on_kick appends three records, each with a waiter, from inside the loop. */
static void on_kick(uv_timer_t *h)
{
    test_ctx_t *t = h->data;
    journal_pos_t pos;
    t->t_start = uv_hrtime();
    for (int i = 1; i <= 3; i++) {
        CHECK_INT(journal_append(t->j, "record", 6, 1, &pos, err, sizeof err), 0);
        ws[i] = (waiter_t){t, i};
        committer_after(t->c, on_commit, &ws[i]);
    }
    CHECK_INT(t->n, 0); /* nothing runs before the batch ends */
}

/* run_until runs the loop until *n reaches want (or 2000 iterations of at most 5 ms each). */
static void run_until(uv_loop_t *loop, const int *n, int want)
{
    for (int i = 0; i < 2000 && *n < want; i++)
        uv_run(loop, UV_RUN_ONCE);
}

/* on_closed is the kick timer's close callback. */
static void on_closed(uv_handle_t *h) {}

/* noop for replay. */
static int noop(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    return 0;
}

/* setup opens a fresh journal name and committer on a new loop. */
static void setup(test_ctx_t *t, const char *name, fsync_policy_t pol, unsigned batch_ms)
{
    memset(t, 0, sizeof *t);
    CHECK_INT(uv_loop_init(&t->loop), 0);
    CHECK_INT(journal_open(&t->j, dir, name, 0, err, sizeof err), 0);
    CHECK_INT(journal_replay(t->j, noop, NULL), 0);
    CHECK_INT(committer_init(&t->c, &t->loop, t->j, pol, batch_ms), 0);
    snprintf(seg, sizeof seg, "%s/%s-%016x.jnl", dir, name, 1u);
    uv_timer_init(&t->loop, &t->kick);
    t->kick.data = t;
}

/* teardown closes the committer and checks the loop ends with nothing left open. */
static void teardown(test_ctx_t *t)
{
    committer_close(t->c);
    uv_close((uv_handle_t *)&t->kick, on_closed);
    CHECK_INT(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&t->loop), 0);
    journal_close(t->j);
}

/* test_policy runs three waiters (and one re-armed from a callback) under one policy. */
static void test_policy(const char *name, fsync_policy_t pol, unsigned batch_ms)
{
    test_ctx_t t;
    setup(&t, name, pol, batch_ms);
    t.rearm = 1;
    uv_timer_start(&t.kick, on_kick, 0, 0);
    run_until(&t.loop, &t.n, 3);
    CHECK_INT(t.n, 3);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    CHECK_INT(t.n, 4);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(t.order[i], i + 1);
        CHECK_INT(t.status[i], 0);
        CHECK_INT(t.size_at_cb[i], 8 + 3 * 14); /* written before anyone is told */
    }
    CHECK_INT(t.order[3], 9);
    CHECK_INT(t.status[3], 0);
    CHECK_INT(t.size_at_cb[3], 8 + 3 * 14 + 13);
    if (pol == FSYNC_BATCH) CHECK((t.t_cb - t.t_start) >= (uint64_t)batch_ms * 1000000 - 1000000);
    teardown(&t);
}

/* test_flush_and_close: flush_now ends a long batch at once; close flushes late waiters. */
static void test_flush_and_close(void)
{
    test_ctx_t t;
    journal_pos_t pos;
    setup(&t, "flush", FSYNC_BATCH, 60000);
    CHECK_INT(journal_append(t.j, "one", 3, 1, &pos, err, sizeof err), 0);
    ws[1] = (waiter_t){&t, 1};
    committer_after(t.c, on_commit, &ws[1]);
    committer_flush_now(t.c);
    CHECK_INT(t.n, 0); /* never from the call itself */
    uint64_t t0 = uv_hrtime();
    run_until(&t.loop, &t.n, 1);
    CHECK(uv_hrtime() - t0 < 30000000000ull); /* long before the 60 s window */
    CHECK_INT(t.n, 1);
    CHECK_INT(t.status[0], 0);
    CHECK_INT(t.size_at_cb[0], 8 + 11);
    CHECK_INT(journal_append(t.j, "two", 3, 1, &pos, err, sizeof err), 0);
    ws[2] = (waiter_t){&t, 2};
    committer_after(t.c, on_commit, &ws[2]);
    teardown(&t); /* close flushes: no 60 s wait */
    CHECK_INT(t.n, 2);
    CHECK_INT(t.order[1], 2);
    CHECK_INT(t.size_at_cb[1], 8 + 22);
}

/* test_failure: a failed sync reaches every waiter of the batch with its errno. */
static void test_failure(void)
{
    test_ctx_t t;
    struct rlimit old, lim;
    journal_pos_t pos;
    char big[200];
    memset(big, 'x', sizeof big);
    setup(&t, "fail", FSYNC_ALWAYS, 0);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 100;
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 1; i <= 2; i++) {
        CHECK_INT(journal_append(t.j, big, sizeof big, 1, &pos, err, sizeof err), 0);
        ws[i] = (waiter_t){&t, i};
        committer_after(t.c, on_commit, &ws[i]);
    }
    journal_pos_t failed_pos = pos;
    uv_run(&t.loop, UV_RUN_DEFAULT);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_INT(t.n, 2);
    CHECK_INT(t.status[0], -EFBIG);
    CHECK_INT(t.status[1], -EFBIG);
    CHECK_INT(t.order[1], 2);
    /* the dropped record cannot be released; the next record is durable, in a new segment */
    CHECK(journal_release(t.j, failed_pos) < 0);
    CHECK_INT(journal_append(t.j, "after", 5, 1, &pos, err, sizeof err), 0);
    CHECK(journal_pos_segment(pos) > journal_pos_segment(failed_pos));
    ws[3] = (waiter_t){&t, 3};
    committer_after(t.c, on_commit, &ws[3]);
    run_until(&t.loop, &t.n, 3);
    CHECK_INT(t.status[2], 0);
    CHECK_INT(journal_release(t.j, pos), 0);
    teardown(&t);
}

/* rm_entry removes one path for nftw. */
static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

/* The compaction test's owner: a few long-lived records among many that die. */
typedef struct keeper {
    journal_pos_t pos[4];
    int moved_calls, relocated;
    int drop_during_read; /* release keeper 0 while its record is being read */
    journal_t *j;
} keeper_t;

/* keeper_visit names the keeper's records in the segments being compacted. */
static void keeper_visit(void *arg, uint32_t upto, committer_moves_t *m)
{
    keeper_t *k = arg;
    k->moved_calls++;
    for (int i = 0; i < 4; i++)
        if (k->pos[i] && journal_pos_segment(k->pos[i]) <= upto) committer_move(m, k->pos[i]);
    if (k->drop_during_read) { /* its owner lets it go before the copy is written */
        CHECK_INT(journal_release(k->j, k->pos[0]), 0);
        k->pos[0] = 0;
    }
}

/* keeper_relocate answers which records it still holds, and moves them on commit. */
static void keeper_relocate(void *arg, committer_move_t *moves, size_t n, int commit)
{
    keeper_t *k = arg;
    for (size_t i = 0; i < n; i++)
        for (int x = 0; x < 4; x++)
            if (k->pos[x] && k->pos[x] == moves[i].old) {
                moves[i].held = 1;
                if (commit) {
                    k->pos[x] = moves[i].new;
                    k->relocated++;
                }
            }
}

/* count_records counts replayed records whose payload starts with "keep". */
static int count_keep(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    if (len >= 4 && memcmp(rec, "keep", 4) == 0) ++*(int *)arg;
    return 0;
}

/* keeper_fill makes the keeper c's compaction owner and writes 4 keepers spread over the first
 * segments of j among 200 records that die once durable. */
static void keeper_fill(journal_t *j, committer_t *c, keeper_t *k)
{
    char rec[200];
    journal_pos_t drops[204];
    int ndrops = 0;
    k->j = j;
    committer_compact_every(c, 60000, 2, keeper_visit, keeper_relocate, k);
    for (int i = 0; i < 204; i++) {
        journal_pos_t pos;
        int keep = i % 50 == 0 && i / 50 < 4;
        snprintf(rec, sizeof rec, "%s %d %0150d", keep ? "keep" : "drop", i, 0);
        CHECK_INT(journal_append(j, rec, strlen(rec), 1, &pos, err, sizeof err), 0);
        if (keep)
            k->pos[i / 50] = pos;
        else
            drops[ndrops++] = pos;
    }
    CHECK(journal_release(j, drops[0]) < 0); /* not durable yet: refused */
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    for (int i = 0; i < ndrops; i++)
        CHECK_INT(journal_release(j, drops[i]), 0);
}

/* test_compaction: live records pinning old segments are moved forward; the old segments go,
 * and a replay still finds every live record exactly once. */
static void test_compaction(void)
{
    uv_loop_t loop;
    journal_t *j;
    committer_t *c;
    keeper_t k = {0};
    CHECK_INT(uv_loop_init(&loop), 0);
    CHECK_INT(journal_open(&j, dir, "compact", 4096, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, noop, NULL), 0);
    CHECK_INT(committer_init(&c, &loop, j, FSYNC_ALWAYS, 0), 0);
    keeper_fill(j, c, &k);
    journal_stats_t st;
    journal_get_stats(j, &st);
    CHECK(st.segments > 6);
    uint64_t before = st.segments;
    int moved = committer_compact_now(c);
    CHECK_INT(moved, 4);       /* every keeper sits in a sparse segment older than the newest */
    CHECK_INT(k.relocated, 0); /* the reads run on the worker; nothing moves before the sync */
    run_until(&loop, &k.relocated, 4);
    CHECK_INT(k.relocated, 4);
    journal_get_stats(j, &st);
    CHECK(st.segments < before);
    CHECK_INT(st.live_records, 4);
    for (int i = 0; i < 4; i++) {
        void *r;
        size_t n;
        CHECK_INT(journal_read(j, k.pos[i], &r, &n), 0);
        CHECK(n > 4 && memcmp(r, "keep", 4) == 0);
        free(r);
    }
    committer_close(c);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    journal_close(j);
    int found = 0;
    CHECK_INT(journal_open(&j, dir, "compact", 4096, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, count_keep, &found), 0);
    CHECK_INT(found, 4); /* the old copies went with their segments */
    journal_close(j);
}

/* test_compaction_release_during_read: a record its owner lets go while the compaction reads it
 * is not copied, so a replay cannot bring it back. */
static void test_compaction_release_during_read(void)
{
    uv_loop_t loop;
    journal_t *j;
    committer_t *c;
    keeper_t k = {0};
    CHECK_INT(uv_loop_init(&loop), 0);
    CHECK_INT(journal_open(&j, dir, "compact2", 4096, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, noop, NULL), 0);
    CHECK_INT(committer_init(&c, &loop, j, FSYNC_BATCH, 5), 0);
    keeper_fill(j, c, &k);
    CHECK(k.relocated == 0);
    k.drop_during_read = 1;
    CHECK_INT(committer_compact_now(c), 4);
    run_until(&loop, &k.relocated, 3);
    CHECK_INT(k.relocated, 3);
    journal_stats_t st;
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 3);
    committer_close(c);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    journal_close(j);
    int found = 0;
    CHECK_INT(journal_open(&j, dir, "compact2", 4096, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, count_keep, &found), 0);
    CHECK_INT(found, 3);
    journal_close(j);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/hl-committer-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_policy("always", FSYNC_ALWAYS, 0);
    test_policy("batch", FSYNC_BATCH, 20);
    test_policy("off", FSYNC_OFF, 0);
    test_flush_and_close();
    test_failure();
    test_compaction();
    test_compaction_release_during_read();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK_INT(file_size(dir), -1);
    return check_done("committer");
}
