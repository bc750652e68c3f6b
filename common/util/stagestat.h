/* stagestat.h - ask every stage socket in DATA/run for its STATUS_REPLY: who is up, with what
 * figures (hookctl status, hook-api's /metrics and /readyz). Blocking, with a timeout per
 * socket: call it off an event loop. */
#ifndef HL_STAGESTAT_H
#define HL_STAGESTAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define STAGESTAT_NSTAGES 4
/* "ingest", "router", "sender", "scheduler": the order hookctl status shows them in. */
extern const char *const stagestat_stages[STAGESTAT_NSTAGES];

typedef struct stagestat_inst {
    int stage;         /* index into stagestat_stages */
    char sock[128];    /* the socket's file name in DATA/run */
    int up;            /* it answered within the timeout */
    char instance[64]; /* its name as it answers; when silent, as its socket's name says */
    char state[32];    /* "running", "draining", ... ("" when down) */
    uint64_t pid, uptime_ms;
    json_t *stats; /* its figures (a JSON object), NULL when down */
    char err[256]; /* why it is down */
} stagestat_inst_t;

typedef struct stagestat {
    stagestat_inst_t *inst; /* sorted by socket name */
    size_t n;
} stagestat_t;

/* stagestat_stage_of: the stage a socket file name belongs to ("router.0.sock": 1), or -1. */
int stagestat_stage_of(const char *sock_name);
/* stagestat_collect queries every stage socket in run_dir, each with timeout_ms for connect,
 * handshake and answer. A missing run_dir is no instance at all (0). Returns 0 and *out (caller
 * stagestat_free; down instances are listed with up 0), or a negative errno with err. */
int stagestat_collect(const char *run_dir, int timeout_ms, stagestat_t *out, char *err,
                      size_t errlen);
/* stagestat_up: how many instances of stage answered. */
size_t stagestat_up(const stagestat_t *st, int stage);
void stagestat_free(stagestat_t *st);

#endif
