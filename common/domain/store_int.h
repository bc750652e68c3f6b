/* store_int.h - the store's insides, shared by its files (store.c, store_sql.c and the other
 * store_*.c): the handle and the SQLite plumbing of store_sql.c. Not for stages. */
#ifndef HL_STORE_INT_H
#define HL_STORE_INT_H

#include "domain/store.h"

#include <sqlite3.h>
#include <stdint.h>

struct store {
    sqlite3 *db;
    int busy_retries;    /* STORE_BUSY_RETRIES, or fewer for a daemon's event loop */
    int busy_timeout_ms; /* one wait for the write lock (store_busy_wait) */
    int64_t busy_waited_us;
    char name[64]; /* the file's base name, prefixed to error messages */
    int in_tx;     /* a store_begin transaction is open */
    int wal_pages; /* WAL size after the last commit (store_wal_manual) */
    sqlite3_stmt *st_version, *st_insert, *st_update, *st_prior, *st_body, *st_mark, *st_get;
    sqlite3_stmt *st_cnt_add; /* store_counters.c, prepared at first use */
};

/* The delivery log's columns as a record's first row writes them into delivery_log (the body
 * goes to delivery_bodies), and what a read takes from the view deliveries: those with the body
 * after req_headers, the sends of earlier rounds, and the project (store_row_delivery's order). */
#define STORE_DLV_COLS                                                                             \
    "invocation_id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,"          \
    " created_at, updated_at, req_method, req_url, req_headers, resp_status,"                      \
    " resp_headers, resp_body, resp_truncated, error, duration_ms"
#define STORE_DLV_READ_COLS                                                                        \
    "invocation_id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,"          \
    " created_at, updated_at, req_method, req_url, req_headers, req_body, resp_status,"            \
    " resp_headers, resp_body, resp_truncated, error, duration_ms, earlier_sends, project_id"
/* STORE_DLV_PROJECT: the SQL of a new record's project: the one given (parameter p), else the
 * webhook's (parameter w) from the configuration tables. */
#define STORE_DLV_PROJECT(p, w)                                                                    \
    "COALESCE(" p ", (SELECT project_id FROM webhooks WHERE id = " w "))"

/* store_dlv_write writes attempt record d (store_delivery_record's rule: refused when the
 * record holds a later attempt, or a final outcome of the same one). *prior_attempts and
 * *prior_status (may be NULL) get what the record held before (0 and -1 when there was none),
 * *changed 1 when the record was written, 0 when refused. 0 or a negative errno with err. */
int store_dlv_write(store_t *s, const delivery_t *d, int *prior_attempts, int *prior_status,
                    int *changed, char *err, size_t errlen);

/* store_row_delivery fills d from a row of STORE_DLV_READ_COLS (caller store_delivery_free):
 * 0 or -ENOMEM (d then empty). */
int store_row_delivery(sqlite3_stmt *st, delivery_t *d);

/* store_now_ms: wall-clock milliseconds. */
int64_t store_now_ms(void);
/* store_errno: a negative errno for an SQLite result code. */
int store_errno(int rc);
/* store_fail: "hookline.db: what: sqlite message" into err; returns the mapped errno. */
int store_fail(const store_t *s, char *err, size_t errlen, int rc, const char *what);
/* store_failf: "hookline.db: message" with a chosen errno e (returns -e). */
__attribute__((format(printf, 5, 6))) int store_failf(const store_t *s, char *err, size_t errlen,
                                                      int e, const char *fmt, ...);
/* store_exec: run SQL text, retrying while another process holds the write lock. */
int store_exec(store_t *s, const char *sql, char *err, size_t errlen, const char *what);
/* store_step: step a write statement to completion (retrying on busy), then reset it. */
int store_step(store_t *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what);
/* store_prepare: compile a statement (persistent ones are cached for the handle's life). */
int store_prepare(store_t *s, const char *sql, int persistent, sqlite3_stmt **st, char *err,
                  size_t errlen);
/* store_bind_text: bind a string or NULL. */
void store_bind_text(sqlite3_stmt *st, int i, const char *v);
/* store_tx_begin: our own write transaction, or a savepoint inside the caller's batch;
 * store_tx_end commits (ok) or rolls back what it opened. */
int store_tx_begin(store_t *s, char *err, size_t errlen);
int store_tx_end(store_t *s, int ok, char *err, size_t errlen);

/* The configuration's rows (store.c). store_insert_project writes project p's row at position
 * pos, its funnels and its webhooks (sw may be NULL when p has none) with statements prepared
 * from these texts and sql_insert_webhook; store_bump_config bumps the configuration version
 * (in the caller's transaction) so every stage reloads. */
#define STORE_SQL_INSERT_PROJECT                                                                   \
    "INSERT INTO projects(id, name, opportunity_fields, contact_fields, pos) VALUES(?, ?, ?, ?, "  \
    "?)"
#define STORE_SQL_INSERT_FUNNEL                                                                    \
    "INSERT INTO funnels(id, project_id, name, stages, won_stage_id, lost_stage_id, pos)"          \
    " VALUES(?, ?, ?, ?, ?, ?, ?)"
int store_insert_project(store_t *s, sqlite3_stmt *sp, sqlite3_stmt *sf, sqlite3_stmt *sw,
                         const project_t *p, int64_t pos, char *err, size_t errlen);
int store_bump_config(store_t *s, char *err, size_t errlen);

#endif
