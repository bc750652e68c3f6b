/* sched_prune.c - delivery-log pruning off the scheduler's loop: a timer starts a pass, each
 * batch is one store_prune_step on a worker thread with its own connection, and its completion
 * (back on the loop) counts, logs and schedules the next batch. */
#include "sched_prune.h"
#include "domain/store.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_PRUNE_BUSY_MS 1000    /* on the worker: waiting for another writer stalls no loop */
#define SCHED_PRUNE_CKPT_PAGES 1000 /* SQLite's own automatic checkpoint threshold */

struct sched_prune {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    store_t *store; /* used by the worker while a batch runs, by no one else */
    int64_t max_age_ms;
    int keep;
    uint64_t *pruned;
    store_prune_t cursor;
    int in_pass, running, stopping, timer_closed;
    int rc; /* the batch's result: rows deleted or -errno */
    char err[256];
};

static void sched_prune_tick(uv_timer_t *t);

/* sched_prune_free: once the timer is closed and no batch runs. */
static void sched_prune_maybe_free(sched_prune_t *p)
{
    if (!p->stopping || p->running || !p->timer_closed) return;
    store_prune_end(&p->cursor);
    store_close(p->store);
    free(p);
}

/* sched_prune_batch runs on the worker thread: one step, one short transaction at most. */
static void sched_prune_batch(uv_work_t *w)
{
    sched_prune_t *p = w->data;
    p->rc = store_prune_step(p->store, &p->cursor, p->err, sizeof p->err);
    /* Our commits do not checkpoint (store_wal_manual): the deletes fill the WAL, and copying
     * it back belongs here, on the worker, after the transaction, not inside its commit. */
    if (store_wal_pages(p->store) >= SCHED_PRUNE_CKPT_PAGES) {
        char err[256];
        int rc = store_checkpoint(p->store, err, sizeof err);
        if (rc < 0 && rc != -EBUSY && p->rc >= 0) {
            p->rc = rc;
            snprintf(p->err, sizeof p->err, "%s", err);
        }
    }
}

/* sched_prune_batch_done is back on the loop: count, and go on or end the pass. */
static void sched_prune_batch_done(uv_work_t *w, int status)
{
    sched_prune_t *p = w->data;
    p->running = 0;
    if (p->stopping) {
        sched_prune_maybe_free(p);
        return;
    }
    if (status == 0 && p->rc > 0) *p->pruned += (uint64_t)p->rc;
    if (status < 0 || p->rc < 0) { /* the next pass starts over */
        log_warn("delivery log: pruning stopped for this pass: %s",
                 status < 0 ? uv_strerror(status) : p->err);
        p->in_pass = 0;
    } else if (p->cursor.done) {
        if (p->cursor.deleted)
            log_info("delivery log: pruned %lld old records", (long long)p->cursor.deleted);
        p->in_pass = 0;
    }
    if (p->in_pass) /* more to go: the next batch after a gap other writers can use */
        uv_timer_start(&p->timer, sched_prune_tick, SCHED_PRUNE_GAP_MS, SCHED_PRUNE_EVERY_MS);
    else
        uv_timer_start(&p->timer, sched_prune_tick, SCHED_PRUNE_EVERY_MS, SCHED_PRUNE_EVERY_MS);
}

/* sched_prune_tick starts a pass (or its next batch) on the worker. */
static void sched_prune_tick(uv_timer_t *t)
{
    sched_prune_t *p = t->data;
    if (p->running) return;
    if (!p->in_pass) {
        store_prune_end(&p->cursor);
        store_prune_begin(&p->cursor, p->max_age_ms, p->keep, SCHED_PRUNE_BATCH);
        p->in_pass = 1;
    }
    p->work.data = p;
    int rc = uv_queue_work(p->loop, &p->work, sched_prune_batch, sched_prune_batch_done);
    if (rc < 0) {
        log_warn("delivery log: cannot start pruning: %s", uv_strerror(rc));
        return; /* the repeating timer tries again */
    }
    p->running = 1;
}

int sched_prune_start(sched_prune_t **pp, uv_loop_t *loop, const char *db_path, int64_t max_age_ms,
                      int keep_per_webhook, uint64_t *pruned)
{
    char err[256];
    sched_prune_t *p;
    int rc;
    *pp = NULL;
    if (max_age_ms <= 0 && keep_per_webhook <= 0) return 0;
    if (!(p = calloc(1, sizeof *p))) {
        log_error("delivery log: pruning: out of memory");
        return -ENOMEM;
    }
    if ((rc = store_open(&p->store, db_path, err, sizeof err)) < 0) {
        log_error("delivery log: pruning: %s", err);
        free(p);
        return rc;
    }
    store_set_busy(p->store, SCHED_PRUNE_BUSY_MS, 1);
    store_wal_manual(p->store);
    p->loop = loop;
    p->max_age_ms = max_age_ms;
    p->keep = keep_per_webhook;
    p->pruned = pruned;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, sched_prune_tick, SCHED_PRUNE_FIRST_MS, SCHED_PRUNE_EVERY_MS);
    *pp = p;
    return 0;
}

/* sched_prune_timer_closed frees the chore once no batch runs. */
static void sched_prune_timer_closed(uv_handle_t *h)
{
    sched_prune_t *p = h->data;
    p->timer_closed = 1;
    sched_prune_maybe_free(p);
}

void sched_prune_stop(sched_prune_t *p)
{
    if (!p || p->stopping) return;
    p->stopping = 1;
    uv_close((uv_handle_t *)&p->timer, sched_prune_timer_closed);
}
