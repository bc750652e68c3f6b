/* router_match.c - from one event to its invocations: matching webhooks, exact bodies, ids;
 * and the acknowledgement back to ingest once every invocation is done. Events wait as the JSON
 * ingest sent; one is matched only when the senders' windows have room, its event part rendered
 * once, and each body spliced into its JOB frame only when that frame is sent. */
#include "domain/job.h"
#include "domain/proto.h"
#include "router.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A backlog this large (events, or bytes held) is followed by malloc_trim once gone. */
#define TRIM_AFTER_EVENTS 1024u
#define TRIM_AFTER_BYTES (4u << 20)

/* router_event_free releases one event. */
static void router_event_free(router_event_t *ev)
{
    free(ev->js);
    free(ev->event_id);
    free(ev->event_type);
    payload_event_free(&ev->part);
    free(ev);
}

/* router_ack tells ingest the event is fully handed on, and frees it. */
static void router_ack(router_t *r, router_event_t *ev)
{
    if (ev->ingest) {
        msgpack_packer *pk = conn_frame_begin(ev->ingest);
        msgpack_pack_map(pk, 2);
        frame_pack_kv_u64(pk, PK_TYPE, PT_EVENT_ACK);
        frame_pack_kv_u64(pk, PK_SEQ, ev->ingest_seq);
        conn_frame_end(ev->ingest);
    }
    r->stats.events_done++;
    TAILQ_REMOVE(&r->events, ev, link);
    r->nevents--;
    router_event_free(ev);
}

/* router_job_free releases one job. */
static void router_job_free(router_job_t *j)
{
    free(j->webhook_id);
    free(j->whpart);
    free(j);
}

/* router_job_new makes the invocation of matched event ev (its part rendered) for webhook wh. */
static router_job_t *router_job_new(router_event_t *ev, const webhook_t *wh, int64_t now)
{
    router_job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->ev = ev;
    j->webhook_id = strdup(wh->id);
    j->whpart = payload_webhook_part(wh, &j->whpart_len);
    j->body_len = ev->part.head.n + j->whpart_len + ev->part.tail.n;
    j->created_at = now;
    if (!j->webhook_id || !j->whpart) {
        router_job_free(j);
        return NULL;
    }
    payload_invocation_id(ev->event_id, wh->id, j->inv);
    j->item.key = dispatch_key(j->inv, strlen(j->inv)); /* every router picks the same sender */
    return j;
}

/* router_refuse records an oversized invocation as failed in the delivery log, so it never
 * reaches a sender (whose redelivery would send it anyway): status failed, 0 attempts, the
 * request's method and URL, no headers and no body (neither was sent, and the log should not
 * hold bodies over the cap), and the reason in words. Returns 0 or a negative errno. */
static int router_refuse(router_t *r, const router_job_t *j, const webhook_t *wh)
{
    char reason[160], err[256] = "";
    snprintf(reason, sizeof reason, "body of %zu bytes exceeds the %zu-byte limit", j->body_len,
             r->max_body);
    delivery_t d = {
        .invocation_id = (char *)j->inv,
        .webhook_id = j->webhook_id,
        .project_id = wh->project_id,
        .event_id = j->ev->event_id,
        .event_type = j->ev->event_type,
        .status = DLV_FAILED,
        .attempts = 0,
        .created_at = j->created_at,
        .updated_at = j->created_at,
        .req_method = "POST",
        .req_url = wh->url,
        .error = reason,
    };
    int rc = store_counted_record(cfgwatch_store(r->cfg), &d, NULL, err, sizeof err);
    if (rc < 0) {
        log_error("invocation %s (event %s, webhook %s): %s; recording it failed: %s", j->inv,
                  j->ev->event_id, j->webhook_id, reason, err[0] ? err : strerror(-rc));
        return rc;
    }
    log_warn("invocation %s (event %s, webhook %s): %s; recorded as failed, not sent", j->inv,
             j->ev->event_id, j->webhook_id, reason);
    r->stats.oversized++;
    return 0;
}

/* router_maybe_trim gives freed heap memory back to the system once a large backlog is gone
 * (glibc keeps freed memory in its arenas). */
static void router_maybe_trim(router_t *r)
{
    size_t held = r->nevents + r->nwaiting;
    size_t bytes = r->waiting_bytes + r->inflight_bytes;
    if (held > r->backlog_peak) r->backlog_peak = held;
    if (bytes > r->bytes_peak) r->bytes_peak = bytes;
    if (held == 0 && (r->backlog_peak >= TRIM_AFTER_EVENTS || r->bytes_peak >= TRIM_AFTER_BYTES)) {
        r->backlog_peak = r->bytes_peak = 0;
        malloc_trim(0);
    }
}

void router_route(router_t *r, conn_t *ingest, uint64_t seq, const char *js, size_t len, int copy,
                  int64_t cv)
{
    router_event_t *ev = calloc(1, sizeof *ev);
    if (ev) ev->js = malloc(len ? len : 1);
    if (!ev || !ev->js) {
        free(ev);
        log_error("out of memory routing event %llu; ingest will send it again",
                  (unsigned long long)seq);
        return;
    }
    memcpy(ev->js, js, len);
    ev->len = len;
    ev->ingest = ingest;
    ev->ingest_seq = seq;
    ev->copy = copy;
    ev->cv = cv;
    TAILQ_INSERT_TAIL(&r->waiting, ev, link);
    r->nwaiting++;
    r->waiting_bytes += len;
    r->stats.events++;
    router_feed(r);
}

/* router_match matches one event taken off the waiting list against the configuration now in
 * force, renders its event part and queues its jobs (all or none). */
static void router_match(router_t *r, router_event_t *ev)
{
    uint64_t seq = ev->ingest_seq;
    TAILQ_INSERT_TAIL(&r->events, ev, link);
    r->nevents++;
    json_error_t jerr;
    json_t *e = json_loadb(ev->js, ev->len, 0, &jerr);
    free(ev->js);
    ev->js = NULL;
    const char *pid = json_string_value(json_object_get(e, "project_id"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *id = json_string_value(json_object_get(e, "id"));
    if (!e || !pid || !type || !id) {
        /* ingest validated it; a bad one here is a bug or a damaged journal: drop it loudly. */
        log_error("event %llu from ingest is malformed (%s); dropped", (unsigned long long)seq,
                  e ? "missing id, type or project_id" : jerr.text);
        r->stats.bad++;
        json_decref(e);
        router_ack(r, ev);
        return;
    }
    if (cfgwatch_catch_up(r->cfg, ev->cv) < 0) /* the store is unreadable: the loaded one */
        log_warn("event %s: configuration version %lld not loaded (store unreadable); matched "
                 "with version %lld",
                 id, (long long)ev->cv, (long long)cfgwatch_version(r->cfg));
    const config_t *cfg = cfgwatch_config(r->cfg);
    const project_t *p = config_find_project(cfg, pid);
    unsigned bit = config_event_type_parse(type);
    if (!p) {
        r->stats.unrouted++;
        log_debug("event %s: project %s is not configured; unrouted", id, pid);
    }
    int64_t now = time_now_ms();
    size_t njobs = 0, nmatch = 0;
    for (size_t i = 0; p && i < p->nwebhooks; i++)
        nmatch += payload_matches(&p->webhooks[i], pid, bit) != 0;
    ev->event_id = strdup(id);
    ev->event_type = strdup(type);
    router_job_t **jobs = nmatch ? calloc(nmatch, sizeof *jobs) : NULL;
    size_t nrefused = 0;
    int refuse_failed = 0;
    int parted = jobs && payload_event_build(&ev->part, e, p) == 0;
    for (size_t i = 0; parted && ev->event_id && ev->event_type && i < p->nwebhooks; i++) {
        const webhook_t *wh = &p->webhooks[i];
        if (!payload_matches(wh, pid, bit)) continue;
        router_job_t *j = router_job_new(ev, wh, now);
        if (!j) break;
        if (j->body_len > r->max_body) {
            refuse_failed = router_refuse(r, j, wh) < 0;
            router_job_free(j);
            if (refuse_failed) break;
            nrefused++;
            continue;
        }
        jobs[njobs++] = j;
    }
    if (njobs + nrefused < nmatch) { /* built all or none: ingest sends the event again */
        if (refuse_failed)
            log_error("event %s: a delivery-log write failed; ingest will send it again", id);
        else
            log_error("event %s: out of memory building bodies; ingest will send it again", id);
        json_decref(e);
        for (size_t k = 0; k < njobs; k++)
            router_job_free(jobs[k]);
        free(jobs);
        TAILQ_REMOVE(&r->events, ev, link);
        r->nevents--;
        router_event_free(ev);
        return;
    }
    json_decref(e);
    if (p && nmatch == 0) r->stats.unmatched++;
    ev->remaining = (unsigned)njobs;
    r->stats.jobs += njobs;
    for (size_t k = 0; k < njobs; k++) {
        r->inflight_bytes += jobs[k]->body_len;
        dispatch_push(r->senders, &jobs[k]->item);
    }
    free(jobs);
    if (ev->remaining == 0) router_ack(r, ev);
}

void router_feed(router_t *r)
{
    dispatch_t *d = r->senders;
    size_t peers = dispatch_peers(d);
    router_event_t *ev;
    while ((ev = TAILQ_FIRST(&r->waiting)) && peers && dispatch_queued(d) == 0 &&
           dispatch_inflight(d) < (size_t)r->window * peers &&
           r->inflight_bytes < r->window_bytes * peers) {
        TAILQ_REMOVE(&r->waiting, ev, link);
        r->nwaiting--;
        r->waiting_bytes -= ev->len;
        router_match(r, ev);
    }
    router_maybe_trim(r);
}

void router_drop_waiting(router_t *r)
{
    router_event_t *ev;
    while ((ev = TAILQ_FIRST(&r->waiting))) {
        TAILQ_REMOVE(&r->waiting, ev, link);
        router_event_free(ev);
    }
    r->nwaiting = r->waiting_bytes = 0;
}

void router_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq)
{
    router_job_t *j = (router_job_t *)it;
    const router_event_t *ev = j->ev;
    job_msg_t m = {
        .seq = seq,
        .inv = job_str_of(j->inv),
        .webhook_id = job_str_of(j->webhook_id),
        .event_id = job_str_of(ev->event_id),
        .event_type = job_str_of(ev->event_type),
        .attempt = 1,
        .created_at = j->created_at,
        .copy = ev->copy || j->sent,
        /* at least the version it was matched under */
        .cfg_version = cfgwatch_version(((router_t *)ctx)->cfg),
    };
    const job_str_t body[] = {ev->part.head, {j->whpart, j->whpart_len}, ev->part.tail};
    j->sent = 1;
    job_pack_parts(conn_frame_begin(c), PT_JOB, &m, body, sizeof body / sizeof body[0]);
    conn_frame_end(c);
}

void router_job_done(router_t *r, conn_t *sender, uint64_t seq)
{
    router_job_t *j = (router_job_t *)dispatch_ack(r->senders, sender, seq);
    if (!j) return; /* stale: it was handed to another sender after a reconnect */
    router_event_t *ev = j->ev;
    r->stats.jobs_done++;
    r->inflight_bytes -= j->body_len;
    router_job_free(j);
    if (--ev->remaining == 0) router_ack(r, ev);
    router_feed(r);
}

void router_ingest_down(router_t *r, conn_t *ingest)
{
    router_event_t *ev, *next;
    TAILQ_FOREACH(ev, &r->events, link)
    if (ev->ingest == ingest) ev->ingest = NULL;
    /* Not matched yet: ingest hands them out again (to us, once reconnected); building their
     * jobs now would only deliver them twice. */
    for (ev = TAILQ_FIRST(&r->waiting); ev; ev = next) {
        next = TAILQ_NEXT(ev, link);
        if (ev->ingest != ingest) continue;
        TAILQ_REMOVE(&r->waiting, ev, link);
        r->nwaiting--;
        r->waiting_bytes -= ev->len;
        router_event_free(ev);
    }
}

void router_free_all(router_t *r)
{
    dispatch_item_t *it;
    while ((it = dispatch_pop_any(r->senders)))
        router_job_free((router_job_t *)it);
    router_event_t *ev;
    while ((ev = TAILQ_FIRST(&r->events))) {
        TAILQ_REMOVE(&r->events, ev, link);
        router_event_free(ev);
    }
    r->nevents = 0;
    router_drop_waiting(r);
    r->inflight_bytes = 0;
}
