/* dlog_write.c - the delivery log's write cost per record, through the store functions the
 * sender uses (store_begin, store_counted_record with a store_counts_t, store_counts_flush,
 * store_commit), in batches like the sender's: records of the bench's shape (1 KiB body, 9
 * masked request headers, a short response), attempt 1 succeeded, over 16 webhooks. A log of
 * PREFILL records is written first (so the indexes have their working size), checkpointed, then
 * N records are timed: µs per record, statements per record (sqlite3_trace_v2), WAL bytes per
 * record (the WAL's growth; no checkpoint runs while timing), and read/write system calls and
 * bytes per record (/proc/self/io). usage: dlog_write DIR [N [BATCH [PREFILL [full]]]]
 * (a benchmark, not a test; "full" sets synchronous = FULL as the sender's --fsync batch).
 * With DLOG_KEEP_WAL set in the environment the WAL is left as the timed writes made it;
 * DLOG_SHAPE=outcome (default), pending or retry: what each delivery writes (below). */
#include "domain/store_int.h" /* the handle's connection, for the statement count */

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static long statements;

/* count_stmt counts every statement that starts running (BEGIN and COMMIT included). */
static int count_stmt(unsigned type, void *ctx, void *p, void *x)
{
    statements++;
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* now_ms: wall-clock milliseconds, as the sender stamps a record. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct io {
    long long syscr, syscw, rchar, wchar;
} io_t;

/* io_read: this process's I/O counters. */
static io_t io_read(void)
{
    io_t v = {0};
    char key[64];
    long long n;
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return v;
    while (fscanf(f, "%63[^:]: %lld\n", key, &n) == 2) {
        if (!strcmp(key, "syscr")) v.syscr = n;
        if (!strcmp(key, "syscw")) v.syscw = n;
        if (!strcmp(key, "rchar")) v.rchar = n;
        if (!strcmp(key, "wchar")) v.wchar = n;
    }
    fclose(f);
    return v;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static char body[1100], headers[700];
/* What each delivery writes: its outcome alone (the first write of the invocation); a pending
 * row one batch before the outcome (an attempt still running at the next commit); or a failed
 * attempt 1 one batch before attempt 2 succeeds. */
enum { SHAPE_OUTCOME, SHAPE_PENDING, SHAPE_RETRY };
static int shape = SHAPE_OUTCOME;

/* fill_record: record i of the bench's shape. */
static void fill_record(delivery_t *d, long i, char *inv, int64_t t)
{
    /* invocation ids as the router makes them: "inv_" + 32 hex digits of a hash, random order */
    uint64_t h1 = (uint64_t)i * 0x9e3779b97f4a7c15ULL ^ 0x5bd1e995ULL;
    uint64_t h2 = h1 * 0xc2b2ae3d27d4eb4fULL + 0x165667b19e3779f9ULL;
    sprintf(inv, "inv_%016" PRIx64 "%016" PRIx64, h1, h2);
    static const char *const whs[16] = {"wh_0",  "wh_1",  "wh_2",  "wh_3", "wh_4",  "wh_5",
                                        "wh_6",  "wh_7",  "wh_8",  "wh_9", "wh_10", "wh_11",
                                        "wh_12", "wh_13", "wh_14", "wh_15"};
    memset(d, 0, sizeof *d);
    d->invocation_id = inv;
    d->webhook_id = (char *)whs[i % 16]; /* must outlive the counts' flush */
    d->project_id = (char *)"prj_1";
    d->event_id = inv + 20; /* unique enough */
    d->event_type = (char *)"opportunity.created";
    d->status = DLV_SUCCEEDED;
    d->attempts = 1;
    d->created_at = t - 20;
    d->updated_at = t;
    d->req_method = (char *)"POST";
    d->req_url = (char *)"http://127.0.0.1:8080/ok/wh_1";
    d->req_headers = headers;
    d->req_body = body;
    d->resp_status = 204;
    d->resp_headers = (char *)"{\"Server\":\"nginx\",\"Date\":\"Wed, 02 Dec 2026 05:00:00 GMT\","
                              "\"Connection\":\"keep-alive\"}";
    d->resp_body = (char *)"";
    d->resp_body_len = 0;
    d->duration_ms = 1;
}

/* write_batches writes n records from first in batches of batch. Returns 0 or -1. */
static int write_batches(store_t *s, long first, long n, int batch)
{
    char err[256], inv[64];
    store_counts_t counts = {0};
    for (long i = 0; i < n; i += batch) {
        if (store_begin(s, err, sizeof err) < 0) goto fail;
        for (long k = i; k < n && k < i + batch; k++) {
            delivery_t d;
            /* the first write of the invocation the next batch finishes */
            if (shape == SHAPE_PENDING) {
                fill_record(&d, first + k + batch, inv, now_ms());
                if (store_delivery_pending(s, d.invocation_id, d.webhook_id, d.project_id,
                                           d.event_id, d.event_type, d.req_body, d.created_at, err,
                                           sizeof err) < 0)
                    goto fail;
            } else if (shape == SHAPE_RETRY) {
                fill_record(&d, first + k + batch, inv, now_ms());
                d.status = DLV_RETRYING;
                d.resp_status = 503;
                d.next_attempt_at = d.updated_at + 30000;
                if (store_counted_record(s, &d, &counts, err, sizeof err) < 0) goto fail;
            }
            fill_record(&d, first + k, inv, now_ms());
            if (shape == SHAPE_RETRY) d.attempts = 2;
            if (store_counted_record(s, &d, &counts, err, sizeof err) < 0) goto fail;
        }
        if (store_counts_flush(s, &counts, err, sizeof err) < 0 ||
            store_commit(s, err, sizeof err) < 0)
            goto fail;
    }
    store_counts_free(&counts);
    return 0;
fail:
    fprintf(stderr, "dlog_write: %s\n", err);
    store_counts_free(&counts);
    return -1;
}

int main(int argc, char **argv)
{
    char path[512], wal[520], err[256];
    store_t *s;
    if (argc < 2) {
        fprintf(stderr, "usage: dlog_write DIR [N [BATCH [PREFILL [full]]]]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 20000;
    int batch = argc > 3 ? atoi(argv[3]) : 100;
    long prefill = argc > 4 ? atol(argv[4]) : 100000;
    int full = argc > 5 && !strcmp(argv[5], "full");
    const char *shape_name = getenv("DLOG_SHAPE") ? getenv("DLOG_SHAPE") : "outcome";
    if (!strcmp(shape_name, "pending"))
        shape = SHAPE_PENDING;
    else if (!strcmp(shape_name, "retry"))
        shape = SHAPE_RETRY;
    else if (strcmp(shape_name, "outcome") != 0) {
        fprintf(stderr, "DLOG_SHAPE: outcome, pending or retry, not \"%s\"\n", shape_name);
        return 2;
    }
    snprintf(path, sizeof path, "%s/hookline.db", argv[1]);
    snprintf(wal, sizeof wal, "%s-wal", path);
    for (size_t i = 0; i < sizeof body - 1; i++)
        body[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
    body[1024] = '\0';
    snprintf(headers, sizeof headers,
             "{\"Content-Type\":\"application/json\",\"User-Agent\":\"hookline/1.0\","
             "\"Authorization\":\"***\",\"webhook-id\":\"inv_0123456789abcdef0123456789abcdef\","
             "\"webhook-timestamp\":\"1764650000\",\"webhook-signature\":\"***\","
             "\"X-Webhook-Attempt\":\"1\",\"X-Webhook-Event\":\"opportunity.created\","
             "\"Content-Length\":\"1024\"}");
    if (store_open(&s, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    store_set_durable(s, 0, err, sizeof err);
    store_wal_manual(s);
    int timed_shape = shape;
    shape = SHAPE_OUTCOME;
    if (write_batches(s, 0, prefill, 1000) < 0) return 1;
    shape = timed_shape;
    if (store_checkpoint(s, err, sizeof err) < 0) fprintf(stderr, "checkpoint: %s\n", err);
    {
        sqlite3 *db;
        sqlite3_open(path, &db);
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    if (full) store_set_durable(s, 1, err, sizeof err);
    long long wal0 = file_size(wal), db0 = file_size(path);
    io_t a = io_read();
    double t0 = now_us();
    statements = 0;
    sqlite3_trace_v2(s->db, SQLITE_TRACE_STMT, count_stmt, NULL);
    if (write_batches(s, prefill, n, batch) < 0) return 1;
    double dt = now_us() - t0;
    sqlite3_trace_v2(s->db, 0, NULL, NULL);
    io_t b = io_read();
    long long wal1 = file_size(wal), db1 = file_size(path);
    printf("dlog_write: %ld deliveries (%s) in batches of %d after %ld (synchronous %s):"
           " %.1f us/record, %.2f statements/record, %.0f WAL bytes/record,"
           " %.2f reads + %.2f writes/record (%.0f + %.0f bytes), db file +%lld bytes\n",
           n, shape_name, batch, prefill, full ? "FULL" : "NORMAL", dt / n, (double)statements / n,
           (double)(wal1 - wal0) / n, (double)(b.syscr - a.syscr) / n,
           (double)(b.syscw - a.syscw) / n, (double)(b.rchar - a.rchar) / n,
           (double)(b.wchar - a.wchar) / n, db1 - db0);
    if (!getenv("DLOG_KEEP_WAL")) store_close(s); /* set: the WAL stays, to be looked at */
    return 0;
}
