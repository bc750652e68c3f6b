/* dispatch.h - hand work items to downstream peers with a window of unacknowledged items per
 * peer; when a peer goes away, what it had in flight is queued again (the at-least-once hand-off
 * used by ingest, router and scheduler). */
#ifndef HL_DISPATCH_H
#define HL_DISPATCH_H

#include "util/daemon.h"
#include "util/tree.h"
#include <stddef.h>
#include <stdint.h>

/* Embedded in the stage's own item struct (recover it with container_of-style arithmetic). */
typedef struct dispatch_item {
    TAILQ_ENTRY(dispatch_item) link; /* in the queue, or in its peer's in-flight list */
    RB_ENTRY(dispatch_item) node;    /* in the by-seq tree while in flight */
    uint64_t seq;                    /* tag of the frame in flight, echoed by the ack */
    struct dispatch_peer *peer;      /* NULL while queued */
    uint64_t key; /* affinity (dispatch_key): the same key goes to the same peer while that peer
                     is up and has room, so a copy sent again lands where the first one is;
                     0: the least loaded peer */
} dispatch_item_t;

/* dispatch_key hashes an id (an invocation id) into an item key (never 0). */
uint64_t dispatch_key(const char *id, size_t len);

typedef struct dispatch dispatch_t;

/* send packs the item's frame carrying seq onto conn c (conn_frame_begin ... conn_frame_end). */
typedef void (*dispatch_send_fn)(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq);

/* dispatch_init: window is the most items one peer may hold unacknowledged. Returns 0 or
 * -ENOMEM. */
int dispatch_init(dispatch_t **dp, unsigned window, dispatch_send_fn send, void *ctx);
/* dispatch_close frees the dispatcher, not the items (the caller owns them; drain with
 * dispatch_pop_any first if it needs to free them). */
void dispatch_close(dispatch_t *d);

/* dispatch_add_peer makes c eligible for items; dispatch_remove_peer queues again, at the
 * front, everything c held in flight. Both are idempotent. */
int dispatch_add_peer(dispatch_t *d, conn_t *c);
void dispatch_remove_peer(dispatch_t *d, conn_t *c);

/* dispatch_push queues an item (not owned) and sends what the windows allow. */
void dispatch_push(dispatch_t *d, dispatch_item_t *it);
/* dispatch_ack takes the item acknowledged by seq from c out of flight and returns it (the
 * caller now does with it what it wants), or NULL for an unknown seq or a seq that was sent on
 * another connection (a stale ack after a requeue). Then sends what the windows allow. */
dispatch_item_t *dispatch_ack(dispatch_t *d, conn_t *c, uint64_t seq);
/* dispatch_cancel removes an item wherever it is (queued or in flight; a later ack for it is
 * then unknown), and sends what the freed window allows. */
void dispatch_cancel(dispatch_t *d, dispatch_item_t *it);
/* dispatch_pop_any removes and returns any item (queued or in flight), NULL when empty. */
dispatch_item_t *dispatch_pop_any(dispatch_t *d);

/* dispatch_foreach calls cb for every item, queued or in flight (cb must not add or remove
 * items). */
void dispatch_foreach(dispatch_t *d, void (*cb)(void *arg, dispatch_item_t *it), void *arg);

/* dispatch_pump sends what the windows allow (after a window opens by other means). */
void dispatch_pump(dispatch_t *d);

size_t dispatch_queued(dispatch_t *d);
size_t dispatch_inflight(dispatch_t *d);
size_t dispatch_peers(dispatch_t *d);

#endif
