/* sender_job.c - one attempt of one invocation: headers built at send time (credentials and
 * signature from the current configuration), the POST, the result turned into a delivery-log
 * record, and a failure handed to the scheduler for its decision. */
#include "domain/job.h"
#include "domain/payload.h"
#include "domain/proto.h"
#include "sender.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* job_free releases a job and everything it owns (the arena goes with it). */
static void job_free(sender_job_t *j)
{
    sender_prep_unref(j->prep);
    free(j->req_headers_own);
    free(j->rec.resp_headers);
    free(j->rec.resp_body);
    free(j->rec.error);
    free(j);
}

void sender_job_finish(sender_t *s, sender_job_t *j)
{
    if (sender_fsm_final(j) && !j->deferred) /* its outcome is durable now */
        sender_dedupe_done(s, j->inv, j->attempt);
    sender_dedupe_remove(s, j);
    for (int i = -1; i < j->nalso; i++) {
        conn_t *c = i < 0 ? j->up : j->also[i];
        if (!c) continue;
        msgpack_packer *pk = conn_frame_begin(c);
        msgpack_pack_map(pk, 2);
        frame_pack_kv_u64(pk, PK_TYPE, PT_JOB_DONE);
        frame_pack_kv_u64(pk, PK_SEQ, i < 0 ? j->up_seq : j->also_seq[i]);
        conn_frame_end(c);
    }
    TAILQ_REMOVE(&s->jobs, j, all);
    s->njobs--;
    job_free(j);
}

void sender_job_record_base(sender_job_t *j)
{
    delivery_t *r = &j->rec;
    r->invocation_id = j->inv;
    r->webhook_id = j->webhook_id;
    r->project_id = j->project_id;
    r->event_id = j->event_id;
    r->event_type = j->event_type;
    r->attempts = j->attempt;
    r->created_at = j->created_at;
    r->updated_at = time_now_ms();
    r->req_method = "POST";
    r->req_url = j->url;
    r->req_body = j->body;
}

/* job_fail_early ends an attempt that could not start (webhook gone, bad secret). */
static void job_fail_early(sender_t *s, sender_job_t *j, const char *why)
{
    sender_job_record_base(j);
    j->rec.status = DLV_FAILED;
    j->rec.error = strdup(why);
    log_warn("invocation %s: %s", j->inv, why);
    s->stats.gave_up++;
    sender_fsm_settled(s, j);
}

/* job_gone ends an invocation whose endpoint answered 410 Gone (--disable-on-410): the webhook
 * is disabled in the store and the invocation fails at once, without asking the scheduler. */
static void job_gone(sender_t *s, sender_job_t *j)
{
    char err[256], msg[400];
    int rc = store_webhook_set_enabled(cfgwatch_store(s->cfg), j->webhook_id, 0, err, sizeof err);
    if (rc == 0)
        snprintf(msg, sizeof msg, "410 Gone: webhook %s disabled", j->webhook_id);
    else
        snprintf(msg, sizeof msg, "410 Gone: webhook %s could not be disabled: %s", j->webhook_id,
                 err);
    free(j->rec.error);
    j->rec.error = strdup(msg);
    j->rec.status = DLV_FAILED;
    j->rec.next_attempt_at = 0;
    s->stats.gave_up++;
    s->stats.disabled_410 += rc == 0;
    log_warn("invocation %s attempt %d: %s", j->inv, j->attempt, msg);
    sender_fsm_settled(s, j);
}

/* job_retry_after reads a Retry-After header (seconds or HTTP date) as milliseconds. */
static int64_t job_retry_after(const http_result_t *res)
{
    if (res->status != 429 && res->status != 503) return 0;
    for (size_t i = 0; i < res->n_headers; i++) {
        if (strcasecmp(res->headers[i].name, "Retry-After") != 0) continue;
        const char *v = res->headers[i].value;
        char *end;
        long long secs = strtoll(v, &end, 10);
        if (end != v && *end == 0 && secs >= 0) /* clamped: a day is past any schedule */
            return (secs > 86400 ? 86400 : secs) * 1000;
        time_t t = curl_getdate(v, NULL);
        if (t > 0) {
            int64_t ms = (int64_t)t * 1000 - time_now_ms();
            return ms > 0 ? ms : 0;
        }
    }
    return 0;
}

/* job_headers_json renders response headers as a JSON object (repeated names joined by ", "). */
static char *job_headers_json(const http_result_t *res)
{
    json_t *o = json_object();
    for (size_t i = 0; i < res->n_headers; i++) {
        const char *name = res->headers[i].name, *value = res->headers[i].value;
        json_t *prev = json_object_get(o, name);
        if (prev) {
            size_t n = strlen(json_string_value(prev)) + strlen(value) + 3;
            char *joined = malloc(n);
            if (!joined) continue;
            snprintf(joined, n, "%s, %s", json_string_value(prev), value);
            json_object_set_new(o, name, json_string(joined));
            free(joined);
        } else {
            json_object_set_new(o, name, json_string(value));
        }
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* job_done is the HTTP engine's completion: record the result, decide the next step. */
static void job_done(http_request_t *req, const http_result_t *res)
{
    sender_job_t *j = req->data;
    sender_t *s = j->s;
    if (res->outcome == HTTP_OUTCOME_CANCELLED) {
        /* Shutting down: not an attempt that failed. Upstream hands it out again. */
        j->up = NULL;
        sender_log_forget(s, j);
        TAILQ_REMOVE(&s->jobs, j, all);
        s->njobs--;
        job_free(j);
        return;
    }
    sender_job_record_base(j);
    delivery_t *r = &j->rec;
    r->updated_at = time_now_ms();
    r->duration_ms = (int64_t)res->duration_ms;
    r->resp_status = (int)res->status;
    if (res->status) {
        r->resp_headers = job_headers_json(res);
        r->resp_body = malloc(res->body_len + 1);
        if (r->resp_body) {
            memcpy(r->resp_body, res->body, res->body_len);
            r->resp_body[res->body_len] = 0;
            r->resp_body_len = res->body_len;
        }
        r->resp_truncated = res->truncated;
    }
    if (res->outcome == HTTP_OUTCOME_SUCCESS) {
        r->status = DLV_SUCCEEDED;
        s->stats.succeeded++;
        sender_fsm_settled(s, j);
        return;
    }
    if (res->outcome == HTTP_OUTCOME_TRANSPORT) {
        r->error = strdup(res->error ? res->error : "transport error");
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP status %ld", res->status);
        r->error = strdup(msg);
    }
    s->stats.failed_attempts++;
    if (s->disable_on_410 && res->outcome == HTTP_OUTCOME_STATUS && res->status == 410) {
        job_gone(s, j);
        return;
    }
    j->retry_after_ms = job_retry_after(res);
    log_info("invocation %s attempt %d to webhook %s failed: %s", j->inv, j->attempt, j->webhook_id,
             r->error ? r->error : "?");
    sender_fsm_failed(s, j);
}

/* job_prepare builds the attempt's headers from the webhook's current configuration, into the
 * job's arena. */
static int job_prepare(sender_t *s, sender_job_t *j, char *err, size_t errlen)
{
    sender_prep_t *p = j->prep;
    if (!p) {
        snprintf(err, errlen, "webhook %s no longer exists", j->webhook_id);
        return -ENOENT;
    }
    j->project_id = p->project_id;
    if (!p->enabled) {
        snprintf(err, errlen, "webhook %s is disabled", j->webhook_id);
        return -EPERM;
    }
    if (!p->auth) {
        snprintf(err, errlen, "%s", p->err);
        return p->err_rc;
    }
    j->url = p->url;
    const char *masked = NULL;
    size_t n = 0;
    int rc = auth_prep_attempt(p->auth, j->inv, j->event_type, j->attempt, time_now_ms() / 1000,
                               j->body, j->body_len, j->hdr, j->hdr_cap, j->lines, &n, &masked);
    if (rc < 0) {
        snprintf(err, errlen, "webhook %s: building headers: %s", j->webhook_id, strerror(-rc));
        return rc;
    }
    /* the attempt's lines, then the webhook's static ones and the engine's Expect:/Accept: */
    for (size_t i = 0; i < n; i++) {
        j->hnodes[i].data = (char *)j->lines[i];
        j->hnodes[i].next = i + 1 < n ? &j->hnodes[i + 1] : p->head;
    }
    j->req.header_list = n ? &j->hnodes[0] : p->head;
    j->rec.req_headers = (char *)masked;
    return 0;
}

/* job_alloc makes a job whose arena holds m's strings and, when p is given, room for its
 * headers. Returns NULL when out of memory. */
static sender_job_t *job_alloc(const job_msg_t *m, sender_prep_t *p)
{
    size_t cap = p && p->auth ? auth_prep_attempt_cap(p->auth, m->inv.n, m->event_type.n) : 0;
    size_t need = m->inv.n + m->webhook_id.n + m->event_id.n + m->event_type.n + m->body.n + 5;
    sender_job_t *j = malloc(sizeof *j + need + cap);
    if (!j) return NULL;
    memset(j, 0, sizeof *j);
    char *o = j->mem;
    const job_str_t *src[] = {&m->inv, &m->webhook_id, &m->event_id, &m->event_type, &m->body};
    char **dst[] = {&j->inv, &j->webhook_id, &j->event_id, &j->event_type, &j->body};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        *dst[i] = o;
        memcpy(o, src[i]->p, src[i]->n);
        o += src[i]->n;
        *o++ = 0;
    }
    j->body_len = m->body.n;
    j->hdr = o;
    j->hdr_cap = cap;
    return j;
}

/* job_ids_ok: the identifiers carry no NUL (they are C strings from here on). */
static int job_ids_ok(const job_msg_t *m)
{
    const job_str_t *v[] = {&m->inv, &m->webhook_id, &m->event_id, &m->event_type};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (memchr(v[i]->p, 0, v[i]->n)) return 0;
    return 1;
}

void sender_job_take(sender_t *s, conn_t *c, const msgpack_object *f)
{
    job_msg_t m;
    char err[256], why[300];
    if (job_unpack(f, PT_JOB, &m, err, sizeof err) < 0) {
        snprintf(why, sizeof why, "malformed JOB frame: %s", err);
        conn_close(c, why);
        return;
    }
    uint64_t seq = m.seq;
    int64_t att = m.attempt;
    int copy = m.copy; /* a router's possible copy: memory and the delivery log may answer it */
    const char *inv = m.inv.p;
    size_t invlen = m.inv.n;
    if (!job_ids_ok(&m)) {
        conn_close(c, "malformed JOB frame: a NUL inside an identifier");
        return;
    }
    {
        char id[INVOCATION_ID_LEN];
        memcpy(id, inv, invlen);
        id[invlen] = 0;
        sender_job_t *twin = sender_dedupe_find(s, id, (int)att);
        if (c == s->scheduler) {
            /* The scheduler's are redeliveries, deferred attempts, or attempts it holds again
             * after a restart, and it alone knows which: one adopts only a twin whose request
             * runs (or waits to) and whose upstream is gone. Its attempt 1 (a redelivery) starts
             * the count again. */
            if (att == 1) sender_dedupe_forget(s, inv, invlen);
            if (twin && (twin->state != JOB_ATTEMPTING || twin->deferred || twin->up)) twin = NULL;
        } else if (!copy) {
            twin = NULL; /* a router's new event: always sent */
        } else if (twin && twin->up && twin->nalso == SENDER_ALSO_MAX) {
            twin = NULL; /* no room to remember one more upstream */
        }
        /* A router's copy (ingest or the router restarted and sent the event again) waits on a
         * twin in any state: running, queued, failed and waiting for the scheduler to take the
         * retry, or deferred to it. The twin's JOB_DONE means this attempt is settled or held
         * durably by the scheduler, which is all the copy's upstream needs to know. */
        int done_here = copy && c != s->scheduler && sender_dedupe_recent(s, inv, invlen, (int)att);
        if (twin || done_here) {
            s->stats.deduped++;
            if (twin && !twin->up) { /* it answers this upstream when it ends */
                twin->up = c;
                twin->up_seq = seq;
                return;
            }
            if (twin) { /* and this one as well */
                twin->also[twin->nalso] = c;
                twin->also_seq[twin->nalso++] = seq;
                return;
            }
            msgpack_packer *pk = conn_frame_begin(c);
            msgpack_pack_map(pk, 2);
            frame_pack_kv_u64(pk, PK_TYPE, PT_JOB_DONE);
            frame_pack_kv_u64(pk, PK_SEQ, seq);
            conn_frame_end(c);
            return;
        }
    }
    if (cfgwatch_catch_up(s->cfg, m.cfg_version) < 0) /* the store is unreadable: the loaded one */
        log_warn("invocation %.*s: configuration version %lld not loaded (store unreadable); "
                 "prepared with version %lld",
                 (int)invlen, inv, (long long)m.cfg_version, (long long)cfgwatch_version(s->cfg));
    char id[INVOCATION_ID_LEN > 256 ? INVOCATION_ID_LEN : 256];
    snprintf(id, sizeof id, "%.*s", (int)m.webhook_id.n, m.webhook_id.p);
    sender_prep_t *prep = NULL;
    int prc = sender_prep_get(s, id, &prep, err, sizeof err);
    sender_job_t *j = job_alloc(&m, prep);
    if (!j) { /* upstream hands it out again when we reconnect */
        sender_prep_unref(prep);
        conn_close(c, "out of memory taking a job");
        return;
    }
    j->prep = prep;
    j->s = s;
    j->up = c;
    j->up_seq = seq;
    j->attempt = (int)att;
    j->created_at = m.created_at ? m.created_at : time_now_ms();
    TAILQ_INSERT_TAIL(&s->jobs, j, all);
    s->njobs++;
    s->stats.jobs++;
    sender_dedupe_add(s, j);
    sender_fsm_taken(s, j);
    int rc = prc == -ENOMEM ? prc : job_prepare(s, j, err, sizeof err);
    if (rc < 0) {
        job_fail_early(s, j, rc == -ENOMEM ? "out of memory" : err);
        return;
    }
    if (copy && c != s->scheduler) { /* sent before, maybe here before a restart */
        sender_check_copy(s, j);
        return;
    }
    sender_job_start(s, j);
}

void sender_job_start(sender_t *s, sender_job_t *j)
{
    char err[256];
    int rc;
    j->req.url = j->url;
    j->req.endpoint = j->url;
    j->req.body = j->body;
    j->req.body_len = j->body_len;
    j->req.done = job_done;
    j->req.data = j;
    sender_fsm_attempting(s, j);
    if ((rc = http_submit(s->http, &j->req)) < 0) {
        snprintf(err, sizeof err, "could not start the request: %s", strerror(-rc));
        job_fail_early(s, j, err);
    }
}

void sender_scheduler_up(sender_t *s, conn_t *c)
{
    s->scheduler = c;
    sender_fsm_scheduler_up(s);
}

void sender_upstream_down(sender_t *s, conn_t *c)
{
    sender_job_t *j, *next;
    int was_scheduler = s->scheduler == c;
    if (was_scheduler) s->scheduler = NULL;
    for (j = TAILQ_FIRST(&s->jobs); j; j = next) {
        next = TAILQ_NEXT(j, all);
        for (int i = 0; i < j->nalso; i++)
            if (j->also[i] == c) j->also[i] = NULL;
        if (j->up == c) { /* another router's copy waiting on it takes over */
            for (int i = 0; i < j->nalso && j->up == c; i++)
                if (j->also[i]) {
                    j->up = j->also[i];
                    j->up_seq = j->also_seq[i];
                    j->also[i] = NULL;
                }
        }
        /* Queued behind its endpoint, not started: upstream hands it out again (it re-queues
         * what this connection held), so sending it here too would only make a duplicate. */
        if (j->up == c && j->state == JOB_ATTEMPTING && http_unqueue(s->http, &j->req) == 0) {
            sender_log_forget(s, j);
            j->up = NULL;
            sender_job_finish(s, j);
            continue;
        }
        if (j->up == c) j->up = NULL;
        if (was_scheduler) sender_fsm_scheduler_down(s, j);
    }
}

void sender_decision(sender_t *s, const msgpack_object *f)
{
    uint64_t seq;
    const char *st;
    size_t stlen;
    int64_t next = 0;
    if (frame_get_u64(f, PK_SEQ, &seq) < 0 || frame_get_str(f, PK_STATUS, &st, &stlen) < 0) {
        log_warn("malformed RETRY_ACK from the scheduler ignored");
        return;
    }
    frame_get_i64(f, PK_NEXT, &next);
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->awaiting, link)
    if (j->retry_seq == seq) break;
    if (!j) return; /* a duplicate answer */
    sender_fsm_decided(s, j, stlen == 6 && memcmp(st, "failed", 6) == 0, next);
}

void sender_defer_scan(sender_t *s)
{
    if (!s->defer_after_ms || !s->scheduler) return; /* deferring needs somewhere to wait */
    int64_t now = time_now_ms();
    sender_job_t *j;
    TAILQ_FOREACH(j, &s->jobs, all)
    {
        if (j->state != JOB_ATTEMPTING || now - j->started_at < s->defer_after_ms) continue;
        if (http_unqueue(s->http, &j->req) < 0) continue; /* running: it ends by itself */
        sender_fsm_defer(s, j);
    }
}

void sender_free_all(sender_t *s)
{
    sender_job_t *j;
    while ((j = TAILQ_FIRST(&s->jobs))) {
        TAILQ_REMOVE(&s->jobs, j, all);
        job_free(j);
    }
    sender_dedupe_close(s);
    sender_prep_close(s);
    TAILQ_INIT(&s->waiting);
    TAILQ_INIT(&s->awaiting);
    TAILQ_INIT(&s->to_log);
    TAILQ_INIT(&s->pend);
    TAILQ_INIT(&s->checks);
    s->njobs = 0;
}
