/* committer.c - group commit on a libuv loop: callers append to the journal and wait here; one
 * write+fdatasync per batch (a timer for batch, the end of the loop iteration for always and off)
 * then every waiter's callback in registration order. */
#include "util/committer.h"

#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMITTER_BATCH_MS_DEFAULT 10

typedef struct committer_waiter {
    committer_cb cb;
    void *arg;
} committer_waiter_t;

struct committer {
    uv_loop_t *loop;
    journal_t *j;
    fsync_policy_t policy;
    unsigned batch_ms;
    uv_timer_t timer; /* batch: fires batch_ms after the first waiter */
    uv_check_t check; /* always/off: end of the loop iteration */
    uv_idle_t idle;   /* always/off: keeps the poll from blocking while waiters exist */
    committer_waiter_t *w;
    size_t nw, capw;
    uv_timer_t compact_timer;
    size_t keep;
    committer_visit_fn visit;
    void *visit_arg;
    int open_handles;
    int closing;
};

struct committer_moves {
    committer_t *c;
    journal_pos_t **fields, *newpos;
    size_t n, cap;
    int failed;
    char err[256];
};

/* committer_run syncs the journal and calls every waiter registered so far. */
static void committer_run(committer_t *c)
{
    char err[512] = "";
    committer_waiter_t *w = c->w;
    size_t nw = c->nw;
    uv_timer_stop(&c->timer);
    uv_check_stop(&c->check);
    uv_idle_stop(&c->idle);
    /* detach the batch first: callbacks may append and wait again, for the next sync */
    c->w = NULL;
    c->nw = c->capw = 0;
    int r = journal_sync(c->j, c->policy != FSYNC_OFF, err, sizeof err);
    if (r < 0) log_error("%s", err);
    for (size_t i = 0; i < nw; i++)
        w[i].cb(w[i].arg, r);
    free(w);
}

/* committer_on_timer ends a batch window. */
static void committer_on_timer(uv_timer_t *t)
{
    committer_run(t->data);
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

void committer_move(committer_moves_t *m, journal_pos_t *pos)
{
    if (m->failed) return;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        journal_pos_t **f = realloc(m->fields, cap * sizeof *f);
        journal_pos_t *np = f ? realloc(m->newpos, cap * sizeof *np) : NULL;
        if (f) m->fields = f;
        if (np) m->newpos = np;
        if (!f || !np) {
            m->failed = -ENOMEM;
            snprintf(m->err, sizeof m->err, "out of memory");
            return;
        }
        m->cap = cap;
    }
    int rc = journal_move(m->c->j, *pos, &m->newpos[m->n], m->err, sizeof m->err);
    if (rc < 0) {
        m->failed = rc;
        return;
    }
    m->fields[m->n++] = pos;
}

int committer_compact_now(committer_t *c)
{
    uint32_t seg;
    if (!c->visit) return 0;
    committer_run(c); /* nothing of anyone else's may be pending when the copies are synced */
    if (!journal_compact_candidate(c->j, c->keep, &seg)) return 0;
    committer_moves_t m = {.c = c};
    c->visit(c->visit_arg, seg, &m);
    char err[512] = "";
    int rc = journal_sync(c->j, c->policy != FSYNC_OFF, err, sizeof err);
    if (rc < 0) {
        /* The copies are cut off again (journal_sync's contract); the originals stay. */
        log_error("journal compaction up to segment %" PRIu32 " failed: %s", seg, err);
    } else {
        for (size_t i = 0; i < m.n; i++) {
            journal_release(c->j, *m.fields[i]);
            *m.fields[i] = m.newpos[i];
        }
        rc = (int)m.n;
        if (m.failed) /* the ones moved before the failure stay moved */
            log_error("journal compaction up to segment %" PRIu32 " stopped after %zu records: %s",
                      seg, m.n, m.err);
        else
            log_info("journal compaction: %zu live records moved out of segments up to %" PRIu32,
                     m.n, seg);
    }
    free(m.fields);
    free(m.newpos);
    return rc;
}

/* committer_on_compact is the compaction timer. */
static void committer_on_compact(uv_timer_t *t)
{
    committer_compact_now(t->data);
}

void committer_compact_every(committer_t *c, unsigned interval_ms, size_t keep,
                             committer_visit_fn visit, void *arg)
{
    c->keep = keep;
    c->visit = visit;
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
    c->loop = loop;
    c->j = j;
    c->policy = policy;
    c->batch_ms = batch_ms ? batch_ms : COMMITTER_BATCH_MS_DEFAULT;
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
    if (c->closing) { /* nothing will end the batch any more */
        committer_run(c);
        return;
    }
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
    committer_run(c);
}

void committer_close(committer_t *c)
{
    if (!c || c->closing) return;
    committer_run(c);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->timer, committer_on_close);
    uv_close((uv_handle_t *)&c->check, committer_on_close);
    uv_close((uv_handle_t *)&c->idle, committer_on_close);
    uv_close((uv_handle_t *)&c->compact_timer, committer_on_close);
}
