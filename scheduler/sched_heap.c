/* sched_heap.c - the waiting retries as a binary min-heap of entry pointers by (due, id), the
 * order in which they are handed to senders. Each entry keeps its slot in at.slot. */
#include "sched_heap.h"
#include "sched_id.h"

#include <errno.h>
#include <stdlib.h>

#define SCHED_HEAP_MIN_CAP 1024

void sched_heap_init(sched_heap_t *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

/* sched_heap_before: a is due before b (ties by id, so the order is the same on every run). */
static int sched_heap_before(const sched_entry_t *a, const sched_entry_t *b)
{
    if (a->due != b->due) return a->due < b->due;
    return sched_id_cmp(a, b) < 0;
}

/* sched_heap_set puts e at slot i. */
static void sched_heap_set(sched_heap_t *h, size_t i, sched_entry_t *e)
{
    h->v[i] = e;
    e->at.slot = i;
}

/* sched_heap_up moves the entry at i towards the root while it is due before its parent. */
static void sched_heap_up(sched_heap_t *h, size_t i)
{
    sched_entry_t *e = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!sched_heap_before(e, h->v[p])) break;
        sched_heap_set(h, i, h->v[p]);
        i = p;
    }
    sched_heap_set(h, i, e);
}

/* sched_heap_down moves the entry at i towards the leaves while a child is due before it. */
static void sched_heap_down(sched_heap_t *h, size_t i)
{
    sched_entry_t *e = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && sched_heap_before(h->v[c + 1], h->v[c])) c++;
        if (!sched_heap_before(h->v[c], e)) break;
        sched_heap_set(h, i, h->v[c]);
        i = c;
    }
    sched_heap_set(h, i, e);
}

int sched_heap_reserve(sched_heap_t *h, size_t n)
{
    if (n <= h->cap) return 0;
    size_t cap = h->cap ? h->cap : SCHED_HEAP_MIN_CAP;
    while (cap < n)
        cap *= 2;
    sched_entry_t **v = realloc(h->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

void sched_heap_push(sched_heap_t *h, sched_entry_t *e)
{
    sched_heap_set(h, h->n++, e);
    sched_heap_up(h, h->n - 1);
}

sched_entry_t *sched_heap_top(const sched_heap_t *h)
{
    return h->n ? h->v[0] : NULL;
}

void sched_heap_remove(sched_heap_t *h, sched_entry_t *e)
{
    size_t i = e->at.slot;
    sched_entry_t *last = h->v[--h->n];
    if (i == h->n) return; /* it was the last slot */
    sched_heap_set(h, i, last);
    /* The moved entry may belong above or below the hole. */
    if (i > 0 && sched_heap_before(last, h->v[(i - 1) / 2]))
        sched_heap_up(h, i);
    else
        sched_heap_down(h, i);
}

void sched_heap_close(sched_heap_t *h)
{
    free(h->v);
    sched_heap_init(h);
}
