/* prune_bench.c - the delivery log's incremental prune on a large log (ROWS finished records,
 * 20 webhooks, 1 KiB bodies): each step's duration (an upper bound of the write lock it holds:
 * the read of the batch's rowids is outside the lock) and the longest a concurrent writer (the
 * sender's commit: BEGIN IMMEDIATE, one row, COMMIT with synchronous = FULL, every 2 ms) waits
 * meanwhile; the same for the old one-statement ROW_NUMBER() prune (5000 rows a call, in BEGIN
 * IMMEDIATE, which ran on the scheduler's loop). Last, the scheduler's chore itself
 * (scheduler/sched_prune.c) on a libuv loop whose 1 ms timer measures how late the loop runs
 * while ROWS rows are pruned by age. usage: prune_bench DIR [ROWS] (a benchmark, not a test). */
#include "domain/store.h"
#include "../../scheduler/sched_prune.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct writer {
    const char *db;
    volatile int stop;
    double max_ms, sum_ms;
    long n, busy;
} writer_t;

/* writer_main: the sender's commits, one row each, every 2 ms. */
static void *writer_main(void *arg)
{
    writer_t *w = arg;
    sqlite3 *db;
    sqlite3_open(w->db, &db);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    for (long i = 0; !w->stop; i++) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; INSERT INTO delivery_log(invocation_id, webhook_id, event_id,"
                 " event_type, status, created_at, updated_at) VALUES('w%ld', 'wh_w', 'e', 't', 2,"
                 " %lld, %lld); COMMIT;",
                 i, (long long)time(NULL) * 1000, (long long)time(NULL) * 1000);
        double t0 = now_ms();
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        double dt = now_ms() - t0;
        if (rc != SQLITE_OK) {
            w->busy++;
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (dt > w->max_ms) w->max_ms = dt;
        w->sum_ms += dt;
        w->n++;
        usleep(2000);
    }
    sqlite3_close(db);
    return NULL;
}

/* fill: rows finished records over 20 webhooks, updated 40 days ago (through the view
 * deliveries, which writes a record and its body). */
static void fill(const char *path, long rows)
{
    sqlite3 *db;
    char cmd[600];
    store_t *s;
    char err[256];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
    if (system(cmd) != 0) exit(1);
    if (store_open(&s, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    store_close(s);
    sqlite3_open(path, &db);
    long long old = ((long long)time(NULL) - 40 * 86400) * 1000;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db,
                       "INSERT INTO deliveries(invocation_id, webhook_id, event_id, event_type,"
                       " status, attempts, created_at, updated_at, req_method, req_url,"
                       " req_headers, req_body, resp_status, resp_body)"
                       " VALUES(?1, ?2, 'evt', 'opportunity.created', 2, 1, ?3, ?3, 'POST',"
                       " 'https://x.example/', '{}', ?4, 200, 'ok')",
                       -1, &st, NULL);
    char body[1024];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = 0;
    for (long i = 0; i < rows; i++) {
        char inv[40], wh[16];
        snprintf(inv, sizeof inv, "inv_%032lx", i * 2654435761UL);
        snprintf(wh, sizeof wh, "wh_%ld", i % 20);
        sqlite3_bind_text(st, 1, inv, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, wh, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, old + i);
        sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

/* run_new: the incremental prune, a 20 ms gap between batches as sched_prune.c leaves. */
static void run_new(const char *path, int64_t age, int keep, const char *label)
{
    store_t *s;
    char err[256];
    writer_t w = {.db = path};
    pthread_t th;
    store_open(&s, path, err, sizeof err);
    store_set_busy(s, 1000, 1);
    store_wal_manual(s); /* as sched_prune.c: checkpoints after a batch, not in its commit */
    pthread_create(&th, NULL, writer_main, &w);
    store_prune_t c;
    double max = 0, sum = 0, lock_max = 0, lock_sum = 0, t0 = now_ms();
    int steps = 0, locks = 0;
    store_prune_begin(&c, age, keep, SCHED_PRUNE_BATCH);
    while (!c.done) {
        double a = now_ms();
        int n = store_prune_step(s, &c, err, sizeof err);
        double dt = now_ms() - a;
        if (n < 0) {
            fprintf(stderr, "step: %s\n", err);
            break;
        }
        if (dt > max) max = dt;
        sum += dt;
        steps++;
        if (store_wal_pages(s) >= 1000) store_checkpoint(s, err, sizeof err);
        if (c.lock_us) {
            locks++;
            lock_sum += c.lock_us / 1000.0;
            if (c.lock_us / 1000.0 > lock_max) lock_max = c.lock_us / 1000.0;
        }
        usleep(SCHED_PRUNE_GAP_MS * 1000);
    }
    double total = now_ms() - t0;
    w.stop = 1;
    pthread_join(th, NULL);
    printf("%-32s deleted %7lld in %4d steps (%d transactions): write lock held longest %6.1f ms,"
           " mean %5.2f ms; step longest %6.1f ms, mean %5.2f ms; pass %6.0f ms; writer: %ld"
           " commits, longest %5.1f ms, mean %4.2f ms, %ld failed\n",
           label, (long long)c.deleted, steps, locks, lock_max, lock_sum / (locks ? locks : 1), max,
           sum / steps, total, w.n, w.max_ms, w.sum_ms / w.n, w.busy);
    store_prune_end(&c);
    store_close(s);
}

/* run_old: the previous prune: ROW_NUMBER() over the whole table, 5000 per call, in
 * BEGIN IMMEDIATE (what scheduler/main.c ran every 60 s). */
static void run_old(const char *path, int keep, const char *label)
{
    sqlite3 *db;
    writer_t w = {.db = path};
    pthread_t th;
    sqlite3_open(path, &db);
    sqlite3_busy_timeout(db, 5000);
    pthread_create(&th, NULL, writer_main, &w);
    double max = 0, t0 = now_ms();
    long deleted = 0;
    int calls = 0, n;
    char sql[600];
    snprintf(
        sql, sizeof sql,
        "BEGIN IMMEDIATE; DELETE FROM delivery_log WHERE invocation_id IN (SELECT invocation_id"
        " FROM (SELECT invocation_id, status, ROW_NUMBER() OVER (PARTITION BY webhook_id"
        " ORDER BY created_at DESC, invocation_id) AS rn FROM delivery_log) WHERE rn > %d AND"
        " status IN (2, 3) LIMIT 5000); COMMIT;",
        keep);
    do {
        double a = now_ms();
        sqlite3_exec(db, sql, NULL, NULL, NULL);
        double dt = now_ms() - a;
        n = sqlite3_changes(db);
        deleted += n;
        if (dt > max) max = dt;
        calls++;
        usleep(20000);
    } while (n >= 5000 && calls < 200);
    double total = now_ms() - t0;
    w.stop = 1;
    pthread_join(th, NULL);
    printf("%-32s deleted %7ld in %4d calls: longest call (lock held) %6.1f ms,"
           " pass %6.0f ms; writer: %ld commits, longest %5.1f ms, mean %4.2f ms, %ld failed\n",
           label, deleted, calls, max, total, w.n, w.max_ms, w.sum_ms / w.n, w.busy);
    sqlite3_close(db);
}

typedef struct lateness {
    uv_timer_t tick;
    double last, max, sum, idle_until, idle_max;
    long n;
    const char *path;
    uint64_t pruned, target;
    sched_prune_t *p;
} lateness_t;

/* lateness_tick: a 1 ms timer; how late it fires is how long the loop was blocked. */
static void lateness_tick(uv_timer_t *t)
{
    lateness_t *l = t->data;
    double now = now_ms(), late = now - l->last - 1.0;
    if (now < l->idle_until) { /* the baseline: the same loop, nothing pruned yet */
        if (l->n++ && late > l->idle_max) l->idle_max = late;
        l->last = now;
        return;
    }
    if (!l->p) sched_prune_start(&l->p, l->tick.loop, l->path, 30 * 86400000LL, 0, &l->pruned);
    if (l->n++ && late > l->max) l->max = late;
    if (l->n > 1) l->sum += late > 0 ? late : 0;
    l->last = now;
    if (l->pruned >= l->target) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        if (l->p) sched_prune_stop(l->p);
        l->p = NULL;
    }
}

/* run_loop: ROWS old rows pruned by age by the scheduler's chore, on a loop. */
static void run_loop(const char *path, long rows)
{
    uv_loop_t loop;
    lateness_t l = {.target = (uint64_t)rows, .path = path};
    uv_loop_init(&loop);
    uv_timer_init(&loop, &l.tick);
    l.tick.data = &l;
    double t0 = now_ms();
    l.idle_until = t0 + 5000;
    l.last = t0;
    uv_timer_start(&l.tick, lateness_tick, 1, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("%-32s pruned %7llu in %6.0f ms; the loop's 1 ms timer meanwhile: late by at most"
           " %5.1f ms (mean %4.2f ms); in the 5 s before, idle: late by at most %5.1f ms\n",
           "loop, sched_prune (worker)", (unsigned long long)l.pruned, now_ms() - t0 - 5000, l.max,
           l.sum / (l.n > 1 ? l.n - 1 : 1), l.idle_max);
}

int main(int argc, char **argv)
{
    char path[512];
    long rows = argc > 2 ? atol(argv[2]) : 200000;
    if (argc < 2) {
        fprintf(stderr, "usage: prune_bench DIR [ROWS]\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/prune.db", argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    fill(path, rows);
    run_new(path, 30 * 86400000LL, 0, "new, by age (all old)");
    fill(path, rows);
    run_new(path, 0, 1000, "new, by count (keep 1000/webhook)");
    fill(path, rows);
    run_old(path, 1000, "old, by count (keep 1000/webhook)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    fill(path, rows);
    run_loop(path, rows);
    return 0;
}
