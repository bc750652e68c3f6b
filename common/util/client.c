/* client.c - blocking framed client for hookctl and tests: one AF_UNIX stream, poll() with
 * deadlines, the hello handshake as stage "ctl", a frame decoder for the replies. */
#include "util/client.h"
#include "util/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_STAGE "ctl"
#define CLIENT_INSTANCE "hookctl"

/* client_now_ms: monotonic milliseconds, for deadlines. */
static int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* client_left_ms: what remains of a deadline as a poll() timeout (-1 = no deadline). */
static int client_left_ms(int64_t deadline)
{
    if (deadline < 0) return -1;
    int64_t left = deadline - client_now_ms();
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* client_hello checks the peer's hello frame and records who it is. */
static int client_hello(client_t *cl, const msgpack_object *o, char *err, size_t errlen)
{
    uint64_t t = 0, v = 0;
    const char *s;
    size_t n;
    if (frame_get_u64(o, PK_TYPE, &t) < 0 || t != PT_HELLO) {
        snprintf(err, errlen, "peer did not start with hello");
        return -EPROTO;
    }
    if (frame_get_u64(o, PK_VERSION, &v) < 0 || v != PROTO_VERSION) {
        snprintf(err, errlen, "peer speaks protocol version %" PRIu64 ", want %d", v,
                 PROTO_VERSION);
        return -EPROTO;
    }
    cl->peer_stage[0] = cl->peer_instance[0] = 0;
    if (frame_get_str(o, PK_STAGE, &s, &n) == 0 && n < sizeof cl->peer_stage) {
        memcpy(cl->peer_stage, s, n);
        cl->peer_stage[n] = 0;
    }
    if (frame_get_str(o, PK_INSTANCE, &s, &n) == 0 && n < sizeof cl->peer_instance) {
        memcpy(cl->peer_instance, s, n);
        cl->peer_instance[n] = 0;
    }
    return 0;
}

int client_connect(client_t *cl, const char *path, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memset(cl, 0, sizeof *cl);
    cl->fd = -1;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    /* A Unix connect only blocks while the listen backlog is full; SO_SNDTIMEO bounds that. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (timeout_ms > 0) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int64_t deadline = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
        snprintf(err, errlen, "connect %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        snprintf(err, errlen, "fcntl: %s", strerror(e));
        close(fd);
        return -e;
    }
    cl->fd = fd;
    frame_decoder_init(&cl->dec, FRAME_MAX_DEFAULT);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t mark;
    msgpack_sbuffer_init(&sb);
    frame_begin(&sb, &pk, &mark);
    msgpack_pack_map(&pk, 5);
    frame_pack_kv_u64(&pk, PK_TYPE, PT_HELLO);
    frame_pack_kv_u64(&pk, PK_VERSION, PROTO_VERSION);
    frame_pack_kv_str(&pk, PK_STAGE, CLIENT_STAGE);
    frame_pack_kv_str(&pk, PK_INSTANCE, CLIENT_INSTANCE);
    frame_pack_kv_i64(&pk, PK_PID, (int64_t)getpid());
    frame_end(&sb, mark);
    int r = client_send(cl, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        snprintf(err, errlen, "sending hello to %s: %s", path, strerror(-r));
    } else {
        msgpack_object o;
        r = client_recv(cl, &o, client_left_ms(deadline), err, errlen);
        if (r == 0) {
            snprintf(err, errlen, "no hello from %s within %d ms", path, timeout_ms);
            r = -ETIMEDOUT;
        } else if (r > 0) {
            r = client_hello(cl, &o, err, errlen);
        }
    }
    if (r < 0) {
        client_close(cl);
        return r;
    }
    return 0;
}

int client_send(client_t *cl, const msgpack_sbuffer *sb)
{
    size_t off = 0;
    if (cl->fd < 0) return -EBADF;
    while (off < sb->size) {
        ssize_t n = send(cl->fd, sb->data + off, sb->size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        struct pollfd p = {.fd = cl->fd, .events = POLLOUT};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) return -errno;
    }
    return 0;
}

int client_recv(client_t *cl, msgpack_object *out, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
    if (cl->fd < 0) {
        snprintf(err, errlen, "not connected");
        return -EBADF;
    }
    for (;;) {
        int r = frame_decoder_next(&cl->dec, out, err, errlen);
        if (r != 0) return r;
        struct pollfd p = {.fd = cl->fd, .events = POLLIN};
        r = poll(&p, 1, client_left_ms(deadline));
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            snprintf(err, errlen, "poll: %s", strerror(e));
            return -e;
        }
        if (r == 0) return 0;
        char buf[65536];
        ssize_t n = recv(cl->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            int e = errno;
            snprintf(err, errlen, "read: %s", strerror(e));
            return -e;
        }
        if (n == 0) {
            snprintf(err, errlen, "connection closed by %s",
                     cl->peer_stage[0] ? cl->peer_stage : "peer");
            return -ECONNRESET;
        }
        if (frame_decoder_feed(&cl->dec, buf, (size_t)n) < 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
}

void client_close(client_t *cl)
{
    if (cl->fd < 0) return;
    close(cl->fd);
    cl->fd = -1;
    frame_decoder_close(&cl->dec);
}
