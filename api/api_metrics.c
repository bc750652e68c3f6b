/* api_metrics.c - GET /metrics (Prometheus text, domain/metrics.c) and GET /readyz (every stage
 * has an instance up). Both need the stages' status replies, /metrics the store's counters too:
 * that blocking work runs on a libuv worker thread, one probe at a time, with a connection of
 * its own to the store; requests arriving meanwhile wait for the next probe (so a scrape never
 * sees figures older than its own arrival) and are answered together. */
#include "api.h"

#include "domain/metrics.h"
#include "util/log.h"
#include "util/promtext.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Per stage socket: a stage that does not answer this fast is reported down. Sockets are
 * asked one after another, so a probe takes at most this times the sockets that hang. */
#define API_METRICS_STAGE_TIMEOUT_MS 250

typedef struct api_metrics_wait {
    api_req_t *r;
    int metrics; /* 1: /metrics, 0: /readyz */
    struct api_metrics_wait *next;
} api_metrics_wait_t;

/* The probe: one per process (hook-api serves one api_t). */
static struct {
    uv_work_t work;
    int running;
    api_metrics_wait_t *waiting; /* arrived since the probe under way started */
    api_metrics_wait_t *serving; /* the probe under way answers these */
    int want_store;              /* the probe under way reads the counters */
    store_t *db;                 /* the worker's own connection (NULL until opened) */
    char run_dir[PATH_MAX], db_path[PATH_MAX];
    char db_err[256];
    metrics_snap_t snap;
} api_metrics_probe;

/* api_metrics_work runs on the worker thread: the stages, then (for /metrics) the counters. */
static void api_metrics_work(uv_work_t *w)
{
    store_t *db = NULL;
    if (api_metrics_probe.want_store) {
        if (!api_metrics_probe.db &&
            store_open(&api_metrics_probe.db, api_metrics_probe.db_path, api_metrics_probe.db_err,
                       sizeof api_metrics_probe.db_err) == 0)
            store_set_busy(api_metrics_probe.db, 200, 1); /* reads; never wait long */
        db = api_metrics_probe.db;
    }
    metrics_collect(&api_metrics_probe.snap, db, api_metrics_probe.run_dir,
                    API_METRICS_STAGE_TIMEOUT_MS);
    if (api_metrics_probe.want_store && !db)
        snprintf(api_metrics_probe.snap.store_err, sizeof api_metrics_probe.snap.store_err, "%s",
                 api_metrics_probe.db_err);
}

/* api_metrics_answer_ready answers one /readyz from the snapshot. */
static void api_metrics_answer_ready(api_req_t *r, const metrics_snap_t *m)
{
    json_t *stages = json_object(), *missing = json_array();
    for (int i = 0; i < STAGESTAT_NSTAGES; i++) {
        size_t up = stagestat_up(&m->stages, i);
        json_object_set_new(stages, stagestat_stages[i], json_integer((json_int_t)up));
        if (up == 0) json_array_append_new(missing, json_string(stagestat_stages[i]));
    }
    if (json_array_size(missing) == 0) {
        json_decref(missing);
        api_reply_json(r, 200, json_pack("{s:s, s:o}", "status", "ready", "stages", stages));
        return;
    }
    char list[128] = "";
    size_t k;
    json_t *v;
    json_array_foreach(missing, k, v)
    {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", json_string_value(v));
    }
    api_reply_json(r, 503,
                   json_pack("{s:s+, s:o, s:o}", "error", "not ready: no instance up of ", list,
                             "missing", missing, "stages", stages));
}

static void api_metrics_start(void);

/* api_metrics_done is back on the loop: answer every request the probe served, then start the
 * next probe for those that arrived meanwhile. */
static void api_metrics_done(uv_work_t *w, int status)
{
    metrics_snap_t *m = &api_metrics_probe.snap;
    char *text = NULL;
    size_t len = 0;
    api_metrics_probe.running = 0;
    if (status == 0 && api_metrics_probe.want_store) {
        if (!m->store_ok) log_warn("/metrics: store: %s", m->store_err);
        text = metrics_render(m, &len);
    }
    for (api_metrics_wait_t *x = api_metrics_probe.serving, *next; x; x = next) {
        next = x->next;
        if (status != 0)
            api_reply_error(x->r, 500, "probe cancelled: %s", uv_strerror(status));
        else if (!x->metrics)
            api_metrics_answer_ready(x->r, m);
        else if (!text)
            api_reply_error(x->r, 500, "out of memory rendering the metrics");
        else
            api_reply_raw(x->r, 200, PROMTEXT_CONTENT_TYPE, text, len, 0);
        free(x);
    }
    api_metrics_probe.serving = NULL;
    free(text);
    metrics_free(m);
    api_metrics_start();
}

/* api_metrics_start starts a probe for the waiting requests, if none is under way. */
static void api_metrics_start(void)
{
    if (api_metrics_probe.running || !api_metrics_probe.waiting) return;
    api_metrics_probe.serving = api_metrics_probe.waiting;
    api_metrics_probe.waiting = NULL;
    api_metrics_probe.want_store = 0;
    for (api_metrics_wait_t *x = api_metrics_probe.serving; x; x = x->next)
        api_metrics_probe.want_store |= x->metrics;
    daemon_t *d = api_daemon(api_of(api_metrics_probe.serving->r));
    int rc =
        uv_queue_work(daemon_loop(d), &api_metrics_probe.work, api_metrics_work, api_metrics_done);
    if (rc == 0) {
        api_metrics_probe.running = 1;
        return;
    }
    for (api_metrics_wait_t *x = api_metrics_probe.serving, *next; x; x = next) {
        next = x->next;
        api_reply_error(x->r, 503, "cannot start the stage probe: %s", uv_strerror(rc));
        free(x);
    }
    api_metrics_probe.serving = NULL;
}

/* api_metrics_enqueue suspends r until the next probe answers it. */
static void api_metrics_enqueue(api_req_t *r, int metrics)
{
    api_metrics_wait_t *x = calloc(1, sizeof *x);
    if (!x) {
        api_reply_error(r, 503, "out of memory");
        return;
    }
    if (!api_metrics_probe.run_dir[0]) {
        daemon_t *d = api_daemon(api_of(r));
        snprintf(api_metrics_probe.run_dir, sizeof api_metrics_probe.run_dir, "%s",
                 daemon_run_dir(d));
        snprintf(api_metrics_probe.db_path, sizeof api_metrics_probe.db_path, "%s",
                 daemon_db_path(d));
    }
    x->r = r;
    x->metrics = metrics;
    api_metrics_wait_t **tail = &api_metrics_probe.waiting;
    while (*tail)
        tail = &(*tail)->next;
    *tail = x; /* answered in arrival order */
    api_suspend(r);
    api_metrics_start();
}

void api_metrics(api_req_t *r)
{
    api_metrics_enqueue(r, 1);
}

void api_readyz(api_req_t *r)
{
    api_metrics_enqueue(r, 0);
}
