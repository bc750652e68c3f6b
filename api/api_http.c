/* api_http.c - hook-api's HTTP server: libmicrohttpd driven from the libuv loop (its epoll fd in
 * a uv_poll, its timeout in a uv_timer), request bodies up to API_BODY_MAX, a total deadline per
 * request, route dispatch with auth, and the request accessors and answers of api.h. */
#include "api_int.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One TCP connection (MHD_OPTION_NOTIFY_CONNECTION): its fd, so the sweep can cut it when its
 * request outlives --request-timeout-ms (MHD's own timeout only counts idle time). */
struct api_conn {
    TAILQ_ENTRY(api_conn) link;
    int fd;
    uint64_t deadline; /* uv_now ms */
    int cut;
    api_req_t *req; /* the request being served, if any */
};

typedef struct api_hdr {
    char *name, *value;
} api_hdr_t;

struct api_req {
    api_t *a;
    struct MHD_Connection *conn;
    api_conn_t *ac;
    char method[16];
    char *path;
    const api_route_t *route;
    char *params[API_MAX_PARAMS];
    int nparams;
    char *body;
    size_t len, cap;
    int too_big;
    api_principal_t who;
    int dispatched;    /* the handler ran */
    int suspended;     /* api_suspend was called and no answer yet */
    int mhd_suspended; /* MHD_suspend_connection is in force */
    int queued;        /* MHD has the answer */
    struct MHD_Response *resp;
    unsigned status;
    api_hdr_t *hdrs;
    size_t nhdrs;
    char **strs; /* api_query results, freed with the request */
    size_t nstrs;
    uint64_t t0;
};

static void api_http_run(api_t *a);

/* --- small helpers --- */

/* api_hex: the value of a hex digit, or -1. */
static int api_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* api_decode: percent-decoded copy of n bytes of s (malloc'd), or NULL (bad escape, %00, or out
 * of memory). */
static char *api_decode(const char *s, size_t n)
{
    char *o = malloc(n + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? api_hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? api_hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(o);
                return NULL;
            }
            *p++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *p++ = s[i];
        }
    }
    *p = '\0';
    return o;
}

/* api_unescape_none: MHD's unescaping is off; segments and query values are decoded here, after
 * the path is split, so "%2F" inside a segment stays inside it. */
static size_t api_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* api_mhd_log sends libmicrohttpd's messages to our log. */
static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http: %s", msg);
}

/* --- the loop side --- */

/* api_kick makes MHD run on the next loop iteration (after a resume, a cut). */
static void api_on_timer(uv_timer_t *t);
static void api_kick(api_t *a)
{
    a->kick = 1;
    if (a->timers_init && a->mhd) uv_timer_start(&a->timer, api_on_timer, 0, 0);
}

/* api_http_run lets MHD do its work, then arms the timer for its next timeout. */
static void api_http_run(api_t *a)
{
    if (!a->mhd) return;
    a->kick = 0;
    MHD_run(a->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (a->kick) /* asked for during the run (a resume, a connection closed) */
        uv_timer_start(&a->timer, api_on_timer, 0, 0);
    else if (MHD_get_timeout(a->mhd, &ms) == MHD_YES)
        uv_timer_start(&a->timer, api_on_timer, ms, 0);
    else
        uv_timer_stop(&a->timer);
}

static void api_on_timer(uv_timer_t *t)
{
    api_http_run(t->data);
}

static void api_on_poll(uv_poll_t *p, int status, int events)
{
    api_http_run(p->data);
}

/* api_on_sweep cuts connections whose request is past its deadline (not ones whose handler is
 * still working: that one answers, and the answer gets a fresh window). */
static void api_on_sweep(uv_timer_t *t)
{
    api_t *a = t->data;
    uint64_t now = uv_now(t->loop);
    int cut = 0;
    api_conn_t *c;
    TAILQ_FOREACH(c, &a->conns, link)
    {
        if (c->cut || now < c->deadline || (c->req && c->req->suspended)) continue;
        c->cut = 1;
        cut++;
        shutdown(c->fd, SHUT_RDWR);
    }
    if (cut) {
        log_info("cut %d connection%s past --request-timeout-ms %" PRId64, cut, cut == 1 ? "" : "s",
                 a->request_timeout_ms);
        api_kick(a);
    }
    if (a->nconns == 0) uv_timer_stop(&a->sweep);
}

/* api_on_connection tracks connections for the sweep. */
static void api_on_connection(void *cls, struct MHD_Connection *conn, void **ctx,
                              enum MHD_ConnectionNotificationCode toe)
{
    api_t *a = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        api_conn_t *c = calloc(1, sizeof *c);
        if (!c) return; /* not tracked: MHD's idle timeout still applies */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        c->deadline = uv_now(daemon_loop(a->d)) + (uint64_t)a->request_timeout_ms;
        TAILQ_INSERT_TAIL(&a->conns, c, link);
        a->nconns++;
        *ctx = c;
        if (c->fd >= 0 && !uv_is_active((uv_handle_t *)&a->sweep)) {
            uint64_t every = (uint64_t)a->request_timeout_ms / 10;
            if (every < 10) every = 10;
            if (every > 200) every = 200;
            uv_timer_start(&a->sweep, api_on_sweep, every, every);
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        api_conn_t *c = *ctx;
        if (!c) return;
        if (c->req) c->req->ac = NULL;
        TAILQ_REMOVE(&a->conns, c, link);
        a->nconns--;
        free(c);
        *ctx = NULL;
        /* At --max-connections MHD stops polling the listening socket; it looks again on its
         * next run, which must come now, not at the next event. */
        api_kick(a);
    }
}

/* --- answering --- */

/* api_give hands the prepared answer to MHD (on the access handler's stack). */
static void api_give(api_req_t *r)
{
    if (MHD_queue_response(r->conn, r->status, r->resp) != MHD_YES)
        log_warn("%s %s: cannot queue the %u answer", r->method, r->path, r->status);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->queued = 1;
}

/* api_answer takes a built response: given at once inside the handler, or after resuming a
 * suspended connection. */
static void api_answer(api_req_t *r, unsigned status, struct MHD_Response *resp)
{
    if (r->resp || r->queued) {
        log_error("%s %s: answered twice (%u after %u)", r->method, r->path, status, r->status);
        if (resp) MHD_destroy_response(resp);
        return;
    }
    if (!resp) {
        log_error("%s %s: out of memory building the answer", r->method, r->path);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 500;
        if (!resp) return;
    }
    for (size_t i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
    r->status = status;
    r->resp = resp;
    r->suspended = 0;
    if (r->mhd_suspended) {
        r->mhd_suspended = 0;
        if (r->ac) r->ac->deadline = uv_now(daemon_loop(r->a->d)) + r->a->request_timeout_ms;
        MHD_resume_connection(r->conn);
        api_kick(r->a);
    }
}

void api_reply_raw(api_req_t *r, unsigned status, const char *content_type, const void *data,
                   size_t len, int is_static)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data, is_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    if (resp && content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    api_answer(r, status, resp);
}

void api_reply_json(api_req_t *r, unsigned status, json_t *body)
{
    if (!body) {
        api_answer(r, status,
                   MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text) {
        api_answer(r, 500, NULL);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
    } else {
        MHD_add_response_header(resp, "Content-Type", "application/json");
    }
    api_answer(r, status, resp);
}

void api_reply_error(api_req_t *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

void api_reply_header(api_req_t *r, const char *name, const char *value)
{
    api_hdr_t *h = realloc(r->hdrs, (r->nhdrs + 1) * sizeof *h);
    if (!h) return;
    r->hdrs = h;
    h[r->nhdrs].name = strdup(name);
    h[r->nhdrs].value = strdup(value);
    if (!h[r->nhdrs].name || !h[r->nhdrs].value) {
        free(h[r->nhdrs].name);
        free(h[r->nhdrs].value);
        return;
    }
    r->nhdrs++;
}

void api_suspend(api_req_t *r)
{
    if (!r->resp && !r->queued) r->suspended = 1;
}

/* --- the request --- */

const char *api_method(const api_req_t *r)
{
    return r->method;
}

const char *api_path(const api_req_t *r)
{
    return r->path;
}

const char *api_param(const api_req_t *r, int i)
{
    return i >= 0 && i < r->nparams ? r->params[i] : NULL;
}

const char *api_query(const api_req_t *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return NULL;
    char *d = api_decode(v, strlen(v));
    if (!d) return NULL;
    api_req_t *w = (api_req_t *)r; /* the copy lives as long as the request */
    char **s = realloc(w->strs, (w->nstrs + 1) * sizeof *s);
    if (!s) {
        free(d);
        return NULL;
    }
    w->strs = s;
    s[w->nstrs++] = d;
    return d;
}

const char *api_header(const api_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *api_body(const api_req_t *r, size_t *len)
{
    if (len) *len = r->len;
    return r->body ? r->body : "";
}

json_t *api_body_json(api_req_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(api_body(r, NULL), r->len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        api_reply_error(r, 400, "request body: line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_reply_error(r, 400, "request body: must be a JSON object");
        return NULL;
    }
    return j;
}

const api_principal_t *api_who(const api_req_t *r)
{
    return &r->who;
}

api_t *api_of(const api_req_t *r)
{
    return r->a;
}

daemon_t *api_daemon(api_t *a)
{
    return a->d;
}

store_t *api_store(api_t *a)
{
    return cfgwatch_store(a->cfg);
}

const config_t *api_config(api_t *a)
{
    return cfgwatch_config(a->cfg);
}

int64_t api_portal_ttl(const api_t *a)
{
    return a->portal_ttl;
}

const char *api_public_url(const api_t *a)
{
    return a->public_url;
}

void api_healthz(api_req_t *r)
{
    api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* --- routing --- */

/* api_route_match: path against pattern; captures go to params (decoded, malloc'd). Returns 1
 * on a match, 0 on none, -1 on a bad escape in a captured segment. */
static int api_route_match(const char *pattern, const char *path, char **params, int *np)
{
    const char *p = pattern, *s = path;
    int n = 0, rc = 1;
    if (strcmp(pattern, "/") == 0) return strcmp(path, "/") == 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/') {
            rc = 0;
            break;
        }
        p++;
        s++;
        const char *pe = strchrnul(p, '/'), *se = strchrnul(s, '/');
        size_t pl = (size_t)(pe - p), sl = (size_t)(se - s);
        if (pl == 2 && p[0] == '{' && p[1] == '}') {
            if (sl == 0 || n >= API_MAX_PARAMS) {
                rc = 0;
                break;
            }
            if (!(params[n] = api_decode(s, sl))) {
                rc = -1;
                break;
            }
            n++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            rc = 0;
            break;
        }
        p = pe;
        s = se;
    }
    if (rc == 1 && (*p || *s)) rc = 0;
    if (rc != 1) {
        for (int i = 0; i < n; i++)
            free(params[i]);
        n = 0;
    }
    *np = n;
    return rc;
}

/* api_route_find picks r's route; answers 404, 405 (with Allow) or 400 itself when none fits.
 * Returns 1 when a route was found. */
static int api_route_find(api_req_t *r)
{
    char allow[256] = "";
    int bad = 0;
    for (const api_route_t *rt = api_routes; rt->method; rt++) {
        char *params[API_MAX_PARAMS];
        int np = 0;
        int m = api_route_match(rt->pattern, r->path, params, &np);
        if (m < 0) bad = 1;
        if (m <= 0) continue;
        if (strcmp(rt->method, r->method) == 0) {
            r->route = rt;
            memcpy(r->params, params, sizeof(char *) * (size_t)np);
            r->nparams = np;
            return 1;
        }
        for (int i = 0; i < np; i++)
            free(params[i]);
        if (!strstr(allow, rt->method) && strlen(allow) + strlen(rt->method) + 3 < sizeof allow) {
            if (allow[0]) strcat(allow, ", ");
            strcat(allow, rt->method);
        }
    }
    if (allow[0]) {
        api_reply_header(r, "Allow", allow);
        api_reply_error(r, 405, "method %s not allowed on %s (allowed: %s)", r->method, r->path,
                        allow);
    } else if (bad) {
        api_reply_error(r, 400, "path: bad percent-encoding in %s", r->path);
    } else {
        api_reply_error(r, 404, "no such path: %s", r->path);
    }
    return 0;
}

/* api_req_free releases a request. */
static void api_req_free(api_req_t *r)
{
    if (r->resp) MHD_destroy_response(r->resp);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    for (size_t i = 0; i < r->nstrs; i++)
        free(r->strs[i]);
    free(r->strs);
    free(r->hdrs);
    free(r->body);
    free(r->path);
    free(r);
}

/* api_begin: a request's headers are in: its route, the declared body size and the token are
 * checked before any body is read. */
static api_req_t *api_begin(api_t *a, struct MHD_Connection *conn, const char *url,
                            const char *method)
{
    api_req_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->a = a;
    r->conn = conn;
    r->t0 = uv_now(daemon_loop(a->d));
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strdup(url);
    if (!r->path) {
        free(r);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->ac = ci ? ci->socket_context : NULL;
    if (r->ac) r->ac->req = r;
    a->inflight++;

    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
        api_reply_error(r, 413, "request body: over %u bytes (Content-Length %s)", API_BODY_MAX,
                        cl);
        return r;
    }
    if (!api_route_find(r)) return r;
    if (r->route->auth != API_AUTH_NONE)
        api_auth_check(r, r->route->auth, r->nparams > 0 ? r->params[0] : NULL, &r->who);
    return r;
}

/* api_dispatch runs the handler once the body is in. */
static void api_dispatch(api_req_t *r)
{
    r->dispatched = 1;
    if (r->too_big) {
        api_reply_error(r, 413, "request body: over %u bytes", API_BODY_MAX);
        return;
    }
    cfgwatch_refresh(r->a->cfg); /* a change made elsewhere is in force for this request */
    r->route->fn(r);
    if (!r->resp && !r->suspended) {
        log_error("%s %s: handler returned without answering", r->method, r->path);
        api_reply_error(r, 500, "internal error: no answer");
    }
}

/* api_access is MHD's access handler: called with the headers, with each piece of body, and
 * once more at the end (and again after a resume). */
static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    api_t *a = cls;
    api_req_t *r = *con_cls;
    if (!r) {
        if (!(r = api_begin(a, conn, url, method))) return MHD_NO;
        *con_cls = r;
        /* An early answer (404, 401, 413...) goes out before the body is read; without a body
         * it waits for the final call, so the connection stays open for the next request. */
        if (r->resp && (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length") ||
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding")))
            api_give(r);
        return MHD_YES;
    }
    if (r->queued) { /* answered early: what else the client sends is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->len + n > API_BODY_MAX) {
            r->too_big = 1;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b) return MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (!r->dispatched && !r->resp) api_dispatch(r);
    if (r->resp) {
        api_give(r);
    } else if (r->suspended && !r->mhd_suspended) {
        r->mhd_suspended = 1;
        MHD_suspend_connection(conn);
    }
    return MHD_YES;
}

/* api_completed frees a request once MHD is done with it (sent, or the client went away). */
static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    api_t *a = cls;
    api_req_t *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    uint64_t now = uv_now(daemon_loop(a->d));
    log_debug("%s %s %u %" PRIu64 " ms%s", r->method, r->path, r->status, now - r->t0,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (not completed)");
    if (r->ac) {
        r->ac->req = NULL;
        r->ac->deadline = now + (uint64_t)a->request_timeout_ms; /* the next request's window */
    }
    a->inflight--;
    api_req_free(r);
}

/* --- start and stop --- */

/* api_bind parses HOST:PORT ("[::1]:8080" too), binds and listens. Returns the fd or a
 * negative errno after logging why. */
static int api_bind(api_t *a)
{
    char host[256];
    const char *colon = strrchr(a->listen, ':');
    if (!colon || colon == a->listen || !colon[1] || (size_t)(colon - a->listen) >= sizeof host) {
        log_error("--listen: want HOST:PORT, got '%s'", a->listen);
        return -EINVAL;
    }
    const char *h = a->listen;
    size_t hl = (size_t)(colon - a->listen);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g != 0) {
        log_error("--listen %s: %s", a->listen, gai_strerror(g));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) e = errno;
    }
    if (e == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
            e = errno;
        else if (ss.ss_family == AF_INET6)
            a->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        else
            a->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    freeaddrinfo(res);
    if (e) {
        log_error("--listen %s: %s", a->listen, strerror(e));
        if (fd >= 0) close(fd);
        return -e;
    }
    return fd;
}

int api_http_start(api_t *a)
{
    uv_loop_t *loop = daemon_loop(a->d);
    int fd = api_bind(a);
    if (fd < 0) return fd;
    a->listen_fd = fd;
    unsigned idle_s = (unsigned)((a->request_timeout_ms + 999) / 1000);
    a->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, api_access, a,
        MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, a, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        idle_s, MHD_OPTION_NOTIFY_COMPLETED, api_completed, a, MHD_OPTION_NOTIFY_CONNECTION,
        api_on_connection, a, MHD_OPTION_UNESCAPE_CALLBACK, api_unescape_none, a, MHD_OPTION_END);
    if (!a->mhd) {
        log_error("cannot start the HTTP server on %s", a->listen);
        return -EIO; /* api_http_stop closes the socket */
    }
    a->listen_fd = -1; /* MHD's now: MHD_stop_daemon closes it */
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        log_error("HTTP server: no epoll fd");
        return -EIO;
    }
    uv_timer_init(loop, &a->timer);
    uv_timer_init(loop, &a->sweep);
    a->timer.data = a->sweep.data = a;
    a->timers_init = 1;
    a->handles_open += 2;
    int r = uv_poll_init(loop, &a->poll, di->epoll_fd);
    if (r < 0) {
        log_error("HTTP server: uv_poll_init: %s", uv_strerror(r));
        return r;
    }
    a->poll.data = a;
    a->poll_init = 1;
    a->handles_open++;
    if ((r = uv_poll_start(&a->poll, UV_READABLE, api_on_poll)) < 0) {
        log_error("HTTP server: uv_poll_start: %s", uv_strerror(r));
        return r;
    }
    api_http_run(a);
    return 0;
}

void api_http_quiesce(api_t *a)
{
    if (!a->mhd) return;
    MHD_socket fd = MHD_quiesce_daemon(a->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd); /* new connections are refused from now on */
    a->listen_fd = -1;
    log_info("draining: %zu request%s in flight, %zu connection%s open", a->inflight,
             a->inflight == 1 ? "" : "s", a->nconns, a->nconns == 1 ? "" : "s");
    api_kick(a);
}

int api_http_idle(api_t *a)
{
    return a->inflight == 0;
}

/* api_http_closed counts the server's handles closed. */
static void api_http_closed(uv_handle_t *h)
{
    api_t *a = h->data;
    a->handles_open--;
}

void api_http_stop(api_t *a)
{
    if (a->mhd) {
        /* A request whose handler still waits is answered now, so MHD can let it go. */
        api_conn_t *c;
        int n = 0;
        TAILQ_FOREACH(c, &a->conns, link)
        if (c->req && c->req->mhd_suspended) {
            api_reply_error(c->req, 503, "hook-api is stopping");
            n++;
        }
        if (n) MHD_run(a->mhd);
        if (a->poll_init) uv_poll_stop(&a->poll);
        MHD_stop_daemon(a->mhd); /* closes every connection, calling api_completed */
        a->mhd = NULL;
    }
    if (a->listen_fd >= 0) close(a->listen_fd);
    a->listen_fd = -1;
    if (a->poll_init) uv_close((uv_handle_t *)&a->poll, api_http_closed);
    if (a->timers_init) {
        uv_close((uv_handle_t *)&a->timer, api_http_closed);
        uv_close((uv_handle_t *)&a->sweep, api_http_closed);
    }
    a->poll_init = a->timers_init = 0;
}
