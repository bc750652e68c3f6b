/* redeliver.h - sending delivery records again through the scheduler, for hookctl redeliver and
 * recover and for hook-api's: the REDELIVER request with its ack, and the failed records of one
 * webhook since a time (what recover sends again). Blocking: hook-api calls it off its loop. */
#ifndef HL_REDELIVER_H
#define HL_REDELIVER_H

#include "domain/config.h"
#include "domain/store.h"
#include "util/client.h"

#include <stddef.h>
#include <stdint.h>

/* How long connect, handshake and each answer may take. */
#define REDELIVER_TIMEOUT_MS 5000

/* redeliver_connect connects to RUN_DIR/scheduler.sock. redeliver_ask asks the scheduler to
 * send record d again (same invocation id) and waits for its ack. Both return 0, or a negative
 * errno with err in words ("cannot reach the scheduler: ...", "<id>: the scheduler refused:
 * ..."; -EPERM for a refusal). */
int redeliver_connect(client_t *cl, const char *run_dir, char *err, size_t errlen);
int redeliver_ask(client_t *cl, const delivery_t *d, char *err, size_t errlen);

/* redeliver_webhook_ready: 0 when webhook id exists in cfg and is enabled (a redelivery to a
 * disabled one would only fail again), -ENOENT when unknown, -EPERM when disabled. */
int redeliver_webhook_ready(const config_t *cfg, const char *id);

/* The failed records to send again, copied out of the store's read (caller
 * redeliver_list_free). */
typedef struct redeliver_list {
    delivery_t *v;
    size_t n, cap;
} redeliver_list_t;

/* redeliver_failed_since fills l with every record of webhook_id that ended failed at or after
 * since (unix ms) and holds what a resend needs. Returns 0 or a negative errno with err. */
int redeliver_failed_since(store_t *s, const char *webhook_id, int64_t since, redeliver_list_t *l,
                           char *err, size_t errlen);
void redeliver_list_free(redeliver_list_t *l);

#endif
