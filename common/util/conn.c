/* conn.c - one connection of a daemon: the pipe, sniffing framed from raw streams, the HELLO
 * handshake, frame decoding with pause/resume, batched writes, heartbeats with the peer
 * timeout, and the close sequence. */
#include "util/conn.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CONN_READ_BUF 65536
#define CONN_TICK_MIN_MS 10
#define CONN_TICK_MAX_MS 500

/* One uv_write in flight: owns the buffer swapped out of the connection. */
typedef struct conn_write {
    uv_write_t req;
    conn_t *conn;
    msgpack_sbuffer sb;
} conn_write_t;

struct conn {
    conn_hub_t *hub;
    uv_pipe_t pipe;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    conn_t *prev, *next;
    void (*closed)(void *arg, int was_up); /* outbound: conn_dial's callback */
    void *closed_arg;
    unsigned id;
    int outbound, connected, sniffed, raw, up, closing, paused, reading, eof, hold, broken;
    int redispatch;      /* resumed with frames still buffered: dispatch them before polling */
    int speaks_hb;       /* the peer's hello had hb: it sends heartbeats, so its silence means */
    uint64_t peer_hb_ms; /* its hb: send it something at least every peer_hb_ms / 4 */
    uint64_t last_rx, last_tx; /* loop time of the last bytes read, and handed to a write */
    int64_t peer_pid;
    frame_decoder_t dec;
    msgpack_sbuffer out;
    msgpack_packer pk;
    size_t mark, inflight;
    char peer_stage[32], peer_instance[64], name[128];
    void *data;
};

struct conn_hub {
    conn_hub_cfg_t cfg;
    conn_t *conns;
    size_t nconns;
    unsigned next_id;
    int stopping;
    uv_timer_t tick; /* heartbeats and the peer timeout */
    int tick_open;   /* initialized and not yet through its close callback */
    uint64_t tick_ms, last_tick;
    char rbuf[CONN_READ_BUF]; /* every read lands here; input is consumed before the next */
};

static void conn_shut(conn_t *c);
static void conn_start_read(conn_t *c);

static void conn_tick_arm(conn_hub_t *h, uint64_t interval_ms);

int conn_hub_init(conn_hub_t **hp, const conn_hub_cfg_t *cfg)
{
    conn_hub_t *h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    h->cfg = *cfg;
    uv_timer_init(h->cfg.loop, &h->tick);
    h->tick.data = h;
    h->tick_open = 1;
    if (h->cfg.peer_timeout_ms) conn_tick_arm(h, h->cfg.peer_timeout_ms);
    *hp = h;
    return 0;
}

size_t conn_hub_open(conn_hub_t *h)
{
    return h ? h->nconns + (size_t)h->tick_open : 0;
}

void conn_hub_free(conn_hub_t *h)
{
    free(h);
}

/* conn_new allocates a connection with its pipe handle and links it into h's list. */
static conn_t *conn_new(conn_hub_t *h, int outbound)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    int r = uv_pipe_init(h->cfg.loop, &c->pipe, 0);
    if (r < 0) {
        log_error("uv_pipe_init: %s", uv_strerror(r));
        free(c);
        return NULL;
    }
    c->hub = h;
    c->pipe.data = c;
    c->outbound = outbound;
    c->id = ++h->next_id;
    frame_decoder_init(&c->dec, FRAME_MAX_DEFAULT);
    msgpack_sbuffer_init(&c->out);
    msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
    snprintf(c->name, sizeof c->name, "conn#%u", c->id);
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    return c;
}

/* conn_is_quiet: peers whose comings and goings are logged at debug level only (hookctl). */
static int conn_is_quiet(conn_t *c)
{
    return strcmp(c->peer_stage, "ctl") == 0;
}

/* conn_on_close: the pipe is closed; tell the stage and the dialler, free. */
static void conn_on_close(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    conn_hub_t *h = c->hub;
    if (c->up || c->raw) {
        if (c->raw || conn_is_quiet(c))
            log_debug("%s: down", c->name);
        else
            log_info("%s: peer down", c->name);
        if (h->cfg.on_down) h->cfg.on_down(h->cfg.d, c);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->nconns--;
    if (c->closed) c->closed(c->closed_arg, c->up);
    frame_decoder_close(&c->dec);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
}

/* conn_close_handle starts closing the pipe handle once. */
static void conn_close_handle(conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe)) uv_close((uv_handle_t *)&c->pipe, conn_on_close);
}

/* conn_on_write: a batch left (or failed); drop its buffer. */
static void conn_on_write(uv_write_t *req, int status)
{
    conn_write_t *w = req->data;
    conn_t *c = w->conn;
    c->inflight -= w->sb.size;
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->broken) {
        c->broken = 1;
        if (c->closing) {
            log_debug("%s: write: %s", c->name, uv_strerror(status));
        } else {
            log_warn("%s: closing: write: %s", c->name, uv_strerror(status));
            conn_shut(c);
        }
    }
}

/* conn_flush hands c's queued output to one uv_write and gives c a fresh buffer. */
static void conn_flush(conn_t *c)
{
    if (!c->out.size || c->broken || !c->connected) return;
    conn_write_t *w = malloc(sizeof *w);
    if (!w) {
        log_warn("%s: closing: out of memory writing", c->name);
        c->broken = 1;
        conn_shut(c);
        return;
    }
    w->conn = c;
    w->sb = c->out;
    w->req.data = w;
    msgpack_sbuffer_init(&c->out); /* c->pk keeps pointing at c->out */
    uv_buf_t b = uv_buf_init(w->sb.data, (unsigned)w->sb.size);
    c->inflight += w->sb.size;
    c->last_tx = uv_now(c->hub->cfg.loop);
    int r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, conn_on_write);
    if (r < 0) {
        c->inflight -= w->sb.size;
        msgpack_sbuffer_destroy(&w->sb);
        free(w);
        c->broken = 1;
        if (!c->closing) log_warn("%s: closing: write: %s", c->name, uv_strerror(r));
        conn_shut(c);
    }
}

/* conn_on_shutdown: queued output is written; now close. */
static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    conn_close_handle(req->data);
}

/* conn_shut stops reading, writes out what is queued, then closes (once). */
static void conn_shut(conn_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
    conn_flush(c);
    if (c->connected && !c->broken && c->inflight > 0 && !c->hub->stopping) {
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->pipe, conn_on_shutdown) == 0) return;
    }
    conn_close_handle(c);
}

/* conn_fail logs why a connection is dropped (at warn) and closes it. */
static void conn_fail(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(conn_t *c, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    if (c->closing) return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    log_warn("%s: closing: %s", c->name, reason);
    conn_shut(c);
}

/* conn_send_hello queues our side of the handshake. */
static void conn_send_hello(conn_t *c)
{
    conn_hub_t *h = c->hub;
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 6);
    frame_pack_kv_u64(pk, PK_TYPE, PT_HELLO);
    frame_pack_kv_u64(pk, PK_VERSION, PROTO_VERSION);
    frame_pack_kv_str(pk, PK_STAGE, h->cfg.stage);
    frame_pack_kv_str(pk, PK_INSTANCE, h->cfg.instance);
    frame_pack_kv_i64(pk, PK_PID, (int64_t)getpid());
    frame_pack_kv_u64(pk, PK_HEARTBEAT, h->cfg.peer_timeout_ms);
    conn_frame_end(c);
}

/* conn_on_hello checks the peer's handshake and reports the peer up. */
static void conn_on_hello(conn_t *c, const msgpack_object *o)
{
    conn_hub_t *h = c->hub;
    uint64_t v;
    const char *s, *inst;
    size_t n, ninst;
    if (frame_get_u64(o, PK_VERSION, &v) < 0) {
        conn_fail(c, "hello without a protocol version");
        return;
    }
    if (v != PROTO_VERSION) {
        conn_fail(c, "protocol version %" PRIu64 ", want %d", v, PROTO_VERSION);
        return;
    }
    if (frame_get_str(o, PK_STAGE, &s, &n) < 0 || n == 0 || n >= sizeof c->peer_stage) {
        conn_fail(c, "hello without a valid stage name");
        return;
    }
    if (frame_get_str(o, PK_INSTANCE, &inst, &ninst) < 0 || ninst >= sizeof c->peer_instance) {
        conn_fail(c, "hello without a valid instance name");
        return;
    }
    int r = frame_get_u64(o, PK_HEARTBEAT, &c->peer_hb_ms);
    if (r == -EINVAL) {
        conn_fail(c, "hello with a heartbeat interval that is not a number");
        return;
    }
    c->speaks_hb = r == 0;
    if (frame_get_i64(o, PK_PID, &c->peer_pid) < 0) c->peer_pid = 0;
    memcpy(c->peer_stage, s, n);
    c->peer_stage[n] = 0;
    memcpy(c->peer_instance, inst, ninst);
    c->peer_instance[ninst] = 0;
    snprintf(c->name, sizeof c->name, "%s.%s", c->peer_stage, c->peer_instance);
    c->up = 1;
    c->last_rx = uv_now(h->cfg.loop);
    if (c->peer_hb_ms) conn_tick_arm(h, c->peer_hb_ms);
    if (conn_is_quiet(c))
        log_debug("%s: peer up", c->name);
    else
        log_info("%s: peer up (%s)", c->name, c->outbound ? "outbound" : "inbound");
    if (h->cfg.on_up) h->cfg.on_up(h->cfg.d, c);
}

/* conn_on_frame routes one decoded frame: the handshake here, the rest to on_frame. */
static void conn_on_frame(conn_t *c, const msgpack_object *o)
{
    conn_hub_t *h = c->hub;
    uint64_t t;
    if (frame_get_u64(o, PK_TYPE, &t) < 0) {
        conn_fail(c, "frame without a type");
        return;
    }
    if (!c->up) {
        if (t != PT_HELLO)
            conn_fail(c, "frame type %" PRIu64 " before hello", t);
        else
            conn_on_hello(c, o);
        return;
    }
    if (t == PT_HELLO)
        log_debug("%s: ignoring a second hello", c->name);
    else if (t == PT_HEARTBEAT)
        return; /* it did its job by arriving: last_rx moved when it was read */
    else if (h->cfg.on_frame)
        h->cfg.on_frame(h->cfg.d, c, t, o);
    else
        log_debug("%s: ignoring frame type %" PRIu64, c->name, t);
}

/* conn_dispatch hands every whole buffered frame on, until paused or closed. */
static void conn_dispatch(conn_t *c)
{
    while (!c->closing && !c->paused) {
        msgpack_object o;
        char err[256];
        int r = frame_decoder_next(&c->dec, &o, err, sizeof err);
        if (r == 0) return;
        if (r < 0) {
            conn_fail(c, "%s", err);
            return;
        }
        conn_on_frame(c, &o);
    }
}

/* conn_on_alloc lends the hub's read buffer (data is consumed before the next read). */
static void conn_on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    conn_t *c = handle->data;
    buf->base = c->hub->rbuf;
    buf->len = sizeof c->hub->rbuf;
}

/* conn_on_eof: the peer finished sending. */
static void conn_on_eof(conn_t *c)
{
    conn_hub_t *h = c->hub;
    c->eof = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
    if (!c->raw) {
        if (!c->sniffed)
            log_debug("%s: closed before sending anything", c->name);
        else
            log_debug("%s: closed by peer", c->name); /* "peer down" follows when it was up */
        conn_shut(c);
        return;
    }
    h->cfg.on_raw(h->cfg.d, c, NULL, 0);
    if (!c->hold) conn_shut(c); /* queued replies are still written before the close */
}

/* conn_on_read: sniff the stream kind on the first byte, then feed raw or framed input. */
static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    conn_hub_t *h = c->hub;
    if (c->closing || n == 0) return;
    if (n == UV_EOF) {
        conn_on_eof(c);
        return;
    }
    if (n < 0) {
        conn_fail(c, "read: %s", uv_strerror((int)n));
        return;
    }
    c->last_rx = uv_now(h->cfg.loop);
    if (!c->sniffed) {
        c->sniffed = 1;
        if (buf->base[0] == 0) {
            conn_send_hello(c);
        } else if (h->cfg.raw_input && h->cfg.on_raw) {
            c->raw = 1;
            snprintf(c->name, sizeof c->name, "producer#%u", c->id);
            log_debug("%s: raw stream", c->name);
        } else {
            conn_fail(c, "not a framed stream (first byte 0x%02x)", (unsigned char)buf->base[0]);
            return;
        }
    }
    if (c->raw) {
        h->cfg.on_raw(h->cfg.d, c, buf->base, (size_t)n);
        return;
    }
    if (frame_decoder_feed(&c->dec, buf->base, (size_t)n) < 0) {
        conn_fail(c, "out of memory buffering input");
        return;
    }
    conn_dispatch(c);
}

/* conn_start_read starts reading unless paused, closing, at EOF or not yet connected. */
static void conn_start_read(conn_t *c)
{
    if (c->reading || c->paused || c->closing || c->eof || !c->connected) return;
    int r = uv_read_start((uv_stream_t *)&c->pipe, conn_on_alloc, conn_on_read);
    if (r < 0) {
        conn_fail(c, "read: %s", uv_strerror(r));
        return;
    }
    c->reading = 1;
}

int conn_accept(conn_hub_t *h, uv_stream_t *server)
{
    conn_t *c = conn_new(h, 0);
    if (!c) return -ENOMEM;
    int r = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (r < 0) {
        conn_shut(c);
        return r;
    }
    c->connected = 1;
    conn_start_read(c);
    return 0;
}

/* conn_on_connect: an outbound connect finished; say hello, or close (the dialler retries). */
static void conn_on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status == UV_ECANCELED || c->closing) return;
    if (status < 0) {
        log_debug("%s: connect: %s", c->name, uv_strerror(status));
        conn_shut(c);
        return;
    }
    c->connected = 1;
    c->sniffed = 1;
    conn_send_hello(c);
    conn_start_read(c);
}

int conn_dial(conn_hub_t *h, const char *path, const char *name,
              void (*closed)(void *arg, int was_up), void *arg)
{
    conn_t *c = conn_new(h, 1);
    if (!c) return -ENOMEM;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->closed = closed;
    c->closed_arg = arg;
    c->connect_req.data = c;
    uv_pipe_connect(&c->connect_req, &c->pipe, path, conn_on_connect);
    return 0;
}

/* --- liveness ---
 *
 * Every stage says in its HELLO how long it waits for a silent peer (hb, --peer-timeout-ms).
 * Each side sends a HEARTBEAT whenever it has written nothing to a peer for a quarter of that
 * peer's hb, from its own timer, so a peer whose loop runs is never silent for long even when
 * its work is slow (HTTP requests in flight, a long SQLite write) or when it stopped reading us
 * (backpressure). Any bytes count as life, not only acks. A peer silent for our timeout is
 * closed at once, without waiting for our queued writes (a stopped peer never reads them), so
 * the stage's on_peer_down hands its unacknowledged work to others. Not judged: connections we
 * paused (their bytes wait unread), connections with bytes waiting in the socket (our loop was
 * late, not the peer), and every connection on a tick that comes late by more than a quarter of
 * the timeout (our own loop was blocked or the process stopped: its own silence, not theirs). */

/* conn_unread: bytes waiting in c's socket that we have not read yet (0 when unknown). */
static int conn_unread(conn_t *c)
{
    uv_os_fd_t fd;
    int n = 0;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 || ioctl(fd, FIONREAD, &n) < 0) return 0;
    return n;
}

/* conn_send_heartbeat queues a HEARTBEAT (written with the next batch). */
static void conn_send_heartbeat(conn_t *c)
{
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 1);
    frame_pack_kv_u64(pk, PK_TYPE, PT_HEARTBEAT);
    conn_frame_end(c);
}

/* conn_on_tick sends the heartbeats that are due and closes peers silent for too long. */
static void conn_on_tick(uv_timer_t *timer)
{
    conn_hub_t *h = timer->data;
    uint64_t now = uv_now(h->cfg.loop), timeout = h->cfg.peer_timeout_ms;
    uint64_t late = now - h->last_tick > h->tick_ms ? now - h->last_tick - h->tick_ms : 0;
    int blind = timeout && late > timeout / 4;
    h->last_tick = now;
    if (blind)
        log_warn("event loop ran %" PRIu64 " ms late: not timing out peers on this tick", late);
    for (conn_t *c = h->conns; c; c = c->next) {
        if (!c->up || c->closing || c->raw) continue;
        if (c->peer_hb_ms && now - c->last_tx >= c->peer_hb_ms / 4) conn_send_heartbeat(c);
        if (!timeout || !c->speaks_hb || c->paused) continue;
        if (blind) {
            c->last_rx = now; /* start counting again from here */
            continue;
        }
        if (now - c->last_rx < timeout) continue;
        if (conn_unread(c) > 0) {
            c->last_rx = now; /* it did send: we were slow to read */
            continue;
        }
        char pid[32] = "";
        if (c->peer_pid > 0) snprintf(pid, sizeof pid, " (pid %" PRId64 ")", c->peer_pid);
        log_warn("%s: closing: peer%s sent nothing, not even a heartbeat, for %" PRIu64
                 " ms (--peer-timeout-ms %" PRIu64 ")",
                 c->name, pid, now - c->last_rx, timeout);
        c->broken = 1; /* close now: its socket may never take what we still have queued */
        conn_shut(c);
    }
}

/* conn_tick_arm makes the tick run often enough for a timeout or heartbeat interval of ms: an
 * eighth of it, within [10 ms, 500 ms]. The tick only ever speeds up. */
static void conn_tick_arm(conn_hub_t *h, uint64_t ms)
{
    uint64_t every = ms / 8;
    if (every < CONN_TICK_MIN_MS) every = CONN_TICK_MIN_MS;
    if (every > CONN_TICK_MAX_MS) every = CONN_TICK_MAX_MS;
    if (h->stopping || (h->tick_ms && h->tick_ms <= every)) return;
    h->tick_ms = every;
    h->last_tick = uv_now(h->cfg.loop);
    uv_timer_start(&h->tick, conn_on_tick, every, every);
}

void conn_hub_prepare(conn_hub_t *h)
{
    for (conn_t *c = h->conns; c; c = c->next)
        if (c->redispatch && !c->closing) {
            c->redispatch = 0;
            conn_dispatch(c);
        }
    for (conn_t *c = h->conns; c; c = c->next)
        if (!c->closing && c->out.size) conn_flush(c);
}

/* conn_tick_closed: the tick timer lives inside the hub. */
static void conn_tick_closed(uv_handle_t *handle)
{
    conn_hub_t *h = handle->data;
    h->tick_open = 0;
}

void conn_hub_stop(conn_hub_t *h)
{
    if (h->stopping) return;
    h->stopping = 1;
    if (h->tick_open && !uv_is_closing((uv_handle_t *)&h->tick))
        uv_close((uv_handle_t *)&h->tick, conn_tick_closed);
    for (conn_t *c = h->conns; c; c = c->next)
        if (!c->closing) conn_flush(c); /* last frames go out before the close */
    for (conn_t *c = h->conns; c; c = c->next) {
        conn_shut(c);
        conn_close_handle(c); /* also those still waiting on a graceful shutdown */
    }
}

/* --- what stages call --- */

msgpack_packer *conn_frame_begin(conn_t *c)
{
    frame_begin(&c->out, &c->pk, &c->mark);
    return &c->pk;
}

void conn_frame_end(conn_t *c)
{
    frame_end(&c->out, c->mark);
}

void conn_write_raw(conn_t *c, const char *data, size_t n)
{
    msgpack_sbuffer_write(&c->out, data, n);
}

void conn_close(conn_t *c, const char *reason)
{
    if (c->closing) return;
    if (reason) {
        if (conn_is_quiet(c))
            log_debug("%s: closing: %s", c->name, reason);
        else
            log_info("%s: closing: %s", c->name, reason);
    }
    conn_shut(c);
}

void conn_hold(conn_t *c)
{
    c->hold = 1;
}

void conn_pause(conn_t *c)
{
    c->paused = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
}

void conn_resume(conn_t *c)
{
    if (!c->paused) return;
    c->paused = 0;
    if (c->closing) return;
    c->last_rx = uv_now(c->hub->cfg.loop); /* its silence while we did not read says nothing */
    conn_start_read(c);
    if (!c->raw) c->redispatch = 1; /* frames decoded while paused wait in the decoder */
}

size_t conn_out_pending(conn_t *c)
{
    return c->out.size + c->inflight;
}

int conn_is_outbound(conn_t *c)
{
    return c->outbound;
}

int conn_is_raw(conn_t *c)
{
    return c->raw;
}

const char *conn_peer_stage(conn_t *c)
{
    return c->peer_stage;
}

const char *conn_peer_instance(conn_t *c)
{
    return c->peer_instance;
}

const char *conn_name(conn_t *c)
{
    return c->name;
}

void *conn_data(conn_t *c)
{
    return c->data;
}

void conn_set_data(conn_t *c, void *data)
{
    c->data = data;
}

daemon_t *conn_daemon(conn_t *c)
{
    return c->hub->cfg.d;
}
