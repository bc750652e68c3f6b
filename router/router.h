/* router.h - hook-router's state: events taken from ingest, and the invocation jobs built from
 * them, handed to senders until each is done. */
#ifndef HL_ROUTER_H
#define HL_ROUTER_H

#include "domain/cfgwatch.h"
#include "domain/payload.h"
#include "util/daemon.h"
#include "util/dispatch.h"
#include "util/tree.h"
#include <stdint.h>

#define ROUTER_MAX_BODY_DEFAULT (256 * 1024)
#define ROUTER_MAX_BODY_LIMIT (15 * 1024 * 1024) /* a JOB frame must fit in 16 MiB */

typedef struct router_event router_event_t;

typedef struct router {
    daemon_t *d;
    cfgwatch_t *cfg;
    dispatch_t *senders;
    unsigned window;
    size_t max_body; /* --max-body-bytes: a larger body is recorded failed, never sent */
    TAILQ_HEAD(router_event_list, router_event) events;
    size_t nevents;
    struct {
        uint64_t events, unrouted, unmatched, jobs, jobs_done, events_done, bad, oversized;
    } stats;
} router_t;

/* One event from ingest until every invocation built from it is done. */
struct router_event {
    TAILQ_ENTRY(router_event) link;
    conn_t *ingest; /* NULL once that connection is gone: the ack has nowhere to go */
    uint64_t ingest_seq;
    unsigned remaining;
};

/* One invocation: an (event, webhook) pair and its exact body. */
typedef struct router_job {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    router_event_t *ev;
    char inv[INVOCATION_ID_LEN];
    char *webhook_id, *event_id, *event_type, *body;
    size_t body_len;
    int64_t created_at;
} router_job_t;

/* router_route matches one normalized event (JSON text) against the configuration and queues
 * its jobs; acknowledges at once when nothing matches. A body over r->max_body is not queued:
 * the router writes its delivery-log record itself (failed, 0 attempts, the reason in words). */
void router_route(router_t *r, conn_t *ingest, uint64_t seq, const char *js, size_t len);
/* router_job_done handles a sender's JOB_DONE. */
void router_job_done(router_t *r, conn_t *sender, uint64_t seq);
/* router_ingest_down forgets where acknowledgements of that connection's events would go. */
void router_ingest_down(router_t *r, conn_t *ingest);
/* router_send packs a JOB frame (the dispatcher's send callback). */
void router_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq);
/* router_free_all frees every event and job (shutdown). */
void router_free_all(router_t *r);

#endif
