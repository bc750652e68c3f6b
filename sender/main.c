/* main.c - hook-sender: performs the authenticated POSTs (libcurl multi on libuv), records each
 * attempt in the delivery log and hands failures to the scheduler. Stateless: upstream keeps
 * every job until the sender reports its outcome durable. */
#include "domain/proto.h"
#include "sender.h"
#include "util/frame.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Descriptors kept for everything but HTTP: store, sockets to the other stages, hookctl, libuv. */
#define SENDER_FD_RESERVE 64

/* sender_set_allow parses one --allow-target CIDR (repeatable: each adds a range). */
static int sender_set_allow(void *ctx, const char *val, char *err, size_t errlen)
{
    sender_t *s = ctx;
    if (!s->guard) {
        int rc = guard_init(&s->guard);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
    }
    return guard_add_cidr(s->guard, val, err, errlen);
}

/* sender_set_ca_file takes --ca-file only when it can be read and holds a PEM certificate: a
 * sender that cannot verify any TLS endpoint must not start and say it is ready. */
static int sender_set_ca_file(void *ctx, const char *val, char *err, size_t errlen)
{
    sender_t *s = ctx;
    FILE *f = fopen(val, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", val, strerror(errno));
        return -EINVAL;
    }
    char line[256];
    int pem = 0;
    while (!pem && fgets(line, sizeof line, f))
        pem = strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr) {
        snprintf(err, errlen, "%s: %s", val, strerror(rerr));
        return -EINVAL;
    }
    if (!pem) {
        snprintf(err, errlen, "%s: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", val);
        return -EINVAL;
    }
    s->http_cfg.ca_file = val;
    return 0;
}

/* sender_fit_fds makes room for every socket the HTTP engine may hold at once (transfers
 * running plus idle cached connections): it raises the soft open-file limit toward the hard one,
 * and when that is still short lowers the caps, so a flood of endpoints cannot run the process
 * out of descriptors. */
static void sender_fit_fds(sender_t *s)
{
    http_config_t *c = &s->http_cfg;
    struct rlimit rl;
    if (!c->max_inflight) c->max_inflight = 512;
    if (!c->max_connects) c->max_connects = HTTP_DEFAULT_MAX_CONNECTS;
    rlim_t need = (rlim_t)c->max_inflight + (rlim_t)c->max_connects + SENDER_FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) rl.rlim_cur = was;
    if (rl.rlim_cur >= need) {
        log_info("open-file limit raised from %llu to %llu", (unsigned long long)was,
                 (unsigned long long)rl.rlim_cur);
        return;
    }
    long room = (long)rl.rlim_cur - SENDER_FD_RESERVE;
    if (room < 8) room = 8;
    if (c->max_inflight > room * 3 / 4) c->max_inflight = (int)(room * 3 / 4);
    c->max_connects = room - c->max_inflight;
    log_warn("open-file limit %llu (hard %llu) is too low: at most %d requests at once and %ld "
             "cached connections",
             (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, c->max_inflight,
             c->max_connects);
}

/* sender_defer_tick looks for jobs stuck behind a saturated endpoint. */
static void sender_defer_tick(uv_timer_t *t)
{
    sender_defer_scan(t->data);
}

/* sender_timer_closed: the defer timer lives inside sender_t. */
static void sender_timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* sender_start opens the configuration, the HTTP engine and the connections upstream. */
static int sender_start(daemon_t *d)
{
    sender_t *s = daemon_ctx(d);
    char err[256];
    s->d = d;
    TAILQ_INIT(&s->jobs);
    TAILQ_INIT(&s->waiting);
    TAILQ_INIT(&s->awaiting);
    s->next_retry_seq = 1;
    if (!s->guard && guard_init(&s->guard) < 0) return -ENOMEM;
    s->http_cfg.guard = s->guard;
    sender_fit_fds(s);
    int rc = cfgwatch_init(&s->cfg, daemon_loop(d), daemon_db_path(d), 500, err, sizeof err);
    if (rc < 0) {
        log_error("store %s: %s", daemon_db_path(d), err);
        return rc;
    }
    sender_log_init(s);
    if ((rc = http_init(&s->http, daemon_loop(d), &s->http_cfg, err, sizeof err)) < 0) {
        log_error("http: %s", err);
        return rc;
    }
    uv_timer_init(daemon_loop(d), &s->defer_timer);
    s->defer_timer.data = s;
    if (s->defer_after_ms) {
        uint64_t every = (uint64_t)(s->defer_after_ms < 1000 ? s->defer_after_ms / 2 + 1 : 500);
        uv_timer_start(&s->defer_timer, sender_defer_tick, every, every);
    }
    if ((rc = daemon_connect(d, "router.*.sock")) < 0) return rc;
    return daemon_connect(d, "scheduler.sock");
}

/* sender_peer_up: the scheduler takes failures; routers need nothing. */
static void sender_peer_up(daemon_t *d, conn_t *c)
{
    if (strcmp(conn_peer_stage(c), "scheduler") == 0) sender_scheduler_up(daemon_ctx(d), c);
}

/* sender_peer_down: acknowledgements to c have nowhere to go; failures wait for a scheduler. */
static void sender_peer_down(daemon_t *d, conn_t *c)
{
    sender_upstream_down(daemon_ctx(d), c);
}

/* sender_frame: JOB from routers and the scheduler, RETRY_ACK from the scheduler. */
static void sender_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *f)
{
    sender_t *s = daemon_ctx(d);
    if (t == PT_JOB) {
        if (!daemon_draining(d)) sender_job_take(s, c, f);
        return; /* while draining, upstream hands it to another sender once we are gone */
    }
    if (t == PT_RETRY_ACK) {
        sender_decision(s, f);
        return;
    }
    char reason[80];
    snprintf(reason, sizeof reason, "unexpected frame type %llu", (unsigned long long)t);
    conn_close(c, reason);
}

/* sender_idle: every job taken has reported, or what is left waits for a scheduler that is
 * gone (upstream keeps those jobs and hands them out again). */
static int sender_idle(daemon_t *d)
{
    sender_t *s = daemon_ctx(d);
    if (s->njobs == 0) return 1;
    if (s->scheduler) return 0;
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->jobs, all)
    if (j->state != JOB_TO_SCHEDULER) return 0;
    return 1;
}

/* sender_drain: take no new jobs, finish the running ones, then stop. */
static void sender_drain(daemon_t *d)
{
    daemon_stop_when_idle(d, sender_idle);
}

/* sender_stats packs the figures shown by hookctl status. */
static void sender_stats(daemon_t *d, msgpack_packer *pk)
{
    sender_t *s = daemon_ctx(d);
    http_stats_t hs = {0};
    if (s->http) http_stats(s->http, &hs);
    msgpack_pack_map(pk, 15);
    frame_pack_kv_u64(pk, "config_version", s->cfg ? (uint64_t)cfgwatch_version(s->cfg) : 0);
    frame_pack_kv_u64(pk, "deferred", s->stats.deferred);
    frame_pack_kv_u64(pk, "deduped", s->stats.deduped);
    frame_pack_kv_u64(pk, "jobs", s->stats.jobs);
    frame_pack_kv_u64(pk, "succeeded", s->stats.succeeded);
    frame_pack_kv_u64(pk, "failed_attempts", s->stats.failed_attempts);
    frame_pack_kv_u64(pk, "gave_up", s->stats.gave_up);
    frame_pack_kv_u64(pk, "in_progress", s->njobs);
    frame_pack_kv_u64(pk, "log_batches", s->stats.log_batches);
    frame_pack_kv_u64(pk, "http_in_flight", hs.inflight);
    frame_pack_kv_u64(pk, "http_queued", hs.queued);
    frame_pack_kv_u64(pk, "connections", hs.connections);
    frame_pack_kv_u64(pk, "reused", hs.reused);
    frame_pack_kv_u64(pk, "refused_targets", hs.refused);
    frame_pack_kv_u64(pk, "webhooks_disabled", s->stats.disabled_410);
}

/* sender_close cancels what still runs (upstream hands it out again) and frees everything. */
static void sender_close(daemon_t *d)
{
    sender_t *s = daemon_ctx(d);
    if (s->defer_timer.data) uv_close((uv_handle_t *)&s->defer_timer, sender_timer_closed);
    if (s->http) http_close(s->http, NULL, NULL);
    s->http = NULL;
    if (s->log_timer.data) sender_log_close(s);
    sender_free_all(s);
    cfgwatch_close(s->cfg);
}

/* The options of hook-sender, one row each (daemon.h); the skeleton parses, checks, prints. */
static const daemon_option_t sender_options[] = {
    DAEMON_OPTION_LONG("connect-timeout-ms", "N", "5000", 1, 600000, sender_t,
                       http_cfg.connect_timeout_ms, "connect (and TLS handshake) timeout"),
    DAEMON_OPTION_LONG("timeout-ms", "N", "15000", 1, 3600000, sender_t, http_cfg.timeout_ms,
                       "whole-request timeout"),
    DAEMON_OPTION_CALL("allow-target", "CIDR", NULL, sender_set_allow,
                       "allow connecting into this otherwise refused range (repeatable)"),
    DAEMON_OPTION_INT("max-inflight", "N", "512", 1, 100000, sender_t, http_cfg.max_inflight,
                      "requests running at once"),
    DAEMON_OPTION_INT("max-per-endpoint", "N", "16", 1, 100000, sender_t, http_cfg.max_per_endpoint,
                      "requests running at once per endpoint"),
    DAEMON_OPTION_CALL("ca-file", "PEM", NULL, sender_set_ca_file,
                       "trust these CA certificates instead of the system's (a readable PEM "
                       "file, checked at start)"),
    DAEMON_OPTION_FLAG("disable-on-410", sender_t, disable_on_410,
                       "a 410 Gone answer disables the webhook and fails the invocation (off: "
                       "retried)"),
    DAEMON_OPTION_INT64("defer-after-ms", "N", "2000", 0, 3600000, sender_t, defer_after_ms,
                        "a job queued this long behind its saturated endpoint waits at the "
                        "scheduler instead, so one slow endpoint cannot hold back the others; 0: "
                        "never"),
    DAEMON_OPTION_END,
};

static const daemon_ops_t sender_ops = {
    .program = "hook-sender",
    .stage = "sender",
    .summary = "performs the authenticated POSTs and records each attempt",
    .multi_instance = 1,
    .options = sender_options,
    .on_start = sender_start,
    .on_peer_up = sender_peer_up,
    .on_frame = sender_frame,
    .on_peer_down = sender_peer_down,
    .on_drain = sender_drain,
    .on_stats = sender_stats,
    .on_close = sender_close,
};

int main(int argc, char **argv)
{
    static sender_t s; /* options are filled in by daemon_main from sender_options */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = daemon_main(argc, argv, &sender_ops, &s);
    if (s.guard) guard_close(s.guard);
    curl_global_cleanup();
    return rc;
}
