/* http_int.h - the HTTP engine's private parts, shared by http.c (interface and results),
 * http_ring.c (endpoints, hosts, fair turns), http_xfer.c (easy handle pool, response capture),
 * http_uv.c (libcurl's sockets and timer on libuv) and http_err.c (errors in words). */
#ifndef HL_HTTP_INT_H
#define HL_HTTP_INT_H

#include "http.h"

#include <stdint.h>

/* Why a request failed before any transfer started (req->priv.fail_kind). */
enum { HTTP_FAIL_NONE = 0, HTTP_FAIL_URL, HTTP_FAIL_SCHEME, HTTP_FAIL_NOMEM, HTTP_FAIL_START };

/* One scheme://host:port as libcurl's connection cache sees it: its open connections and its
 * running transfers. Lives while either is nonzero or a request names it. */
typedef struct http_host {
    struct http_host *hnext; /* hash chain */
    size_t refs;             /* work plus conns */
    size_t work;             /* requests queued or running with this host */
    int conns;               /* sockets open to it (connected or connecting) */
    int busy;                /* transfers running on it */
    char key[];
} http_host_t;

/* One endpoint (the caller's key, or scheme://host:port): its waiting requests and its running
 * count. */
typedef struct http_endpoint {
    struct http_endpoint *hnext;         /* hash chain */
    struct http_endpoint *rprev, *rnext; /* ready ring: has waiting requests and a free slot */
    int in_ring;
    http_request_t *qhead, *qtail;
    size_t queued;
    int inflight;
    char key[];
} http_endpoint_t;

/* One socket libcurl opened, watched or not: kept from open to close, so the watcher of a
 * connection idle in the cache is stopped and started again, not closed and made anew. An owned
 * socket was opened through the engine's open callback (libcurl closes it through the close
 * callback); others libcurl watches (a resolver's) are forgotten at CURL_POLL_REMOVE. */
typedef struct http_sock {
    uv_poll_t poll; /* poll.data = this; initialized at the first watch */
    curl_socket_t fd;
    http_t *h;
    http_host_t *host; /* counted in host->conns; NULL once forgotten */
    int owned;
    int inited;   /* poll is initialized: the record is freed in its close callback */
    int watching; /* libcurl asked for events (between its POLL_IN/OUT and POLL_REMOVE) */
} http_sock_t;

/* One running transfer, or an idle easy handle in the pool. */
typedef struct http_xfer {
    http_t *h;
    CURL *easy; /* constant options set once, in http_xfer_get */
    http_request_t *req;
    struct curl_slist *hdrs; /* built from req->headers; NULL when req->header_list is used */
    char *body;
    size_t body_len, body_alloc, body_seen;
    int truncated, too_big;
    http_header_t *rh; /* each name points at one allocation holding "name\0value\0" */
    size_t n_rh, rh_alloc, rh_bytes;
    int rh_truncated;
    int head_done; /* the final answer's header section ended (its empty line arrived) */
    int guard_refused, guard_passed;
    uint64_t start_ns;
    char errbuf[CURL_ERROR_SIZE];
    struct http_xfer *prev, *next; /* h->active, or h->idle (next only) */
} http_xfer_t;

/* A chained hash table of endpoints or hosts (the node types share their first field). */
typedef struct http_tab {
    void **buckets;
    size_t nbuckets, n;
} http_tab_t;

struct http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's timeout; timer.data = this */
    uv_timer_t defer; /* delivers failures found before a transfer started; defer.data = this */
    http_config_t cfg;
    char *ca_file;
    http_tab_t eps, hosts;
    http_endpoint_t *ring; /* next endpoint to get a slot */
    size_t nready;         /* endpoints in the ring */
    size_t nhosts_work;    /* hosts with requests queued or running */
    size_t share_hosts;    /* what the per-host shares divide by (http_ring.c) */
    uint64_t share_at;     /* uv_now when share_hosts was last set */
    long cache_size;       /* CURLMOPT_MAXCONNECTS now */
    http_xfer_t *active;
    http_xfer_t *idle;
    size_t nidle;
    http_sock_t **socks; /* by fd: every socket libcurl has open */
    size_t nsocks;
    http_request_t *failed_head, *failed_tail;
    size_t inflight, queued;
    http_stats_t st;
    int dispatching; /* inside done callbacks: defer teardown */
    int closing, torn_down;
    int open_handles;
    void (*closed)(void *arg);
    void *closed_arg;
};

/* ---- http.c ---- */

/* http_defer_fail: fail req from the loop soon (never inside http_submit). */
void http_defer_fail(http_t *h, http_request_t *req, int kind, int code);

/* http_check_multi: deliver every transfer libcurl reports finished, then refill the slots. */
void http_check_multi(http_t *h);

/* http_handle_gone: one uv handle finished closing; frees h after the last one once torn
 * down. */
void http_handle_gone(http_t *h);

/* ---- http_ring.c ---- */

/* http_tab_init: an empty table. Returns 0 or -ENOMEM. */
int http_tab_init(http_tab_t *t);

/* http_url_key: "scheme://host:port" of url, lower-cased, into *key (malloc'd). Returns
 * HTTP_FAIL_NONE or another HTTP_FAIL_* with *code set for HTTP_FAIL_URL. */
int http_url_key(const char *url, char **key, int *code);

/* http_ep_get: find or create the endpoint for key (key is consumed). NULL on ENOMEM. */
http_endpoint_t *http_ep_get(http_t *h, char *key);

/* http_ep_push: queue req (its priv.ep and priv.host set) at the tail of its endpoint. */
void http_ep_push(http_t *h, http_request_t *req);

/* http_ep_unqueue: take req out of its endpoint's queue; -EBUSY when it is not queued. */
int http_ep_unqueue(http_t *h, http_request_t *req);

/* http_ep_ready: an endpoint with waiting requests and a free slot joins the ring. */
void http_ep_ready(http_t *h, http_endpoint_t *ep);

/* http_ep_maybe_free: forget an endpoint with nothing running and nothing waiting. */
void http_ep_maybe_free(http_t *h, http_endpoint_t *ep);

/* http_host_get: find or create the host for key (key is consumed) for one request (counted
 * in work and refs). NULL on ENOMEM. Raises the connection cache when a new host appears. */
http_host_t *http_host_get(http_t *h, char *key);

/* http_host_put: a request of host is done (or gone): the reverse of http_host_get. */
void http_host_put(http_t *h, http_host_t *host);

/* http_host_unref: drop a reference that is not a request's (a socket's); frees the host with
 * the last. */
void http_host_unref(http_t *h, http_host_t *host);

/* http_pump: hand free slots to ready endpoints, starting transfers with http_xfer_start. */
void http_pump(http_t *h);

/* http_ring_cancel_all: deliver CANCELLED for every queued request and forget the endpoints. */
void http_ring_cancel_all(http_t *h);

/* http_ring_free: free the tables (every request is gone by then). */
void http_ring_free(http_t *h);

/* ---- http_xfer.c ---- */

/* http_xfer_start: begin the transfer of req; failures are delivered later by the loop. */
void http_xfer_start(http_t *h, http_request_t *req);

/* http_xfer_unlink: take x off the running list and release its slots. */
void http_xfer_unlink(http_t *h, http_xfer_t *x);

/* http_xfer_put: back to the pool (bounded by max_inflight) or freed. */
void http_xfer_put(http_t *h, http_xfer_t *x);

/* http_xfer_free_pool: free every pooled easy handle. */
void http_xfer_free_pool(http_t *h);

/* ---- http_uv.c ---- */

/* http_uv_init: libcurl's socket and timer callbacks on the multi handle, and the timers. */
void http_uv_init(http_t *h);

/* http_uv_setopts: the socket options of an easy handle (open and close through the engine,
 * the address guard at open). Returns the first failing CURLcode. */
CURLcode http_uv_setopts(http_t *h, http_xfer_t *x);

/* http_uv_close: close every socket watcher and the timers (after curl_multi_cleanup). */
void http_uv_close(http_t *h);

/* ---- http_err.c ---- */

/* http_err_early: the words for a failure found before a transfer started. */
void http_err_early(const http_request_t *req, char *buf, size_t n);

/* http_err_describe: the transport error of a finished transfer in words. */
void http_err_describe(const http_t *h, http_xfer_t *x, CURLcode code, char *buf, size_t n);

#endif
