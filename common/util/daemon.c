/* daemon.c - the skeleton every stage runs on: options, data and run dirs, the libuv loop,
 * signals and graceful stop, the listening socket, readiness and status replies. Connections
 * are conn.c's, outbound dialling is dial.c's. */
#include "util/daemon.h"
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
    fsync_policy_t fsync;
    size_t segment_bytes;
    log_level_t log_level;
    int notify_fd;
    uint64_t grace_ms, started_ns;
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

/* daemon_parse_u64: strict decimal parse; 0 or -EINVAL. */
static int daemon_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-') return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -EINVAL;
    *out = v;
    return 0;
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

enum {
    OPT_DATA_DIR = 256,
    OPT_INSTANCE,
    OPT_FSYNC,
    OPT_NOTIFY_FD,
    OPT_GRACE_MS,
    OPT_SEGMENT_BYTES,
    OPT_LOG_LEVEL,
    OPT_HELP,
    OPT_VERSION,
    OPT_STAGE = 1024, /* + index into ops->options */
};

/* daemon_usage prints --help text for the common and the stage's options. */
static void daemon_usage(const daemon_ops_t *ops, FILE *f)
{
    fprintf(f, "usage: %s [OPTIONS]\n", ops->program);
    if (ops->summary) fprintf(f, "%s\n", ops->summary);
    fprintf(f, "\noptions:\n");
    fprintf(f, "  %-26s %s\n", "--data-dir DIR",
            "data directory (default $HOOKLINE_DATA, else ./var)");
    fprintf(f, "  %-26s %s\n", "--instance NAME", "instance name, [A-Za-z0-9_-]{1,32} (default 0)");
    fprintf(f, "  %-26s %s\n", "--fsync always|batch|off",
            ops->has_journal ? "journal sync policy (default batch)"
                             : "accepted for uniformity; this stage keeps no journal");
    if (ops->has_journal)
        fprintf(f, "  %-26s %s\n", "--segment-bytes N",
                "journal segment size before rolling (default 67108864)");
    fprintf(f, "  %-26s %s\n", "--notify-fd N", "write a newline to fd N when ready (s6)");
    fprintf(f, "  %-26s %s\n", "--grace-ms N", "drain deadline after SIGTERM (default 5000)");
    fprintf(f, "  %-26s %s\n", "--log-level LEVEL", "debug|info|warn|error (default info)");
    fprintf(f, "  %-26s %s\n", "--help", "print this help and exit");
    fprintf(f, "  %-26s %s\n", "--version", "print the version and exit");
    for (const daemon_option_t *o = ops->options; o && o->name; o++) {
        char left[128];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-26s %s\n", left, o->help ? o->help : "");
    }
}

/* daemon_parse handles argv; returns 0 to go on, or 1 with *status when main should return. */
static int daemon_parse(daemon_t *d, int argc, char **argv, int *status)
{
    const daemon_ops_t *ops = d->ops;
    size_t nstage = 0, n = 0;
    while (ops->options && ops->options[nstage].name)
        nstage++;
    struct option *lo = calloc(nstage + 9, sizeof *lo);
    if (!lo) {
        fprintf(stderr, "%s: out of memory\n", ops->program);
        *status = 1;
        return 1;
    }
    lo[n++] = (struct option){"data-dir", required_argument, NULL, OPT_DATA_DIR};
    lo[n++] = (struct option){"instance", required_argument, NULL, OPT_INSTANCE};
    /* Every stage takes --fsync, so one supervisor template fits all; only journals use it. */
    lo[n++] = (struct option){"fsync", required_argument, NULL, OPT_FSYNC};
    if (ops->has_journal)
        lo[n++] = (struct option){"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES};
    lo[n++] = (struct option){"notify-fd", required_argument, NULL, OPT_NOTIFY_FD};
    lo[n++] = (struct option){"grace-ms", required_argument, NULL, OPT_GRACE_MS};
    lo[n++] = (struct option){"log-level", required_argument, NULL, OPT_LOG_LEVEL};
    lo[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    lo[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    for (size_t i = 0; i < nstage; i++)
        lo[n++] = (struct option){ops->options[i].name,
                                  ops->options[i].arg ? required_argument : no_argument, NULL,
                                  OPT_STAGE + (int)i};

    const char *data_dir = NULL;
    int opt, done = 0;
    *status = 2;
    optind = 0; /* full GNU getopt reset: daemon_main may run more than once per process */
    while (!done && (opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        uint64_t v;
        char err[256] = "";
        switch (opt) {
        case OPT_DATA_DIR:
            data_dir = optarg;
            break;
        case OPT_INSTANCE:
            if (!daemon_instance_valid(optarg)) {
                fprintf(stderr, "%s: --instance %s: want 1..32 of [A-Za-z0-9_-]\n", ops->program,
                        optarg);
                done = 1;
                break;
            }
            snprintf(d->instance, sizeof d->instance, "%s", optarg);
            break;
        case OPT_FSYNC:
            if (strcmp(optarg, "always") == 0)
                d->fsync = FSYNC_ALWAYS;
            else if (strcmp(optarg, "batch") == 0)
                d->fsync = FSYNC_BATCH;
            else if (strcmp(optarg, "off") == 0)
                d->fsync = FSYNC_OFF;
            else {
                fprintf(stderr, "%s: --fsync %s: want always, batch or off\n", ops->program,
                        optarg);
                done = 1;
            }
            break;
        case OPT_NOTIFY_FD:
            if (daemon_parse_u64(optarg, &v) < 0 || v > INT32_MAX || fcntl((int)v, F_GETFD) < 0) {
                fprintf(stderr, "%s: --notify-fd %s: not an open file descriptor\n", ops->program,
                        optarg);
                done = 1;
                break;
            }
            d->notify_fd = (int)v;
            break;
        case OPT_SEGMENT_BYTES:
            if (daemon_parse_u64(optarg, &v) < 0 || v < 4096 || v > (1u << 30)) {
                fprintf(stderr, "%s: --segment-bytes %s: want 4096..1073741824\n", ops->program,
                        optarg);
                done = 1;
                break;
            }
            d->segment_bytes = (size_t)v;
            break;
        case OPT_GRACE_MS:
            if (daemon_parse_u64(optarg, &v) < 0 || v > UINT32_MAX) {
                fprintf(stderr, "%s: --grace-ms %s: want milliseconds\n", ops->program, optarg);
                done = 1;
                break;
            }
            d->grace_ms = v;
            break;
        case OPT_LOG_LEVEL: {
            int lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "%s: --log-level %s: want debug, info, warn or error\n",
                        ops->program, optarg);
                done = 1;
                break;
            }
            d->log_level = (log_level_t)lvl;
            break;
        }
        case 'h':
        case OPT_HELP:
            daemon_usage(ops, stdout);
            *status = 0;
            done = 1;
            break;
        case OPT_VERSION:
            printf("hookline %s\n", HOOKLINE_VERSION);
            *status = 0;
            done = 1;
            break;
        default:
            if (opt >= OPT_STAGE && (size_t)(opt - OPT_STAGE) < nstage) {
                const daemon_option_t *o = &ops->options[opt - OPT_STAGE];
                if (o->set && o->set(d->ctx, o->arg ? optarg : NULL, err, sizeof err) < 0) {
                    fprintf(stderr, "%s: --%s: %s\n", ops->program, o->name,
                            err[0] ? err : "invalid value");
                    done = 1;
                }
                break;
            }
            fprintf(stderr, "%s: try --help\n", ops->program); /* getopt said what was wrong */
            done = 1;
            break;
        }
    }
    free(lo);
    if (done) return 1;
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", ops->program, argv[optind]);
        return 1;
    }
    if (!data_dir) data_dir = getenv("HOOKLINE_DATA");
    if (!data_dir || !*data_dir) data_dir = "./var";
    d->data_dir = strdup(data_dir);
    d->run_dir = daemon_strdupf("%s/run", data_dir);
    d->db_path = daemon_strdupf("%s/hookline.db", data_dir);
    if (!d->data_dir || !d->run_dir || !d->db_path) {
        fprintf(stderr, "%s: out of memory\n", ops->program);
        *status = 1;
        return 1;
    }
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
    struct stat st;
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
    if (stat(d->run_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("%s is not a directory", d->run_dir);
        return -ENOTDIR;
    }
    if ((st.st_mode & 07777) != 0700 && chmod(d->run_dir, 0700) < 0) {
        r = -errno;
        log_error("cannot chmod 0700 %s: %s", d->run_dir, strerror(errno));
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
    log_warn("grace period of %" PRIu64 " ms over: stopping with work in flight", d->grace_ms);
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
    log_info("signal %d: draining (grace %" PRIu64 " ms)", signum, d->grace_ms);
    uv_timer_start(&d->grace, daemon_on_grace, d->grace_ms, 0);
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
    d->grace_ms = 5000;
    d->fsync = FSYNC_BATCH;
    d->segment_bytes = 64u << 20;
    d->log_level = LOG_LVL_INFO;
    snprintf(d->instance, sizeof d->instance, "0");
    int status;
    if (daemon_parse(d, argc, argv, &status)) {
        d->notify_fd = -1; /* not ours to close */
        daemon_free(d);
        return status;
    }
    log_init(ops->program, d->instance, d->log_level);
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
    return d->fsync;
}

int daemon_draining(daemon_t *d)
{
    return d->draining;
}
