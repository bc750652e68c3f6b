/* stagestat.c - ask every stage socket in DATA/run for its STATUS_REPLY (stagestat.h). */
#include "util/stagestat.h"

#include "util/client.h"
#include "util/mpjson.h"
#include "util/wire.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

const char *const stagestat_stages[STAGESTAT_NSTAGES] = {"ingest", "router", "sender", "scheduler"};

int stagestat_stage_of(const char *name)
{
    if (strcmp(name, "ingest.sock") == 0) return 0;
    if (fnmatch("router.*.sock", name, FNM_PERIOD) == 0) return 1;
    if (fnmatch("sender.*.sock", name, FNM_PERIOD) == 0) return 2;
    if (strcmp(name, "scheduler.sock") == 0) return 3;
    return -1;
}

/* stagestat_cmp: sort instances by socket name. */
static int stagestat_cmp(const void *a, const void *b)
{
    return strcmp(((const stagestat_inst_t *)a)->sock, ((const stagestat_inst_t *)b)->sock);
}

/* stagestat_copy: a bounded copy of src (n bytes), NUL-terminated. */
static void stagestat_copy(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* stagestat_instance_of: the instance a socket name says ("router.2.sock": "2"); ingest.sock and
 * scheduler.sock name none, and serve the one instance, "0" unless told otherwise. Until the
 * instance answers (its handshake names it), this is what a silent one is listed as. */
static void stagestat_instance_of(stagestat_inst_t *in)
{
    const char *dot = strchr(in->sock, '.'), *end = strrchr(in->sock, '.');
    if (dot && end > dot)
        stagestat_copy(in->instance, sizeof in->instance, dot + 1, (size_t)(end - dot - 1));
    else
        snprintf(in->instance, sizeof in->instance, "0");
}

/* stagestat_read fills in from one STATUS_REPLY frame. */
static void stagestat_read(stagestat_inst_t *in, const msgpack_object *reply)
{
    const char *v;
    size_t n;
    char jerr[128];
    if (frame_get_str(reply, PK_STAGE, &v, &n) == 0) {
        char stage[32];
        stagestat_copy(stage, sizeof stage, v, n);
        for (int i = 0; i < STAGESTAT_NSTAGES; i++)
            if (strcmp(stage, stagestat_stages[i]) == 0) in->stage = i;
    }
    if (frame_get_str(reply, PK_INSTANCE, &v, &n) == 0)
        stagestat_copy(in->instance, sizeof in->instance, v, n);
    if (frame_get_str(reply, PK_STATE, &v, &n) == 0)
        stagestat_copy(in->state, sizeof in->state, v, n);
    else
        snprintf(in->state, sizeof in->state, "running");
    frame_get_u64(reply, PK_PID, &in->pid);
    frame_get_u64(reply, PK_UPTIME, &in->uptime_ms);
    const msgpack_object *so = frame_get(reply, PK_STATS);
    if (so == NULL || mpjson_to_json(so, 16, &in->stats, jerr, sizeof jerr) < 0 ||
        !json_is_object(in->stats)) {
        json_decref(in->stats);
        in->stats = json_object();
    }
    in->up = 1;
}

/* stagestat_query asks the socket at path for its STATUS_REPLY: in->up set when it answered,
 * else why in in->err. */
static void stagestat_query(stagestat_inst_t *in, const char *path, int timeout_ms)
{
    client_t cl;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_object reply;
    size_t mark;
    uint64_t t = 0;

    if (client_connect(&cl, path, timeout_ms, in->err, sizeof in->err) < 0) return;
    if (cl.peer_instance[0]) snprintf(in->instance, sizeof in->instance, "%s", cl.peer_instance);
    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, 1);
    frame_pack_kv_u64(&pk, PK_TYPE, PT_STATUS);
    frame_end(&sb, mark);
    int rc = client_send(&cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        snprintf(in->err, sizeof in->err, "%s", strerror(-rc));
        client_close(&cl);
        return;
    }
    for (;;) {
        rc = client_recv(&cl, &reply, timeout_ms, in->err, sizeof in->err);
        if (rc == 0) snprintf(in->err, sizeof in->err, "no answer within %d ms", timeout_ms);
        if (rc <= 0) break;
        if (frame_get_u64(&reply, PK_TYPE, &t) == 0 && t == PT_STATUS_REPLY) break;
    }
    if (rc > 0) stagestat_read(in, &reply);
    client_close(&cl);
}

int stagestat_collect(const char *run_dir, int timeout_ms, stagestat_t *out, char *err,
                      size_t errlen)
{
    size_t cap = 0;
    struct sockaddr_un sun;
    memset(out, 0, sizeof *out);
    DIR *d = opendir(run_dir);
    if (d == NULL) {
        if (errno == ENOENT) return 0;
        int e = errno;
        snprintf(err, errlen, "%s: %s", run_dir, strerror(e));
        return -e;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int stage = stagestat_stage_of(de->d_name);
        if (stage < 0 || strlen(de->d_name) >= sizeof out->inst->sock) continue;
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            stagestat_inst_t *ni = realloc(out->inst, nc * sizeof *ni);
            if (ni == NULL) {
                closedir(d);
                stagestat_free(out);
                snprintf(err, errlen, "out of memory listing %s", run_dir);
                return -ENOMEM;
            }
            out->inst = ni;
            cap = nc;
        }
        stagestat_inst_t *in = &out->inst[out->n++];
        memset(in, 0, sizeof *in);
        in->stage = stage;
        stagestat_copy(in->sock, sizeof in->sock, de->d_name, strlen(de->d_name));
        stagestat_instance_of(in);
    }
    closedir(d);
    if (out->n) qsort(out->inst, out->n, sizeof *out->inst, stagestat_cmp);
    for (size_t i = 0; i < out->n; i++) {
        stagestat_inst_t *in = &out->inst[i];
        char path[PATH_MAX];
        int len = snprintf(path, sizeof path, "%s/%s", run_dir, in->sock);
        if (len < 0 || (size_t)len >= sizeof sun.sun_path) {
            snprintf(in->err, sizeof in->err, "socket path too long: %s/%s", run_dir, in->sock);
            continue;
        }
        stagestat_query(in, path, timeout_ms);
    }
    return 0;
}

size_t stagestat_up(const stagestat_t *st, int stage)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n; i++)
        n += st->inst[i].up && st->inst[i].stage == stage;
    return n;
}

void stagestat_free(stagestat_t *st)
{
    for (size_t i = 0; i < st->n; i++)
        json_decref(st->inst[i].stats);
    free(st->inst);
    st->inst = NULL;
    st->n = 0;
}
