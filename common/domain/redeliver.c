/* redeliver.c - delivery records sent again through the scheduler (REDELIVER and its ack), and
 * the failed records of a webhook since a time: shared by hookctl and hook-api. */
#include "domain/redeliver.h"

#include "domain/proto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

int redeliver_connect(client_t *cl, const char *run_dir, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    char path[sizeof sun.sun_path], cerr[256] = "";
    int len = snprintf(path, sizeof path, "%s/scheduler.sock", run_dir);
    if (len < 0 || (size_t)len >= sizeof path) {
        snprintf(err, errlen, "socket path too long: %s/scheduler.sock", run_dir);
        return -ENAMETOOLONG;
    }
    int rc = client_connect(cl, path, REDELIVER_TIMEOUT_MS, cerr, sizeof cerr);
    if (rc < 0)
        snprintf(err, errlen, "cannot reach the scheduler: %s", cerr[0] ? cerr : strerror(-rc));
    return rc;
}

int redeliver_ask(client_t *cl, const delivery_t *d, char *err, size_t errlen)
{
    char rerr[256] = "";
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
        rc = client_recv(cl, &reply, REDELIVER_TIMEOUT_MS, rerr, sizeof rerr);
        if (rc <= 0) {
            snprintf(err, errlen, "no answer from the scheduler: %s",
                     rc == 0   ? "timed out"
                     : rerr[0] ? rerr
                               : strerror(-rc));
            return rc == 0 ? -ETIMEDOUT : rc;
        }
        if (frame_get_u64(&reply, PK_TYPE, &t) == 0 && t == PT_REDELIVER_ACK) break;
    }
    const msgpack_object *ok = frame_get(&reply, PK_OK);
    int accepted = ok && ((ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean) ||
                          (ok->type == MSGPACK_OBJECT_POSITIVE_INTEGER && ok->via.u64 != 0));
    if (!accepted) {
        char *why = frame_dup_str(&reply, PK_ERROR);
        snprintf(err, errlen, "%s: the scheduler refused: %s", d->invocation_id,
                 why ? why : "no reason given");
        free(why);
        return -EPERM;
    }
    return 0;
}

int redeliver_webhook_ready(const config_t *cfg, const char *id)
{
    const webhook_t *wh = config_find_webhook(cfg, id, NULL);
    return !wh ? -ENOENT : !wh->enabled ? -EPERM : 0;
}

/* The read's state: the list and the cut-off. */
typedef struct redeliver_take_ctx {
    redeliver_list_t *l;
    int64_t since;
} redeliver_take_ctx_t;

/* redeliver_take keeps one failed record updated at or after since. */
static int redeliver_take(void *arg, const delivery_t *d)
{
    redeliver_take_ctx_t *c = arg;
    redeliver_list_t *l = c->l;
    if (d->updated_at < c->since || !d->req_body || !d->event_id || !d->event_type) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        delivery_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (store_delivery_copy(&l->v[l->n], d) < 0) return -ENOMEM;
    l->n++;
    return 0;
}

int redeliver_failed_since(store_t *s, const char *webhook_id, int64_t since, redeliver_list_t *l,
                           char *err, size_t errlen)
{
    redeliver_take_ctx_t c = {l, since};
    delivery_filter_t f = {webhook_id, NULL, DLV_FAILED, INT_MAX};
    memset(l, 0, sizeof *l);
    int rc = store_deliveries_list(s, &f, redeliver_take, &c, err, errlen);
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
    if (rc < 0) redeliver_list_free(l);
    return rc < 0 ? rc : 0;
}

void redeliver_list_free(redeliver_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        store_delivery_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
