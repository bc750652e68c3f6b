/* sender.h - hook-sender's state: the jobs it is attempting, the failures waiting for the
 * scheduler's decision, and the delivery-log writes waiting for the next batch. */
#ifndef HL_SENDER_H
#define HL_SENDER_H

#include "domain/auth.h"
#include "domain/cfgwatch.h"
#include "domain/store.h"
#include "guard.h"
#include "http.h"
#include "util/daemon.h"
#include "util/tree.h"

/* A job's states; sender_fsm.c owns every transition (its header comment draws them). */
typedef enum {
    JOB_ATTEMPTING = 0, /* the POST is queued or running */
    JOB_TO_SCHEDULER,   /* failed or deferred: RETRY not yet sent (no scheduler connected) */
    JOB_AWAIT_DECISION, /* RETRY sent, waiting for RETRY_ACK */
    JOB_SETTLED,        /* the attempt's outcome is final: its record waits for a log batch */
    JOB_HELD,           /* deferred and held by the scheduler: finished after its batch */
    JOB_CHECKING,       /* a router's copy: its record in the delivery log is being read */
} job_state_t;

/* What the next delivery-log batch writes for a job, beyond a SETTLED job's outcome. */
enum {
    JOB_W_PENDING = 1,   /* the pending row of a first attempt running for a while (or deferred) */
    JOB_W_UNDECIDED = 2, /* a failed attempt no scheduler has taken: retrying, no next attempt */
    JOB_W_WAITING = 4,   /* a deferred first attempt the scheduler holds: retrying, at wait_next */
};

typedef struct sender sender_t;

/* A webhook's request parts shared by its jobs (sender_prep.c), for one configuration version. */
typedef struct sender_prep {
    RB_ENTRY(sender_prep) node;
    int refs;
    char *webhook_id, *project_id, *url;
    int enabled;
    auth_prep_t *auth; /* NULL when its headers cannot be built: err and err_rc say why */
    /* the static header lines as a libcurl list ending in http_header_tail(): every attempt's
     * own nodes end here (the engine never changes a caller's list) */
    struct curl_slist nodes[4];
    struct curl_slist *head;
    char err[256];
    int err_rc;
} sender_prep_t;

#define SENDER_ALSO_MAX 4 /* copies one running job answers for, beyond its own upstream */

typedef struct sender_job {
    sender_t *s;
    TAILQ_ENTRY(sender_job) all;        /* every job of this sender */
    TAILQ_ENTRY(sender_job) link;       /* in the scheduler wait list, or the awaiting one */
    TAILQ_ENTRY(sender_job) log_link;   /* in the delivery-log batch */
    TAILQ_ENTRY(sender_job) pend_link;  /* waiting to show as pending (sender_log_pending) */
    TAILQ_ENTRY(sender_job) check_link; /* waiting for its delivery-log read (sender_check.c) */
    struct sender_job *hnext;           /* in the dedupe index by (inv, attempt) */
    int indexed;
    int in_pend;
    job_state_t state;
    conn_t *up; /* router or scheduler that sent it; NULL once gone (no JOB_DONE then) */
    uint64_t up_seq, retry_seq;
    /* routers that sent a copy while this one ran: each gets JOB_DONE too (NULL once gone) */
    conn_t *also[SENDER_ALSO_MAX];
    uint64_t also_seq[SENDER_ALSO_MAX];
    int nalso;
    /* inv .. body live in the job's own arena (mem), copied once from the frame */
    char *inv, *webhook_id, *event_id, *event_type, *body;
    char *url;           /* the prepared webhook's (prep), or NULL */
    char *project_id;    /* the webhook's project (prep), for the delivery log */
    sender_prep_t *prep; /* a reference, or NULL when the webhook was gone */
    size_t body_len;
    int attempt;
    int64_t created_at, started_at, retry_after_ms;
    int deferred;      /* never started: handed to the scheduler to wait (not a failed attempt) */
    unsigned writes;   /* JOB_W_*: what the next log batch writes for it */
    int64_t wait_next; /* JOB_W_WAITING's next attempt time */
    int undecided_logged; /* its JOB_W_UNDECIDED row was written (or read back from the log) */
    int in_log_queue;
    /* the attempt's own header lines (text in hdr), as a list continuing with prep->head */
    const char *lines[AUTH_ATTEMPT_LINES];
    struct curl_slist hnodes[AUTH_ATTEMPT_LINES];
    char *hdr; /* the attempt's header text and masked JSON, inside mem */
    size_t hdr_cap;
    char *req_headers_own; /* rec.req_headers when malloc'd (read back from the log), or NULL */
    http_request_t req;
    delivery_t rec; /* the attempt's record, filled when it ends */
    char mem[];     /* the arena: inv, webhook id, event id, event type, body, header text */
} sender_job_t;

TAILQ_HEAD(sender_job_list, sender_job);

struct sender {
    daemon_t *d;
    cfgwatch_t *cfg;
    guard_t *guard;
    http_config_t http_cfg;
    int disable_on_410;     /* --disable-on-410: a 410 Gone disables the webhook, no retries */
    int64_t defer_after_ms; /* --defer-after-ms: queued this long behind its endpoint, a job
                               waits at the scheduler instead (0: never) */
    uv_timer_t defer_timer;
    http_t *http;
    conn_t *scheduler;
    uint64_t next_retry_seq;
    /* waiting: TO_SCHEDULER jobs; awaiting: AWAIT_DECISION ones in RETRY order (the answers
     * come in that order, so a RETRY_ACK finds its job first in the list) */
    struct sender_job_list jobs, waiting, awaiting, to_log, pend, checks;
    struct sender_check *check;     /* the delivery-log read under way on log_worker, or NULL */
    struct sender_dedupe *dedupe;   /* sender_dedupe.c */
    struct sender_prep_cache *prep; /* sender_prep.c */
    size_t njobs;
    uv_timer_t log_timer, pend_timer;
    int log_durable;  /* --fsync always|batch: each log commit waits for its WAL fsync */
    int log_delay_ms; /* --fsync batch: a batch collects this long before its commit */
    store_t *ckpt;    /* second connection: WAL checkpoints on a worker thread (NULL: SQLite's
                         automatic ones, inside our commits) */
    store_t *logdb;   /* third connection: the log's commits, on log_worker */
    struct worker *log_worker;
    struct sender_log_batch *log_batch; /* the commit under way on log_worker, or NULL */
    int log_closing;
    uv_work_t ckpt_work; /* one checkpoint at a time */
    int ckpt_running, ckpt_closing, ckpt_rc;
    char ckpt_err[256];
    struct {
        uint64_t jobs, succeeded, failed_attempts, gave_up, log_batches, disabled_410, deferred;
        uint64_t deduped; /* copies of a job answered without a second request */
    } stats;
};

/* sender_job_take starts one JOB frame from upstream c. */
void sender_job_take(sender_t *s, conn_t *c, const msgpack_object *f);
/* The lifecycle's transitions (sender_fsm.c); each says what happened to j. taken: a new job
 * (attempt 1 will show as pending); check: a router's copy waits for its log read; known_done /
 * known_undecided: the log says it is settled or held / failed with no scheduler's decision;
 * attempting: its POST is submitted; settled: its outcome is final (j->rec filled); failed: its
 * attempt failed (j->rec filled); defer: queued too long, handed to the scheduler unmade;
 * decided: the scheduler's answer; scheduler_up / scheduler_down(j): one connected / the one
 * j waited for went away; committed: its batch is durable. sender_fsm_final: its outcome is
 * final. */
void sender_fsm_taken(sender_t *s, sender_job_t *j);
void sender_fsm_check(sender_t *s, sender_job_t *j);
void sender_fsm_known_done(sender_t *s, sender_job_t *j);
void sender_fsm_known_undecided(sender_t *s, sender_job_t *j);
void sender_fsm_attempting(sender_t *s, sender_job_t *j);
void sender_fsm_settled(sender_t *s, sender_job_t *j);
void sender_fsm_failed(sender_t *s, sender_job_t *j);
void sender_fsm_defer(sender_t *s, sender_job_t *j);
void sender_fsm_decided(sender_t *s, sender_job_t *j, int failed, int64_t next);
void sender_fsm_scheduler_up(sender_t *s);
void sender_fsm_scheduler_down(sender_t *s, sender_job_t *j);
void sender_fsm_committed(sender_t *s, sender_job_t *j);
int sender_fsm_final(const sender_job_t *j);

/* sender_scheduler_up/down: (re)send the failures waiting for a decision. */
void sender_scheduler_up(sender_t *s, conn_t *c);
void sender_upstream_down(sender_t *s, conn_t *c);
/* sender_decision handles the scheduler's RETRY_ACK. */
void sender_decision(sender_t *s, const msgpack_object *f);
/* sender_log_init/flush/close: the batched delivery-log writer. A job's JOB_DONE goes upstream
 * only after its record is committed; with --fsync always or batch that commit is durable (WAL
 * fsynced) first. always: one commit per loop iteration; batch: a commit collects for
 * SENDER_LOG_BATCH_MS after its first record (group commit, one WAL fsync per batch); off: one
 * commit per loop iteration without fsync (a power loss can lose the last records). */
#define SENDER_LOG_BATCH_MS 10
void sender_log_init(sender_t *s);
void sender_log_queue(sender_t *s, sender_job_t *j);
/* sender_log_pending: a first attempt shows in the delivery log as pending only if it is still
 * running after SENDER_PENDING_AFTER_MS; most end sooner, and their one record is the outcome
 * (half the SQLite writes). A job leaves this list when its outcome is queued, or when it is
 * cancelled (sender_log_forget). */
#define SENDER_PENDING_AFTER_MS 100
void sender_log_pending(sender_t *s, sender_job_t *j);
void sender_log_forget(sender_t *s, sender_job_t *j);
void sender_log_flush(sender_t *s);
void sender_log_close(sender_t *s);
/* sender_check_copy: j, a router's copy (its upstream sent it again after a restart) found in no
 * memory here, waits in JOB_CHECKING while the delivery log is read on the log's worker: a
 * settled attempt or one the scheduler holds is answered JOB_DONE, an undecided failure goes to
 * the scheduler, anything else is started (sender_check.c). sender_check_close ends the reads at
 * shutdown. */
void sender_check_copy(sender_t *s, sender_job_t *j);
/* sender_job_start starts j's POST. */
void sender_job_start(sender_t *s, sender_job_t *j);
/* sender_job_record_base fills the identity and request part of j's record. */
void sender_job_record_base(sender_job_t *j);
/* sender_job_finish sends JOB_DONE (when upstream is still there) and frees the job. */
void sender_job_finish(sender_t *s, sender_job_t *j);
/* sender_defer_scan hands every job queued longer than --defer-after-ms behind its saturated
 * endpoint to the scheduler, so upstream windows (and every other endpoint) keep moving. */
void sender_defer_scan(sender_t *s);
/* Copies of jobs (sender_dedupe.c). sender_dedupe_add indexes a new job by (invocation,
 * attempt) and sender_dedupe_remove takes it out before it is freed; sender_dedupe_find
 * returns the indexed job of that attempt (a copy's upstream joins it), or NULL; sender_dedupe_done
 * remembers an attempt that finished here (its outcome durable) and sender_dedupe_recent says
 * whether one at or after attempt did; sender_dedupe_close frees. */
void sender_dedupe_add(sender_t *s, sender_job_t *j);
void sender_dedupe_remove(sender_t *s, sender_job_t *j);
sender_job_t *sender_dedupe_find(sender_t *s, const char *inv, int attempt);
void sender_dedupe_done(sender_t *s, const char *inv, int attempt);
int sender_dedupe_recent(sender_t *s, const char *inv, size_t len, int attempt);
/* sender_dedupe_forget: a redelivery starts the attempts again; none of them is done. */
void sender_dedupe_forget(sender_t *s, const char *inv, size_t len);
void sender_dedupe_close(sender_t *s);

/* sender_prep_get: webhook_id's prepared parts under the loaded configuration, a new reference
 * in *out (release with sender_prep_unref); -ENOENT with err when the webhook no longer exists.
 * A disabled webhook or one whose headers cannot be built is still returned (its project is
 * known): check p->enabled and p->auth. sender_prep_close frees the cache at shutdown. */
int sender_prep_get(sender_t *s, const char *webhook_id, sender_prep_t **out, char *err,
                    size_t errlen);
void sender_prep_unref(sender_prep_t *p);
void sender_prep_close(sender_t *s);

/* sender_free_all frees every job (shutdown, after http_close cancelled the running ones). */
void sender_free_all(sender_t *s);

#endif
