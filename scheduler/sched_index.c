/* sched_index.c - the pending retries by invocation id. Entries are carved from chunks of
 * SCHED_INDEX_CHUNK (no malloc header each) and found through an open-addressing hash table of
 * entry pointers with linear probing, kept at most half full. Memory only grows: chunks and
 * table are kept for the next peak and freed by sched_index_close. */
#include "sched_id.h"
#include "sched_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_INDEX_CHUNK 1024   /* entries per chunk: 56 KiB, below malloc's mmap threshold */
#define SCHED_INDEX_MIN_CAP 1024 /* slots of the first table */

_Static_assert(sizeof(sched_entry_t) <= 56, "a pending retry stays within its memory budget");

struct sched_chunk {
    struct sched_chunk *next;
    sched_entry_t e[SCHED_INDEX_CHUNK];
};

void sched_index_init(sched_index_t *ix)
{
    memset(ix, 0, sizeof *ix);
    arc4random_buf(&ix->seed, sizeof ix->seed);
}

/* sched_index_home is the slot where e's probe starts. */
static size_t sched_index_home(const sched_index_t *ix, const sched_entry_t *e)
{
    return (size_t)sched_id_hash(e, ix->seed) & (ix->cap - 1);
}

/* sched_index_lookup returns the slot of the entry whose id equals k's, or of the empty slot
 * that ends its probe. The table must have a slot. */
static size_t sched_index_lookup(const sched_index_t *ix, const sched_entry_t *k)
{
    size_t i = sched_index_home(ix, k);
    while (ix->slot[i] && !sched_id_equal(ix->slot[i], k))
        i = (i + 1) & (ix->cap - 1);
    return i;
}

/* sched_index_grow doubles the table (or makes the first) and places every entry again. */
static int sched_index_grow(sched_index_t *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : SCHED_INDEX_MIN_CAP;
    sched_entry_t **slot = calloc(cap, sizeof *slot);
    if (!slot) return -ENOMEM;
    sched_index_t old = *ix;
    ix->slot = slot;
    ix->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i]) ix->slot[sched_index_lookup(ix, old.slot[i])] = old.slot[i];
    free(old.slot);
    return 0;
}

/* sched_index_alloc takes a zeroed entry from the free list or the newest chunk. */
static sched_entry_t *sched_index_alloc(sched_index_t *ix)
{
    sched_entry_t *e = ix->free;
    if (e) {
        ix->free = e->at.free;
    } else {
        if (!ix->chunks || ix->chunk_used == SCHED_INDEX_CHUNK) {
            struct sched_chunk *c = malloc(sizeof *c);
            if (!c) return NULL;
            c->next = ix->chunks;
            ix->chunks = c;
            ix->chunk_used = 0;
        }
        e = &ix->chunks->e[ix->chunk_used++];
    }
    memset(e, 0, sizeof *e);
    return e;
}

sched_entry_t *sched_index_find(sched_index_t *ix, const char *inv, size_t n)
{
    sched_entry_t k;
    char buf[INVOCATION_ID_LEN];
    if (!ix->n || sched_id_key(&k, inv, n, buf) < 0) return NULL;
    return ix->slot[sched_index_lookup(ix, &k)];
}

int sched_index_add(sched_index_t *ix, const char *inv, size_t n, sched_entry_t **ep)
{
    if ((ix->n + 1) * 2 > ix->cap && sched_index_grow(ix) < 0) return -ENOMEM;
    sched_entry_t *e = sched_index_alloc(ix);
    if (!e) return -ENOMEM;
    if (sched_id_set(e, inv, n) < 0) {
        e->at.free = ix->free;
        ix->free = e;
        return -ENOMEM;
    }
    ix->slot[sched_index_lookup(ix, e)] = e;
    ix->n++;
    *ep = e;
    return 0;
}

void sched_index_remove(sched_index_t *ix, sched_entry_t *e)
{
    size_t mask = ix->cap - 1, i = sched_index_lookup(ix, e);
    /* Backward-shift deletion: pull later entries of the probe run into the hole, so lookups
     * never need tombstones. An entry at j whose home h lies cyclically in (i, j] stays. */
    for (size_t j = (i + 1) & mask; ix->slot[j]; j = (j + 1) & mask) {
        size_t h = sched_index_home(ix, ix->slot[j]);
        if (i <= j ? (i < h && h <= j) : (i < h || h <= j)) continue;
        ix->slot[i] = ix->slot[j];
        i = j;
    }
    ix->slot[i] = NULL;
    ix->n--;
    sched_id_clear(e);
    e->at.free = ix->free;
    ix->free = e;
}

sched_entry_t *sched_index_next(sched_index_t *ix, size_t *cursor)
{
    while (*cursor < ix->cap) {
        sched_entry_t *e = ix->slot[(*cursor)++];
        if (e) return e;
    }
    return NULL;
}

size_t sched_index_count(const sched_index_t *ix)
{
    return ix->n;
}

void sched_index_close(sched_index_t *ix)
{
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slot[i]) sched_id_clear(ix->slot[i]);
    free(ix->slot);
    struct sched_chunk *c, *next;
    for (c = ix->chunks; c; c = next) {
        next = c->next;
        free(c);
    }
    memset(ix, 0, sizeof *ix);
}
