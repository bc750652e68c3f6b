/* ingest_queue.c - the ingest journal: accepted events stay in it until a router acknowledges
 * them; after a restart the unacknowledged ones are handed out again. What waits for a router
 * is kept as journal positions only; a body is read back from the journal when it is sent. */
#include "domain/proto.h"
#include "ingest.h"
#include "util/frame.h"
#include "util/log.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Journal record kinds: "e" an accepted event (live), "a" its acknowledgement (marker). */
#define REC_KIND "k"
#define REC_DEDUPE_KEY "dk" /* an event's dedupe key: project_id, NUL, id (the producer's ids) */
#define REC_AT "at"         /* its accept time, unix seconds */

#define RING_MIN 1024 /* the waiting ring never shrinks below this many slots */
/* A backlog this large (events, or bytes in flight) is followed by malloc_trim once gone. */
#define TRIM_AFTER_EVENTS 4096u
#define TRIM_AFTER_BYTES (4u << 20)

/* One event handed to the dispatcher: allocated only while a router holds it (at most
 * --window per router, and --window-bytes of records), never for an event that waits. */
typedef struct ingest_flight {
    dispatch_item_t item; /* first: the dispatcher hands this pointer back */
    journal_pos_t pos;
    uint64_t seq;   /* journal seq, read from the record when first sent */
    uint32_t bytes; /* record size, counted in inflight_bytes from the first send */
    uint8_t sent;   /* handed out before: what goes out again may be a copy */
} ingest_flight_t;

/* --- the waiting ring --- */

/* ring_resize moves the ring's entries, in order, into a new array of cap slots (a power of two,
 * at least r->n). Returns 0 or -ENOMEM (the ring is then unchanged). */
static int ring_resize(ingest_ring_t *r, size_t cap)
{
    journal_pos_t *v = malloc(cap * sizeof *v);
    if (!v) return -ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        v[i] = r->v[(r->head + i) & (r->cap - 1)];
    free(r->v);
    r->v = v;
    r->cap = cap;
    r->head = 0;
    return 0;
}

/* ring_push appends a position. Returns 0 or -ENOMEM. */
static int ring_push(ingest_ring_t *r, journal_pos_t pos)
{
    if (r->n == r->cap && ring_resize(r, r->cap ? r->cap * 2 : RING_MIN) < 0) return -ENOMEM;
    r->v[(r->head + r->n) & (r->cap - 1)] = pos;
    r->n++;
    return 0;
}

/* ring_pop takes the oldest position (the ring is not empty) and gives memory back once the
 * ring is mostly empty. */
static journal_pos_t ring_pop(ingest_ring_t *r)
{
    journal_pos_t pos = r->v[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
    if (r->cap > RING_MIN && r->n < r->cap / 4) ring_resize(r, r->cap / 2); /* may fail: fine */
    return pos;
}

/* --- handing events to routers --- */

/* ingest_send reads the event back from the journal and packs the EVENT frame for a router. An
 * unreadable record goes out with an empty event: the router drops it with an error and
 * acknowledges it, so it ends visibly instead of holding a window slot forever. */
static void ingest_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq)
{
    ingest_t *in = ctx;
    ingest_flight_t *fl = (ingest_flight_t *)it;
    void *rec = NULL;
    size_t len = 0;
    const char *js = "";
    size_t jslen = 0;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = journal_read(in->journal, fl->pos, &rec, &len);
    if (rc == 0 && msgpack_unpack_next(&up, rec, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP &&
        frame_get_str(&up.data, PK_EVENT_JSON, &js, &jslen) == 0) {
        frame_get_u64(&up.data, PK_SEQ, &fl->seq);
    } else {
        log_error("journal: event record at segment %u offset %llu unreadable (%s); the router "
                  "will drop it",
                  journal_pos_segment(fl->pos), (unsigned long long)(fl->pos & 0xffffffffu),
                  rc < 0 ? strerror(-rc) : "not an event record");
        js = "";
        jslen = 0;
    }
    if (!fl->bytes) {
        fl->bytes = len ? (uint32_t)len : 1;
        in->inflight_bytes += fl->bytes;
    }
    /* sent before on a connection that dropped, or accepted before a restart: a copy maybe */
    int copy = fl->sent || fl->seq < in->first_seq;
    fl->sent = 1;
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 5);
    frame_pack_kv_u64(pk, PK_TYPE, PT_EVENT);
    frame_pack_kv_u64(pk, PK_SEQ, seq);
    frame_pack_kv_strn(pk, PK_EVENT_JSON, js, jslen);
    frame_pack_kv_u64(pk, PK_COPY, (uint64_t)copy);
    /* at least the version it was accepted under: the loaded one only moves forward */
    frame_pack_kv_i64(pk, PK_CFG_VERSION, cfgwatch_version(in->cfg));
    conn_frame_end(c);
    msgpack_unpacked_destroy(&up);
    free(rec);
}

/* ingest_maybe_trim gives freed heap memory back to the system once a large backlog is gone:
 * glibc keeps freed memory in its arenas, so a drained backlog would stay in the RSS. */
static void ingest_maybe_trim(ingest_t *in)
{
    size_t backlog = in->waiting.n + dispatch_queued(in->routers) + dispatch_inflight(in->routers);
    if (backlog > in->backlog_peak) in->backlog_peak = backlog;
    if (in->inflight_bytes > in->bytes_peak) in->bytes_peak = in->inflight_bytes;
    if (backlog == 0 &&
        (in->backlog_peak >= TRIM_AFTER_EVENTS || in->bytes_peak >= TRIM_AFTER_BYTES)) {
        in->backlog_peak = in->bytes_peak = 0;
        malloc_trim(0);
    }
}

/* ingest_feed hands waiting events to the dispatcher while a router has room, by count
 * (--window per router) and by bytes (--window-bytes per router), so neither ingest's output
 * buffers nor a router hold more than that whatever the backlog. */
static void ingest_feed(ingest_t *in)
{
    dispatch_t *d = in->routers;
    size_t peers = dispatch_peers(d);
    while (in->waiting.n && peers && dispatch_queued(d) == 0 &&
           dispatch_inflight(d) < (size_t)in->window * peers &&
           in->inflight_bytes < in->window_bytes * peers) {
        ingest_flight_t *fl = calloc(1, sizeof *fl);
        if (!fl) {
            log_error("out of memory handing events to routers; trying again at the next ack");
            break;
        }
        fl->pos = ring_pop(&in->waiting);
        dispatch_push(d, &fl->item); /* sends it now: a router has room */
    }
    ingest_maybe_trim(in);
}

/* --- replay --- */

/* During replay the unacknowledged events are an open-addressing table seq -> position (16
 * bytes a slot, at most half full), not copies of the events. */
typedef struct replay_slot {
    uint64_t seq; /* 0: empty */
    journal_pos_t pos;
} replay_slot_t;

typedef struct replay_state {
    ingest_t *in;
    replay_slot_t *t;
    size_t cap, n; /* cap a power of two */
    uint64_t records, bad;
} replay_state_t;

/* replay_hash spreads seqs (consecutive numbers) over the table. */
static size_t replay_hash(uint64_t seq)
{
    seq ^= seq >> 33;
    seq *= 0xff51afd7ed558ccdull;
    seq ^= seq >> 33;
    return (size_t)seq;
}

/* replay_find returns the slot of seq, or the empty slot where it would go. */
static size_t replay_find(const replay_state_t *rs, uint64_t seq)
{
    size_t i = replay_hash(seq) & (rs->cap - 1);
    while (rs->t[i].seq && rs->t[i].seq != seq)
        i = (i + 1) & (rs->cap - 1);
    return i;
}

/* replay_grow doubles the table. Returns 0 or -ENOMEM. */
static int replay_grow(replay_state_t *rs)
{
    size_t cap = rs->cap ? rs->cap * 2 : 4096;
    replay_slot_t *old = rs->t, *t = calloc(cap, sizeof *t);
    size_t oldcap = rs->cap;
    if (!t) return -ENOMEM;
    rs->t = t;
    rs->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].seq) rs->t[replay_find(rs, old[i].seq)] = old[i];
    free(old);
    return 0;
}

/* replay_remove empties slot i, shifting back the entries of its probe run. */
static void replay_remove(replay_state_t *rs, size_t i)
{
    size_t mask = rs->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!rs->t[j].seq) break;
        size_t k = replay_hash(rs->t[j].seq) & mask;
        /* the entry at j may fill the hole at i unless its home k lies cyclically in (i, j] */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        rs->t[i] = rs->t[j];
        i = j;
    }
    rs->t[i].seq = 0;
    rs->n--;
}

/* ingest_replay_record applies one journal record to the set of unacknowledged events. */
static int ingest_replay_record(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    replay_state_t *rs = arg;
    ingest_t *in = rs->in;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    rs->records++;
    if (msgpack_unpack_next(&up, rec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        log_warn("journal: record at %llu:%llu is not a msgpack map; skipped",
                 (unsigned long long)(pos >> 32), (unsigned long long)(pos & 0xffffffffu));
        rs->bad++;
        journal_release(in->journal, pos);
        msgpack_unpacked_destroy(&up);
        return 0;
    }
    const char *kind = "", *js;
    size_t klen = 0, jslen;
    uint64_t seq = 0;
    frame_get_u64(&up.data, PK_SEQ, &seq);
    if (seq >= in->next_seq) in->next_seq = seq + 1;
    frame_get_str(&up.data, REC_KIND, &kind, &klen);
    const char *dkey;
    size_t dlen;
    uint64_t at = 0;
    /* every event record still on disk, acknowledged or not, puts its key back: its index write
     * may have been lost (the record is released only once the index holds the key) */
    if (in->dedupe && klen == 1 && kind[0] == 'e' &&
        frame_get_str(&up.data, REC_DEDUPE_KEY, &dkey, &dlen) == 0 &&
        frame_get_u64(&up.data, REC_AT, &at) == 0 &&
        ingest_dedupe_replay(in->dedupe, dkey, dlen, at) < 0) {
        msgpack_unpacked_destroy(&up);
        return -ENOMEM;
    }
    if (klen == 1 && kind[0] == 'e' && seq &&
        frame_get_str(&up.data, PK_EVENT_JSON, &js, &jslen) == 0) {
        if ((rs->n + 1) * 2 > rs->cap && replay_grow(rs) < 0) {
            msgpack_unpacked_destroy(&up);
            return -ENOMEM;
        }
        size_t i = replay_find(rs, seq);
        if (rs->t[i].seq) { /* same seq twice (a compaction copy): keep the first */
            journal_release(in->journal, pos);
        } else {
            rs->t[i] = (replay_slot_t){seq, pos};
            rs->n++;
        }
    } else if (klen == 1 && kind[0] == 'a') {
        if (rs->cap) {
            size_t i = replay_find(rs, seq);
            if (rs->t[i].seq) {
                journal_release(in->journal, rs->t[i].pos);
                replay_remove(rs, i);
            }
        }
        journal_release(in->journal, pos);
    } else {
        rs->bad++;
        journal_release(in->journal, pos);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

/* replay_cmp orders the table's entries by seq (the order they were accepted in). */
static int replay_cmp(const void *a, const void *b)
{
    uint64_t x = ((const replay_slot_t *)a)->seq, y = ((const replay_slot_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/* replay_finish queues what the table holds in seq order and frees the table. Returns 0 or
 * -ENOMEM. */
static int replay_finish(replay_state_t *rs)
{
    ingest_t *in = rs->in;
    size_t n = 0;
    for (size_t i = 0; i < rs->cap; i++)
        if (rs->t[i].seq) rs->t[n++] = rs->t[i];
    if (n) qsort(rs->t, n, sizeof *rs->t, replay_cmp); /* rs->t is NULL when nothing was read */
    size_t cap = RING_MIN;
    while (cap < n)
        cap *= 2;
    int rc = ring_resize(&in->waiting, cap);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ring_push(&in->waiting, rs->t[i].pos);
    in->stats.replayed = n;
    free(rs->t);
    rs->t = NULL;
    rs->cap = rs->n = 0;
    malloc_trim(0); /* the table is gone: give it back */
    return rc;
}

/* --- compaction --- */

typedef struct compact_state {
    uint32_t seg;
    committer_moves_t *m;
    committer_move_t *moves;
    size_t *order, n; /* indices of moves sorted by old position */
    int commit;
} compact_state_t;

/* ingest_compact_one names one in-flight event's record when it lies in the segment being
 * compacted. */
static void ingest_compact_one(void *arg, dispatch_item_t *it)
{
    compact_state_t *cs = arg;
    ingest_flight_t *fl = (ingest_flight_t *)it;
    if (journal_pos_segment(fl->pos) <= cs->seg) committer_move(cs->m, fl->pos);
}

/* ingest_compact_visit: every event not yet acknowledged by a router has its position in
 * exactly one place: a slot of the waiting ring, or the flight record in the dispatcher. Only
 * the flight records are named. What pins old segments is an event a router holds and does not
 * acknowledge; the ring is handed out oldest first, so its entries in the oldest segments are
 * the next to be sent and released, and copying them (a draining backlog makes the oldest
 * segment half dead every second) would only buffer up to half a segment of copies in memory.
 * What is named is bounded by the routers' byte windows. */
static void ingest_compact_visit(void *arg, uint32_t seg, committer_moves_t *m)
{
    ingest_t *in = arg;
    compact_state_t cs = {.seg = seg, .m = m};
    dispatch_foreach(in->routers, ingest_compact_one, &cs);
}

static const committer_move_t *ingest_sort_moves;

/* ingest_cmp_move orders move indices by old position (qsort). */
static int ingest_cmp_move(const void *a, const void *b)
{
    journal_pos_t x = ingest_sort_moves[*(const size_t *)a].old;
    journal_pos_t y = ingest_sort_moves[*(const size_t *)b].old;
    return x < y ? -1 : x > y;
}

/* ingest_relocate_one marks (and on commit moves) an event whose record is being moved. */
static void ingest_relocate_one(void *arg, dispatch_item_t *it)
{
    compact_state_t *cs = arg;
    ingest_flight_t *fl = (ingest_flight_t *)it;
    size_t lo = 0, hi = cs->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        journal_pos_t p = cs->moves[cs->order[mid]].old;
        if (p == fl->pos) {
            committer_move_t *mv = &cs->moves[cs->order[mid]];
            mv->held = 1;
            if (cs->commit) fl->pos = mv->new;
            return;
        }
        if (p < fl->pos)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* ingest_compact_relocate: which moved records are still events a router holds, and on commit
 * their new positions. */
static void ingest_compact_relocate(void *arg, committer_move_t *moves, size_t n, int commit)
{
    ingest_t *in = arg;
    compact_state_t cs = {.moves = moves, .n = n, .commit = commit};
    if (n == 0 || !(cs.order = malloc(n * sizeof *cs.order))) return; /* none held: none moved */
    for (size_t i = 0; i < n; i++)
        cs.order[i] = i;
    ingest_sort_moves = moves;
    qsort(cs.order, n, sizeof *cs.order, ingest_cmp_move);
    dispatch_foreach(in->routers, ingest_relocate_one, &cs);
    free(cs.order);
}

/* --- the dedupe index's side of the journal --- */

/* ingest_defer_release releases the acknowledged records whose keys the index now holds. */
static void ingest_defer_release(void *arg)
{
    ingest_t *in = arg;
    uint64_t written = ingest_dedupe_written(in->dedupe);
    while (in->defer_n && in->defer[in->defer_head].need <= written) {
        journal_release(in->journal, in->defer[in->defer_head].pos);
        in->defer_head = (in->defer_head + 1) & (in->defer_cap - 1);
        in->defer_n--;
    }
}

/* ingest_release releases an acknowledged event's record now, or once the index holds every
 * key queued so far (its own among them). */
static void ingest_release(ingest_t *in, journal_pos_t pos)
{
    uint64_t need = in->dedupe ? ingest_dedupe_queued(in->dedupe) : 0;
    if (!in->dedupe || ingest_dedupe_written(in->dedupe) >= need) {
        journal_release(in->journal, pos);
        return;
    }
    if (in->defer_n == in->defer_cap) {
        size_t cap = in->defer_cap ? in->defer_cap * 2 : 1024;
        ingest_defer_t *v = malloc(cap * sizeof *v);
        if (!v) { /* kept live: replayed (and routed again) after a restart, never lost */
            log_error("out of memory: an acknowledged event stays in the journal");
            return;
        }
        for (size_t i = 0; i < in->defer_n; i++)
            v[i] = in->defer[(in->defer_head + i) & (in->defer_cap - 1)];
        free(in->defer);
        in->defer = v;
        in->defer_cap = cap;
        in->defer_head = 0;
    }
    in->defer[(in->defer_head + in->defer_n) & (in->defer_cap - 1)] = (ingest_defer_t){pos, need};
    in->defer_n++;
}

/* ingest_queue_dedupe_open opens the dedupe index under DATA/dedupe. */
static int ingest_queue_dedupe_open(ingest_t *in)
{
    char dir[4096], err[512];
    snprintf(dir, sizeof dir, "%s/dedupe", daemon_data_dir(in->d));
    fsync_policy_t policy = daemon_fsync(in->d);
    ingest_dedupe_opts_t o = {.dir = dir,
                              .window_s = in->dedupe_window,
                              .do_fsync = policy != FSYNC_OFF,
                              .batch_ms = 10,
                              .on_written = ingest_defer_release,
                              .written_arg = in};
    int rc = ingest_dedupe_open(&in->dedupe, daemon_loop(in->d), &o, err, sizeof err);
    if (rc < 0) log_error("dedupe index %s: %s", dir, err);
    return rc;
}

/* --- the queue's interface --- */

int ingest_queue_open(ingest_t *in)
{
    char dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s/journal", daemon_data_dir(in->d));
    int rc =
        journal_open(&in->journal, dir, "ingest", daemon_segment_bytes(in->d), err, sizeof err);
    if (rc < 0) {
        log_error("journal %s: %s", dir, err);
        return rc;
    }
    rc = dispatch_init(&in->routers, in->window, ingest_send, in);
    if (rc < 0) return rc;
    if (in->dedupe_window && (rc = ingest_queue_dedupe_open(in)) < 0) return rc;
    replay_state_t rs = {.in = in};
    in->next_seq = 1;
    rc = journal_replay(in->journal, ingest_replay_record, &rs);
    if (rc == 0) {
        rc = replay_finish(&rs);
        if (rc < 0) log_error("journal %s: out of memory queuing the replayed events", dir);
    } else {
        free(rs.t);
        log_error("journal %s: replay failed: %s", dir, strerror(-rc));
    }
    if (rc < 0) return rc;
    log_info("journal %s: %llu records read, %llu events not yet routed%s", dir,
             (unsigned long long)rs.records, (unsigned long long)in->stats.replayed,
             rs.bad ? " (some unreadable records skipped)" : "");
    in->first_seq = in->next_seq; /* what was accepted before this start may be a copy */
    rc = committer_init(&in->commit, daemon_loop(in->d), in->journal, daemon_fsync(in->d), 10);
    if (rc == 0)
        committer_compact_every(in->commit, 1000, 4, ingest_compact_visit, ingest_compact_relocate,
                                in);
    return rc;
}

int ingest_queue_append(ingest_t *in, const json_t *event, const char *dkey, size_t dlen,
                        uint64_t at_s, journal_pos_t *pos, size_t *bytes, char *err, size_t errlen)
{
    char *js = json_dumps(event, JSON_COMPACT);
    if (!js) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    uint64_t seq = in->next_seq;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, dkey ? 5 : 3);
    frame_pack_kv_str(&pk, REC_KIND, "e");
    frame_pack_kv_u64(&pk, PK_SEQ, seq);
    frame_pack_kv_strn(&pk, PK_EVENT_JSON, js, strlen(js));
    free(js);
    if (dkey) {
        frame_pack_kv_strn(&pk, REC_DEDUPE_KEY, dkey, dlen);
        frame_pack_kv_u64(&pk, REC_AT, at_s);
    }
    int rc = journal_append(in->journal, sb.data, sb.size, 1, pos, err, errlen);
    *bytes = sb.size;
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) in->next_seq++;
    return rc;
}

void ingest_queue_accepted(ingest_t *in, journal_pos_t pos)
{
    if (ring_push(&in->waiting, pos) < 0) {
        /* It stays live in the journal: the next restart hands it out. */
        log_error("out of memory queuing an accepted event; it is routed after a restart");
        return;
    }
    ingest_feed(in);
}

void ingest_queue_unappend(ingest_t *in, journal_pos_t pos)
{
    if (journal_unappend(in->journal, pos, 1) < 0)
        log_error("journal: event at segment %u offset %llu could not be taken back; it may be "
                  "routed after a restart",
                  journal_pos_segment(pos), (unsigned long long)(pos & 0xffffffffu));
}

void ingest_queue_router_up(ingest_t *in, conn_t *c)
{
    if (daemon_draining(in->d)) return;
    dispatch_add_peer(in->routers, c);
    ingest_feed(in);
}

void ingest_queue_router_down(ingest_t *in, conn_t *c)
{
    dispatch_remove_peer(in->routers, c); /* what it held is queued again, at the front */
}

/* ingest_marker_synced: acknowledgement markers need no follow-up once written. */
static void ingest_marker_synced(void *arg, int status)
{
    (void)arg;
    (void)status;
}

void ingest_queue_ack(ingest_t *in, conn_t *c, uint64_t seq)
{
    ingest_flight_t *fl = (ingest_flight_t *)dispatch_ack(in->routers, c, seq);
    if (!fl) return; /* stale: sent again elsewhere after a reconnect */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    frame_pack_kv_str(&pk, REC_KIND, "a");
    frame_pack_kv_u64(&pk, PK_SEQ, fl->seq);
    char err[256];
    journal_pos_t pos;
    /* A lost marker only means the event is routed again after a crash (a duplicate). */
    if (journal_append(in->journal, sb.data, sb.size, 0, &pos, err, sizeof err) < 0)
        log_warn("journal: acknowledgement of event %llu not recorded: %s",
                 (unsigned long long)fl->seq, err);
    msgpack_sbuffer_destroy(&sb);
    committer_after(in->commit, ingest_marker_synced, in);
    ingest_release(in, fl->pos);
    in->inflight_bytes -= fl->bytes;
    in->stats.delivered++;
    free(fl);
    ingest_feed(in);
}

typedef struct foreach_ctx {
    void (*cb)(void *arg, journal_pos_t pos);
    void *arg;
} foreach_ctx_t;

/* ingest_foreach_flight hands one dispatched event's position on. */
static void ingest_foreach_flight(void *arg, dispatch_item_t *it)
{
    foreach_ctx_t *fx = arg;
    fx->cb(fx->arg, ((ingest_flight_t *)it)->pos);
}

void ingest_queue_foreach(ingest_t *in, void (*cb)(void *arg, journal_pos_t pos), void *arg)
{
    for (size_t i = 0; i < in->waiting.n; i++)
        cb(arg, in->waiting.v[(in->waiting.head + i) & (in->waiting.cap - 1)]);
    foreach_ctx_t fx = {cb, arg};
    if (in->routers) dispatch_foreach(in->routers, ingest_foreach_flight, &fx);
}

size_t ingest_queue_waiting(ingest_t *in)
{
    return in->waiting.n + (in->routers ? dispatch_queued(in->routers) : 0);
}

void ingest_queue_close(ingest_t *in)
{
    if (in->commit) committer_close(in->commit);
    in->commit = NULL;
    if (in->dedupe) ingest_dedupe_close(in->dedupe); /* writes what is committed */
    in->dedupe = NULL;
    free(in->defer); /* their records stay live: replay sees their markers */
    in->defer = NULL;
    in->defer_cap = in->defer_head = in->defer_n = 0;
    if (in->routers) {
        dispatch_item_t *it;
        while ((it = dispatch_pop_any(in->routers)))
            free(it);
        dispatch_close(in->routers);
        in->routers = NULL;
    }
    free(in->waiting.v);
    in->waiting = (ingest_ring_t){0};
    if (in->journal) journal_close(in->journal);
    in->journal = NULL;
}
