/* sched_index.h - the pending retries by invocation id: entries carved from chunks, found
 * through a hash table. */
#ifndef HL_SCHED_INDEX_H
#define HL_SCHED_INDEX_H

#include "sched_entry.h"

typedef struct sched_index {
    sched_entry_t **slot; /* open addressing, linear probing; cap a power of two, <= half full */
    size_t cap, n;
    uint64_t seed;
    struct sched_chunk *chunks; /* entries are carved from these, never moved */
    size_t chunk_used;          /* entries handed out from the newest chunk */
    sched_entry_t *free;        /* entries given back, linked through at.free */
} sched_index_t;

/* sched_index_init: an empty index (allocates nothing yet). */
void sched_index_init(sched_index_t *ix);
/* sched_index_find returns the entry of invocation inv (n bytes) or NULL. */
sched_entry_t *sched_index_find(sched_index_t *ix, const char *inv, size_t n);
/* sched_index_add adds a zeroed entry (state ENTRY_NEW) for inv, which must not be present, and
 * returns it in *ep; it stays at the same address until removed. Returns 0 or -ENOMEM. */
int sched_index_add(sched_index_t *ix, const char *inv, size_t n, sched_entry_t **ep);
/* sched_index_remove takes e out and frees it (its id too). */
void sched_index_remove(sched_index_t *ix, sched_entry_t *e);
/* sched_index_next: iteration, `for (size_t i = 0; (e = sched_index_next(ix, &i));)`; the
 * index must not change meanwhile. */
sched_entry_t *sched_index_next(sched_index_t *ix, size_t *cursor);
size_t sched_index_count(const sched_index_t *ix);
/* sched_index_close frees every entry and the index's memory. */
void sched_index_close(sched_index_t *ix);

#endif
