/* ingest.h - hook-ingest's shared state: the journal of accepted events, the routers they are
 * handed to, the producers they come from. */
#ifndef HL_INGEST_H
#define HL_INGEST_H

#include "domain/cfgwatch.h"
#include "util/committer.h"
#include "util/daemon.h"
#include "util/dispatch.h"
#include "util/journal.h"
#include "util/tree.h"
#include <jansson.h>
#include <stdint.h>

typedef struct ingest {
    daemon_t *d;
    cfgwatch_t *cfg;
    journal_t *journal;
    committer_t *commit;
    dispatch_t *routers;
    uint64_t next_seq; /* journal id of the next accepted event */
    unsigned window;   /* events in flight per router */
    TAILQ_HEAD(producer_list, producer) producers;
    struct {
        uint64_t lines_accepted, lines_rejected, events, unrouted, delivered, replayed;
    } stats;
} ingest_t;

/* One accepted event until a router acknowledges it. */
typedef struct ingest_event {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    uint64_t seq;
    journal_pos_t pos;
    char *js; /* normalized event JSON */
    size_t jslen;
} ingest_event_t;

/* ingest_queue_open opens the journal under DATA/journal, replays what was accepted and not yet
 * acknowledged by a router, and queues it. Returns 0 or a negative errno (logged). */
int ingest_queue_open(ingest_t *in);
/* ingest_queue_append journals one normalized event (not yet durable: wait for the committer)
 * and returns the event to hand over once it is. Returns 0 or a negative errno with err. */
int ingest_queue_append(ingest_t *in, const json_t *event, ingest_event_t **out, char *err,
                        size_t errlen);
/* ingest_queue_accepted hands a durable event to the routers. */
void ingest_queue_accepted(ingest_t *in, ingest_event_t *ev);
/* ingest_queue_unappend takes back the just-appended record of ev and frees ev (the second of a
 * transition's pair failed to append: the pair is accepted whole or not at all). */
void ingest_queue_unappend(ingest_t *in, ingest_event_t *ev);
/* ingest_queue_discard forgets an event whose commit failed (its record was cut off). */
void ingest_queue_discard(ingest_t *in, ingest_event_t *ev);
/* ingest_queue_router_up/down/ack: router connections and their acknowledgements. */
void ingest_queue_router_up(ingest_t *in, conn_t *c);
void ingest_queue_router_down(ingest_t *in, conn_t *c);
void ingest_queue_ack(ingest_t *in, conn_t *c, uint64_t seq);
/* ingest_repair_log ends the delivery log's pending records whose events the replayed journal
 * no longer holds (ingest_repair.c); call after ingest_queue_open, before routers connect. */
void ingest_repair_log(ingest_t *in);
/* ingest_queue_close frees every event and closes the journal. */
void ingest_queue_close(ingest_t *in);

/* Producer streams (JSON Lines or msgpack) on run/ingest.sock. */
void ingest_producer_data(ingest_t *in, conn_t *c, const char *data, size_t n);
void ingest_producer_down(ingest_t *in, conn_t *c);
/* ingest_producer_pause_all stops reading every producer (drain). */
void ingest_producer_pause_all(ingest_t *in);
/* ingest_producer_quiet: 1 when no producer waits for a reply or has output queued. */
int ingest_producer_quiet(ingest_t *in);

#endif
