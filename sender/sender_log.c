/* sender_log.c - the delivery log writer: every record of one loop iteration in one SQLite
 * transaction; a job's JOB_DONE goes upstream only after its record is committed. */
#include "sender.h"
#include "util/log.h"

#include <stdlib.h>

#define LOG_RETRY_MS 100 /* after a failed commit (database busy past its timeout) */

/* sender_log_tick writes the batch. */
static void sender_log_tick(uv_timer_t *t)
{
    sender_log_flush(t->data);
}

void sender_log_init(sender_t *s)
{
    TAILQ_INIT(&s->to_log);
    uv_timer_init(daemon_loop(s->d), &s->log_timer);
    s->log_timer.data = s;
}

void sender_log_queue(sender_t *s, sender_job_t *j)
{
    if (j->log_attempt) j->state = JOB_TO_LOG;
    if (j->in_log_queue) return; /* the queued write picks up the new flags */
    j->in_log_queue = 1;
    TAILQ_INSERT_TAIL(&s->to_log, j, log_link);
    if (!uv_is_active((uv_handle_t *)&s->log_timer))
        uv_timer_start(&s->log_timer, sender_log_tick, 0, 0);
}

void sender_log_flush(sender_t *s)
{
    if (TAILQ_EMPTY(&s->to_log)) return;
    store_t *st = cfgwatch_store(s->cfg);
    char err[256];
    int rc = store_begin(st, err, sizeof err);
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->to_log, log_link)
    {
        if (rc < 0) break;
        if (j->log_pending)
            rc = store_delivery_pending(st, j->inv, j->webhook_id, j->event_id, j->event_type,
                                        j->created_at, err, sizeof err);
        if (rc == 0 && j->log_attempt) rc = store_delivery_record(st, &j->rec, err, sizeof err);
    }
    if (rc == 0) rc = store_commit(st, err, sizeof err);
    if (rc < 0) {
        store_rollback(st);
        log_warn("delivery log: batch not written (%s); trying again in %d ms", err, LOG_RETRY_MS);
        uv_timer_start(&s->log_timer, sender_log_tick, LOG_RETRY_MS, 0);
        return;
    }
    s->stats.log_batches++;
    while ((j = TAILQ_FIRST(&s->to_log))) {
        TAILQ_REMOVE(&s->to_log, j, log_link);
        j->in_log_queue = 0;
        j->log_pending = 0;
        if (j->log_attempt && j->state == JOB_TO_LOG) sender_job_finish(s, j);
    }
}

/* sender_log_closed: the timer lives inside sender_t. */
static void sender_log_closed(uv_handle_t *h)
{
    (void)h;
}

void sender_log_close(sender_t *s)
{
    sender_log_flush(s);
    uv_close((uv_handle_t *)&s->log_timer, sender_log_closed);
}
