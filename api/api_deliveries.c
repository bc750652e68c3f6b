/* api_deliveries.c - a project's delivery log: GET .../deliveries (newest first, keyset pages
 * with an opaque cursor, store_page.c), GET .../deliveries/{id} (the object `hookctl delivery
 * ID --json` prints) and POST .../deliveries/{id}/redeliver (as `hookctl redeliver`: the
 * scheduler takes a new round; the exchange with it, redeliver.h, runs on a worker thread). */
#include "api.h"

#include "domain/redeliver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DELIVERIES_LIMIT_DEFAULT 50

/* deliveries_project: the route's project, or NULL after answering 404. */
static const char *deliveries_project(api_req_t *r)
{
    const char *p = api_param(r, 0);
    if (!config_find_project(api_config(api_of(r)), p)) {
        api_reply_error(r, 404, "no project \"%s\"", p);
        return NULL;
    }
    return p;
}

/* deliveries_parse_limit: the limit query argument, 1..STORE_PAGE_MAX. -1 when malformed. */
static int deliveries_parse_limit(const char *v)
{
    long n = 0;
    if (!v) return DELIVERIES_LIMIT_DEFAULT;
    if (!*v || strlen(v) > 4) return -1;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        n = n * 10 + (*c - '0');
    }
    return n >= 1 && n <= STORE_PAGE_MAX ? (int)n : -1;
}

/* deliveries_add appends one record to the page's array. */
static int deliveries_add(void *arg, const delivery_t *d)
{
    json_t *o = store_delivery_to_json(d);
    if (!o || json_array_append_new(arg, o) < 0) return -ENOMEM;
    return 0;
}

void api_deliveries_list(api_req_t *r)
{
    const char *p, *status = api_query(r, "status");
    char next[STORE_CURSOR_MAX], err[512] = "";
    delivery_page_t q = {.status = -1};
    int rc;

    if (!(p = deliveries_project(r))) return;
    q.project_id = p;
    q.webhook_id = api_query(r, "webhook_id");
    q.event_id = api_query(r, "event_id");
    q.cursor = api_query(r, "cursor");
    if ((q.limit = deliveries_parse_limit(api_query(r, "limit"))) < 0) {
        api_reply_error(r, 400, "limit: must be a whole number from 1 to %d", STORE_PAGE_MAX);
        return;
    }
    if (status && (q.status = store_status_parse(status)) < 0) {
        api_reply_error(r, 400, "status: must be pending, retrying, succeeded or failed");
        return;
    }
    json_t *data = json_array();
    if (!data) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    rc = store_deliveries_page(api_store(api_of(r)), &q, deliveries_add, data, next, sizeof next,
                               err, sizeof err);
    if (rc < 0) {
        json_decref(data);
        /* store errors start with the file's name; a bad cursor or limit names the argument */
        const char *why = strstr(err, ": ");
        if (rc == -EINVAL && why)
            api_reply_error(r, 400, "%s", why + 2);
        else
            api_reply_error(r, rc == -EBUSY ? 503 : 500, "%s", err[0] ? err : strerror(-rc));
        return;
    }
    api_reply_json(r, 200,
                   json_pack("{s:o,s:o}", "data", data, "next_cursor",
                             next[0] ? json_string(next) : json_null()));
}

/* deliveries_get reads the route's delivery into *d: 0, or -1 after answering (404 when unknown
 * or another project's). */
static int deliveries_get(api_req_t *r, const char *p, delivery_t *d)
{
    const char *id = api_param(r, 1);
    char err[512] = "";
    int rc = store_delivery_get(api_store(api_of(r)), id, d, err, sizeof err);
    if (rc == -ENOENT) {
        api_reply_error(r, 404, "no delivery \"%s\" in project \"%s\"", id, p);
        return -1;
    }
    if (rc < 0) {
        api_reply_error(r, rc == -EBUSY ? 503 : 500, "%s", err[0] ? err : strerror(-rc));
        return -1;
    }
    /* A record from before schema 5 whose webhook had already gone has no project: it belongs
     * to none. */
    if (!d->project_id || strcmp(d->project_id, p) != 0) {
        store_delivery_free(d);
        api_reply_error(r, 404, "no delivery \"%s\" in project \"%s\"", id, p);
        return -1;
    }
    return 0;
}

void api_delivery_get(api_req_t *r)
{
    const char *p;
    delivery_t d;
    if (!(p = deliveries_project(r)) || deliveries_get(r, p, &d) < 0) return;
    api_reply_json(r, 200, store_delivery_to_json(&d));
    store_delivery_free(&d);
}

/* A redelivery on its way to the scheduler: the record (a copy) and the outcome. */
typedef struct redeliver_job {
    uv_work_t work;
    api_req_t *r;
    delivery_t d;
    char run_dir[4096];
    int rc;
    char err[512];
} redeliver_job_t;

/* deliveries_redeliver_work (worker thread): REDELIVER and its ack, bounded by
 * REDELIVER_TIMEOUT_MS each way. */
static void deliveries_redeliver_work(uv_work_t *w)
{
    redeliver_job_t *j = w->data;
    client_t cl;
    if ((j->rc = redeliver_connect(&cl, j->run_dir, j->err, sizeof j->err)) < 0) return;
    j->rc = redeliver_ask(&cl, &j->d, j->err, sizeof j->err);
    client_close(&cl);
}

/* deliveries_redeliver_done (loop thread): 202 once the scheduler took it; 409 when it refused,
 * 503 when it could not be reached or did not answer. */
static void deliveries_redeliver_done(uv_work_t *w, int status)
{
    redeliver_job_t *j = w->data;
    if (status < 0)
        api_reply_error(j->r, 500, "redeliver: %s", uv_strerror(status));
    else if (j->rc == -EPERM)
        api_reply_error(j->r, 409, "%s", j->err);
    else if (j->rc < 0)
        api_reply_error(j->r, 503, "%s", j->err);
    else
        api_reply_json(j->r, 202,
                       json_pack("{s:s,s:b}", "invocation_id", j->d.invocation_id, "scheduled", 1));
    store_delivery_free(&j->d);
    free(j);
}

void api_delivery_redeliver(api_req_t *r)
{
    daemon_t *dm = api_daemon(api_of(r));
    redeliver_job_t *j;
    const char *p;
    int rc;
    if (!(p = deliveries_project(r))) return;
    if (!(j = calloc(1, sizeof *j))) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    if (deliveries_get(r, p, &j->d) < 0) {
        free(j);
        return;
    }
    if (!j->d.req_body || !j->d.event_id || !j->d.event_type) {
        api_reply_error(r, 409, "%s: nothing to redeliver yet (no attempt made)",
                        j->d.invocation_id);
        store_delivery_free(&j->d);
        free(j);
        return;
    }
    j->r = r;
    j->work.data = j;
    snprintf(j->run_dir, sizeof j->run_dir, "%s", daemon_run_dir(dm));
    if ((rc = uv_queue_work(daemon_loop(dm), &j->work, deliveries_redeliver_work,
                            deliveries_redeliver_done)) < 0) {
        api_reply_error(r, 500, "redeliver: %s", uv_strerror(rc));
        store_delivery_free(&j->d);
        free(j);
        return;
    }
    api_suspend(r);
}
