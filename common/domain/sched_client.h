/* sched_client.h - asking the scheduler (DATA/run/scheduler.sock) to redeliver an invocation:
 * the REDELIVER frame and its ack, shared by hookctl (redeliver, recover) and hook-api. A short
 * blocking exchange over util/client.h, bounded by the caller's timeout. */
#ifndef HL_SCHED_CLIENT_H
#define HL_SCHED_CLIENT_H

#include "domain/store.h"
#include "util/client.h"

#include <stddef.h>

/* sched_redeliver_send sends d (invocation, webhook, event id and type, request body, created
 * time) as one REDELIVER frame on cl and waits up to timeout_ms for its ack. Returns 0 when the
 * scheduler took it; -EPERM when it refused (err: "ID: the scheduler refused: why"); another
 * negative errno with err ("sending to the scheduler: ...", "no answer from the scheduler:
 * ..."; -ETIMEDOUT when none came in time). */
int sched_redeliver_send(client_t *cl, const delivery_t *d, int timeout_ms, char *err,
                         size_t errlen);
/* sched_redeliver connects to run_dir/scheduler.sock (connect and handshake bounded by
 * timeout_ms too), does sched_redeliver_send and closes. Returns as sched_redeliver_send, or
 * -ECONNREFUSED-like errors with err "cannot reach the scheduler: ...". */
int sched_redeliver(const char *run_dir, const delivery_t *d, int timeout_ms, char *err,
                    size_t errlen);

#endif
