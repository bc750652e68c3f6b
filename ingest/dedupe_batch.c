/* dedupe_batch.c - the dedupe index's writes: committed keys gathered for batch_ms, then
 * written on the worker thread (each segment's new key records in one write, their slots and
 * filter bits, fdatasync); a segment that took its last key sealed after the batch that writes
 * it. A failed batch goes back to the queue and is retried. */
#include "dedupe.h"

#include "util/crc32c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DD_LOCK_KEYS 256u /* slots put in under one taking of the mutex */
/* dd_on_timer ends a batch window or retries a failed batch. */
static void dd_on_timer(uv_timer_t *t)
{
    dedupe_batch_start(t->data);
}

/* dd_schedule starts the batch window when keys wait and no batch is out. */
static void dd_schedule(ingest_dedupe_t *d)
{
    if (d->closing) {
        if (!d->writing) dedupe_batch_start(d);
        return;
    }
    if (d->writing || !d->qn || uv_is_active((uv_handle_t *)&d->timer)) return;
    uv_timer_start(&d->timer, dd_on_timer, d->o.batch_ms, 0);
}

/* dd_batch_run writes a batch on the worker thread: each segment's new key records in one write
 * (their offsets are consecutive), their slots into the segment's memory and their filter bits,
 * then fdatasync. */
static void dd_batch_run(worker_job_t *job)
{
    dd_batch_t *b = (dd_batch_t *)job;
    b->rc = 0;
    for (int si = 0; si < b->nsegs && b->rc == 0; si++) {
        dd_seg_t *s = b->segs[si];
        uint64_t first = UINT64_MAX, end = 0;
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            if (e->off < first) first = e->off;
            if (e->off + DD_REC + e->len > end) end = e->off + DD_REC + e->len;
        }
        char *buf = malloc((size_t)(end - first));
        if (!buf) {
            b->rc = -ENOMEM;
            snprintf(b->err, sizeof b->err, "out of memory");
            break;
        }
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            char *rec = buf + (e->off - first);
            uint32_t hdr[3] = {e->len, 0, e->time};
            memcpy(rec, hdr, DD_REC);
            memcpy(rec + DD_REC, e->key, e->len);
            hdr[1] = crc32c(0, rec + 8, 4 + (size_t)e->len);
            memcpy(rec + 4, &hdr[1], 4);
        }
        b->rc = dedupe_pwrite_full(s->fd, buf, (size_t)(end - first), first);
        free(buf);
        if (b->rc < 0) {
            snprintf(b->err, sizeof b->err, "%s: writing keys: %s", s->path, strerror(-b->rc));
            break;
        }
        /* the keys are written: their slots and filter bits, here off the loop (the loop finds
         * them in its pending table until this batch is done) */
        unsigned locked = 0; /* the mutex is taken per DD_LOCK_KEYS keys: a lookup (it takes
                              * it only when a filter says maybe) never waits for a whole batch */
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            if (!locked) pthread_mutex_lock(&b->d->mu);
            int rc = dedupe_seg_insert(s, e->hash, e->key, e->len, e->off, e->time);
            if (rc == 0) dd_bloom_add(s, e->hash);
            if (++locked == DD_LOCK_KEYS || rc < 0) {
                pthread_mutex_unlock(&b->d->mu);
                locked = 0;
            }
            if (rc < 0) {
                b->rc = rc;
                snprintf(b->err, sizeof b->err, "%s: out of memory for its slots", s->path);
                break;
            }
        }
        if (locked) pthread_mutex_unlock(&b->d->mu);
        if (b->rc == 0 && b->d->o.do_fsync && fdatasync(s->fd) < 0) {
            b->rc = -errno;
            snprintf(b->err, sizeof b->err, "%s: fdatasync: %s", s->path, strerror(errno));
        }
    }
    if (b->rc == 0 && b->sync_dir && b->d->o.do_fsync && fsync(b->d->dir_fd) < 0) {
        b->rc = -errno;
        snprintf(b->err, sizeof b->err, "%s: fsync: %s", b->d->dir, strerror(errno));
    }
}

/* dd_batch_done takes a batch's result on the loop: written keys leave the pending table (the
 * segments answer for them now); after a failure they go back to the queue, retried later. */
static void dd_batch_done(worker_job_t *job)
{
    dd_batch_t *b = (dd_batch_t *)job;
    ingest_dedupe_t *d = b->d;
    d->writing = 0;
    for (int i = 0; i < b->nsegs; i++) {
        b->segs[i]->busy--;
        if (b->rc == 0 && b->sync_dir) b->segs[i]->created = 0;
    }
    ingest_dedupe_entry_t *e = b->head, *next;
    b->head = NULL;
    if (b->rc < 0) {
        unsigned long held = 0;
        if (log_limit_pass(&d->fail_log, 10000, &held))
            log_error("dedupe: %s; %" PRIu64 " keys wait in memory and are retried (%lu more "
                      "failures not logged)",
                      b->err, b->n, held);
        ingest_dedupe_entry_t **tail = &e;
        while (*tail) {
            (*tail)->seg->entries--;
            (*tail)->seg = NULL;
            tail = &(*tail)->qnext;
        }
        *tail = d->q; /* back at the head, in order */
        if (!d->q) d->qtail = tail;
        d->q = e;
        d->qn += b->n;
        if (!d->closing) {
            uv_timer_start(&d->timer, dd_on_timer, DD_RETRY_MS, 0);
            return;
        }
        /* closing: the keys stay unwritten; the journal puts them back at the next start */
        while ((e = d->q)) {
            d->q = e->qnext;
            dedupe_tab_remove(d, e);
        }
        d->qn = 0;
        d->qtail = &d->q;
        return;
    }
    for (; e; e = next) {
        next = e->qnext;
        e->qnext = NULL;
        dedupe_tab_remove(d, e);
    }
    d->written += b->n;
    if (d->o.on_written) d->o.on_written(d->o.written_arg);
    if (d->qn) dedupe_batch_start(d); /* they waited through this batch already */
}

/* A segment being sealed on the worker thread. */
typedef struct dd_seal {
    worker_job_t job; /* first */
    ingest_dedupe_t *d;
    dd_seg_t *s;
    int rc;
    char err[512];
} dd_seal_t;

/* dd_seal_run writes the slots and the sealed flag, on the worker thread. */
static void dd_seal_run(worker_job_t *job)
{
    dd_seal_t *j = (dd_seal_t *)job;
    j->rc = dedupe_seg_seal(j->s, j->d->o.do_fsync, j->err, sizeof j->err);
}

/* dd_seal_done: the segment is read from disk from now on; its slots leave memory. A failed
 * seal keeps them in memory (the next start rebuilds the segment from its keys). */
static void dd_seal_done(worker_job_t *job)
{
    dd_seal_t *j = (dd_seal_t *)job;
    j->s->busy--;
    if (j->rc < 0) {
        log_error("dedupe: %s; its slots stay in memory", j->err);
    } else {
        dedupe_slots_free(j->s);
    }
    free(j);
}

/* dd_seal_queued submits a seal for each segment that took its last key. */
static void dd_seal_queued(ingest_dedupe_t *d)
{
    for (dd_seg_t *s = d->segs; s; s = s->next) {
        if (!s->to_seal) continue;
        dd_seal_t *j = calloc(1, sizeof *j);
        if (!j) return; /* tried again after the next batch */
        s->to_seal = 0;
        s->busy++;
        j->d = d;
        j->s = s;
        j->job.run = dd_seal_run;
        j->job.done = dd_seal_done;
        worker_submit(d->worker, &j->job);
    }
}

/* dedupe_batch_start hands the queued keys (up to DD_BATCH_MAX) to the worker: each gets its
 * segment, key offset and filter bits here on the loop. */
void dedupe_batch_start(ingest_dedupe_t *d)
{
    uv_timer_stop(&d->timer);
    if (d->writing || !d->qn) return;
    dd_batch_t *b = &d->batch;
    uint64_t now = dd_now(d);
    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    b->nsegs = 0;
    b->sync_dir = 0;
    while (d->q && b->n < DD_BATCH_MAX) {
        ingest_dedupe_entry_t *e = d->q;
        dd_seg_t *s = dedupe_seg_hot(d, e->len, now);
        if (!s) break;
        int si = 0;
        while (si < b->nsegs && b->segs[si] != s)
            si++;
        if (si == b->nsegs) {
            if (b->nsegs == DD_BATCH_SEGS) break;
            b->segs[b->nsegs++] = s;
            s->busy++;
            b->sync_dir |= s->created;
        }
        d->q = e->qnext;
        if (!d->q) d->qtail = &d->q;
        d->qn--;
        e->qnext = NULL;
        e->seg = s;
        e->off = s->key_end;
        s->key_end += DD_REC + e->len;
        s->entries++;
        if (e->time > s->t_last) s->t_last = e->time;

        *b->tail = e;
        b->tail = &e->qnext;
        b->n++;
    }
    if (!b->n) { /* no segment could be created: try again later */
        if (!d->closing) uv_timer_start(&d->timer, dd_on_timer, DD_RETRY_MS, 0);
        return;
    }
    d->writing = 1;
    worker_submit(d->worker, &b->job); /* runs inline once the worker is closed */
    dd_seal_queued(d);                 /* after the batch that writes the last keys */
}

/* dedupe_enqueue queues a committed entry (in the table) for the next batch. */
void dedupe_enqueue(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    e->qnext = NULL;
    *d->qtail = e;
    d->qtail = &e->qnext;
    d->qn++;
    d->queued++;
    dd_schedule(d);
}

void dedupe_batch_init(ingest_dedupe_t *d)
{
    d->batch.d = d;
    d->batch.job.run = dd_batch_run;
    d->batch.job.done = dd_batch_done;
}
