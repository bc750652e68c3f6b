/* metrics.c - hookline's Prometheus series: a snapshot of stages and counters, rendered. */
#include "domain/metrics.h"

#include "util/promtext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* metrics_webhook_find: the entry of id, inserted in sorted place if absent; NULL when out of
 * memory. Counter rows come ordered by metric then webhook, so inserts are mostly at the end. */
static metrics_webhook_t *metrics_webhook_find(metrics_snap_t *m, const char *id)
{
    size_t lo = 0, hi = m->nwebhooks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->webhooks[mid].id, id);
        if (c == 0) return &m->webhooks[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    metrics_webhook_t *nw = realloc(m->webhooks, (m->nwebhooks + 1) * sizeof *nw);
    if (!nw) return NULL;
    m->webhooks = nw;
    memmove(&nw[lo + 1], &nw[lo], (m->nwebhooks - lo) * sizeof *nw);
    memset(&nw[lo], 0, sizeof *nw);
    if (!(nw[lo].id = strdup(id))) {
        memmove(&nw[lo], &nw[lo + 1], (m->nwebhooks - lo) * sizeof *nw);
        return NULL;
    }
    m->nwebhooks++;
    return &nw[lo];
}

int metrics_add_counter(metrics_snap_t *m, const store_counter_t *c)
{
    char label[32];
    metrics_webhook_t *w = metrics_webhook_find(m, c->webhook_id);
    if (!w) return -ENOMEM;
    if (strcmp(c->metric, "attempts") == 0) {
        if (strcmp(c->label, "success") == 0)
            w->success += c->n;
        else
            w->failure += c->n;
        w->duration_sum += c->sum;
    } else if (strcmp(c->metric, "duration") == 0) {
        for (int i = 0; i <= STORE_DURATION_BUCKETS; i++)
            if (strcmp(c->label, store_duration_label(i, label, sizeof label)) == 0)
                w->buckets[i] += c->n;
    } else if (strcmp(c->metric, "invocations_failed") == 0) {
        w->failed_invocations += c->n;
    }
    return 0;
}

/* metrics_counter_cb: store_counters_each's callback. */
static int metrics_counter_cb(void *arg, const store_counter_t *c)
{
    return metrics_add_counter(arg, c);
}

void metrics_collect(metrics_snap_t *m, store_t *s, const char *run_dir, int timeout_ms)
{
    char err[256];
    memset(m, 0, sizeof *m);
    m->stages_ok = stagestat_collect(run_dir, timeout_ms, &m->stages, err, sizeof err) == 0;
    if (!s) {
        snprintf(m->store_err, sizeof m->store_err, "no store");
        return;
    }
    int rc = store_counters_each(s, metrics_counter_cb, m, m->store_err, sizeof m->store_err);
    if (rc == -ENOMEM) snprintf(m->store_err, sizeof m->store_err, "out of memory");
    if (rc == 0)
        rc = store_retries_pending(s, &m->retries_pending, m->store_err, sizeof m->store_err);
    m->store_ok = rc == 0;
}

/* metrics_stat_sum: the sum of one figure over the answering instances of stage; -1 when none
 * answered. */
static double metrics_stat_sum(const metrics_snap_t *m, int stage, const char *key)
{
    double sum = -1;
    for (size_t i = 0; i < m->stages.n; i++) {
        const stagestat_inst_t *in = &m->stages.inst[i];
        if (!in->up || in->stage != stage) continue;
        json_t *v = json_object_get(in->stats, key);
        sum = (sum < 0 ? 0 : sum) + (json_is_number(v) ? json_number_value(v) : 0);
    }
    return sum;
}

/* metrics_render_events: ingest's own figures (per process: a restart resets them). */
static void metrics_render_events(promtext_t *p, const metrics_snap_t *m)
{
    static const struct {
        const char *name, *key, *help;
    } rows[] = {
        {"hookline_events_accepted_total", "lines_accepted",
         "Events ingest accepted (journaled), since that ingest process started."},
        {"hookline_events_rejected_total", "lines_rejected",
         "Events ingest refused (invalid, or the journal could not take them), since that ingest "
         "process started."},
        {"hookline_events_duplicate_total", "duplicates",
         "Events ingest answered as duplicates of one already accepted, since that ingest "
         "process started."},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double v = metrics_stat_sum(m, 0, rows[i].key);
        promtext_family(p, rows[i].name, "counter", rows[i].help);
        if (v >= 0) promtext_sample(p, rows[i].name, NULL, v);
    }
}

/* metrics_render_webhooks: the durable per-webhook series. */
static void metrics_render_webhooks(promtext_t *p, const metrics_snap_t *m)
{
    const char *const A = "hookline_attempts_total", *const F = "hookline_invocations_failed_total",
                      *const H = "hookline_attempt_duration_seconds";
    char le[32];

    promtext_family(p, A, "counter",
                    "Delivery attempts recorded in the delivery log, by webhook and result "
                    "(success: a 2xx answer).");
    for (size_t i = 0; i < m->nwebhooks; i++) {
        const metrics_webhook_t *w = &m->webhooks[i];
        const char *ls[] = {"webhook_id", w->id, "result", "success", NULL};
        promtext_sample(p, A, ls, (double)w->success);
        ls[3] = "failure";
        promtext_sample(p, A, ls, (double)w->failure);
    }
    promtext_family(p, F, "counter",
                    "Invocations that ended failed (retries exhausted, refused, or lost), by "
                    "webhook.");
    for (size_t i = 0; i < m->nwebhooks; i++) {
        const char *ls[] = {"webhook_id", m->webhooks[i].id, NULL};
        promtext_sample(p, F, ls, (double)m->webhooks[i].failed_invocations);
    }
    promtext_family(p, H, "histogram", "Duration of delivery attempts in seconds, by webhook.");
    for (size_t i = 0; i < m->nwebhooks; i++) {
        const metrics_webhook_t *w = &m->webhooks[i];
        const char *ls[] = {"webhook_id", w->id, "le", le, NULL};
        int64_t cum = 0;
        for (int b = 0; b <= STORE_DURATION_BUCKETS; b++) {
            cum += w->buckets[b];
            store_duration_label(b, le, sizeof le);
            promtext_sample(p, "hookline_attempt_duration_seconds_bucket", ls, (double)cum);
        }
        ls[2] = NULL;
        promtext_sample(p, "hookline_attempt_duration_seconds_sum", ls, w->duration_sum);
        promtext_sample(p, "hookline_attempt_duration_seconds_count", ls, (double)cum);
    }
}

/* metrics_render_stages: which stage instances answer. */
static void metrics_render_stages(promtext_t *p, const metrics_snap_t *m)
{
    promtext_family(p, "hookline_stage_up", "gauge",
                    "1 when the stage instance answers its status query, 0 when its socket is "
                    "there but it does not.");
    for (size_t i = 0; i < m->stages.n; i++) {
        const stagestat_inst_t *in = &m->stages.inst[i];
        const char *ls[] = {"stage", stagestat_stages[in->stage], "instance", in->instance, NULL};
        promtext_sample(p, "hookline_stage_up", ls, in->up ? 1 : 0);
    }
    promtext_family(p, "hookline_stage_instances_up", "gauge",
                    "Instances of the stage that answer (0: the stage is down).");
    for (int s = 0; s < STAGESTAT_NSTAGES; s++) {
        const char *ls[] = {"stage", stagestat_stages[s], NULL};
        promtext_sample(p, "hookline_stage_instances_up", ls, (double)stagestat_up(&m->stages, s));
    }
}

char *metrics_render(const metrics_snap_t *m, size_t *len)
{
    promtext_t p;
    promtext_init(&p);
    metrics_render_events(&p, m);
    if (m->store_ok) {
        metrics_render_webhooks(&p, m);
        promtext_family(&p, "hookline_retries_pending", "gauge",
                        "Invocations waiting for a retry (delivery-log records in status "
                        "retrying).");
        promtext_sample(&p, "hookline_retries_pending", NULL, (double)m->retries_pending);
    }
    metrics_render_stages(&p, m);
    promtext_family(&p, "hookline_store_up", "gauge",
                    "1 when this scrape read the store's counters, 0 when it could not.");
    promtext_sample(&p, "hookline_store_up", NULL, m->store_ok ? 1 : 0);
    return promtext_take(&p, len);
}

void metrics_free(metrics_snap_t *m)
{
    stagestat_free(&m->stages);
    for (size_t i = 0; i < m->nwebhooks; i++)
        free(m->webhooks[i].id);
    free(m->webhooks);
    memset(m, 0, sizeof *m);
}
