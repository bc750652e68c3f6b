/* sender_fsm.c - a job's lifecycle, in one place: every change of a job's state and of what the
 * next delivery-log batch writes for it. The other files do the work each state asks for (the
 * POST in sender_job.c, the batches in sender_log.c, the log reads in sender_check.c) and report
 * back here.
 *
 *   taken -> ATTEMPTING                  (a router's copy goes through CHECKING first)
 *   ATTEMPTING -> SETTLED                success, or a failure that ends the invocation now
 *   ATTEMPTING -> AWAIT_DECISION         failed, or deferred (queued too long): RETRY sent
 *              -> TO_SCHEDULER           the same with no scheduler connected (undecided row)
 *   TO_SCHEDULER -> AWAIT_DECISION       a scheduler connects
 *   AWAIT_DECISION -> SETTLED            RETRY_ACK of a failed attempt: retrying or failed
 *                  -> HELD               RETRY_ACK of a deferred one: the scheduler holds it
 *                  -> TO_SCHEDULER       the scheduler went away before answering
 *   SETTLED, HELD -> finished            once their batch committed (JOB_DONE upstream)
 *
 * Writes (sender_job_t.writes): PENDING shows a first attempt running for a while; UNDECIDED
 * records a failure no scheduler has taken (once per attempt); WAITING shows a deferred first
 * attempt as retrying; a SETTLED job's batch writes its outcome. */
#include "domain/job.h"
#include "domain/proto.h"
#include "sender.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <string.h>

/* fsm_send_retry hands a failed or deferred attempt to the connected scheduler. */
static void fsm_send_retry(sender_t *s, sender_job_t *j)
{
    j->state = JOB_AWAIT_DECISION;
    TAILQ_INSERT_TAIL(&s->awaiting, j, link);
    j->retry_seq = s->next_retry_seq++;
    job_msg_t m = {.seq = j->retry_seq,
                   .inv = job_str_of(j->inv),
                   .webhook_id = job_str_of(j->webhook_id),
                   .event_id = job_str_of(j->event_id),
                   .event_type = job_str_of(j->event_type),
                   .body = {j->body, j->body_len},
                   .attempt = j->attempt,
                   .created_at = j->created_at,
                   .retry_after_ms = j->retry_after_ms,
                   .deferred = j->deferred};
    job_pack(conn_frame_begin(s->scheduler), PT_RETRY, &m);
    conn_frame_end(s->scheduler);
}

/* fsm_undecided: a failed attempt waits for a scheduler; its record goes to the log now
 * (retrying, no next attempt), so that if this sender dies before a scheduler takes it, the
 * copy a router sends again is handed to the scheduler as the failure it was, not sent again. */
static void fsm_undecided(sender_t *s, sender_job_t *j)
{
    j->state = JOB_TO_SCHEDULER;
    TAILQ_INSERT_TAIL(&s->waiting, j, link);
    if (j->deferred || j->undecided_logged) return; /* not an attempt made; or written already */
    j->undecided_logged = 1;
    j->writes |= JOB_W_UNDECIDED;
    sender_log_queue(s, j);
}

void sender_fsm_taken(sender_t *s, sender_job_t *j)
{
    (void)s;
    if (j->attempt == 1) j->writes |= JOB_W_PENDING; /* shown once it runs for a while */
}

void sender_fsm_check(sender_t *s, sender_job_t *j)
{
    j->state = JOB_CHECKING;
    TAILQ_INSERT_TAIL(&s->checks, j, check_link);
}

void sender_fsm_known_done(sender_t *s, sender_job_t *j)
{
    sender_dedupe_done(s, j->inv, j->attempt);
    sender_job_finish(s, j);
}

void sender_fsm_known_undecided(sender_t *s, sender_job_t *j)
{
    j->writes &= ~JOB_W_PENDING; /* the log has its record already, */
    j->undecided_logged = 1;     /* and it says undecided */
    sender_fsm_failed(s, j);
}

void sender_fsm_attempting(sender_t *s, sender_job_t *j)
{
    j->state = JOB_ATTEMPTING;
    j->started_at = time_now_ms();
    if (j->writes & JOB_W_PENDING) sender_log_pending(s, j);
}

void sender_fsm_settled(sender_t *s, sender_job_t *j)
{
    j->state = JOB_SETTLED;
    j->writes &= ~JOB_W_PENDING; /* the outcome's upsert creates the row */
    sender_log_queue(s, j);
}

void sender_fsm_failed(sender_t *s, sender_job_t *j)
{
    if (s->scheduler)
        fsm_send_retry(s, j);
    else
        fsm_undecided(s, j);
}

void sender_fsm_defer(sender_t *s, sender_job_t *j)
{
    j->deferred = 1;
    j->retry_after_ms = s->defer_after_ms;
    if (j->in_pend) sender_log_queue(s, j); /* it waits at the scheduler: show pending */
    s->stats.deferred++;
    fsm_send_retry(s, j);
}

void sender_fsm_decided(sender_t *s, sender_job_t *j, int failed, int64_t next)
{
    TAILQ_REMOVE(&s->awaiting, j, link);
    if (j->deferred) { /* the scheduler holds it now: nothing happened worth a record */
        j->state = JOB_HELD;
        if (j->attempt == 1) {
            /* Attempt 1 shows as retrying from then on (a pending row would say a router's
             * attempt is in flight, and be repaired as lost once ingest no longer holds the
             * event); a later attempt's row already says retrying. */
            j->writes |= JOB_W_WAITING;
            j->wait_next = next;
            sender_log_queue(s, j); /* the batch finishes it */
        } else if (!j->in_log_queue) {
            sender_job_finish(s, j);
        } /* else the queued batch finishes it */
        return;
    }
    j->rec.status = failed ? DLV_FAILED : DLV_RETRYING;
    j->rec.next_attempt_at = failed ? 0 : next;
    if (failed) {
        s->stats.gave_up++;
        log_warn("invocation %s to webhook %s failed after %d attempts: %s", j->inv, j->webhook_id,
                 j->attempt, j->rec.error ? j->rec.error : "?");
    }
    sender_fsm_settled(s, j);
}

void sender_fsm_scheduler_up(sender_t *s)
{
    sender_job_t *j;
    while ((j = TAILQ_FIRST(&s->waiting))) {
        TAILQ_REMOVE(&s->waiting, j, link);
        fsm_send_retry(s, j);
    }
}

void sender_fsm_scheduler_down(sender_t *s, sender_job_t *j)
{
    if (j->state != JOB_AWAIT_DECISION) return;
    TAILQ_REMOVE(&s->awaiting, j, link);
    fsm_undecided(s, j); /* asked again once one is back */
}

void sender_fsm_committed(sender_t *s, sender_job_t *j)
{
    j->writes &= ~JOB_W_WAITING;
    sender_job_finish(s, j); /* settled: record or deferral */
}

int sender_fsm_final(const sender_job_t *j)
{
    return j->state == JOB_SETTLED;
}
