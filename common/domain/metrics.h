/* metrics.h - hookline's Prometheus series (CONTRACT.md "Metrics", docs/OPERATIONS.md): a
 * snapshot of the stages' status replies and the store's durable counters, and its rendering in
 * the text exposition format. Collecting blocks (socket queries, one store read): hook-api runs
 * it on a worker thread. */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include "domain/store.h"
#include "util/stagestat.h"

#include <stddef.h>
#include <stdint.h>

/* One webhook's durable figures, summed from its rows of the counters table. */
typedef struct metrics_webhook {
    char *id;
    int64_t success, failure, failed_invocations;
    double duration_sum;                         /* seconds, over every attempt */
    int64_t buckets[STORE_DURATION_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
} metrics_webhook_t;

typedef struct metrics_snap {
    stagestat_t stages;
    int stages_ok;               /* the stage sockets could be listed */
    int store_ok;                /* the counters and the retry count were read */
    char store_err[256];         /* else why */
    metrics_webhook_t *webhooks; /* sorted by id */
    size_t nwebhooks;
    int64_t retries_pending;
} metrics_snap_t;

/* metrics_collect fills m: every stage socket of run_dir asked with timeout_ms, then the
 * counters (one query) and the retrying records (one indexed count) read from s (NULL: not
 * read). A part that fails is marked (stages_ok, store_ok) and the rest still filled. Caller
 * metrics_free. */
void metrics_collect(metrics_snap_t *m, store_t *s, const char *run_dir, int timeout_ms);
/* metrics_add_counter folds one counters row into m (what metrics_collect does per row; for
 * tests). Returns 0 or -ENOMEM. */
int metrics_add_counter(metrics_snap_t *m, const store_counter_t *c);
/* metrics_render returns the exposition text (NUL-terminated, *len bytes; caller frees), NULL
 * when out of memory. */
char *metrics_render(const metrics_snap_t *m, size_t *len);
void metrics_free(metrics_snap_t *m);

#endif
