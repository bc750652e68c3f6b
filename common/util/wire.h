/* wire.h - the generic part of the internal protocol that the skeleton itself speaks: the
 * HELLO handshake, HEARTBEAT, and STATUS request/reply. domain/proto.h includes this and adds
 * the rest. */
#ifndef HL_WIRE_H
#define HL_WIRE_H

/* 2: HELLO carries hb and stages exchange HEARTBEAT (1 had neither). */
#define PROTO_VERSION 2

enum wire_type {
    PT_HELLO = 1,        /* both ways first: v, stage, inst, pid, hb (stages only) */
    PT_STATUS = 8,       /* ctl -> any: request */
    PT_STATUS_REPLY = 9, /* any -> ctl: stage, inst, pid, state, up, stats{} */
    PT_HEARTBEAT = 12,   /* stage <-> stage, to a peer whose hello had hb > 0, when quiet */
};

/* keys of the handshake and status frames */
#define PK_TYPE "t"
#define PK_VERSION "v"
#define PK_STAGE "stage"
#define PK_INSTANCE "inst"
#define PK_PID "pid"
/* In HELLO: the sender speaks heartbeats and closes a peer silent for this many ms (0: never);
 * a peer told hb > 0 sends something at least every hb/4 ms. hookctl sends no hb. */
#define PK_HEARTBEAT "hb"
#define PK_STATE "state" /* "running" | "draining" */
#define PK_UPTIME "up"   /* ms */
#define PK_STATS "stats"

#endif
