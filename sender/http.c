/* http.c - the sender's HTTP engine: libcurl multi driven by libuv, recycled easy handles,
 * per-endpoint queues served round-robin, the address guard at connect time, results in words. */
#include "http.h"

#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Why a request failed before any transfer started (req->priv.fail_kind). */
enum { HTTP_FAIL_NONE = 0, HTTP_FAIL_URL, HTTP_FAIL_SCHEME, HTTP_FAIL_NOMEM, HTTP_FAIL_START };

/* One scheme://host:port: its waiting requests and its running count. */
typedef struct http_endpoint {
    struct http_endpoint *hnext;         /* hash chain */
    struct http_endpoint *rprev, *rnext; /* ready ring: has waiting requests and a free slot */
    int in_ring;
    http_request_t *qhead, *qtail;
    size_t queued;
    int inflight;
    char key[];
} http_endpoint_t;

/* One socket libcurl asked us to watch. */
typedef struct http_sock {
    uv_poll_t poll; /* poll.data = this */
    curl_socket_t fd;
    http_t *h;
    struct http_sock *prev, *next; /* h->socks, while not closing */
} http_sock_t;

/* One running transfer, or an idle easy handle on the free list. */
typedef struct http_xfer {
    http_t *h;
    CURL *easy;
    http_request_t *req;
    struct curl_slist *hdrs;
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

struct http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's timeout; timer.data = this */
    uv_timer_t defer; /* delivers failures found before a transfer started; defer.data = this */
    http_config_t cfg;
    char *ca_file;
    http_endpoint_t **buckets;
    size_t nbuckets, nendpoints;
    http_endpoint_t *ring; /* next endpoint to get a slot */
    http_xfer_t *active;
    http_xfer_t *idle;
    size_t nidle;
    http_sock_t *socks;
    http_request_t *failed_head, *failed_tail;
    size_t inflight, queued;
    http_stats_t st;
    int dispatching; /* inside done callbacks: defer teardown */
    int closing, torn_down;
    int open_handles;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void http_pump(http_t *h);
static void http_teardown(http_t *h);
static void http_defer_cb(uv_timer_t *t);

/* http_ms: nanoseconds since start, in milliseconds. */
static uint64_t http_ms(uint64_t start_ns)
{
    return (uv_hrtime() - start_ns) / 1000000u;
}

/* http_hash: FNV-1a of an endpoint key. */
static size_t http_hash(const char *s)
{
    uint64_t v = 1469598103934665603ull;
    for (; *s; s++)
        v = (v ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)v;
}

/* http_url_key: "scheme://host:port" of url, lower-cased, into *key. Returns HTTP_FAIL_*. */
static int http_url_key(const char *url, char **key, int *code)
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

/* http_url_host: the host part of url, for messages ("?" when unparsable). */
static void http_url_host(const char *url, char *buf, size_t n)
{
    CURLU *u = curl_url();
    char *host = NULL;
    snprintf(buf, n, "?");
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(buf, n, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

/* http_ring_add: put ep at the tail of the ready ring. */
static void http_ring_add(http_t *h, http_endpoint_t *ep)
{
    if (ep->in_ring) return;
    ep->in_ring = 1;
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
    if (ep->rnext == ep) {
        h->ring = NULL;
    } else {
        ep->rprev->rnext = ep->rnext;
        ep->rnext->rprev = ep->rprev;
        if (h->ring == ep) h->ring = ep->rnext;
    }
    ep->rprev = ep->rnext = NULL;
}

/* http_ep_ready: an endpoint with waiting requests and a free slot joins the ring. */
static void http_ep_ready(http_t *h, http_endpoint_t *ep)
{
    if (ep->queued && ep->inflight < h->cfg.max_per_endpoint) http_ring_add(h, ep);
}

/* http_ep_get: find or create the endpoint for key (key is consumed). NULL on ENOMEM. */
static http_endpoint_t *http_ep_get(http_t *h, char *key)
{
    size_t b = http_hash(key) % h->nbuckets;
    for (http_endpoint_t *ep = h->buckets[b]; ep; ep = ep->hnext) {
        if (strcmp(ep->key, key) == 0) {
            free(key);
            return ep;
        }
    }
    if (h->nendpoints >= h->nbuckets * 2) {
        size_t nb = h->nbuckets * 4;
        http_endpoint_t **nbk = calloc(nb, sizeof(*nbk));
        if (nbk) {
            for (size_t i = 0; i < h->nbuckets; i++) {
                for (http_endpoint_t *ep = h->buckets[i], *nx; ep; ep = nx) {
                    nx = ep->hnext;
                    size_t j = http_hash(ep->key) % nb;
                    ep->hnext = nbk[j];
                    nbk[j] = ep;
                }
            }
            free(h->buckets);
            h->buckets = nbk;
            h->nbuckets = nb;
            b = http_hash(key) % nb;
        }
    }
    size_t len = strlen(key);
    http_endpoint_t *ep = calloc(1, sizeof(*ep) + len + 1);
    if (!ep) {
        free(key);
        return NULL;
    }
    memcpy(ep->key, key, len + 1);
    free(key);
    ep->hnext = h->buckets[b];
    h->buckets[b] = ep;
    h->nendpoints++;
    return ep;
}

/* http_ep_maybe_free: forget an endpoint with nothing running and nothing waiting. */
static void http_ep_maybe_free(http_t *h, http_endpoint_t *ep)
{
    if (ep->queued || ep->inflight || ep->in_ring) return;
    http_endpoint_t **pp = &h->buckets[http_hash(ep->key) % h->nbuckets];
    while (*pp && *pp != ep)
        pp = &(*pp)->hnext;
    if (*pp) *pp = ep->hnext;
    h->nendpoints--;
    free(ep);
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

/* http_defer_fail: fail req from the loop soon (never inside http_submit). */
static void http_defer_fail(http_t *h, http_request_t *req, int kind, int code)
{
    req->priv.fail_kind = kind;
    req->priv.fail_code = code;
    req->priv.ep = NULL;
    req->priv.next = NULL;
    if (h->failed_tail)
        h->failed_tail->priv.next = req;
    else
        h->failed_head = req;
    h->failed_tail = req;
    if (!h->closing) uv_timer_start(&h->defer, http_defer_cb, 0, 0);
}

/* http_deliver: call req->done with res, counting nesting so http_close can wait for it. */
static void http_deliver(http_t *h, http_request_t *req, const http_result_t *res)
{
    h->dispatching++;
    req->done(req, res);
    h->dispatching--;
}

/* http_deliver_words: deliver a result with no response, only an error in words. */
static void http_deliver_words(http_t *h, http_request_t *req, http_outcome_t outcome,
                               CURLcode code, const char *error, uint64_t duration_ms)
{
    http_result_t res;
    memset(&res, 0, sizeof(res));
    res.outcome = outcome;
    res.code = code;
    res.error = error;
    res.body = "";
    res.duration_ms = duration_ms;
    http_deliver(h, req, &res);
}

/* http_deliver_failed: deliver one early failure by its kind. */
static void http_deliver_failed(http_t *h, http_request_t *req)
{
    char msg[256];
    switch (req->priv.fail_kind) {
    case HTTP_FAIL_URL:
        snprintf(msg, sizeof(msg), "invalid URL: %s",
                 curl_url_strerror((CURLUcode)req->priv.fail_code));
        break;
    case HTTP_FAIL_SCHEME:
        snprintf(msg, sizeof(msg), "unsupported protocol (only http and https)");
        break;
    case HTTP_FAIL_START:
        snprintf(msg, sizeof(msg), "could not start the transfer: %s",
                 curl_multi_strerror((CURLMcode)req->priv.fail_code));
        break;
    default:
        snprintf(msg, sizeof(msg), "out of memory");
        break;
    }
    h->st.requests++;
    http_deliver_words(h, req, HTTP_OUTCOME_TRANSPORT, CURLE_FAILED_INIT, msg, 0);
}

/* http_after_dispatch: once callbacks are done, refill slots or finish a pending close. */
static void http_after_dispatch(http_t *h)
{
    if (h->dispatching) return;
    if (h->closing) {
        if (!h->torn_down) http_teardown(h);
        return;
    }
    http_pump(h);
}

/* http_defer_cb: deliver the early failures. */
static void http_defer_cb(uv_timer_t *t)
{
    http_t *h = t->data;
    while (h->failed_head && !h->torn_down) {
        http_request_t *req = h->failed_head;
        h->failed_head = req->priv.next;
        if (!h->failed_head) h->failed_tail = NULL;
        http_deliver_failed(h, req);
    }
    http_after_dispatch(h);
}

/* http_header_clear: drop collected response headers (a new status line started). */
static void http_header_clear(http_xfer_t *x)
{
    for (size_t i = 0; i < x->n_rh; i++)
        free((char *)x->rh[i].name);
    x->n_rh = 0;
    x->rh_bytes = 0;
    x->rh_truncated = 0;
    x->head_done = 0;
}

/* http_header_cb: collect one response header line, within headers_cap. */
static size_t http_header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer_t *x = ud;
    size_t len = size * nmemb, n = len;
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        http_header_clear(x); /* an interim 1xx, then the final answer */
        return len;
    }
    if (!n) {
        /* The empty line: the head is complete. After a 1xx the next status line clears it. */
        x->head_done = 1;
        return len;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon) return len; /* libcurl fails the transfer on these itself */
    size_t nlen = (size_t)(colon - p), voff = nlen + 1;
    while (nlen && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
        nlen--;
    while (voff < n && (p[voff] == ' ' || p[voff] == '\t'))
        voff++;
    size_t vlen = n - voff;
    while (vlen && (p[voff + vlen - 1] == ' ' || p[voff + vlen - 1] == '\t'))
        vlen--;
    if (x->rh_truncated || x->rh_bytes + nlen + vlen > x->h->cfg.headers_cap) {
        x->rh_truncated = 1;
        return len;
    }
    if (x->n_rh == x->rh_alloc) {
        size_t na = x->rh_alloc ? x->rh_alloc * 2 : 16;
        http_header_t *nr = realloc(x->rh, na * sizeof(*nr));
        if (!nr) {
            x->rh_truncated = 1;
            return len;
        }
        x->rh = nr;
        x->rh_alloc = na;
    }
    char *s = malloc(nlen + vlen + 2);
    if (!s) {
        x->rh_truncated = 1;
        return len;
    }
    memcpy(s, p, nlen);
    s[nlen] = '\0';
    memcpy(s + nlen + 1, p + voff, vlen);
    s[nlen + 1 + vlen] = '\0';
    x->rh[x->n_rh].name = s;
    x->rh[x->n_rh].value = s + nlen + 1;
    x->n_rh++;
    x->rh_bytes += nlen + vlen;
    return len;
}

/* http_write_cb: keep the body up to body_cap, read on to body_max, then abort. */
static size_t http_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer_t *x = ud;
    size_t len = size * nmemb, cap = x->h->cfg.body_cap;
    x->body_seen += len;
    if (x->body_seen > x->h->cfg.body_max) {
        x->too_big = 1;
        return 0; /* CURLE_WRITE_ERROR */
    }
    size_t take = cap - x->body_len < len ? cap - x->body_len : len;
    if (take < len) x->truncated = 1;
    if (!take) return len;
    if (x->body_len + take + 1 > x->body_alloc) {
        size_t na = x->body_alloc ? x->body_alloc * 2 : 4096;
        if (na < x->body_len + take + 1) na = x->body_len + take + 1;
        if (na > cap + 1) na = cap + 1;
        char *nb = realloc(x->body, na);
        if (!nb) {
            x->truncated = 1;
            return len;
        }
        x->body = nb;
        x->body_alloc = na;
    }
    memcpy(x->body + x->body_len, p, take);
    x->body_len += take;
    x->body[x->body_len] = '\0';
    return len;
}

/* http_opensocket_cb: the guard, on the address libcurl resolved, right before connect. */
static curl_socket_t http_opensocket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_xfer_t *x = ud;
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
    if (!guard_allows(x->h->cfg.guard, &a->addr)) {
        x->guard_refused++;
        return CURL_SOCKET_BAD;
    }
    x->guard_passed++;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* http_xfer_get: an easy handle from the free list, or a new one. NULL on ENOMEM. */
static http_xfer_t *http_xfer_get(http_t *h)
{
    http_xfer_t *x = h->idle;
    if (x) {
        h->idle = x->next;
        h->nidle--;
        curl_easy_reset(x->easy);
        x->next = NULL;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->h = h;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return NULL;
    }
    return x;
}

/* http_xfer_clean: drop a transfer's per-request buffers, keeping the easy handle. */
static void http_xfer_clean(http_xfer_t *x)
{
    http_header_clear(x);
    free(x->rh);
    free(x->body);
    curl_slist_free_all(x->hdrs);
    CURL *easy = x->easy;
    http_t *h = x->h;
    memset(x, 0, sizeof(*x));
    x->easy = easy;
    x->h = h;
}

/* http_xfer_put: back to the free list (bounded by max_inflight) or freed. */
static void http_xfer_put(http_t *h, http_xfer_t *x)
{
    http_xfer_clean(x);
    if (h->closing || h->nidle >= (size_t)h->cfg.max_inflight) {
        curl_easy_cleanup(x->easy);
        free(x);
        return;
    }
    x->next = h->idle;
    h->idle = x;
    h->nidle++;
}

/* http_setopts: every option of one attempt. Returns the first failing CURLcode. */
static CURLcode http_setopts(http_t *h, http_xfer_t *x, http_request_t *req)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
#define HTTP_SET(opt, val)                                                                         \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(e, opt, val);                                               \
        if (c_ != CURLE_OK && rc == CURLE_OK) rc = c_;                                             \
    } while (0)
    HTTP_SET(CURLOPT_PRIVATE, x);
    HTTP_SET(CURLOPT_URL, req->url);
    HTTP_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    HTTP_SET(CURLOPT_FOLLOWLOCATION, 0L);
    HTTP_SET(CURLOPT_NOSIGNAL, 1L);
    HTTP_SET(CURLOPT_PROXY, ""); /* proxy variables must not route around the guard */
    HTTP_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    HTTP_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file) HTTP_SET(CURLOPT_CAINFO, h->ca_file);
    HTTP_SET(CURLOPT_CONNECTTIMEOUT_MS, h->cfg.connect_timeout_ms);
    HTTP_SET(CURLOPT_TIMEOUT_MS, h->cfg.timeout_ms);
    HTTP_SET(CURLOPT_TCP_NODELAY, 1L);
    HTTP_SET(CURLOPT_POST, 1L);
    HTTP_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    HTTP_SET(CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    HTTP_SET(CURLOPT_HTTPHEADER, x->hdrs);
    HTTP_SET(CURLOPT_WRITEFUNCTION, http_write_cb);
    HTTP_SET(CURLOPT_WRITEDATA, x);
    HTTP_SET(CURLOPT_HEADERFUNCTION, http_header_cb);
    HTTP_SET(CURLOPT_HEADERDATA, x);
    HTTP_SET(CURLOPT_OPENSOCKETFUNCTION, http_opensocket_cb);
    HTTP_SET(CURLOPT_OPENSOCKETDATA, x);
    HTTP_SET(CURLOPT_ERRORBUFFER, x->errbuf);
#undef HTTP_SET
    return rc;
}

/* http_start: begin the transfer of req on ep; failures are delivered later by the loop. */
static void http_start(http_t *h, http_endpoint_t *ep, http_request_t *req)
{
    http_xfer_t *x = http_xfer_get(h);
    if (!x) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return;
    }
    x->req = req;
    x->errbuf[0] = '\0';
    int ok = 1;
    for (size_t i = 0; ok && i < req->n_headers; i++) {
        struct curl_slist *l = curl_slist_append(x->hdrs, req->headers[i]);
        ok = l != NULL;
        if (l) x->hdrs = l;
    }
    if (ok) {
        /* No "Expect: 100-continue" round trip: receivers answer the whole POST. */
        struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
        ok = l != NULL;
        if (l) x->hdrs = l;
    }
    if (!ok || http_setopts(h, x, req) != CURLE_OK) {
        http_xfer_put(h, x);
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return;
    }
    x->start_ns = uv_hrtime();
    CURLMcode mc = curl_multi_add_handle(h->multi, x->easy);
    if (mc != CURLM_OK) {
        http_xfer_put(h, x);
        http_defer_fail(h, req, HTTP_FAIL_START, (int)mc);
        return;
    }
    req->priv.ep = ep;
    x->prev = NULL;
    x->next = h->active;
    if (h->active) h->active->prev = x;
    h->active = x;
    h->inflight++;
    ep->inflight++;
}

/* http_pump: hand free slots to ready endpoints, one request per turn. */
static void http_pump(http_t *h)
{
    while (!h->closing && h->ring && h->inflight < (size_t)h->cfg.max_inflight) {
        http_endpoint_t *ep = h->ring;
        http_ring_remove(h, ep);
        http_request_t *req = http_ep_pop(h, ep);
        if (req) http_start(h, ep, req);
        http_ep_ready(h, ep);
        http_ep_maybe_free(h, ep);
    }
}

/* http_active_unlink: take x off the running list and release its slots. */
static void http_active_unlink(http_t *h, http_xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->active = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
    curl_multi_remove_handle(h->multi, x->easy);
    http_endpoint_t *ep = x->req->priv.ep;
    h->inflight--;
    ep->inflight--;
    http_ep_ready(h, ep);
}

/* http_errbuf: libcurl's own message for code, without a trailing newline. */
static const char *http_errbuf(http_xfer_t *x, CURLcode code)
{
    size_t n = strlen(x->errbuf);
    while (n && (x->errbuf[n - 1] == '\n' || x->errbuf[n - 1] == '\r'))
        x->errbuf[--n] = '\0';
    return n ? x->errbuf : curl_easy_strerror(code);
}

/* http_describe: the transport error of a finished transfer in words. */
static void http_describe(http_t *h, http_xfer_t *x, CURLcode code, char *buf, size_t n)
{
    long oserr = 0;
    curl_off_t pretransfer = 0;
    char host[256];
    const char *eb = http_errbuf(x, code);
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    switch (code) {
    case CURLE_OK:
        snprintf(buf, n, "incomplete HTTP response head");
        break;
    case CURLE_COULDNT_CONNECT:
        if (x->guard_refused && !x->guard_passed)
            snprintf(buf, n, "target address not allowed");
        else if (oserr == ECONNREFUSED)
            snprintf(buf, n, "connection refused");
        else if (oserr == ENETUNREACH)
            snprintf(buf, n, "network unreachable");
        else if (oserr == EHOSTUNREACH)
            snprintf(buf, n, "host unreachable");
        else if (oserr == ETIMEDOUT)
            snprintf(buf, n, "connect timeout");
        else
            snprintf(buf, n, "could not connect: %s", eb);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (strncmp(eb, "Resolving timed out", 19) == 0) {
            http_url_host(x->req->url, host, sizeof(host));
            snprintf(buf, n, "could not resolve host: %s (timeout)", host);
        } else if (strncmp(eb, "Connection timed out", 20) == 0 ||
                   (pretransfer == 0 && h->cfg.connect_timeout_ms <= h->cfg.timeout_ms)) {
            /* Before the request went out the connect timeout applies (TCP and TLS). */
            snprintf(buf, n, "connect timeout after %ld ms", h->cfg.connect_timeout_ms);
        } else {
            snprintf(buf, n, "timeout after %ld ms", h->cfg.timeout_ms);
        }
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        http_url_host(x->req->url, host, sizeof(host));
        snprintf(buf, n, "could not resolve host: %s", host);
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        snprintf(buf, n, "TLS error: %s", eb);
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        if (oserr == ECONNRESET || oserr == EPIPE)
            snprintf(buf, n, "connection reset");
        else if (strncmp(eb, "Too large response headers", 26) == 0) /* libcurl 8.0 to 8.5 */
            snprintf(buf, n, "response headers too large");
        else
            snprintf(buf, n, "%s error: %s", code == CURLE_RECV_ERROR ? "receive" : "send", eb);
        break;
    case CURLE_GOT_NOTHING:
        snprintf(buf, n, "connection closed without a response");
        break;
    case CURLE_PARTIAL_FILE:
        snprintf(buf, n, "connection closed before the response was complete");
        break;
    case CURLE_WRITE_ERROR:
        if (x->too_big)
            snprintf(buf, n, "response body over %zu bytes", h->cfg.body_max);
        else
            snprintf(buf, n, "write error: %s", eb);
        break;
    case CURLE_WEIRD_SERVER_REPLY:
        snprintf(buf, n, "invalid HTTP response: %s", eb);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        if (strncmp(eb, "Received HTTP/0.9", 17) == 0) /* no "HTTP/x.y NNN" status line */
            snprintf(buf, n, "invalid HTTP response: no HTTP status line");
        else
            snprintf(buf, n, "unsupported protocol: %s", eb);
        break;
    case CURLE_URL_MALFORMAT:
        snprintf(buf, n, "invalid URL: %s", eb);
        break;
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
#endif
    case CURLE_OUT_OF_MEMORY:
        /* libcurl 7 reports a header line over its 100 KiB limit as out of memory. */
        if (pretransfer > 0 && !x->head_done)
            snprintf(buf, n, "response headers too large");
        else
            snprintf(buf, n, "out of memory");
        break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(buf, n, "HTTP/2 error: %s", eb);
        break;
    default:
        snprintf(buf, n, "%s", eb);
        break;
    }
}

/* http_finish: turn a finished transfer into a result, deliver it, recycle the handle. */
static void http_finish(http_t *h, http_xfer_t *x, CURLcode code)
{
    http_request_t *req = x->req;
    http_endpoint_t *ep = req->priv.ep;
    http_result_t res;
    char words[CURL_ERROR_SIZE + 128];
    long status = 0, nconn = 0;
    curl_off_t pretransfer = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);

    memset(&res, 0, sizeof(res));
    res.code = code;
    res.status = status;
    /* A complete response head is the receiver's answer: a 2xx stays a success even when the
     * body was cut short (too big, reset, timeout). A head that broke off (reset, timeout,
     * oversized or malformed header) is no answer, whatever its status line said. */
    int head = status > 0 && x->head_done;
    if (head && status >= 200 && status <= 299) {
        res.outcome = HTTP_OUTCOME_SUCCESS;
    } else {
        res.outcome = head ? HTTP_OUTCOME_STATUS : HTTP_OUTCOME_TRANSPORT;
        if (code != CURLE_OK || !head) {
            http_describe(h, x, code, words, sizeof(words));
            res.error = words;
        }
    }
    res.headers = x->rh;
    res.n_headers = x->n_rh;
    res.headers_truncated = x->rh_truncated;
    res.body = x->body ? x->body : "";
    res.body_len = x->body_len;
    res.truncated = x->truncated || x->too_big;
    res.duration_ms = http_ms(x->start_ns);
    /* No new connection yet a request went out: the connection came from the cache. */
    res.reused = nconn == 0 && pretransfer > 0;

    h->st.requests++;
    h->st.connections += (uint64_t)nconn;
    h->st.reused += (uint64_t)res.reused;
    if (x->guard_refused && !x->guard_passed) h->st.refused++;

    http_active_unlink(h, x);
    http_deliver(h, req, &res);
    http_xfer_put(h, x);
    http_ep_maybe_free(h, ep);
}

/* http_check_multi: deliver every transfer libcurl reports finished. */
static void http_check_multi(http_t *h)
{
    CURLMsg *m;
    int left;
    h->dispatching++;
    while (h->multi && (m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        http_xfer_t *x = NULL;
        CURLcode code = m->data.result; /* m dies with curl_multi_remove_handle */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        http_finish(h, x, code);
    }
    h->dispatching--;
    http_after_dispatch(h);
}

/* http_timer_cb: libcurl's timeout expired. */
static void http_timer_cb(uv_timer_t *t)
{
    http_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_multi(h);
}

/* http_timer_fn: libcurl asks for its timeout: -1 stop, 0 as soon as the loop turns. */
static int http_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    http_t *h = userp;
    if (h->torn_down) return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, http_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* http_poll_cb: a watched socket is ready (or failed): tell libcurl. */
static void http_poll_cb(uv_poll_t *p, int status, int events)
{
    http_sock_t *k = p->data;
    http_t *h = k->h;
    int flags = 0, running;
    if (status < 0) {
        /* libuv reports POLLERR (say, a reset) as UV_EBADF and stops the handle. Let libcurl
         * read and write so it meets the socket's own error (ECONNRESET) and names it. */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
        uv_poll_stop(p);
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, k->fd, flags, &running);
    http_check_multi(h);
}

/* http_handle_gone: one uv handle finished closing; free h after the last one. */
static void http_handle_gone(http_t *h)
{
    if (--h->open_handles > 0 || !h->torn_down) return;
    void (*closed)(void *) = h->closed;
    void *arg = h->closed_arg;
    free(h->ca_file);
    free(h->buckets);
    free(h);
    if (closed) closed(arg);
}

/* http_sock_closed: close callback of a socket's poll handle. */
static void http_sock_closed(uv_handle_t *hd)
{
    http_sock_t *k = hd->data;
    http_t *h = k->h;
    free(k);
    http_handle_gone(h);
}

/* http_sock_close: stop watching a socket now (before libcurl closes the fd), free later. */
static void http_sock_close(http_t *h, http_sock_t *k)
{
    uv_poll_stop(&k->poll);
    if (k->prev)
        k->prev->next = k->next;
    else
        h->socks = k->next;
    if (k->next) k->next->prev = k->prev;
    uv_close((uv_handle_t *)&k->poll, http_sock_closed);
}

/* http_socket_fn: libcurl says which events it wants on a socket, or that it is done with it. */
static int http_socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    http_t *h = userp;
    http_sock_t *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            http_sock_close(h, k);
            if (!h->torn_down) curl_multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k) {
            log_error("http: out of memory watching socket %d", (int)s);
            return -1;
        }
        int rc = uv_poll_init_socket(h->loop, &k->poll, s);
        if (rc < 0) {
            log_error("http: cannot watch socket %d: %s", (int)s, uv_strerror(rc));
            free(k);
            return -1;
        }
        k->poll.data = k;
        k->fd = s;
        k->h = h;
        k->next = h->socks;
        if (h->socks) h->socks->prev = k;
        h->socks = k;
        h->open_handles++;
        curl_multi_assign(h->multi, s, k);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    int rc = uv_poll_start(&k->poll, ev, http_poll_cb);
    if (rc < 0) {
        log_error("http: cannot poll socket %d: %s", (int)s, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* http_timer_closed: close callback of the two timers. */
static void http_timer_closed(uv_handle_t *hd)
{
    http_handle_gone(hd->data);
}

/* http_teardown: cancel everything, release libcurl, close the uv handles. */
static void http_teardown(http_t *h)
{
    h->torn_down = 1;
    h->dispatching++;
    while (h->active) {
        http_xfer_t *x = h->active;
        http_request_t *req = x->req;
        uint64_t ms = http_ms(x->start_ns);
        http_active_unlink(h, x);
        http_deliver_words(h, req, HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, "cancelled",
                           ms);
        http_xfer_put(h, x);
    }
    for (size_t b = 0; b < h->nbuckets; b++) {
        while (h->buckets[b]) {
            http_endpoint_t *ep = h->buckets[b];
            http_request_t *req;
            http_ring_remove(h, ep);
            while ((req = http_ep_pop(h, ep)))
                http_deliver_words(h, req, HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK,
                                   "cancelled", 0);
            h->buckets[b] = ep->hnext;
            free(ep);
        }
    }
    h->nendpoints = 0;
    while (h->failed_head) {
        http_request_t *req = h->failed_head;
        h->failed_head = req->priv.next;
        http_deliver_words(h, req, HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, "cancelled",
                           0);
    }
    h->failed_tail = NULL;
    h->dispatching--;
    while (h->idle) {
        http_xfer_t *x = h->idle;
        h->idle = x->next;
        curl_easy_cleanup(x->easy);
        free(x);
    }
    h->nidle = 0;
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        http_sock_close(h, h->socks);
    uv_close((uv_handle_t *)&h->timer, http_timer_closed);
    uv_close((uv_handle_t *)&h->defer, http_timer_closed);
}

int http_init(http_t **hp, uv_loop_t *loop, const http_config_t *cfg, char *err, size_t errlen)
{
    *hp = NULL;
    http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "http: out of memory");
        return -ENOMEM;
    }
    h->loop = loop;
    if (cfg) h->cfg = *cfg;
    http_config_t *c = &h->cfg;
    if (c->connect_timeout_ms <= 0) c->connect_timeout_ms = 5000;
    if (c->timeout_ms <= 0) c->timeout_ms = 15000;
    if (c->max_inflight <= 0) c->max_inflight = 512;
    if (c->max_per_endpoint <= 0) c->max_per_endpoint = 16;
    if (c->max_connects <= 0) c->max_connects = 256;
    if (!c->body_cap) c->body_cap = 65536;
    if (!c->body_max) c->body_max = 1024 * 1024;
    if (c->body_max < c->body_cap) c->body_max = c->body_cap;
    if (!c->headers_cap) c->headers_cap = 16384;
    c->ca_file = NULL;
    if (cfg && cfg->ca_file && !(h->ca_file = strdup(cfg->ca_file))) {
        free(h);
        snprintf(err, errlen, "http: out of memory");
        return -ENOMEM;
    }
    h->nbuckets = 64;
    h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
    h->multi = curl_multi_init();
    if (!h->buckets || !h->multi) {
        if (h->multi) curl_multi_cleanup(h->multi);
        free(h->buckets);
        free(h->ca_file);
        free(h);
        snprintf(err, errlen, "http: cannot create the libcurl multi handle");
        return -ENOMEM;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_fn);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, c->max_connects);
    uv_timer_init(loop, &h->timer);
    uv_timer_init(loop, &h->defer);
    h->timer.data = h;
    h->defer.data = h;
    h->open_handles = 2;
    *hp = h;
    return 0;
}

int http_submit(http_t *h, http_request_t *req)
{
    if (!h || !req || !req->url || !req->done) return -EINVAL;
    if (h->closing) return -ECANCELED;
    memset(&req->priv, 0, sizeof(req->priv));
    char *key = NULL;
    int code = 0;
    int kind = http_url_key(req->url, &key, &code);
    if (kind != HTTP_FAIL_NONE) {
        http_defer_fail(h, req, kind, code);
        return 0;
    }
    if (req->endpoint) {
        free(key);
        if (!(key = strdup(req->endpoint))) {
            http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
            return 0;
        }
    }
    http_endpoint_t *ep = http_ep_get(h, key);
    if (!ep) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return 0;
    }
    req->priv.ep = ep;
    if (ep->qtail)
        ep->qtail->priv.next = req;
    else
        ep->qhead = req;
    ep->qtail = req;
    ep->queued++;
    h->queued++;
    http_ep_ready(h, ep);
    if (!h->dispatching) /* else http_after_dispatch pumps once the callbacks return */
        http_pump(h);
    return 0;
}

int http_unqueue(http_t *h, http_request_t *req)
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
    return 0;
}

void http_stats(const http_t *h, http_stats_t *out)
{
    *out = h->st;
    out->inflight = h->inflight;
    out->queued = h->queued;
}

void http_close(http_t *h, void (*closed)(void *arg), void *arg)
{
    if (!h || h->closing) return;
    h->closing = 1;
    h->closed = closed;
    h->closed_arg = arg;
    uv_timer_stop(&h->defer);
    if (!h->dispatching) http_teardown(h);
}
