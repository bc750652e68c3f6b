/* store.h - the SQLite store (DATA/hookline.db, WAL, busy timeout, mode 0600): configuration
 * and the delivery log. A store_t is used by one thread at a time; a process may open a second
 * one for store_checkpoint on a worker thread. */
#ifndef HL_STORE_H
#define HL_STORE_H

#include "domain/config.h"
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

/* store_set_busy: how long a call waits for another process's write lock (timeout_ms, tried
 * retries times) before failing with -EBUSY. The default (5 s, 6 times) suits hookctl; a
 * daemon's event loop must not stall that long, and retries from a timer instead. */
void store_set_busy(store_t *s, int timeout_ms, int retries);

/* store_open opens or creates the database and its schema. Returns 0 or a negative errno with
 * err ("hookline.db: ..."). */
int store_open(store_t **sp, const char *path, char *err, size_t errlen);
void store_close(store_t *s);

/* WAL checkpoints off the writer's thread. SQLite's automatic checkpoint runs inside the commit
 * that fills the WAL past 1000 pages: it copies those pages into the database and fsyncs, for
 * milliseconds, on a daemon's event loop. store_wal_manual turns it off on s and starts counting
 * the WAL's pages after each of s's commits (store_wal_pages); the owner then calls
 * store_checkpoint, usually on a second store_t from a worker thread, when the count grows.
 * store_wal_manual returns 0 (it cannot fail); store_checkpoint (PASSIVE: copies what no reader
 * still needs, never waits) returns 0, -EBUSY while another checkpoint runs, or another negative
 * errno with err. */
int store_wal_manual(store_t *s);
int store_wal_pages(const store_t *s);
int store_checkpoint(store_t *s, char *err, size_t errlen);

/* Configuration. store_config_version is a cheap poll (a counter bumped by every change) so
 * daemons reload within 1 s. store_load_config builds the whole model (caller config_free). */
int store_config_version(store_t *s, int64_t *version);
int store_load_config(store_t *s, config_t **cfg, char *err, size_t errlen);
/* store_replace_config replaces everything in one transaction. A credential or secret of cfg
 * given as the mask keeps the stored one (config_unmask, in the same transaction: cfg is
 * changed); where none is stored, -EINVAL naming the field and nothing changes. */
int store_replace_config(store_t *s, config_t *cfg, char *err, size_t errlen);
/* Single-webhook changes (hookctl webhook add|rm|enable|disable). -ENOENT when unknown,
 * -EEXIST when adding an id that exists, -EINVAL for an unknown project. */
int store_webhook_add(store_t *s, const webhook_t *wh, char *err, size_t errlen);
int store_webhook_remove(store_t *s, const char *id, char *err, size_t errlen);
/* store_webhook_update replaces the stored webhook of wh's id (same project; its place in the
 * list kept) with wh, whose masked credentials keep the stored ones (config_webhook_unmask, in
 * the same transaction: wh is changed). -ENOENT when no such webhook is in that project. */
int store_webhook_update(store_t *s, webhook_t *wh, char *err, size_t errlen);
int store_webhook_set_enabled(store_t *s, const char *id, int enabled, char *err, size_t errlen);

/* --- one project's settings (store_project.c, for hook-api) --- */

/* store_project_put creates project p (at the end of the list) or replaces the stored one's
 * name, fields and funnels (keeping its place and its webhooks; p's webhooks are ignored), and
 * bumps the configuration version, in one transaction. *created (may be NULL) tells which.
 * store_project_delete removes a project and its webhooks (its delivery records stay):
 * -ENOENT when unknown. Both return 0 or a negative errno with err. */
int store_project_put(store_t *s, const project_t *p, int *created, char *err, size_t errlen);
int store_project_delete(store_t *s, const char *id, char *err, size_t errlen);

/* --- delivery log: one record per invocation, holding the most recent attempt ---
 * Schema version 6 (store.c): delivery_log, a rowid table whose ids are given in write order,
 * so new records append at the right edge of every B-tree; the invocation id is looked up in
 * the unique index deliveries_inv; the request body, the same for every attempt, is stored once
 * in delivery_bodies under the record's id, never rewritten by later attempts. The view
 * deliveries shows a record in one row (the version-5 shape) for readers. */

typedef enum { DLV_PENDING = 0, DLV_RETRYING, DLV_SUCCEEDED, DLV_FAILED } delivery_status_t;
const char *store_status_name(delivery_status_t st);
int store_status_parse(const char *s); /* -1 when unknown */

typedef struct delivery {
    char *invocation_id, *webhook_id, *event_id, *event_type;
    delivery_status_t status;
    int attempts;            /* of the current round: the attempt number of the last send */
    int earlier_sends;       /* sends of earlier rounds (redeliveries); shown attempts: the sum */
    int64_t next_attempt_at; /* unix ms, 0 = none */
    int64_t created_at, updated_at;
    /* last request; headers are a JSON object text with credentials already masked */
    char *req_method, *req_url, *req_headers, *req_body;
    /* last response; resp_status 0 and resp_headers NULL when there was none */
    int resp_status;
    char *resp_headers; /* JSON object text */
    char *resp_body;
    size_t resp_body_len;
    int resp_truncated;
    char *error; /* NULL when none */
    int64_t duration_ms;
    /* the webhook's project when the record was first written (the sender takes it from its
     * configuration; NULL given: the webhook's in the store); later writes keep it */
    char *project_id;
} delivery_t;

/* store_delivery_begin/commit wrap many writes in one transaction (group the writes of one loop
 * iteration). store_delivery_pending inserts a pending record if none exists for the invocation;
 * it keeps the request body (req_body, may be NULL), so the invocation can be redelivered even if
 * its outcome is lost (store_repair.h), and the webhook's project_id (NULL: the webhook's in the
 * store), under which the API lists it (store_deliveries_page).
 * store_delivery_record upserts the full record of an attempt (every field of d), unless the
 * record holds a later attempt, or a final outcome (succeeded, failed) of the same attempt: a
 * late duplicate after a crash never overwrites newer news. A new record is one INSERT (and its
 * body's); a record there already costs a read and an UPDATE of the attempt's fields only (its
 * identity, project, created time and body stay as first written). Statements are prepared
 * once per handle, so a batch is just these calls between store_begin and store_commit. */
int store_begin(store_t *s, char *err, size_t errlen);
int store_commit(store_t *s, char *err, size_t errlen);
int store_rollback(store_t *s);
int store_delivery_pending(store_t *s, const char *invocation_id, const char *webhook_id,
                           const char *project_id, const char *event_id, const char *event_type,
                           const char *req_body, int64_t created_at, char *err, size_t errlen);
int store_delivery_record(store_t *s, const delivery_t *d, char *err, size_t errlen);
/* store_delivery_mark sets status (and next attempt) without touching the last attempt's data;
 * marking pending (redelivery) also sets attempts back to 0. */
int store_delivery_mark(store_t *s, const char *invocation_id, delivery_status_t st,
                        int64_t next_attempt_at, char *err, size_t errlen);
/* store_delivery_scheduled: the scheduler holds attempt `attempt` of the invocation, due at
 * next_attempt_at (a redelivery, attempt 1, or a repair): status retrying, attempts made =
 * attempt - 1, the last attempt's data kept. -ENOENT when the invocation has no record. */
int store_delivery_scheduled(store_t *s, const char *invocation_id, int attempt,
                             int64_t next_attempt_at, char *err, size_t errlen);
/* store_delivery_waiting: attempt 1 of the invocation was deferred and is journaled at the
 * scheduler, due at next_attempt_at: a pending (or missing) record becomes retrying with no
 * attempt made, keeping req_body so it can be sent again from the record; any other record is
 * left as it is (it already holds newer news). */
int store_delivery_waiting(store_t *s, const char *invocation_id, const char *webhook_id,
                           const char *project_id, const char *event_id, const char *event_type,
                           const char *req_body, int64_t created_at, int64_t next_attempt_at,
                           char *err, size_t errlen);
/* store_delivery_lost ends a record the journals no longer back (store_repair.h): status
 * failed with error `why`, only if it is still in status st and was last updated before
 * before_ms (a stage that wrote it since knows better). Returns 1 when changed, 0 when the
 * record had moved on or is gone, or a negative errno with err. */
int store_delivery_lost(store_t *s, const char *invocation_id, delivery_status_t st,
                        int64_t before_ms, const char *why, char *err, size_t errlen);
/* store_deliveries_stale calls cb for every record in the live status st (pending or
 * retrying) last updated before before_ms, in no particular order (a partial index of the live
 * records keeps this cheap however long the log is). cb returns 0 to go on, non-zero to stop (a
 * negative value is passed back). cb must not write to s. */
int store_deliveries_stale(store_t *s, delivery_status_t st, int64_t before_ms,
                           int (*cb)(void *arg, const delivery_t *d), void *arg, char *err,
                           size_t errlen);

/* store_delivery_get: 0 and *d (caller store_delivery_free), -ENOENT when unknown. */
int store_delivery_get(store_t *s, const char *invocation_id, delivery_t *d, char *err,
                       size_t errlen);
typedef struct delivery_filter {
    const char *webhook_id, *event_id; /* NULL = any */
    int status;                        /* -1 = any */
    int limit;                         /* 0 = 100 */
} delivery_filter_t;
/* store_deliveries_list calls cb for each record, newest first. */
int store_deliveries_list(store_t *s, const delivery_filter_t *f,
                          int (*cb)(void *arg, const delivery_t *d), void *arg, char *err,
                          size_t errlen);
void store_delivery_free(delivery_t *d);
/* store_delivery_copy fills *dst with a deep copy of *src: 0, or -ENOMEM with *dst empty. */
int store_delivery_copy(delivery_t *dst, const delivery_t *src);
/* store_delivery_to_json renders the contract's --json object. Caller decrefs. */
json_t *store_delivery_to_json(const delivery_t *d);

/* Pruning, in small steps so the write lock is only ever held briefly: finished records
 * (succeeded, failed) not updated within max_age_ms go, and finished records beyond the newest
 * keep_per_webhook of each webhook (counting every record, live ones too, newest created first);
 * 0 turns either rule off. Pending and retrying records are live work and never go. The age
 * rule walks the records in id order (first written first) and stops at the first one created
 * at or after the cut-off: a record first written long after its creation time (rare: the log
 * is written as attempts end) goes in a later pass, once the records written before it are
 * old too.
 *
 * store_prune_begin starts a pass (the age cut-off is fixed now). store_prune_step does one
 * step: at most c->batch rows deleted in one short transaction of its own (an indexed range
 * delete), or a read that finds the next webhook with too many records and its cut-off. Returns
 * the rows deleted (0 is not the end) or a negative errno with err; c->done is set once the pass
 * has finished; store_prune_end frees the cursor's strings. store_prune runs a whole pass, step
 * after step (hookctl prune), and returns the rows deleted or a negative errno. */
#define STORE_PRUNE_BATCH 1000
typedef struct store_prune {
    int64_t max_age_ms, age_cutoff;
    int keep_per_webhook, batch;
    int phase; /* 0 by age, 1 next webhook, 2 by count within webhook, 3 done */
    int done;
    char *webhook;       /* the webhook being cut to keep_per_webhook (malloc'd) */
    int64_t cut_created; /* its keep-th newest record: created_at, */
    char *cut_inv;       /* and invocation id, the tie-break (malloc'd) */
    int64_t after_id;    /* by age: the last record id looked at */
    int64_t deleted;     /* rows deleted in this pass */
    int64_t lock_us;     /* the last step's write transaction, BEGIN to COMMIT (0: none) */
} store_prune_t;
void store_prune_begin(store_prune_t *c, int64_t max_age_ms, int keep_per_webhook, int batch);
int store_prune_step(store_t *s, store_prune_t *c, char *err, size_t errlen);
void store_prune_end(store_prune_t *c);
int store_prune(store_t *s, int64_t max_age_ms, int keep_per_webhook, char *err, size_t errlen);

/* --- pages of one project's deliveries (hook-api; store_page.c) ---
 * Newest first by (created_at, invocation_id), along the index deliveries_project. A page ends
 * with a cursor naming its last record; the next page starts strictly after it, so records
 * written meanwhile (newer) never shift a page: no record comes twice and none is skipped. */
#define STORE_PAGE_MAX 1000   /* most records on one page */
#define STORE_PAGE_SCAN 10000 /* most records a filtered page looks at */
#define STORE_CURSOR_MAX 256  /* room for a cursor and its NUL */
typedef struct delivery_page {
    const char *project_id;            /* required */
    const char *webhook_id, *event_id; /* NULL = any */
    int status;                        /* -1 = any */
    int limit;                         /* 1..STORE_PAGE_MAX */
    const char *cursor;                /* NULL or "": the first page */
    int scan;                          /* 0: STORE_PAGE_SCAN */
} delivery_page_t;
/* store_deliveries_page calls cb for each record of the page (cb returns 0 to go on; non-zero
 * stops, a negative value is passed back) and writes the next page's cursor into next ("" when
 * this page is the last). With a filter (webhook, event or status) a page looks at no more than
 * q->scan records of the project: it may then hold fewer than limit records, even none, and
 * still have a next page, so a filter matching few records never makes one call walk the whole
 * log. Returns the records handed to cb, or a negative errno with err: -EINVAL for a limit out of
 * range or a malformed cursor ("cursor: ..."). */
int store_deliveries_page(store_t *s, const delivery_page_t *q,
                          int (*cb)(void *arg, const delivery_t *d), void *arg, char *next,
                          size_t nextlen, char *err, size_t errlen);
/* The cursor's text: unpadded base64url of "created_at:invocation_id". encode returns 0 or
 * -EINVAL/-ENOSPC; decode returns 0, or -EINVAL for anything encode cannot have written. */
int store_page_cursor_encode(int64_t created_at, const char *invocation_id, char *out,
                             size_t outlen);
int store_page_cursor_decode(const char *cursor, int64_t *created_at, char *inv, size_t invlen);

/* store_set_durable: durable 1 (--fsync always or batch) makes every commit of s wait for its
 * WAL fsync (synchronous = FULL), so a commit that returned survives a power loss; 0 (--fsync
 * off, and the default) keeps synchronous = NORMAL: a commit survives a crash of the process but
 * the last ones may be lost with power. Returns 0 or a negative errno with err. */
int store_set_durable(store_t *s, int durable, char *err, size_t errlen);
/* store_set_cache_kib sets the page cache of connection s to kib KiB (SQLite's default is about
 * 2 MiB; a connection writing the delivery log all day touches its indexes at random and, with
 * that default, reads most of their pages back from the file on every batch). */
int store_set_cache_kib(store_t *s, int kib, char *err, size_t errlen);

/* --- durable counters behind hook-api's /metrics (store_counters.c) ---
 * The counters table holds (metric, webhook_id, label) -> n, sum: "attempts" with label
 * "success" or "failure" (n attempts, sum of their durations in seconds), "duration" with label
 * the upper bound of a histogram bucket ("0.05", ..., "+Inf"; n attempts in that bucket only,
 * not cumulative), "invocations_failed" with label "" (n invocations ended failed). They are
 * added to in the same transaction as the delivery-log row they count, and only when that row
 * actually changed, so a crash keeps both or neither and a refused duplicate counts nothing. */
#define STORE_DURATION_BUCKETS 12 /* finite upper bounds; "+Inf" is the 13th */
extern const double store_duration_bounds[STORE_DURATION_BUCKETS];
/* store_duration_label: the bucket label of bucket i (0..STORE_DURATION_BUCKETS, the last is
 * "+Inf") into buf; returns buf. */
const char *store_duration_label(int i, char *buf, size_t n);

/* store_counted_record is store_delivery_record plus the counters of what the row newly says:
 * an attempt made when its attempt number went up (or a new row holds attempt 1 or more),
 * success if the record says succeeded, else failure, with its duration; the invocation ended
 * failed when its status became failed. Nothing is counted when the store refuses the record.
 * Inside the caller's store_begin batch it adds to that transaction (and on an error the caller
 * rolls the batch back); alone, it makes one of its own and acc must be NULL. acc, in a batch:
 * the increments are gathered there (d->webhook_id must stay valid until then) and written by
 * store_counts_flush before the commit, a few upserts per batch instead of two per record; NULL
 * writes them at once. Returns 0 or a negative errno with err. */
typedef struct store_counts {
    struct store_count *v;
    size_t n, cap;
} store_counts_t; /* zero-initialized; store_counts_free when done */
int store_counted_record(store_t *s, const delivery_t *d, store_counts_t *acc, char *err,
                         size_t errlen);
/* store_counts_flush writes what acc gathered (summed per counter) into the open transaction
 * and empties acc. Returns 0 or a negative errno with err. */
int store_counts_flush(store_t *s, store_counts_t *acc, char *err, size_t errlen);
void store_counts_free(store_counts_t *acc);
/* store_counted_lost is store_delivery_lost counting the invocation (of webhook_id) failed when
 * the record changed, in one transaction. Returns as store_delivery_lost. */
int store_counted_lost(store_t *s, const char *invocation_id, const char *webhook_id,
                       delivery_status_t st, int64_t before_ms, const char *why, char *err,
                       size_t errlen);

typedef struct store_counter {
    const char *metric, *webhook_id, *label; /* valid during the callback only */
    int64_t n;
    double sum;
} store_counter_t;
/* store_counters_each calls cb for every row of the counters table, ordered by metric, webhook
 * and label: one query, however many webhooks. cb returns 0 to go on, non-zero to stop (a
 * negative value is passed back). Returns 0 or a negative errno with err. */
int store_counters_each(store_t *s, int (*cb)(void *arg, const store_counter_t *c), void *arg,
                        char *err, size_t errlen);
/* store_retries_pending: the records in status retrying (attempts waiting at the scheduler),
 * counted on the index of live records. Returns 0 and *n, or a negative errno with err. */
int store_retries_pending(store_t *s, int64_t *n, char *err, size_t errlen);

/* --- API tokens (hook-api, hookctl token; store_token.c) ---
 * A token is "hlt_" and 43 base64url characters (32 random bytes); the store keeps only its
 * SHA-256, under a UNIQUE index, and never the token. A token with no project is an admin
 * token. Portal tokens (kind STORE_TOKEN_PORTAL) belong to one project and expire. Every
 * request is checked against the table, so a revoke holds at once for every process. */
#define STORE_TOKEN_API 0
#define STORE_TOKEN_PORTAL 1
#define STORE_TOKEN_TEXT 48 /* room for a token's text and its NUL */
#define STORE_TOKEN_NAME_MAX 127
typedef struct store_token {
    char name[STORE_TOKEN_NAME_MAX + 1];
    char project[128];                          /* "" for an admin token */
    int kind;                                   /* STORE_TOKEN_API or STORE_TOKEN_PORTAL */
    int64_t created_at, expires_at, revoked_at; /* unix ms; 0 = never / not revoked */
} store_token_t;
/* store_token_name_valid: 1..127 of [A-Za-z0-9._-]; 0 else, with err naming the fault. */
int store_token_name_valid(const char *name, char *err, size_t errlen);
/* store_token_create makes a token named name for project (NULL or "": admin) of kind, expiring
 * at expires_at (unix ms, 0 = never), and writes its text into token (STORE_TOKEN_TEXT bytes):
 * the only time the text exists. Returns 0, -EEXIST when the name is taken (revoked ones
 * included), -EINVAL for a bad name, or another negative errno, each with err. */
int store_token_create(store_t *s, const char *name, const char *project, int kind,
                       int64_t expires_at, char token[STORE_TOKEN_TEXT], char *err, size_t errlen);
/* store_token_portal makes a portal token for project valid for ttl_ms (name "portal-" and 16
 * hex digits), removing portal tokens that expired over a day ago. *expires_at gets its end.
 * Returns 0 or a negative errno with err. */
int store_token_portal(store_t *s, const char *project, int64_t ttl_ms,
                       char token[STORE_TOKEN_TEXT], int64_t *expires_at, char *err, size_t errlen);
/* store_token_list: every token's description (never its hash), by name; caller frees *out.
 * Returns 0 or a negative errno with err. */
int store_token_list(store_t *s, store_token_t **out, size_t *n, char *err, size_t errlen);
/* store_token_revoke ends the token named name now (a revoked one keeps its first revoked_at).
 * Returns 0, -ENOENT when no token has that name, or another negative errno with err. */
int store_token_revoke(store_t *s, const char *name, char *err, size_t errlen);
/* store_token_verify looks token up by its hash at now_ms and fills *out. Returns 0 for a
 * token in force, -ENOENT when unknown (or not a token's shape), -EKEYREVOKED, -EKEYEXPIRED,
 * or another negative errno (the store failed) with err. */
int store_token_verify(store_t *s, const char *token, int64_t now_ms, store_token_t *out, char *err,
                       size_t errlen);

#endif
