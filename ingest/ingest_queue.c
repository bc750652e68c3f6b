/* ingest_queue.c - the ingest journal: accepted events stay in it until a router acknowledges
 * them; after a restart the unacknowledged ones are handed out again. */
#include "domain/proto.h"
#include "ingest.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Journal record kinds: "e" an accepted event (live), "a" its acknowledgement (marker). */
#define REC_KIND "k"

/* ingest_event_free releases one event's memory. */
static void ingest_event_free(ingest_event_t *ev)
{
    free(ev->js);
    free(ev);
}

/* ingest_send packs the EVENT frame for a router. */
static void ingest_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq)
{
    ingest_event_t *ev = (ingest_event_t *)it;
    msgpack_packer *pk = conn_frame_begin(c);
    msgpack_pack_map(pk, 3);
    frame_pack_kv_u64(pk, PK_TYPE, PT_EVENT);
    frame_pack_kv_u64(pk, PK_SEQ, seq);
    frame_pack_kv_strn(pk, PK_EVENT_JSON, ev->js, ev->jslen);
    conn_frame_end(c);
}

RB_HEAD(replay_tree, replay_node);
typedef struct replay_node {
    RB_ENTRY(replay_node) node;
    ingest_event_t *ev;
} replay_node_t;

/* replay_cmp orders replayed events by journal seq. */
static int replay_cmp(replay_node_t *a, replay_node_t *b)
{
    return a->ev->seq < b->ev->seq ? -1 : a->ev->seq > b->ev->seq;
}
RB_GENERATE_STATIC(replay_tree, replay_node, node, replay_cmp)

typedef struct replay_state {
    ingest_t *in;
    struct replay_tree tree;
    uint64_t records, bad;
} replay_state_t;

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
    const char *kind = "";
    size_t klen = 0;
    uint64_t seq = 0;
    frame_get_u64(&up.data, PK_SEQ, &seq);
    if (seq >= in->next_seq) in->next_seq = seq + 1;
    if (frame_get_str(&up.data, REC_KIND, &kind, &klen) == 0 && klen == 1 && kind[0] == 'e') {
        const char *js;
        size_t jslen;
        ingest_event_t *ev = calloc(1, sizeof *ev);
        replay_node_t *n = calloc(1, sizeof *n);
        if (!ev || !n || frame_get_str(&up.data, PK_EVENT_JSON, &js, &jslen) < 0 ||
            !(ev->js = strndup(js, jslen))) {
            free(ev);
            free(n);
            msgpack_unpacked_destroy(&up);
            return -ENOMEM;
        }
        ev->jslen = jslen;
        ev->seq = seq;
        ev->pos = pos;
        n->ev = ev;
        if (RB_INSERT(replay_tree, &rs->tree, n)) { /* same seq twice: keep the first */
            journal_release(in->journal, pos);
            ingest_event_free(ev);
            free(n);
        }
    } else if (klen == 1 && kind[0] == 'a') {
        ingest_event_t key_ev = {.seq = seq};
        replay_node_t key = {.ev = &key_ev};
        replay_node_t *n = RB_FIND(replay_tree, &rs->tree, &key);
        if (n) {
            RB_REMOVE(replay_tree, &rs->tree, n);
            journal_release(in->journal, n->ev->pos);
            ingest_event_free(n->ev);
            free(n);
        }
        journal_release(in->journal, pos);
    } else {
        rs->bad++;
        journal_release(in->journal, pos);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

typedef struct compact_state {
    uint32_t seg;
    committer_moves_t *m;
    committer_move_t *moves;
    size_t *order, n; /* indices of moves sorted by old position */
    int commit;
} compact_state_t;

/* ingest_compact_one names one event's record when it lies in the segments being compacted. */
static void ingest_compact_one(void *arg, dispatch_item_t *it)
{
    compact_state_t *cs = arg;
    ingest_event_t *ev = (ingest_event_t *)it;
    if (journal_pos_segment(ev->pos) <= cs->seg) committer_move(cs->m, ev->pos);
}

/* ingest_compact_visit: every event not yet acknowledged by a router is in the dispatcher. */
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
    ingest_event_t *ev = (ingest_event_t *)it;
    size_t lo = 0, hi = cs->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        journal_pos_t p = cs->moves[cs->order[mid]].old;
        if (p == ev->pos) {
            committer_move_t *mv = &cs->moves[cs->order[mid]];
            mv->held = 1;
            if (cs->commit) ev->pos = mv->new;
            return;
        }
        if (p < ev->pos)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* ingest_compact_relocate: which moved records are still events waiting for a router, and on
 * commit their new positions. */
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
    replay_state_t rs = {.in = in};
    RB_INIT(&rs.tree);
    in->next_seq = 1;
    rc = journal_replay(in->journal, ingest_replay_record, &rs);
    replay_node_t *n, *next;
    for (n = RB_MIN(replay_tree, &rs.tree); n; n = next) {
        next = RB_NEXT(replay_tree, &rs.tree, n);
        RB_REMOVE(replay_tree, &rs.tree, n);
        if (rc == 0) {
            in->stats.replayed++;
            dispatch_push(in->routers, &n->ev->item);
        } else {
            ingest_event_free(n->ev);
        }
        free(n);
    }
    if (rc < 0) {
        log_error("journal %s: replay failed: %s", dir, strerror(-rc));
        return rc;
    }
    log_info("journal %s: %llu records read, %llu events not yet routed%s", dir,
             (unsigned long long)rs.records, (unsigned long long)in->stats.replayed,
             rs.bad ? " (some unreadable records skipped)" : "");
    rc = committer_init(&in->commit, daemon_loop(in->d), in->journal, daemon_fsync(in->d), 10);
    if (rc == 0)
        committer_compact_every(in->commit, 1000, 4, ingest_compact_visit, ingest_compact_relocate,
                                in);
    return rc;
}

int ingest_queue_append(ingest_t *in, const json_t *event, ingest_event_t **out, char *err,
                        size_t errlen)
{
    ingest_event_t *ev = calloc(1, sizeof *ev);
    if (!ev) return -ENOMEM;
    ev->js = json_dumps(event, JSON_COMPACT);
    if (!ev->js) {
        free(ev);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ev->jslen = strlen(ev->js);
    ev->seq = in->next_seq++;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    frame_pack_kv_str(&pk, REC_KIND, "e");
    frame_pack_kv_u64(&pk, PK_SEQ, ev->seq);
    frame_pack_kv_strn(&pk, PK_EVENT_JSON, ev->js, ev->jslen);
    int rc = journal_append(in->journal, sb.data, sb.size, 1, &ev->pos, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        ingest_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void ingest_queue_accepted(ingest_t *in, ingest_event_t *ev)
{
    dispatch_push(in->routers, &ev->item);
}

void ingest_queue_unappend(ingest_t *in, ingest_event_t *ev)
{
    if (journal_unappend(in->journal, ev->pos, 1) < 0)
        log_error("journal: event %llu could not be taken back; it may be routed after a restart",
                  (unsigned long long)ev->seq);
    ingest_event_free(ev);
}

void ingest_queue_discard(ingest_t *in, ingest_event_t *ev)
{
    ingest_event_free(ev);
}

void ingest_queue_router_up(ingest_t *in, conn_t *c)
{
    if (daemon_draining(in->d)) return;
    dispatch_add_peer(in->routers, c);
}

void ingest_queue_router_down(ingest_t *in, conn_t *c)
{
    dispatch_remove_peer(in->routers, c);
}

/* ingest_marker_synced: acknowledgement markers need no follow-up once written. */
static void ingest_marker_synced(void *arg, int status)
{
    (void)arg;
    (void)status;
}

void ingest_queue_ack(ingest_t *in, conn_t *c, uint64_t seq)
{
    ingest_event_t *ev = (ingest_event_t *)dispatch_ack(in->routers, c, seq);
    if (!ev) return; /* stale: sent again elsewhere after a reconnect */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    frame_pack_kv_str(&pk, REC_KIND, "a");
    frame_pack_kv_u64(&pk, PK_SEQ, ev->seq);
    char err[256];
    journal_pos_t pos;
    /* A lost marker only means the event is routed again after a crash (a duplicate). */
    if (journal_append(in->journal, sb.data, sb.size, 0, &pos, err, sizeof err) < 0)
        log_warn("journal: acknowledgement of event %llu not recorded: %s",
                 (unsigned long long)ev->seq, err);
    msgpack_sbuffer_destroy(&sb);
    committer_after(in->commit, ingest_marker_synced, in);
    journal_release(in->journal, ev->pos);
    in->stats.delivered++;
    ingest_event_free(ev);
}

void ingest_queue_close(ingest_t *in)
{
    if (in->commit) committer_close(in->commit);
    in->commit = NULL;
    if (in->routers) {
        dispatch_item_t *it;
        while ((it = dispatch_pop_any(in->routers)))
            ingest_event_free((ingest_event_t *)it);
        dispatch_close(in->routers);
        in->routers = NULL;
    }
    if (in->journal) journal_close(in->journal);
    in->journal = NULL;
}
