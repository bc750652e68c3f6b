/* committer.c - group commit on a libuv loop: callers append to the journal and wait here; one
 * write+fdatasync per batch runs on the committer's worker thread (a timer ends a batch window,
 * or the end of the loop iteration for always and off), then every waiter's callback runs on the
 * loop in registration order. Compaction reads old segments on the same thread. */
#include "util/committer.h"

#include "util/log.h"
#include "util/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMITTER_BATCH_MS_DEFAULT 10
#define COMMITTER_OOM_RETRY_MS 100
#define COMMITTER_LOG_EVERY_MS 10000 /* a failing disk is reported at most this often */

typedef struct committer_waiter {
    committer_cb cb;
    void *arg;
} committer_waiter_t;

/* The batch out on the worker thread and the waiters it answers. */
typedef struct committer_sync {
    worker_job_t job; /* first: the worker hands this pointer back */
    committer_t *c;
    journal_batch_t *b;
    committer_waiter_t *w;
    size_t nw;
    int rc;
    char err[512];
} committer_sync_t;

struct committer_moves {
    worker_job_t job; /* first */
    committer_t *c;
    uint32_t seg;
    journal_copy_t *copies;
    committer_move_t *moves;
    size_t n, cap, nmoves;
};

struct committer {
    uv_loop_t *loop;
    journal_t *j;
    fsync_policy_t policy;
    unsigned batch_ms;
    uv_timer_t timer; /* batch: fires batch_ms after the first waiter; also OOM retries */
    uv_check_t check; /* always/off: end of the loop iteration */
    uv_idle_t idle;   /* always/off: keeps the poll from blocking while waiters exist */
    worker_t *worker;
    committer_waiter_t *w; /* waiting for the next batch */
    size_t nw, capw;
    committer_sync_t sync;
    int syncing;
    log_limit_t fail_log;
    uv_timer_t compact_timer;
    size_t keep;
    committer_visit_fn visit;
    committer_relocate_fn relocate;
    void *visit_arg;
    committer_moves_t *moving; /* the compaction pass under way */
    int open_handles;
    int closing;
};

static void committer_run(committer_t *c);

/* committer_on_timer ends a batch window (or retries after running out of memory). */
static void committer_on_timer(uv_timer_t *t)
{
    committer_run(t->data);
}

/* committer_answer calls n waiters with status and frees their array. */
static void committer_answer(committer_waiter_t *w, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        w[i].cb(w[i].arg, status);
    free(w);
}

/* committer_sync_run is the worker thread's half of a sync. */
static void committer_sync_run(worker_job_t *job)
{
    committer_sync_t *s = (committer_sync_t *)job;
    s->rc = journal_batch_write(s->b, s->c->policy != FSYNC_OFF, s->err, sizeof s->err);
}

/* committer_sync_done takes a batch's result on the loop and answers its waiters. */
static void committer_sync_done(worker_job_t *job)
{
    committer_sync_t *s = (committer_sync_t *)job;
    committer_t *c = s->c;
    journal_batch_finish(c->j, s->b, s->rc);
    committer_waiter_t *w = s->w, *later = NULL;
    size_t nw = s->nw, nlater = 0;
    s->b = NULL;
    s->w = NULL;
    c->syncing = 0;
    if (s->rc < 0) {
        unsigned long held = 0;
        if (log_limit_pass(&c->fail_log, COMMITTER_LOG_EVERY_MS, &held))
            log_error("%s (%lu more failed syncs not logged)", s->err, held);
        /* the rollback also dropped whatever was appended after the batch was taken */
        later = c->w;
        nlater = c->nw;
        c->w = NULL;
        c->nw = c->capw = 0;
    }
    committer_answer(w, nw, s->rc);
    committer_answer(later, nlater, s->rc);
    if (c->nw && !c->syncing) committer_run(c); /* they waited through this one already */
}

/* committer_run starts a sync of everything appended so far, for the waiters registered so far;
 * while one is out, the next starts from its completion. */
static void committer_run(committer_t *c)
{
    uv_timer_stop(&c->timer);
    uv_check_stop(&c->check);
    uv_idle_stop(&c->idle);
    if (c->syncing) return;
    journal_batch_t *b = journal_batch_take(c->j);
    committer_waiter_t *w = c->w;
    size_t nw = c->nw;
    if (!b && journal_buffered(c->j)) { /* out of memory: try again soon */
        if (c->closing) {
            c->w = NULL;
            c->nw = c->capw = 0;
            committer_answer(w, nw, -ENOMEM);
            return;
        }
        log_error("committer: out of memory starting a journal sync; trying again in %d ms",
                  COMMITTER_OOM_RETRY_MS);
        uv_timer_start(&c->timer, committer_on_timer, COMMITTER_OOM_RETRY_MS, 0);
        return;
    }
    c->w = NULL;
    c->nw = c->capw = 0;
    if (!b) { /* nothing buffered: what they wait for is durable already */
        committer_answer(w, nw, 0);
        return;
    }
    c->syncing = 1;
    c->sync.b = b;
    c->sync.w = w;
    c->sync.nw = nw;
    worker_submit(c->worker, &c->sync.job); /* runs inline once the worker is closed */
}

/* committer_on_check ends the loop iteration for always/off. */
static void committer_on_check(uv_check_t *h)
{
    committer_run(h->data);
}

/* committer_on_idle does nothing: being active is its job. */
static void committer_on_idle(uv_idle_t *h) {}

/* committer_on_close frees the committer once its last handle is closed. */
static void committer_on_close(uv_handle_t *h)
{
    committer_t *c = h->data;
    if (--c->open_handles == 0) {
        free(c->w);
        free(c);
    }
}

void committer_move(committer_moves_t *m, journal_pos_t pos)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        journal_copy_t *nc = realloc(m->copies, cap * sizeof *nc);
        if (!nc) return; /* this one stays where it is; the next pass tries again */
        m->copies = nc;
        m->cap = cap;
    }
    journal_copy_t *cp = &m->copies[m->n];
    memset(cp, 0, sizeof *cp);
    cp->pos = pos;
    if (journal_copy_prepare(m->c->j, cp) == 0) m->n++;
}

/* committer_moves_free frees a compaction pass and the records it read. */
static void committer_moves_free(committer_moves_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->copies[i].rec);
    free(m->copies);
    free(m->moves);
    free(m);
}

/* committer_compact_run reads the records to move, on the worker thread. */
static void committer_compact_run(worker_job_t *job)
{
    committer_moves_t *m = (committer_moves_t *)job;
    for (size_t i = 0; i < m->n; i++)
        journal_copy_read(&m->copies[i]);
}

/* committer_compact_synced: the copies are durable (or dropped by a failed sync). */
static void committer_compact_synced(void *arg, int status)
{
    committer_moves_t *m = arg;
    committer_t *c = m->c;
    if (status < 0) {
        /* the copies are gone with the failed batch (journal.h); the originals stay live */
        log_error("journal compaction up to segment %" PRIu32 " failed: %s", m->seg,
                  strerror(-status));
    } else {
        for (size_t i = 0; i < m->nmoves; i++)
            m->moves[i].held = 0;
        c->relocate(c->visit_arg, m->moves, m->nmoves, 1);
        size_t moved = 0;
        for (size_t i = 0; i < m->nmoves; i++) {
            committer_move_t *mv = &m->moves[i];
            journal_release(c->j, mv->held ? mv->old : mv->new);
            moved += mv->held != 0;
        }
        log_info("journal compaction: %zu live records moved out of segments up to %" PRIu32, moved,
                 m->seg);
    }
    c->moving = NULL;
    committer_moves_free(m);
}

/* committer_compact_done appends a copy of each record the owner still holds, on the loop. */
static void committer_compact_done(worker_job_t *job)
{
    committer_moves_t *m = (committer_moves_t *)job;
    committer_t *c = m->c;
    char err[512];
    journal_unpin(c->j);
    m->moves = calloc(m->n ? m->n : 1, sizeof *m->moves);
    if (!m->moves) {
        log_error("journal compaction up to segment %" PRIu32 ": out of memory", m->seg);
        c->moving = NULL;
        committer_moves_free(m);
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        journal_copy_t *cp = &m->copies[i];
        if (cp->rc < 0) {
            log_error("journal compaction: record at segment %" PRIu32 " offset %" PRIu64
                      " unreadable (%s); left where it is",
                      journal_pos_segment(cp->pos), cp->off, strerror(-cp->rc));
            continue;
        }
        m->moves[m->nmoves++] = (committer_move_t){.old = cp->pos, .rec = cp->rec, .len = cp->len};
    }
    c->relocate(c->visit_arg, m->moves, m->nmoves, 0);
    /* appended only now, after the owner said it still holds them: a marker that ended a
     * record before this point precedes its copy in the journal, so replay cannot revive it */
    size_t kept = 0;
    for (size_t i = 0; i < m->nmoves; i++) {
        committer_move_t mv = m->moves[i];
        if (!mv.held) continue;
        if (journal_append(c->j, mv.rec, mv.len, 1, &mv.new, err, sizeof err) < 0) {
            log_error("journal compaction up to segment %" PRIu32 " stopped after %zu records: %s",
                      m->seg, kept, err);
            break;
        }
        m->moves[kept++] = mv;
    }
    m->nmoves = kept;
    if (kept == 0) {
        c->moving = NULL;
        committer_moves_free(m);
        return;
    }
    committer_after(c, committer_compact_synced, m);
}

int committer_compact_now(committer_t *c)
{
    uint32_t seg;
    if (!c->visit || c->moving || c->closing) return 0;
    if (!journal_compact_candidate(c->j, c->keep, &seg)) return 0;
    committer_moves_t *m = calloc(1, sizeof *m);
    if (!m) {
        log_error("journal compaction: out of memory");
        return -ENOMEM;
    }
    m->c = c;
    m->seg = seg;
    m->job.run = committer_compact_run;
    m->job.done = committer_compact_done;
    journal_pin(c->j); /* the segments read must stay until the reads are done (the owner may
                        * release records while it names them, or during the reads) */
    c->visit(c->visit_arg, seg, m);
    if (m->n == 0) {
        committer_moves_free(m);
        journal_unpin(c->j);
        return 0;
    }
    c->moving = m;
    worker_submit(c->worker, &m->job);
    return (int)m->n;
}

/* committer_on_compact is the compaction timer. */
static void committer_on_compact(uv_timer_t *t)
{
    committer_compact_now(t->data);
}

void committer_compact_every(committer_t *c, unsigned interval_ms, size_t keep,
                             committer_visit_fn visit, committer_relocate_fn relocate, void *arg)
{
    c->keep = keep;
    c->visit = visit;
    c->relocate = relocate;
    c->visit_arg = arg;
    uv_timer_start(&c->compact_timer, committer_on_compact, interval_ms, interval_ms);
}

int committer_init(committer_t **cp, uv_loop_t *loop, journal_t *j, fsync_policy_t policy,
                   unsigned batch_ms)
{
    *cp = NULL;
    if (policy != FSYNC_ALWAYS && policy != FSYNC_BATCH && policy != FSYNC_OFF) return -EINVAL;
    committer_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    int rc = worker_init(&c->worker, loop);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->loop = loop;
    c->j = j;
    c->policy = policy;
    c->batch_ms = batch_ms ? batch_ms : COMMITTER_BATCH_MS_DEFAULT;
    c->sync.c = c;
    c->sync.job.run = committer_sync_run;
    c->sync.job.done = committer_sync_done;
    /* on Unix these inits cannot fail */
    uv_timer_init(loop, &c->timer);
    uv_check_init(loop, &c->check);
    uv_idle_init(loop, &c->idle);
    uv_timer_init(loop, &c->compact_timer);
    uv_unref((uv_handle_t *)&c->compact_timer);
    c->timer.data = c->check.data = c->idle.data = c->compact_timer.data = c;
    c->open_handles = 4;
    *cp = c;
    return 0;
}

void committer_after(committer_t *c, committer_cb cb, void *arg)
{
    if (c->nw == c->capw) {
        size_t cap = c->capw ? c->capw * 2 : 16;
        committer_waiter_t *nw = realloc(c->w, cap * sizeof *nw);
        if (!nw) {
            log_error("committer: out of memory queuing a commit waiter");
            cb(arg, -ENOMEM);
            return;
        }
        c->w = nw;
        c->capw = cap;
    }
    c->w[c->nw++] = (committer_waiter_t){cb, arg};
    if (c->closing) { /* nothing will end the batch any more: the worker is gone */
        committer_run(c);
        return;
    }
    if (c->syncing) return; /* the sync's completion starts the next one */
    if (c->policy == FSYNC_BATCH) {
        if (!uv_is_active((uv_handle_t *)&c->timer))
            uv_timer_start(&c->timer, committer_on_timer, c->batch_ms, 0);
    } else if (!uv_is_active((uv_handle_t *)&c->check)) {
        uv_check_start(&c->check, committer_on_check);
        uv_idle_start(&c->idle, committer_on_idle);
    }
}

void committer_flush_now(committer_t *c)
{
    if (c->nw || journal_buffered(c->j)) committer_run(c);
}

int committer_busy(const committer_t *c)
{
    return c->syncing || c->nw > 0 || c->moving != NULL;
}

void committer_close(committer_t *c)
{
    if (!c || c->closing) return;
    c->closing = 1;
    /* the sync or reads under way finish first; their completions run here, and what they
     * queue runs inline from now on */
    worker_close(c->worker);
    /* callbacks may append and wait again; a bounded number of rounds (out of memory could
     * otherwise keep records buffered for ever) */
    for (int round = 0; round < 1000 && (c->nw || journal_buffered(c->j)); round++)
        committer_run(c);
    uv_close((uv_handle_t *)&c->timer, committer_on_close);
    uv_close((uv_handle_t *)&c->check, committer_on_close);
    uv_close((uv_handle_t *)&c->idle, committer_on_close);
    uv_close((uv_handle_t *)&c->compact_timer, committer_on_close);
}
