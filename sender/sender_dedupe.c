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
    char inv[INVOCATION_ID_LEN];
    uint64_t hash;
    int attempt, used;
} sender_recent_t;

#define SENDER_RECENT_SLOTS (2 * SENDER_RECENT) /* a power of two, half full at most */
#define SENDER_JOB_BUCKETS 8192                 /* chains of running jobs */

/* The remembered attempts: a ring, and an open-addressed table over it (slot: ring index + 1,
 * 0 empty; linear probing, removal by shifting the run back, no tombstones). The running jobs:
 * chained buckets by (invocation, attempt). Hash tables, not trees: a lookup reads one or two
 * cache lines instead of 16 string comparisons. */
struct sender_dedupe {
    sender_recent_t ring[SENDER_RECENT];
    size_t head;
    uint32_t slots[SENDER_RECENT_SLOTS];
    sender_job_t *jobs[SENDER_JOB_BUCKETS];
};

/* dedupe_hash: FNV-1a of the invocation id's len bytes. */
static uint64_t dedupe_hash(const char *inv, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)inv[i]) * 1099511628211ull;
    return h;
}

/* sender_dedupe_get allocates the state on first use; NULL when memory is short (then nothing is
 * deduplicated, which only costs duplicates). */
static struct sender_dedupe *sender_dedupe_get(sender_t *s)
{
    if (!s->dedupe) s->dedupe = calloc(1, sizeof *s->dedupe);
    return s->dedupe;
}

/* job_bucket: the chain of invocation inv. */
static sender_job_t **job_bucket(struct sender_dedupe *d, const char *inv, size_t len)
{
    return &d->jobs[dedupe_hash(inv, len) & (SENDER_JOB_BUCKETS - 1)];
}

sender_job_t *sender_dedupe_find(sender_t *s, const char *inv, int attempt)
{
    if (!s->dedupe) return NULL;
    for (sender_job_t *j = *job_bucket(s->dedupe, inv, strlen(inv)); j; j = j->hnext)
        if (j->attempt == attempt && strcmp(j->inv, inv) == 0) return j;
    return NULL;
}

void sender_dedupe_add(sender_t *s, sender_job_t *j)
{
    struct sender_dedupe *d = sender_dedupe_get(s);
    j->indexed = 0;
    if (!d || sender_dedupe_find(s, j->inv, j->attempt)) return; /* a live twin: not indexed */
    sender_job_t **b = job_bucket(d, j->inv, strlen(j->inv));
    j->hnext = *b;
    *b = j;
    j->indexed = 1;
}

void sender_dedupe_remove(sender_t *s, sender_job_t *j)
{
    if (!j->indexed) return;
    for (sender_job_t **p = job_bucket(s->dedupe, j->inv, strlen(j->inv)); *p; p = &(*p)->hnext)
        if (*p == j) {
            *p = j->hnext;
            break;
        }
    j->indexed = 0;
}

/* recent_slot: the slot holding inv, or the empty slot ending its run. */
static size_t recent_slot(const struct sender_dedupe *d, const char *inv, size_t len, uint64_t h)
{
    size_t i = h & (SENDER_RECENT_SLOTS - 1);
    for (;; i = (i + 1) & (SENDER_RECENT_SLOTS - 1)) {
        uint32_t v = d->slots[i];
        if (!v) return i;
        const sender_recent_t *r = &d->ring[v - 1];
        if (r->hash == h && strncmp(r->inv, inv, len) == 0 && r->inv[len] == 0) return i;
    }
}

/* recent_find: the remembered attempt of inv, or NULL. */
static sender_recent_t *recent_find(struct sender_dedupe *d, const char *inv, size_t len)
{
    if (len >= INVOCATION_ID_LEN) return NULL;
    uint32_t v = d->slots[recent_slot(d, inv, len, dedupe_hash(inv, len))];
    return v ? &d->ring[v - 1] : NULL;
}

/* recent_remove takes ring entry r out of the table, shifting the rest of its run back. */
static void recent_remove(struct sender_dedupe *d, sender_recent_t *r)
{
    const size_t mask = SENDER_RECENT_SLOTS - 1;
    size_t i = recent_slot(d, r->inv, strlen(r->inv), r->hash);
    d->slots[i] = 0;
    for (size_t j = (i + 1) & mask; d->slots[j]; j = (j + 1) & mask) {
        size_t home = d->ring[d->slots[j] - 1].hash & mask;
        /* j's entry may move to the hole at i when its home is not in (i, j] (cyclically) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            d->slots[i] = d->slots[j];
            d->slots[j] = 0;
            i = j;
        }
    }
}

void sender_dedupe_done(sender_t *s, const char *inv, int attempt)
{
    struct sender_dedupe *d = sender_dedupe_get(s);
    size_t len = strlen(inv);
    if (!d || len >= INVOCATION_ID_LEN) return;
    sender_recent_t *r = recent_find(d, inv, len);
    if (r) {
        if (attempt > r->attempt) r->attempt = attempt;
        return;
    }
    size_t at = d->head;
    r = &d->ring[at];
    d->head = (d->head + 1) % SENDER_RECENT;
    if (r->used) recent_remove(d, r);
    memcpy(r->inv, inv, len + 1);
    r->hash = dedupe_hash(inv, len);
    r->attempt = attempt;
    r->used = 1;
    d->slots[recent_slot(d, inv, len, r->hash)] = (uint32_t)at + 1;
}

void sender_dedupe_forget(sender_t *s, const char *inv, size_t len)
{
    sender_recent_t *r = s->dedupe ? recent_find(s->dedupe, inv, len) : NULL;
    if (r) r->attempt = 0; /* a new round of attempts: none of them is done yet */
}

int sender_dedupe_recent(sender_t *s, const char *inv, size_t len, int attempt)
{
    sender_recent_t *r = s->dedupe ? recent_find(s->dedupe, inv, len) : NULL;
    return r && r->attempt >= attempt;
}

void sender_dedupe_close(sender_t *s)
{
    free(s->dedupe);
    s->dedupe = NULL;
}
