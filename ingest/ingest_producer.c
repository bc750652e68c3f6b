/* ingest_producer.c - the producer protocol on run/ingest.sock: JSON Lines or a stream of
 * msgpack maps; one reply per line or map, in order, sent once the events are durable. A
 * producer is paused (not read) while ingest cannot keep up with it: too many bytes appended and
 * not yet synced, or too many of its replies unread. */
#include "domain/event.h"
#include "ingest.h"
#include "util/frame.h"
#include "util/log.h"
#include "util/mpjson.h"
#include "util/timeutil.h"
#include "util/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MAX_DEPTH 64

/* Flow control. Events waiting for a router never pause anyone (they wait on disk); these do. */
#define UNSYNCED_MAX (16u << 20)           /* appended, not yet synced: pause every producer */
#define UNSYNCED_RESUME (UNSYNCED_MAX / 2) /* ... and read again below this */
#define OUT_MAX (1u << 20)                 /* a producer's replies written but not read by it */
#define OUT_RESUME (OUT_MAX / 4)
#define WAITING_MAX 65536u /* a producer's replies not yet written (waiting for a sync) */
#define WAITING_RESUME (WAITING_MAX / 2)
#define THROTTLE_MS 5 /* how often a producer paused for its unread replies is looked at */
#define DEDUPE_BACKLOG_MAX 65536u /* keys accepted and not yet in the dedupe index */
#define DEDUPE_BACKLOG_RESUME (DEDUPE_BACKLOG_MAX / 2)

enum { MODE_UNKNOWN = 0, MODE_JSON, MODE_MSGPACK };

typedef struct reply reply_t;
typedef struct producer producer_t;

/* One line's answer; waits in order until the events it accepted are durable. */
struct reply {
    TAILQ_ENTRY(reply) link;
    producer_t *p;
    int ready, ok;
    uint64_t line;
    char *error;
    journal_pos_t pos[2]; /* the events' records, queued for the routers once durable */
    char *ids[2];         /* the events' ids, for the reply */
    int nevents;
    size_t bytes;              /* journal bytes appended for this line, counted in unsynced_bytes */
    int duplicate;             /* accepted before: answered with "duplicate": true */
    ingest_dedupe_entry_t *dd; /* the first copy's dedupe entry (a reference), see below */
};

struct producer {
    ingest_t *in;
    conn_t *c; /* NULL once the connection is gone */
    int mode;
    char *buf;
    size_t len, cap;
    int discarding; /* inside a line over the size limit */
    int held;       /* input ended with replies still owed: we close once they are written */
    int stopped;    /* undecodable input: nothing more is read */
    int paused;     /* not read while ingest cannot keep up with it (producer_throttle) */
    uint64_t line;
    TAILQ_HEAD(, reply) replies;
    size_t waiting;             /* replies not yet written */
    TAILQ_ENTRY(producer) link; /* in ingest_t.producers */
};

/* producer_free releases a producer whose connection is gone and whose replies are settled. */
static void producer_maybe_free(producer_t *p)
{
    if (p->c || p->waiting) return;
    TAILQ_REMOVE(&p->in->producers, p, link);
    free(p->buf);
    free(p);
}

/* reply_encode writes one reply in the producer's encoding. */
static void reply_encode(producer_t *p, reply_t *r)
{
    if (p->mode == MODE_MSGPACK) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, r->ok ? 2 + (r->duplicate != 0) : 3);
        msgpack_pack_str_with_body(&pk, "ok", 2);
        if (r->ok) {
            msgpack_pack_true(&pk);
            msgpack_pack_str_with_body(&pk, "ids", 3);
            msgpack_pack_array(&pk, r->nevents);
            for (int i = 0; i < r->nevents; i++)
                msgpack_pack_str_with_body(&pk, r->ids[i], strlen(r->ids[i]));
            if (r->duplicate) {
                msgpack_pack_str_with_body(&pk, "duplicate", 9);
                msgpack_pack_true(&pk);
            }
        } else {
            msgpack_pack_false(&pk);
            msgpack_pack_str_with_body(&pk, "line", 4);
            msgpack_pack_uint64(&pk, r->line);
            msgpack_pack_str_with_body(&pk, "error", 5);
            msgpack_pack_str_with_body(&pk, r->error, strlen(r->error));
        }
        conn_write_raw(p->c, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(r->ok));
    if (r->ok) {
        json_t *ids = json_array();
        for (int i = 0; i < r->nevents; i++)
            json_array_append_new(ids, json_string(r->ids[i]));
        json_object_set_new(o, "ids", ids);
        if (r->duplicate) json_object_set_new(o, "duplicate", json_true());
    } else {
        json_object_set_new(o, "line", json_integer((json_int_t)r->line));
        json_object_set_new(o, "error", json_string(r->error));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        size_t n = strlen(s);
        s[n] = '\n'; /* json_dumps leaves room: replace the NUL, write n + 1 */
        conn_write_raw(p->c, s, n + 1);
        free(s);
    }
}

/* --- flow control --- */

/* producer_over: whether p should not be read now. Each limit has a lower resume mark, so a
 * producer is not paused and resumed on every read. */
static int producer_over(producer_t *p)
{
    if (p->in->sync_paused) return 1;
    size_t out = conn_out_pending(p->c);
    size_t keys = p->in->dedupe ? ingest_dedupe_backlog(p->in->dedupe) : 0;
    if (p->paused)
        return out > OUT_RESUME || p->waiting > WAITING_RESUME || keys > DEDUPE_BACKLOG_RESUME;
    return out > OUT_MAX || p->waiting > WAITING_MAX || keys > DEDUPE_BACKLOG_MAX;
}

static void producer_on_throttle(uv_timer_t *t);

/* producer_throttle pauses or resumes reading p as the limits say. A stream at EOF, stopped for
 * bad input, or paused by a drain is left alone. */
static void producer_throttle(producer_t *p)
{
    ingest_t *in = p->in;
    if (!p->c || p->stopped || p->held || daemon_draining(in->d)) return;
    int over = producer_over(p);
    if (over && !p->paused) {
        p->paused = 1;
        in->stats.paused++;
        conn_pause(p->c);
        /* Its output drains without telling us: look again every few ms while it is paused. */
        if (!uv_is_active((uv_handle_t *)&in->throttle))
            uv_timer_start(&in->throttle, producer_on_throttle, THROTTLE_MS, THROTTLE_MS);
    } else if (!over && p->paused) {
        p->paused = 0;
        conn_resume(p->c);
    }
}

/* producer_throttle_all applies the limits to every producer. */
static void producer_throttle_all(ingest_t *in)
{
    producer_t *p;
    int paused = 0;
    TAILQ_FOREACH(p, &in->producers, link)
    {
        producer_throttle(p);
        paused |= p->paused && p->c;
    }
    if (!paused) uv_timer_stop(&in->throttle);
}

/* producer_on_throttle looks again at the paused producers. */
static void producer_on_throttle(uv_timer_t *t)
{
    producer_throttle_all(t->data);
}

/* producer_unsynced counts journal bytes appended (n > 0) or answered by the committer (n < 0),
 * pausing every producer while too many wait for a sync. */
static void producer_unsynced(ingest_t *in, long long n)
{
    in->unsynced_bytes = (size_t)((long long)in->unsynced_bytes + n);
    if (!in->sync_paused && in->unsynced_bytes > UNSYNCED_MAX) {
        in->sync_paused = 1;
        log_debug("%zu bytes appended and not yet synced: producers paused", in->unsynced_bytes);
        producer_throttle_all(in);
    } else if (in->sync_paused && in->unsynced_bytes <= UNSYNCED_RESUME) {
        in->sync_paused = 0;
        producer_throttle_all(in);
    }
}

/* producer_flush writes the ready replies at the head of the queue, keeping their order. */
static void producer_flush(producer_t *p)
{
    reply_t *r;
    while ((r = TAILQ_FIRST(&p->replies)) && r->ready) {
        TAILQ_REMOVE(&p->replies, r, link);
        if (p->c) reply_encode(p, r);
        for (int i = 0; i < r->nevents; i++) {
            /* else: cut off by the sync, or a duplicate (nothing was journaled) */
            if (r->ok && !r->duplicate) ingest_queue_accepted(p->in, r->pos[i]);
            free(r->ids[i]);
        }
        p->waiting--;
        free(r->error);
        free(r);
    }
    if (p->held && p->c && !p->waiting) {
        p->held = 0;
        conn_close(p->c, NULL); /* writes the queued replies first */
    }
    producer_maybe_free(p);
}

/* reply_synced is the committer's answer for one accepted line. */
static void reply_synced(void *arg, int status)
{
    reply_t *r = arg;
    producer_t *p = r->p;
    ingest_t *in = p->in;
    int alive = p->c != NULL; /* else producer_flush may free it */
    r->ready = 1;
    producer_unsynced(in, -(long long)r->bytes);
    r->bytes = 0;
    if (r->dd && r->duplicate) {
        /* a copy that came while the first one's sync was under way: that callback ran before
         * this one; the copy is a duplicate only if the first one was accepted */
        status = ingest_dedupe_accepted(r->dd) == 1 ? 0 : status < 0 ? status : -EIO;
    } else if (r->dd && in->dedupe) {
        if (status == 0)
            ingest_dedupe_commit(in->dedupe, r->dd); /* written to the index by its next batch */
        else
            ingest_dedupe_abort(in->dedupe, r->dd); /* a retry is new */
    }
    ingest_dedupe_unref(r->dd);
    r->dd = NULL;
    if (status < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "not accepted: journal write failed: %s", strerror(-status));
        r->ok = 0;
        r->error = strdup(msg);
        if (r->duplicate)
            p->in->stats.duplicates--;
        else
            p->in->stats.lines_accepted--;
        r->duplicate = 0;
        p->in->stats.lines_rejected++;
        unsigned long held = 0; /* a full disk refuses every line: say so at a bounded rate */
        if (log_limit_pass(&p->in->refused_log, 10000, &held))
            log_error("line %llu: %s (%lu more lines refused so since the last such line)",
                      (unsigned long long)r->line, msg, held);
    }
    producer_flush(p);
    if (alive) producer_throttle(p);
}

/* producer_reject queues an error reply for the current line. */
static void producer_reject(producer_t *p, const char *reason)
{
    reply_t *r = calloc(1, sizeof *r);
    if (!r) return;
    r->p = p;
    r->ready = 1;
    r->line = p->line;
    r->error = strdup(reason);
    p->in->stats.lines_rejected++;
    TAILQ_INSERT_TAIL(&p->replies, r, link);
    p->waiting++;
}

/* producer_dedupe_key builds the dedupe key of an input event whose producer gave its id:
 * project_id, NUL, id, in buf when it fits (bufsize bytes), else in a malloc'd buffer. NULL when
 * either is not a string (the id is assigned here: it cannot have been accepted before; or the
 * event is refused) or memory ran short. */
static char *producer_dedupe_key(const json_t *obj, char *buf, size_t bufsize, size_t *len)
{
    const char *pid = json_string_value(json_object_get(obj, "project_id"));
    const char *id = json_string_value(json_object_get(obj, "id"));
    if (!pid || !id) return NULL;
    size_t a = strlen(pid), b = strlen(id);
    char *k = a + 1 + b <= bufsize ? buf : malloc(a + 1 + b);
    if (!k) return NULL;
    memcpy(k, pid, a);
    k[a] = '\0';
    memcpy(k + a + 1, id, b);
    *len = a + 1 + b;
    return k;
}

/* producer_duplicate answers a line whose event was accepted before: with the same ids and
 * "duplicate": true, journaling nothing (no derived event either). When the first copy's sync is
 * still under way (first != NULL), the answer waits for it behind the committer. */
static void producer_duplicate(producer_t *p, reply_t *r, json_t *out[2], int n,
                               ingest_dedupe_entry_t *first)
{
    ingest_t *in = p->in;
    r->duplicate = 1;
    for (int i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(out[i], "id"));
        if ((r->ids[r->nevents] = strdup(id ? id : ""))) r->nevents++;
        json_decref(out[i]);
    }
    in->stats.duplicates++;
    TAILQ_INSERT_TAIL(&p->replies, r, link);
    p->waiting++;
    if (!first) {
        r->ready = 1;
        return;
    }
    r->dd = first;
    committer_after(in->commit, reply_synced, r);
}

/* producer_accept normalizes one parsed input object, journals it, and queues its reply. */
static void producer_accept(producer_t *p, const json_t *obj)
{
    ingest_t *in = p->in;
    char err[512];
    json_t *out[2] = {NULL, NULL};
    const config_t *cfg = cfgwatch_config(in->cfg);
    int64_t now_ms = time_now_ms();
    /* The key is the input's project_id and id, which the normalized event keeps as they are:
     * taken first, so that the index's memory for it loads while the event is normalized. */
    size_t dlen = 0;
    uint64_t dhash = 0;
    char kbuf[512];
    char *dkey = in->dedupe ? producer_dedupe_key(obj, kbuf, sizeof kbuf, &dlen) : NULL;
    if (dkey) dhash = ingest_dedupe_prefetch(in->dedupe, dkey, dlen);
    int n = event_normalize(obj, cfg, now_ms, out, err, sizeof err);
    reply_t *r = n < 0 ? NULL : calloc(1, sizeof *r);
    if (!r) {
        for (int i = 0; i < n; i++)
            json_decref(out[i]);
        if (dkey != kbuf) free(dkey);
        producer_reject(p, n < 0 ? err : "out of memory");
        return;
    }
    r->p = p;
    r->ok = 1;
    r->line = p->line;
    if (dkey) {
        ingest_dedupe_entry_t *e = NULL; /* NEW: held now, so that a copy is PENDING */
        if (ingest_dedupe_claim_hashed(in->dedupe, dkey, dlen, dhash, &e) != INGEST_DEDUPE_NEW) {
            if (dkey != kbuf) free(dkey);
            producer_duplicate(p, r, out, n, e);
            return;
        }
        r->dd = e;
    }
    for (int i = 0; i < n; i++) {
        if (!event_is_routed(out[i], cfg)) in->stats.unrouted++;
        const char *id = json_string_value(json_object_get(out[i], "id"));
        size_t bytes = 0;
        int rc = (r->ids[i] = strdup(id ? id : "")) ? 0 : -ENOMEM;
        if (rc < 0)
            snprintf(err, sizeof err, "out of memory");
        else
            rc =
                ingest_queue_append(in, out[i], i == 0 ? dkey : NULL, dlen,
                                    (uint64_t)(now_ms / 1000), &r->pos[i], &bytes, err, sizeof err);
        if (rc < 0) {
            log_error("line %llu: not accepted: journal: %s", (unsigned long long)p->line, err);
            for (int j = r->nevents - 1; j >= 0; j--) /* all or nothing */
                ingest_queue_unappend(in, r->pos[j]);
            for (int j = 0; j <= i; j++)
                free(r->ids[j]);
            for (int j = i; j < n; j++)
                json_decref(out[j]);
            if (r->dd) ingest_dedupe_abort(in->dedupe, r->dd); /* not accepted: a retry is new */
            ingest_dedupe_unref(r->dd);
            free(r);
            if (dkey != kbuf) free(dkey);
            char msg[600];
            snprintf(msg, sizeof msg, "not accepted: journal: %s", err);
            producer_reject(p, msg);
            return;
        }
        r->nevents++;
        r->bytes += bytes;
        json_decref(out[i]);
    }
    if (dkey != kbuf) free(dkey);
    in->stats.lines_accepted++;
    in->stats.events += (uint64_t)n;
    TAILQ_INSERT_TAIL(&p->replies, r, link);
    p->waiting++;
    committer_after(in->commit, reply_synced, r);
    producer_unsynced(in, (long long)r->bytes); /* may pause every producer, p too */
}

/* producer_line handles one JSON Lines line (without its newline). */
static void producer_line(producer_t *p, const char *s, size_t n)
{
    p->line++;
    if (n && s[n - 1] == '\r') n--;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n) {
        producer_reject(p, "empty line");
        return;
    }
    char err[512];
    json_t *obj;
    if (event_parse_json(s, n, &obj, err, sizeof err) < 0) {
        producer_reject(p, err);
        return;
    }
    producer_accept(p, obj);
    json_decref(obj);
}

/* producer_buf_put appends bytes to the producer's buffer. Returns 0 or -ENOMEM. */
static int producer_buf_put(producer_t *p, const char *data, size_t n)
{
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) return -ENOMEM;
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    return 0;
}

/* producer_json splits buffered bytes into lines; a line over the limit is rejected whole. */
static void producer_json(producer_t *p, const char *data, size_t n)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (p->discarding) {
            if (nl) p->discarding = 0;
        } else if (p->len + take > EVENT_MAX_BYTES) {
            p->line++;
            char msg[128];
            snprintf(msg, sizeof msg, "line exceeds %u bytes", EVENT_MAX_BYTES);
            producer_reject(p, msg);
            p->len = 0;
            p->discarding = !nl;
        } else if (nl && p->len == 0) {
            producer_line(p, data, take); /* whole line in the read buffer: no copy */
        } else {
            if (producer_buf_put(p, data, take) < 0) {
                conn_close(p->c, "out of memory");
                return;
            }
            if (nl) {
                producer_line(p, p->buf, p->len);
                p->len = 0;
            }
        }
        if (!nl) break;
        data += take + 1;
        n -= take + 1;
    }
}

/* producer_msgpack_stop rejects the current map and closes: a stream that cannot be decoded
 * cannot be resynchronized. */
static void producer_msgpack_stop(producer_t *p, const char *reply, const char *why)
{
    log_warn("%s: %s", conn_name(p->c), why);
    p->line++;
    producer_reject(p, reply);
    p->len = 0;
    p->stopped = 1;
    p->held = 1; /* closed once every reply before this one is written */
    conn_pause(p->c);
    producer_flush(p);
}

/* producer_msgpack decodes a stream of msgpack maps. Each is measured with frame_scan before it
 * is unpacked, so a few bytes declaring a huge container cannot make msgpack allocate for it. */
static void producer_msgpack(producer_t *p, const char *data, size_t n)
{
    if (producer_buf_put(p, data, n) < 0) {
        conn_close(p->c, "out of memory");
        return;
    }
    size_t off = 0;
    while (p->c && off < p->len) {
        size_t used = 0;
        int rc = frame_scan(p->buf + off, p->len - off, EVENT_MAX_BYTES, &used);
        if (rc == 0 && p->len - off < EVENT_MAX_BYTES) break; /* wait for the rest */
        if (rc == 0 || rc == -EMSGSIZE) {
            producer_msgpack_stop(p, "frame exceeds 1048576 bytes; closing the stream",
                                  "producer sent an oversized msgpack frame");
            return;
        }
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (rc < 0 ||
            msgpack_unpack_next(&up, p->buf + off, used, NULL) != MSGPACK_UNPACK_SUCCESS) {
            msgpack_unpacked_destroy(&up);
            producer_msgpack_stop(p, "invalid msgpack; closing the stream",
                                  "producer sent invalid msgpack");
            return;
        }
        p->line++;
        char err[512];
        json_t *obj;
        if (up.data.type != MSGPACK_OBJECT_MAP) {
            producer_reject(p, "frame is not a map");
        } else if (mpjson_to_json(&up.data, EVENT_MAX_DEPTH, &obj, err, sizeof err) < 0) {
            producer_reject(p, err);
        } else {
            producer_accept(p, obj);
            json_decref(obj);
        }
        msgpack_unpacked_destroy(&up);
        off += used;
    }
    if (off) {
        memmove(p->buf, p->buf + off, p->len - off);
        p->len -= off;
    }
}

void ingest_producer_data(ingest_t *in, conn_t *c, const char *data, size_t n)
{
    producer_t *p = conn_data(c);
    if (!p) {
        if (n == 0) return;
        p = calloc(1, sizeof *p);
        if (!p) {
            conn_close(c, "out of memory");
            return;
        }
        p->in = in;
        p->c = c;
        TAILQ_INIT(&p->replies);
        unsigned char b = (unsigned char)data[0];
        p->mode = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf ? MODE_MSGPACK : MODE_JSON;
        conn_set_data(c, p);
        TAILQ_INSERT_TAIL(&in->producers, p, link);
    }
    if (p->stopped) return;
    cfgwatch_refresh(in->cfg); /* what was sent after a change returned is read with it */
    if (n == 0) {              /* EOF: a last line without newline still counts */
        if (p->mode == MODE_JSON && p->len && !p->discarding) {
            producer_line(p, p->buf, p->len);
            p->len = 0;
        }
        if (p->waiting) {
            p->held = 1;
            conn_hold(c);
        }
    } else if (p->mode == MODE_MSGPACK) {
        producer_msgpack(p, data, n);
    } else {
        producer_json(p, data, n);
    }
    if (p->c) {
        producer_flush(p);
        producer_throttle(p);
    }
}

void ingest_producer_down(ingest_t *in, conn_t *c)
{
    producer_t *p = conn_data(c);
    if (!p) return;
    conn_set_data(c, NULL);
    p->c = NULL;
    producer_flush(p); /* frees it unless replies still wait for the journal */
}

void ingest_producer_pause_all(ingest_t *in)
{
    producer_t *p;
    TAILQ_FOREACH(p, &in->producers, link)
    if (p->c) conn_pause(p->c);
}

size_t ingest_producer_paused(ingest_t *in)
{
    size_t n = 0;
    producer_t *p;
    TAILQ_FOREACH(p, &in->producers, link)
    n += p->c && p->paused;
    return n;
}

int ingest_producer_quiet(ingest_t *in)
{
    producer_t *p;
    TAILQ_FOREACH(p, &in->producers, link)
    {
        if (p->waiting || (p->c && conn_out_pending(p->c))) return 0;
    }
    return 1;
}

void ingest_producer_init(ingest_t *in)
{
    uv_timer_init(daemon_loop(in->d), &in->throttle); /* cannot fail on Unix */
    in->throttle.data = in;
    in->throttle_init = 1;
}

/* producer_throttle_closed: the timer lives inside ingest_t. */
static void producer_throttle_closed(uv_handle_t *h)
{
    (void)h;
}

void ingest_producer_close(ingest_t *in)
{
    if (in->throttle_init && !uv_is_closing((uv_handle_t *)&in->throttle))
        uv_close((uv_handle_t *)&in->throttle, producer_throttle_closed);
}
