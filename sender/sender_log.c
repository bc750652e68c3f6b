/* sender_log.c - the delivery log writer: the records of one batch in one SQLite transaction,
 * durable per --fsync, committed on a thread of its own with a connection of its own; a job's
 * JOB_DONE goes upstream only after its record is committed. WAL checkpoints run on a worker
 * thread too, so neither the commits' fsyncs nor copying pages ever stall the POSTs. */
#include "sender.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_RETRY_MS 100 /* after a failed commit (database busy past its timeout) */
/* The log connection's page cache: its indexes' hot pages stay in memory (costs up to this much
 * RSS; SQLite's default of 2 MiB made about 2 preads per delivery). */
#define SENDER_LOG_CACHE_KIB 32768
/* A checkpoint starts on the worker once the WAL holds this many pages (SQLite's default). */
#define LOG_CKPT_PAGES 1000
/* Past this the worker is not keeping up (our commits keep landing while it copies, so the WAL
 * never comes back to its start): checkpoint on the loop once, as SQLite itself would. */
#define LOG_CKPT_INLINE_PAGES 16000

/* sender_log_ckpt_work runs one checkpoint on the worker thread, on its own connection. */
static void sender_log_ckpt_work(uv_work_t *w)
{
    sender_t *s = w->data;
    s->ckpt_rc = store_checkpoint(s->ckpt, s->ckpt_err, sizeof s->ckpt_err);
}

/* sender_log_ckpt_done is back on the loop: report a failure, close when shutting down. */
static void sender_log_ckpt_done(uv_work_t *w, int status)
{
    sender_t *s = w->data;
    s->ckpt_running = 0;
    if (status == 0 && s->ckpt_rc < 0 && s->ckpt_rc != -EBUSY)
        log_warn("delivery log: checkpoint: %s", s->ckpt_err);
    if (s->ckpt_closing) {
        store_close(s->ckpt);
        s->ckpt = NULL;
    }
}

/* sender_log_checkpoint starts a checkpoint when the last commit grew the WAL enough. */
static void sender_log_checkpoint(sender_t *s, store_t *st)
{
    int pages = store_wal_pages(st);
    if (!s->ckpt || pages < LOG_CKPT_PAGES) return;
    if (pages >= LOG_CKPT_INLINE_PAGES && !s->ckpt_running) {
        char err[256];
        int rc = store_checkpoint(st, err, sizeof err);
        if (rc < 0 && rc != -EBUSY) log_warn("delivery log: checkpoint: %s", err);
        return;
    }
    if (s->ckpt_running) return;
    s->ckpt_work.data = s;
    int rc =
        uv_queue_work(daemon_loop(s->d), &s->ckpt_work, sender_log_ckpt_work, sender_log_ckpt_done);
    if (rc == 0)
        s->ckpt_running = 1;
    else
        log_warn("delivery log: cannot start a checkpoint: %s", uv_strerror(rc));
}

/* sender_log_tick writes the batch. */
static void sender_log_tick(uv_timer_t *t)
{
    sender_log_flush(t->data);
}

void sender_log_init(sender_t *s)
{
    TAILQ_INIT(&s->to_log);
    TAILQ_INIT(&s->pend);
    TAILQ_INIT(&s->checks);
    uv_timer_init(daemon_loop(s->d), &s->log_timer);
    s->log_timer.data = s;
    uv_timer_init(daemon_loop(s->d), &s->pend_timer);
    s->pend_timer.data = s;
    char err[256];
    fsync_policy_t policy = daemon_fsync(s->d);
    s->log_durable = policy != FSYNC_OFF;
    s->log_delay_ms = policy == FSYNC_BATCH ? SENDER_LOG_BATCH_MS : 0;
    /* the log's own connection, used on the log's worker thread only */
    int rc = store_open(&s->logdb, daemon_db_path(s->d), err, sizeof err);
    if (rc < 0) { /* SQLite serializes the shared one across threads: slower, still right */
        log_warn("delivery log: no connection of its own (%s); sharing the configuration's", err);
        s->logdb = NULL;
    }
    if ((rc = worker_init(&s->log_worker, daemon_loop(s->d))) < 0) {
        log_error("delivery log: no writer thread (%s); exiting", strerror(-rc));
        exit(1);
    }
    store_t *st = s->logdb ? s->logdb : cfgwatch_store(s->cfg);
    rc = store_set_durable(st, s->log_durable, err, sizeof err);
    if (rc == 0 && s->logdb)
        rc = store_set_durable(cfgwatch_store(s->cfg), s->log_durable, err, sizeof err);
    if (rc < 0) { /* a commit would then not be durable: say so, loudly, and go on */
        log_error("delivery log: cannot make commits durable: %s", err);
        s->log_durable = 0;
    }
    if (!s->logdb) s->logdb = st;
    if (store_set_cache_kib(s->logdb, SENDER_LOG_CACHE_KIB, err, sizeof err) < 0)
        log_warn("delivery log: page cache left at SQLite's default: %s", err);
    rc = store_open(&s->ckpt, daemon_db_path(s->d), err, sizeof err);
    if (rc < 0) { /* SQLite's automatic checkpoints still run, inside our commits */
        log_warn("delivery log: no background checkpoints: %s", err);
        s->ckpt = NULL;
        return;
    }
    store_wal_manual(s->logdb);
    if (s->logdb != cfgwatch_store(s->cfg)) store_wal_manual(cfgwatch_store(s->cfg));
}

/* sender_log_pend_tick writes the pending rows of first attempts running for a while. */
static void sender_log_pend_tick(uv_timer_t *t)
{
    sender_t *s = t->data;
    int64_t now = time_now_ms();
    sender_job_t *j;
    while ((j = TAILQ_FIRST(&s->pend)) && now - j->started_at >= SENDER_PENDING_AFTER_MS)
        sender_log_queue(s, j); /* takes it off the list; writes its pending row */
    if (TAILQ_EMPTY(&s->pend)) uv_timer_stop(t);
}

void sender_log_pending(sender_t *s, sender_job_t *j)
{
    if (j->in_pend) return;
    j->in_pend = 1;
    TAILQ_INSERT_TAIL(&s->pend, j, pend_link); /* in start order: the oldest first */
    if (!uv_is_active((uv_handle_t *)&s->pend_timer))
        uv_timer_start(&s->pend_timer, sender_log_pend_tick, SENDER_PENDING_AFTER_MS / 2,
                       SENDER_PENDING_AFTER_MS / 2);
}

void sender_log_forget(sender_t *s, sender_job_t *j)
{
    if (j->in_pend) {
        TAILQ_REMOVE(&s->pend, j, pend_link);
        j->in_pend = 0;
    }
    if (j->in_log_queue) {
        TAILQ_REMOVE(&s->to_log, j, log_link);
        j->in_log_queue = 0;
    }
}

void sender_log_queue(sender_t *s, sender_job_t *j)
{
    if (j->in_pend) {
        TAILQ_REMOVE(&s->pend, j, pend_link);
        j->in_pend = 0;
    }
    if (j->in_log_queue) return; /* the queued write picks up the new flags */
    j->in_log_queue = 1;
    TAILQ_INSERT_TAIL(&s->to_log, j, log_link);
    if (!uv_is_active((uv_handle_t *)&s->log_timer))
        uv_timer_start(&s->log_timer, sender_log_tick, (uint64_t)s->log_delay_ms, 0);
}

/* A pending row to write: copies, since its job may be dropped while the commit runs. */
typedef struct sender_log_pend {
    char *inv, *webhook_id, *project_id, *event_id, *event_type, *body;
    int64_t created_at;
} sender_log_pend_t;

/* One commit on the log's worker thread: the pending rows (copied) and the settled jobs, which
 * nothing else touches until the commit is back (SETTLED and HELD are their last states). */
struct sender_log_batch {
    worker_job_t job; /* first: the worker hands this pointer back */
    sender_t *s;
    sender_log_pend_t *pend;
    size_t npend;
    sender_job_t **jobs;
    size_t njobs;
    delivery_t *undecided; /* copies: the job goes on changing while the commit runs */
    size_t nundecided;
    int rc, submitted;
    char err[256];
};

/* sender_log_batch_free frees a batch and its copies (not the jobs). */
static void sender_log_batch_free(struct sender_log_batch *b)
{
    for (size_t i = 0; i < b->npend; i++) {
        sender_log_pend_t *p = &b->pend[i];
        free(p->inv);
        free(p->webhook_id);
        free(p->project_id);
        free(p->event_id);
        free(p->event_type);
        free(p->body);
    }
    free(b->pend);
    free(b->jobs);
    for (size_t i = 0; i < b->nundecided; i++)
        store_delivery_free(&b->undecided[i]);
    free(b->undecided);
    free(b);
}

/* sender_log_batch_run writes one batch in one transaction, on the worker thread; the counters
 * of /metrics are added in that same transaction (store_counted_record), so a crash keeps an
 * attempt's record and its count together or neither. */
static void sender_log_batch_run(worker_job_t *job)
{
    struct sender_log_batch *b = (struct sender_log_batch *)job;
    store_t *st = b->s->logdb;
    store_counts_t counts = {0};
    int rc = store_begin(st, b->err, sizeof b->err);
    for (size_t i = 0; rc == 0 && i < b->npend; i++) {
        sender_log_pend_t *p = &b->pend[i];
        rc = store_delivery_pending(st, p->inv, p->webhook_id, p->project_id, p->event_id,
                                    p->event_type, p->body, p->created_at, b->err, sizeof b->err);
    }
    for (size_t i = 0; rc == 0 && i < b->nundecided; i++)
        rc = store_counted_record(st, &b->undecided[i], &counts, b->err, sizeof b->err);
    for (size_t i = 0; rc == 0 && i < b->njobs; i++) {
        sender_job_t *j = b->jobs[i];
        if (j->writes & JOB_W_WAITING)
            rc = store_delivery_waiting(st, j->inv, j->webhook_id, j->project_id, j->event_id,
                                        j->event_type, j->body, j->created_at, j->wait_next, b->err,
                                        sizeof b->err);
        if (rc == 0 && sender_fsm_final(j))
            rc = store_counted_record(st, &j->rec, &counts, b->err, sizeof b->err);
    }
    if (rc == 0) rc = store_counts_flush(st, &counts, b->err, sizeof b->err);
    store_counts_free(&counts);
    if (rc == 0) rc = store_commit(st, b->err, sizeof b->err);
    if (rc < 0) store_rollback(st);
    b->rc = rc;
}

/* sender_log_batch_done is back on the loop: the jobs' records are committed (durable per
 * --fsync), so their JOB_DONE goes upstream; a failed commit is tried again. */
static void sender_log_batch_done(worker_job_t *job)
{
    struct sender_log_batch *b = (struct sender_log_batch *)job;
    sender_t *s = b->s;
    if (b->rc < 0) {
        log_warn("delivery log: batch not written (%s); trying again in %d ms", b->err,
                 LOG_RETRY_MS);
        b->rc = 0;
        b->submitted = 0;
        if (!s->log_closing) {
            uv_timer_start(&s->log_timer, sender_log_tick, LOG_RETRY_MS, 0);
            return; /* kept as s->log_batch: the tick submits it again */
        }
        /* closing: give up; upstream still holds these jobs and hands them out again */
        s->log_batch = NULL;
        for (size_t i = 0; i < b->njobs; i++) {
            b->jobs[i]->up = NULL;
            sender_job_finish(s, b->jobs[i]);
        }
        sender_log_batch_free(b);
        return;
    }
    s->log_batch = NULL;
    s->stats.log_batches++;
    sender_log_checkpoint(s, s->logdb);
    for (size_t i = 0; i < b->njobs; i++)
        sender_fsm_committed(s, b->jobs[i]);
    sender_log_batch_free(b);
    if (!TAILQ_EMPTY(&s->to_log) && !uv_is_active((uv_handle_t *)&s->log_timer))
        uv_timer_start(&s->log_timer, sender_log_tick, (uint64_t)s->log_delay_ms, 0);
}

/* sender_log_take moves what is queued into a new batch. Returns NULL when out of memory (the
 * queue stays for the next try). */
static struct sender_log_batch *sender_log_take(sender_t *s)
{
    size_t n = 0;
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->to_log, log_link)
    n++;
    struct sender_log_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->pend = calloc(n, sizeof *b->pend)) || !(b->jobs = calloc(n, sizeof *b->jobs)) ||
        !(b->undecided = calloc(n, sizeof *b->undecided))) {
        if (b) sender_log_batch_free(b);
        return NULL;
    }
    b->s = s;
    b->job.run = sender_log_batch_run;
    b->job.done = sender_log_batch_done;
    TAILQ_FOREACH(j, &s->to_log, log_link)
    {
        if (j->writes & JOB_W_PENDING) {
            sender_log_pend_t *p = &b->pend[b->npend];
            p->inv = strdup(j->inv);
            p->webhook_id = strdup(j->webhook_id);
            /* NULL when the webhook had gone before the attempt: the store's, if any */
            p->project_id = j->project_id ? strdup(j->project_id) : NULL;
            p->event_id = strdup(j->event_id);
            p->event_type = strdup(j->event_type);
            p->body = strdup(j->body);
            p->created_at = j->created_at;
            b->npend++;
            if (!p->inv || !p->webhook_id || !p->event_id || !p->event_type || !p->body ||
                (j->project_id && !p->project_id)) {
                sender_log_batch_free(b);
                return NULL;
            }
        }
        if (j->state == JOB_SETTLED || j->state == JOB_HELD) {
            b->jobs[b->njobs++] = j; /* its outcome's record supersedes an undecided one */
        } else if (j->writes & JOB_W_UNDECIDED) {
            delivery_t *d = &b->undecided[b->nundecided];
            if (store_delivery_copy(d, &j->rec) < 0) {
                sender_log_batch_free(b);
                return NULL;
            }
            d->status = DLV_RETRYING;
            d->next_attempt_at = 0; /* the scheduler has not decided: none known */
            b->nundecided++;
        }
    }
    while ((j = TAILQ_FIRST(&s->to_log))) {
        TAILQ_REMOVE(&s->to_log, j, log_link);
        j->in_log_queue = 0;
        j->writes &= ~(unsigned)(JOB_W_PENDING | JOB_W_UNDECIDED);
    }
    return b;
}

void sender_log_flush(sender_t *s)
{
    if (!s->log_batch) {
        if (TAILQ_EMPTY(&s->to_log)) return;
        if (!(s->log_batch = sender_log_take(s))) {
            log_warn("delivery log: out of memory taking a batch; trying again in %d ms",
                     LOG_RETRY_MS);
            uv_timer_start(&s->log_timer, sender_log_tick, LOG_RETRY_MS, 0);
            return;
        }
    } else if (s->log_batch->submitted) {
        return; /* under way: its completion starts the next one */
    }
    s->log_batch->submitted = 1;
    worker_submit(s->log_worker, &s->log_batch->job); /* inline once the worker is closed */
}

/* sender_log_closed: the timer lives inside sender_t. */
static void sender_log_closed(uv_handle_t *h)
{
    (void)h;
}

void sender_log_close(sender_t *s)
{
    s->log_closing = 1;
    worker_close(s->log_worker); /* the commit under way ends, and its jobs are finished */
    sender_log_flush(s);         /* what is left, on this thread now */
    if (s->logdb != cfgwatch_store(s->cfg)) store_close(s->logdb);
    s->logdb = NULL;
    uv_close((uv_handle_t *)&s->log_timer, sender_log_closed);
    uv_close((uv_handle_t *)&s->pend_timer, sender_log_closed);
    if (s->ckpt_running) {
        s->ckpt_closing = 1; /* the loop runs on until the worker is back; it closes then */
    } else {
        store_close(s->ckpt);
        s->ckpt = NULL;
    }
}
