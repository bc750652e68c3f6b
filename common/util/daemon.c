/* daemon.c - the skeleton every stage runs on: options, data and run dirs, the libuv loop,
 * signals and graceful stop, the listening socket, readiness and status replies. Connections
 * are conn.c's, outbound dialling is dial.c's. */
#include "util/daemon.h"

#include "util/fsmode.h"
#include "util/dial.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/wire.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef HOOKLINE_VERSION
#define HOOKLINE_VERSION "0.0.0"
#endif

#define DAEMON_INSTANCE_MAX 32

struct daemon {
    const daemon_ops_t *ops;
    void *ctx;
    uv_loop_t loop;
    char *data_dir, *run_dir, *db_path, *sock_path;
    char instance[DAEMON_INSTANCE_MAX + 1];
    const char *data_dir_arg; /* --data-dir, NULL when not given */
    int fsync;                /* fsync_policy_t */
    size_t segment_bytes;
    int log_level; /* log_level_t */
    int notify_fd;
    int64_t grace_ms;
    int64_t peer_timeout_ms; /* --peer-timeout-ms, for the connection hub */
    uint64_t started_ns;
    int draining, stopping, bound, listener_init, started;
    int nopen; /* our own handles not yet through their close callback */
    uv_pipe_t listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t grace, idle_timer;
    uv_prepare_t flusher;
    int (*idle)(daemon_t *d); /* daemon_stop_when_idle's test */
    conn_hub_t *hub;
    dial_t *dial; /* made once the listening socket exists */
};

/* --- small helpers --- */

/* daemon_strdupf: malloc'd printf result, NULL on failure. */
static char *daemon_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *daemon_strdupf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* daemon_instance_valid: [A-Za-z0-9_-]{1,32}. */
static int daemon_instance_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > DAEMON_INSTANCE_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* daemon_free: release everything daemon_main allocated (handles must be closed). */
static void daemon_free(daemon_t *d)
{
    free(d->data_dir);
    free(d->run_dir);
    free(d->db_path);
    free(d->sock_path);
    dial_free(d->dial);
    conn_hub_free(d->hub);
    if (d->notify_fd >= 0) close(d->notify_fd);
    free(d);
}

/* --- options --- */

/* daemon_set_instance: --instance NAME. */
static int daemon_set_instance(void *ctx, const char *val, char *err, size_t errlen)
{
    daemon_t *d = ctx;
    if (!daemon_instance_valid(val)) {
        snprintf(err, errlen, "want 1..32 of [A-Za-z0-9_-], got '%s'", val);
        return -EINVAL;
    }
    snprintf(d->instance, sizeof d->instance, "%s", val);
    return 0;
}

/* daemon_set_notify_fd: --notify-fd N, which must be open. */
static int daemon_set_notify_fd(void *ctx, const char *val, char *err, size_t errlen)
{
    daemon_t *d = ctx;
    long long v;
    if (daemon_option_long(val, 0, INT32_MAX, &v, err, errlen) < 0) return -EINVAL;
    if (fcntl((int)v, F_GETFD) < 0) {
        snprintf(err, errlen, "want an open file descriptor, got '%s'", val);
        return -EINVAL;
    }
    d->notify_fd = (int)v;
    return 0;
}

/* The options every stage takes, rows into daemon_t. */
static const daemon_option_t daemon_common_options[] = {
    DAEMON_OPTION_STRING("data-dir", "DIR", NULL, daemon_t, data_dir_arg,
                         "data directory (default $HOOKLINE_DATA, else ./var)"),
    DAEMON_OPTION_CALL("instance", "NAME", "0", daemon_set_instance,
                       "instance name, [A-Za-z0-9_-]{1,32}"),
    /* Every stage takes --fsync, so one supervisor template fits all; only journals use it. */
    {.name = "fsync",
     .type = DAEMON_OPT_CHOICE,
     .choices = "always|batch|off", /* the order of fsync_policy_t */
     .def = "batch",
     .offset = DAEMON_OPTION_FIELD(daemon_t, fsync, int),
     .help = "journal sync policy",
     .flags = DAEMON_OPTF_JOURNAL},
    {.name = "fsync",
     .type = DAEMON_OPT_CHOICE,
     .choices = "always|batch|off",
     .def = "batch",
     .offset = DAEMON_OPTION_FIELD(daemon_t, fsync, int),
     .help = "accepted for uniformity; this stage keeps no journal",
     .flags = DAEMON_OPTF_NO_JOURNAL},
    {.name = "segment-bytes",
     .arg = "N",
     .type = DAEMON_OPT_SIZE,
     .def = "67108864",
     .lo = 4096,
     .hi = 1u << 30,
     .offset = DAEMON_OPTION_FIELD(daemon_t, segment_bytes, size_t),
     .help = "journal segment size before rolling",
     .flags = DAEMON_OPTF_JOURNAL},
    DAEMON_OPTION_CALL("notify-fd", "N", NULL, daemon_set_notify_fd,
                       "write a newline to fd N when ready (s6)"),
    DAEMON_OPTION_INT64("grace-ms", "N", "5000", 0, UINT32_MAX, daemon_t, grace_ms,
                        "drain deadline after SIGTERM"),
    DAEMON_OPTION_INT64("peer-timeout-ms", "N", "5000", 0, 3600000, daemon_t, peer_timeout_ms,
                        "close a stage peer that sent nothing, not even a heartbeat, for this "
                        "long, so its unacknowledged work goes to other instances; 0: never"),
    {.name = "log-level",
     .arg = "LEVEL",
     .type = DAEMON_OPT_CHOICE,
     .choices = "debug|info|warn|error", /* the order of log_level_t */
     .def = "info",
     .offset = DAEMON_OPTION_FIELD(daemon_t, log_level, int),
     .help = "debug|info|warn|error"},
    DAEMON_OPTION_END,
};

/* daemon_opt_applies: the row is for this stage (journal-only rows, and their opposites). */
static int daemon_opt_applies(const daemon_option_t *o, const daemon_ops_t *ops)
{
    if ((o->flags & DAEMON_OPTF_JOURNAL) && !ops->has_journal) return 0;
    if ((o->flags & DAEMON_OPTF_NO_JOURNAL) && ops->has_journal) return 0;
    return 1;
}

/* daemon_opt_choice: index of val in a "a|b|c" list, or -1. */
static int daemon_opt_choice(const char *choices, const char *val)
{
    size_t n = strlen(val);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, val, n) == 0) return i;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* daemon_opt_set parses val (NULL for a flag) into the row's field of base. 0, or -EINVAL with
 * err saying what was wanted. */
static int daemon_opt_set(const daemon_option_t *o, void *base, const char *val, char *err,
                          size_t errlen)
{
    char *field = (char *)base + o->offset;
    long long v = 0;
    double x;
    switch (o->type) {
    case DAEMON_OPT_INT:
    case DAEMON_OPT_UINT:
    case DAEMON_OPT_LONG:
    case DAEMON_OPT_INT64:
    case DAEMON_OPT_SIZE:
        if (daemon_option_long(val, (long long)o->lo, (long long)o->hi, &v, err, errlen) < 0)
            return -EINVAL;
        if (o->type == DAEMON_OPT_INT) *(int *)field = (int)v;
        if (o->type == DAEMON_OPT_UINT) *(unsigned *)field = (unsigned)v;
        if (o->type == DAEMON_OPT_LONG) *(long *)field = (long)v;
        if (o->type == DAEMON_OPT_INT64) *(int64_t *)field = (int64_t)v;
        if (o->type == DAEMON_OPT_SIZE) *(size_t *)field = (size_t)v;
        return 0;
    case DAEMON_OPT_DOUBLE:
        if (daemon_option_double(val, o->lo, o->hi, &x, err, errlen) < 0) return -EINVAL;
        *(double *)field = x;
        return 0;
    case DAEMON_OPT_STRING:
        *(const char **)field = val;
        return 0;
    case DAEMON_OPT_FLAG:
        *(int *)field = 1;
        return 0;
    case DAEMON_OPT_CHOICE: {
        int i = daemon_opt_choice(o->choices, val);
        if (i < 0) {
            snprintf(err, errlen, "want one of %s, got '%s'", o->choices, val);
            return -EINVAL;
        }
        *(int *)field = i;
        return 0;
    }
    case DAEMON_OPT_CALL:
        err[0] = 0;
        if (o->set(base, val, err, errlen) == 0) return 0;
        if (!err[0]) snprintf(err, errlen, "invalid value '%s'", val);
        return -EINVAL;
    case DAEMON_OPT_END:
        break;
    }
    snprintf(err, errlen, "option type %d unknown to the skeleton", (int)o->type);
    return -EINVAL;
}

/* daemon_usage_rows prints one --help line per row of t that applies to the stage. */
static void daemon_usage_rows(const daemon_option_t *t, const daemon_ops_t *ops, FILE *f)
{
    for (const daemon_option_t *o = t; o && o->name; o++) {
        if (!daemon_opt_applies(o, ops)) continue;
        char left[128];
        const char *arg = o->type == DAEMON_OPT_CHOICE && !o->arg ? o->choices : o->arg;
        if (o->type == DAEMON_OPT_FLAG) arg = NULL;
        snprintf(left, sizeof left, "--%s%s%s", o->name, arg ? " " : "", arg ? arg : "");
        fprintf(f, "  %-26s %s", left, o->help ? o->help : "");
        if (o->def && o->type != DAEMON_OPT_FLAG) fprintf(f, " (default %s)", o->def);
        fputc('\n', f);
    }
}

/* daemon_usage prints --help: the summary, then the common and the stage's rows. */
static void daemon_usage(const daemon_ops_t *ops, FILE *f)
{
    fprintf(f, "usage: %s [OPTIONS]\n", ops->program);
    if (ops->summary) fprintf(f, "%s\n", ops->summary);
    fprintf(f, "\noptions:\n");
    daemon_usage_rows(daemon_common_options, ops, f);
    fprintf(f, "  %-26s %s\n", "--help", "print this help and exit");
    fprintf(f, "  %-26s %s\n", "--version", "print the version and exit");
    daemon_usage_rows(ops->options, ops, f);
}

/* One option getopt knows: its row and the struct the row writes into. */
typedef struct daemon_opt_ref {
    const daemon_option_t *row;
    void *base;
} daemon_opt_ref_t;

#define DAEMON_OPT_HELP 1
#define DAEMON_OPT_VERSION 2
#define DAEMON_OPT_ROW 16 /* + index into the refs */

/* daemon_parse applies the defaults of every row, then argv; returns 0 to go on, or 1 with
 * *status when main should return. */
static int daemon_parse(daemon_t *d, int argc, char **argv, int *status)
{
    const daemon_ops_t *ops = d->ops;
    const daemon_option_t *tables[2] = {daemon_common_options, ops->options};
    void *bases[2] = {d, d->ctx};
    size_t nrows = 0, n = 0, nlong = 0;
    char err[256];
    for (int k = 0; k < 2; k++)
        for (const daemon_option_t *o = tables[k]; o && o->name; o++)
            nrows++;
    daemon_opt_ref_t *refs = calloc(nrows + 1, sizeof *refs);
    struct option *lo = calloc(nrows + 3, sizeof *lo);
    if (!refs || !lo) {
        fprintf(stderr, "%s: out of memory\n", ops->program);
        free(refs);
        free(lo);
        *status = 1;
        return 1;
    }
    *status = 1;
    for (int k = 0; k < 2; k++)
        for (const daemon_option_t *o = tables[k]; o && o->name; o++) {
            if (!daemon_opt_applies(o, ops)) continue;
            if (o->def && o->type != DAEMON_OPT_FLAG &&
                daemon_opt_set(o, bases[k], o->def, err, sizeof err) < 0) {
                fprintf(stderr, "%s: --%s: bad default: %s\n", ops->program, o->name, err);
                goto done;
            }
            refs[n] = (daemon_opt_ref_t){o, bases[k]};
            lo[nlong++] = (struct option){
                o->name, o->type == DAEMON_OPT_FLAG ? no_argument : required_argument, NULL,
                DAEMON_OPT_ROW + (int)n};
            n++;
        }
    lo[nlong++] = (struct option){"help", no_argument, NULL, DAEMON_OPT_HELP};
    lo[nlong++] = (struct option){"version", no_argument, NULL, DAEMON_OPT_VERSION};

    int opt;
    *status = 2;
    optind = 0; /* full GNU getopt reset: daemon_main may run more than once per process */
    opterr = 0; /* we say what was wrong, naming the flag */
    while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (opt == 'h' || opt == DAEMON_OPT_HELP) {
            daemon_usage(ops, stdout);
            *status = 0;
            goto done;
        }
        if (opt == DAEMON_OPT_VERSION) {
            printf("hookline %s\n", HOOKLINE_VERSION);
            *status = 0;
            goto done;
        }
        if (opt >= DAEMON_OPT_ROW && (size_t)(opt - DAEMON_OPT_ROW) < n) {
            const daemon_opt_ref_t *r = &refs[opt - DAEMON_OPT_ROW];
            const char *val = r->row->type == DAEMON_OPT_FLAG ? NULL : optarg;
            if (daemon_opt_set(r->row, r->base, val, err, sizeof err) < 0) {
                fprintf(stderr, "%s: --%s: %s\n", ops->program, r->row->name, err);
                goto done;
            }
            continue;
        }
        const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (opt == ':')
            fprintf(stderr, "%s: %s needs a value (try --help)\n", ops->program, what);
        else
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", ops->program, what);
        goto done;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", ops->program, argv[optind]);
        goto done;
    }
    const char *data_dir = d->data_dir_arg;
    if (!data_dir) data_dir = getenv("HOOKLINE_DATA");
    if (!data_dir || !*data_dir) data_dir = "./var";
    d->data_dir = strdup(data_dir);
    d->run_dir = daemon_strdupf("%s/run", data_dir);
    d->db_path = daemon_strdupf("%s/hookline.db", data_dir);
    if (!d->data_dir || !d->run_dir || !d->db_path) {
        fprintf(stderr, "%s: out of memory\n", ops->program);
        *status = 1;
        goto done;
    }
    *status = 0;
    free(refs);
    free(lo);
    return 0;
done:
    free(refs);
    free(lo);
    return 1;
}

int daemon_option_long(const char *val, long long lo, long long hi, long long *out, char *err,
                       size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (end == val || *end || errno || v < lo || v > hi) {
        snprintf(err, errlen, "want a whole number from %lld to %lld, got '%s'", lo, hi, val);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int daemon_option_double(const char *val, double lo, double hi, double *out, char *err,
                         size_t errlen)
{
    char *end;
    double v = strtod(val, &end);
    if (end == val || *end || !isfinite(v) || v < lo || v > hi) {
        snprintf(err, errlen, "want a number from %g to %g, got '%s'", lo, hi, val);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* --- data dir and listening socket --- */

/* daemon_mkdirs creates path and its parents with mode (existing directories are fine). */
static int daemon_mkdirs(const char *path, mode_t mode)
{
    char *p = strdup(path);
    if (!p) return -ENOMEM;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return -e;
        }
        *s = '/';
    }
    int r = mkdir(p, mode) < 0 && errno != EEXIST ? -errno : 0;
    free(p);
    return r;
}

/* daemon_make_dirs creates DATA (0755) and DATA/run (0700, tightened if it exists looser). */
static int daemon_make_dirs(daemon_t *d)
{
    int r = daemon_mkdirs(d->data_dir, 0755);
    if (r < 0) {
        log_error("cannot create data dir %s: %s", d->data_dir, strerror(-r));
        return r;
    }
    if (mkdir(d->run_dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        log_error("cannot create %s: %s", d->run_dir, strerror(errno));
        return r;
    }
    char err[4400];
    if ((r = fsmode_tighten_dir(d->run_dir, err, sizeof err)) < 0) { /* logs what it changed */
        log_error("%s", err);
        return r;
    }
    return 0;
}

/* daemon_socket_live: 1 when something accepts connections on the Unix socket at path. */
static int daemon_socket_live(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return live;
}

/* daemon_handle_closed: close callback of the daemon's own handles. */
static void daemon_handle_closed(uv_handle_t *h)
{
    daemon_t *d = h->data;
    d->nopen--;
}

/* daemon_close_handle closes one of the daemon's own handles once. */
static void daemon_close_handle(daemon_t *d, uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, daemon_handle_closed);
}

/* daemon_on_connection accepts one inbound connection. */
static void daemon_on_connection(uv_stream_t *srv, int status)
{
    daemon_t *d = srv->data;
    int r = status < 0 ? status : conn_accept(d->hub, srv);
    if (r == -ENOMEM)
        log_error("accept on %s: out of memory", d->sock_path);
    else if (r < 0)
        log_warn("accept on %s: %s", d->sock_path, uv_strerror(r));
}

/* daemon_send_status answers a STATUS request. */
static void daemon_send_status(daemon_t *d, conn_t *c)
{
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 7);
    frame_pack_kv_u64(pk, PK_TYPE, PT_STATUS_REPLY);
    frame_pack_kv_str(pk, PK_STAGE, d->ops->stage);
    frame_pack_kv_str(pk, PK_INSTANCE, d->instance);
    frame_pack_kv_i64(pk, PK_PID, (int64_t)getpid());
    frame_pack_kv_str(pk, PK_STATE, d->draining ? "draining" : "running");
    frame_pack_kv_u64(pk, PK_UPTIME, (uv_hrtime() - d->started_ns) / 1000000u);
    frame_pack_str(pk, PK_STATS);
    if (d->ops->on_stats)
        d->ops->on_stats(d, pk);
    else
        msgpack_pack_map(pk, 0);
    conn_frame_end(c);
}

/* daemon_on_frame answers STATUS itself and hands every other frame to the stage. */
static void daemon_on_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *o)
{
    if (t == PT_STATUS)
        daemon_send_status(d, c);
    else if (d->ops->on_frame)
        d->ops->on_frame(d, c, t, o);
    else
        log_debug("%s: ignoring frame type %" PRIu64, conn_name(c), t);
}

/* daemon_listen binds run/<stage>[.<instance>].sock, replacing a stale socket file. */
static int daemon_listen(daemon_t *d)
{
    const daemon_ops_t *ops = d->ops;
    struct sockaddr_un sa;
    struct stat st;
    if (ops->multi_instance)
        d->sock_path = daemon_strdupf("%s/%s.%s.sock", d->run_dir, ops->stage, d->instance);
    else
        d->sock_path = daemon_strdupf("%s/%s.sock", d->run_dir, ops->stage);
    if (!d->sock_path) {
        log_error("out of memory");
        return -ENOMEM;
    }
    if (strlen(d->sock_path) >= sizeof sa.sun_path) {
        log_error("socket path %s is longer than %zu bytes: use a shorter --data-dir", d->sock_path,
                  sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    if (lstat(d->sock_path, &st) == 0) {
        if (daemon_socket_live(d->sock_path)) {
            log_error("another %s instance %s is running on %s", ops->stage, d->instance,
                      d->sock_path);
            return -EADDRINUSE;
        }
        if (unlink(d->sock_path) < 0 && errno != ENOENT) {
            int e = errno;
            log_error("cannot remove stale socket %s: %s", d->sock_path, strerror(e));
            return -e;
        }
    }
    int r = uv_pipe_init(&d->loop, &d->listener, 0);
    if (r < 0) {
        log_error("uv_pipe_init: %s", uv_strerror(r));
        return r;
    }
    d->listener.data = d;
    d->listener_init = 1;
    d->nopen++;
    r = uv_pipe_bind(&d->listener, d->sock_path);
    if (r < 0) {
        log_error("cannot bind %s: %s", d->sock_path, uv_strerror(r));
        return r;
    }
    d->bound = 1;
    if (chmod(d->sock_path, 0600) < 0) {
        r = -errno;
        log_error("cannot chmod 0600 %s: %s", d->sock_path, strerror(errno));
        return r;
    }
    r = uv_listen((uv_stream_t *)&d->listener, 128, daemon_on_connection);
    if (r < 0) {
        log_error("cannot listen on %s: %s", d->sock_path, uv_strerror(r));
        return r;
    }
    if ((r = dial_init(&d->dial, d->hub, &d->loop, d->run_dir, d->sock_path)) < 0) {
        log_error("out of memory");
        return r;
    }
    return 0;
}

int daemon_connect(daemon_t *d, const char *pattern)
{
    return dial_add(d->dial, pattern);
}

/* --- loop: flushing, signals, stop --- */

/* daemon_on_prepare runs before each poll: dispatch resumed input, then write every dirty
 * connection's batch with one uv_write. */
static void daemon_on_prepare(uv_prepare_t *p)
{
    daemon_t *d = p->data;
    conn_hub_prepare(d->hub);
}

/* daemon_on_grace: the drain deadline passed. */
static void daemon_on_grace(uv_timer_t *t)
{
    daemon_t *d = t->data;
    log_warn("grace period of %" PRId64 " ms over: stopping with work in flight", d->grace_ms);
    daemon_stop(d);
}

/* daemon_on_signal: SIGTERM/SIGINT start the drain; a second one stops at once. */
static void daemon_on_signal(uv_signal_t *s, int signum)
{
    daemon_t *d = s->data;
    if (d->stopping) return;
    if (d->draining) {
        log_warn("signal %d while draining: stopping now", signum);
        daemon_stop(d);
        return;
    }
    d->draining = 1;
    log_info("signal %d: draining (grace %" PRId64 " ms)", signum, d->grace_ms);
    uv_timer_start(&d->grace, daemon_on_grace, (uint64_t)d->grace_ms, 0);
    if (d->ops->on_drain)
        d->ops->on_drain(d);
    else
        daemon_stop(d);
}

void daemon_stop(daemon_t *d)
{
    if (d->stopping) return;
    d->stopping = 1;
    if (d->started) log_info("stopping");
    if (d->hub) conn_hub_stop(d->hub);
    dial_stop(d->dial);
    if (d->listener_init) daemon_close_handle(d, (uv_handle_t *)&d->listener);
    if (d->bound && unlink(d->sock_path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", d->sock_path, strerror(errno));
    d->bound = 0;
    daemon_close_handle(d, (uv_handle_t *)&d->sigterm);
    daemon_close_handle(d, (uv_handle_t *)&d->sigint);
    daemon_close_handle(d, (uv_handle_t *)&d->grace);
    daemon_close_handle(d, (uv_handle_t *)&d->idle_timer);
    daemon_close_handle(d, (uv_handle_t *)&d->flusher);
    uv_stop(&d->loop);
}

/* daemon_on_idle_check stops the daemon once the stage says its in-flight work is done. */
static void daemon_on_idle_check(uv_timer_t *t)
{
    daemon_t *d = t->data;
    if (d->idle && d->idle(d)) daemon_stop(d);
}

void daemon_stop_when_idle(daemon_t *d, int (*idle)(daemon_t *d))
{
    if (d->stopping) return;
    d->idle = idle;
    uv_timer_start(&d->idle_timer, daemon_on_idle_check, 0, 5);
}

/* daemon_init_handles sets up the connection hub, the signal watchers, timers and the
 * flusher. */
static int daemon_init_handles(daemon_t *d)
{
    conn_hub_cfg_t hc = {.d = d,
                         .loop = &d->loop,
                         .stage = d->ops->stage,
                         .instance = d->instance,
                         .raw_input = d->ops->raw_input,
                         .peer_timeout_ms = (uint64_t)d->peer_timeout_ms,
                         .on_up = d->ops->on_peer_up,
                         .on_frame = daemon_on_frame,
                         .on_down = d->ops->on_peer_down,
                         .on_raw = d->ops->on_raw};

    uv_handle_t *hs[] = {(uv_handle_t *)&d->sigterm, (uv_handle_t *)&d->sigint,
                         (uv_handle_t *)&d->grace, (uv_handle_t *)&d->idle_timer,
                         (uv_handle_t *)&d->flusher};
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_timer_init(&d->loop, &d->grace);
    uv_timer_init(&d->loop, &d->idle_timer);
    uv_prepare_init(&d->loop, &d->flusher);
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        hs[i]->data = d;
        d->nopen++;
    }
    if (conn_hub_init(&d->hub, &hc) < 0) {
        log_error("out of memory");
        return -ENOMEM;
    }
    int r = uv_signal_start(&d->sigterm, daemon_on_signal, SIGTERM);
    if (r == 0) r = uv_signal_start(&d->sigint, daemon_on_signal, SIGINT);
    if (r == 0) r = uv_prepare_start(&d->flusher, daemon_on_prepare);
    if (r < 0) log_error("loop setup: %s", uv_strerror(r));
    return r;
}

/* daemon_walk_close closes a handle the stage left open, so the loop can close. */
static void daemon_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        log_debug("closing a leftover %s handle", uv_handle_type_name(uv_handle_get_type(h)));
        uv_close(h, NULL);
    }
}

/* daemon_notify_ready writes the s6 readiness newline and closes the fd. */
static void daemon_notify_ready(daemon_t *d)
{
    if (d->notify_fd < 0) return;
    ssize_t w;
    do
        w = write(d->notify_fd, "\n", 1);
    while (w < 0 && errno == EINTR);
    if (w < 0) log_warn("readiness notification on fd %d: %s", d->notify_fd, strerror(errno));
    close(d->notify_fd);
    d->notify_fd = -1;
}

int daemon_main(int argc, char **argv, const daemon_ops_t *ops, void *ctx)
{
    signal(SIGPIPE, SIG_IGN);
    daemon_t *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "%s: out of memory\n", ops->program);
        return 1;
    }
    d->ops = ops;
    d->ctx = ctx;
    d->notify_fd = -1;
    int status;
    if (daemon_parse(d, argc, argv, &status)) {
        d->notify_fd = -1; /* not ours to close */
        daemon_free(d);
        return status;
    }
    log_init(ops->program, d->instance, (log_level_t)d->log_level);
    if (daemon_make_dirs(d) < 0) {
        daemon_free(d);
        return 1;
    }
    int r = uv_loop_init(&d->loop);
    if (r < 0) {
        log_error("uv_loop_init: %s", uv_strerror(r));
        daemon_free(d);
        return 1;
    }
    d->started_ns = uv_hrtime();
    status = 1;
    if (daemon_init_handles(d) == 0 && daemon_listen(d) == 0) {
        d->started = 1;
        if (!ops->on_start || ops->on_start(d) == 0) {
            status = 0;
            log_info("ready on %s", d->sock_path);
            daemon_notify_ready(d);
            uv_run(&d->loop, UV_RUN_DEFAULT);
        }
    }
    daemon_stop(d);
    /* Our close callbacks (and on_peer_down) run before the stage releases its state. */
    for (int i = 0; i < 1000 && (d->nopen > 0 || conn_hub_open(d->hub) || dial_open(d->dial)); i++)
        uv_run(&d->loop, UV_RUN_NOWAIT);
    if (d->started && ops->on_close) ops->on_close(d);
    uv_walk(&d->loop, daemon_walk_close, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    r = uv_loop_close(&d->loop);
    if (r < 0) log_warn("event loop did not close cleanly: %s", uv_strerror(r));
    if (d->started) log_info("stopped");
    daemon_free(d);
    return status;
}

/* --- accessors --- */

uv_loop_t *daemon_loop(daemon_t *d)
{
    return &d->loop;
}

void *daemon_ctx(daemon_t *d)
{
    return d->ctx;
}

const char *daemon_data_dir(daemon_t *d)
{
    return d->data_dir;
}

const char *daemon_run_dir(daemon_t *d)
{
    return d->run_dir;
}

const char *daemon_db_path(daemon_t *d)
{
    return d->db_path;
}

const char *daemon_instance(daemon_t *d)
{
    return d->instance;
}

size_t daemon_segment_bytes(daemon_t *d)
{
    return d->segment_bytes;
}

fsync_policy_t daemon_fsync(daemon_t *d)
{
    return (fsync_policy_t)d->fsync;
}

int daemon_draining(daemon_t *d)
{
    return d->draining;
}
