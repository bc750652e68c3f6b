/* proto.h - every frame type and key on hookline's internal sockets. Frames are msgpack maps
 * (util/frame.h); key "t" holds the type. The first frame each way is HELLO; a peer whose
 * version differs is closed with a logged reason. See docs/PROTOCOL.md. */
#ifndef HL_PROTO_H
#define HL_PROTO_H

#include "util/wire.h" /* PROTO_VERSION, PT_HELLO, PT_STATUS, PT_STATUS_REPLY, their keys */

enum proto_type {
    PT_EVENT = 2,      /* ingest -> router: seq, js (normalized event JSON) */
    PT_EVENT_ACK = 3,  /* router -> ingest: seq (every invocation of it is done) */
    PT_JOB = 4,        /* router|scheduler -> sender: seq, inv, wh, ev, et, att, body, ca */
    PT_JOB_DONE = 5,   /* sender -> router|scheduler: seq (attempt's outcome is durable) */
    PT_RETRY = 6,      /* sender -> scheduler: seq, inv, wh, ev, et, att (failed), body, ca, ra */
    PT_RETRY_ACK = 7,  /* scheduler -> sender: seq, st ("retrying"|"failed"), next (ms or 0) */
    PT_REDELIVER = 10, /* ctl -> scheduler: inv, wh, ev, et, body, ca */
    PT_REDELIVER_ACK = 11, /* scheduler -> ctl: ok (0|1), err */
};

/* keys (t, v, stage, inst, pid, state, up, stats come from util/wire.h) */
#define PK_SEQ "seq"        /* sender-side tag: echoed in the ack */
#define PK_EVENT_JSON "js"  /* normalized event, JSON text */
#define PK_INVOCATION "inv" /* invocation id */
#define PK_WEBHOOK "wh"     /* webhook id */
#define PK_EVENT_ID "ev"    /* event id */
#define PK_EVENT_TYPE "et"  /* event type string */
#define PK_ATTEMPT "att"    /* 1-based attempt number */
#define PK_BODY "body"      /* exact request body */
#define PK_CREATED "ca"     /* invocation creation time, unix ms */
#define PK_RETRY_AFTER "ra" /* server's Retry-After in ms, 0 when none */
#define PK_DEFERRED "def"   /* RETRY of an attempt never made: its endpoint was saturated */
/* EVENT and JOB: 1 when it may be a copy of one handed out before (sent again after a drop or a
 * restart); a sender may answer only such a JOB from the attempts it already finished. */
#define PK_COPY "cp"
/* EVENT and JOB: the configuration version the sending stage worked with; the receiving stage
 * reloads first when its own is older (causal configuration, cfgwatch_catch_up) */
#define PK_CFG_VERSION "cv"
#define PK_STATUS "st"
#define PK_NEXT "next" /* next attempt time, unix ms, 0 when none */
#define PK_OK "ok"
#define PK_ERROR "err"

#endif
