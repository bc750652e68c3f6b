/* sched_prune.h - the delivery log's pruning chore: by age and count per webhook, in small
 * batches on a worker thread, so neither the scheduler's loop nor another writer ever waits on
 * it for long. */
#ifndef HL_SCHED_PRUNE_H
#define HL_SCHED_PRUNE_H

#include <stdint.h>
#include <uv.h>

typedef struct sched_prune sched_prune_t;

/* sched_prune_start opens a connection of its own to db_path and starts a pass every
 * SCHED_PRUNE_EVERY_MS (the first after SCHED_PRUNE_FIRST_MS); each batch (at most
 * SCHED_PRUNE_BATCH rows, one short transaction) runs on the loop's thread pool and the next is
 * started from its completion, SCHED_PRUNE_GAP_MS later, while there is more to prune. Rows
 * deleted are added to *pruned (read on the loop). max_age_ms and keep_per_webhook 0 turn a
 * rule off; both 0: nothing starts and *pp is NULL. Returns 0 or a negative errno (logged). */
#define SCHED_PRUNE_EVERY_MS 60000
#define SCHED_PRUNE_FIRST_MS 1000
#define SCHED_PRUNE_BATCH 250
#define SCHED_PRUNE_GAP_MS 20
int sched_prune_start(sched_prune_t **pp, uv_loop_t *loop, const char *db_path, int64_t max_age_ms,
                      int keep_per_webhook, uint64_t *pruned);
/* sched_prune_stop stops the chore; a batch running on the worker finishes first, and the
 * memory goes once it and the timer are closed (the loop must run on). NULL is a no-op. */
void sched_prune_stop(sched_prune_t *p);

#endif
