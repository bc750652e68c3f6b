/* http_xfer.c - the HTTP engine's transfers: a pool of easy handles whose constant options are
 * set once, the per-request options, and the capture of response headers and body. */
#include "http_int.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of a response body buffer a pooled handle keeps for its next transfer. */
#define HTTP_KEEP_BODY 4096

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

/* http_xfer_const: the options every transfer of this handle shares, set once. Returns the
 * first failing CURLcode. */
static CURLcode http_xfer_const(http_t *h, http_xfer_t *x)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
#define HTTP_SET(opt, val)                                                                         \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(e, opt, val);                                               \
        if (c_ != CURLE_OK && rc == CURLE_OK) rc = c_;                                             \
    } while (0)
    HTTP_SET(CURLOPT_PRIVATE, x);
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
    HTTP_SET(CURLOPT_WRITEFUNCTION, http_write_cb);
    HTTP_SET(CURLOPT_WRITEDATA, x);
    HTTP_SET(CURLOPT_HEADERFUNCTION, http_header_cb);
    HTTP_SET(CURLOPT_HEADERDATA, x);
    HTTP_SET(CURLOPT_ERRORBUFFER, x->errbuf);
#undef HTTP_SET
    if (rc == CURLE_OK) rc = http_uv_setopts(h, x);
    return rc;
}

/* http_xfer_get: an easy handle from the pool, or a new one with its constant options. NULL
 * on ENOMEM. */
static http_xfer_t *http_xfer_get(http_t *h)
{
    http_xfer_t *x = h->idle;
    if (x) {
        h->idle = x->next;
        h->nidle--;
        x->next = NULL;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->h = h;
    x->easy = curl_easy_init();
    if (!x->easy || http_xfer_const(h, x) != CURLE_OK) {
        if (x->easy) curl_easy_cleanup(x->easy);
        free(x);
        return NULL;
    }
    return x;
}

/* http_xfer_clean: drop a transfer's per-request state, keeping the easy handle, its options
 * and small buffers. */
static void http_xfer_clean(http_xfer_t *x)
{
    http_header_clear(x);
    if (x->rh_alloc > 64) {
        free(x->rh);
        x->rh = NULL;
        x->rh_alloc = 0;
    }
    if (x->body_alloc > HTTP_KEEP_BODY) {
        free(x->body);
        x->body = NULL;
        x->body_alloc = 0;
    }
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->req = NULL;
    x->body_len = x->body_seen = 0;
    x->truncated = x->too_big = 0;
    x->guard_refused = x->guard_passed = 0;
    x->start_ns = 0;
    x->errbuf[0] = '\0';
    x->prev = x->next = NULL;
}

/* http_xfer_destroy: free a handle and everything it holds. */
static void http_xfer_destroy(http_xfer_t *x)
{
    http_xfer_clean(x);
    free(x->rh);
    free(x->body);
    curl_easy_cleanup(x->easy);
    free(x);
}

void http_xfer_put(http_t *h, http_xfer_t *x)
{
    if (h->closing || h->nidle >= (size_t)h->cfg.max_inflight) {
        http_xfer_destroy(x);
        return;
    }
    http_xfer_clean(x);
    x->next = h->idle;
    h->idle = x;
    h->nidle++;
}

void http_xfer_free_pool(http_t *h)
{
    while (h->idle) {
        http_xfer_t *x = h->idle;
        h->idle = x->next;
        http_xfer_destroy(x);
    }
    h->nidle = 0;
}

/* http_xfer_headers: the header list of req: the caller's, or one built from its lines with
 * "Expect:" added (no 100-continue round trip: receivers answer the whole POST). 0 or
 * -ENOMEM. */
static int http_xfer_headers(http_xfer_t *x, const http_request_t *req)
{
    if (req->header_list) return 0;
    for (size_t i = 0; i <= req->n_headers; i++) {
        struct curl_slist *l =
            curl_slist_append(x->hdrs, i < req->n_headers ? req->headers[i] : "Expect:");
        if (!l) return -ENOMEM;
        x->hdrs = l;
    }
    return 0;
}

/* http_xfer_setopts: the options that change per request. Returns the first failing code. */
static CURLcode http_xfer_setopts(http_xfer_t *x, const http_request_t *req)
{
    CURL *e = x->easy;
    struct curl_slist *hl = req->header_list ? (struct curl_slist *)req->header_list : x->hdrs;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, req->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    return rc;
}

void http_xfer_start(http_t *h, http_request_t *req)
{
    http_xfer_t *x = http_xfer_get(h);
    if (!x) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return;
    }
    x->req = req;
    if (http_xfer_headers(x, req) < 0 || http_xfer_setopts(x, req) != CURLE_OK) {
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
    x->prev = NULL;
    x->next = h->active;
    if (h->active) h->active->prev = x;
    h->active = x;
    h->inflight++;
    req->priv.ep->inflight++;
    if (req->priv.host) req->priv.host->busy++;
}

void http_xfer_unlink(http_t *h, http_xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->active = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
    curl_multi_remove_handle(h->multi, x->easy);
    http_request_t *req = x->req;
    h->inflight--;
    req->priv.ep->inflight--;
    if (req->priv.host) req->priv.host->busy--;
    http_ep_ready(h, req->priv.ep);
}
