/* api_events.c - POST /v1/projects/{p}/events: one event published through ingest's producer
 * socket (DATA/run/ingest.sock, JSON Lines, docs/PROTOCOL.md) without blocking the loop. One
 * persistent connection carries every request's line; ingest answers each line once, in order,
 * so the replies pair with a FIFO of suspended requests. 202 comes only with ingest's accepted
 * reply (the event is in its journal, synced per --fsync); a rejection is 400 with ingest's
 * reason; no connection, a dropped one, or no answer in time is 503 (then the link is closed
 * and the next request dials again; retrying an event with an id is safe: a duplicate). */
#include "api.h"

#include "util/log.h"
#include "util/tree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define EVENTS_ANSWER_MS 10000 /* ingest must answer a line within this, else 503 */
#define EVENTS_REPLY_MAX 65536 /* a reply line longer than this is a broken peer */

/* One suspended request: its line (until written) and when it was sent. */
typedef struct events_wait {
    TAILQ_ENTRY(events_wait) link;
    api_req_t *r;
    char *line; /* the event and '\n'; NULL once handed to uv_write */
    size_t len;
    uint64_t since_ms;
} events_wait_t;
TAILQ_HEAD(events_wait_list, events_wait);

/* The connection to ingest. Freed in its pipe's close callback, after the timer's. */
typedef struct events_link {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_timer_t timer;
    int connected, closing, handles; /* handles: not yet through their close callback */
    struct events_wait_list waits;   /* in the order sent (and to be sent) */
    char *in;
    size_t inlen, incap;
} events_link_t;

/* One write; frees its buffer when done. */
typedef struct events_write {
    uv_write_t req;
    char *buf;
} events_write_t;

static events_link_t *events_link; /* the one in use, NULL when none (the next request dials) */

/* events_wait_free frees a wait record (the request was answered). */
static void events_wait_free(events_wait_t *w)
{
    free(w->line);
    free(w);
}

/* events_handle_closed frees the link once both of its handles are closed. */
static void events_handle_closed(uv_handle_t *h)
{
    events_link_t *l = h->data;
    if (--l->handles == 0) {
        free(l->in);
        free(l);
    }
}

/* events_link_drop answers every waiting request 503 with why and closes the link. */
static void events_link_drop(events_link_t *l, const char *why)
{
    events_wait_t *w;
    if (l->closing) return;
    l->closing = 1;
    if (events_link == l) events_link = NULL;
    while ((w = TAILQ_FIRST(&l->waits))) {
        TAILQ_REMOVE(&l->waits, w, link);
        api_reply_error(w->r, 503, "ingest unreachable: %s", why);
        events_wait_free(w);
    }
    uv_close((uv_handle_t *)&l->timer, events_handle_closed);
    uv_close((uv_handle_t *)&l->pipe, events_handle_closed);
}

/* events_written frees a write; a failed one drops the link. */
static void events_written(uv_write_t *req, int status)
{
    events_write_t *wr = (events_write_t *)req;
    events_link_t *l = req->handle->data;
    free(wr->buf);
    free(wr);
    if (status < 0 && status != UV_ECANCELED) {
        char why[128];
        snprintf(why, sizeof why, "write: %s", uv_strerror(status));
        events_link_drop(l, why);
    }
}

/* events_send_line hands w's line to the connected pipe. Returns 0 or a libuv error. */
static int events_send_line(events_link_t *l, events_wait_t *w)
{
    events_write_t *wr = malloc(sizeof *wr);
    if (!wr) return UV_ENOMEM;
    wr->buf = w->line;
    w->line = NULL;
    uv_buf_t b = uv_buf_init(wr->buf, (unsigned)w->len);
    w->since_ms = uv_now(l->pipe.loop);
    int rc = uv_write(&wr->req, (uv_stream_t *)&l->pipe, &b, 1, events_written);
    if (rc < 0) {
        free(wr->buf);
        free(wr);
    }
    return rc;
}

/* events_answer answers the oldest waiting request with ingest's reply line. */
static void events_answer(events_link_t *l, const char *line, size_t n)
{
    events_wait_t *w = TAILQ_FIRST(&l->waits);
    json_error_t je;
    json_t *rep;
    if (!w) {
        events_link_drop(l, "a reply nobody asked for");
        return;
    }
    TAILQ_REMOVE(&l->waits, w, link);
    rep = json_loadb(line, n, 0, &je);
    json_t *ok = rep ? json_object_get(rep, "ok") : NULL;
    if (!json_is_boolean(ok)) {
        api_reply_error(w->r, 503, "ingest unreachable: an unreadable reply");
    } else if (json_is_true(ok)) {
        json_t *ids = json_object_get(rep, "ids");
        json_t *out =
            json_pack("{s:o,s:b}", "ids", json_is_array(ids) ? json_incref(ids) : json_array(),
                      "duplicate", json_is_true(json_object_get(rep, "duplicate")));
        api_reply_json(w->r, 202, out);
    } else {
        const char *why = json_string_value(json_object_get(rep, "error"));
        api_reply_error(w->r, 400, "%s", why ? why : "rejected by ingest (no reason given)");
    }
    json_decref(rep);
    events_wait_free(w);
}

static void events_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    events_link_t *l = h->data;
    if (l->incap - l->inlen < 4096) {
        size_t cap = l->incap ? l->incap * 2 : 8192;
        char *p = realloc(l->in, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        l->in = p;
        l->incap = cap;
    }
    *buf = uv_buf_init(l->in + l->inlen, (unsigned)(l->incap - l->inlen));
}

/* events_read splits what ingest sent into reply lines. */
static void events_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    events_link_t *l = s->data;
    size_t start = 0;
    if (n < 0) {
        char why[128];
        snprintf(why, sizeof why, "%s before it answered",
                 n == UV_EOF ? "ingest closed the connection" : uv_strerror((int)n));
        events_link_drop(l, why);
        return;
    }
    if (n == 0) return;
    if (!buf->base) {
        events_link_drop(l, "out of memory");
        return;
    }
    l->inlen += (size_t)n;
    for (;;) {
        char *nl = memchr(l->in + start, '\n', l->inlen - start);
        if (!nl) break;
        events_answer(l, l->in + start, (size_t)(nl - (l->in + start)));
        if (l->closing) return;
        start = (size_t)(nl - l->in) + 1;
    }
    memmove(l->in, l->in + start, l->inlen - start);
    l->inlen -= start;
    if (l->inlen > EVENTS_REPLY_MAX) events_link_drop(l, "a reply line too long");
}

/* events_tick: the oldest line unanswered for too long drops the link (ingest is stuck). */
static void events_tick(uv_timer_t *t)
{
    events_link_t *l = t->data;
    events_wait_t *w = TAILQ_FIRST(&l->waits);
    if (w && !w->line && uv_now(t->loop) - w->since_ms >= EVENTS_ANSWER_MS)
        events_link_drop(l, "no answer within 10 s");
}

/* events_connected sends the lines that waited for the connection. */
static void events_connected(uv_connect_t *req, int status)
{
    events_link_t *l = req->data;
    events_wait_t *w;
    char why[160];
    if (l->closing) return;
    if (status < 0) {
        snprintf(why, sizeof why, "cannot connect to run/ingest.sock: %s", uv_strerror(status));
        events_link_drop(l, why);
        return;
    }
    l->connected = 1;
    int rc = uv_read_start((uv_stream_t *)&l->pipe, events_alloc, events_read);
    TAILQ_FOREACH(w, &l->waits, link)
    if (rc == 0 && w->line) rc = events_send_line(l, w);
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", uv_strerror(rc));
        events_link_drop(l, why);
    }
}

/* events_link_open dials ingest's socket. NULL (logged) when no link could even start. */
static events_link_t *events_link_open(api_t *a)
{
    daemon_t *d = api_daemon(a);
    char path[PATH_MAX];
    events_link_t *l;
    if (snprintf(path, sizeof path, "%s/ingest.sock", daemon_run_dir(d)) >= (int)sizeof path)
        return NULL;
    if (!(l = calloc(1, sizeof *l))) return NULL;
    TAILQ_INIT(&l->waits);
    if (uv_pipe_init(daemon_loop(d), &l->pipe, 0) < 0) {
        free(l);
        return NULL;
    }
    uv_timer_init(daemon_loop(d), &l->timer);
    l->handles = 2;
    l->pipe.data = l->timer.data = l->connect.data = l;
    /* Neither keeps the loop running by itself: the HTTP requests waiting here do. */
    uv_unref((uv_handle_t *)&l->pipe);
    uv_unref((uv_handle_t *)&l->timer);
    uv_timer_start(&l->timer, events_tick, 1000, 1000);
    uv_pipe_connect(&l->connect, &l->pipe, path, events_connected);
    return l;
}

/* events_line builds the line sent to ingest: the event with project_id set to p. NULL after
 * answering 400 (or 500 when out of memory). */
static char *events_line(api_req_t *r, const char *p, size_t *len)
{
    json_t *ev = api_body_json(r);
    char *text, *line;
    if (!ev) return NULL;
    json_t *pj = json_object_get(ev, "project_id");
    if (pj && (!json_is_string(pj) || strcmp(json_string_value(pj), p) != 0)) {
        api_reply_error(r, 400, "project_id: must be \"%s\" (the project in the path) or left out",
                        p);
        json_decref(ev);
        return NULL;
    }
    if (!pj) json_object_set_new(ev, "project_id", json_string(p));
    text = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(ev);
    if (!text || !(line = malloc(strlen(text) + 2))) {
        free(text);
        api_reply_error(r, 500, "out of memory");
        return NULL;
    }
    *len = strlen(text) + 1;
    memcpy(line, text, *len - 1);
    line[*len - 1] = '\n';
    line[*len] = '\0';
    free(text);
    return line;
}

void api_events_publish(api_req_t *r)
{
    api_t *a = api_of(r);
    const char *p = api_param(r, 0);
    events_wait_t *w;
    size_t len = 0;
    char *line;

    if (!config_find_project(api_config(a), p)) {
        api_reply_error(r, 404, "no project \"%s\"", p);
        return;
    }
    if (!(line = events_line(r, p, &len))) return;
    if (!(w = calloc(1, sizeof *w))) {
        free(line);
        api_reply_error(r, 500, "out of memory");
        return;
    }
    w->r = r;
    w->line = line;
    w->len = len;
    if (!events_link && !(events_link = events_link_open(a))) {
        events_wait_free(w);
        api_reply_error(r, 503, "ingest unreachable: cannot open a connection");
        return;
    }
    events_link_t *l = events_link;
    api_suspend(r);
    TAILQ_INSERT_TAIL(&l->waits, w, link);
    if (l->connected) {
        int rc = events_send_line(l, w);
        if (rc < 0) {
            char why[128];
            snprintf(why, sizeof why, "write: %s", uv_strerror(rc));
            events_link_drop(l, why);
        }
    }
}
