/* sender_check.c - a router's copy of a job that no memory here knows (its attempt was made
 * before this sender restarted, by the other sender, or long enough ago to be forgotten) is
 * checked against the delivery log before anything is sent: the log is where every sender's
 * outcomes meet. The reads run on the log's worker thread, in order with its commits, a batch
 * at a time. */
#include "sender.h"
#include "util/log.h"
#include "util/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What the record says the copy should do. */
typedef enum {
    CHECK_SEND,      /* no attempt of it is known to have been made: send it */
    CHECK_DONE,      /* settled, or held by the scheduler: answer JOB_DONE */
    CHECK_UNDECIDED, /* the attempt failed and no scheduler took it: hand it over */
} check_verdict_t;

/* One batch of reads. */
struct sender_check {
    worker_job_t job; /* first: the worker hands this pointer back */
    sender_t *s;
    sender_job_t **jobs; /* in JOB_CHECKING: nothing frees them until the batch is back */
    char **invs;         /* copies of their invocation ids, for the worker thread */
    delivery_t *rows;
    int *found; /* 1 row read, 0 none, < 0 a read error */
    size_t n;
};

static void sender_check_submit(sender_t *s);

/* sender_check_free frees a batch (not the jobs). */
static void sender_check_free(struct sender_check *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->invs[i]);
        if (b->found[i] > 0) store_delivery_free(&b->rows[i]);
    }
    free(b->jobs);
    free(b->invs);
    free(b->rows);
    free(b->found);
    free(b);
}

/* sender_check_run reads the records, on the worker thread. */
static void sender_check_run(worker_job_t *job)
{
    struct sender_check *b = (struct sender_check *)job;
    char err[256];
    for (size_t i = 0; i < b->n; i++) {
        if (!b->invs[i]) continue; /* out of memory copying it: sent, as if not found */
        int rc = store_delivery_get(b->s->logdb, b->invs[i], &b->rows[i], err, sizeof err);
        b->found[i] = rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
        if (rc < 0 && rc != -ENOENT)
            log_warn("delivery log: %s not read (%s); the copy is sent", b->invs[i], err);
    }
}

/* check_verdict reads record d (found > 0) against a copy of attempt `attempt`. */
static check_verdict_t check_verdict(int found, const delivery_t *d, int attempt)
{
    if (found <= 0) return CHECK_SEND;
    switch (d->status) {
    case DLV_SUCCEEDED:
    case DLV_FAILED:
        return CHECK_DONE; /* the invocation is over */
    case DLV_RETRYING:
        if (d->next_attempt_at > 0) return CHECK_DONE; /* the scheduler holds the next one */
        return d->attempts >= attempt ? CHECK_UNDECIDED : CHECK_SEND;
    default:
        return CHECK_SEND; /* pending: whoever made it died before its outcome was known */
    }
}

/* check_undecided hands a failed attempt read back from the log to the scheduler, with the
 * record it had (its response, its error) so the decision's record keeps them. */
static void check_undecided(sender_t *s, sender_job_t *j, delivery_t *d)
{
    free(j->req_headers_own); /* the ones sent then, not the ones prepared now */
    j->rec.req_headers = j->req_headers_own = d->req_headers;
    j->rec.resp_headers = d->resp_headers;
    j->rec.resp_body = d->resp_body;
    j->rec.error = d->error;
    d->req_headers = d->resp_headers = d->resp_body = d->error = NULL;
    j->rec.resp_status = d->resp_status;
    j->rec.resp_body_len = d->resp_body_len;
    j->rec.resp_truncated = d->resp_truncated;
    j->rec.duration_ms = d->duration_ms;
    sender_job_record_base(j);
    log_info("invocation %s attempt %d: failed before a restart (delivery log); handed to the "
             "scheduler, not sent again",
             j->inv, j->attempt);
    sender_fsm_known_undecided(s, j);
}

/* sender_check_done is back on the loop: each copy is answered, handed over or started. */
static void sender_check_done(worker_job_t *job)
{
    struct sender_check *b = (struct sender_check *)job;
    sender_t *s = b->s;
    s->check = NULL;
    for (size_t i = 0; i < b->n; i++) {
        sender_job_t *j = b->jobs[i];
        int gone = !j->up;
        for (int k = 0; k < j->nalso; k++)
            gone &= !j->also[k];
        if (gone || s->log_closing) { /* no one to answer: upstream hands it out again */
            j->up = NULL;
            j->nalso = 0;
            sender_job_finish(s, j);
            continue;
        }
        check_verdict_t v = check_verdict(b->found[i], &b->rows[i], j->attempt);
        if (v == CHECK_SEND) {
            sender_job_start(s, j);
            continue;
        }
        s->stats.deduped++;
        if (v == CHECK_DONE) {
            sender_fsm_known_done(s, j);
        } else {
            check_undecided(s, j, &b->rows[i]);
        }
    }
    sender_check_free(b);
    if (!TAILQ_EMPTY(&s->checks)) sender_check_submit(s);
}

/* sender_check_submit starts a batch of every copy waiting, unless one is under way. */
static void sender_check_submit(sender_t *s)
{
    if (s->check) return; /* its completion starts the next */
    size_t n = 0;
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->checks, check_link)
    n++;
    struct sender_check *b = calloc(1, sizeof *b);
    if (!b || !(b->jobs = calloc(n, sizeof *b->jobs)) || !(b->invs = calloc(n, sizeof *b->invs)) ||
        !(b->rows = calloc(n, sizeof *b->rows)) || !(b->found = calloc(n, sizeof *b->found))) {
        if (b) sender_check_free(b);
        log_warn("delivery log: out of memory checking %zu copies; they are sent", n);
        while ((j = TAILQ_FIRST(&s->checks))) {
            TAILQ_REMOVE(&s->checks, j, check_link);
            sender_job_start(s, j);
        }
        return;
    }
    b->s = s;
    b->job.run = sender_check_run;
    b->job.done = sender_check_done;
    while ((j = TAILQ_FIRST(&s->checks))) {
        TAILQ_REMOVE(&s->checks, j, check_link);
        b->jobs[b->n] = j;
        if (!(b->invs[b->n] = strdup(j->inv))) b->found[b->n] = -ENOMEM; /* read: nothing */
        b->n++;
    }
    s->check = b;
    worker_submit(s->log_worker, &b->job); /* inline once the worker is closed */
}

void sender_check_copy(sender_t *s, sender_job_t *j)
{
    sender_fsm_check(s, j);
    sender_check_submit(s);
}
