/* client.h - blocking framed client for hookctl and tests: connect to a stage socket, do the
 * handshake, exchange frames. */
#ifndef HL_CLIENT_H
#define HL_CLIENT_H

#include "util/frame.h"
#include <msgpack.h>

typedef struct client {
    int fd;
    frame_decoder_t dec;
    char peer_stage[32], peer_instance[64];
} client_t;

/* client_connect connects to the Unix socket at path and exchanges hello frames as stage
 * "ctl". timeout_ms bounds connect and handshake. Returns 0 or a negative errno with err. */
int client_connect(client_t *cl, const char *path, int timeout_ms, char *err, size_t errlen);
/* client_send writes the frames in sb completely. Returns 0 or a negative errno. */
int client_send(client_t *cl, const msgpack_sbuffer *sb);
/* client_recv waits up to timeout_ms for the next frame. Returns 1 with *out, 0 on timeout, or a
 * negative errno (-ECONNRESET at EOF) with err. *out stays valid until the next call. */
int client_recv(client_t *cl, msgpack_object *out, int timeout_ms, char *err, size_t errlen);
void client_close(client_t *cl);

#endif
