/* bare_sender.c - the ceiling of a sender built on our libraries: the sender's own HTTP engine
 * (sender/http.c: libcurl multi on libuv, same caps and fairness) and header builder
 * (domain/auth.c: signature, bearer token), POSTing the same bodies as fast as it can, with no
 * framing, journal or delivery log. Prints one JSON object with its figures on stdout.
 *
 * usage: bare_sender --url-prefix URL --endpoints N --requests N --body-bytes N
 *                    [--max-per-endpoint N] [--max-inflight N] [--secret whsec_...]
 *                    [--loopback-hosts PORT]
 * Endpoint k (0..N-1) is URL-prefix + k; requests are spread round-robin over them. With
 * --loopback-hosts each endpoint is a host of its own instead, http://127.1.X.Y:PORT/k
 * (X = k / 250, Y = k % 250 + 1: every 127/8 address reaches a server listening on 0.0.0.0),
 * so libcurl's connection cache sees N hosts. */
#include "domain/auth.h"
#include "domain/payload.h"
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct bare bare_t;

/* One request slot: the request, its URL, header lines and invocation id. */
typedef struct bare_req {
    http_request_t req;
    bare_t *b;
    char url[512];
    char inv[INVOCATION_ID_LEN];
    char **lines;
    size_t nlines;
} bare_req_t;

struct bare {
    http_t *http;
    const char *url_prefix;
    const char *secret;
    int endpoints;
    int host_port; /* --loopback-hosts: 0 when the endpoints share the URL prefix's host */
    long total, started, finished, ok, failed;
    int window; /* requests kept submitted at once (running + queued in the engine) */
    char *body;
    size_t body_len;
    uint64_t t0, t1;
    http_stats_t st; /* read in the last done callback, before http_close frees the engine */
};

/* bare_lines_free drops one slot's header lines. */
static void bare_lines_free(bare_req_t *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
    r->lines = NULL;
    r->nlines = 0;
}

static void bare_done(http_request_t *req, const http_result_t *res);

/* bare_start fills slot r with request number n and submits it. Returns 0 or a negative errno. */
static int bare_start(bare_t *b, bare_req_t *r, long n)
{
    char event_id[64], webhook_id[32], err[256];
    int ep = (int)(n % b->endpoints);
    snprintf(event_id, sizeof event_id, "bare-%ld", n);
    snprintf(webhook_id, sizeof webhook_id, "wh_%d", ep);
    if (b->host_port)
        snprintf(r->url, sizeof r->url, "http://127.1.%d.%d:%d/%d", ep / 250, ep % 250 + 1,
                 b->host_port, ep);
    else
        snprintf(r->url, sizeof r->url, "%s%d", b->url_prefix, ep);
    payload_invocation_id(event_id, webhook_id, r->inv);
    webhook_t wh = {.id = webhook_id, .url = r->url, .enabled = 1};
    wh.auth.type = AUTH_BEARER;
    wh.auth.token = "tok_bench_0123456789";
    wh.secret = (char *)b->secret;
    header_list_t hl = {0};
    int rc = auth_build_headers(&wh, r->inv, "opportunity.created", 1, time(NULL), b->body,
                                b->body_len, &hl, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "bare_sender: headers: %s\n", err);
        return rc;
    }
    bare_lines_free(r);
    r->lines = calloc(hl.n + 1, sizeof *r->lines);
    if (!r->lines) return -ENOMEM;
    for (size_t i = 0; i < hl.n; i++)
        r->lines[r->nlines++] = auth_header_line(&hl.v[i]);
    r->lines[r->nlines++] = strdup("Accept:");
    auth_headers_free(&hl);
    memset(&r->req, 0, sizeof r->req);
    r->req.url = r->url;
    r->req.endpoint = r->url;
    r->req.headers = (const char *const *)r->lines;
    r->req.n_headers = r->nlines;
    r->req.body = b->body;
    r->req.body_len = b->body_len;
    r->req.done = bare_done;
    r->req.data = r;
    b->started++;
    return http_submit(b->http, &r->req);
}

/* bare_done counts one finished request and reuses its slot for the next. */
static void bare_done(http_request_t *req, const http_result_t *res)
{
    bare_req_t *r = req->data;
    bare_t *b = r->b;
    if (res->outcome == HTTP_OUTCOME_CANCELLED) return;
    b->finished++;
    if (res->outcome == HTTP_OUTCOME_SUCCESS)
        b->ok++;
    else if (b->failed++ < 5)
        fprintf(stderr, "bare_sender: %s: %s (status %ld)\n", r->url,
                res->error ? res->error : "failed", res->status);
    if (b->started < b->total) {
        if (bare_start(b, r, b->started) < 0) b->failed++;
    }
    if (b->finished == b->total) {
        b->t1 = uv_hrtime();
        http_stats(b->http, &b->st);
        http_close(b->http, NULL, NULL);
    }
}

/* bare_peak_rss_kib reads VmHWM (ru_maxrss would carry the parent's peak across exec). */
static long bare_peak_rss_kib(void)
{
    char line[256];
    long kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kib;
}

/* bare_opt_long parses the value of a numeric flag. */
static long bare_opt_long(const char *name, const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1) {
        fprintf(stderr, "bare_sender: %s: want a positive number, got '%s'\n", name, v);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    bare_t b = {.endpoints = 16, .total = 20000, .body_len = 1024};
    http_config_t cfg = {.max_per_endpoint = 16, .max_inflight = 512};
    guard_t *guard;
    if (guard_init(&guard) < 0) return 1;
    char err[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bare_sender: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--url-prefix") == 0)
            b.url_prefix = v;
        else if (strcmp(a, "--endpoints") == 0)
            b.endpoints = (int)bare_opt_long(a, v);
        else if (strcmp(a, "--requests") == 0)
            b.total = bare_opt_long(a, v);
        else if (strcmp(a, "--body-bytes") == 0)
            b.body_len = (size_t)bare_opt_long(a, v);
        else if (strcmp(a, "--max-per-endpoint") == 0)
            cfg.max_per_endpoint = (int)bare_opt_long(a, v);
        else if (strcmp(a, "--max-inflight") == 0)
            cfg.max_inflight = (int)bare_opt_long(a, v);
        else if (strcmp(a, "--loopback-hosts") == 0)
            b.host_port = (int)bare_opt_long(a, v);
        else if (strcmp(a, "--secret") == 0)
            b.secret = v;
        else {
            fprintf(stderr, "bare_sender: unknown flag %s\n", a);
            return 2;
        }
    }
    if (!b.url_prefix && !b.host_port) {
        fprintf(stderr, "bare_sender: --url-prefix or --loopback-hosts is required\n");
        return 2;
    }
    if (b.host_port && b.endpoints > 250 * 256) {
        fprintf(stderr, "bare_sender: --loopback-hosts takes at most %d endpoints\n", 250 * 256);
        return 2;
    }
    if (guard_add_cidr(guard, "127.0.0.0/8", err, sizeof err) < 0) return 1;
    cfg.guard = guard;
    /* A JSON-looking body of exactly body_len bytes (the content does not matter to nginx). */
    b.body = malloc(b.body_len + 1);
    if (!b.body) return 1;
    memset(b.body, 'x', b.body_len);
    memcpy(b.body, "{\"p\":\"", 6);
    memcpy(b.body + b.body_len - 2, "\"}", 2);
    b.body[b.body_len] = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_t *loop = uv_default_loop();
    if (http_init(&b.http, loop, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bare_sender: %s\n", err);
        return 1;
    }
    /* Keep every slot the engine can run busy, plus as many again queued, like the sender
     * whose router window keeps its engine fed. */
    b.window = cfg.max_inflight * 2;
    if (b.window > b.total) b.window = (int)b.total;
    bare_req_t *slots = calloc((size_t)b.window, sizeof *slots);
    if (!slots) return 1;
    b.t0 = uv_hrtime();
    for (int i = 0; i < b.window; i++) {
        slots[i].b = &b;
        if (bare_start(&b, &slots[i], b.started) < 0) return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double secs = (double)(b.t1 - b.t0) / 1e9;
    printf("{\"requests\": %ld, \"ok\": %ld, \"failed\": %ld, \"seconds\": %.4f, \"rate\": %.1f, "
           "\"cpu_s\": %.4f, \"maxrss_kib\": %ld, \"connections\": %llu, \"reused\": %llu}\n",
           b.finished, b.ok, b.failed, secs, secs > 0 ? b.finished / secs : 0.0, cpu,
           bare_peak_rss_kib(), (unsigned long long)b.st.connections,
           (unsigned long long)b.st.reused);
    for (int i = 0; i < b.window; i++)
        bare_lines_free(&slots[i]);
    free(slots);
    free(b.body);
    uv_loop_close(loop);
    guard_close(guard);
    curl_global_cleanup();
    return b.failed ? 1 : 0;
}
