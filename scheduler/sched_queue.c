/* sched_queue.c - pending retries: journaled whole, kept in memory as (id, attempt, due, journal
 * position), handed to a sender when due, forgotten once the sender reports the attempt done. */
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

/* Journal records: "r" a retry to make (live), "d" attempt done (marker). Each "r" carries a
 * generation unique in this journal; a "d" names the generation it completes, so replay matches
 * markers exactly even when a redelivery starts the attempts of an invocation again. On replay
 * the latest "r" of an invocation wins, as at run time. */
#define REC_KIND "k"
#define REC_DUE "due"
#define REC_GEN "gen"

struct sched_ack {
    TAILQ_ENTRY(sched_ack) link;
    scheduler_t *s;
    conn_t *c; /* NULL when the connection went away */
    uint64_t t, seq;
    int failed, redeliver;
    int64_t next;
    char inv[INVOCATION_ID_LEN];
};

/* A retry handed to the dispatcher. Allocated only while dispatched (a few thousand at most,
 * the senders' windows), so a waiting entry does not carry a dispatch_item_t. */
typedef struct sched_flight {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    sched_entry_t *e;
} sched_flight_t;

#define SCHED_OOM_RETRY_MS 1000 /* after a failed allocation, try dispatching again this late */

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

/* sched_tick hands every due entry to the senders. */
static void sched_tick(uv_timer_t *t)
{
    scheduler_t *s = t->data;
    if (daemon_draining(s->d)) return;
    int64_t now = time_now_ms();
    sched_entry_t *e;
    while ((e = sched_heap_top(&s->due)) && e->due <= now) {
        sched_flight_t *fl = malloc(sizeof *fl);
        if (!fl) {
            char id[INVOCATION_ID_LEN];
            log_error("out of memory handing %s to a sender; trying again in %d ms",
                      sched_id_str(e, id), SCHED_OOM_RETRY_MS);
            uv_timer_start(&s->timer, sched_tick, SCHED_OOM_RETRY_MS, 0);
            return;
        }
        sched_heap_remove(&s->due, e);
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
    int64_t wait = e->due - time_now_ms();
    uv_timer_start(&s->timer, sched_tick, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* sched_pack_record builds the journal record of a retry. */
static void sched_pack_record(msgpack_sbuffer *sb, const msgpack_object *f, int attempt,
                              int64_t due, uint64_t gen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const char *keys[] = {PK_INVOCATION, PK_WEBHOOK, PK_EVENT_ID, PK_EVENT_TYPE, PK_BODY};
    int64_t ca = 0;
    frame_get_i64(f, PK_CREATED, &ca);
    msgpack_pack_map(&pk, 10);
    frame_pack_kv_str(&pk, REC_KIND, "r");
    frame_pack_kv_u64(&pk, REC_GEN, gen);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = "";
        size_t n = 0;
        frame_get_str(f, keys[i], &v, &n);
        frame_pack_kv_strn(&pk, keys[i], v, n);
    }
    frame_pack_kv_i64(&pk, PK_ATTEMPT, attempt);
    frame_pack_kv_i64(&pk, PK_CREATED, ca);
    frame_pack_kv_i64(&pk, REC_DUE, due);
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
    msgpack_sbuffer_destroy(&sb);
}

/* sched_ack_synced replies to the sender (or hookctl) once the journal holds the decision. */
static void sched_ack_synced(void *arg, int status)
{
    sched_ack_t *a = arg;
    scheduler_t *s = a->s;
    TAILQ_REMOVE(&s->acks, a, link);
    sched_entry_t *e = sched_find(s, a->inv, strlen(a->inv));
    if (status < 0) {
        log_error("journal sync failed for %s: %s; not acknowledged, the sender keeps it", a->inv,
                  strerror(-status));
        if (e && e->state == ENTRY_NEW) sched_forget(s, e);
        if (a->c && !a->redeliver) /* the sender asks again on its next connection */
            conn_close(a->c, "journal sync failed; retry not accepted");
        if (a->c && a->redeliver) {
            msgpack_packer *pk = conn_frame_begin(a->c);
            msgpack_pack_map(pk, 3);
            frame_pack_kv_u64(pk, PK_TYPE, PT_REDELIVER_ACK);
            frame_pack_kv_u64(pk, PK_OK, 0);
            frame_pack_kv_str(pk, PK_ERROR, strerror(-status));
            conn_frame_end(a->c);
        }
        free(a);
        return;
    }
    if (e && e->state == ENTRY_NEW) sched_wait(s, e);
    if (a->redeliver) { /* the log says what we hold: retrying, next attempt now */
        char err[256];
        if (store_delivery_scheduled(s->store, a->inv, e ? e->attempt : 1, time_now_ms(), err,
                                     sizeof err) < 0)
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
    free(a);
}

/* sched_schedule journals attempt `attempt` of the job in frame f for time due, replacing any
 * earlier entry of the invocation, and replies through a once durable. */
static void sched_schedule(scheduler_t *s, const msgpack_object *f, const char *inv, size_t invlen,
                           int attempt, int64_t due, sched_ack_t *a)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t gen = s->next_gen++;
    sched_pack_record(&sb, f, attempt, due, gen);
    char err[256];
    journal_pos_t pos;
    int rc = journal_append(s->journal, sb.data, sb.size, 1, &pos, err, sizeof err);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        log_error("journal: retry of %.*s not recorded: %s", (int)invlen, inv, err);
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        sched_ack_synced(a, rc);
        return;
    }
    sched_entry_t *e = sched_find(s, inv, invlen);
    if (e) {
        sched_unplace(s, e);
        journal_release(s->journal, e->pos);
    } else if (sched_add(s, inv, invlen, &e) < 0) {
        journal_release(s->journal, pos);
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        sched_ack_synced(a, -ENOMEM);
        return;
    }
    e->attempt = attempt;
    e->gen = gen;
    e->due = due;
    e->pos = pos;
    e->state = ENTRY_NEW;
    TAILQ_INSERT_TAIL(&s->acks, a, link);
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

void sched_queue_retry(scheduler_t *s, conn_t *c, const msgpack_object *f)
{
    const char *inv;
    size_t invlen;
    uint64_t seq;
    int64_t att, ra = 0;
    if (frame_get_str(f, PK_INVOCATION, &inv, &invlen) < 0 || invlen == 0 ||
        invlen >= INVOCATION_ID_LEN || frame_get_u64(f, PK_SEQ, &seq) < 0 ||
        frame_get_i64(f, PK_ATTEMPT, &att) < 0 || att < 1) {
        conn_close(c, "malformed RETRY frame");
        return;
    }
    frame_get_i64(f, PK_RETRY_AFTER, &ra);
    uint64_t deferred = 0;
    frame_get_u64(f, PK_DEFERRED, &deferred);
    sched_ack_t *a = sched_ack_new(s, c, inv, invlen);
    if (!a) return; /* the sender keeps waiting; its reconnect resends */
    a->seq = seq;
    sched_entry_t *e = sched_find(s, inv, invlen);
    /* A stale report of an older attempt; and a deferral applies only to the attempt the entry
     * is at (a deferred duplicate must never move an invocation back, nor replace the attempt
     * another sender is making). */
    if (e && (e->attempt > att + 1 || (deferred && e->attempt != att))) {
        a->next = e->due;
        TAILQ_INSERT_TAIL(&s->acks, a, link);
        committer_after(s->commit, sched_ack_synced, a);
        return;
    }
    int64_t next;
    if (deferred) { /* never attempted: the same attempt, later, not counted as a failure */
        a->next = time_now_ms() + (ra > 0 ? ra : 1000);
        s->stats.deferred++;
        sched_schedule(s, f, inv, invlen, (int)att, a->next, a);
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
    sched_schedule(s, f, inv, invlen, (int)att + 1, next, a);
}

void sched_queue_redeliver(scheduler_t *s, conn_t *c, const msgpack_object *f)
{
    const char *inv;
    size_t invlen;
    if (frame_get_str(f, PK_INVOCATION, &inv, &invlen) < 0 || invlen == 0 ||
        invlen >= INVOCATION_ID_LEN) {
        conn_close(c, "malformed REDELIVER frame");
        return;
    }
    sched_ack_t *a = sched_ack_new(s, c, inv, invlen);
    if (!a) return;
    a->redeliver = 1;
    s->stats.redelivered++;
    sched_schedule(s, f, inv, invlen, 1, time_now_ms(), a);
}

void sched_queue_resume(scheduler_t *s, const msgpack_object *f, int attempt)
{
    const char *inv;
    size_t invlen;
    if (frame_get_str(f, PK_INVOCATION, &inv, &invlen) < 0 || invlen == 0 ||
        invlen >= INVOCATION_ID_LEN)
        return;
    sched_ack_t *a = sched_ack_new(s, NULL, inv, invlen);
    if (!a) return;
    a->redeliver = 1; /* no one to answer; the record is marked once durable */
    sched_schedule(s, f, inv, invlen, attempt, time_now_ms(), a);
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
    msgpack_unpacked_init(&up);
    int rc = journal_read(s->journal, e->pos, &rec, &len);
    if (rc < 0 || msgpack_unpack_next(&up, rec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        /* Sent as an empty job: the sender reports it failed, so it ends visibly. */
        log_error("journal: retry record of %s unreadable (%s)", sched_id_str(e, id),
                  rc < 0 ? strerror(-rc) : "not msgpack");
    }
    const msgpack_object *f = &up.data;
    const char *keys[] = {PK_WEBHOOK, PK_EVENT_ID, PK_EVENT_TYPE, PK_BODY};
    int64_t ca = 0;
    frame_get_i64(f, PK_CREATED, &ca);
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 9);
    frame_pack_kv_u64(pk, PK_TYPE, PT_JOB);
    frame_pack_kv_u64(pk, PK_SEQ, seq);
    frame_pack_kv_str(pk, PK_INVOCATION, sched_id_str(e, id));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = "";
        size_t n = 0;
        if (f->type == MSGPACK_OBJECT_MAP) frame_get_str(f, keys[i], &v, &n);
        frame_pack_kv_strn(pk, keys[i], v, n);
    }
    frame_pack_kv_i64(pk, PK_ATTEMPT, e->attempt);
    frame_pack_kv_i64(pk, PK_CREATED, ca);
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
        e->due = due;
        e->pos = pos;
    } else {
        if (e && e->gen == gen) sched_forget(s, e);
        journal_release(s->journal, pos);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

/* sched_compact_visit names every pending retry whose record lies in segment seg. */
static void sched_compact_visit(void *arg, uint32_t seg, committer_moves_t *m)
{
    scheduler_t *s = arg;
    sched_entry_t *e;
    for (size_t i = 0; (e = sched_index_next(&s->index, &i));)
        if (journal_pos_segment(e->pos) <= seg) committer_move(m, &e->pos);
}

int sched_queue_open(scheduler_t *s)
{
    char dir[4096], err[256];
    sched_index_init(&s->index);
    sched_heap_init(&s->due);
    s->next_gen = 1;
    TAILQ_INIT(&s->acks);
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
    if (rc == 0) committer_compact_every(s->commit, 1000, 4, sched_compact_visit, s);
    return rc;
}

void sched_queue_peer_down(scheduler_t *s, conn_t *c)
{
    sched_ack_t *a;
    TAILQ_FOREACH(a, &s->acks, link)
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
    return dispatch_inflight(s->senders) == 0 && TAILQ_EMPTY(&s->acks);
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
