/* store_repair.c - the stale live records of the delivery log, loaded for the stage that owns
 * them, matched against what it holds, and ended when nothing holds them any more. */
#include "domain/store_repair.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPAIR_BUSY_MS 2000 /* per try; once at start, so a few seconds of waiting is fine */
#define REPAIR_BUSY_TRIES 3

typedef struct repair_row {
    delivery_t d;
    int held;
} repair_row_t;

struct store_repair {
    store_t *store;
    delivery_status_t st;
    int64_t before_ms;
    repair_row_t *rows;
    size_t n, cap;
    int oom;
};

/* repair_collect copies one record into the array. */
static int repair_collect(void *arg, const delivery_t *d)
{
    store_repair_t *r = arg;
    repair_row_t *row;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        repair_row_t *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows) goto oom;
        r->rows = rows;
        r->cap = cap;
    }
    row = &r->rows[r->n];
    memset(row, 0, sizeof *row);
    /* Only what a repair needs: the identity and the body to send again. */
    row->d.invocation_id = strdup(d->invocation_id ? d->invocation_id : "");
    row->d.webhook_id = strdup(d->webhook_id ? d->webhook_id : "");
    row->d.event_id = strdup(d->event_id ? d->event_id : "");
    row->d.event_type = strdup(d->event_type ? d->event_type : "");
    row->d.req_body = d->req_body ? strdup(d->req_body) : NULL;
    row->d.status = d->status;
    row->d.attempts = d->attempts;
    row->d.created_at = d->created_at;
    row->d.updated_at = d->updated_at;
    row->d.next_attempt_at = d->next_attempt_at;
    r->n++;
    if (!row->d.invocation_id || !row->d.webhook_id || !row->d.event_id || !row->d.event_type ||
        (d->req_body && !row->d.req_body))
        goto oom;
    return 0;
oom:
    r->oom = 1;
    return -ENOMEM;
}

/* repair_cmp orders records by event id, then invocation id. */
static int repair_cmp(const void *a, const void *b)
{
    const repair_row_t *x = a, *y = b;
    int c = strcmp(x->d.event_id, y->d.event_id);
    return c ? c : strcmp(x->d.invocation_id, y->d.invocation_id);
}

int store_repair_open(store_repair_t **rp, const char *db_path, delivery_status_t st,
                      int64_t before_ms, char *err, size_t errlen)
{
    store_repair_t *r = calloc(1, sizeof *r);
    int rc;
    *rp = NULL;
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->st = st;
    r->before_ms = before_ms;
    if ((rc = store_open(&r->store, db_path, err, errlen)) < 0) {
        free(r);
        return rc;
    }
    store_set_busy(r->store, REPAIR_BUSY_MS, REPAIR_BUSY_TRIES);
    rc = store_deliveries_stale(r->store, st, before_ms, repair_collect, r, err, errlen);
    if (rc < 0 || r->oom) {
        if (r->oom) snprintf(err, errlen, "out of memory loading the live records");
        store_repair_close(r);
        return rc < 0 ? rc : -ENOMEM;
    }
    if (r->n) qsort(r->rows, r->n, sizeof *r->rows, repair_cmp);
    *rp = r;
    return 0;
}

size_t store_repair_count(const store_repair_t *r)
{
    return r->n;
}

const delivery_t *store_repair_row(const store_repair_t *r, size_t i, int *held)
{
    if (held) *held = r->rows[i].held;
    return &r->rows[i].d;
}

void store_repair_hold_row(store_repair_t *r, size_t i)
{
    r->rows[i].held = 1;
}

void store_repair_hold_event(store_repair_t *r, const char *event_id, size_t n)
{
    char key[256];
    size_t lo = 0, hi = r->n;
    if (!r->n || n >= sizeof key) return; /* event ids are at most 128 bytes (+ ".won") */
    memcpy(key, event_id, n);
    key[n] = '\0';
    while (lo < hi) { /* the first record whose event id is not below key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(r->rows[mid].d.event_id, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < r->n && strcmp(r->rows[lo].d.event_id, key) == 0; lo++)
        r->rows[lo].held = 1;
}

int store_repair_fail(store_repair_t *r, size_t i, const char *why, char *err, size_t errlen)
{
    return store_counted_lost(r->store, r->rows[i].d.invocation_id, r->rows[i].d.webhook_id, r->st,
                              r->before_ms, why, err, errlen);
}

void store_repair_close(store_repair_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        store_delivery_free(&r->rows[i].d);
    free(r->rows);
    store_close(r->store);
    free(r);
}
