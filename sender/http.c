/* http.c - the sender's HTTP engine, its interface: submitting and taking back requests,
 * turning finished transfers into results, stats, and closing (the parts: http_ring.c,
 * http_xfer.c, http_uv.c, http_err.c, behind http_int.h). */
#include "http_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void http_teardown(http_t *h);
static void http_defer_cb(uv_timer_t *t);

/* http_ms: nanoseconds since start, in milliseconds. */
static uint64_t http_ms(uint64_t start_ns)
{
    return (uv_hrtime() - start_ns) / 1000000u;
}

void http_defer_fail(http_t *h, http_request_t *req, int kind, int code)
{
    if (req->priv.host) http_host_put(h, req->priv.host);
    req->priv.host = NULL;
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
    http_err_early(req, msg, sizeof(msg));
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

/* http_finish: turn a finished transfer into a result, deliver it, recycle the handle. */
static void http_finish(http_t *h, http_xfer_t *x, CURLcode code)
{
    http_request_t *req = x->req;
    http_endpoint_t *ep = req->priv.ep;
    http_host_t *host = req->priv.host;
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
            http_err_describe(h, x, code, words, sizeof(words));
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

    http_xfer_unlink(h, x);
    http_deliver(h, req, &res);
    http_xfer_put(h, x);
    http_ep_maybe_free(h, ep);
    if (host) http_host_put(h, host);
}

void http_check_multi(http_t *h)
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

void http_handle_gone(http_t *h)
{
    if (--h->open_handles > 0 || !h->torn_down) return;
    void (*closed)(void *) = h->closed;
    void *arg = h->closed_arg;
    free(h->ca_file);
    http_ring_free(h);
    free(h);
    if (closed) closed(arg);
}

/* http_teardown: cancel everything, release libcurl, close the uv handles. */
static void http_teardown(http_t *h)
{
    h->torn_down = 1;
    h->dispatching++;
    while (h->active) {
        http_xfer_t *x = h->active;
        http_request_t *req = x->req;
        http_host_t *host = req->priv.host;
        uint64_t ms = http_ms(x->start_ns);
        http_xfer_unlink(h, x);
        http_deliver_words(h, req, HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, "cancelled",
                           ms);
        http_xfer_put(h, x);
        if (host) http_host_put(h, host);
    }
    http_ring_cancel_all(h);
    while (h->failed_head) {
        http_request_t *req = h->failed_head;
        h->failed_head = req->priv.next;
        http_deliver_words(h, req, HTTP_OUTCOME_CANCELLED, CURLE_ABORTED_BY_CALLBACK, "cancelled",
                           0);
    }
    h->failed_tail = NULL;
    h->dispatching--;
    http_xfer_free_pool(h);
    curl_multi_cleanup(h->multi); /* closes the cached connections through http_uv.c */
    h->multi = NULL;
    http_uv_close(h);
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
    if (c->max_connects <= 0) c->max_connects = HTTP_DEFAULT_MAX_CONNECTS;
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
    h->multi = curl_multi_init();
    if (http_tab_init(&h->eps) < 0 || http_tab_init(&h->hosts) < 0 || !h->multi) {
        if (h->multi) curl_multi_cleanup(h->multi);
        http_ring_free(h);
        free(h->ca_file);
        free(h);
        snprintf(err, errlen, "http: cannot create the libcurl multi handle");
        return -ENOMEM;
    }
    http_uv_init(h);
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
    http_host_t *host = http_host_get(h, key);
    if (!host) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return 0;
    }
    req->priv.host = host;
    if (!(key = strdup(req->endpoint ? req->endpoint : host->key))) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return 0;
    }
    http_endpoint_t *ep = http_ep_get(h, key);
    if (!ep) {
        http_defer_fail(h, req, HTTP_FAIL_NOMEM, 0);
        return 0;
    }
    req->priv.ep = ep;
    http_ep_push(h, req);
    if (!h->dispatching) /* else http_after_dispatch pumps once the callbacks return */
        http_pump(h);
    return 0;
}

int http_unqueue(http_t *h, http_request_t *req)
{
    return http_ep_unqueue(h, req);
}

/* The constant tail of a caller's header list (http_header_tail). libcurl only reads it. */
static struct curl_slist http_tail_accept = {(char *)"Accept:", NULL};
static struct curl_slist http_tail_expect = {(char *)"Expect:", &http_tail_accept};

const struct curl_slist *http_header_tail(void)
{
    return &http_tail_expect;
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
