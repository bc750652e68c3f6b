/* ctl_status.c - hookctl status: ask every stage socket in DATA/run for its STATUS_REPLY and
 * show instances, state, uptime and figures per stage. */
#include "ctl.h"

#include "domain/proto.h"
#include "util/client.h"
#include "util/mpjson.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CTL_STATUS_TIMEOUT_MS 1000

static const char *const ctl_status_stages[] = {"ingest", "router", "sender", "scheduler"};
#define CTL_STATUS_NSTAGES 4

/* ctl_status_stage_of: which stage a socket name belongs to, -1 when none. */
static int ctl_status_stage_of(const char *name)
{
    if (strcmp(name, "ingest.sock") == 0) return 0;
    if (fnmatch("router.*.sock", name, FNM_PERIOD) == 0) return 1;
    if (fnmatch("sender.*.sock", name, FNM_PERIOD) == 0) return 2;
    if (strcmp(name, "scheduler.sock") == 0) return 3;
    return -1;
}

/* ctl_status_cmp: sort socket names. */
static int ctl_status_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ctl_status_query: one socket's reply as {"instance","pid","state","uptime_ms","stats"}, or
 * NULL when it did not answer (why in err). */
static json_t *ctl_status_query(const char *path, int *stage, char *err, size_t errlen)
{
    client_t cl;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_object reply;
    size_t mark;
    json_t *out = NULL;
    uint64_t t = 0;

    if (client_connect(&cl, path, CTL_STATUS_TIMEOUT_MS, err, errlen) < 0) return NULL;
    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, 1);
    frame_pack_kv_u64(&pk, PK_TYPE, PT_STATUS);
    frame_end(&sb, mark);
    int rc = client_send(&cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        snprintf(err, errlen, "%s", strerror(-rc));
        client_close(&cl);
        return NULL;
    }
    for (;;) {
        rc = client_recv(&cl, &reply, CTL_STATUS_TIMEOUT_MS, err, errlen);
        if (rc == 0) snprintf(err, errlen, "no answer within %d ms", CTL_STATUS_TIMEOUT_MS);
        if (rc <= 0) break;
        if (frame_get_u64(&reply, PK_TYPE, &t) == 0 && t == PT_STATUS_REPLY) break;
    }
    if (rc > 0) {
        char *st = frame_dup_str(&reply, PK_STAGE), *inst = frame_dup_str(&reply, PK_INSTANCE);
        char *state = frame_dup_str(&reply, PK_STATE);
        uint64_t pid = 0, up = 0;
        json_t *stats = NULL;
        char jerr[128];
        const msgpack_object *so = frame_get(&reply, PK_STATS);

        frame_get_u64(&reply, PK_PID, &pid);
        frame_get_u64(&reply, PK_UPTIME, &up);
        if (so == NULL || mpjson_to_json(so, 16, &stats, jerr, sizeof jerr) < 0)
            stats = json_object();
        for (int i = 0; st && i < CTL_STATUS_NSTAGES; i++)
            if (strcmp(st, ctl_status_stages[i]) == 0) *stage = i;
        out = json_pack("{s:s, s:I, s:s, s:I, s:o}", "instance", inst ? inst : cl.peer_instance,
                        "pid", (json_int_t)pid, "state", state ? state : "running", "uptime_ms",
                        (json_int_t)up, "stats", stats);
        free(st);
        free(inst);
        free(state);
    }
    client_close(&cl);
    return out;
}

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
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    json_t *stages = json_object();

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'j')
            as_json = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    for (int i = 0; i < CTL_STATUS_NSTAGES; i++)
        json_object_set_new(stages, ctl_status_stages[i], json_array());

    DIR *d = opendir(ctl->run_dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (ctl_status_stage_of(de->d_name) < 0) continue;
            if (nnames == cap) {
                cap = cap ? cap * 2 : 16;
                char **nn = realloc(names, cap * sizeof *names);
                if (nn == NULL) break;
                names = nn;
            }
            names[nnames++] = strdup(de->d_name);
        }
        closedir(d);
        if (nnames) qsort(names, nnames, sizeof *names, ctl_status_cmp);
    }
    for (size_t i = 0; i < nnames; i++) {
        char path[PATH_MAX], err[256] = "";
        int stage = ctl_status_stage_of(names[i]);
        if (names[i] == NULL || ctl_socket_path(ctl, names[i], path, sizeof path) < 0) continue;
        json_t *inst = ctl_status_query(path, &stage, err, sizeof err);
        if (inst) json_array_append_new(json_object_get(stages, ctl_status_stages[stage]), inst);
    }
    for (int i = 0; i < CTL_STATUS_NSTAGES; i++)
        if (json_array_size(json_object_get(stages, ctl_status_stages[i])) == 0) ok = 0;

    if (as_json) {
        json_t *doc = json_pack("{s:o, s:b}", "stages", stages, "ok", ok);
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(doc);
    } else {
        printf("%-10s %-10s %-8s %-9s %-8s %s\n", "STAGE", "INSTANCE", "PID", "STATE", "UPTIME",
               "STATS");
        for (int i = 0; i < CTL_STATUS_NSTAGES; i++) {
            json_t *arr = json_object_get(stages, ctl_status_stages[i]), *inst;
            size_t k;
            if (json_array_size(arr) == 0) printf("%s - down\n", ctl_status_stages[i]);
            json_array_foreach(arr, k, inst)
            {
                char up[32];
                int first = 1;
                printf("%-10s %-10s %-8lld %-9s %-8s ", ctl_status_stages[i],
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
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
