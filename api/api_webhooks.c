/* api_webhooks.c - /v1/projects/{p}/webhooks: one project's webhooks listed, added, read,
 * changed key by key, removed, and their failed deliveries sent again (recover). Validation is
 * the import file's (config_webhook_from_json), the store's single-webhook changes keep a stored
 * credential given as "***", and every change bumps the configuration version in its own
 * transaction, so it is in force when the request returns. Credentials and secrets are only
 * ever answered as "***". */
#include "api_config.h"

#include "domain/redeliver.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* webhook_find: webhook {w} of project {p}, or NULL after answering 404. */
static const webhook_t *webhook_find(api_req_t *r)
{
    const project_t *p = api_config_project(r);
    const char *id = api_param(r, 1);
    if (!p) return NULL;
    for (size_t i = 0; i < p->nwebhooks; i++)
        if (strcmp(p->webhooks[i].id, id) == 0) return &p->webhooks[i];
    api_reply_error(r, 404, "no webhook \"%s\" in project \"%s\"", id, p->id);
    return NULL;
}

/* webhook_json: the API's webhook, credentials and secrets masked; "auth" always there (the
 * import format leaves out {"type": "none"}, a client should not have to know that). */
static json_t *webhook_json(const webhook_t *wh)
{
    json_t *o = config_webhook_to_json(wh, 0);
    if (o && !json_object_get(o, "auth"))
        json_object_set_new(o, "auth", json_pack("{s:s}", "type", "none"));
    return o;
}

/* webhook_reply answers status with the webhook. */
static void webhook_reply(api_req_t *r, unsigned status, const webhook_t *wh)
{
    json_t *o = webhook_json(wh);
    if (o)
        api_reply_json(r, status, o);
    else
        api_reply_error(r, 500, "out of memory");
}

/* webhook_build validates obj as a webhook of project (answering 400 naming the field). */
static int webhook_build(api_req_t *r, const json_t *obj, const char *project, webhook_t *wh)
{
    char err[512] = "";
    int rc = config_webhook_from_json(obj, project, wh, err, sizeof err);
    if (rc < 0) api_reply_error(r, 400, "%s", err[0] ? err : strerror(-rc));
    return rc;
}

void api_webhooks_list(api_req_t *r)
{
    const project_t *p = api_config_project(r);
    if (!p) return;
    json_t *data = json_array();
    for (size_t i = 0; data && i < p->nwebhooks; i++) {
        json_t *o = webhook_json(&p->webhooks[i]);
        if (!o || json_array_append_new(data, o) < 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!data) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o}", "data", data));
}

void api_webhook_create(api_req_t *r)
{
    const project_t *p = api_config_project(r);
    char err[512] = "", id[4 + UUID_STR_LEN];
    webhook_t wh;
    json_t *body;
    if (!p || !(body = api_body_json(r))) return;
    const json_t *pid = json_object_get(body, "project_id");
    if (pid && !(json_is_string(pid) && strcmp(json_string_value(pid), p->id) == 0)) {
        api_reply_error(r, 400, "project_id: must be \"%s\" (the project of the path)", p->id);
        goto out;
    }
    json_object_del(body, "project_id");
    if (!json_object_get(body, "id")) { /* one is assigned: wh_ and a UUIDv7, sortable by age */
        memcpy(id, "wh_", 3);
        uuid_v7(time_now_ms(), id + 3);
        json_object_set_new(body, "id", json_string(id));
    }
    if (webhook_build(r, body, p->id, &wh) < 0) goto out;
    const char *masked = config_webhook_masked(&wh);
    int rc;
    if (masked)
        api_reply_error(r, 400,
                        "%s: \"" CONFIG_MASK "\" keeps a stored value, but a new webhook has none",
                        masked);
    else if ((rc = store_webhook_add(api_store(api_of(r)), &wh, err, sizeof err)) == -EEXIST)
        api_reply_error(r, 409, "id: webhook \"%s\" exists already", wh.id);
    else if (rc == -EINVAL && strstr(err, "unknown project")) /* removed meanwhile */
        api_reply_error(r, 404, "no project \"%s\"", p->id);
    else if (rc < 0)
        api_config_store_fail(r, rc, err);
    else
        webhook_reply(r, 201, &wh);
    config_webhook_clear(&wh);
out:
    json_decref(body);
}

void api_webhook_get(api_req_t *r)
{
    const webhook_t *wh = webhook_find(r);
    if (wh) webhook_reply(r, 200, wh);
}

void api_webhook_patch(api_req_t *r)
{
    const webhook_t *old = webhook_find(r);
    char err[512] = "";
    webhook_t wh;
    json_t *patch, *obj;
    if (!old || !(patch = api_body_json(r))) return;
    obj = config_webhook_merge(old, patch, err, sizeof err);
    json_decref(patch);
    if (!obj) {
        api_reply_error(r, 400, "%s", err);
        return;
    }
    int rc = webhook_build(r, obj, old->project_id, &wh);
    json_decref(obj);
    if (rc < 0) return;
    /* wh's masked credentials become the stored ones here, in the change's transaction */
    rc = store_webhook_update(api_store(api_of(r)), &wh, err, sizeof err);
    if (rc == -ENOENT)
        api_reply_error(r, 404, "no webhook \"%s\" in project \"%s\"", wh.id, wh.project_id);
    else if (rc < 0)
        api_config_store_fail(r, rc, err);
    else
        webhook_reply(r, 200, &wh);
    config_webhook_clear(&wh);
}

void api_webhook_delete(api_req_t *r)
{
    const webhook_t *wh = webhook_find(r);
    char err[512] = "";
    if (!wh) return;
    int rc = store_webhook_remove(api_store(api_of(r)), wh->id, err, sizeof err);
    if (rc == -ENOENT)
        api_reply_error(r, 404, "no webhook \"%s\" in project \"%s\"", api_param(r, 1),
                        api_param(r, 0));
    else if (rc < 0)
        api_config_store_fail(r, rc, err);
    else
        api_reply_json(r, 204, NULL);
}

/* --- recover: the failed records are read on the loop, sent to the scheduler on a worker --- */

typedef struct recover_job {
    uv_work_t work;
    api_req_t *r;
    char run_dir[4096];
    redeliver_list_t list;
    size_t sent;
    int rc;
    char err[512];
} recover_job_t;

/* recover_work (worker thread): connect to the scheduler and ask for each record. */
static void recover_work(uv_work_t *w)
{
    recover_job_t *j = w->data;
    client_t cl;
    if ((j->rc = redeliver_connect(&cl, j->run_dir, j->err, sizeof j->err)) < 0) return;
    for (size_t i = 0; i < j->list.n; i++) {
        if ((j->rc = redeliver_ask(&cl, &j->list.v[i], j->err, sizeof j->err)) < 0) break;
        j->sent++;
    }
    client_close(&cl);
}

/* recover_done (loop thread): answer with the count, or 503 saying how far it got. */
static void recover_done(uv_work_t *w, int status)
{
    recover_job_t *j = w->data;
    if (status < 0)
        api_reply_error(j->r, 500, "recover: %s", uv_strerror(status));
    else if (j->rc < 0)
        api_reply_error(j->r, 503, "%s (%zu of %zu failed invocations sent again)", j->err, j->sent,
                        j->list.n);
    else
        api_reply_json(j->r, 202, json_pack("{s:I}", "count", (json_int_t)j->sent));
    redeliver_list_free(&j->list);
    free(j);
}

void api_webhook_recover(api_req_t *r)
{
    const webhook_t *wh = webhook_find(r);
    json_t *body, *since;
    int64_t since_ms;
    recover_job_t *j = NULL;
    const char *key;
    json_t *val;
    if (!wh || !(body = api_body_json(r))) return;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "since") != 0) {
            api_reply_error(r, 400, "%s: unknown key (the body is {\"since\": RFC 3339})", key);
            goto out;
        }
    }
    since = json_object_get(body, "since");
    if (!since) {
        api_reply_error(r, 400, "since: missing (an RFC 3339 date-time, 2026-12-01T10:00:00Z)");
        goto out;
    }
    if (!json_is_string(since) || time_parse_rfc3339(json_string_value(since), &since_ms) < 0) {
        api_reply_error(r, 400, "since: expected an RFC 3339 date-time (2026-12-01T10:00:00Z)");
        goto out;
    }
    if (!wh->enabled) { /* a redelivery to it would only fail again */
        api_reply_error(r, 409, "webhook \"%s\" is disabled: enable it first", wh->id);
        goto out;
    }
    daemon_t *d = api_daemon(api_of(r));
    if (!(j = calloc(1, sizeof *j))) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    int rc = redeliver_failed_since(api_store(api_of(r)), wh->id, since_ms, &j->list, j->err,
                                    sizeof j->err);
    if (rc < 0) {
        api_config_store_fail(r, rc, j->err);
        free(j);
        goto out;
    }
    if (j->list.n == 0) {
        api_reply_json(r, 202, json_pack("{s:i}", "count", 0));
        free(j);
        goto out;
    }
    j->r = r;
    j->work.data = j;
    snprintf(j->run_dir, sizeof j->run_dir, "%s", daemon_run_dir(d));
    if ((rc = uv_queue_work(daemon_loop(d), &j->work, recover_work, recover_done)) < 0) {
        api_reply_error(r, 500, "recover: %s", uv_strerror(rc));
        redeliver_list_free(&j->list);
        free(j);
        goto out;
    }
    api_suspend(r);
out:
    json_decref(body);
}
