/* ctl_status.c - hookctl status: every stage socket's STATUS_REPLY (util/stagestat.c), shown
 * as instances, state, uptime and figures per stage. */
#include "ctl.h"

#include "util/stagestat.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CTL_STATUS_TIMEOUT_MS 1000

/* ctl_status_uptime: "3d04h", "2h05m", "4m03s", "12s". */
static const char *ctl_status_uptime(json_int_t ms, char *buf, size_t n)
{
    long long s = ms / 1000;
    if (s >= 86400)
        snprintf(buf, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, n, "%llds", s);
    return buf;
}

/* ctl_status_flatten: scalar figures as "key=value" (nested keys joined by '.'). */
static void ctl_status_flatten(const json_t *v, const char *prefix, FILE *out, int *first)
{
    const char *k;
    json_t *x;
    char key[256];

    json_object_foreach((json_t *)v, k, x)
    {
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", k);
        if (json_is_object(x)) {
            ctl_status_flatten(x, key, out, first);
            continue;
        }
        char *text = json_is_string(x) ? strdup(json_string_value(x))
                                       : json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(out, "%s%s=%s", *first ? "" : " ", key, text ? text : "?");
        *first = 0;
        free(text);
    }
}

/* ctl_status_run: hookctl status [--json]. */
int ctl_status_run(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
    int as_json = 0, c, ok = 1;
    char err[256] = "";
    stagestat_t st;
    json_t *stages = json_object();

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'j')
            as_json = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if (stagestat_collect(ctl->run_dir, CTL_STATUS_TIMEOUT_MS, &st, err, sizeof err) < 0) {
        json_decref(stages);
        ctl_error(ctl, "%s", err);
        return CTL_EXIT_FAIL;
    }
    for (int i = 0; i < STAGESTAT_NSTAGES; i++)
        json_object_set_new(stages, stagestat_stages[i], json_array());
    for (size_t i = 0; i < st.n; i++) {
        const stagestat_inst_t *in = &st.inst[i];
        if (!in->up) continue; /* only instances that answer are shown */
        json_array_append_new(json_object_get(stages, stagestat_stages[in->stage]),
                              json_pack("{s:s, s:I, s:s, s:I, s:O}", "instance", in->instance,
                                        "pid", (json_int_t)in->pid, "state", in->state, "uptime_ms",
                                        (json_int_t)in->uptime_ms, "stats", in->stats));
    }
    for (int i = 0; i < STAGESTAT_NSTAGES; i++)
        if (stagestat_up(&st, i) == 0) ok = 0;
    stagestat_free(&st);

    if (as_json) {
        json_t *doc = json_pack("{s:o, s:b}", "stages", stages, "ok", ok);
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(doc);
    } else {
        printf("%-10s %-10s %-8s %-9s %-8s %s\n", "STAGE", "INSTANCE", "PID", "STATE", "UPTIME",
               "STATS");
        for (int i = 0; i < STAGESTAT_NSTAGES; i++) {
            json_t *arr = json_object_get(stages, stagestat_stages[i]), *inst;
            size_t k;
            if (json_array_size(arr) == 0) printf("%s - down\n", stagestat_stages[i]);
            json_array_foreach(arr, k, inst)
            {
                char up[32];
                int first = 1;
                printf("%-10s %-10s %-8lld %-9s %-8s ", stagestat_stages[i],
                       json_string_value(json_object_get(inst, "instance")),
                       (long long)json_integer_value(json_object_get(inst, "pid")),
                       json_string_value(json_object_get(inst, "state")),
                       ctl_status_uptime(json_integer_value(json_object_get(inst, "uptime_ms")), up,
                                         sizeof up));
                ctl_status_flatten(json_object_get(inst, "stats"), "", stdout, &first);
                putchar('\n');
            }
        }
        json_decref(stages);
    }
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
