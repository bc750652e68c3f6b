/* ingest.h - hook-ingest's shared state: the journal of accepted events, the routers they are
 * handed to, the producers they come from. */
#ifndef HL_INGEST_H
#define HL_INGEST_H

#include "domain/cfgwatch.h"
#include "ingest_dedupe.h"
#include "util/committer.h"
#include "util/daemon.h"
#include "util/dispatch.h"
#include "util/journal.h"
#include "util/log.h"
#include "util/tree.h"
#include <jansson.h>
#include <stdint.h>

#define INGEST_WINDOW_BYTES_DEFAULT (8u << 20) /* event bytes in flight per router */

/* The events no router holds yet, in hand-out order: only their journal positions (8 bytes
 * each), the bodies stay on disk until sent. A ring that grows by doubling and shrinks when
 * mostly empty. */
typedef struct ingest_ring {
    journal_pos_t *v;
    size_t cap, head, n;
} ingest_ring_t;

/* Journal positions whose release waits until the dedupe index holds every key queued before
 * (need): an event's record stays in the journal until its key is durable in the index, so a
 * key lost by a crash is always put back from the journal. */
typedef struct ingest_defer {
    journal_pos_t pos;
    uint64_t need;
} ingest_defer_t;

typedef struct ingest {
    daemon_t *d;
    cfgwatch_t *cfg;
    journal_t *journal;
    committer_t *commit;
    dispatch_t *routers;
    uint64_t next_seq;      /* journal id of the next accepted event */
    uint64_t first_seq;     /* the first accepted since this start (older ones were replayed) */
    unsigned window;        /* events in flight per router */
    size_t window_bytes;    /* event bytes in flight per router (--window-bytes) */
    unsigned dedupe_window; /* seconds (--dedupe-window); 0: off */
    ingest_dedupe_t *dedupe;
    ingest_defer_t *defer; /* ring of acknowledged records waiting for the index */
    size_t defer_cap, defer_head, defer_n;
    ingest_ring_t waiting;
    size_t inflight_bytes; /* record bytes of the events the dispatcher holds */
    size_t backlog_peak;   /* most events waiting or in flight since memory was last trimmed */
    size_t bytes_peak;     /* most inflight_bytes since then */
    size_t unsynced_bytes; /* appended, not yet answered by the committer */
    int sync_paused;       /* producers paused until the committer catches up */
    uv_timer_t throttle;   /* while a producer is paused for its unread replies */
    int throttle_init;
    TAILQ_HEAD(producer_list, producer) producers;
    log_limit_t refused_log; /* lines refused by a failed journal sync */
    struct {
        uint64_t lines_accepted, lines_rejected, events, unrouted, delivered, replayed, paused;
        uint64_t duplicates;
    } stats;
} ingest_t;

/* ingest_queue_open opens the journal under DATA/journal, replays what was accepted and not yet
 * acknowledged by a router, and queues it. Returns 0 or a negative errno (logged). */
int ingest_queue_open(ingest_t *in);
/* ingest_queue_append journals one normalized event (not yet durable: wait for the committer)
 * and returns its position and record size. dkey (dlen bytes, may be NULL) is its dedupe key and
 * at_s its accept time, kept in the record so that a restart puts the key back into the index.
 * Returns 0 or a negative errno with err. */
int ingest_queue_append(ingest_t *in, const json_t *event, const char *dkey, size_t dlen,
                        uint64_t at_s, journal_pos_t *pos, size_t *bytes, char *err, size_t errlen);
/* ingest_queue_accepted queues a durable event (by its position) for the routers. */
void ingest_queue_accepted(ingest_t *in, journal_pos_t pos);
/* ingest_queue_unappend takes back the just-appended record at pos (the second of a
 * transition's pair failed to append: the pair is accepted whole or not at all). */
void ingest_queue_unappend(ingest_t *in, journal_pos_t pos);
/* ingest_queue_router_up/down/ack: router connections and their acknowledgements. */
void ingest_queue_router_up(ingest_t *in, conn_t *c);
void ingest_queue_router_down(ingest_t *in, conn_t *c);
void ingest_queue_ack(ingest_t *in, conn_t *c, uint64_t seq);
/* ingest_queue_foreach calls cb with the journal position of every event ingest holds (accepted,
 * not yet acknowledged by a router): waiting or in flight. */
void ingest_queue_foreach(ingest_t *in, void (*cb)(void *arg, journal_pos_t pos), void *arg);
/* ingest_queue_waiting: events accepted and not yet handed to a router. */
size_t ingest_queue_waiting(ingest_t *in);
/* ingest_repair_log ends the delivery log's pending records whose events the replayed journal
 * no longer holds (ingest_repair.c); call after ingest_queue_open, before routers connect. */
void ingest_repair_log(ingest_t *in);
/* ingest_queue_close frees every event and closes the journal. */
void ingest_queue_close(ingest_t *in);

/* ingest_producer_init sets up the producers' throttle; ingest_producer_close closes it. */
void ingest_producer_init(ingest_t *in);
void ingest_producer_close(ingest_t *in);
/* Producer streams (JSON Lines or msgpack) on run/ingest.sock. */
void ingest_producer_data(ingest_t *in, conn_t *c, const char *data, size_t n);
void ingest_producer_down(ingest_t *in, conn_t *c);
/* ingest_producer_pause_all stops reading every producer (drain). */
void ingest_producer_pause_all(ingest_t *in);
/* ingest_producer_paused: producers not read now because ingest cannot keep up with them. */
size_t ingest_producer_paused(ingest_t *in);
/* ingest_producer_quiet: 1 when no producer waits for a reply or has output queued. */
int ingest_producer_quiet(ingest_t *in);

#endif
