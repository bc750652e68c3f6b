/* ingest_repair.c - the delivery log's `pending` records checked against the replayed journal
 * at start: a pending record whose event ingest no longer holds had its outcome's write lost in
 * a crash (ingest lets an event go only once every outcome is durable); it is ended as failed
 * with a reason, never left pending. */
#include "domain/proto.h"
#include "domain/store_repair.h"
#include "ingest.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define INGEST_REPAIR_WHY                                                                          \
    "outcome lost in a crash: the attempt was made or under way, but its delivery-log record "     \
    "did not survive; "
#define INGEST_REPAIR_AGAIN "`hookctl redeliver` sends it again"
#define INGEST_REPAIR_NO_BODY                                                                      \
    "no request body was recorded, so it cannot be sent again from the log"

typedef struct ingest_repair_ctx {
    ingest_t *in;
    store_repair_t *r;
    size_t unreadable;
} ingest_repair_ctx_t;

/* ingest_repair_visit reads one held event back from the journal and marks its records held. */
static void ingest_repair_visit(void *arg, journal_pos_t pos)
{
    ingest_repair_ctx_t *cx = arg;
    void *rec = NULL;
    size_t len = 0;
    const char *js;
    size_t jslen;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    json_t *o = NULL;
    if (journal_read(cx->in->journal, pos, &rec, &len) < 0 ||
        msgpack_unpack_next(&up, rec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP ||
        frame_get_str(&up.data, PK_EVENT_JSON, &js, &jslen) < 0 ||
        !(o = json_loadb(js, jslen, 0, NULL)) || !json_is_string(json_object_get(o, "id"))) {
        cx->unreadable++;
    } else {
        json_t *id = json_object_get(o, "id");
        store_repair_hold_event(cx->r, json_string_value(id), json_string_length(id));
    }
    json_decref(o);
    msgpack_unpacked_destroy(&up);
    free(rec);
}

void ingest_repair_log(ingest_t *in)
{
    store_repair_t *r;
    char err[256];
    size_t ended = 0, held = 0, n;
    /* Before any router is connected: every event not yet acknowledged waits in the queue. */
    int rc =
        store_repair_open(&r, daemon_db_path(in->d), DLV_PENDING, time_now_ms(), err, sizeof err);
    if (rc < 0) {
        log_error("delivery log: pending records not checked against the journal (%s); the next "
                  "start checks them again",
                  err);
        return;
    }
    if (!(n = store_repair_count(r))) {
        store_repair_close(r);
        return;
    }
    ingest_repair_ctx_t cx = {in, r, 0};
    ingest_queue_foreach(in, ingest_repair_visit, &cx);
    if (cx.unreadable) { /* one of them may be the event of a record: touch none */
        log_error("delivery log: %zu held events could not be read back; %zu pending records "
                  "left as they are",
                  cx.unreadable, n);
        store_repair_close(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int is_held;
        const delivery_t *d = store_repair_row(r, i, &is_held);
        if (is_held) {
            held++;
            continue;
        }
        rc = store_repair_fail(r, i,
                               d->req_body ? INGEST_REPAIR_WHY INGEST_REPAIR_AGAIN
                                           : INGEST_REPAIR_WHY INGEST_REPAIR_NO_BODY,
                               err, sizeof err);
        if (rc < 0)
            log_error("delivery log: %s left pending: %s", d->invocation_id, err);
        else if (rc > 0)
            log_warn("delivery log: %s (event %s) was pending but ingest no longer holds its "
                     "event: ended failed, outcome lost in a crash",
                     d->invocation_id, d->event_id);
        ended += rc > 0;
    }
    log_info("delivery log: %zu pending records checked: %zu held, %zu ended failed", n, held,
             ended);
    store_repair_close(r);
}
