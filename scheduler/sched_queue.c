/* sched_queue.c - pending retries: journaled whole, kept in memory as (id, attempt, due, journal
 * position), handed to a sender when due, forgotten once the sender reports the attempt done. */
#include "domain/job.h"
#include "domain/proto.h"
#include "sched_id.h"
#include "scheduler.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Journal records: "r" a retry to make (live: the job's keys, job_pack_fields), "d" attempt done
 * (marker). Each "r" carries a
 * generation unique in this journal; a "d" names the generation it completes, so replay matches
 * markers exactly even when a redelivery starts the attempts of an invocation again. On replay
 * the latest "r" of an invocation wins, as at run time. */
#define REC_KIND "k"
#define REC_DUE "due"
#define REC_GEN "gen"

/* A reply waiting for the journal, and (apply) the retry record it waits for: the entry takes
 * that record only in the sync's completion, so the record it replaces is released only once
 * its replacement is durable (journal.h). */
struct sched_ack {
    TAILQ_ENTRY(sched_ack) link;
    scheduler_t *s;
    conn_t *c; /* NULL when the connection went away */
    uint64_t t, seq;
    int failed, redeliver;
    int64_t next; /* unix ms, for the reply */
    int apply;    /* a retry record was appended: rec, pos, attempt, gen, due */
    void *rec;    /* its bytes, appended again after a failed sync */
    size_t reclen;
    journal_pos_t pos;
    int attempt;
    uint64_t gen;
    int64_t due; /* unix ms */
    char inv[INVOCATION_ID_LEN];
};

/* A retry handed to the dispatcher. Allocated only while dispatched (a few thousand at most,
 * the senders' windows), so a waiting entry does not carry a dispatch_item_t. */
typedef struct sched_flight {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    sched_entry_t *e;
} sched_flight_t;

#define SCHED_OOM_RETRY_MS 1000 /* after a failed allocation, try dispatching again this late */
#define SCHED_RELEASE_BURST 512 /* due entries handed out per tick at most, */
#define SCHED_RELEASE_TICK_MS                                                                      \
    50                           /* then the next ones this much later (overdue after a restart)   \
                                  */
#define SCHED_STALL_MIN_MS 500   /* after a failed journal sync, try again this late, */
#define SCHED_STALL_MAX_MS 10000 /* doubling up to this */
#define SCHED_DEFER_MAX_MS 60000 /* a deferral's wait is at most this */
#define SCHED_LOG_EVERY_MS 10000

/* Due times are journaled as unix ms (they mean the same after a restart) and held in memory on
 * the monotonic clock, so a step of the wall clock neither stalls nor fires waiting retries. */
static int64_t sched_mono_from_wall(int64_t wall)
{
    return time_mono_ms() + (wall - time_now_ms());
}

/* sched_wall_from_mono: the unix ms of a monotonic due time, for replies and the log. */
static int64_t sched_wall_from_mono(int64_t mono)
{
    return time_now_ms() + (mono - time_mono_ms());
}

static void sched_arm(scheduler_t *s);

/* sched_find returns the entry of an invocation or NULL. */
static sched_entry_t *sched_find(scheduler_t *s, const char *inv, size_t n)
{
    return sched_index_find(&s->index, inv, n);
}

/* sched_add makes a new entry (state ENTRY_NEW) for an invocation that has none, with room
 * reserved for it in the due heap. Returns 0 or -ENOMEM. */
static int sched_add(scheduler_t *s, const char *inv, size_t n, sched_entry_t **ep)
{
    if (sched_heap_reserve(&s->due, sched_index_count(&s->index) + 1) < 0) return -ENOMEM;
    return sched_index_add(&s->index, inv, n, ep);
}

/* sched_unplace takes an entry out of the due heap or the dispatcher. */
static void sched_unplace(scheduler_t *s, sched_entry_t *e)
{
    if (e->state == ENTRY_WAITING) {
        sched_heap_remove(&s->due, e);
    } else if (e->state == ENTRY_DISPATCHED) {
        sched_flight_t *fl = e->at.flight;
        dispatch_cancel(s->senders, &fl->item);
        free(fl);
    }
    e->state = ENTRY_NEW;
}

/* sched_forget removes an entry entirely and releases its journal record. */
static void sched_forget(scheduler_t *s, sched_entry_t *e)
{
    sched_unplace(s, e);
    journal_release(s->journal, e->pos);
    sched_index_remove(&s->index, e);
}

/* sched_wait puts an entry in the due heap and re-arms the timer. */
static void sched_wait(scheduler_t *s, sched_entry_t *e)
{
    e->state = ENTRY_WAITING;
    sched_heap_push(&s->due, e);
    sched_arm(s);
}

/* sched_tick hands due entries to the senders, a bounded number per tick (a restart after a
 * long stop finds many overdue at once). */
static void sched_tick(uv_timer_t *t)
{
    scheduler_t *s = t->data;
    if (daemon_draining(s->d)) return;
    int64_t now = time_mono_ms();
    sched_entry_t *e;
    unsigned released = 0;
    while ((e = sched_heap_top(&s->due)) && e->due <= now) {
        if (released++ == SCHED_RELEASE_BURST) {
            uv_timer_start(&s->timer, sched_tick, SCHED_RELEASE_TICK_MS, 0);
            return;
        }
        sched_flight_t *fl = malloc(sizeof *fl);
        if (!fl) {
            char id[INVOCATION_ID_LEN];
            log_error("out of memory handing %s to a sender; trying again in %d ms",
                      sched_id_str(e, id), SCHED_OOM_RETRY_MS);
            uv_timer_start(&s->timer, sched_tick, SCHED_OOM_RETRY_MS, 0);
            return;
        }
        sched_heap_remove(&s->due, e);
        char id[INVOCATION_ID_LEN];
        sched_id_str(e, id);
        memset(&fl->item, 0, sizeof fl->item);
        fl->item.key = dispatch_key(id, strlen(id)); /* the sender that may hold a copy */
        fl->e = e;
        e->state = ENTRY_DISPATCHED;
        e->at.flight = fl;
        dispatch_push(s->senders, &fl->item);
    }
    sched_arm(s);
}

/* sched_arm sets the timer to the earliest due time. */
static void sched_arm(scheduler_t *s)
{
    sched_entry_t *e = sched_heap_top(&s->due);
    if (!e) {
        uv_timer_stop(&s->timer);
        return;
    }
    int64_t wait = e->due - time_mono_ms();
    uv_timer_start(&s->timer, sched_tick, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* sched_pack_record builds the journal record of attempt `attempt` of job m. */
static void sched_pack_record(msgpack_sbuffer *sb, const job_msg_t *m, int attempt, int64_t due,
                              uint64_t gen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    job_msg_t r = *m;
    r.attempt = attempt;
    msgpack_pack_map(&pk, 3 + JOB_NFIELDS);
    frame_pack_kv_str(&pk, REC_KIND, "r");
    frame_pack_kv_u64(&pk, REC_GEN, gen);
    job_pack_fields(&pk, &r);
    frame_pack_kv_i64(&pk, REC_DUE, due);
}

/* sched_marker_synced: a done marker needs no follow-up once written. */
static void sched_marker_synced(void *arg, int status)
{
    (void)arg;
    (void)status;
}

/* sched_marker journals "entry e's attempt is done" (no wait: a lost marker costs a repeat). */
static void sched_marker(scheduler_t *s, const sched_entry_t *e)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char id[INVOCATION_ID_LEN];
    msgpack_pack_map(&pk, 4);
    frame_pack_kv_str(&pk, REC_KIND, "d");
    frame_pack_kv_str(&pk, PK_INVOCATION, sched_id_str(e, id));
    frame_pack_kv_i64(&pk, PK_ATTEMPT, e->attempt);
    frame_pack_kv_u64(&pk, REC_GEN, e->gen);
    char err[256];
    journal_pos_t pos;
    if (journal_append(s->journal, sb.data, sb.size, 0, &pos, err, sizeof err) < 0)
        log_warn("journal: done marker of %s not recorded: %s", sched_id_str(e, id), err);
    else /* soon durable: a marker lost to a kill costs an attempt made again */
        committer_after(s->commit, sched_marker_synced, s);
    msgpack_sbuffer_destroy(&sb);
}

static void sched_ack_synced(void *arg, int status);

/* sched_ack_free frees a reply record. */
static void sched_ack_free(sched_ack_t *a)
{
    free(a->rec);
    free(a);
}

/* sched_stall_retry journals again, after a failed sync, what the stalled replies wait for. */
static void sched_stall_retry(uv_timer_t *t)
{
    scheduler_t *s = t->data;
    sched_ack_t *a;
    char err[256];
    while ((a = TAILQ_FIRST(&s->stalled))) {
        TAILQ_REMOVE(&s->stalled, a, link);
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        if (a->apply &&
            journal_append(s->journal, a->rec, a->reclen, 1, &a->pos, err, sizeof err) < 0) {
            sched_ack_synced(a, -ENOSPC);
            continue;
        }
        committer_after(s->commit, sched_ack_synced, a);
    }
}

/* sched_stall keeps a reply whose journal sync failed (disk full): the sender keeps waiting,
 * and the record is journaled again later, at a bounded rate, instead of the sender being cut
 * off and resending everything many times a second. */
static void sched_stall(scheduler_t *s, sched_ack_t *a, int status)
{
    unsigned long held = 0;
    if (log_limit_pass(&s->stall_log, SCHED_LOG_EVERY_MS, &held))
        log_error("journal sync failed for %s: %s; kept, journaled again in %u ms (%lu more "
                  "such failures not logged)",
                  a->inv, strerror(-status), s->stall_ms ? s->stall_ms * 2 : SCHED_STALL_MIN_MS,
                  held);
    TAILQ_INSERT_TAIL(&s->stalled, a, link);
    if (uv_is_active((uv_handle_t *)&s->stall_timer)) return;
    s->stall_ms = s->stall_ms ? s->stall_ms * 2 : SCHED_STALL_MIN_MS;
    if (s->stall_ms > SCHED_STALL_MAX_MS) s->stall_ms = SCHED_STALL_MAX_MS;
    uv_timer_start(&s->stall_timer, sched_stall_retry, s->stall_ms, 0);
}

/* sched_apply makes the durable retry record of a the invocation's entry, releasing the record
 * it replaces (durable itself, so releasing it now loses nothing). Returns 0 or -ENOMEM. */
static int sched_apply(scheduler_t *s, sched_ack_t *a)
{
    sched_entry_t *e = sched_find(s, a->inv, strlen(a->inv));
    if (e) {
        sched_unplace(s, e);
        journal_release(s->journal, e->pos);
    } else if (sched_add(s, a->inv, strlen(a->inv), &e) < 0) {
        journal_release(s->journal, a->pos);
        return -ENOMEM;
    }
    e->attempt = a->attempt;
    e->gen = a->gen;
    e->due = sched_mono_from_wall(a->due);
    e->pos = a->pos;
    sched_wait(s, e);
    return 0;
}

/* sched_ack_synced replies to the sender (or hookctl) once the journal holds the decision. */
static void sched_ack_synced(void *arg, int status)
{
    sched_ack_t *a = arg;
    scheduler_t *s = a->s;
    TAILQ_REMOVE(&s->acks, a, link);
    if (status == 0 && a->apply && sched_apply(s, a) < 0) status = -ENOMEM;
    if (status < 0 && !a->redeliver && !daemon_draining(s->d)) {
        sched_stall(s, a, status);
        return;
    }
    if (status < 0) { /* hookctl is told; a sender draining away gets it again elsewhere */
        log_error("journal sync failed for %s: %s; not acknowledged", a->inv, strerror(-status));
        if (a->c && a->redeliver) {
            msgpack_packer *pk = conn_frame_begin(a->c);
            msgpack_pack_map(pk, 3);
            frame_pack_kv_u64(pk, PK_TYPE, PT_REDELIVER_ACK);
            frame_pack_kv_u64(pk, PK_OK, 0);
            frame_pack_kv_str(pk, PK_ERROR, strerror(-status));
            conn_frame_end(a->c);
        }
        sched_ack_free(a);
        return;
    }
    s->stall_ms = 0;
    if (a->redeliver) { /* the log says what we hold: retrying, next attempt now */
        char err[256];
        if (store_delivery_scheduled(s->store, a->inv, a->attempt, time_now_ms(), err, sizeof err) <
            0)
            log_warn("delivery log: %s not marked retrying: %s", a->inv, err);
    }
    if (a->c) {
        msgpack_packer *pk = conn_frame_begin(a->c);
        if (a->redeliver) {
            msgpack_pack_map(pk, 2);
            frame_pack_kv_u64(pk, PK_TYPE, PT_REDELIVER_ACK);
            frame_pack_kv_u64(pk, PK_OK, 1);
        } else {
            msgpack_pack_map(pk, 4);
            frame_pack_kv_u64(pk, PK_TYPE, PT_RETRY_ACK);
            frame_pack_kv_u64(pk, PK_SEQ, a->seq);
            frame_pack_kv_str(pk, PK_STATUS, a->failed ? "failed" : "retrying");
            frame_pack_kv_i64(pk, PK_NEXT, a->failed ? 0 : a->next);
        }
        conn_frame_end(a->c);
    }
    sched_ack_free(a);
}

/* sched_schedule journals attempt `attempt` of job m for time due (unix ms); once durable it
 * replaces any earlier entry of the invocation and a is answered. */
static void sched_schedule(scheduler_t *s, const job_msg_t *m, int attempt, int64_t due,
                           sched_ack_t *a)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    a->gen = s->next_gen++;
    a->attempt = attempt;
    a->due = due;
    sched_pack_record(&sb, m, attempt, due, a->gen);
    char err[256];
    int rc = journal_append(s->journal, sb.data, sb.size, 1, &a->pos, err, sizeof err);
    TAILQ_INSERT_TAIL(&s->acks, a, link);
    if (rc < 0) {
        log_error("journal: retry of %.*s not recorded: %s", (int)m->inv.n, m->inv.p, err);
        msgpack_sbuffer_destroy(&sb);
        sched_ack_synced(a, rc);
        return;
    }
    a->apply = 1;
    a->rec = sb.data; /* kept for a journal retry after a failed sync */
    a->reclen = sb.size;
    committer_after(s->commit, sched_ack_synced, a);
}

/* sched_ack_new allocates a reply record. */
static sched_ack_t *sched_ack_new(scheduler_t *s, conn_t *c, const char *inv, size_t invlen)
{
    sched_ack_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->s = s;
    a->c = c;
    memcpy(a->inv, inv, invlen < sizeof a->inv ? invlen : sizeof a->inv - 1);
    return a;
}

/* sched_job_fields_bad names the first job field of a RETRY or REDELIVER frame that is empty,
 * or returns NULL when none is (job_unpack has checked they are there): a retry without them
 * could only fail later with an empty webhook id in the delivery log. */
static const char *sched_job_fields_bad(const job_msg_t *m)
{
    if (m->webhook_id.n == 0) return PK_WEBHOOK;
    if (m->event_id.n == 0) return PK_EVENT_ID;
    if (m->event_type.n == 0) return PK_EVENT_TYPE;
    return NULL;
}

void sched_queue_retry(scheduler_t *s, conn_t *c, const msgpack_object *f)
{
    const char *bad;
    job_msg_t m;
    char err[160], why[200];
    if (job_unpack(f, PT_RETRY, &m, err, sizeof err) < 0) {
        snprintf(why, sizeof why, "malformed RETRY frame: %s", err);
        conn_close(c, why);
        return;
    }
    const char *inv = m.inv.p;
    size_t invlen = m.inv.n;
    int64_t att = m.attempt, ra = m.retry_after_ms;
    if (att > s->policy.max_attempts) {
        snprintf(why, sizeof why, "malformed RETRY frame: attempt %lld outside 1..%d",
                 (long long)att, s->policy.max_attempts);
        conn_close(c, why);
        return;
    }
    if ((bad = sched_job_fields_bad(&m))) {
        snprintf(why, sizeof why, "malformed RETRY frame: %s missing or empty", bad);
        conn_close(c, why);
        return;
    }
    if (ra < 0) ra = 0; /* retry_next caps it at the schedule's longest wait */
    int deferred = m.deferred;
    sched_ack_t *a = sched_ack_new(s, c, inv, invlen);
    if (!a) return; /* the sender keeps waiting; its reconnect resends */
    a->seq = m.seq;
    sched_entry_t *e = sched_find(s, inv, invlen);
    /* A stale report of an older attempt, or of the one before the attempt under way (a sender
     * that never saw our answer reports it again, after a restart of either): replacing the one
     * under way would send it twice. A deferral applies only to the attempt the entry is at (a
     * deferred duplicate must never move an invocation back, nor replace the attempt another
     * sender is making). */
    if (e && (e->attempt > att + 1 || (e->attempt == att + 1 && e->state == ENTRY_DISPATCHED) ||
              (deferred && e->attempt != att))) {
        a->next = sched_wall_from_mono(e->due);
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        committer_after(s->commit, sched_ack_synced, a);
        return;
    }
    int64_t next;
    if (deferred) { /* never attempted: the same attempt, later, not counted as a failure */
        a->next =
            time_now_ms() + (ra > 0 ? (ra < SCHED_DEFER_MAX_MS ? ra : SCHED_DEFER_MAX_MS) : 1000);
        s->stats.deferred++;
        sched_schedule(s, &m, (int)att, a->next, a);
        return;
    }
    if (!retry_next(&s->policy, (int)att, time_now_ms(), ra, &next)) {
        a->failed = 1;
        s->stats.failed++;
        /* The last attempt, handed out by us: keep it in flight until the sender reports the
         * failed record written (JOB_DONE); a sender killed before that gets it again from the
         * dispatcher, so the delivery log cannot stay "retrying" forever. */
        if (e && !(e->state == ENTRY_DISPATCHED && e->attempt == att)) {
            sched_marker(s, e);
            sched_forget(s, e);
        }
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        committer_after(s->commit, sched_ack_synced, a);
        return;
    }
    a->next = next;
    s->stats.retries++;
    sched_schedule(s, &m, (int)att + 1, next, a);
}

void sched_queue_redeliver(scheduler_t *s, conn_t *c, const msgpack_object *f)
{
    const char *bad = NULL;
    job_msg_t m;
    char err[160], why[200];
    int refused = job_unpack_fields(f, &m, err, sizeof err) < 0;
    if (refused)
        snprintf(why, sizeof why, "REDELIVER refused: %s", err);
    else if ((refused = (bad = sched_job_fields_bad(&m)) != NULL))
        snprintf(why, sizeof why, "REDELIVER refused: %s missing or empty", bad);
    if (refused) { /* answered, not cut off: hookctl shows the reason */
        log_warn("%s", why);
        msgpack_packer *pk = conn_frame_begin(c);
        msgpack_pack_map(pk, 3);
        frame_pack_kv_u64(pk, PK_TYPE, PT_REDELIVER_ACK);
        frame_pack_kv_u64(pk, PK_OK, 0);
        frame_pack_kv_str(pk, PK_ERROR, why);
        conn_frame_end(c);
        return;
    }
    sched_ack_t *a = sched_ack_new(s, c, m.inv.p, m.inv.n);
    if (!a) return;
    a->redeliver = 1;
    s->stats.redelivered++;
    sched_schedule(s, &m, 1, time_now_ms(), a);
}

void sched_queue_resume(scheduler_t *s, const msgpack_object *f, int attempt)
{
    job_msg_t m;
    char err[160];
    if (job_unpack_fields(f, &m, err, sizeof err) < 0) {
        log_warn("delivery log: a retrying record not resumed: %s", err);
        return;
    }
    sched_ack_t *a = sched_ack_new(s, NULL, m.inv.p, m.inv.n);
    if (!a) return;
    a->redeliver = 1; /* no one to answer; the record is marked once durable */
    sched_schedule(s, &m, attempt, time_now_ms(), a);
}

void sched_queue_done(scheduler_t *s, conn_t *c, uint64_t seq)
{
    sched_flight_t *fl = (sched_flight_t *)dispatch_ack(s->senders, c, seq);
    if (!fl) return; /* superseded by a newer retry, or sent again elsewhere */
    sched_entry_t *e = fl->e;
    free(fl);
    e->state = ENTRY_NEW;
    s->stats.done++;
    sched_marker(s, e);
    sched_forget(s, e);
}

/* sched_send reads the job back from the journal and packs it for a sender. */
static void sched_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq)
{
    scheduler_t *s = ctx;
    sched_entry_t *e = ((sched_flight_t *)it)->e;
    char id[INVOCATION_ID_LEN];
    void *rec = NULL;
    size_t len = 0;
    msgpack_unpacked up;
    job_msg_t r;
    char err[160] = "";
    msgpack_unpacked_init(&up);
    int rc = journal_read(s->journal, e->pos, &rec, &len);
    if (rc < 0 || msgpack_unpack_next(&up, rec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        job_unpack_fields(&up.data, &r, err, sizeof err) < 0) {
        /* Sent as an empty job: the sender reports it failed, so it ends visibly. */
        log_error("journal: retry record of %s unreadable (%s)", sched_id_str(e, id),
                  rc < 0   ? strerror(-rc)
                  : err[0] ? err
                           : "not msgpack");
        r = (job_msg_t){.webhook_id = job_str_of(""),
                        .event_id = job_str_of(""),
                        .event_type = job_str_of(""),
                        .body = job_str_of("")};
    }
    r.seq = seq;
    r.inv = job_str_of(sched_id_str(e, id));
    r.attempt = e->attempt;
    job_pack(conn_frame_begin(c), PT_JOB, &r);
    conn_frame_end(c);
    s->stats.dispatched++;
    msgpack_unpacked_destroy(&up);
    free(rec);
}

/* sched_replay_record rebuilds one entry, or applies a done marker. */
static int sched_replay_record(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    scheduler_t *s = arg;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const char *kind = "", *inv = NULL;
    size_t klen = 0, invlen = 0;
    int64_t att = 0, due = 0;
    if (msgpack_unpack_next(&up, rec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP || frame_get_str(&up.data, REC_KIND, &kind, &klen) < 0 ||
        frame_get_str(&up.data, PK_INVOCATION, &inv, &invlen) < 0 || invlen == 0 ||
        invlen >= INVOCATION_ID_LEN || frame_get_i64(&up.data, PK_ATTEMPT, &att) < 0) {
        log_warn("journal: unreadable record at segment %llu offset %llu skipped",
                 (unsigned long long)(pos >> 32), (unsigned long long)(pos & 0xffffffffu));
        journal_release(s->journal, pos);
        msgpack_unpacked_destroy(&up);
        return 0;
    }
    uint64_t gen = 0;
    frame_get_u64(&up.data, REC_GEN, &gen);
    if (gen >= s->next_gen) s->next_gen = gen + 1;
    sched_entry_t *e = sched_find(s, inv, invlen);
    if (klen == 1 && kind[0] == 'r') {
        frame_get_i64(&up.data, REC_DUE, &due);
        if (e) {
            journal_release(s->journal, e->pos); /* superseded: journal order is time order */
        } else if (sched_add(s, inv, invlen, &e) < 0) {
            msgpack_unpacked_destroy(&up);
            return -ENOMEM;
        }
        e->attempt = (int)att;
        e->gen = gen;
        e->due = sched_mono_from_wall(due);
        e->pos = pos;
    } else {
        if (e && e->gen == gen) sched_forget(s, e);
        journal_release(s->journal, pos);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

/* sched_compact_visit names every pending retry whose record lies in segment seg or below. */
static void sched_compact_visit(void *arg, uint32_t seg, committer_moves_t *m)
{
    scheduler_t *s = arg;
    sched_entry_t *e;
    for (size_t i = 0; (e = sched_index_next(&s->index, &i));)
        if (journal_pos_segment(e->pos) <= seg) committer_move(m, e->pos);
}

/* sched_compact_relocate: which moved records are still an entry's, and on commit point the
 * entries at their copies (found by the invocation id inside each record). */
static void sched_compact_relocate(void *arg, committer_move_t *moves, size_t n, int commit)
{
    scheduler_t *s = arg;
    for (size_t i = 0; i < n; i++) {
        committer_move_t *mv = &moves[i];
        msgpack_unpacked up;
        const char *inv;
        size_t invlen;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, mv->rec, mv->len, NULL) == MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP &&
            frame_get_str(&up.data, PK_INVOCATION, &inv, &invlen) == 0) {
            sched_entry_t *e = sched_find(s, inv, invlen);
            if (e && e->pos == mv->old) {
                mv->held = 1;
                if (commit) e->pos = mv->new;
            }
        }
        msgpack_unpacked_destroy(&up);
    }
}

int sched_queue_open(scheduler_t *s)
{
    char dir[4096], err[256];
    sched_index_init(&s->index);
    sched_heap_init(&s->due);
    s->next_gen = 1;
    TAILQ_INIT(&s->acks);
    TAILQ_INIT(&s->stalled);
    uv_timer_init(daemon_loop(s->d), &s->stall_timer);
    s->stall_timer.data = s;
    snprintf(dir, sizeof dir, "%s/journal", daemon_data_dir(s->d));
    int rc =
        journal_open(&s->journal, dir, "scheduler", daemon_segment_bytes(s->d), err, sizeof err);
    if (rc < 0) {
        log_error("journal %s: %s", dir, err);
        return rc;
    }
    if ((rc = dispatch_init(&s->senders, s->window, sched_send, s)) < 0) return rc;
    uv_timer_init(daemon_loop(s->d), &s->timer);
    s->timer.data = s;
    int64_t t0 = time_now_ms();
    if ((rc = journal_replay(s->journal, sched_replay_record, s)) < 0) {
        log_error("journal %s: replay failed: %s", dir, strerror(-rc));
        return rc;
    }
    sched_entry_t *e;
    for (size_t i = 0; (e = sched_index_next(&s->index, &i));) {
        e->state = ENTRY_WAITING;
        sched_heap_push(&s->due, e);
    }
    s->stats.replayed = sched_index_count(&s->index);
    log_info("journal %s: %zu pending retries rebuilt in %lld ms", dir,
             sched_index_count(&s->index), (long long)(time_now_ms() - t0));
    sched_arm(s);
    rc = committer_init(&s->commit, daemon_loop(s->d), s->journal, daemon_fsync(s->d), 10);
    if (rc == 0)
        committer_compact_every(s->commit, 1000, 4, sched_compact_visit, sched_compact_relocate, s);
    return rc;
}

void sched_queue_peer_down(scheduler_t *s, conn_t *c)
{
    sched_ack_t *a;
    TAILQ_FOREACH(a, &s->acks, link)
    if (a->c == c) a->c = NULL;
    TAILQ_FOREACH(a, &s->stalled, link)
    if (a->c == c) a->c = NULL;
    dispatch_remove_peer(s->senders, c);
    /* Requeued entries are back in the dispatcher's queue; nothing else to do. */
}

size_t sched_queue_pending(scheduler_t *s)
{
    return sched_index_count(&s->index);
}

int sched_queue_idle(scheduler_t *s)
{
    return dispatch_inflight(s->senders) == 0 && TAILQ_EMPTY(&s->acks) && TAILQ_EMPTY(&s->stalled);
}

/* sched_timer_closed: the timer lives inside scheduler_t. */
static void sched_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void sched_queue_close(scheduler_t *s)
{
    if (s->commit) committer_close(s->commit);
    s->commit = NULL;
    if (s->timer.data) uv_close((uv_handle_t *)&s->timer, sched_timer_closed);
    if (s->stall_timer.data) uv_close((uv_handle_t *)&s->stall_timer, sched_timer_closed);
    sched_ack_t *a;
    while ((a = TAILQ_FIRST(&s->stalled))) { /* never journaled: the senders still hold them */
        TAILQ_REMOVE(&s->stalled, a, link);
        sched_ack_free(a);
    }
    if (s->senders) {
        dispatch_item_t *it;
        while ((it = dispatch_pop_any(s->senders)))
            free(it); /* the flights */
        dispatch_close(s->senders);
    }
    s->senders = NULL;
    sched_heap_close(&s->due);
    sched_index_close(&s->index);
    if (s->journal) journal_close(s->journal);
    s->journal = NULL;
}
