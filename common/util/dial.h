/* dial.h - the skeleton's outbound side: keep one connection to every socket in the run dir
 * whose name matches a pattern, rescanning the directory and retrying with backoff. */
#ifndef HL_DIAL_H
#define HL_DIAL_H

#include "util/conn.h"

#include <uv.h>

typedef struct dial dial_t;

/* dial_init makes a dialler that connects through hub to sockets in run_dir, never to
 * self_path (our own socket; may be NULL). Strings are copied. Returns 0 or -ENOMEM. */
int dial_init(dial_t **dp, conn_hub_t *hub, uv_loop_t *loop, const char *run_dir,
              const char *self_path);
/* dial_add adds a file name glob ("router.*.sock", "scheduler.sock") and scans at once; every
 * match gets one connection, retried when refused or dropped (50 ms doubling to 1 s, back to
 * 50 ms after a connection that got through its handshake), forever. Returns 0, or -EINVAL for
 * a pattern with a '/', -ENOMEM (both logged). */
int dial_add(dial_t *dl, const char *pattern);
/* dial_stop stops dialling and closes the dialler's timer. Idempotent. */
void dial_stop(dial_t *dl);
/* dial_open: 1 while the dialler's timer is not yet through its close callback. */
int dial_open(dial_t *dl);
/* dial_free frees the dialler after dial_stop, once dial_open is 0 and every connection it made
 * is closed. NULL is fine. */
void dial_free(dial_t *dl);

#endif
