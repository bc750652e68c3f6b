/* scheduler.h - hook-scheduler's state: pending retries (in memory: id, attempt, due time and
 * where the full job lies in the journal), the timer of the earliest, and the senders. */
#ifndef HL_SCHEDULER_H
#define HL_SCHEDULER_H

#include "domain/payload.h"
#include "domain/retry.h"
#include "domain/store.h"
#include "util/committer.h"
#include "util/daemon.h"
#include "util/dispatch.h"
#include "util/journal.h"
#include "util/log.h"
#include "sched_heap.h"
#include "sched_index.h"
#include "util/tree.h"

typedef struct sched_ack sched_ack_t;

typedef struct scheduler {
    daemon_t *d;
    retry_policy_t policy;
    unsigned window;
    store_t *store;
    journal_t *journal;
    committer_t *commit;
    dispatch_t *senders;
    sched_index_t index; /* every pending retry */
    sched_heap_t due;    /* those waiting for their time (ENTRY_WAITING) */
    uint64_t next_gen;
    uv_timer_t timer;
    struct sched_prune *prune; /* the delivery log's pruning chore (sched_prune.c) */
    int64_t log_max_age_ms;    /* delivery-log pruning: records older than this go (0: never) */
    int log_keep;              /* and at most this many per webhook are kept (0: no limit) */
    TAILQ_HEAD(sched_ack_list, sched_ack) acks; /* replies waiting for the journal */
    struct sched_ack_list stalled; /* replies whose sync failed, journaled again later */
    uv_timer_t stall_timer;
    unsigned stall_ms; /* the current wait before journaling them again (0: none failed) */
    log_limit_t stall_log;
    struct {
        uint64_t retries, failed, dispatched, done, redelivered, replayed, pruned, deferred;
    } stats;
} scheduler_t;

/* sched_queue_open opens the journal under DATA/journal and rebuilds the pending retries.
 * Returns 0 or a negative errno (logged). */
int sched_queue_open(scheduler_t *s);
/* sched_queue_retry handles a sender's RETRY (a failed attempt) and replies once durable. */
void sched_queue_retry(scheduler_t *s, conn_t *c, const msgpack_object *f);
/* sched_queue_redeliver handles hookctl's REDELIVER. */
void sched_queue_redeliver(scheduler_t *s, conn_t *c, const msgpack_object *f);
/* sched_queue_resume journals attempt `attempt` of the job in f (REDELIVER's keys), due now,
 * with no one to answer (sched_repair.c); the delivery log says retrying once it is durable. */
void sched_queue_resume(scheduler_t *s, const msgpack_object *f, int attempt);
/* sched_repair_log repairs the delivery log after the replay (sched_repair.c). */
void sched_repair_log(scheduler_t *s);
/* sched_queue_done handles a sender's JOB_DONE. */
void sched_queue_done(scheduler_t *s, conn_t *c, uint64_t seq);
/* sched_queue_peer_down forgets replies that had that connection to go to. */
void sched_queue_peer_down(scheduler_t *s, conn_t *c);
/* sched_queue_idle: 1 when nothing is in flight at a sender and no reply waits (drain). */
int sched_queue_idle(scheduler_t *s);
/* sched_queue_pending: the number of pending retries. */
size_t sched_queue_pending(scheduler_t *s);
/* sched_queue_close frees everything (after a final sync). */
void sched_queue_close(scheduler_t *s);

#endif
