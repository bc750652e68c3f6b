/* curl_ceiling.c - the plain libcurl ceiling: libcurl multi on libuv (socket and timer callbacks),
 * one easy handle per connection slot with its options set once, POSTing the same 1 KiB body
 * with the pipeline's header set over keep-alive connections as fast as it can. Per request only
 * the webhook-id header's digits change (rewritten in place). Prints one JSON object on stdout:
 * requests, requests/s, CPU seconds (getrusage) per 1,000 requests, new connections.
 *
 * usage: curl_ceiling --url-prefix URL --requests N [--endpoints N] [--conns-per-endpoint N]
 *                     [--body-bytes N] [--token T] [--ca-file PEM]
 * Slot k (0 .. endpoints * conns-per-endpoint - 1) POSTs to URL-prefix + (k % endpoints), so
 * each slot keeps one connection: endpoints * conns-per-endpoint connections in all. */
#include <curl/curl.h>
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct ceil_run ceil_run_t;

/* One connection slot: its easy handle, URL and header list (kept for the whole run). */
typedef struct ceil_slot {
    ceil_run_t *run;
    CURL *easy;
    char url[512];
    struct curl_slist *hdrs;
    char *id_digits; /* the 32 hex digits of this slot's webhook-id line, rewritten per request */
} ceil_slot_t;

/* The poll watcher of one socket libcurl asked us to watch. */
typedef struct ceil_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    ceil_run_t *run;
} ceil_sock_t;

struct ceil_run {
    uv_loop_t *loop;
    uv_timer_t timer;
    CURLM *multi;
    long total, started, finished, ok, failed, connects;
    uint64_t t0, t1;
    struct rusage ru0, ru1;
};

static void ceil_check(ceil_run_t *r);

/* ceil_cpu_s returns the seconds of CPU time (user + system) between two rusage samples. */
static double ceil_cpu_s(const struct rusage *a, const struct rusage *b)
{
    double ua = (double)a->ru_utime.tv_sec + a->ru_utime.tv_usec / 1e6;
    double sa = (double)a->ru_stime.tv_sec + a->ru_stime.tv_usec / 1e6;
    double ub = (double)b->ru_utime.tv_sec + b->ru_utime.tv_usec / 1e6;
    double sb = (double)b->ru_stime.tv_sec + b->ru_stime.tv_usec / 1e6;
    return (ub + sb) - (ua + sa);
}

/* ceil_discard drops the response body (nginx sends none for 204; 500 pages are ignored). */
static size_t ceil_discard(char *p, size_t size, size_t n, void *data)
{
    return size * n;
}

/* ceil_submit starts request number started on slot s (only its webhook-id digits change). */
static int ceil_submit(ceil_run_t *r, ceil_slot_t *s)
{
    char hex[33];
    snprintf(hex, sizeof hex, "%032lx", (unsigned long)r->started);
    memcpy(s->id_digits, hex, 32);
    r->started++;
    return curl_multi_add_handle(r->multi, s->easy) == CURLM_OK ? 0 : -1;
}

static void ceil_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ceil_poll_cb(uv_poll_t *p, int status, int events)
{
    ceil_sock_t *cs = p->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    ceil_run_t *r = cs->run;
    curl_multi_socket_action(r->multi, cs->fd, flags, &running);
    ceil_check(r);
}

/* ceil_socket_fn: libcurl's socket callback; one uv_poll_t per socket, freed in its close cb. */
static int ceil_socket_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    ceil_run_t *r = userp;
    ceil_sock_t *cs = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (cs) {
            uv_poll_stop(&cs->poll);
            uv_close((uv_handle_t *)&cs->poll, ceil_sock_closed);
            curl_multi_assign(r->multi, fd, NULL);
        }
        return 0;
    }
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return -1;
        cs->fd = fd;
        cs->run = r;
        if (uv_poll_init_socket(r->loop, &cs->poll, fd) < 0) {
            free(cs);
            return -1;
        }
        cs->poll.data = cs;
        curl_multi_assign(r->multi, fd, cs);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&cs->poll, ev, ceil_poll_cb);
    return 0;
}

static void ceil_timer_cb(uv_timer_t *t)
{
    ceil_run_t *r = t->data;
    int running;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    ceil_check(r);
}

/* ceil_timer_fn: libcurl's timer callback, on one uv_timer_t. */
static int ceil_timer_fn(CURLM *m, long timeout_ms, void *userp)
{
    ceil_run_t *r = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&r->timer);
    else
        uv_timer_start(&r->timer, ceil_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ceil_check collects finished transfers and starts the slot's next request at once. */
static void ceil_check(ceil_run_t *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        ceil_slot_t *s;
        long code = 0, conns = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        r->connects += conns;
        if (m->data.result == CURLE_OK && code >= 200 && code < 300)
            r->ok++;
        else if (r->failed++ < 5)
            fprintf(stderr, "curl_ceiling: %s: %s (status %ld)\n", s->url,
                    curl_easy_strerror(m->data.result), code);
        r->finished++;
        curl_multi_remove_handle(r->multi, e);
        if (r->started < r->total && ceil_submit(r, s) < 0) {
            r->failed++;
            r->finished++;
        }
        if (r->finished >= r->total && !r->t1) {
            r->t1 = uv_hrtime();
            getrusage(RUSAGE_SELF, &r->ru1);
            uv_stop(r->loop);
        }
    }
}

/* ceil_close_left closes any poll handle libcurl did not remove before cleanup. */
static void ceil_close_left(uv_handle_t *h, void *arg)
{
    if (h->type == UV_POLL && !uv_is_closing(h)) uv_close(h, ceil_sock_closed);
}

static long ceil_opt_long(const char *name, const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1) {
        fprintf(stderr, "curl_ceiling: %s: want a positive number, got '%s'\n", name, v);
        exit(2);
    }
    return n;
}

/* ceil_peak_rss_kib reads VmHWM (ru_maxrss would carry the parent's peak across exec). */
static long ceil_peak_rss_kib(void)
{
    char line[256];
    long kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kib;
}

/* ceil_slot_init creates slot k's easy handle with every option set once. */
static int ceil_slot_init(ceil_run_t *r, ceil_slot_t *s, const char *url, const char *body,
                          size_t body_len, const char *token, const char *ca_file)
{
    char line[256];
    s->run = r;
    snprintf(s->url, sizeof s->url, "%s", url);
    /* The pipeline's header set (sender/http.c plus domain/auth.c), with fixed values. */
    const char *fixed[] = {"Content-Type: application/json",
                           "User-Agent: hookline/0.1.0",
                           "webhook-id: inv_00000000000000000000000000000000",
                           "webhook-timestamp: 1767225600",
                           "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                           "X-Webhook-Event: opportunity.created",
                           "X-Webhook-Attempt: 1",
                           NULL,
                           "Accept:",
                           "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        const char *l = fixed[i];
        if (!l) {
            snprintf(line, sizeof line, "Authorization: Bearer %s", token);
            l = line;
        }
        struct curl_slist *n = curl_slist_append(s->hdrs, l);
        if (!n) return -1;
        s->hdrs = n;
    }
    for (struct curl_slist *n = s->hdrs; n; n = n->next)
        if (strncmp(n->data, "webhook-id: inv_", 16) == 0) s->id_digits = n->data + 16;
    s->easy = curl_easy_init();
    if (!s->easy || !s->id_digits) return -1;
    CURL *e = s->easy;
    CURLcode rc = CURLE_OK;
#define CEIL_SET(opt, val)                                                                         \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(e, opt, val);                                               \
        if (c_ != CURLE_OK && rc == CURLE_OK) rc = c_;                                             \
    } while (0)
    CEIL_SET(CURLOPT_PRIVATE, s);
    CEIL_SET(CURLOPT_URL, s->url);
    CEIL_SET(CURLOPT_NOSIGNAL, 1L);
    CEIL_SET(CURLOPT_TCP_NODELAY, 1L);
    CEIL_SET(CURLOPT_POST, 1L);
    CEIL_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    CEIL_SET(CURLOPT_POSTFIELDS, body);
    CEIL_SET(CURLOPT_HTTPHEADER, s->hdrs);
    CEIL_SET(CURLOPT_WRITEFUNCTION, ceil_discard);
    if (ca_file) CEIL_SET(CURLOPT_CAINFO, ca_file);
#undef CEIL_SET
    return rc == CURLE_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *prefix = NULL, *token = "tok_bench_0123456789", *ca_file = NULL;
    long endpoints = 16, per = 1, total = 20000;
    size_t body_len = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "curl_ceiling: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--url-prefix") == 0)
            prefix = v;
        else if (strcmp(a, "--endpoints") == 0)
            endpoints = ceil_opt_long(a, v);
        else if (strcmp(a, "--conns-per-endpoint") == 0)
            per = ceil_opt_long(a, v);
        else if (strcmp(a, "--requests") == 0)
            total = ceil_opt_long(a, v);
        else if (strcmp(a, "--body-bytes") == 0)
            body_len = (size_t)ceil_opt_long(a, v);
        else if (strcmp(a, "--token") == 0)
            token = v;
        else if (strcmp(a, "--ca-file") == 0)
            ca_file = v;
        else {
            fprintf(stderr, "curl_ceiling: unknown flag %s\n", a);
            return 2;
        }
    }
    if (!prefix) {
        fprintf(stderr, "curl_ceiling: --url-prefix is required\n");
        return 2;
    }
    /* A JSON-looking body of exactly body_len bytes (the content does not matter to nginx). */
    char *body = malloc(body_len + 1);
    if (!body || body_len < 8) {
        fprintf(stderr, "curl_ceiling: --body-bytes: want at least 8\n");
        return 2;
    }
    memset(body, 'x', body_len);
    memcpy(body, "{\"p\":\"", 6);
    memcpy(body + body_len - 2, "\"}", 2);
    body[body_len] = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    ceil_run_t r = {.loop = uv_default_loop(), .total = total};
    r.multi = curl_multi_init();
    uv_timer_init(r.loop, &r.timer);
    r.timer.data = &r;
    long nslots = endpoints * per;
    if (nslots > total) nslots = total;
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, ceil_socket_fn);
    curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, ceil_timer_fn);
    curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, nslots);
    ceil_slot_t *slots = calloc((size_t)nslots, sizeof *slots);
    if (!slots || !r.multi) return 1;
    for (long k = 0; k < nslots; k++) {
        char url[512];
        snprintf(url, sizeof url, "%s%ld", prefix, k % endpoints);
        if (ceil_slot_init(&r, &slots[k], url, body, body_len, token, ca_file) < 0) {
            fprintf(stderr, "curl_ceiling: cannot set up slot %ld\n", k);
            return 1;
        }
    }
    getrusage(RUSAGE_SELF, &r.ru0);
    r.t0 = uv_hrtime();
    for (long k = 0; k < nslots; k++)
        if (ceil_submit(&r, &slots[k]) < 0) {
            fprintf(stderr, "curl_ceiling: curl_multi_add_handle failed\n");
            return 1;
        }
    uv_run(r.loop, UV_RUN_DEFAULT);
    double secs = (double)(r.t1 - r.t0) / 1e9, cpu = ceil_cpu_s(&r.ru0, &r.ru1);
    printf("{\"requests\": %ld, \"ok\": %ld, \"failed\": %ld, \"seconds\": %.4f, \"rate\": %.1f, "
           "\"cpu_s\": %.4f, \"cpu_per_1000\": %.4f, \"new_connections\": %ld, "
           "\"connections\": %ld, \"maxrss_kib\": %ld}\n",
           r.finished, r.ok, r.failed, secs, secs > 0 ? r.finished / secs : 0.0, cpu,
           r.finished ? cpu * 1000.0 / r.finished : 0.0, r.connects, nslots, ceil_peak_rss_kib());
    fflush(stdout);

    /* Teardown: every transfer has ended; free the easies, the multi, then the uv handles. */
    for (long k = 0; k < nslots; k++) {
        curl_multi_remove_handle(r.multi, slots[k].easy);
        curl_easy_cleanup(slots[k].easy);
        curl_slist_free_all(slots[k].hdrs);
    }
    curl_multi_cleanup(r.multi);
    uv_close((uv_handle_t *)&r.timer, NULL);
    uv_walk(r.loop, ceil_close_left, NULL);
    uv_run(r.loop, UV_RUN_DEFAULT);
    uv_loop_close(r.loop);
    free(slots);
    free(body);
    curl_global_cleanup();
    return r.failed ? 1 : 0;
}
