/* test_http.c - the HTTP engine against a small threaded HTTP server on 127.0.0.1: results,
 * truncation, timeouts, refusals, the address guard, keep-alive reuse, watchers kept across
 * transfers, a caller's header list, reuse across 300 hosts, fairness, cancelling. */
#include "check.h"
#include "../../sender/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the test server: one accept thread, one thread per connection ---- */

#define SRV_MAX_FDS 320

typedef struct srv {
    int fd, port;
    int fds[SRV_MAX_FDS]; /* every listening socket (fds[0] == fd), nfds of them */
    int nfds;
    pthread_t th;
    atomic_int stop, accepts, conns, busy, max_busy;
    pthread_mutex_t mu;
    char last_head[8192];
    char *last_body;
    size_t last_body_len;
} srv_t;

typedef struct srv_conn {
    srv_t *s;
    int fd;
} srv_conn_t;

/* srv_wait_readable: poll fd until readable, stop, or ms elapse; 1 when readable. */
static int srv_wait_readable(srv_t *s, int fd, int ms)
{
    for (int waited = 0; !atomic_load(&s->stop) && waited < ms; waited += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, 50);
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return 0;
    }
    return 0;
}

/* srv_send: write everything (best effort). */
static void srv_send(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

/* srv_answer: status line, headers and a body of len bytes of 'x' (or text). */
static void srv_answer(int fd, const char *status, const char *extra, const char *text, size_t len)
{
    char head[512];
    if (text) len = strlen(text);
    /* Head and a short body in one write: no Nagle / delayed-ACK stall between them. */
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n%s", status,
                     len, extra ? extra : "", text ? text : "");
    srv_send(fd, head, (size_t)n);
    if (text) return;
    char chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    while (len) {
        size_t k = len < sizeof(chunk) ? len : sizeof(chunk);
        srv_send(fd, chunk, k);
        len -= k;
    }
}

/* srv_conn_main: serve requests on one connection until it closes. */
static void *srv_conn_main(void *arg)
{
    srv_conn_t *c = arg;
    srv_t *s = c->s;
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        char *end;
        buf[len] = '\0';
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            if (len == cap || !srv_wait_readable(s, c->fd, 10000)) goto out;
            ssize_t r = recv(c->fd, buf + len, cap - len, 0);
            if (r <= 0) goto out;
            len += (size_t)r;
            buf[len] = '\0';
        }
        size_t head_len = (size_t)(end - buf) + 4, body_len = 0;
        char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < end) body_len = strtoul(cl + 17, NULL, 10);
        while (len < head_len + body_len) {
            if (!srv_wait_readable(s, c->fd, 10000)) goto out;
            ssize_t r = recv(c->fd, buf + len, cap - len, 0);
            if (r <= 0) goto out;
            len += (size_t)r;
        }
        char path[128] = "";
        sscanf(buf, "%*s %127s", path);
        pthread_mutex_lock(&s->mu);
        snprintf(s->last_head, sizeof(s->last_head), "%.*s", (int)head_len, buf);
        free(s->last_body);
        s->last_body = malloc(body_len + 1);
        memcpy(s->last_body, buf + head_len, body_len);
        s->last_body[body_len] = '\0';
        s->last_body_len = body_len;
        pthread_mutex_unlock(&s->mu);
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;

        if (strcmp(path, "/ok") == 0) {
            srv_answer(c->fd, "200 OK", "X-Test: yes\r\n", "ok", 0);
        } else if (strcmp(path, "/fail") == 0) {
            srv_answer(c->fd, "500 Internal Server Error", NULL, "boom", 0);
        } else if (strcmp(path, "/redirect") == 0) {
            srv_answer(c->fd, "302 Found", "Location: http://127.0.0.1:1/\r\n", "", 0);
        } else if (strcmp(path, "/big") == 0) {
            srv_answer(c->fd, "200 OK", NULL, NULL, 200 * 1024);
        } else if (strcmp(path, "/huge") == 0) {
            srv_answer(c->fd, "200 OK", NULL, NULL, 2 * 1024 * 1024);
        } else if (strcmp(path, "/hugefail") == 0) {
            srv_answer(c->fd, "503 Service Unavailable", NULL, NULL, 2 * 1024 * 1024);
        } else if (strcmp(path, "/slow") == 0) {
            int now = atomic_fetch_add(&s->busy, 1) + 1;
            int seen = atomic_load(&s->max_busy);
            while (now > seen && !atomic_compare_exchange_weak(&s->max_busy, &seen, now))
                ;
            poll(NULL, 0, 300); /* the slow endpoint's think time */
            atomic_fetch_sub(&s->busy, 1);
            srv_answer(c->fd, "200 OK", NULL, "slow", 0);
        } else if (strcmp(path, "/halfhead") == 0) {
            /* A 200 status line, half a header, then a reset: no answer. */
            srv_send(c->fd, "HTTP/1.1 200 OK\r\nContent-Le", 27);
            poll(NULL, 0, 50);
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            goto out;
        } else if (strcmp(path, "/nocolon") == 0) {
            const char *a = "HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok";
            srv_send(c->fd, a, strlen(a));
            goto out;
        } else if (strcmp(path, "/garbage") == 0) {
            const char *a = "SPLORK 12\r\n\r\n";
            srv_send(c->fd, a, strlen(a));
            goto out;
        } else if (strcmp(path, "/bighead") == 0) {
            size_t n = 1 << 20;
            char *a = malloc(n);
            memset(a, 'b', n);
            const char *head = "HTTP/1.1 200 OK\r\nX-Big: ",
                       *tail = "\r\nContent-Length: 2\r\n\r\nok";
            srv_send(c->fd, head, strlen(head));
            srv_send(c->fd, a, n);
            srv_send(c->fd, tail, strlen(tail));
            free(a);
            goto out;
        } else if (strcmp(path, "/manyheaders") == 0) {
            /* 1000 headers of 70 bytes: a valid answer; only headers_cap bytes are kept. */
            char line[128];
            srv_send(c->fd, "HTTP/1.1 200 OK\r\n", 17);
            for (int i = 0; i < 1000; i++) {
                int n = snprintf(line, sizeof(line), "X-Filler-%04d: %060d\r\n", i, 0);
                srv_send(c->fd, line, (size_t)n);
            }
            srv_send(c->fd, "Content-Length: 2\r\n\r\nok", 23);
        } else if (strcmp(path, "/trickle") == 0) {
            /* The status line at once, then the head a byte every 50 ms. */
            const char *a = "X-Slow: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n\r\n";
            srv_send(c->fd, "HTTP/1.1 200 OK\r\n", 17);
            for (size_t i = 0; a[i] && !atomic_load(&s->stop); i++) {
                srv_send(c->fd, a + i, 1);
                poll(NULL, 0, 50);
            }
            goto out;
        } else if (strcmp(path, "/reset") == 0) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            goto out;
        } else if (strcmp(path, "/hang") == 0) {
            /* Never answer; wait for the client to give up. */
            while (srv_wait_readable(s, c->fd, 10000) && recv(c->fd, buf, cap, 0) > 0)
                ;
            goto out;
        } else {
            srv_answer(c->fd, "404 Not Found", NULL, "", 0);
        }
    }
out:
    free(buf);
    close(c->fd);
    free(c);
    atomic_fetch_sub(&s->conns, 1);
    return NULL;
}

/* srv_main: accept on every listening socket until stopped. */
static void *srv_main(void *arg)
{
    srv_t *s = arg;
    struct pollfd p[SRV_MAX_FDS];
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < s->nfds; i++)
            p[i] = (struct pollfd){.fd = s->fds[i], .events = POLLIN};
        int rc = poll(p, (nfds_t)s->nfds, 50);
        if (rc < 0 && errno != EINTR) break;
        for (int i = 0; rc > 0 && i < s->nfds; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            int fd = accept(s->fds[i], NULL, NULL);
            if (fd < 0) continue;
            atomic_fetch_add(&s->accepts, 1);
            atomic_fetch_add(&s->conns, 1);
            srv_conn_t *c = malloc(sizeof(*c));
            c->s = s;
            c->fd = fd;
            pthread_t t;
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setstacksize(&at, 256 * 1024);
            pthread_create(&t, &at, srv_conn_main, c);
            pthread_attr_destroy(&at);
            pthread_detach(t);
        }
    }
    return NULL;
}

/* srv_host: the loopback address of host k of a many-host server, 127.1.X.Y. */
static void srv_host(int k, char *buf, size_t n)
{
    snprintf(buf, n, "127.1.%d.%d", k / 250, k % 250 + 1);
}

/* srv_listen: a listening socket on addr:port (port 0: any); returns the fd or -1. */
static int srv_listen(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, addr, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 512) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* srv_start_hosts: listen on nhosts loopback hosts (srv_host) sharing one port, or on
 * 127.0.0.1 alone when nhosts is 0. */
static void srv_start_hosts(srv_t *s, int nhosts)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    for (int attempt = 0; attempt < 20 && !s->nfds; attempt++) {
        char addr[32] = "127.0.0.1";
        if (nhosts) srv_host(0, addr, sizeof(addr));
        s->fds[0] = srv_listen(addr, 0);
        struct sockaddr_in a;
        socklen_t al = sizeof(a);
        getsockname(s->fds[0], (struct sockaddr *)&a, &al);
        s->port = ntohs(a.sin_port);
        s->nfds = 1;
        for (int k = 1; k < nhosts; k++) {
            srv_host(k, addr, sizeof(addr));
            int fd = srv_listen(addr, s->port);
            if (fd < 0) { /* the port is taken on that address: start over on another */
                while (s->nfds)
                    close(s->fds[--s->nfds]);
                break;
            }
            s->fds[s->nfds++] = fd;
        }
    }
    CHECK(s->nfds == (nhosts ? nhosts : 1));
    s->fd = s->fds[0];
    pthread_create(&s->th, NULL, srv_main, s);
}

/* srv_start: listen on 127.0.0.1, port 0. */
static void srv_start(srv_t *s)
{
    srv_start_hosts(s, 0);
}

/* srv_stop: stop accepting, wait (with a deadline) for connection threads to end. */
static void srv_stop(srv_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    for (int i = 0; i < s->nfds; i++)
        close(s->fds[i]);
    for (int i = 0; i < 100 && atomic_load(&s->conns) > 0; i++)
        poll(NULL, 0, 20);
    CHECK_INT(atomic_load(&s->conns), 0);
    free(s->last_body);
    pthread_mutex_destroy(&s->mu);
}

/* ---- the client side ---- */

static uv_loop_t loop;
static uv_timer_t wake; /* bounds every wait; wake.data unused */
static int finished, order_seq, closed_calls;

typedef struct probe {
    http_request_t req;
    int done, order;
    http_outcome_t outcome;
    CURLcode code;
    long status;
    char error[256];
    char body[128];
    size_t body_len;
    int truncated, reused, has_xtest, in_submit, headers_truncated;
    size_t n_headers;
    uint64_t ms;
    http_t *resubmit_h; /* keep-alive test: send the next one from done */
    int resubmit_left;
} probe_t;

/* probe_done: copy what the test checks. */
static void probe_done(http_request_t *req, const http_result_t *res)
{
    probe_t *p = req->data;
    CHECK(!p->in_submit);
    p->done++;
    p->order = order_seq++;
    p->outcome = res->outcome;
    p->code = res->code;
    p->status = res->status;
    snprintf(p->error, sizeof(p->error), "%s", res->error ? res->error : "");
    snprintf(p->body, sizeof(p->body), "%s", res->body);
    p->body_len = res->body_len;
    p->truncated = res->truncated;
    p->reused = res->reused;
    p->ms = res->duration_ms;
    p->n_headers = res->n_headers;
    p->headers_truncated = res->headers_truncated;
    for (size_t i = 0; i < res->n_headers; i++)
        if (strcasecmp(res->headers[i].name, "X-Test") == 0 &&
            strcmp(res->headers[i].value, "yes") == 0)
            p->has_xtest = 1;
    finished++;
    uv_stop(&loop); /* let run_until look at the count before the loop blocks again */
    if (p->resubmit_h && p->resubmit_left > 0) {
        p->resubmit_left--;
        CHECK_INT(http_submit(p->resubmit_h, &p->req), 0);
    }
}

/* wake_cb: the wait's deadline. */
static void wake_cb(uv_timer_t *t) {}

/* run_until: turn the loop until finished reaches want or ms pass; 1 when reached. */
static int run_until(int want, int ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_timer_start(&wake, wake_cb, (uint64_t)ms, 0);
    while (finished < want && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&wake);
    return finished >= want;
}

/* closed_cb: http_close finished. */
static void closed_cb(void *arg)
{
    closed_calls++;
}

/* close_http: close h and turn the loop until it says so. */
static void close_http(http_t *h)
{
    int before = closed_calls;
    http_close(h, closed_cb, NULL);
    uv_timer_start(&wake, wake_cb, 5000, 0);
    while (closed_calls == before && uv_run(&loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&wake);
    CHECK_INT(closed_calls, before + 1);
}

/* send_one: POST to url with h and wait for it. */
static void send_one(http_t *h, probe_t *p, const char *url, int wait_ms)
{
    memset(p, 0, sizeof(*p));
    p->req.url = url;
    p->req.done = probe_done;
    p->req.data = p;
    int want = finished + 1;
    p->in_submit = 1;
    CHECK_INT(http_submit(h, &p->req), 0);
    p->in_submit = 0;
    CHECK(run_until(want, wait_ms));
    CHECK_INT(p->done, 1);
}

/* new_http: an engine with the given caps and timeout, and guard g. */
static http_t *new_http(const guard_t *g, long timeout_ms, int per_ep, int total)
{
    http_config_t cfg = {
        .timeout_ms = timeout_ms, .max_per_endpoint = per_ep, .max_inflight = total, .guard = g};
    http_t *h = NULL;
    char err[256] = "";
    CHECK_INT(http_init(&h, &loop, &cfg, err, sizeof(err)), 0);
    return h;
}

/* test_basic: answers, bodies, headers, statuses, truncation, refusals. */
static void test_basic(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 0, 0);
    char url[256];
    probe_t p;

    /* POST with custom headers and a body over 1 KiB (no Expect: 100-continue stall). */
    static char body[3000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    body[100] = '\0';
    const char *hdrs[] = {"Content-Type: application/json", "X-Custom: abc"};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    memset(&p, 0, sizeof(p));
    p.req.url = url;
    p.req.headers = hdrs;
    p.req.n_headers = 2;
    p.req.body = body;
    p.req.body_len = sizeof(body);
    p.req.done = probe_done;
    p.req.data = &p;
    int want = finished + 1;
    CHECK_INT(http_submit(h, &p.req), 0);
    CHECK(run_until(want, 5000));
    CHECK_INT(p.outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_INT(p.status, 200);
    CHECK_STR(p.body, "ok");
    CHECK_INT(p.body_len, 2);
    CHECK_STR(p.error, "");
    CHECK(p.has_xtest);
    CHECK(p.ms < 900); /* no 1 s Expect wait */
    pthread_mutex_lock(&s->mu);
    CHECK_INT(s->last_body_len, sizeof(body));
    CHECK(s->last_body && memcmp(s->last_body, body, sizeof(body)) == 0);
    CHECK(strstr(s->last_head, "POST /ok HTTP/1.1\r\n") == s->last_head);
    CHECK(strstr(s->last_head, "\r\nX-Custom: abc\r\n") != NULL);
    CHECK(strstr(s->last_head, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strcasestr(s->last_head, "Expect:") == NULL);
    pthread_mutex_unlock(&s->mu);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/fail", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_STATUS);
    CHECK_INT(p.status, 500);
    CHECK_STR(p.body, "boom");
    CHECK_STR(p.error, "");

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_STATUS);
    CHECK_INT(p.status, 302);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_INT(p.status, 200);
    CHECK_INT(p.body_len, 65536);
    CHECK_INT(p.truncated, 1);
    CHECK_INT(p.code, CURLE_OK);

    /* Past 1 MiB the transfer is cut, and a 2xx stays a success. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/huge", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_INT(p.status, 200);
    CHECK_INT(p.body_len, 65536);
    CHECK_INT(p.truncated, 1);
    CHECK_INT(p.code, CURLE_WRITE_ERROR);
    CHECK_STR(p.error, "");

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hugefail", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_STATUS);
    CHECK_INT(p.status, 503);
    CHECK_STR(p.error, "response body over 1048576 bytes");

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/reset", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_INT(p.status, 0);
    CHECK_STR(p.error, "connection reset");

    /* A port nobody listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", ntohs(a.sin_port));
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_STR(p.error, "connection refused");

    /* Bad URLs fail through done, from the loop. */
    send_one(h, &p, "not a url", 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK(strncmp(p.error, "invalid URL: ", 13) == 0);
    send_one(h, &p, "ftp://127.0.0.1/x", 5000);
    CHECK_STR(p.error, "unsupported protocol (only http and https)");

    send_one(h, &p, "http://nonexistent.invalid/", 10000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK(strncmp(p.error, "could not resolve host: nonexistent.invalid", 43) == 0);

    memset(&p, 0, sizeof(p));
    CHECK_INT(http_submit(h, &p.req), -EINVAL);
    close_http(h);
}

/* test_hostile_heads: a head that breaks off, is malformed or too big is no answer, whatever
 * its status line said; a valid head with many headers keeps only headers_cap bytes of them. */
static void test_hostile_heads(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 0, 0);
    char url[256];
    probe_t p;
    static const struct {
        const char *path, *error;
    } cases[] = {
        {"/halfhead", "connection reset"},
        {"/nocolon", "invalid HTTP response: Header without colon"},
        {"/garbage", "invalid HTTP response: no HTTP status line"},
        {"/bighead", "response headers too large"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, cases[i].path);
        send_one(h, &p, url, 5000);
        CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
        CHECK_STR(p.error, cases[i].error);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/manyheaders", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_STR(p.body, "ok");
    CHECK_INT(p.n_headers, 16384 / (13 + 60)); /* "X-Filler-NNNN" and 60 digits each */
    CHECK_INT(p.headers_truncated, 1);
    close_http(h);

    /* The status line came at once, the rest of the head trickles: the total timeout. */
    h = new_http(allow, 300, 0, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/trickle", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_INT(p.status, 200);
    CHECK_STR(p.error, "timeout after 300 ms");
    close_http(h);
}

/* test_timeout: an endpoint that never answers. */
static void test_timeout(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 300, 0, 0);
    char url[256];
    probe_t p;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hang", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_INT(p.code, CURLE_OPERATION_TIMEDOUT);
    CHECK_STR(p.error, "timeout after 300 ms");
    CHECK(p.ms >= 290 && p.ms < 2000);
    close_http(h);
}

/* test_guard: loopback refused without an allowed range, at connect time. */
static void test_guard(srv_t *s)
{
    http_t *h = new_http(NULL, 0, 0, 0);
    char url[256];
    probe_t p;
    int accepts = atomic_load(&s->accepts);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_STR(p.error, "target address not allowed");
    snprintf(url, sizeof(url), "http://localhost:%d/ok", s->port);
    send_one(h, &p, url, 5000);
    CHECK_STR(p.error, "target address not allowed");
    CHECK_INT(atomic_load(&s->accepts), accepts);
    http_stats_t st;
    http_stats(h, &st);
    CHECK_INT(st.refused, 2);
    CHECK_INT(st.connections, 0);
    close_http(h);
}

/* test_keepalive: 20 sequential requests ride one connection. */
static void test_keepalive(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 0, 0);
    char url[256];
    probe_t p;
    int accepts = atomic_load(&s->accepts);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    memset(&p, 0, sizeof(p));
    p.req.url = url;
    p.req.done = probe_done;
    p.req.data = &p;
    p.resubmit_h = h;
    p.resubmit_left = 19;
    int want = finished + 20;
    CHECK_INT(http_submit(h, &p.req), 0);
    CHECK(run_until(want, 10000));
    CHECK_INT(p.done, 20);
    CHECK_INT(p.reused, 1);
    CHECK_INT(atomic_load(&s->accepts) - accepts, 1);
    http_stats_t st;
    http_stats(h, &st);
    CHECK_INT(st.requests, 20);
    CHECK_INT(st.connections, 1);
    CHECK_INT(st.reused, 19);
    CHECK_INT(st.inflight, 0);
    CHECK_INT(st.queued, 0);
    close_http(h);
}

/* Watchers: what the done callbacks of test_watchers saw. */
static uv_poll_t *watch_first;
static int watch_same, watch_calls;

/* watch_count: count the open (not closing) poll handles on the loop into *arg. */
static void watch_count(uv_handle_t *hd, void *arg)
{
    if (hd->type != UV_POLL || uv_is_closing(hd)) return;
    int *n = arg;
    if (++*n == 1 && !watch_first) watch_first = (uv_poll_t *)hd;
    if (*n == 1 && (uv_poll_t *)hd == watch_first) watch_same++;
}

/* watch_done: after each transfer the socket's watcher is still open, the same one. */
static void watch_done(http_request_t *req, const http_result_t *res)
{
    int n = 0;
    uv_walk(&loop, watch_count, &n);
    CHECK_INT(n, 1);
    watch_calls++;
    probe_done(req, res);
}

/* test_watchers: 20 requests on one kept-alive connection use one uv_poll: libcurl stops
 * watching the socket between transfers, the engine only stops the watcher (closing it would
 * show as uv_is_closing here). */
static void test_watchers(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 0, 0);
    char url[256];
    probe_t p;
    int accepts = atomic_load(&s->accepts);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    memset(&p, 0, sizeof(p));
    p.req.url = url;
    p.req.done = watch_done;
    p.req.data = &p;
    p.resubmit_h = h;
    p.resubmit_left = 19;
    watch_first = NULL;
    watch_same = watch_calls = 0;
    int want = finished + 20;
    CHECK_INT(http_submit(h, &p.req), 0);
    CHECK(run_until(want, 10000));
    CHECK_INT(watch_calls, 20);
    CHECK_INT(watch_same, 20);
    CHECK_INT(atomic_load(&s->accepts) - accepts, 1);
    close_http(h);
    int n = 0;
    uv_walk(&loop, watch_count, &n);
    CHECK_INT(n, 0); /* closed with the connection */
}

/* test_header_list: a caller's prebuilt list goes out as it is, ending in http_header_tail()
 * (no Expect: wait on a 3000-byte body, no Accept:), and the engine leaves it untouched. */
static void test_header_list(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 0, 0);
    char url[256];
    static char body[3000];
    memset(body, 'q', sizeof(body));
    struct curl_slist shared = {(char *)"X-Shared: static",
                                (struct curl_slist *)http_header_tail()};
    struct curl_slist own = {(char *)"X-Attempt: 1", &shared};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    for (int round = 0; round < 2; round++) {
        probe_t p;
        memset(&p, 0, sizeof(p));
        p.req.url = url;
        p.req.header_list = &own;
        p.req.headers = NULL;
        p.req.body = body;
        p.req.body_len = sizeof(body);
        p.req.done = probe_done;
        p.req.data = &p;
        int want = finished + 1;
        CHECK_INT(http_submit(h, &p.req), 0);
        CHECK(run_until(want, 5000));
        CHECK_INT(p.outcome, HTTP_OUTCOME_SUCCESS);
        CHECK(p.ms < 900); /* no 1 s Expect wait */
        pthread_mutex_lock(&s->mu);
        CHECK(strstr(s->last_head, "\r\nX-Attempt: 1\r\n") != NULL);
        CHECK(strstr(s->last_head, "\r\nX-Shared: static\r\n") != NULL);
        CHECK(strcasestr(s->last_head, "Expect:") == NULL);
        CHECK(strcasestr(s->last_head, "\r\nAccept:") == NULL);
        CHECK_INT(s->last_body_len, sizeof(body));
        pthread_mutex_unlock(&s->mu);
    }
    CHECK_STR(own.data, "X-Attempt: 1");
    CHECK(own.next == &shared);
    CHECK(shared.next == http_header_tail());
    CHECK_STR(http_header_tail()->data, "Expect:");
    CHECK_STR(http_header_tail()->next->data, "Accept:");
    CHECK(http_header_tail()->next->next == NULL);
    close_http(h);
}

/* test_many_hosts: 300 hosts (127.1.X.Y on one port), 10 requests each, all submitted at once
 * to an engine of 64 slots. Asserted: every request succeeds, and the server accepted at most
 * 300 + 30 connections: one per host, plus at most 1 % of the 3,000 requests (a cache smaller
 * than the hosts would evict every connection before its host's next turn: about one
 * connection per request). */
static void test_many_hosts(const guard_t *allow)
{
    enum { HOSTS = 300, EACH = 10, TOTAL = HOSTS * EACH };
    srv_t m;
    srv_start_hosts(&m, HOSTS);
    http_t *h = new_http(allow, 0, 16, 64);
    probe_t *p = calloc(TOTAL, sizeof(*p));
    char(*urls)[64] = calloc(HOSTS, sizeof(*urls));
    for (int k = 0; k < HOSTS; k++) {
        char addr[32];
        srv_host(k, addr, sizeof(addr));
        snprintf(urls[k], sizeof(urls[k]), "http://%s:%d/ok", addr, m.port);
    }
    int want = finished + TOTAL;
    for (int i = 0; i < TOTAL; i++) {
        p[i].req.url = urls[i % HOSTS];
        p[i].req.done = probe_done;
        p[i].req.data = &p[i];
        CHECK_INT(http_submit(h, &p[i].req), 0);
    }
    CHECK(run_until(want, 60000));
    int ok = 0;
    for (int i = 0; i < TOTAL; i++)
        ok += p[i].done == 1 && p[i].outcome == HTTP_OUTCOME_SUCCESS;
    CHECK_INT(ok, TOTAL);
    int accepts = atomic_load(&m.accepts);
    http_stats_t st;
    http_stats(h, &st);
    printf("many hosts: %d connections for %d requests over %d hosts (%d beyond one per host)\n",
           accepts, TOTAL, HOSTS, accepts - HOSTS);
    CHECK(accepts >= HOSTS);
    CHECK(accepts - HOSTS <= TOTAL / 100);
    CHECK_INT(st.connections, accepts);
    CHECK_INT(st.reused, TOTAL - accepts);
    close_http(h);
    free(p);
    free(urls);
    srv_stop(&m);
}

/* test_fair: a slow endpoint holds only its own slots; others' requests go first. */
static void test_fair(srv_t *slow, srv_t *fast, const guard_t *allow, int total)
{
    http_t *h = new_http(allow, 0, 2, total);
    char url_slow[256], url_fast[256];
    probe_t ps[5], pf;
    snprintf(url_slow, sizeof(url_slow), "http://127.0.0.1:%d/slow", slow->port);
    snprintf(url_fast, sizeof(url_fast), "http://127.0.0.1:%d/ok", fast->port);
    atomic_store(&slow->max_busy, 0);
    order_seq = 0;
    int want = finished + 6;
    for (int i = 0; i < 5; i++) {
        memset(&ps[i], 0, sizeof(ps[i]));
        ps[i].req.url = url_slow;
        ps[i].req.done = probe_done;
        ps[i].req.data = &ps[i];
        CHECK_INT(http_submit(h, &ps[i].req), 0);
    }
    memset(&pf, 0, sizeof(pf));
    pf.req.url = url_fast;
    pf.req.done = probe_done;
    pf.req.data = &pf;
    CHECK_INT(http_submit(h, &pf.req), 0);
    http_stats_t st;
    http_stats(h, &st);
    CHECK_INT(st.inflight + st.queued, 6);
    CHECK(run_until(want, 10000));
    for (int i = 0; i < 5; i++) {
        CHECK_INT(ps[i].outcome, HTTP_OUTCOME_SUCCESS);
        CHECK_STR(ps[i].body, "slow");
    }
    CHECK_INT(pf.outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_INT(atomic_load(&slow->max_busy), 2);
    if (total > 2) {
        CHECK_INT(pf.order, 0); /* had its own slot from the start */
    } else {
        /* Both slots were taken: the first freed slot goes to the other endpoint. */
        CHECK(pf.order <= 2);
        CHECK(pf.order < ps[2].order && pf.order < ps[3].order && pf.order < ps[4].order);
    }
    close_http(h);
}

/* test_cancel: closing cancels running and queued requests through done. */
static void test_cancel(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 1, 0);
    char url[256];
    probe_t p[3];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hang", s->port);
    for (int i = 0; i < 3; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].req.url = i == 2 ? "bad url" : url;
        p[i].req.done = probe_done;
        p[i].req.data = &p[i];
        CHECK_INT(http_submit(h, &p[i].req), 0);
    }
    /* Let the first one connect and send. */
    uv_timer_start(&wake, wake_cb, 100, 0);
    uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&wake);
    int before = finished;
    http_close(h, closed_cb, NULL);
    CHECK(finished - before >= 2);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(p[i].done, 1);
        CHECK_INT(p[i].outcome, HTTP_OUTCOME_CANCELLED);
        CHECK_STR(p[i].error, "cancelled");
    }
    CHECK_INT(p[2].done, 1);
    probe_t late;
    memset(&late, 0, sizeof(late));
    late.req.url = url;
    late.req.done = probe_done;
    CHECK_INT(http_submit(h, &late.req), -ECANCELED);
    int closed_before = closed_calls;
    uv_timer_start(&wake, wake_cb, 5000, 0);
    while (closed_calls == closed_before && uv_run(&loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&wake);
    CHECK_INT(closed_calls, closed_before + 1);
}

/* close_in_done: the done callback that closes the engine. */
static void close_in_done(http_request_t *req, const http_result_t *res)
{
    probe_done(req, res);
    http_close(((probe_t *)req->data)->resubmit_h, closed_cb, NULL);
}

/* test_close_in_done: http_close from a done callback cancels the rest after it returns. */
static void test_close_in_done(srv_t *s, const guard_t *allow)
{
    http_t *h = new_http(allow, 0, 1, 0);
    char url[256];
    probe_t p[3];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", s->port);
    int want = finished + 3, closed_before = closed_calls;
    for (int i = 0; i < 3; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].req.url = url;
        p[i].req.done = i == 0 ? close_in_done : probe_done;
        p[i].req.data = &p[i];
        p[i].resubmit_h = h;
        CHECK_INT(http_submit(h, &p[i].req), 0);
    }
    CHECK(run_until(want, 5000));
    CHECK_INT(p[0].outcome, HTTP_OUTCOME_SUCCESS);
    CHECK_INT(p[1].outcome, HTTP_OUTCOME_CANCELLED);
    CHECK_INT(p[2].outcome, HTTP_OUTCOME_CANCELLED);
    uv_timer_start(&wake, wake_cb, 5000, 0);
    while (closed_calls == closed_before && uv_run(&loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&wake);
    CHECK_INT(closed_calls, closed_before + 1);
}

/* test_connect_timeout: a listener whose backlog is full drops SYNs. */
static void test_connect_timeout(const guard_t *allow)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    bind(lfd, (struct sockaddr *)&a, sizeof(a));
    listen(lfd, 0);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    http_config_t cfg = {.connect_timeout_ms = 300, .guard = allow};
    http_t *h = NULL;
    char err[256], url[256];
    CHECK_INT(http_init(&h, &loop, &cfg, err, sizeof(err)), 0);
    probe_t p;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", ntohs(a.sin_port));
    send_one(h, &p, url, 5000);
    CHECK_INT(p.outcome, HTTP_OUTCOME_TRANSPORT);
    CHECK_STR(p.error, "connect timeout after 300 ms");
    close_http(h);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* wake_closed: close callback of the wait timer. */
static void wake_closed(uv_handle_t *hd) {}

int main(void)
{
    srv_t s1, s2;
    guard_t *allow = NULL;
    char err[256];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("http_proxy");
    CHECK_INT(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &wake);
    CHECK_INT(guard_init(&allow), 0);
    CHECK_INT(guard_add_cidr(allow, "127.0.0.0/8", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(allow, "::1", err, sizeof(err)), 0);
    srv_start(&s1);
    srv_start(&s2);

    test_basic(&s1, allow);
    test_timeout(&s1, allow);
    test_hostile_heads(&s1, allow);
    test_guard(&s1);
    test_keepalive(&s1, allow);
    test_watchers(&s1, allow);
    test_header_list(&s1, allow);
    test_many_hosts(allow);
    test_fair(&s1, &s2, allow, 3);
    test_fair(&s1, &s2, allow, 2);
    test_cancel(&s1, allow);
    test_close_in_done(&s1, allow);
    test_connect_timeout(allow);

    uv_close((uv_handle_t *)&wake, wake_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    srv_stop(&s1);
    srv_stop(&s2);
    guard_close(allow);
    curl_global_cleanup();
    return check_done("http");
}
