/* http.h - the sender's HTTP engine: libcurl multi driven by libuv, POSTs with per-endpoint and
 * global concurrency caps, round-robin fairness across endpoints, connections kept and reused
 * per host, and the address guard. */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include "guard.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http http_t;

/* The default of http_config_t.max_connects (the process needs max_inflight + this many
 * descriptors for sockets at most). */
#define HTTP_DEFAULT_MAX_CONNECTS 4096
typedef struct http_request http_request_t;

/* Engine settings; a zero field takes the default shown. */
typedef struct http_config {
    long connect_timeout_ms; /* 5000: TCP (and TLS) connect */
    long timeout_ms;         /* 15000: the whole attempt */
    int max_inflight;        /* 512: transfers running at once, all endpoints */
    int max_per_endpoint;    /* 16: transfers running at once per scheme://host:port */
    long max_connects;       /* HTTP_DEFAULT_MAX_CONNECTS: idle connections kept in libcurl's
                                cache, at most; the cache holds max_inflight plus
                                min(max_connects, hosts seen x max_per_endpoint), raised as
                                hosts appear (so with N hosts and sockets to spare every host
                                keeps its connections between turns) */
    size_t body_cap;         /* 65536: response body bytes kept (then truncated) */
    size_t body_max;         /* 1 MiB: response body bytes read before the transfer is aborted */
    size_t headers_cap;      /* 16384: response header bytes kept (names + values) */
    const char *ca_file;     /* NULL: the system's CA store; else a PEM bundle (copied) */
    const guard_t *guard;    /* borrowed, may be NULL; must outlive the http_t */
} http_config_t;

typedef enum {
    HTTP_OUTCOME_SUCCESS = 0, /* a complete response head with a 2xx status arrived */
    HTTP_OUTCOME_STATUS,      /* a complete head with another status (3xx, 4xx, 5xx) */
    HTTP_OUTCOME_TRANSPORT,   /* no complete head: DNS, connect, TLS, timeout, reset, refused
                                 target, an oversized or malformed head */
    HTTP_OUTCOME_CANCELLED,   /* http_close ran before the attempt finished */
} http_outcome_t;

typedef struct http_header {
    const char *name;
    const char *value;
} http_header_t;

/* What one attempt produced. Every pointer is borrowed and valid only during the done callback;
 * copy what you keep. */
typedef struct http_result {
    http_outcome_t outcome;
    CURLcode code; /* CURLE_OK, or what libcurl reported (even on a 2xx cut short) */
    long status;   /* HTTP status, 0 when none arrived (TRANSPORT may carry the status line
                      of a head that broke off) */
    /* In words, for TRANSPORT and CANCELLED: "connection refused", "timeout after 15000 ms",
     * "target address not allowed", "connection reset", "response headers too large",
     * "invalid HTTP response: ...", "cancelled"; for STATUS only when reading the rest of the
     * answer failed too ("response body over 1048576 bytes"); NULL for SUCCESS. */
    const char *error;
    const http_header_t *headers; /* response headers in arrival order */
    size_t n_headers;
    int headers_truncated; /* more headers came than headers_cap holds */
    const char *body;      /* NUL-terminated, never NULL (may be "") */
    size_t body_len;       /* <= body_cap */
    int truncated;         /* the body was longer than body_cap */
    uint64_t duration_ms;  /* from start of the attempt (not queueing) to its end */
    int reused;            /* 1 when a cached connection carried it */
} http_result_t;

/* A POST to send. The caller owns the request and everything it points to until done is called
 * (or until http_submit returns an error); the engine only writes the private fields. */
struct http_request {
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines, n_headers of them; the engine copies
                                   them into a list of its own and adds "Expect:" */
    size_t n_headers;
    /* When set, the request's header list as it is, instead of headers/n_headers: the engine
     * never frees, changes or appends to it (its nodes may end in a list shared by many
     * requests). It must carry "Expect:" (or libcurl waits up to 1 s for a 100-continue before
     * sending a body over 1 KiB) and "Accept:" when libcurl's default Accept line (any type)
     * is unwanted: http_header_tail() is a constant list of both to end it with. */
    const struct curl_slist *header_list;
    const char *endpoint; /* key of the per-endpoint cap and fair turns; NULL: the URL's
                             scheme://host:port. The sender passes the webhook's URL, so two
                             webhooks on one host are two endpoints. */
    const void *body;     /* may be NULL when body_len is 0 */
    size_t body_len;
    /* done is called exactly once per accepted request, from the loop (never from inside
     * http_submit), or from inside http_close with outcome CANCELLED. It may submit more
     * requests or call http_close. */
    void (*done)(http_request_t *req, const http_result_t *res);
    void *data; /* the caller's */

    struct { /* private to the engine (sender/http*.c) */
        http_request_t *next;
        struct http_endpoint *ep;
        struct http_host *host;
        int fail_kind, fail_code;
    } priv;
};

/* Figures for stats: counters since init and current gauges. */
typedef struct http_stats {
    uint64_t requests;    /* attempts finished (not counting cancelled ones) */
    uint64_t connections; /* connections opened */
    uint64_t reused;      /* attempts carried by a cached connection */
    uint64_t refused;     /* attempts stopped by the address guard */
    uint64_t inflight;    /* transfers running now */
    uint64_t queued;      /* requests waiting for a slot now */
} http_stats_t;

/* http_init creates the engine on loop with cfg (copied; cfg->guard is borrowed). Returns 0 and
 * *hp, or a negative errno with err filled. Call curl_global_init once before, in main. Free it
 * with http_close. */
int http_init(http_t **hp, uv_loop_t *loop, const http_config_t *cfg, char *err, size_t errlen);

/* http_submit queues req; it starts at once when its endpoint and the engine have a free slot,
 * otherwise when one frees up, endpoints taking turns. A turn starts one request, or as many
 * as the URL's host (scheme://host:port) has idle cached connections for; a turn that would
 * open another connection to a host already running its share of max_inflight (divided over
 * the hosts with work, held up to 1 s when that number falls; at least 2, or 1 when more
 * hosts have work than there are slots) waits for one of them to end. Returns 0 (req->done
 * will be called once),
 * -EINVAL when url or done is NULL, or -ECANCELED after http_close (done is then never called).
 * A URL libcurl cannot parse is accepted and fails through done with "invalid URL: ...". */
int http_submit(http_t *h, http_request_t *req);

/* http_unqueue takes back a request still waiting for a slot of its endpoint: returns 0 (done
 * will never be called for it; the caller owns it again), or -EBUSY when it has started. */
int http_unqueue(http_t *h, http_request_t *req);

/* http_header_tail returns a constant list, "Expect:" then "Accept:", that a caller's
 * header_list may end with (its last node's next pointing here). Never free or change it. */
const struct curl_slist *http_header_tail(void);

/* http_stats fills out with the current figures. */
void http_stats(const http_t *h, http_stats_t *out);

/* http_close cancels every running and queued request (their done callbacks run before
 * http_close returns, with outcome CANCELLED and error "cancelled", unless http_close was
 * called from a done callback: then right after that callback returns), then closes the uv
 * handles and frees h; closed(arg) runs once that is done (may be NULL). */
void http_close(http_t *h, void (*closed)(void *arg), void *arg);

#endif
