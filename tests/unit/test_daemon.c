/* test_daemon.c - the daemon skeleton and the blocking client: real daemons forked on a temp
 * data dir, driven through their sockets (status, echo, raw streams, bad peers, reconnects). */
#include "check.h"
#include "util/client.h"
#include "util/daemon.h"
#include "util/frame.h"
#include "util/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T_ECHO 50
#define T_ECHO_REPLY 51
#define T_PAUSE 60 /* x: pause reading for x ms (default 30) */
#define T_BLOCK 61 /* x: block the event loop for x ms */

/* The test stage's state; each daemon runs in its own forked child. */
typedef struct tctx {
    const char *connect_pattern;
    long drain_ms; /* -1: ignore SIGTERM until the grace deadline */
    /* options of every type, for the option parser's tests (opts_ops prints them) */
    int count, mode, verbose;
    double ratio;
    size_t bytes;
    const char *tags[4];
    int ntags;
    int peer_ups, peer_downs, raw_hold;
    uv_timer_t timer;
    int timer_init;
    conn_t *paused, *held;
} tctx_t;

static tctx_t g_ctx;
static char g_data[256];

/* tstage_add_tag: --tag T, repeatable, at most 4, never empty. */
static int tstage_add_tag(void *ctx, const char *val, char *err, size_t errlen)
{
    tctx_t *t = ctx;
    if (!*val || t->ntags == 4) {
        snprintf(err, errlen, "want a non-empty tag, at most 4 of them, got '%s'", val);
        return -EINVAL;
    }
    t->tags[t->ntags++] = val;
    return 0;
}

static const daemon_option_t tstage_options[] = {
    DAEMON_OPTION_STRING("connect", "PATTERN", NULL, tctx_t, connect_pattern,
                         "connect to run/PATTERN"),
    DAEMON_OPTION_LONG("drain-ms", "N", "0", -1, 60000, tctx_t, drain_ms,
                       "stop N ms after SIGTERM (-1: never)"),
    DAEMON_OPTION_INT("count", "N", "3", 1, 10, tctx_t, count, "a bounded whole number"),
    DAEMON_OPTION_DOUBLE("ratio", "F", "0.5", 0, 1, tctx_t, ratio, "a bounded fraction"),
    DAEMON_OPTION_SIZE("bytes", "N", "4096", 1, 1 << 20, tctx_t, bytes, "a size"),
    DAEMON_OPTION_CHOICE("mode", "red|green|blue", "green", tctx_t, mode, "a choice"),
    DAEMON_OPTION_FLAG("verbose", tctx_t, verbose, "a flag"),
    DAEMON_OPTION_CALL("tag", "T", NULL, tstage_add_tag, "a repeatable option"),
    DAEMON_OPTION_END,
};

/* tstage_on_timer: the drain delay or a pause is over. */
static void tstage_on_timer(uv_timer_t *t)
{
    daemon_t *d = t->data;
    if (g_ctx.paused) {
        conn_resume(g_ctx.paused);
        g_ctx.paused = NULL;
    } else if (g_ctx.held) {
        conn_write_raw(g_ctx.held, "late\n", 5);
        conn_close(g_ctx.held, NULL);
    } else {
        daemon_stop(d);
    }
}

/* tstage_on_start: a stage-owned timer, and the outbound connects when asked. */
static int tstage_on_start(daemon_t *d)
{
    uv_timer_init(daemon_loop(d), &g_ctx.timer);
    g_ctx.timer.data = d;
    g_ctx.timer_init = 1;
    if (g_ctx.connect_pattern) return daemon_connect(d, g_ctx.connect_pattern);
    return 0;
}

/* tstage_on_peer_up counts peers of stage "peer". */
static void tstage_on_peer_up(daemon_t *d, conn_t *c)
{
    if (strcmp(conn_peer_stage(c), "peer") == 0) g_ctx.peer_ups++;
}

/* tstage_on_peer_down counts peers of stage "peer" going away. */
static void tstage_on_peer_down(daemon_t *d, conn_t *c)
{
    if (strcmp(conn_peer_stage(c), "peer") == 0) g_ctx.peer_downs++;
    if (c == g_ctx.paused) g_ctx.paused = NULL;
    if (c == g_ctx.held) g_ctx.held = NULL;
}

/* tstage_on_frame echoes T_ECHO frames and pauses reading on T_PAUSE. */
static void tstage_on_frame(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *o)
{
    const char *x = "";
    size_t n = 0;
    frame_get_str(o, "x", &x, &n);
    if (t == T_PAUSE) {
        conn_pause(c);
        g_ctx.paused = c;
        uv_timer_start(&g_ctx.timer, tstage_on_timer, n ? strtoul(x, NULL, 10) : 30, 0);
        return;
    }
    if (t == T_BLOCK) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)strtoul(x, NULL, 10) * 1000000};
        while (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
        return;
    }
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 2);
    frame_pack_kv_u64(pk, PK_TYPE, T_ECHO_REPLY);
    frame_pack_kv_strn(pk, "x", x, n);
    conn_frame_end(c);
}

/* tstage_on_raw upper-cases raw input; at EOF says "bye", or holds and says "late" later. */
static void tstage_on_raw(daemon_t *d, conn_t *c, const char *data, size_t n)
{
    if (n == 0) {
        if (g_ctx.raw_hold) {
            conn_hold(c);
            g_ctx.held = c;
            uv_timer_start(&g_ctx.timer, tstage_on_timer, 30, 0);
        } else {
            conn_write_raw(c, "bye\n", 4);
        }
        return;
    }
    char buf[256];
    size_t m = n < sizeof buf ? n : sizeof buf;
    for (size_t i = 0; i < m; i++) {
        buf[i] = data[i] >= 'a' && data[i] <= 'z' ? data[i] - 32 : data[i];
        if (data[i] == 'H') g_ctx.raw_hold = 1;
    }
    conn_write_raw(c, buf, m);
}

/* tstage_on_drain stops after --drain-ms through the stage's own timer. */
static void tstage_on_drain(daemon_t *d)
{
    if (g_ctx.drain_ms >= 0)
        uv_timer_start(&g_ctx.timer, tstage_on_timer, (uint64_t)g_ctx.drain_ms, 0);
}

/* tstage_on_stats packs {n:1, ups, downs}. */
static void tstage_on_stats(daemon_t *d, msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    frame_pack_kv_u64(pk, "n", 1);
    frame_pack_kv_u64(pk, "ups", (uint64_t)g_ctx.peer_ups);
    frame_pack_kv_u64(pk, "downs", (uint64_t)g_ctx.peer_downs);
}

/* tstage_on_close closes the stage-owned timer. */
static void tstage_on_close(daemon_t *d)
{
    if (g_ctx.timer_init) uv_close((uv_handle_t *)&g_ctx.timer, NULL);
}

static const daemon_ops_t echo_ops = {
    .program = "test-echo",
    .stage = "echo",
    .summary = "echoes frames",
    .raw_input = 1,
    .has_journal = 1,
    .options = tstage_options,
    .on_start = tstage_on_start,
    .on_peer_up = tstage_on_peer_up,
    .on_frame = tstage_on_frame,
    .on_peer_down = tstage_on_peer_down,
    .on_raw = tstage_on_raw,
    .on_stats = tstage_on_stats,
    .on_close = tstage_on_close,
};

/* opts_start prints the parsed options on stdout and stops at once. */
static int opts_start(daemon_t *d)
{
    tctx_t *t = daemon_ctx(d);
    printf("count=%d ratio=%g bytes=%zu mode=%d verbose=%d drain=%ld tags=", t->count, t->ratio,
           t->bytes, t->mode, t->verbose, t->drain_ms);
    for (int i = 0; i < t->ntags; i++)
        printf("%s%s", i ? "," : "", t->tags[i]);
    printf(" fsync=%d instance=%s\n", (int)daemon_fsync(d), daemon_instance(d));
    fflush(stdout);
    daemon_stop(d);
    return 0;
}

static const daemon_ops_t opts_ops = {
    .program = "test-opts",
    .stage = "opts",
    .has_journal = 1,
    .options = tstage_options,
    .on_start = opts_start,
};

static const daemon_ops_t conn_ops = {
    .program = "test-conn",
    .stage = "conn",
    .multi_instance = 1,
    .options = tstage_options,
    .on_start = tstage_on_start,
    .on_peer_up = tstage_on_peer_up,
    .on_frame = tstage_on_frame,
    .on_peer_down = tstage_on_peer_down,
    .on_drain = tstage_on_drain,
    .on_stats = tstage_on_stats,
    .on_close = tstage_on_close,
};

static const daemon_ops_t peer_ops = {
    .program = "test-peer",
    .stage = "peer",
    .options = tstage_options,
    .on_start = tstage_on_start,
    .on_frame = tstage_on_frame,
    .on_drain = tstage_on_drain,
    .on_close = tstage_on_close,
};

/* now_ms: monotonic milliseconds. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* run_child forks daemon_main(ops, args); *ready is the read end of its --notify-fd pipe. */
static pid_t run_child(const daemon_ops_t *ops, const char *const *args, int *ready)
{
    int p[2];
    if (pipe(p) < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char fdarg[16];
        const char *argv[32];
        int argc = 0;
        close(p[0]);
        snprintf(fdarg, sizeof fdarg, "%d", p[1]);
        argv[argc++] = ops->program;
        argv[argc++] = "--data-dir";
        argv[argc++] = g_data;
        argv[argc++] = "--notify-fd";
        argv[argc++] = fdarg;
        for (; args && *args && argc < 31; args++)
            argv[argc++] = *args;
        argv[argc] = NULL;
        memset(&g_ctx, 0, sizeof g_ctx);
        exit(daemon_main(argc, (char **)argv, ops, &g_ctx));
    }
    close(p[1]);
    *ready = p[0];
    return pid;
}

/* wait_ready: 1 when the daemon wrote its readiness newline within timeout_ms. */
static int wait_ready(int fd, int timeout_ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    char ch = 0;
    int ok = poll(&pf, 1, timeout_ms) == 1 && read(fd, &ch, 1) == 1 && ch == '\n';
    close(fd);
    return ok;
}

/* wait_exit: the child's exit status, or -1 if it is still running after timeout_ms. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        poll(NULL, 0, 5);
    }
}

/* start: fork a daemon and wait until it is ready; 0 pid on failure. */
static pid_t start(const daemon_ops_t *ops, const char *const *args)
{
    int ready;
    pid_t pid = run_child(ops, args, &ready);
    if (pid < 0) return 0;
    if (!wait_ready(ready, 5000)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 0;
    }
    return pid;
}

/* sock_path builds DATA/run/NAME. */
static const char *sock_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/run/%s", g_data, name);
    return buf;
}

/* send_frame sends {t, x} on cl. */
static int send_frame(client_t *cl, uint64_t t, const char *x)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t mark;
    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, x ? 2 : 1);
    frame_pack_kv_u64(&pk, PK_TYPE, t);
    if (x) frame_pack_kv_str(&pk, "x", x);
    frame_end(&sb, mark);
    int r = client_send(cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

typedef struct status {
    char stage[32], inst[64], state[16];
    uint64_t n, ups, downs, up_ms;
} status_t;

/* get_status asks the daemon at path for its status; 0 on success. */
static int get_status(const char *path, status_t *st)
{
    client_t cl;
    char err[256];
    msgpack_object o;
    memset(st, 0, sizeof *st);
    if (client_connect(&cl, path, 2000, err, sizeof err) < 0) return -1;
    int r = -1;
    if (send_frame(&cl, PT_STATUS, NULL) == 0 && client_recv(&cl, &o, 2000, err, sizeof err) == 1) {
        uint64_t t = 0;
        char *s;
        frame_get_u64(&o, PK_TYPE, &t);
        if ((s = frame_dup_str(&o, PK_STAGE)))
            snprintf(st->stage, sizeof st->stage, "%s", s), free(s);
        if ((s = frame_dup_str(&o, PK_INSTANCE)))
            snprintf(st->inst, sizeof st->inst, "%s", s), free(s);
        if ((s = frame_dup_str(&o, PK_STATE)))
            snprintf(st->state, sizeof st->state, "%s", s), free(s);
        frame_get_u64(&o, PK_UPTIME, &st->up_ms);
        const msgpack_object *stats = frame_get(&o, PK_STATS);
        if (stats && stats->type == MSGPACK_OBJECT_MAP) {
            frame_get_u64(stats, "n", &st->n);
            frame_get_u64(stats, "ups", &st->ups);
            frame_get_u64(stats, "downs", &st->downs);
        }
        r = t == PT_STATUS_REPLY ? 0 : -1;
    }
    client_close(&cl);
    return r;
}

/* wait_ups polls path's status until ups >= want; returns the last ups seen. */
static uint64_t wait_ups(const char *path, uint64_t want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    status_t st = {0};
    while (now_ms() < deadline) {
        if (get_status(path, &st) == 0 && st.ups >= want) break;
        poll(NULL, 0, 20);
    }
    return st.ups;
}

/* fill_sun puts path into a Unix socket address (truncating an overlong path). */
static void fill_sun(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof sa->sun_path) n = sizeof sa->sun_path - 1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n);
}

/* raw_connect opens a plain stream to path. */
static int raw_connect(const char *path)
{
    struct sockaddr_un sa;
    fill_sun(&sa, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* read_all reads until EOF (or timeout) into buf; returns bytes read, -1 on timeout. */
static ssize_t read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t len = 0;
    for (;;) {
        int left = (int)(deadline - now_ms());
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, left) != 1) return -1;
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            buf[len] = 0;
            return (ssize_t)len;
        }
        len += (size_t)n;
    }
}

/* run_capture runs daemon_main in a child with stdout and stderr captured (together); returns
 * the exit status. */
static int run_capture(const daemon_ops_t *ops, const char *const *argv, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int argc = 0;
        while (argv[argc])
            argc++;
        close(p[0]);
        dup2(p[1], 1);
        dup2(p[1], 2);
        memset(&g_ctx, 0, sizeof g_ctx);
        int rc = daemon_main(argc, (char **)argv, ops, &g_ctx);
        fflush(stdout);
        exit(rc);
    }
    close(p[1]);
    ssize_t n = read_all(p[0], out, cap, 5000);
    if (n < 0) out[0] = 0;
    close(p[0]);
    return wait_exit(pid, 5000);
}

/* test_cli: --help, --version, bad usage. */
static void test_cli(void)
{
    char out[8192];
    const char *help[] = {"test-echo", "--help", NULL};
    CHECK_INT(run_capture(&echo_ops, help, out, sizeof out), 0);
    CHECK(strstr(out, "--data-dir") != NULL);
    CHECK(strstr(out, "--fsync") != NULL);
    CHECK(strstr(out, "--drain-ms N") != NULL);
    CHECK(strstr(out, "echoes frames") != NULL);
    CHECK_INT(run_capture(&peer_ops, help, out, sizeof out), 0);
    CHECK(strstr(out, "keeps no journal") != NULL); /* --fsync accepted, said to do nothing */

    const char *version[] = {"test-echo", "--version", NULL};
    CHECK_INT(run_capture(&echo_ops, version, out, sizeof out), 0);
    CHECK(strncmp(out, "hookline ", 9) == 0);

    const char *bad_opt[] = {"test-echo", "--no-such-flag", NULL};
    CHECK_INT(run_capture(&echo_ops, bad_opt, out, sizeof out), 2);
    const char *bad_inst[] = {"test-echo", "--instance", "a/b", NULL};
    CHECK_INT(run_capture(&echo_ops, bad_inst, out, sizeof out), 2);
    const char *bad_fsync[] = {"test-echo", "--fsync", "sometimes", NULL};
    CHECK_INT(run_capture(&echo_ops, bad_fsync, out, sizeof out), 2);
    const char *fsync_no_journal[] = {"test-peer", "--fsync", "off", "--help", NULL};
    CHECK_INT(run_capture(&peer_ops, fsync_no_journal, out, sizeof out), 0);
    const char *bad_fsync_no_journal[] = {"test-peer", "--fsync", "sometimes", NULL};
    CHECK_INT(run_capture(&peer_ops, bad_fsync_no_journal, out, sizeof out), 2);
    const char *bad_stage_opt[] = {"test-echo", "--drain-ms", "soon", NULL};
    CHECK_INT(run_capture(&echo_ops, bad_stage_opt, out, sizeof out), 2);
    const char *extra[] = {"test-echo", "stray", NULL};
    CHECK_INT(run_capture(&echo_ops, extra, out, sizeof out), 2);
}

/* test_options: the option table: defaults, every type, bounds, bad numbers, repeatable rows,
 * unknown flags, and --help printed from the same rows. */
static void test_options(void)
{
    char out[8192];
    char dir[300];
    snprintf(dir, sizeof dir, "%s-opts", g_data);

    /* --help lists every row with its argument name and default */
    const char *help[] = {"test-opts", "--help", NULL};
    CHECK_INT(run_capture(&opts_ops, help, out, sizeof out), 0);
    CHECK(strstr(out, "--count N") != NULL);
    CHECK(strstr(out, "a bounded whole number (default 3)") != NULL);
    CHECK(strstr(out, "--mode red|green|blue") != NULL);
    CHECK(strstr(out, "a choice (default green)") != NULL);
    CHECK(strstr(out, "--verbose ") != NULL);
    CHECK(strstr(out, "--tag T") != NULL);
    CHECK(strstr(out, "a repeatable option\n") != NULL); /* no default: none shown */
    CHECK(strstr(out, "--segment-bytes N") != NULL);     /* journal-only rows for a journal */
    CHECK(strstr(out, "journal sync policy (default batch)") != NULL);
    CHECK(strstr(out, "--log-level LEVEL") != NULL);
    CHECK(strstr(out, "--grace-ms N") != NULL);

    /* defaults from the rows */
    const char *none[] = {"test-opts", "--data-dir", dir, NULL};
    CHECK_INT(run_capture(&opts_ops, none, out, sizeof out), 0);
    CHECK(strstr(out, "count=3 ratio=0.5 bytes=4096 mode=1 verbose=0 drain=0 tags= fsync=1 "
                      "instance=0\n") != NULL);

    /* every type set, --name=value too, the repeatable row keeps each occurrence in order, the
     * last of a repeated scalar wins */
    const char *all[] = {"test-opts",    "--data-dir", dir,       "--count", "7",
                         "--ratio=0.25", "--bytes",    "1048576", "--mode",  "blue",
                         "--verbose",    "--tag",      "a",       "--tag",   "b",
                         "--drain-ms",   "-1",         "--count", "10",      "--fsync",
                         "off",          "--instance", "x_1",     NULL};
    CHECK_INT(run_capture(&opts_ops, all, out, sizeof out), 0);
    CHECK(strstr(out, "count=10 ratio=0.25 bytes=1048576 mode=2 verbose=1 drain=-1 tags=a,b "
                      "fsync=2 instance=x_1\n") != NULL);

    /* bounds and bad numbers: exit 2, the message names the flag and the value */
    static const struct {
        const char *flag, *val, *msg;
    } bad[] = {
        {"--count", "0", "test-opts: --count: want a whole number from 1 to 10, got '0'"},
        {"--count", "11", "test-opts: --count: want a whole number from 1 to 10, got '11'"},
        {"--count", "3.5", "test-opts: --count: want a whole number from 1 to 10, got '3.5'"},
        {"--count", "", "test-opts: --count: want a whole number from 1 to 10, got ''"},
        {"--count", "7x", "test-opts: --count: want a whole number from 1 to 10, got '7x'"},
        {"--count", "99999999999999999999", "got '99999999999999999999'"},
        {"--ratio", "1.5", "test-opts: --ratio: want a number from 0 to 1, got '1.5'"},
        {"--ratio", "nan", "test-opts: --ratio: want a number from 0 to 1, got 'nan'"},
        {"--bytes", "-1", "test-opts: --bytes: want a whole number from 1 to 1048576, got '-1'"},
        {"--mode", "purple", "test-opts: --mode: want one of red|green|blue, got 'purple'"},
        {"--tag", "", "test-opts: --tag: want a non-empty tag, at most 4 of them, got ''"},
        {"--grace-ms", "-5", "test-opts: --grace-ms: want a whole number from 0 to"},
        {"--segment-bytes", "100", "test-opts: --segment-bytes: want a whole number from 4096"},
        {"--instance", "a/b", "test-opts: --instance: want 1..32 of [A-Za-z0-9_-], got 'a/b'"},
        {"--notify-fd", "999", "test-opts: --notify-fd: want an open file descriptor, got '999'"},
        {"--log-level", "loud", "test-opts: --log-level: want one of debug|info|warn|error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"test-opts", "--data-dir", dir, bad[i].flag, bad[i].val, NULL};
        CHECK_INT(run_capture(&opts_ops, argv, out, sizeof out), 2);
        if (!strstr(out, bad[i].msg))
            fprintf(stderr, "  %s %s printed: %s", bad[i].flag, bad[i].val, out);
        CHECK(strstr(out, bad[i].msg) != NULL);
        CHECK(strstr(out, "count=") == NULL); /* never started */
    }
    /* a repeatable row's own limit */
    const char *five[] = {"test-opts", "--tag", "1", "--tag", "2", "--tag",
                          "3",         "--tag", "4", "--tag", "5", NULL};
    CHECK_INT(run_capture(&opts_ops, five, out, sizeof out), 2);
    CHECK(strstr(out, "--tag: want a non-empty tag, at most 4 of them, got '5'") != NULL);

    /* unknown flags, a missing value, a value given to a flag, a stray argument */
    const char *unknown[] = {"test-opts", "--no-such-flag", NULL};
    CHECK_INT(run_capture(&opts_ops, unknown, out, sizeof out), 2);
    CHECK(strstr(out, "test-opts: unknown option '--no-such-flag' (try --help)") != NULL);
    const char *missing[] = {"test-opts", "--count", NULL};
    CHECK_INT(run_capture(&opts_ops, missing, out, sizeof out), 2);
    CHECK(strstr(out, "test-opts: --count needs a value") != NULL);
    const char *flagval[] = {"test-opts", "--verbose=yes", NULL};
    CHECK_INT(run_capture(&opts_ops, flagval, out, sizeof out), 2);
    CHECK(strstr(out, "--verbose=yes") != NULL);
    const char *stray[] = {"test-opts", "--count", "2", "stray", NULL};
    CHECK_INT(run_capture(&opts_ops, stray, out, sizeof out), 2);
    CHECK(strstr(out, "unexpected argument 'stray'") != NULL);
    /* a journal-only row is unknown to a stage without a journal */
    const char *seg[] = {"test-peer", "--segment-bytes", "8192", NULL};
    CHECK_INT(run_capture(&peer_ops, seg, out, sizeof out), 2);
    CHECK(strstr(out, "unknown option '--segment-bytes'") != NULL);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

/* test_echo: status, echo, modes, bad peers, raw streams, a second instance, SIGTERM. */
static void test_echo(void)
{
    const char *args[] = {"--fsync", "off", NULL};
    pid_t pid = start(&echo_ops, args);
    CHECK(pid > 0);
    if (pid <= 0) return;
    const char *path = strdup(sock_path("echo.sock"));
    struct stat st;
    char rundir[300];
    snprintf(rundir, sizeof rundir, "%s/run", g_data);
    CHECK(stat(rundir, &st) == 0 && (st.st_mode & 07777) == 0700);
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);

    status_t s;
    CHECK_INT(get_status(path, &s), 0);
    CHECK_STR(s.stage, "echo");
    CHECK_STR(s.inst, "0");
    CHECK_STR(s.state, "running");
    CHECK_INT(s.n, 1);

    /* echo, and a pause holding back the frame queued behind it */
    client_t cl;
    char err[256];
    msgpack_object o;
    CHECK_INT(client_connect(&cl, path, 2000, err, sizeof err), 0);
    CHECK_STR(cl.peer_stage, "echo");
    CHECK_STR(cl.peer_instance, "0");
    CHECK_INT(send_frame(&cl, T_ECHO, "hello"), 0);
    CHECK_INT(client_recv(&cl, &o, 2000, err, sizeof err), 1);
    uint64_t t = 0;
    char *x;
    CHECK(frame_get_u64(&o, PK_TYPE, &t) == 0 && t == T_ECHO_REPLY);
    CHECK_STR(x = frame_dup_str(&o, "x"), "hello");
    free(x);
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        size_t mark;
        msgpack_sbuffer_init(&sb);
        frame_begin(&sb, &pk, &mark);
        msgpack_pack_map(&pk, 1);
        frame_pack_kv_u64(&pk, PK_TYPE, T_PAUSE);
        frame_end(&sb, mark);
        frame_begin(&sb, &pk, &mark);
        msgpack_pack_map(&pk, 2);
        frame_pack_kv_u64(&pk, PK_TYPE, T_ECHO);
        frame_pack_kv_str(&pk, "x", "after pause");
        frame_end(&sb, mark);
        int64_t t0 = now_ms();
        CHECK_INT(client_send(&cl, &sb), 0);
        msgpack_sbuffer_destroy(&sb);
        CHECK_INT(client_recv(&cl, &o, 2000, err, sizeof err), 1);
        CHECK(now_ms() - t0 >= 25); /* held back by the 30 ms pause */
        CHECK_STR(x = frame_dup_str(&o, "x"), "after pause");
        free(x);
    }
    CHECK_INT(client_recv(&cl, &o, 50, err, sizeof err), 0); /* nothing else: timeout */

    /* an oversized frame header closes only that connection */
    static const char huge[4] = {0x7f, (char)0xff, (char)0xff, (char)0xff};
    CHECK_INT(write(cl.fd, huge, 4), 4);
    CHECK_INT(client_recv(&cl, &o, 2000, err, sizeof err), -ECONNRESET);
    client_close(&cl);
    CHECK_INT(get_status(path, &s), 0);
    CHECK_STR(s.state, "running");

    /* a frame before hello, and a hello of another version, are refused */
    int fd = raw_connect(path);
    CHECK(fd >= 0);
    {
        client_t bad = {.fd = fd};
        frame_decoder_init(&bad.dec, 0);
        CHECK_INT(send_frame(&bad, T_ECHO, "early"), 0);
        CHECK_INT(client_recv(&bad, &o, 2000, err, sizeof err), 1); /* its hello */
        CHECK(frame_get_u64(&o, PK_TYPE, &t) == 0 && t == PT_HELLO);
        CHECK_INT(client_recv(&bad, &o, 2000, err, sizeof err), -ECONNRESET);
        client_close(&bad);
    }
    fd = raw_connect(path);
    CHECK(fd >= 0);
    {
        client_t bad = {.fd = fd};
        msgpack_sbuffer sb;
        msgpack_packer pk;
        size_t mark;
        frame_decoder_init(&bad.dec, 0);
        msgpack_sbuffer_init(&sb);
        frame_begin(&sb, &pk, &mark);
        msgpack_pack_map(&pk, 4);
        frame_pack_kv_u64(&pk, PK_TYPE, PT_HELLO);
        frame_pack_kv_u64(&pk, PK_VERSION, PROTO_VERSION + 1);
        frame_pack_kv_str(&pk, PK_STAGE, "future");
        frame_pack_kv_str(&pk, PK_INSTANCE, "0");
        frame_end(&sb, mark);
        CHECK_INT(client_send(&bad, &sb), 0);
        msgpack_sbuffer_destroy(&sb);
        CHECK_INT(client_recv(&bad, &o, 2000, err, sizeof err), 1);
        CHECK_INT(client_recv(&bad, &o, 2000, err, sizeof err), -ECONNRESET);
        client_close(&bad);
    }

    /* raw stream: every byte reaches on_raw, replies are flushed before the close at EOF */
    char buf[256];
    fd = raw_connect(path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "abc\n", 4), 4);
    shutdown(fd, SHUT_WR);
    CHECK_INT(read_all(fd, buf, sizeof buf, 2000), 8);
    CHECK_STR(buf, "ABC\nbye\n");
    close(fd);
    /* conn_hold keeps it open after EOF until the stage closes it */
    fd = raw_connect(path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "xH", 2), 2);
    shutdown(fd, SHUT_WR);
    CHECK_INT(read_all(fd, buf, sizeof buf, 2000), 7);
    CHECK_STR(buf, "XHlate\n");
    close(fd);

    /* a second daemon with the same instance refuses to start */
    int ready;
    pid_t dup = run_child(&echo_ops, NULL, &ready);
    CHECK(!wait_ready(ready, 5000));
    CHECK_INT(wait_exit(dup, 5000), 1);
    CHECK(stat(path, &st) == 0); /* and left the live socket alone */
    CHECK_INT(get_status(path, &s), 0);

    CHECK_INT(kill(pid, SIGTERM), 0);
    CHECK_INT(wait_exit(pid, 5000), 0);
    CHECK(stat(path, &st) < 0 && errno == ENOENT);
    free((void *)path);
}

/* hb_connect opens a framed connection to path as a peer that speaks heartbeats: its hello
 * says hb (how often, over 4, the daemon must send it something; 0: never). Checks the daemon's
 * hello advertises want_hb. Returns 0 with *cl. */
static int hb_connect(const char *path, uint64_t hb, uint64_t want_hb, client_t *cl)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_object o;
    size_t mark;
    char err[256];
    uint64_t t = 0, v = 0;
    int fd = raw_connect(path);
    if (fd < 0) return -1;
    memset(cl, 0, sizeof *cl);
    cl->fd = fd;
    frame_decoder_init(&cl->dec, 0);
    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, 5);
    frame_pack_kv_u64(&pk, PK_TYPE, PT_HELLO);
    frame_pack_kv_u64(&pk, PK_VERSION, PROTO_VERSION);
    frame_pack_kv_str(&pk, PK_STAGE, "hbtest");
    frame_pack_kv_str(&pk, PK_INSTANCE, "0");
    frame_pack_kv_u64(&pk, PK_HEARTBEAT, hb);
    frame_end(&sb, mark);
    int r = client_send(cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0 || client_recv(cl, &o, 2000, err, sizeof err) != 1 ||
        frame_get_u64(&o, PK_TYPE, &t) < 0 || t != PT_HELLO ||
        frame_get_u64(&o, PK_HEARTBEAT, &v) < 0 || v != want_hb) {
        client_close(cl);
        return -1;
    }
    return 0;
}

/* recv_skip_hb is client_recv that counts and skips HEARTBEAT frames. */
static int recv_skip_hb(client_t *cl, msgpack_object *o, int timeout_ms, int *nhb)
{
    char err[256];
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        int r = client_recv(cl, o, left > 0 ? left : 0, err, sizeof err);
        uint64_t t = 0;
        if (r != 1 || frame_get_u64(o, PK_TYPE, &t) < 0 || t != PT_HEARTBEAT) return r;
        if (nhb) (*nhb)++;
    }
}

/* echo_ok sends an ECHO of x on cl and checks the reply (skipping heartbeats). */
static int echo_ok(client_t *cl, const char *x)
{
    msgpack_object o;
    char *got;
    if (send_frame(cl, T_ECHO, x) < 0 || recv_skip_hb(cl, &o, 2000, NULL) != 1) return 0;
    int ok = (got = frame_dup_str(&o, "x")) && strcmp(got, x) == 0;
    free(got);
    return ok;
}

/* test_liveness: --peer-timeout-ms on one daemon, driven by hand-made peers: a silent peer is
 * closed after the timeout; one that sends heartbeats stays, and gets heartbeats as often as
 * its hello asked; hookctl-like peers (no hb) are never judged nor sent heartbeats; a
 * connection the stage paused is not judged; nor is anyone after the daemon's own loop was
 * blocked. Then two daemons: SIGSTOP of the peer drops it, SIGCONT brings it back. */
static void test_liveness(void)
{
    const char *args[] = {"--peer-timeout-ms", "300", NULL};
    pid_t pid = start(&echo_ops, args);
    CHECK(pid > 0);
    if (pid <= 0) return;
    char *path = strdup(sock_path("echo.sock"));
    client_t cl;
    msgpack_object o;
    char err[256];

    /* silent: closed after about 300 ms (a tick is 37 ms), not before */
    CHECK_INT(hb_connect(path, 0, 300, &cl), 0);
    int64_t t0 = now_ms();
    CHECK_INT(recv_skip_hb(&cl, &o, 3000, NULL), -ECONNRESET);
    int64_t took = now_ms() - t0;
    CHECK(took >= 280 && took < 1500);
    client_close(&cl);

    /* heartbeats every 50 ms keep it for 1 s; it sends us one at least every 100 / 4 ms (plus
     * a tick) while it has nothing else to say */
    CHECK_INT(hb_connect(path, 100, 300, &cl), 0);
    int nhb = 0;
    t0 = now_ms();
    while (now_ms() - t0 < 1000) {
        CHECK_INT(send_frame(&cl, PT_HEARTBEAT, NULL), 0);
        CHECK_INT(recv_skip_hb(&cl, &o, 50, &nhb), 0); /* nothing but heartbeats */
    }
    CHECK(nhb >= 15);
    CHECK(echo_ok(&cl, "still here"));
    client_close(&cl);

    /* a peer that does not speak heartbeats (hookctl) gets none and is never closed for it */
    CHECK_INT(client_connect(&cl, path, 2000, err, sizeof err), 0);
    CHECK_INT(client_recv(&cl, &o, 700, err, sizeof err), 0);
    CHECK(echo_ok(&cl, "ctl"));
    client_close(&cl);

    /* the stage paused reading for 700 ms: our silence meanwhile is not held against us */
    CHECK_INT(hb_connect(path, 0, 300, &cl), 0);
    CHECK_INT(send_frame(&cl, T_PAUSE, "700"), 0);
    CHECK_INT(recv_skip_hb(&cl, &o, 850, NULL), 0); /* not closed */
    CHECK(echo_ok(&cl, "after a long pause"));
    client_close(&cl);

    /* the daemon's own loop blocked for 800 ms: nobody is timed out on the late tick */
    CHECK_INT(hb_connect(path, 0, 300, &cl), 0);
    CHECK_INT(send_frame(&cl, T_BLOCK, "800"), 0);
    CHECK(echo_ok(&cl, "while blocked")); /* answered once the block is over */
    poll(NULL, 0, 50);
    CHECK(echo_ok(&cl, "after the block"));
    /* and silence after that is judged again */
    CHECK_INT(recv_skip_hb(&cl, &o, 3000, NULL), -ECONNRESET);
    client_close(&cl);

    /* two daemons: a stopped peer is dropped after the timeout and reconnected after SIGCONT */
    const char *conn_args[] = {"--instance",        "lv",  "--connect", "peer.sock",
                               "--peer-timeout-ms", "300", NULL};
    const char *peer_args[] = {"--peer-timeout-ms", "300", NULL};
    pid_t cpid = start(&conn_ops, conn_args);
    pid_t peer = start(&peer_ops, peer_args);
    CHECK(cpid > 0 && peer > 0);
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s", sock_path("conn.lv.sock"));
    CHECK_INT(wait_ups(cpath, 1, 5000), 1);
    /* both loops run: a second's worth of timeouts passes without a drop */
    poll(NULL, 0, 1000);
    status_t s;
    CHECK_INT(get_status(cpath, &s), 0);
    CHECK_INT(s.downs, 0);
    CHECK_INT(s.ups, 1);
    t0 = now_ms();
    CHECK_INT(kill(peer, SIGSTOP), 0);
    while (now_ms() - t0 < 3000 && (get_status(cpath, &s) < 0 || s.downs < 1))
        poll(NULL, 0, 20);
    CHECK_INT(s.downs, 1);
    took = now_ms() - t0;
    /* its last heartbeat came up to 300 / 4 ms plus a tick (37 ms) before the SIGSTOP */
    if (took < 150 || took >= 2000)
        fprintf(stderr, "  stopped peer dropped after %lld ms\n", (long long)took);
    CHECK(took >= 150 && took < 2000);
    CHECK_INT(kill(peer, SIGCONT), 0);
    CHECK_INT(wait_ups(cpath, 2, 5000), 2);
    kill(peer, SIGTERM);
    CHECK_INT(wait_exit(peer, 5000), 0);
    kill(cpid, SIGTERM);
    CHECK_INT(wait_exit(cpid, 5000), 0);

    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, 5000), 0);
    free(path);
}

/* test_stale_socket: a socket file nobody listens on is replaced. */
static void test_stale_socket(void)
{
    const char *path = sock_path("echo.sock");
    struct sockaddr_un sa;
    fill_sun(&sa, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(fd); /* bound, never listening: stale */
    pid_t pid = start(&echo_ops, NULL);
    CHECK(pid > 0);
    status_t s;
    CHECK_INT(get_status(sock_path("echo.sock"), &s), 0);
    if (pid > 0) {
        kill(pid, SIGTERM);
        CHECK_INT(wait_exit(pid, 5000), 0);
    }
}

/* test_connect: connect before the peer exists, reconnect after it restarts, drain paths. */
static void test_connect(void)
{
    const char *args[] = {"--instance", "a1", "--connect", "peer.sock", "--drain-ms", "20", NULL};
    pid_t pid = start(&conn_ops, args);
    CHECK(pid > 0);
    if (pid <= 0) return;
    char path[512];
    snprintf(path, sizeof path, "%s", sock_path("conn.a1.sock"));
    status_t s;
    CHECK_INT(get_status(path, &s), 0);
    CHECK_STR(s.stage, "conn");
    CHECK_STR(s.inst, "a1");
    CHECK_INT(s.ups, 0);

    const char *peer_args[] = {"--drain-ms", "0", NULL};
    pid_t peer = start(&peer_ops, peer_args);
    CHECK(peer > 0);
    CHECK_INT(wait_ups(path, 1, 5000), 1);

    /* the peer goes away and comes back: the connection is made again */
    kill(peer, SIGTERM);
    CHECK_INT(wait_exit(peer, 5000), 0);
    peer = start(&peer_ops, peer_args);
    CHECK(peer > 0);
    CHECK_INT(wait_ups(path, 2, 5000), 2);
    CHECK_INT(get_status(path, &s), 0);
    CHECK_INT(s.downs, 1);

    /* SIGKILLed peer leaves a stale socket; its successor takes over and is reconnected */
    kill(peer, SIGKILL);
    waitpid(peer, NULL, 0);
    peer = start(&peer_ops, peer_args);
    CHECK(peer > 0);
    CHECK_INT(wait_ups(path, 3, 5000), 3);

    /* a peer that ignores SIGTERM is stopped at the grace deadline */
    kill(peer, SIGKILL);
    waitpid(peer, NULL, 0);
    const char *stubborn[] = {"--drain-ms", "-1", "--grace-ms", "100", NULL};
    peer = start(&peer_ops, stubborn);
    CHECK(peer > 0);
    CHECK_INT(wait_ups(path, 4, 5000), 4);
    int64_t t0 = now_ms();
    kill(peer, SIGTERM);
    CHECK_INT(wait_exit(peer, 5000), 0);
    CHECK(now_ms() - t0 >= 90);

    /* the connecting stage drains through its own timer and exits clean */
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, 5000), 0);
    struct stat st;
    CHECK(stat(path, &st) < 0);
}

int main(void)
{
    char tmpl[] = "/tmp/hl-daemon-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_data, sizeof g_data, "%s/data", tmpl);
    unsetenv("HOOKLINE_DATA");
    test_cli();
    test_options();
    test_echo();
    test_stale_socket();
    test_connect();
    test_liveness();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    CHECK_INT(system(cmd), 0);
    return check_done("daemon");
}
