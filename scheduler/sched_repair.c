/* sched_repair.c - the delivery log's `retrying` records checked against the replayed journal
 * at start: one the scheduler does not hold lost its retry (or its final outcome's write) in a
 * crash; it is scheduled again from the record, or ended as failed, never left retrying. */
#include "domain/proto.h"
#include "domain/store_repair.h"
#include "scheduler.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

/* sched_repair_resume journals the next attempt of record d, as a redelivery from hookctl
 * would: same keys, built from the record. */
static void sched_repair_resume(scheduler_t *s, const delivery_t *d, int attempt)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    frame_pack_kv_str(&pk, PK_INVOCATION, d->invocation_id);
    frame_pack_kv_str(&pk, PK_WEBHOOK, d->webhook_id);
    frame_pack_kv_str(&pk, PK_EVENT_ID, d->event_id);
    frame_pack_kv_str(&pk, PK_EVENT_TYPE, d->event_type);
    frame_pack_kv_str(&pk, PK_BODY, d->req_body);
    frame_pack_kv_i64(&pk, PK_CREATED, d->created_at);
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS)
        sched_queue_resume(s, &up.data, attempt);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

void sched_repair_log(scheduler_t *s)
{
    store_repair_t *r;
    char err[256], why[256];
    size_t held = 0, resumed = 0, ended = 0;
    /* Before any sender is connected: a record updated since is no one's but a live stage's. */
    int64_t now = time_now_ms();
    int rc = store_repair_open(&r, daemon_db_path(s->d), DLV_RETRYING, now, err, sizeof err);
    if (rc < 0) {
        log_error("delivery log: retrying records not checked against the journal (%s); the "
                  "next start checks them again",
                  err);
        return;
    }
    for (size_t i = 0; i < store_repair_count(r); i++) {
        const delivery_t *d = store_repair_row(r, i, NULL);
        if (sched_index_find(&s->index, d->invocation_id, strlen(d->invocation_id))) {
            store_repair_hold_row(r, i);
            held++;
            continue;
        }
        /* A retrying record says attempt `attempts` failed and the next was journaled here.
         * Not held: that retry was lost, or the final outcome of the next attempt (made and
         * decided) lost its write. Either way attempt attempts + 1 is the one to make: it is
         * the lost retry, or a repeat of the last attempt whose record was lost; the attempt
         * the record names is known to have failed. */
        int next = d->attempts + 1;
        const char *cannot = NULL;
        if (!d->req_body || !d->req_body[0])
            cannot = "the record holds no request body to send again";
        else if (!d->webhook_id[0] || !d->event_id[0] || !d->event_type[0])
            cannot = "the record lacks its webhook, event id or event type";
        else if (next > s->policy.max_attempts)
            cannot = "its attempts are used up";
        else if (strlen(d->invocation_id) >= INVOCATION_ID_LEN)
            cannot = "its invocation id is too long for the scheduler";
        if (!cannot) {
            log_warn("delivery log: %s was retrying but the scheduler's journal does not hold "
                     "it (lost in a crash): attempt %d scheduled again",
                     d->invocation_id, next);
            sched_repair_resume(s, d, next);
            resumed++;
            continue;
        }
        snprintf(why, sizeof why,
                 "retry lost in a crash (the scheduler's journal no longer held it) and %s",
                 cannot);
        rc = store_repair_fail(r, i, why, err, sizeof err);
        if (rc < 0)
            log_error("delivery log: %s left retrying: %s", d->invocation_id, err);
        else if (rc > 0)
            log_warn("delivery log: %s ended failed: %s", d->invocation_id, why);
        ended += rc > 0;
    }
    if (store_repair_count(r))
        log_info("delivery log: %zu retrying records checked: %zu held, %zu scheduled again, "
                 "%zu ended failed",
                 store_repair_count(r), held, resumed, ended);
    store_repair_close(r);
}
