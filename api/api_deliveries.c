/* api_deliveries.c - a project's delivery log: GET .../deliveries (newest first, keyset pages
 * with an opaque cursor, store_page.c), GET .../deliveries/{id} (the object `hookctl delivery
 * ID --json` prints) and POST .../deliveries/{id}/redeliver (as `hookctl redeliver`: the
 * scheduler takes a new round, sched_client.h). */
#include "api.h"

#include "domain/sched_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DELIVERIES_LIMIT_DEFAULT 50
/* The scheduler is local and answers at once; this bounds how long a redelivery may hold the
 * loop if it does not. */
#define DELIVERIES_SCHED_TIMEOUT_MS 1000

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

void api_delivery_redeliver(api_req_t *r)
{
    const char *p;
    char err[512] = "";
    delivery_t d;
    int rc;
    if (!(p = deliveries_project(r)) || deliveries_get(r, p, &d) < 0) return;
    if (!d.req_body || !d.event_id || !d.event_type) {
        api_reply_error(r, 409, "%s: nothing to redeliver yet (no attempt made)", d.invocation_id);
        store_delivery_free(&d);
        return;
    }
    rc = sched_redeliver(daemon_run_dir(api_daemon(api_of(r))), &d, DELIVERIES_SCHED_TIMEOUT_MS,
                         err, sizeof err);
    if (rc == 0)
        api_reply_json(r, 202, json_pack("{s:s,s:b}", "invocation_id", d.invocation_id,
                                         "scheduled", 1));
    else if (rc == -EPERM)
        api_reply_error(r, 409, "%s", err);
    else
        api_reply_error(r, 503, "%s", err);
    store_delivery_free(&d);
}
