/* committer.c - group commit on a libuv loop: callers append to the journal and wait here; one
 * write+fdatasync per batch (a timer for batch, the end of the loop iteration for always and off)
 * then every waiter's callback in registration order. */
#include "util/committer.h"

#include "util/log.h"

#include <errno.h>
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
    int open_handles;
    int closing;
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
    c->timer.data = c->check.data = c->idle.data = c;
    c->open_handles = 3;
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
}
