/* main.c - hook-ingest: accepts producer events, validates and normalizes them, journals them,
 * derives won/lost, and hands them to the routers. */
#include "domain/proto.h"
#include "ingest.h"
#include "util/frame.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ingest_start opens the configuration and the journal. */
static int ingest_start(daemon_t *d)
{
    ingest_t *in = daemon_ctx(d);
    char err[256];
    in->d = d;
    TAILQ_INIT(&in->producers);
    ingest_producer_init(in);
    int rc = cfgwatch_init(&in->cfg, daemon_loop(d), daemon_db_path(d), 500, err, sizeof err);
    if (rc < 0) {
        log_error("store %s: %s", daemon_db_path(d), err);
        return rc;
    }
    if ((rc = ingest_queue_open(in)) == 0) ingest_repair_log(in);
    return rc;
}

/* ingest_peer_up: routers receive events. */
static void ingest_peer_up(daemon_t *d, conn_t *c)
{
    if (strcmp(conn_peer_stage(c), "router") == 0) ingest_queue_router_up(daemon_ctx(d), c);
}

/* ingest_peer_down: a router's unacknowledged events go to the others; producers are freed. */
static void ingest_peer_down(daemon_t *d, conn_t *c)
{
    if (conn_is_raw(c))
        ingest_producer_down(daemon_ctx(d), c);
    else if (strcmp(conn_peer_stage(c), "router") == 0)
        ingest_queue_router_down(daemon_ctx(d), c);
}

/* ingest_frame: the only frame ingest takes is a router's EVENT_ACK. */
static void ingest_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *f)
{
    uint64_t seq;
    if (t == PT_EVENT_ACK && frame_get_u64(f, PK_SEQ, &seq) == 0) {
        ingest_queue_ack(daemon_ctx(d), c, seq);
        return;
    }
    char reason[64];
    snprintf(reason, sizeof reason, "unexpected frame type %llu", (unsigned long long)t);
    conn_close(c, reason);
}

/* ingest_raw: producer bytes. */
static void ingest_raw(daemon_t *d, conn_t *c, const char *data, size_t n)
{
    ingest_producer_data(daemon_ctx(d), c, data, n);
}

/* ingest_idle: every producer has its replies. */
static int ingest_idle(daemon_t *d)
{
    return ingest_producer_quiet(daemon_ctx(d));
}

/* ingest_drain: stop reading producers, make everything accepted durable, answer, stop. */
static void ingest_drain(daemon_t *d)
{
    ingest_t *in = daemon_ctx(d);
    ingest_producer_pause_all(in);
    committer_flush_now(in->commit);
    daemon_stop_when_idle(d, ingest_idle);
}

/* ingest_stats packs the figures shown by hookctl status. */
static void ingest_stats(daemon_t *d, msgpack_packer *pk)
{
    ingest_t *in = daemon_ctx(d);
    ingest_dedupe_stats_t ds = {0};
    if (in->dedupe) ingest_dedupe_get_stats(in->dedupe, &ds);
    msgpack_pack_map(pk, 19);
    frame_pack_kv_u64(pk, "config_version", in->cfg ? (uint64_t)cfgwatch_version(in->cfg) : 0);
    frame_pack_kv_u64(pk, "lines_accepted", in->stats.lines_accepted);
    frame_pack_kv_u64(pk, "lines_rejected", in->stats.lines_rejected);
    frame_pack_kv_u64(pk, "events", in->stats.events);
    frame_pack_kv_u64(pk, "unrouted", in->stats.unrouted);
    frame_pack_kv_u64(pk, "routed", in->stats.delivered);
    frame_pack_kv_u64(pk, "replayed", in->stats.replayed);
    frame_pack_kv_u64(pk, "queued", ingest_queue_waiting(in));
    frame_pack_kv_u64(pk, "in_flight_bytes", in->inflight_bytes);
    frame_pack_kv_u64(pk, "producer_pauses", in->stats.paused);
    frame_pack_kv_u64(pk, "producers_paused", ingest_producer_paused(in));
    frame_pack_kv_u64(pk, "in_flight", in->routers ? dispatch_inflight(in->routers) : 0);
    frame_pack_kv_u64(pk, "routers", in->routers ? dispatch_peers(in->routers) : 0);
    frame_pack_kv_u64(pk, "duplicates", in->stats.duplicates);
    frame_pack_kv_u64(pk, "dedupe_window", in->dedupe_window);
    frame_pack_kv_u64(pk, "dedupe_keys", ds.keys);
    frame_pack_kv_u64(pk, "dedupe_segments", ds.segments);
    frame_pack_kv_u64(pk, "dedupe_disk_bytes", ds.disk_bytes);
    frame_pack_kv_u64(pk, "dedupe_damaged", ds.damaged);
}

/* ingest_close frees the queue and the configuration. */
static void ingest_close(daemon_t *d)
{
    ingest_t *in = daemon_ctx(d);
    ingest_queue_close(in);
    ingest_producer_close(in);
    cfgwatch_close(in->cfg);
}

/* The options of hook-ingest, one row each (daemon.h); the skeleton parses, checks, prints. */
static const daemon_option_t ingest_options[] = {
    DAEMON_OPTION_UINT("window", "N", "4096", 1, 1000000, ingest_t, window,
                       "events in flight per router before waiting for acknowledgements"),
    DAEMON_OPTION_SIZE("window-bytes", "N", "8388608", 1, 1ull << 40, ingest_t, window_bytes,
                       "event bytes in flight per router before waiting"),
    DAEMON_OPTION_UINT("dedupe-window", "SECONDS", "86400", 0, 315360000, ingest_t, dedupe_window,
                       "an event whose (project_id, id) was accepted this recently is answered "
                       "as a duplicate and not delivered again; 0 turns it off"),
    DAEMON_OPTION_END,
};

static const daemon_ops_t ingest_ops = {
    .program = "hook-ingest",
    .stage = "ingest",
    .summary = "accepts events on run/ingest.sock, journals them, hands them to routers",
    .multi_instance = 0,
    .raw_input = 1,
    .has_journal = 1,
    .options = ingest_options,
    .on_start = ingest_start,
    .on_peer_up = ingest_peer_up,
    .on_frame = ingest_frame,
    .on_peer_down = ingest_peer_down,
    .on_raw = ingest_raw,
    .on_drain = ingest_drain,
    .on_stats = ingest_stats,
    .on_close = ingest_close,
};

int main(int argc, char **argv)
{
    static ingest_t in; /* options are filled in by daemon_main from ingest_options */
    return daemon_main(argc, argv, &ingest_ops, &in);
}
