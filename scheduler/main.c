/* main.c - hook-scheduler: holds the backoff timers of failed deliveries, on disk, and hands
 * them back to a sender when due; decides when an invocation has failed for good. */
#include "domain/proto.h"
#include "sched_prune.h"
#include "scheduler.h"
#include "util/frame.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sched_set_log_age parses --log-max-age-days (days, fractions allowed) into milliseconds. */
static int sched_set_log_age(void *ctx, const char *val, char *err, size_t errlen)
{
    double v;
    int rc = daemon_option_double(val, 0, 36500, &v, err, errlen);
    if (rc == 0) ((scheduler_t *)ctx)->log_max_age_ms = (int64_t)(v * 86400000.0);
    return rc;
}

/* sched_start opens the store (for redelivery marks) and rebuilds the pending retries. */
static int sched_start(daemon_t *d)
{
    scheduler_t *s = daemon_ctx(d);
    char err[256];
    s->d = d;
    int rc = store_open(&s->store, daemon_db_path(d), err, sizeof err);
    if (rc < 0) {
        log_error("store %s: %s", daemon_db_path(d), err);
        return rc;
    }
    store_set_busy(s->store, 100, 2); /* on the event loop: fail fast, retry from a timer */
    if ((rc = sched_queue_open(s)) < 0) return rc;
    sched_repair_log(s);
    sched_prune_start(&s->prune, daemon_loop(d), daemon_db_path(d), s->log_max_age_ms, s->log_keep,
                      &s->stats.pruned);
    return 0;
}

/* sched_peer_up: senders take due retries. */
static void sched_peer_up(daemon_t *d, conn_t *c)
{
    scheduler_t *s = daemon_ctx(d);
    if (strcmp(conn_peer_stage(c), "sender") == 0 && !daemon_draining(d))
        dispatch_add_peer(s->senders, c);
}

/* sched_peer_down: a sender's in-flight retries go to the others. */
static void sched_peer_down(daemon_t *d, conn_t *c)
{
    sched_queue_peer_down(daemon_ctx(d), c);
}

/* sched_frame: RETRY and JOB_DONE from senders, REDELIVER from hookctl. */
static void sched_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *f)
{
    scheduler_t *s = daemon_ctx(d);
    uint64_t seq;
    if (t == PT_RETRY) {
        sched_queue_retry(s, c, f);
    } else if (t == PT_JOB_DONE && frame_get_u64(f, PK_SEQ, &seq) == 0) {
        sched_queue_done(s, c, seq);
    } else if (t == PT_REDELIVER) {
        sched_queue_redeliver(s, c, f);
    } else {
        char reason[80];
        snprintf(reason, sizeof reason, "unexpected or malformed frame type %llu",
                 (unsigned long long)t);
        conn_close(c, reason);
    }
}

/* sched_idle: no sender holds a retry and every reply went out. */
static int sched_idle(daemon_t *d)
{
    return sched_queue_idle(daemon_ctx(d));
}

/* sched_drain: hand out nothing more, sync, wait for in-flight retries to report. */
static void sched_drain(daemon_t *d)
{
    scheduler_t *s = daemon_ctx(d);
    committer_flush_now(s->commit);
    daemon_stop_when_idle(d, sched_idle);
}

/* sched_stats packs the figures shown by hookctl status. */
static void sched_stats(daemon_t *d, msgpack_packer *pk)
{
    scheduler_t *s = daemon_ctx(d);
    msgpack_pack_map(pk, 11);
    frame_pack_kv_u64(pk, "pending", sched_queue_pending(s));
    frame_pack_kv_u64(pk, "deferred", s->stats.deferred);
    frame_pack_kv_u64(pk, "pruned", s->stats.pruned);
    frame_pack_kv_u64(pk, "retries", s->stats.retries);
    frame_pack_kv_u64(pk, "failed", s->stats.failed);
    frame_pack_kv_u64(pk, "dispatched", s->stats.dispatched);
    frame_pack_kv_u64(pk, "done", s->stats.done);
    frame_pack_kv_u64(pk, "redelivered", s->stats.redelivered);
    frame_pack_kv_u64(pk, "replayed", s->stats.replayed);
    frame_pack_kv_u64(pk, "in_flight", s->senders ? dispatch_inflight(s->senders) : 0);
    frame_pack_kv_u64(pk, "senders", s->senders ? dispatch_peers(s->senders) : 0);
}

/* sched_close syncs and frees everything. */
static void sched_close(daemon_t *d)
{
    scheduler_t *s = daemon_ctx(d);
    sched_prune_stop(s->prune);
    sched_queue_close(s);
    if (s->store) store_close(s->store);
}

/* The options of hook-scheduler, one row each (daemon.h); the skeleton parses, checks, prints.
 * The retry defaults are RETRY_POLICY_DEFAULT's (and the contract's). */
static const daemon_option_t sched_options[] = {
    DAEMON_OPTION_INT64("retry-base-ms", "N", "30000", 0, 86400000.0 * 7, scheduler_t,
                        policy.base_ms, "wait before the first retry"),
    DAEMON_OPTION_DOUBLE("retry-factor", "F", "4", 1, 100, scheduler_t, policy.factor,
                         "growth of each further wait"),
    DAEMON_OPTION_DOUBLE("retry-jitter", "FRACTION", "0.1", 0, 1, scheduler_t, policy.jitter,
                         "random spread of each wait, +-fraction"),
    DAEMON_OPTION_INT("max-attempts", "N", "6", 1, 100, scheduler_t, policy.max_attempts,
                      "attempts in all before an invocation fails"),
    DAEMON_OPTION_UINT("window", "N", "4096", 1, 1000000, scheduler_t, window,
                       "retries in flight per sender"),
    DAEMON_OPTION_CALL("log-max-age-days", "D", "30", sched_set_log_age,
                       "prune delivery-log records older than this; 0: never"),
    DAEMON_OPTION_INT("log-keep", "N", "10000", 0, 1e9, scheduler_t, log_keep,
                      "keep at most this many finished records per webhook; 0: all"),
    DAEMON_OPTION_END,
};

static const daemon_ops_t sched_ops = {
    .program = "hook-scheduler",
    .stage = "scheduler",
    .summary = "holds the backoff timers of failed deliveries and hands them back when due",
    .multi_instance = 0,
    .has_journal = 1,
    .options = sched_options,
    .on_start = sched_start,
    .on_peer_up = sched_peer_up,
    .on_frame = sched_frame,
    .on_peer_down = sched_peer_down,
    .on_drain = sched_drain,
    .on_stats = sched_stats,
    .on_close = sched_close,
};

int main(int argc, char **argv)
{
    static scheduler_t s; /* options are filled in by daemon_main from sched_options */
    return daemon_main(argc, argv, &sched_ops, &s);
}
