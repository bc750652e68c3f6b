/* http_ring.c - the HTTP engine's fairness: per-endpoint queues and caps, endpoints taking
 * turns round-robin, hosts counted for libcurl's connection cache and for warm-connection
 * turns. */
#include "http_int.h"

#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every table node starts with its chain pointer; its key sits at a fixed offset. */
typedef struct http_node {
    struct http_node *hnext;
} http_node_t;

/* How long a fall in the number of hosts with work waits before the shares grow. */
#define HTTP_SHARE_HOLD_MS 1000

#define HTTP_EP_KEY offsetof(http_endpoint_t, key)
#define HTTP_HOST_KEY offsetof(http_host_t, key)

/* http_hash: FNV-1a of a key. */
static size_t http_hash(const char *s)
{
    uint64_t v = 1469598103934665603ull;
    for (; *s; s++)
        v = (v ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)v;
}

/* http_node_key: the key of node n in a table whose keys sit at off. */
static const char *http_node_key(const http_node_t *n, size_t off)
{
    return (const char *)n + off;
}

int http_tab_init(http_tab_t *t)
{
    t->nbuckets = 64;
    t->n = 0;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    return t->buckets ? 0 : -ENOMEM;
}

/* http_tab_find: the node with key, or NULL. */
static void *http_tab_find(const http_tab_t *t, const char *key, size_t off)
{
    for (http_node_t *n = t->buckets[http_hash(key) % t->nbuckets]; n; n = n->hnext)
        if (strcmp(http_node_key(n, off), key) == 0) return n;
    return NULL;
}

/* http_tab_add: insert node (not there yet), growing the table when it gets crowded (a failed
 * growth only makes chains longer). */
static void http_tab_add(http_tab_t *t, void *node, size_t off)
{
    http_node_t *nd = node;
    if (t->n >= t->nbuckets * 2) {
        size_t nb = t->nbuckets * 4;
        void **nbk = calloc(nb, sizeof(*nbk));
        if (nbk) {
            for (size_t i = 0; i < t->nbuckets; i++) {
                for (http_node_t *n = t->buckets[i], *nx; n; n = nx) {
                    nx = n->hnext;
                    size_t j = http_hash(http_node_key(n, off)) % nb;
                    n->hnext = nbk[j];
                    nbk[j] = n;
                }
            }
            free(t->buckets);
            t->buckets = nbk;
            t->nbuckets = nb;
        }
    }
    size_t b = http_hash(http_node_key(nd, off)) % t->nbuckets;
    nd->hnext = t->buckets[b];
    t->buckets[b] = nd;
    t->n++;
}

/* http_tab_del: unlink node. */
static void http_tab_del(http_tab_t *t, void *node, size_t off)
{
    http_node_t **pp =
        (http_node_t **)&t->buckets[http_hash(http_node_key(node, off)) % t->nbuckets];
    while (*pp && *pp != node)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = ((http_node_t *)node)->hnext;
        t->n--;
    }
}

/* http_node_new: a zeroed node of size bytes whose key (consumed) sits at off. */
static void *http_node_new(size_t size, size_t off, char *key)
{
    size_t len = strlen(key), all = off + len + 1;
    char *n = calloc(1, all > size ? all : size);
    if (n) memcpy(n + off, key, len + 1);
    free(key);
    return n;
}

int http_url_key(const char *url, char **key, int *code)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int kind = HTTP_FAIL_NONE;
    if (!u) return HTTP_FAIL_NOMEM;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (uc != CURLUE_OK) {
        kind = uc == CURLUE_OUT_OF_MEMORY ? HTTP_FAIL_NOMEM : HTTP_FAIL_URL;
        *code = (int)uc;
    } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        kind = HTTP_FAIL_SCHEME;
    } else {
        for (char *p = host; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        for (char *p = scheme; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (asprintf(key, "%s://%s:%s", scheme, host, port) < 0) {
            *key = NULL;
            kind = HTTP_FAIL_NOMEM;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return kind;
}

/* http_ring_add: put ep at the tail of the ready ring. */
static void http_ring_add(http_t *h, http_endpoint_t *ep)
{
    if (ep->in_ring) return;
    ep->in_ring = 1;
    h->nready++;
    if (!h->ring) {
        ep->rprev = ep->rnext = ep;
        h->ring = ep;
        return;
    }
    ep->rnext = h->ring;
    ep->rprev = h->ring->rprev;
    ep->rprev->rnext = ep;
    h->ring->rprev = ep;
}

/* http_ring_remove: take ep out of the ready ring. */
static void http_ring_remove(http_t *h, http_endpoint_t *ep)
{
    if (!ep->in_ring) return;
    ep->in_ring = 0;
    h->nready--;
    if (ep->rnext == ep) {
        h->ring = NULL;
    } else {
        ep->rprev->rnext = ep->rnext;
        ep->rnext->rprev = ep->rprev;
        if (h->ring == ep) h->ring = ep->rnext;
    }
    ep->rprev = ep->rnext = NULL;
}

void http_ep_ready(http_t *h, http_endpoint_t *ep)
{
    if (ep->queued && ep->inflight < h->cfg.max_per_endpoint) http_ring_add(h, ep);
}

http_endpoint_t *http_ep_get(http_t *h, char *key)
{
    http_endpoint_t *ep = http_tab_find(&h->eps, key, HTTP_EP_KEY);
    if (ep) {
        free(key);
        return ep;
    }
    if (!(ep = http_node_new(sizeof(*ep), HTTP_EP_KEY, key))) return NULL;
    http_tab_add(&h->eps, ep, HTTP_EP_KEY);
    return ep;
}

void http_ep_maybe_free(http_t *h, http_endpoint_t *ep)
{
    if (ep->queued || ep->inflight || ep->in_ring) return;
    http_tab_del(&h->eps, ep, HTTP_EP_KEY);
    free(ep);
}

void http_ep_push(http_t *h, http_request_t *req)
{
    http_endpoint_t *ep = req->priv.ep;
    if (ep->qtail)
        ep->qtail->priv.next = req;
    else
        ep->qhead = req;
    ep->qtail = req;
    ep->queued++;
    h->queued++;
    http_ep_ready(h, ep);
}

/* http_ep_pop: take the oldest waiting request of ep. */
static http_request_t *http_ep_pop(http_t *h, http_endpoint_t *ep)
{
    http_request_t *req = ep->qhead;
    if (!req) return NULL;
    ep->qhead = req->priv.next;
    if (!ep->qhead) ep->qtail = NULL;
    req->priv.next = NULL;
    ep->queued--;
    h->queued--;
    return req;
}

int http_ep_unqueue(http_t *h, http_request_t *req)
{
    http_endpoint_t *ep = req->priv.ep;
    if (!ep) return -EBUSY;
    http_request_t *prev = NULL, *r = ep->qhead;
    while (r && r != req) {
        prev = r;
        r = r->priv.next;
    }
    if (!r) return -EBUSY; /* running (or finished): done will be called */
    if (prev)
        prev->priv.next = req->priv.next;
    else
        ep->qhead = req->priv.next;
    if (ep->qtail == req) ep->qtail = prev;
    req->priv.next = NULL;
    req->priv.ep = NULL;
    ep->queued--;
    h->queued--;
    if (!ep->queued) http_ring_remove(h, ep);
    http_ep_maybe_free(h, ep);
    if (req->priv.host) http_host_put(h, req->priv.host);
    req->priv.host = NULL;
    return 0;
}

/* http_cache_fit: size libcurl's connection cache to the running cap plus the idle
 * connections the hosts seen can use (each up to max_per_endpoint), at most max_connects of
 * them. Only raised: lowering would close connections a host coming back could reuse. */
static void http_cache_fit(http_t *h)
{
    long idle = (long)h->hosts.n * h->cfg.max_per_endpoint;
    if (idle > h->cfg.max_connects) idle = h->cfg.max_connects;
    long want = (long)h->cfg.max_inflight + idle;
    if (want <= h->cache_size || !h->multi) return;
    if (curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, want) == CURLM_OK) h->cache_size = want;
}

http_host_t *http_host_get(http_t *h, char *key)
{
    http_host_t *host = http_tab_find(&h->hosts, key, HTTP_HOST_KEY);
    if (host) {
        free(key);
    } else {
        if (!(host = http_node_new(sizeof(*host), HTTP_HOST_KEY, key))) return NULL;
        http_tab_add(&h->hosts, host, HTTP_HOST_KEY);
        http_cache_fit(h);
    }
    host->refs++;
    if (host->work++ == 0) h->nhosts_work++;
    return host;
}

void http_host_put(http_t *h, http_host_t *host)
{
    if (--host->work == 0) h->nhosts_work--;
    http_host_unref(h, host);
}

void http_host_unref(http_t *h, http_host_t *host)
{
    if (--host->refs > 0) return;
    http_tab_del(&h->hosts, host, HTTP_HOST_KEY);
    free(host);
}

/* http_ep_warm: how many requests ep may start in its turn: one, or as many as its next
 * requests' host has idle connections for (within the endpoint's free slots), so queued work
 * rides the connections the cache holds for it before they age out or get evicted. */
static int http_ep_warm(const http_t *h, const http_endpoint_t *ep)
{
    int slots = h->cfg.max_per_endpoint - ep->inflight;
    const http_host_t *host = ep->qhead ? ep->qhead->priv.host : NULL;
    int idle = host ? host->conns - host->busy : 0;
    int n = idle < slots ? idle : slots;
    return n > 1 ? n : 1;
}

/* http_ep_defer: 1 when ep's next request would open another connection to a host already
 * running its share of the slots (max_inflight over the hosts with work; at least 2, or 1 when
 * more hosts have work than there are slots, so one at a time still fills them): its turn
 * waits, so the slots spread over the hosts rather than piling connections on a few (a host
 * keeps as many connections as its peak of transfers at once, and the cache must hold them
 * all for reuse). A host's first connection, and a request while one of its connections
 * idles, never wait. */
static int http_ep_defer(const http_t *h, const http_endpoint_t *ep)
{
    const http_host_t *host = ep->qhead ? ep->qhead->priv.host : NULL;
    if (!host || !host->busy || host->conns > host->busy || !h->share_hosts) return 0;
    size_t share = (size_t)h->cfg.max_inflight / h->share_hosts;
    size_t least = h->share_hosts > (size_t)h->cfg.max_inflight ? 1 : 2;
    if (share < least) share = least;
    return (size_t)host->busy >= share;
}

/* http_share_hosts: the host count the shares divide by: the hosts with work now, or more
 * while that fell within the last HTTP_SHARE_HOLD_MS (a queue draining does not pile new
 * connections on the hosts left). */
static void http_share_hosts(http_t *h)
{
    uint64_t now = uv_now(h->loop);
    if (h->nhosts_work >= h->share_hosts || now - h->share_at >= HTTP_SHARE_HOLD_MS) {
        h->share_hosts = h->nhosts_work;
        h->share_at = now;
    }
}

void http_pump(http_t *h)
{
    size_t skipped = 0;
    http_share_hosts(h);
    while (!h->closing && h->ring && h->inflight < (size_t)h->cfg.max_inflight) {
        http_endpoint_t *ep = h->ring;
        /* Deferred endpoints go to the back of the ring. When every ready endpoint waits, the
         * slots wait too: each of them has transfers running whose ends pump again. */
        if (http_ep_defer(h, ep)) {
            if (++skipped >= h->nready) break;
            h->ring = ep->rnext;
            continue;
        }
        skipped = 0;
        http_ring_remove(h, ep);
        const http_host_t *warm = ep->qhead ? ep->qhead->priv.host : NULL;
        int n = http_ep_warm(h, ep);
        for (int i = 0; i < n && ep->qhead && h->inflight < (size_t)h->cfg.max_inflight; i++) {
            /* The extra requests of a turn ride the warm host only while they name it (an
             * endpoint key the caller chose may span hosts). */
            if (i > 0 && ep->qhead->priv.host != warm) break;
            http_xfer_start(h, http_ep_pop(h, ep));
        }
        http_ep_ready(h, ep);
        http_ep_maybe_free(h, ep);
    }
}

void http_ring_cancel_all(http_t *h)
{
    for (size_t b = 0; b < h->eps.nbuckets; b++) {
        while (h->eps.buckets[b]) {
            http_endpoint_t *ep = h->eps.buckets[b];
            http_request_t *req;
            http_ring_remove(h, ep);
            while ((req = http_ep_pop(h, ep))) {
                if (req->priv.host) http_host_put(h, req->priv.host);
                req->priv.host = NULL;
                http_result_t res;
                memset(&res, 0, sizeof(res));
                res.outcome = HTTP_OUTCOME_CANCELLED;
                res.code = CURLE_ABORTED_BY_CALLBACK;
                res.error = "cancelled";
                res.body = "";
                h->dispatching++;
                req->done(req, &res);
                h->dispatching--;
            }
            h->eps.buckets[b] = ep->hnext;
            free(ep);
        }
    }
    h->eps.n = 0;
}

void http_ring_free(http_t *h)
{
    for (size_t b = 0; b < h->hosts.nbuckets; b++) {
        for (http_host_t *host = h->hosts.buckets[b], *nx; host; host = nx) {
            nx = host->hnext;
            free(host);
        }
    }
    free(h->hosts.buckets);
    free(h->eps.buckets);
    h->hosts.buckets = h->eps.buckets = NULL;
}
