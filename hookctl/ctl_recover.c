/* ctl_recover.c - hookctl recover --webhook ID --since TIME: every invocation of the webhook that
 * ended failed at or after TIME is sent again, as redeliver does (same invocation id). */
#include "ctl.h"

#include "domain/config.h"
#include "util/timeutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The failed records to send again, copied out of the store's read. */
typedef struct recover_list {
    delivery_t *v;
    size_t n, cap;
    int64_t since;
    int oom;
} recover_list_t;

/* recover_take keeps one failed record updated at or after since. */
static int recover_take(void *arg, const delivery_t *d)
{
    recover_list_t *l = arg;
    if (d->updated_at < l->since || !d->req_body || !d->event_id || !d->event_type) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        delivery_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return l->oom = -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (store_delivery_copy(&l->v[l->n], d) < 0) return l->oom = -ENOMEM;
    l->n++;
    return 0;
}

/* recover_webhook_ready: the webhook exists and is enabled (a redelivery to a disabled one would
 * only fail again). Returns 0 or an exit status after printing why. */
static int recover_webhook_ready(ctl_t *ctl, store_t *st, const char *id)
{
    char err[512] = "";
    config_t *cfg;
    if (store_load_config(st, &cfg, err, sizeof err) < 0) {
        ctl_error(ctl, "cannot load configuration: %s", err);
        return CTL_EXIT_FAIL;
    }
    const webhook_t *wh = config_find_webhook(cfg, id, NULL);
    int rc = CTL_EXIT_OK;
    if (!wh) {
        ctl_error(ctl, "no webhook %s", id);
        rc = CTL_EXIT_FAIL;
    } else if (!wh->enabled) {
        ctl_error(ctl, "webhook %s is disabled: enable it first (hookctl webhook enable %s)", id,
                  id);
        rc = CTL_EXIT_FAIL;
    }
    config_free(cfg);
    return rc;
}

int ctl_recover_run(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"webhook", required_argument, NULL, 'w'},
                                         {"since", required_argument, NULL, 's'},
                                         {0, 0, 0, 0}};
    const char *webhook = NULL, *since = NULL;
    recover_list_t l = {0};
    char err[512] = "", when[64];
    store_t *st;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'w')
            webhook = optarg;
        else if (c == 's')
            since = optarg;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if (!webhook || !since) return ctl_usage_error(ctl, "--webhook and --since are required");
    if (time_parse_rfc3339(since, &l.since) < 0)
        return ctl_usage_error(ctl,
                               "--since: expected an RFC 3339 date-time "
                               "(2026-12-01T10:00:00Z), got '%s'",
                               since);
    if ((rc = ctl_store_open(ctl, &st)) != 0) return rc;
    if ((rc = recover_webhook_ready(ctl, st, webhook)) != 0) {
        store_close(st);
        return rc;
    }
    delivery_filter_t f = {webhook, NULL, DLV_FAILED, INT_MAX};
    int r = store_deliveries_list(st, &f, recover_take, &l, err, sizeof err);
    store_close(st);
    if (r < 0 || l.oom) {
        ctl_error(ctl, "%s", l.oom ? "out of memory" : err[0] ? err : strerror(-r));
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    size_t sent = 0;
    client_t cl;
    if (l.n && (rc = ctl_sched_connect(ctl, &cl)) != 0) goto out;
    for (size_t i = 0; i < l.n && rc == 0; i++)
        if ((rc = ctl_sched_redeliver(ctl, &cl, &l.v[i])) == 0) sent++;
    if (l.n) client_close(&cl);
    ctl_format_time(l.since, when, sizeof when);
    printf("%zu failed invocation%s of webhook %s since %s sent again\n", sent,
           sent == 1 ? "" : "s", webhook, when);
    if (rc) ctl_error(ctl, "stopped after %zu of %zu", sent, l.n);
out:
    for (size_t i = 0; i < l.n; i++)
        store_delivery_free(&l.v[i]);
    free(l.v);
    return rc;
}
