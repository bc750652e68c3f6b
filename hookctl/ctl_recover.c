/* ctl_recover.c - hookctl recover --webhook ID --since TIME: every invocation of the webhook that
 * ended failed at or after TIME is sent again, as redeliver does (same invocation id). */
#include "ctl.h"

#include "domain/redeliver.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* recover_webhook_ready: the webhook exists and is enabled. Returns 0 or an exit status after
 * printing why. */
static int recover_webhook_ready(ctl_t *ctl, store_t *st, const char *id)
{
    char err[512] = "";
    config_t *cfg;
    if (store_load_config(st, &cfg, err, sizeof err) < 0) {
        ctl_error(ctl, "cannot load configuration: %s", err);
        return CTL_EXIT_FAIL;
    }
    int rc = redeliver_webhook_ready(cfg, id);
    config_free(cfg);
    if (rc == -ENOENT)
        ctl_error(ctl, "no webhook %s", id);
    else if (rc < 0)
        ctl_error(ctl, "webhook %s is disabled: enable it first (hookctl webhook enable %s)", id,
                  id);
    return rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int ctl_recover_run(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"webhook", required_argument, NULL, 'w'},
                                         {"since", required_argument, NULL, 's'},
                                         {0, 0, 0, 0}};
    const char *webhook = NULL, *since = NULL;
    redeliver_list_t l = {0};
    int64_t since_ms;
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
    if (time_parse_rfc3339(since, &since_ms) < 0)
        return ctl_usage_error(ctl,
                               "--since: expected an RFC 3339 date-time "
                               "(2026-12-01T10:00:00Z), got '%s'",
                               since);
    if ((rc = ctl_store_open(ctl, &st)) != 0) return rc;
    if ((rc = recover_webhook_ready(ctl, st, webhook)) != 0) {
        store_close(st);
        return rc;
    }
    int r = redeliver_failed_since(st, webhook, since_ms, &l, err, sizeof err);
    store_close(st);
    if (r < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-r));
        return CTL_EXIT_FAIL;
    }
    size_t sent = 0;
    client_t cl;
    if (l.n && (rc = ctl_sched_connect(ctl, &cl)) != 0) {
        redeliver_list_free(&l);
        return rc;
    }
    for (size_t i = 0; i < l.n && rc == 0; i++)
        if ((rc = ctl_sched_redeliver(ctl, &cl, &l.v[i])) == 0) sent++;
    if (l.n) client_close(&cl);
    ctl_format_time(since_ms, when, sizeof when);
    printf("%zu failed invocation%s of webhook %s since %s sent again\n", sent,
           sent == 1 ? "" : "s", webhook, when);
    if (rc) ctl_error(ctl, "stopped after %zu of %zu", sent, l.n);
    redeliver_list_free(&l);
    return rc;
}
