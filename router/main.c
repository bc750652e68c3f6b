/* main.c - hook-router: takes events from ingest, matches webhook subscriptions, builds the
 * exact bodies and hands each invocation to a sender. Stateless: ingest keeps every event until
 * the router acknowledges it, which it does once all its invocations are done. */
#include "domain/proto.h"
#include "router.h"
#include "util/frame.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* router_start opens the configuration and connects to ingest. */
static int router_start(daemon_t *d)
{
    router_t *r = daemon_ctx(d);
    char err[256];
    r->d = d;
    TAILQ_INIT(&r->events);
    TAILQ_INIT(&r->waiting);
    int rc = cfgwatch_init(&r->cfg, daemon_loop(d), daemon_db_path(d), 500, err, sizeof err);
    if (rc < 0) {
        log_error("store %s: %s", daemon_db_path(d), err);
        return rc;
    }
    if ((rc = dispatch_init(&r->senders, r->window, router_send, r)) < 0) return rc;
    return daemon_connect(d, "ingest.sock");
}

/* router_peer_up: senders take jobs. */
static void router_peer_up(daemon_t *d, conn_t *c)
{
    router_t *r = daemon_ctx(d);
    if (strcmp(conn_peer_stage(c), "sender") == 0 && !daemon_draining(d)) {
        dispatch_add_peer(r->senders, c);
        router_feed(r);
    }
}

/* router_peer_down: a sender's unfinished jobs go to the others. */
static void router_peer_down(daemon_t *d, conn_t *c)
{
    router_t *r = daemon_ctx(d);
    if (strcmp(conn_peer_stage(c), "sender") == 0)
        dispatch_remove_peer(r->senders, c);
    else if (strcmp(conn_peer_stage(c), "ingest") == 0)
        router_ingest_down(r, c);
}

/* router_frame: EVENT from ingest, JOB_DONE from senders. */
static void router_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *f)
{
    router_t *r = daemon_ctx(d);
    uint64_t seq;
    const char *js;
    size_t len;
    if (t == PT_EVENT && frame_get_u64(f, PK_SEQ, &seq) == 0 &&
        frame_get_str(f, PK_EVENT_JSON, &js, &len) == 0) {
        uint64_t copy = 0;
        int64_t cv = 0;
        frame_get_u64(f, PK_COPY, &copy);
        frame_get_i64(f, PK_CFG_VERSION, &cv);
        if (!daemon_draining(d)) router_route(r, c, seq, js, len, copy != 0, cv);
        return; /* while draining, ingest hands it to another router once we are gone */
    }
    if (t == PT_JOB_DONE && frame_get_u64(f, PK_SEQ, &seq) == 0) {
        router_job_done(r, c, seq);
        return;
    }
    char reason[80];
    snprintf(reason, sizeof reason, "unexpected or malformed frame type %llu",
             (unsigned long long)t);
    conn_close(c, reason);
}

/* router_idle: every event taken is acknowledged, or no sender is left to finish them (ingest
 * keeps them and hands them out again). */
static int router_idle(daemon_t *d)
{
    router_t *r = daemon_ctx(d);
    return r->nevents == 0 || dispatch_peers(r->senders) == 0;
}

/* router_drain: take no new events, finish the jobs in flight, then stop. Events not matched
 * yet are dropped: ingest hands them to another router once this one is gone. */
static void router_drain(daemon_t *d)
{
    router_drop_waiting(daemon_ctx(d));
    daemon_stop_when_idle(d, router_idle);
}

/* router_stats packs the figures shown by hookctl status. */
static void router_stats(daemon_t *d, msgpack_packer *pk)
{
    router_t *r = daemon_ctx(d);
    msgpack_pack_map(pk, 14);
    frame_pack_kv_u64(pk, "events", r->stats.events);
    frame_pack_kv_u64(pk, "events_done", r->stats.events_done);
    frame_pack_kv_u64(pk, "unrouted", r->stats.unrouted);
    frame_pack_kv_u64(pk, "unmatched", r->stats.unmatched);
    frame_pack_kv_u64(pk, "oversized", r->stats.oversized);
    frame_pack_kv_u64(pk, "jobs", r->stats.jobs);
    frame_pack_kv_u64(pk, "jobs_done", r->stats.jobs_done);
    frame_pack_kv_u64(pk, "queued", r->senders ? dispatch_queued(r->senders) : 0);
    frame_pack_kv_u64(pk, "in_flight", r->senders ? dispatch_inflight(r->senders) : 0);
    frame_pack_kv_u64(pk, "in_flight_bytes", r->inflight_bytes);
    frame_pack_kv_u64(pk, "waiting", r->nwaiting);
    frame_pack_kv_u64(pk, "waiting_bytes", r->waiting_bytes);
    frame_pack_kv_u64(pk, "senders", r->senders ? dispatch_peers(r->senders) : 0);
    frame_pack_kv_u64(pk, "config_version", r->cfg ? (uint64_t)cfgwatch_version(r->cfg) : 0);
}

/* router_close frees every job and event. */
static void router_close(daemon_t *d)
{
    router_t *r = daemon_ctx(d);
    if (r->senders) {
        router_free_all(r);
        dispatch_close(r->senders);
    }
    cfgwatch_close(r->cfg);
}

/* The options of hook-router, one row each (daemon.h); the skeleton parses, checks, prints. */
static const daemon_option_t router_options[] = {
    DAEMON_OPTION_UINT("window", "N", "4096", 1, 1000000, router_t, window,
                       "jobs in flight per sender before waiting for acknowledgements"),
    DAEMON_OPTION_SIZE("window-bytes", "N", "8388608", 1, 1ull << 40, router_t, window_bytes,
                       "body bytes in flight per sender before waiting"),
    /* 262144 is ROUTER_MAX_BODY_DEFAULT; a JOB frame carries the body and must stay under the
     * 16 MiB frame limit. */
    DAEMON_OPTION_SIZE("max-body-bytes", "N", "262144", 1, ROUTER_MAX_BODY_LIMIT, router_t,
                       max_body,
                       "largest body built for one webhook; a larger one is recorded failed, "
                       "never sent"),
    DAEMON_OPTION_END,
};

static const daemon_ops_t router_ops = {
    .program = "hook-router",
    .stage = "router",
    .summary = "matches events to webhooks and builds the request bodies",
    .multi_instance = 1,
    .options = router_options,
    .on_start = router_start,
    .on_peer_up = router_peer_up,
    .on_frame = router_frame,
    .on_peer_down = router_peer_down,
    .on_drain = router_drain,
    .on_stats = router_stats,
    .on_close = router_close,
};

int main(int argc, char **argv)
{
    static router_t r; /* options are filled in by daemon_main from router_options */
    return daemon_main(argc, argv, &router_ops, &r);
}
