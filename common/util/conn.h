/* conn.h - one connection of a daemon: framing, the HELLO handshake, batched writes,
 * pause/resume, raw producer streams. The first half is what stages call; the second half
 * (conn_hub_*, conn_accept, conn_dial) is what the skeleton (daemon.c, dial.c) uses. */
#ifndef HL_CONN_H
#define HL_CONN_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct daemon daemon_t;
typedef struct conn conn_t;

/* --- what stages call --- */

/* conn_frame_begin starts a frame in c's output buffer and returns a packer for its map;
 * conn_frame_end closes it. Output is written in one uv_write per loop iteration (batched). */
msgpack_packer *conn_frame_begin(conn_t *c);
void conn_frame_end(conn_t *c);
/* conn_write_raw queues raw bytes (producer replies), batched the same way. */
void conn_write_raw(conn_t *c, const char *data, size_t n);
/* conn_close logs reason (when not NULL) and closes; on_peer_down follows. Idempotent. */
void conn_close(conn_t *c, const char *reason);
/* conn_hold keeps a raw stream open after EOF until the stage calls conn_close (which still
 * writes out queued output before closing). */
void conn_hold(conn_t *c);
/* conn_pause/conn_resume stop and restart reading (backpressure). */
void conn_pause(conn_t *c);
void conn_resume(conn_t *c);
size_t conn_out_pending(conn_t *c); /* bytes queued but not yet written */
int conn_is_outbound(conn_t *c);
int conn_is_raw(conn_t *c);
const char *conn_peer_stage(conn_t *c);    /* from the handshake; "" for raw streams */
const char *conn_peer_instance(conn_t *c); /* from the handshake */
const char *conn_name(conn_t *c);          /* for logs: "router.1", "producer#7" */
void *conn_data(conn_t *c);
void conn_set_data(conn_t *c, void *data);
daemon_t *conn_daemon(conn_t *c);

/* --- what the skeleton uses --- */

/* A daemon's set of connections, with what the connections need from their daemon. */
typedef struct conn_hub conn_hub_t;

typedef struct conn_hub_cfg {
    daemon_t *d; /* handed back to the callbacks and by conn_daemon */
    uv_loop_t *loop;
    const char *stage; /* our HELLO: stage and instance (kept as pointers, not copied) */
    const char *instance;
    int raw_input; /* inbound streams whose first byte is not 0x00 go to on_raw */
    /* Liveness: a peer that speaks heartbeats (its HELLO has hb) and sent nothing for this
     * long is closed (0: never); we advertise it in our HELLO so peers send heartbeats often
     * enough. Connections we stopped reading (conn_pause) are not judged. */
    uint64_t peer_timeout_ms;
    /* The callbacks, as in daemon_ops_t; on_frame also gets STATUS (the daemon answers it). */
    void (*on_up)(daemon_t *d, conn_t *c);
    void (*on_frame)(daemon_t *d, conn_t *c, uint64_t t, const msgpack_object *frame);
    void (*on_down)(daemon_t *d, conn_t *c);
    void (*on_raw)(daemon_t *d, conn_t *c, const char *data, size_t n);
} conn_hub_cfg_t;

/* conn_hub_init makes an empty hub (cfg is copied). Returns 0 or -ENOMEM. */
int conn_hub_init(conn_hub_t **hp, const conn_hub_cfg_t *cfg);
/* conn_hub_prepare runs before each poll: it dispatches input left buffered by a resume, then
 * writes every connection's batch with one uv_write. */
void conn_hub_prepare(conn_hub_t *h);
/* conn_hub_stop writes out what is queued and closes every connection without waiting for
 * graceful shutdowns; on_down follows from the close callbacks. Idempotent. */
void conn_hub_stop(conn_hub_t *h);
/* conn_hub_open: connections not yet through their close callback. */
size_t conn_hub_open(conn_hub_t *h);
/* conn_hub_free frees the hub once conn_hub_open is 0 (connections left then leak). */
void conn_hub_free(conn_hub_t *h);

/* conn_accept takes one inbound connection from server; its kind (framed or raw) is known at
 * its first byte. Returns 0 or a negative errno (logged). */
int conn_accept(conn_hub_t *h, uv_stream_t *server);
/* conn_dial starts an outbound connect to the Unix socket at path, named name in logs until
 * the handshake names the peer. closed(arg, was_up) is called from the connection's close
 * callback, whether the connect failed or the connection was up (was_up: 1 after a handshake);
 * it is not called when conn_dial fails. Returns 0 or -ENOMEM. */
int conn_dial(conn_hub_t *h, const char *path, const char *name,
              void (*closed)(void *arg, int was_up), void *arg);

#endif
