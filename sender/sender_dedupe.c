/* sender_dedupe.c - copies of work this sender already has. Upstream hands a job out again when
 * its connection to a sender drops (a stage was killed), and a router's event is routed again
 * whole when its acknowledgement was lost, jobs done long ago included: a JOB for an invocation
 * attempt still running here for an upstream that went away is adopted by the new upstream
 * instead of being sent a second time, and one whose attempt finished here (its outcome durable:
 * the success in the delivery log, or the failure in the scheduler's hands) is answered at once.
 * Senders get the same invocation from every upstream (dispatch keys), so the copy lands where
 * the first one is. */
#include "domain/payload.h"
#include "sender.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finished attempts remembered (about 5 MiB), the oldest forgotten first; a copy of one not
 * remembered (forgotten, done before a restart, or by another sender) is checked against the
 * delivery log (sender_check.c). */
#define SENDER_RECENT 65536

/* One remembered finished attempt. */
typedef struct sender_recent {
    RB_ENTRY(sender_recent) node;
    char inv[INVOCATION_ID_LEN];
    int attempt, used;
} sender_recent_t;

RB_HEAD(sender_job_tree, sender_job);

/* sender_job_cmp orders jobs by (invocation, attempt). */
static int sender_job_cmp(sender_job_t *a, sender_job_t *b)
{
    int c = strcmp(a->inv, b->inv);
    return c ? c : (a->attempt > b->attempt) - (a->attempt < b->attempt);
}
RB_GENERATE_STATIC(sender_job_tree, sender_job, by_inv, sender_job_cmp)

/* sender_recent_cmp orders remembered attempts by invocation. */
static int sender_recent_cmp(sender_recent_t *a, sender_recent_t *b)
{
    return strcmp(a->inv, b->inv);
}
RB_HEAD(sender_recent_tree, sender_recent);
RB_GENERATE_STATIC(sender_recent_tree, sender_recent, node, sender_recent_cmp)

/* The remembered attempts: a ring, and a tree over it. */
struct sender_dedupe {
    sender_recent_t ring[SENDER_RECENT];
    size_t head;
    struct sender_recent_tree tree;
    struct sender_job_tree jobs;
};

/* sender_dedupe_get allocates the state on first use; NULL when memory is short (then nothing is
 * deduplicated, which only costs duplicates). */
static struct sender_dedupe *sender_dedupe_get(sender_t *s)
{
    if (!s->dedupe && (s->dedupe = calloc(1, sizeof *s->dedupe))) {
        RB_INIT(&s->dedupe->tree);
        RB_INIT(&s->dedupe->jobs);
    }
    return s->dedupe;
}

void sender_dedupe_add(sender_t *s, sender_job_t *j)
{
    struct sender_dedupe *d = sender_dedupe_get(s);
    j->indexed = d && !RB_INSERT(sender_job_tree, &d->jobs, j); /* a live twin: not indexed */
}

void sender_dedupe_remove(sender_t *s, sender_job_t *j)
{
    if (!j->indexed) return;
    RB_REMOVE(sender_job_tree, &s->dedupe->jobs, j);
    j->indexed = 0;
}

sender_job_t *sender_dedupe_find(sender_t *s, const char *inv, int attempt)
{
    if (!s->dedupe) return NULL;
    sender_job_t key = {.inv = (char *)inv, .attempt = attempt};
    return RB_FIND(sender_job_tree, &s->dedupe->jobs, &key);
}

void sender_dedupe_done(sender_t *s, const char *inv, int attempt)
{
    struct sender_dedupe *d = sender_dedupe_get(s);
    if (!d || strlen(inv) >= INVOCATION_ID_LEN) return;
    sender_recent_t key;
    snprintf(key.inv, sizeof key.inv, "%s", inv);
    sender_recent_t *r = RB_FIND(sender_recent_tree, &d->tree, &key);
    if (r) {
        if (attempt > r->attempt) r->attempt = attempt;
        return;
    }
    r = &d->ring[d->head];
    d->head = (d->head + 1) % SENDER_RECENT;
    if (r->used) RB_REMOVE(sender_recent_tree, &d->tree, r);
    memcpy(r->inv, key.inv, sizeof r->inv);
    r->attempt = attempt;
    r->used = 1;
    RB_INSERT(sender_recent_tree, &d->tree, r);
}

void sender_dedupe_forget(sender_t *s, const char *inv, size_t len)
{
    if (!s->dedupe || len >= INVOCATION_ID_LEN) return;
    sender_recent_t key;
    memcpy(key.inv, inv, len);
    key.inv[len] = 0;
    sender_recent_t *r = RB_FIND(sender_recent_tree, &s->dedupe->tree, &key);
    if (r) r->attempt = 0; /* a new round of attempts: none of them is done yet */
}

int sender_dedupe_recent(sender_t *s, const char *inv, size_t len, int attempt)
{
    if (!s->dedupe || len >= INVOCATION_ID_LEN) return 0;
    sender_recent_t key;
    memcpy(key.inv, inv, len);
    key.inv[len] = 0;
    sender_recent_t *r = RB_FIND(sender_recent_tree, &s->dedupe->tree, &key);
    return r && r->attempt >= attempt;
}

void sender_dedupe_close(sender_t *s)
{
    free(s->dedupe);
    s->dedupe = NULL;
}
