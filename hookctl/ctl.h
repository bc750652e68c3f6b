/* ctl.h - hookctl's shared bits: the context every subcommand gets (data dir, paths), exit
 * codes, messages, the store, input files, option parsing and the subcommand entry points. */
#ifndef HL_CTL_H
#define HL_CTL_H

#include "domain/store.h"
#include "util/client.h"

#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

/* Exit status everywhere (contract): success, runtime failure, usage or bad input. */
enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

typedef struct ctl {
    const char *data_dir;   /* --data-dir, else $HOOKLINE_DATA, else ./var */
    char db_path[PATH_MAX]; /* DATA/hookline.db */
    char run_dir[PATH_MAX]; /* DATA/run */
    const char *cmd;        /* for messages: "import", "webhook add" */
} ctl_t;

/* A subcommand: argv[0] is its name, options follow in any order. Returns the exit status. */
typedef int (*ctl_cmd_fn)(ctl_t *ctl, int argc, char **argv);

/* ctl_error prints "hookctl: <cmd>: <message>" on stderr. */
void ctl_error(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ctl_usage_error prints the message and a hint to --help; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const ctl_t *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ctl_getopt is getopt_long without getopt's own messages: it returns the option's val, -1 at
 * the end (positional arguments are then argv[optind..]), or -2 after printing a usage error.
 * The first call for an argv resets getopt's state (pass first = 1). */
int ctl_getopt(const ctl_t *ctl, int argc, char **argv, const struct option *opts, int first);

/* ctl_store_required: 0 when DATA/hookline.db exists, else CTL_EXIT_FAIL after printing why.
 * Every command but import and webhook add refuses a missing store rather than make an empty
 * one (a typo in --data-dir would otherwise show an empty world). */
int ctl_store_required(const ctl_t *ctl);
/* ctl_store_open creates the data dir when missing and opens DATA/hookline.db. Returns 0, or
 * CTL_EXIT_FAIL after printing why. */
int ctl_store_open(ctl_t *ctl, store_t **sp);

/* ctl_input_open opens path for reading ("-" or NULL is stdin) and sets *name for messages.
 * Returns the FILE, or NULL after printing why. */
FILE *ctl_input_open(const ctl_t *ctl, const char *path, const char **name);
void ctl_input_close(FILE *f);

/* ctl_parse_long parses a whole decimal number in [min, max]. Returns 0 or -EINVAL. */
int ctl_parse_long(const char *s, long min, long max, long *out);
/* ctl_format_time: RFC 3339 text of unix ms, or "-" for 0. Returns buf (>= 40 bytes). */
const char *ctl_format_time(int64_t ms, char *buf, size_t n);
/* ctl_socket_path writes DATA/run/<name>. Returns 0, or -ENAMETOOLONG when it does not fit a
 * sockaddr_un. */
int ctl_socket_path(const ctl_t *ctl, const char *name, char *buf, size_t n);
/* ctl_line_is_blank: the line holds only spaces, tabs and carriage returns. */
int ctl_line_is_blank(const char *s, size_t n);

/* ctl_sched_connect connects to DATA/run/scheduler.sock; ctl_sched_redeliver asks it to send
 * record d again (REDELIVER) and waits for its answer. Both return 0, or CTL_EXIT_FAIL after
 * printing why. */
int ctl_sched_connect(ctl_t *ctl, client_t *cl);
int ctl_sched_redeliver(ctl_t *ctl, client_t *cl, const delivery_t *d);

/* --- subcommands (one file per group) --- */
int ctl_config_import(ctl_t *ctl, int argc, char **argv);
int ctl_config_export(ctl_t *ctl, int argc, char **argv);
int ctl_config_webhook(ctl_t *ctl, int argc, char **argv);
/* ctl_config_store_status prints why a single-webhook change failed (rc, err) and returns its
 * exit status: no such webhook 1, exists already or bad input 2, else 1. */
int ctl_config_store_status(const ctl_t *ctl, int rc, const char *id, const char *err);
/* webhook add and webhook update (ctl_webhook.c); argv[0] is "add" or "update". */
int ctl_webhook_add(ctl_t *ctl, int argc, char **argv);
int ctl_webhook_update(ctl_t *ctl, int argc, char **argv);
int ctl_publish_run(ctl_t *ctl, int argc, char **argv);
int ctl_render_run(ctl_t *ctl, int argc, char **argv);
int ctl_status_run(ctl_t *ctl, int argc, char **argv);
int ctl_deliveries_list(ctl_t *ctl, int argc, char **argv);
int ctl_deliveries_show(ctl_t *ctl, int argc, char **argv);
int ctl_deliveries_redeliver(ctl_t *ctl, int argc, char **argv);
int ctl_deliveries_prune(ctl_t *ctl, int argc, char **argv);
int ctl_recover_run(ctl_t *ctl, int argc, char **argv);
/* token create|list|revoke (ctl_token.c); argv[1] is the action. */
int ctl_token_run(ctl_t *ctl, int argc, char **argv);

#endif
