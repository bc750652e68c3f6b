/* daemon.h - the one skeleton every stage runs on: options, data dir, libuv loop, signals,
 * listening and connecting Unix sockets, readiness, status replies, graceful stop. A stage
 * fills daemon_ops_t and calls daemon_main(); it never copies this plumbing. Connections
 * (framing, handshake, batched writes) are in util/conn.h, included here. */
#ifndef HL_DAEMON_H
#define HL_DAEMON_H

#include "util/conn.h" /* conn_t and what stages call on a connection */

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum { FSYNC_ALWAYS = 0, FSYNC_BATCH, FSYNC_OFF } fsync_policy_t;

/* --- options ---
 *
 * A stage lists its command-line options as rows of a table (ended by DAEMON_OPTION_END); the
 * skeleton applies every row's default, parses argv into the stage's struct (the ctx given to
 * daemon_main) at each row's field offset, checks bounds, and prints --help from the same rows.
 * A bad value exits 2 with "PROGRAM: --NAME: want ..., got 'VALUE'"; so does an unknown flag. The
 * common options (--data-dir, --instance, ...) are rows of the same kind inside daemon.c. */

typedef enum {
    DAEMON_OPT_END = 0,
    DAEMON_OPT_INT,    /* int: a whole number in [lo, hi] */
    DAEMON_OPT_UINT,   /* unsigned */
    DAEMON_OPT_LONG,   /* long */
    DAEMON_OPT_INT64,  /* int64_t */
    DAEMON_OPT_SIZE,   /* size_t */
    DAEMON_OPT_DOUBLE, /* double: a finite number in [lo, hi] */
    DAEMON_OPT_STRING, /* const char *: points into argv (or at the row's default) */
    DAEMON_OPT_FLAG,   /* int: set to 1 when the flag is given; takes no value */
    DAEMON_OPT_CHOICE, /* int: index of the value in choices, "always|batch|off" */
    DAEMON_OPT_CALL,   /* set() takes the value, once per occurrence (repeatable options) */
} daemon_opt_type_t;

#define DAEMON_OPTF_JOURNAL 1u    /* row applies only to stages with has_journal */
#define DAEMON_OPTF_NO_JOURNAL 2u /* row applies only to stages without */

typedef struct daemon_option {
    const char *name; /* "window": the flag is --window */
    const char *arg;  /* "N" in --help; NULL for a flag (CHOICE shows its choices) */
    daemon_opt_type_t type;
    const char *def; /* default, parsed like a value before argv (shown in --help); NULL: none */
    double lo, hi;   /* bounds of numeric types, inclusive */
    const char *help;
    size_t offset;       /* of the field in the stage's struct (not used by CALL) */
    const char *choices; /* CHOICE: "a|b|c" */
    /* CALL: parse val for the stage's struct ctx; 0, or -EINVAL with err (why, naming val). */
    int (*set)(void *ctx, const char *val, char *err, size_t errlen);
    unsigned flags; /* DAEMON_OPTF_* */
} daemon_option_t;

/* DAEMON_OPTION_FIELD: offsetof(st, field), refused at compile time unless field has type
 * ctype, so a row cannot write an int into a size_t. */
#define DAEMON_OPTION_FIELD(st, field, ctype)                                                      \
    (offsetof(st, field) + 0 * sizeof(char[_Generic(((st *)0)->field, ctype : 1, default : -1)]))

#define DAEMON_OPTION_NUM_(kind, ctype, name_, arg_, def_, lo_, hi_, st, field, help_)             \
    {                                                                                              \
        .name = name_, .arg = arg_, .type = kind, .def = def_, .lo = lo_, .hi = hi_,               \
        .help = help_, .offset = DAEMON_OPTION_FIELD(st, field, ctype)                             \
    }
/* Rows: name, argument name, default (text), bounds, the stage's struct and field, help. */
#define DAEMON_OPTION_INT(name, arg, def, lo, hi, st, field, help)                                 \
    DAEMON_OPTION_NUM_(DAEMON_OPT_INT, int, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_UINT(name, arg, def, lo, hi, st, field, help)                                \
    DAEMON_OPTION_NUM_(DAEMON_OPT_UINT, unsigned, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_LONG(name, arg, def, lo, hi, st, field, help)                                \
    DAEMON_OPTION_NUM_(DAEMON_OPT_LONG, long, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_INT64(name, arg, def, lo, hi, st, field, help)                               \
    DAEMON_OPTION_NUM_(DAEMON_OPT_INT64, int64_t, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_SIZE(name, arg, def, lo, hi, st, field, help)                                \
    DAEMON_OPTION_NUM_(DAEMON_OPT_SIZE, size_t, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_DOUBLE(name, arg, def, lo, hi, st, field, help)                              \
    DAEMON_OPTION_NUM_(DAEMON_OPT_DOUBLE, double, name, arg, def, lo, hi, st, field, help)
#define DAEMON_OPTION_STRING(name_, arg_, def_, st, field, help_)                                  \
    {                                                                                              \
        .name = name_, .arg = arg_, .type = DAEMON_OPT_STRING, .def = def_, .help = help_,         \
        .offset = DAEMON_OPTION_FIELD(st, field, const char *)                                     \
    }
#define DAEMON_OPTION_FLAG(name_, st, field, help_)                                                \
    {                                                                                              \
        .name = name_, .type = DAEMON_OPT_FLAG, .help = help_,                                     \
        .offset = DAEMON_OPTION_FIELD(st, field, int)                                              \
    }
#define DAEMON_OPTION_CHOICE(name_, choices_, def_, st, field, help_)                              \
    {                                                                                              \
        .name = name_, .type = DAEMON_OPT_CHOICE, .choices = choices_, .def = def_, .help = help_, \
        .offset = DAEMON_OPTION_FIELD(st, field, int)                                              \
    }
#define DAEMON_OPTION_CALL(name_, arg_, def_, set_, help_)                                         \
    {                                                                                              \
        .name = name_, .arg = arg_, .type = DAEMON_OPT_CALL, .def = def_, .set = set_,             \
        .help = help_                                                                              \
    }
#define DAEMON_OPTION_END                                                                          \
    {                                                                                              \
        .name = NULL                                                                               \
    }

typedef struct daemon_ops {
    const char *program; /* "hook-router" */
    const char *stage;   /* "router": socket name and handshake stage */
    const char *summary; /* one line for --help */
    int multi_instance;  /* listen on run/<stage>.<instance>.sock, else run/<stage>.sock */
    int raw_input;       /* inbound streams whose first byte is not 0x00 go to on_raw */
    int has_journal;     /* accepts --fsync always|batch|off */
    const daemon_option_t *options; /* rows ended by DAEMON_OPTION_END; may be NULL */

    /* on_start runs once the data dir, store path and listening socket exist and before
     * readiness is reported. Returns 0, or a negative errno after logging why (exit 1). */
    int (*on_start)(daemon_t *d);
    /* A framed peer finished the handshake (inbound or outbound). */
    void (*on_peer_up)(daemon_t *d, conn_t *c);
    /* A frame other than hello/status arrived from a framed peer; t is its type (proto.h). */
    void (*on_frame)(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *frame);
    /* A framed peer or raw stream is gone; c is freed right after this returns. */
    void (*on_peer_down)(daemon_t *d, conn_t *c);
    /* Raw input bytes (producer protocol); called with n == 0 once at EOF. After EOF the
     * skeleton closes the stream once its queued output is written, unless the stage called
     * conn_hold(c) (replies still owed): then the stage calls conn_close when done. */
    void (*on_raw)(daemon_t *d, conn_t *c, const char *data, size_t n);
    /* SIGTERM/SIGINT: stop taking work, finish or hand back in-flight work, then call
     * daemon_stop(). If it has not by the grace deadline (--grace-ms, 5000) the skeleton stops. */
    void (*on_drain)(daemon_t *d);
    /* Pack the stage's figures as one msgpack map (for hookctl status). May be NULL. */
    void (*on_stats)(daemon_t *d, msgpack_packer *pk);
    /* Release stage state; called once after the loop stopped taking events, before exit. */
    void (*on_close)(daemon_t *d);
} daemon_ops_t;

/* daemon_option_long and daemon_option_double parse an option's value (the whole string,
 * decimal) within [lo, hi] into *out: the table's own number parsers, for DAEMON_OPT_CALL
 * setters. Return 0, or -EINVAL with err "want ..., got 'VAL'" (the skeleton prefixes the
 * program and option names). */
int daemon_option_long(const char *val, long long lo, long long hi, long long *out, char *err,
                       size_t errlen);
int daemon_option_double(const char *val, double lo, double hi, double *out, char *err,
                         size_t errlen);

/* daemon_main parses argv (common flags --data-dir, --instance, --fsync, --segment-bytes,
 * --notify-fd, --grace-ms, --log-level, --help, --version, plus the rows of ops->options into
 * ctx), sets up and runs the loop. Returns the process exit status: 0 after a clean stop, 1 on
 * runtime failure, 2 on usage (a message on stderr names the flag and the value). */
int daemon_main(int argc, char **argv, const daemon_ops_t *ops, void *ctx);

uv_loop_t *daemon_loop(daemon_t *d);
void *daemon_ctx(daemon_t *d);
const char *daemon_data_dir(daemon_t *d); /* as given, e.g. "./var" */
const char *daemon_run_dir(daemon_t *d);  /* DATA/run, mode 0700 */
const char *daemon_db_path(daemon_t *d);  /* DATA/hookline.db */
const char *daemon_instance(daemon_t *d);
fsync_policy_t daemon_fsync(daemon_t *d);
size_t daemon_segment_bytes(daemon_t *d); /* --segment-bytes, for stages with a journal */
int daemon_draining(daemon_t *d);
/* daemon_stop closes every handle; daemon_main then returns 0. Safe to call more than once. */
void daemon_stop(daemon_t *d);
/* daemon_stop_when_idle polls idle(d) every 5 ms (first at once) and calls daemon_stop when it
 * returns 1: the usual end of an on_drain that waits for in-flight work. The grace deadline
 * still applies. */
void daemon_stop_when_idle(daemon_t *d, int (*idle)(daemon_t *d));

/* daemon_connect keeps one outbound framed connection to every socket in the run dir whose
 * name matches the glob pattern ("router.*.sock", "scheduler.sock"), rescanning the directory
 * and retrying refused or dropped connections with backoff (50 ms doubling to 1 s), forever.
 * on_peer_up/on_peer_down report each connection. Returns 0 or a negative errno. */
int daemon_connect(daemon_t *d, const char *pattern);

#endif
