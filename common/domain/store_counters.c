/* store_counters.c - the durable counters behind hook-api's /metrics: added to in the same
 * transaction as the delivery-log row they count, read back in one query per scrape. */
#include "domain/store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double store_duration_bounds[STORE_DURATION_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};
/* The same bounds as the labels the counters table keys them by (%g of each), and "+Inf". */
static const char *const store_duration_labels[STORE_DURATION_BUCKETS + 1] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
};

/* One increment gathered in a store_counts_t: metric and label are static strings, webhook_id
 * the record's (valid until the flush, as store_counted_record's contract says). */
struct store_count {
    const char *metric, *webhook_id, *label;
    int64_t n;
    double sum;
};

static const char sql_cnt_add[] =
    "INSERT INTO counters(metric, webhook_id, label, n, sum) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(metric, webhook_id, label) DO UPDATE SET n = n + excluded.n,"
    " sum = sum + excluded.sum";

const char *store_duration_label(int i, char *buf, size_t n)
{
    if (i < 0 || i > STORE_DURATION_BUCKETS) i = STORE_DURATION_BUCKETS;
    snprintf(buf, n, "%s", store_duration_labels[i]);
    return buf;
}

/* store_counters_stmt: the handle's cached statement *st, compiled at first use. */
static int store_counters_stmt(store_t *s, sqlite3_stmt **st, const char *sql, char *err,
                               size_t errlen)
{
    if (*st) return 0;
    return store_prepare(s, sql, 1, st, err, errlen);
}

/* store_counters_add adds n and sum to one counter. */
static int store_counters_add(store_t *s, const char *metric, const char *webhook_id,
                              const char *label, int64_t n, double sum, char *err, size_t errlen)
{
    int rc = store_counters_stmt(s, &s->st_cnt_add, sql_cnt_add, err, errlen);
    if (rc < 0) return rc;
    sqlite3_stmt *st = s->st_cnt_add;
    store_bind_text(st, 1, metric);
    store_bind_text(st, 2, webhook_id ? webhook_id : "");
    store_bind_text(st, 3, label);
    sqlite3_bind_int64(st, 4, n);
    sqlite3_bind_double(st, 5, sum);
    rc = store_step(s, st, err, errlen, "add to counter");
    sqlite3_clear_bindings(st);
    return rc;
}

/* store_counts_bump counts n (and sum) now, or gathers it in acc for store_counts_flush. */
static int store_counts_bump(store_t *s, store_counts_t *acc, const char *metric,
                             const char *webhook_id, const char *label, double sum, char *err,
                             size_t errlen)
{
    if (!acc) return store_counters_add(s, metric, webhook_id, label, 1, sum, err, errlen);
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 64;
        struct store_count *nv = realloc(acc->v, cap * sizeof *nv);
        if (!nv) return store_failf(s, err, errlen, ENOMEM, "out of memory gathering counters");
        acc->v = nv;
        acc->cap = cap;
    }
    acc->v[acc->n++] = (struct store_count){metric, webhook_id ? webhook_id : "", label, 1, sum};
    return 0;
}

/* store_counters_attempt counts one attempt of the record's webhook: result and duration. */
static int store_counters_attempt(store_t *s, const delivery_t *d, store_counts_t *acc, char *err,
                                  size_t errlen)
{
    double secs = d->duration_ms > 0 ? (double)d->duration_ms / 1000.0 : 0;
    int b = 0;
    while (b < STORE_DURATION_BUCKETS && secs > store_duration_bounds[b])
        b++;
    int rc =
        store_counts_bump(s, acc, "attempts", d->webhook_id,
                          d->status == DLV_SUCCEEDED ? "success" : "failure", secs, err, errlen);
    if (rc == 0)
        rc = store_counts_bump(s, acc, "duration", d->webhook_id, store_duration_labels[b], 0, err,
                               errlen);
    return rc;
}

/* store_counted_write: what store_counted_record does inside its transaction. */
static int store_counted_write(store_t *s, const delivery_t *d, store_counts_t *acc, char *err,
                               size_t errlen)
{
    int prior_attempts = 0, prior_status = -1, changed = 0;
    int rc = store_dlv_write(s, d, &prior_attempts, &prior_status, &changed, err, errlen);
    if (rc < 0 || !changed) return rc; /* refused: it holds newer news */
    /* An attempt already counted (its undecided record, then its decision) is not a new one. */
    if (d->attempts > prior_attempts && d->status != DLV_PENDING)
        rc = store_counters_attempt(s, d, acc, err, errlen);
    if (rc == 0 && d->status == DLV_FAILED && prior_status != DLV_FAILED)
        rc = store_counts_bump(s, acc, "invocations_failed", d->webhook_id, "", 0, err, errlen);
    return rc;
}

int store_counted_record(store_t *s, const delivery_t *d, store_counts_t *acc, char *err,
                         size_t errlen)
{
    /* In the caller's batch, no savepoint of our own (two statement parses per record): the
     * caller rolls the whole batch back on an error, counts and rows together. */
    if (s->in_tx) return store_counted_write(s, d, acc, err, errlen);
    int rc = store_tx_begin(s, err, errlen);
    if (rc < 0) return rc;
    rc = store_counted_write(s, d, NULL, err, errlen);
    int rc2 = store_tx_end(s, rc == 0, err, errlen);
    return rc < 0 ? rc : rc2;
}

/* store_count_cmp orders gathered increments by their counter's key. */
static int store_count_cmp(const void *a, const void *b)
{
    const struct store_count *x = a, *y = b;
    int c = strcmp(x->metric, y->metric);
    if (c == 0) c = strcmp(x->webhook_id, y->webhook_id);
    if (c == 0) c = strcmp(x->label, y->label);
    return c;
}

int store_counts_flush(store_t *s, store_counts_t *acc, char *err, size_t errlen)
{
    int rc = 0;
    if (acc->n) qsort(acc->v, acc->n, sizeof *acc->v, store_count_cmp);
    for (size_t i = 0; rc == 0 && i < acc->n;) {
        size_t j = i + 1;
        int64_t n = acc->v[i].n;
        double sum = acc->v[i].sum;
        for (; j < acc->n && store_count_cmp(&acc->v[i], &acc->v[j]) == 0; j++) {
            n += acc->v[j].n;
            sum += acc->v[j].sum;
        }
        rc = store_counters_add(s, acc->v[i].metric, acc->v[i].webhook_id, acc->v[i].label, n, sum,
                                err, errlen);
        i = j;
    }
    acc->n = 0;
    return rc;
}

void store_counts_free(store_counts_t *acc)
{
    free(acc->v);
    memset(acc, 0, sizeof *acc);
}

int store_counted_lost(store_t *s, const char *invocation_id, const char *webhook_id,
                       delivery_status_t st, int64_t before_ms, const char *why, char *err,
                       size_t errlen)
{
    int rc = store_tx_begin(s, err, errlen);
    if (rc < 0) return rc;
    int changed = store_delivery_lost(s, invocation_id, st, before_ms, why, err, errlen);
    rc = changed;
    if (changed == 1)
        rc = store_counters_add(s, "invocations_failed", webhook_id, "", 1, 0, err, errlen);
    int rc2 = store_tx_end(s, rc >= 0, err, errlen);
    if (rc < 0) return rc;
    return rc2 < 0 ? rc2 : changed;
}

int store_counters_each(store_t *s, int (*cb)(void *arg, const store_counter_t *c), void *arg,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT metric, webhook_id, label, n, sum FROM counters"
                           " ORDER BY metric, webhook_id, label",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    int stop = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_counter_t c = {
            .metric = (const char *)sqlite3_column_text(st, 0),
            .webhook_id = (const char *)sqlite3_column_text(st, 1),
            .label = (const char *)sqlite3_column_text(st, 2),
            .n = sqlite3_column_int64(st, 3),
            .sum = sqlite3_column_double(st, 4),
        };
        if (!c.metric || !c.webhook_id || !c.label) continue;
        if ((stop = cb(arg, &c)) != 0) break;
    }
    if (stop == 0 && rc != SQLITE_DONE) {
        rc = store_fail(s, err, errlen, rc, "read counters");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    return stop < 0 ? stop : 0;
}

int store_retries_pending(store_t *s, int64_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    /* "status < 2" matches the partial index of live records, so only they are counted. */
    int rc = store_prepare(s, "SELECT count(*) FROM delivery_log WHERE status < 2 AND status = 1",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return store_fail(s, err, errlen, rc, "count retrying deliveries");
    return 0;
}
