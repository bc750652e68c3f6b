/* dispatch.c - windows of unacknowledged items per peer, least-loaded peer first. */
#include "util/dispatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

TAILQ_HEAD(dispatch_list, dispatch_item);

typedef struct dispatch_peer {
    TAILQ_ENTRY(dispatch_peer) link;
    conn_t *conn;
    uint64_t name_hash; /* of the peer's name ("sender.1"): stable across its reconnects */
    struct dispatch_list inflight;
    unsigned n;
} dispatch_peer_t;

RB_HEAD(dispatch_tree, dispatch_item);

struct dispatch {
    unsigned window;
    dispatch_send_fn send;
    void *ctx;
    uint64_t next_seq;
    struct dispatch_list queue;
    size_t nqueued, ninflight, npeers;
    TAILQ_HEAD(, dispatch_peer) peers;
    struct dispatch_tree byseq;
};

/* dispatch_cmp orders in-flight items by seq. */
static int dispatch_cmp(dispatch_item_t *a, dispatch_item_t *b)
{
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

RB_GENERATE_STATIC(dispatch_tree, dispatch_item, node, dispatch_cmp)

int dispatch_init(dispatch_t **dp, unsigned window, dispatch_send_fn send, void *ctx)
{
    dispatch_t *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->window = window ? window : 1;
    d->send = send;
    d->ctx = ctx;
    d->next_seq = 1;
    TAILQ_INIT(&d->queue);
    TAILQ_INIT(&d->peers);
    RB_INIT(&d->byseq);
    *dp = d;
    return 0;
}

void dispatch_close(dispatch_t *d)
{
    if (!d) return;
    dispatch_peer_t *p;
    while ((p = TAILQ_FIRST(&d->peers))) {
        TAILQ_REMOVE(&d->peers, p, link);
        free(p);
    }
    free(d);
}

/* dispatch_find_peer returns the peer record of c or NULL. */
static dispatch_peer_t *dispatch_find_peer(dispatch_t *d, conn_t *c)
{
    dispatch_peer_t *p;
    TAILQ_FOREACH(p, &d->peers, link)
    if (p->conn == c) return p;
    return NULL;
}

int dispatch_add_peer(dispatch_t *d, conn_t *c)
{
    if (dispatch_find_peer(d, c)) return 0;
    dispatch_peer_t *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->conn = c;
    const char *name = conn_name(c);
    p->name_hash = dispatch_key(name, strlen(name));
    TAILQ_INIT(&p->inflight);
    TAILQ_INSERT_TAIL(&d->peers, p, link);
    d->npeers++;
    dispatch_pump(d);
    return 0;
}

/* dispatch_unflight takes an in-flight item off its peer and out of the seq tree. */
static void dispatch_unflight(dispatch_t *d, dispatch_item_t *it)
{
    dispatch_peer_t *p = it->peer;
    TAILQ_REMOVE(&p->inflight, it, link);
    p->n--;
    RB_REMOVE(dispatch_tree, &d->byseq, it);
    it->peer = NULL;
    d->ninflight--;
}

void dispatch_remove_peer(dispatch_t *d, conn_t *c)
{
    dispatch_peer_t *p = dispatch_find_peer(d, c);
    if (!p) return;
    dispatch_item_t *it;
    /* Requeue from the newest so the oldest ends up first. */
    while ((it = TAILQ_LAST(&p->inflight, dispatch_list))) {
        dispatch_unflight(d, it);
        TAILQ_INSERT_HEAD(&d->queue, it, link);
        d->nqueued++;
    }
    TAILQ_REMOVE(&d->peers, p, link);
    d->npeers--;
    free(p);
    dispatch_pump(d);
}

uint64_t dispatch_key(const char *id, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* dispatch_score ranks a peer for a key (rendezvous hashing: every sender of the same key
 * ranks the peers alike, and a peer leaving moves only its own keys). */
static uint64_t dispatch_score(uint64_t key, uint64_t peer)
{
    uint64_t x = key ^ (peer * 0x9e3779b97f4a7c15ull);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* dispatch_pick returns the peer for it: for a keyed item the best-ranked peer if it has room,
 * otherwise (and for an unkeyed one) the peer with the fewest items in flight and room left;
 * NULL when every window is full. */
static dispatch_peer_t *dispatch_pick(dispatch_t *d, const dispatch_item_t *it)
{
    dispatch_peer_t *p, *best = NULL, *ranked = NULL;
    uint64_t top = 0;
    TAILQ_FOREACH(p, &d->peers, link)
    {
        if (it->key) {
            uint64_t sc = dispatch_score(it->key, p->name_hash);
            if (!ranked || sc > top) {
                ranked = p;
                top = sc;
            }
        }
        if (p->n < d->window && (!best || p->n < best->n)) best = p;
    }
    if (ranked && ranked->n < d->window) return ranked;
    return best;
}

void dispatch_pump(dispatch_t *d)
{
    dispatch_item_t *it;
    dispatch_peer_t *p;
    while ((it = TAILQ_FIRST(&d->queue)) && (p = dispatch_pick(d, it))) {
        TAILQ_REMOVE(&d->queue, it, link);
        d->nqueued--;
        it->seq = d->next_seq++;
        it->peer = p;
        TAILQ_INSERT_TAIL(&p->inflight, it, link);
        p->n++;
        RB_INSERT(dispatch_tree, &d->byseq, it);
        d->ninflight++;
        d->send(d->ctx, p->conn, it, it->seq);
    }
}

void dispatch_push(dispatch_t *d, dispatch_item_t *it)
{
    it->peer = NULL;
    TAILQ_INSERT_TAIL(&d->queue, it, link);
    d->nqueued++;
    dispatch_pump(d);
}

dispatch_item_t *dispatch_ack(dispatch_t *d, conn_t *c, uint64_t seq)
{
    dispatch_item_t key = {.seq = seq};
    dispatch_item_t *it = RB_FIND(dispatch_tree, &d->byseq, &key);
    if (!it || it->peer->conn != c) return NULL;
    dispatch_unflight(d, it);
    dispatch_pump(d);
    return it;
}

void dispatch_cancel(dispatch_t *d, dispatch_item_t *it)
{
    if (it->peer) {
        dispatch_unflight(d, it);
        dispatch_pump(d); /* its window slot is free: nothing else would refill it */
    } else {
        TAILQ_REMOVE(&d->queue, it, link);
        d->nqueued--;
    }
}

dispatch_item_t *dispatch_pop_any(dispatch_t *d)
{
    dispatch_item_t *it = TAILQ_FIRST(&d->queue);
    if (it) {
        TAILQ_REMOVE(&d->queue, it, link);
        d->nqueued--;
        return it;
    }
    it = RB_ROOT(&d->byseq);
    if (it) dispatch_unflight(d, it);
    return it;
}

void dispatch_foreach(dispatch_t *d, void (*cb)(void *arg, dispatch_item_t *it), void *arg)
{
    dispatch_item_t *it;
    dispatch_peer_t *p;
    TAILQ_FOREACH(it, &d->queue, link) cb(arg, it);
    TAILQ_FOREACH(p, &d->peers, link)
    TAILQ_FOREACH(it, &p->inflight, link) cb(arg, it);
}

size_t dispatch_queued(dispatch_t *d)
{
    return d->nqueued;
}

size_t dispatch_inflight(dispatch_t *d)
{
    return d->ninflight;
}

size_t dispatch_peers(dispatch_t *d)
{
    return d->npeers;
}
