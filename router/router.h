/* router.h - hook-router's state: events taken from ingest, and the invocation jobs built from
 * them, handed to senders until each is done. An event is matched only when the senders have
 * room, so what the router holds is bounded by the windows, not the backlog; and a job's body is
 * spliced from its event's part and its webhook's part straight into the JOB frame when the
 * dispatcher sends it, so a matched event holds its event part once, not a body per webhook. */
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
#define ROUTER_WINDOW_BYTES_DEFAULT (8u << 20)   /* body bytes in flight per sender */

typedef struct router_event router_event_t;

typedef struct router {
    daemon_t *d;
    cfgwatch_t *cfg;
    dispatch_t *senders;
    unsigned window;
    size_t window_bytes; /* --window-bytes: body bytes handed out and not done, per sender */
    size_t max_body;     /* --max-body-bytes: a larger body is recorded failed, never sent */
    TAILQ_HEAD(router_event_list, router_event) events; /* matched, jobs not all done */
    size_t nevents;
    struct router_event_list waiting; /* taken from ingest, not matched yet */
    size_t nwaiting, waiting_bytes;
    size_t inflight_bytes; /* bytes of the bodies of the jobs the dispatcher holds (queued or
                              in flight): what the senders hold once they are sent */
    size_t backlog_peak;   /* most events held since memory was last trimmed */
    size_t bytes_peak;     /* most bytes held (waiting and in flight) since then */
    struct {
        uint64_t events, unrouted, unmatched, jobs, jobs_done, events_done, bad, oversized;
    } stats;
} router_t;

/* One event from ingest until every invocation built from it is done. */
struct router_event {
    TAILQ_ENTRY(router_event) link; /* in waiting, then in events */
    conn_t *ingest; /* NULL once that connection is gone: the ack has nowhere to go */
    uint64_t ingest_seq;
    int copy;   /* ingest may have sent it before (PK_COPY): so may its jobs be */
    int64_t cv; /* the configuration version ingest accepted it under (PK_CFG_VERSION) */
    unsigned remaining;
    char *js; /* the event's JSON while it waits to be matched */
    size_t len;
    char *event_id, *event_type; /* once matched, shared by its jobs */
    payload_event_t part;        /* once matched: the part of its bodies no webhook changes */
};

/* One invocation: an (event, webhook) pair. Its exact body is ev->part.head, whpart,
 * ev->part.tail, joined only in the JOB frame (router_send). */
typedef struct router_job {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    router_event_t *ev;
    int sent; /* handed to a sender before: sent again, it may be a copy */
    char inv[INVOCATION_ID_LEN];
    char *webhook_id;
    char *whpart; /* the body's webhook member {"id":…,"name":…}, whpart_len bytes */
    size_t whpart_len, body_len;
    int64_t created_at;
} router_job_t;

/* router_route takes one normalized event (JSON text, copied) from ingest and matches it as soon
 * as the senders have room (router_feed), against configuration version cv or newer (reloaded
 * first when the loaded one is older). Matching queues its jobs, or acknowledges at once when
 * nothing matches. A body over r->max_body is not queued: the router writes its delivery-log
 * record itself (failed, 0 attempts, the reason in words). */
void router_route(router_t *r, conn_t *ingest, uint64_t seq, const char *js, size_t len, int copy,
                  int64_t cv);
/* router_feed matches waiting events while the senders have room, by count (--window per
 * sender) and by bytes of bodies (--window-bytes per sender). Call it when a window opens. */
void router_feed(router_t *r);
/* router_drop_waiting forgets the events not matched yet (drain: ingest hands them to another
 * router once this one is gone). */
void router_drop_waiting(router_t *r);
/* router_job_done handles a sender's JOB_DONE. */
void router_job_done(router_t *r, conn_t *sender, uint64_t seq);
/* router_ingest_down forgets where acknowledgements of that connection's events would go. */
void router_ingest_down(router_t *r, conn_t *ingest);
/* router_send packs a JOB frame, its body spliced in (the dispatcher's send callback: called
 * when a sender has a free slot, and again for a copy after a reconnect). */
void router_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq);
/* router_free_all frees every event and job (shutdown). */
void router_free_all(router_t *r);

#endif
