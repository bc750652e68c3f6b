/* sched_client.c - the REDELIVER exchange with the scheduler (sched_client.h). */
#include "domain/sched_client.h"

#include "domain/proto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sched_redeliver_send(client_t *cl, const delivery_t *d, int timeout_ms, char *err,
                         size_t errlen)
{
    char why[256] = "";
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_object reply;
    size_t mark;
    uint64_t t;
    int rc;

    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, 7);
    frame_pack_kv_u64(&pk, PK_TYPE, PT_REDELIVER);
    frame_pack_kv_str(&pk, PK_INVOCATION, d->invocation_id);
    frame_pack_kv_str(&pk, PK_WEBHOOK, d->webhook_id);
    frame_pack_kv_str(&pk, PK_EVENT_ID, d->event_id);
    frame_pack_kv_str(&pk, PK_EVENT_TYPE, d->event_type);
    frame_pack_kv_str(&pk, PK_BODY, d->req_body);
    frame_pack_kv_i64(&pk, PK_CREATED, d->created_at);
    frame_end(&sb, mark);
    rc = client_send(cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        snprintf(err, errlen, "sending to the scheduler: %s", strerror(-rc));
        return rc;
    }
    for (;;) {
        rc = client_recv(cl, &reply, timeout_ms, why, sizeof why);
        if (rc <= 0) {
            snprintf(err, errlen, "no answer from the scheduler: %s",
                     rc == 0  ? "timed out"
                     : why[0] ? why
                              : strerror(-rc));
            return rc == 0 ? -ETIMEDOUT : rc;
        }
        if (frame_get_u64(&reply, PK_TYPE, &t) == 0 && t == PT_REDELIVER_ACK) break;
    }
    const msgpack_object *ok = frame_get(&reply, PK_OK);
    int accepted = ok && ((ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean) ||
                          (ok->type == MSGPACK_OBJECT_POSITIVE_INTEGER && ok->via.u64 != 0));
    if (!accepted) {
        char *r = frame_dup_str(&reply, PK_ERROR);
        snprintf(err, errlen, "%s: the scheduler refused: %s", d->invocation_id,
                 r ? r : "no reason given");
        free(r);
        return -EPERM;
    }
    return 0;
}

int sched_redeliver(const char *run_dir, const delivery_t *d, int timeout_ms, char *err,
                    size_t errlen)
{
    char path[PATH_MAX], why[256] = "";
    client_t cl;
    int rc;
    if (snprintf(path, sizeof path, "%s/scheduler.sock", run_dir) >= (int)sizeof path) {
        snprintf(err, errlen, "socket path too long: %s/scheduler.sock", run_dir);
        return -ENAMETOOLONG;
    }
    if ((rc = client_connect(&cl, path, timeout_ms, why, sizeof why)) < 0) {
        snprintf(err, errlen, "cannot reach the scheduler: %s", why[0] ? why : strerror(-rc));
        return rc;
    }
    rc = sched_redeliver_send(&cl, d, timeout_ms, err, errlen);
    client_close(&cl);
    return rc;
}
