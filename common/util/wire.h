/* wire.h - the generic part of the internal protocol that the skeleton itself speaks: the
 * HELLO handshake and STATUS request/reply. domain/proto.h includes this and adds the rest. */
#ifndef HL_WIRE_H
#define HL_WIRE_H

#define PROTO_VERSION 1

enum wire_type {
    PT_HELLO = 1,        /* both ways first: v, stage, inst, pid */
    PT_STATUS = 8,       /* ctl -> any: request */
    PT_STATUS_REPLY = 9, /* any -> ctl: stage, inst, pid, state, up, stats{} */
};

/* keys of the handshake and status frames */
#define PK_TYPE "t"
#define PK_VERSION "v"
#define PK_STAGE "stage"
#define PK_INSTANCE "inst"
#define PK_PID "pid"
#define PK_STATE "state" /* "running" | "draining" */
#define PK_UPTIME "up"   /* ms */
#define PK_STATS "stats"

#endif
