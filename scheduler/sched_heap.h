/* sched_heap.h - the waiting retries as a binary min-heap by (due, id); each entry knows its
 * slot (at.slot), so any one can be taken out in O(log n). */
#ifndef HL_SCHED_HEAP_H
#define HL_SCHED_HEAP_H

#include "sched_entry.h"

typedef struct sched_heap {
    sched_entry_t **v;
    size_t n, cap;
} sched_heap_t;

void sched_heap_init(sched_heap_t *h);
/* sched_heap_reserve makes room for n entries so that pushes up to n cannot fail. Returns 0 or
 * -ENOMEM. */
int sched_heap_reserve(sched_heap_t *h, size_t n);
/* sched_heap_push adds e (room must be reserved). */
void sched_heap_push(sched_heap_t *h, sched_entry_t *e);
/* sched_heap_top returns the earliest entry or NULL. */
sched_entry_t *sched_heap_top(const sched_heap_t *h);
/* sched_heap_remove takes e (in the heap) out. */
void sched_heap_remove(sched_heap_t *h, sched_entry_t *e);
void sched_heap_close(sched_heap_t *h);

#endif
