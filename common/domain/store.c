/* store.c - the SQLite store: configuration tables (versioned by meta.config_version) and the
 * delivery log, written in batches through cached statements. WAL, so readers never block. */
#include "domain/store_int.h"

#include "util/fsmode.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION 6
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_BUSY_RETRIES 6 /* each waits up to the busy timeout: 30 s in all */
#define STORE_LIST_DEFAULT 100

/* A record's project is written with the record's first row and never set again: an update
 * that assigned it (even to the same value) would rewrite its deliveries_project entry on every
 * attempt. */

/* What version 5 adds (hook-api): each delivery's project (the sender writes it; older records
 * take their webhook's), and its index for the API's pages of one project's deliveries, newest
 * first; API and portal tokens (a hash only: kind 0 api, 1 portal; a NULL project is an admin
 * token); and the durable counters behind /metrics, written in the same transaction as the
 * delivery-log rows they count (a restart never counts twice). */
#define STORE_SCHEMA_V5                                                                            \
    "ALTER TABLE deliveries ADD COLUMN project_id TEXT;"                                           \
    "CREATE INDEX IF NOT EXISTS deliveries_project ON deliveries(project_id, created_at,"          \
    " invocation_id);"                                                                             \
    "CREATE TABLE IF NOT EXISTS tokens(name TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"          \
    " project_id TEXT, kind INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"              \
    " expires_at INTEGER NOT NULL DEFAULT 0, revoked_at INTEGER NOT NULL DEFAULT 0);"              \
    "CREATE TABLE IF NOT EXISTS counters(metric TEXT NOT NULL, webhook_id TEXT NOT NULL,"          \
    " label TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, sum REAL NOT NULL DEFAULT 0,"             \
    " PRIMARY KEY(metric, webhook_id, label)) WITHOUT ROWID;"

/* Version 6: the delivery log for cheap writes. delivery_log is a rowid table: a record's id is
 * given at its first write, in write order, so new rows and their index entries append at the
 * right edge of each B-tree, and pruning by age walks the oldest ids (a range of the table
 * itself, no index). The invocation id is found through deliveries_inv (the one index a random
 * key lands in). The request body, the same for every attempt of an invocation, is written once,
 * into delivery_bodies under the record's id, and never rewritten by the attempts' updates (a
 * trigger deletes it with its record). Only the indexes the queries use: deliveries_project
 * (the API's pages), deliveries_webhook (a webhook's list, the prune by count),
 * deliveries_created (the unfiltered list, newest first) and the partial deliveries_live (the
 * repair's scan, the retry count). The view deliveries shows the records in the shape of
 * version 5 for readers (the store's own queries, sqlite3 by hand); an INSERT into it writes
 * both tables. */
#define STORE_SCHEMA_LOG                                                                           \
    "CREATE TABLE delivery_log(id INTEGER PRIMARY KEY, invocation_id TEXT NOT NULL,"               \
    " webhook_id TEXT NOT NULL, project_id TEXT, event_id TEXT NOT NULL,"                          \
    " event_type TEXT NOT NULL, status INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"     \
    " earlier_sends INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL DEFAULT 0,"       \
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, req_method TEXT, req_url TEXT,"    \
    " req_headers TEXT, resp_status INTEGER NOT NULL DEFAULT 0, resp_headers TEXT,"                \
    " resp_body BLOB, resp_truncated INTEGER NOT NULL DEFAULT 0, error TEXT,"                      \
    " duration_ms INTEGER NOT NULL DEFAULT 0);"                                                    \
    "CREATE TABLE delivery_bodies(id INTEGER PRIMARY KEY, body TEXT NOT NULL);"                    \
    "CREATE TRIGGER delivery_log_delete AFTER DELETE ON delivery_log BEGIN"                        \
    " DELETE FROM delivery_bodies WHERE id = OLD.id; END;"                                         \
    "CREATE VIEW deliveries AS SELECT l.invocation_id AS invocation_id,"                           \
    " l.webhook_id AS webhook_id, l.event_id AS event_id, l.event_type AS event_type,"             \
    " l.status AS status, l.attempts AS attempts, l.next_attempt_at AS next_attempt_at,"           \
    " l.created_at AS created_at, l.updated_at AS updated_at, l.req_method AS req_method,"         \
    " l.req_url AS req_url, l.req_headers AS req_headers, b.body AS req_body,"                     \
    " l.resp_status AS resp_status, l.resp_headers AS resp_headers, l.resp_body AS resp_body,"     \
    " l.resp_truncated AS resp_truncated, l.error AS error, l.duration_ms AS duration_ms,"         \
    " l.earlier_sends AS earlier_sends, l.project_id AS project_id"                                \
    " FROM delivery_log l LEFT JOIN delivery_bodies b ON b.id = l.id;"                             \
    "CREATE TRIGGER deliveries_insert INSTEAD OF INSERT ON deliveries BEGIN"                       \
    " INSERT INTO delivery_log(invocation_id, webhook_id, project_id, event_id, event_type,"       \
    " status, attempts, earlier_sends, next_attempt_at, created_at, updated_at, req_method,"       \
    " req_url, req_headers, resp_status, resp_headers, resp_body, resp_truncated, error,"          \
    " duration_ms) VALUES(NEW.invocation_id, NEW.webhook_id, " STORE_DLV_PROJECT(                  \
        "NEW.project_id",                                                                          \
        "NEW.webhook_id") ", NEW.event_id, NEW.event_type, NEW.status,"                            \
                          " COALESCE(NEW.attempts, 0), COALESCE(NEW.earlier_sends, 0),"            \
                          " COALESCE(NEW.next_attempt_at, 0), NEW.created_at, NEW.updated_at, "    \
                          "NEW.req_method,"                                                        \
                          " NEW.req_url, NEW.req_headers, COALESCE(NEW.resp_status, 0), "          \
                          "NEW.resp_headers,"                                                      \
                          " NEW.resp_body, COALESCE(NEW.resp_truncated, 0), NEW.error, "           \
                          "COALESCE(NEW.duration_ms, 0));"                                         \
                          " INSERT INTO delivery_bodies(id, body) SELECT last_insert_rowid(), "    \
                          "NEW.req_body"                                                           \
                          " WHERE NEW.req_body IS NOT NULL; END;"                                  \
                          "CREATE UNIQUE INDEX deliveries_inv ON delivery_log(invocation_id);"     \
                          "CREATE INDEX deliveries_project ON delivery_log(project_id, "           \
                          "created_at, invocation_id);"                                            \
                          "CREATE INDEX deliveries_webhook ON delivery_log(webhook_id, "           \
                          "created_at);"                                                           \
                          "CREATE INDEX deliveries_created ON delivery_log(created_at);"           \
                          "CREATE INDEX deliveries_live ON delivery_log(status, updated_at) "      \
                          "WHERE status < 2;"

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('config_version', 0);"
    "CREATE TABLE IF NOT EXISTS projects(id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " opportunity_fields TEXT NOT NULL, contact_fields TEXT NOT NULL, pos INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS funnels(id TEXT NOT NULL, project_id TEXT NOT NULL,"
    " name TEXT NOT NULL, stages TEXT NOT NULL, won_stage_id TEXT, lost_stage_id TEXT,"
    " pos INTEGER NOT NULL, PRIMARY KEY(project_id, id));"
    "CREATE TABLE IF NOT EXISTS webhooks(id TEXT PRIMARY KEY, project_id TEXT NOT NULL,"
    " name TEXT NOT NULL, url TEXT NOT NULL, enabled INTEGER NOT NULL, events TEXT NOT NULL,"
    " auth TEXT, secret TEXT, pos INTEGER NOT NULL, secrets TEXT);"
    "CREATE INDEX IF NOT EXISTS webhooks_project ON webhooks(project_id, pos);"
    "CREATE TABLE IF NOT EXISTS tokens(name TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " project_id TEXT, kind INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0, revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS counters(metric TEXT NOT NULL, webhook_id TEXT NOT NULL,"
    " label TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, sum REAL NOT NULL DEFAULT 0,"
    " PRIMARY KEY(metric, webhook_id, label)) WITHOUT ROWID;" STORE_SCHEMA_LOG
    "PRAGMA user_version = 6;";
/* Version 1 to 2: signing-secret rotation keeps the webhook's "secrets" list (JSON array). */
static const char store_schema_v2[] = "ALTER TABLE webhooks ADD COLUMN secrets TEXT;"
                                      "PRAGMA user_version = 2;";
/* Version 2 to 3: the live (pending, retrying) records get their own small index, for the
 * repair at start (store_deliveries_stale). */
static const char store_schema_v3[] =
    "CREATE INDEX IF NOT EXISTS deliveries_live ON deliveries(status, updated_at)"
    " WHERE status < 2;"
    "PRAGMA user_version = 3;";
/* Version 3 to 4: the sends of earlier rounds (before a redelivery or recover), so a record's
 * attempts count every send. */
static const char store_schema_v4[] =
    "ALTER TABLE deliveries ADD COLUMN earlier_sends INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 4;";
/* Version 4 to 5: see STORE_SCHEMA_V5; the records written before it take their webhook's
 * project. */
static const char store_schema_v5[] =
    STORE_SCHEMA_V5 "UPDATE deliveries SET project_id = (SELECT w.project_id FROM webhooks w"
                    " WHERE w.id = deliveries.webhook_id);"
                    "PRAGMA user_version = 5;";
/* Version 5 to 6: the records move to delivery_log (ids in creation order, so the oldest come
 * first for the prune by age) and their bodies to delivery_bodies; the old table and its five
 * indexes go, and the view deliveries takes its name. Every record is kept, field for field. */
static const char store_schema_v6[] =
    "ALTER TABLE deliveries RENAME TO deliveries_v5;"
    "DROP INDEX IF EXISTS deliveries_webhook; DROP INDEX IF EXISTS deliveries_updated;"
    "DROP INDEX IF EXISTS deliveries_created; DROP INDEX IF EXISTS deliveries_live;"
    "DROP INDEX IF EXISTS deliveries_project;" STORE_SCHEMA_LOG
    "INSERT INTO delivery_log(invocation_id, webhook_id, project_id, event_id, event_type, status,"
    " attempts, earlier_sends, next_attempt_at, created_at, updated_at, req_method, req_url,"
    " req_headers, resp_status, resp_headers, resp_body, resp_truncated, error, duration_ms)"
    " SELECT invocation_id, webhook_id, project_id, event_id, event_type, status, attempts,"
    " earlier_sends, next_attempt_at, created_at, updated_at, req_method, req_url, req_headers,"
    " resp_status, resp_headers, resp_body, resp_truncated, error, duration_ms"
    " FROM deliveries_v5 ORDER BY created_at, invocation_id;"
    "INSERT INTO delivery_bodies(id, body) SELECT l.id, o.req_body FROM delivery_log l"
    " JOIN deliveries_v5 o ON o.invocation_id = l.invocation_id WHERE o.req_body IS NOT NULL;"
    "DROP TABLE deliveries_v5;"
    "PRAGMA user_version = 6;";

static const char sql_version[] = "SELECT v FROM meta WHERE k = 'config_version'";
static const char sql_bump[] = "INSERT INTO meta(k, v) VALUES('config_version', 1)"
                               " ON CONFLICT(k) DO UPDATE SET v = v + 1";
/* A record's first row: every column of the record (parameters in STORE_DLV_COLS order, the
 * project as ?19), nothing when the invocation has one already. */
static const char sql_insert[] =
    "INSERT INTO delivery_log(" STORE_DLV_COLS ", project_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
    " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, " STORE_DLV_PROJECT(
        "?19", "?2") ")"
                     " ON CONFLICT(invocation_id) DO NOTHING";
/* A later attempt's row: only the attempt's columns, so no index but deliveries_live (and that
 * only while the record is live) is touched, and the body stays where it is. */
static const char sql_update[] =
    "UPDATE delivery_log SET status = ?2, attempts = ?3, next_attempt_at = ?4, updated_at = ?5,"
    " req_method = ?6, req_url = ?7, req_headers = ?8, resp_status = ?9, resp_headers = ?10,"
    " resp_body = ?11, resp_truncated = ?12, error = ?13, duration_ms = ?14 WHERE id = ?1";
/* What a write must know of the record there: its id, attempt, status and whether its body is
 * stored. */
static const char sql_prior[] =
    "SELECT l.id, l.attempts, l.status, EXISTS(SELECT 1 FROM delivery_bodies b WHERE b.id = l.id)"
    " FROM delivery_log l WHERE l.invocation_id = ?1";
static const char sql_body[] = "INSERT OR IGNORE INTO delivery_bodies(id, body) VALUES(?1, ?2)";
/* Marking pending (a redelivery) starts the attempt count again; the sends so far are kept. */
static const char sql_mark[] = "UPDATE delivery_log SET status = ?2, next_attempt_at = ?3,"
                               " updated_at = ?4, earlier_sends = earlier_sends + CASE WHEN"
                               " ?2 = 0 THEN attempts ELSE 0 END, attempts = CASE WHEN ?2 = 0"
                               " THEN 0 ELSE attempts END WHERE invocation_id = ?1";
static const char sql_insert_webhook[] =
    "INSERT INTO webhooks(id, project_id, name, url, enabled, events, auth, secret, pos, secrets)"
    " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char sql_get[] =
    "SELECT " STORE_DLV_READ_COLS " FROM deliveries WHERE invocation_id = ?1";

/* store_schema_init: create or check the schema, once per file, under the write lock. */
static int store_schema_init(store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc, version = 0;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = store_prepare(s, "PRAGMA user_version", 0, &st, err, errlen)) < 0) goto out;
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > STORE_SCHEMA_VERSION)
        rc = store_failf(s, err, errlen, EPROTO,
                         "schema version %d is newer than this program's (%d)", version,
                         STORE_SCHEMA_VERSION);
    else if (version >= 1 && version <= 4) {
        if (version == 1)
            rc = store_exec(s, store_schema_v2, err, errlen, "upgrade schema to version 2");
        if (rc == 0 && version <= 2)
            rc = store_exec(s, store_schema_v3, err, errlen, "upgrade schema to version 3");
        if (rc == 0 && version <= 3)
            rc = store_exec(s, store_schema_v4, err, errlen, "upgrade schema to version 4");
        if (rc == 0)
            rc = store_exec(s, store_schema_v5, err, errlen, "upgrade schema to version 5");
        if (rc == 0)
            rc = store_exec(s, store_schema_v6, err, errlen, "upgrade schema to version 6");
    } else if (version == 5) {
        rc = store_exec(s, store_schema_v6, err, errlen, "upgrade schema to version 6");
    } else if (version < STORE_SCHEMA_VERSION)
        rc = store_exec(s, store_schema, err, errlen, "create schema");
out:
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

/* store_tighten_wal: make an existing -wal and -shm of path 0600 (left looser by an older
 * hookline, or by hand); 0 or a negative errno with err. */
static int store_tighten_wal(const char *path, char *err, size_t errlen)
{
    static const char *const suffix[] = {"-wal", "-shm"};
    char side[4096];
    for (int i = 0; i < 2; i++) {
        if ((size_t)snprintf(side, sizeof side, "%s%s", path, suffix[i]) >= sizeof side) {
            snprintf(err, errlen, "%s%s: path too long", path, suffix[i]);
            return -ENAMETOOLONG;
        }
        int rc = fsmode_tighten_file(side, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

int store_open(store_t **sp, const char *path, char *err, size_t errlen)
{
    const char *base = strrchr(path, '/');
    store_t *s;
    int fd, rc;

    *sp = NULL;
    if (!(s = calloc(1, sizeof *s))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    /* Create a missing file ourselves so it is born 0600: it holds webhook credentials. Never
     * open and close an existing one: a close() of any descriptor of the file drops every POSIX
     * lock this process holds on it, the SHARED lock of an open connection included, and then
     * another process can take itself for the last connection and delete the WAL under us. */
    if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
        close(fd); /* new: no connection of ours can hold a lock on it */
    else if (errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", s->name, strerror(errno));
        free(s);
        return rc;
    }
    /* An older file may be looser; SQLite gives new -wal/-shm files the database's mode. */
    if ((rc = fsmode_tighten_file(path, err, errlen)) < 0) {
        free(s);
        return rc;
    }
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = store_fail(s, err, errlen, rc, "open");
        store_close(s);
        return rc;
    }
    store_set_busy(s, STORE_BUSY_TIMEOUT_MS, STORE_BUSY_RETRIES);
    if ((rc = store_exec(s, "PRAGMA journal_mode = WAL", err, errlen, "journal_mode")) < 0 ||
        (rc = store_exec(s, "PRAGMA synchronous = NORMAL", err, errlen, "synchronous")) < 0 ||
        (rc = store_schema_init(s, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_version, 1, &s->st_version, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_insert, 1, &s->st_insert, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_update, 1, &s->st_update, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_prior, 1, &s->st_prior, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_body, 1, &s->st_body, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_mark, 1, &s->st_mark, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_get, 1, &s->st_get, err, errlen)) < 0 ||
        (rc = store_tighten_wal(path, err, errlen)) < 0) {
        store_close(s);
        return rc;
    }
    *sp = s;
    return 0;
}

/* store_wal_hook records the WAL's size after each commit (replaces the auto-checkpoint). */
static int store_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    ((store_t *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

int store_wal_manual(store_t *s)
{
    sqlite3_wal_hook(s->db, store_wal_hook, s); /* also turns the automatic checkpoint off */
    return 0;
}

int store_wal_pages(const store_t *s)
{
    return s->wal_pages;
}

int store_checkpoint(store_t *s, char *err, size_t errlen)
{
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_fail(s, err, errlen, rc, "checkpoint");
}

void store_close(store_t *s)
{
    if (!s) return;
    if (s->db && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(s->st_version);
    sqlite3_finalize(s->st_insert);
    sqlite3_finalize(s->st_update);
    sqlite3_finalize(s->st_prior);
    sqlite3_finalize(s->st_body);
    sqlite3_finalize(s->st_mark);
    sqlite3_finalize(s->st_get);
    sqlite3_finalize(s->st_cnt_add);
    sqlite3_close(s->db);
    free(s);
}

/* --- configuration --- */

int store_config_version(store_t *s, int64_t *version)
{
    int rc = sqlite3_step(s->st_version);
    *version = 0;
    if (rc == SQLITE_ROW) *version = sqlite3_column_int64(s->st_version, 0);
    sqlite3_reset(s->st_version);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_errno(rc);
    return 0;
}

/* store_json_text: compact JSON text of v (malloc'd), or NULL. Steals v. */
static char *store_json_text(json_t *v)
{
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return t;
}

/* store_strv_json: a JSON array of n strings. */
static json_t *store_strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* store_insert_webhook: one webhooks row at position pos. */
static int store_insert_webhook(store_t *s, sqlite3_stmt *st, const webhook_t *wh, int64_t pos,
                                char *err, size_t errlen)
{
    json_t *o = config_webhook_to_json(wh, 1);
    char *events = o ? store_json_text(json_incref(json_object_get(o, "events"))) : NULL;
    char *auth = o ? store_json_text(json_incref(json_object_get(o, "auth"))) : NULL;
    char *secrets = o ? store_json_text(json_incref(json_object_get(o, "secrets"))) : NULL;
    int rc;
    json_decref(o);
    if (!events) {
        free(auth);
        free(secrets);
        return store_failf(s, err, errlen, ENOMEM, "out of memory");
    }
    store_bind_text(st, 1, wh->id);
    store_bind_text(st, 2, wh->project_id);
    store_bind_text(st, 3, wh->name ? wh->name : "");
    store_bind_text(st, 4, wh->url);
    sqlite3_bind_int(st, 5, wh->enabled ? 1 : 0);
    store_bind_text(st, 6, events);
    store_bind_text(st, 7, auth);
    store_bind_text(st, 8, wh->secret);
    sqlite3_bind_int64(st, 9, pos);
    store_bind_text(st, 10, secrets);
    rc = store_step(s, st, err, errlen, "insert webhook");
    sqlite3_clear_bindings(st);
    free(events);
    free(auth);
    free(secrets);
    return rc;
}

int store_bump_config(store_t *s, char *err, size_t errlen)
{
    return store_exec(s, sql_bump, err, errlen, "bump config version");
}

int store_insert_project(store_t *s, sqlite3_stmt *sp, sqlite3_stmt *sf, sqlite3_stmt *sw,
                         const project_t *p, int64_t pos, char *err, size_t errlen)
{
    char *of = store_json_text(store_strv_json(p->opportunity_fields, p->nopportunity_fields));
    char *cf = store_json_text(store_strv_json(p->contact_fields, p->ncontact_fields));
    int rc = 0;
    if (!of || !cf) {
        rc = store_failf(s, err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    store_bind_text(sp, 1, p->id);
    store_bind_text(sp, 2, p->name ? p->name : p->id);
    store_bind_text(sp, 3, of);
    store_bind_text(sp, 4, cf);
    sqlite3_bind_int64(sp, 5, pos);
    if ((rc = store_step(s, sp, err, errlen, "insert project")) < 0) goto out;
    for (size_t i = 0; i < p->nfunnels; i++) {
        const funnel_t *f = &p->funnels[i];
        json_t *stages = json_array();
        char *st;
        for (size_t j = 0; stages && j < f->nstages; j++)
            json_array_append_new(
                stages, json_pack("{s:s, s:s?}", "id", f->stages[j].id, "name", f->stages[j].name));
        if (!(st = store_json_text(stages))) {
            rc = store_failf(s, err, errlen, ENOMEM, "out of memory");
            goto out;
        }
        store_bind_text(sf, 1, f->id);
        store_bind_text(sf, 2, p->id);
        store_bind_text(sf, 3, f->name ? f->name : f->id);
        store_bind_text(sf, 4, st);
        store_bind_text(sf, 5, f->won_stage_id);
        store_bind_text(sf, 6, f->lost_stage_id);
        sqlite3_bind_int64(sf, 7, (int64_t)i);
        rc = store_step(s, sf, err, errlen, "insert funnel");
        free(st);
        if (rc < 0) goto out;
    }
    for (size_t i = 0; i < p->nwebhooks; i++)
        if ((rc = store_insert_webhook(s, sw, &p->webhooks[i], (int64_t)i, err, errlen)) < 0)
            goto out;
out:
    sqlite3_clear_bindings(sp);
    sqlite3_clear_bindings(sf);
    free(of);
    free(cf);
    return rc;
}

int store_replace_config(store_t *s, config_t *cfg, char *err, size_t errlen)
{
    sqlite3_stmt *sp = NULL, *sf = NULL, *sw = NULL;
    config_t *old = NULL;
    int rc;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = store_load_config(s, &old, err, errlen)) < 0) goto out;
    rc = config_unmask(cfg, old, err, errlen); /* err names the field of cfg */
    config_free(old);
    if (rc < 0) goto out;
    if ((rc = store_exec(s, "DELETE FROM webhooks; DELETE FROM funnels; DELETE FROM projects", err,
                         errlen, "clear configuration")) < 0 ||
        (rc = store_prepare(s, STORE_SQL_INSERT_PROJECT, 0, &sp, err, errlen)) < 0 ||
        (rc = store_prepare(s, STORE_SQL_INSERT_FUNNEL, 0, &sf, err, errlen)) < 0 ||
        (rc = store_prepare(s, sql_insert_webhook, 0, &sw, err, errlen)) < 0)
        goto out;
    for (size_t i = 0; cfg && i < cfg->nprojects; i++)
        if ((rc = store_insert_project(s, sp, sf, sw, &cfg->projects[i], (int64_t)i, err, errlen)) <
            0)
            goto out;
    rc = store_exec(s, sql_bump, err, errlen, "bump config version");
out:
    sqlite3_finalize(sp);
    sqlite3_finalize(sf);
    sqlite3_finalize(sw);
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

/* store_col_json: parse a JSON text column, or NULL when the column is NULL or not JSON. */
static json_t *store_col_json(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
}

/* store_col_set: set key of o to a text column's value (skipped when NULL). */
static void store_col_set(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (t) json_object_set_new(o, key, json_string(t));
}

/* store_load_children: a project's funnels and webhooks, in position order, into o. */
static int store_load_children(store_t *s, json_t *o, const char *project_id, char *err,
                               size_t errlen)
{
    sqlite3_stmt *st;
    json_t *funnels = json_array(), *hooks = json_array();
    int rc;
    json_object_set_new(o, "funnels", funnels);
    json_object_set_new(o, "webhooks", hooks);
    if ((rc = store_prepare(s,
                            "SELECT id, name, stages, won_stage_id, lost_stage_id FROM funnels"
                            " WHERE project_id = ? ORDER BY pos",
                            0, &st, err, errlen)) < 0)
        return rc;
    store_bind_text(st, 1, project_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *f = json_object();
        store_col_set(f, "id", st, 0);
        store_col_set(f, "name", st, 1);
        json_object_set_new(f, "stages", store_col_json(st, 2));
        store_col_set(f, "won_stage_id", st, 3);
        store_col_set(f, "lost_stage_id", st, 4);
        json_array_append_new(funnels, f);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_fail(s, err, errlen, rc, "read funnels");
    if ((rc = store_prepare(s,
                            "SELECT id, name, url, enabled, events, auth, secret, secrets"
                            " FROM webhooks"
                            " WHERE project_id = ? ORDER BY pos",
                            0, &st, err, errlen)) < 0)
        return rc;
    store_bind_text(st, 1, project_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *w = json_object();
        store_col_set(w, "id", st, 0);
        store_col_set(w, "name", st, 1);
        store_col_set(w, "url", st, 2);
        json_object_set_new(w, "enabled", json_boolean(sqlite3_column_int(st, 3)));
        json_object_set_new(w, "events", store_col_json(st, 4));
        if (sqlite3_column_type(st, 5) != SQLITE_NULL)
            json_object_set_new(w, "auth", store_col_json(st, 5));
        store_col_set(w, "secret", st, 6);
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            json_object_set_new(w, "secrets", store_col_json(st, 7));
        json_array_append_new(hooks, w);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_fail(s, err, errlen, rc, "read webhooks");
    return 0;
}

/* store_load_doc: the stored configuration as an import document (one read snapshot). */
static int store_load_doc(store_t *s, json_t *projects, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = store_prepare(s,
                            "SELECT id, name, opportunity_fields, contact_fields FROM projects"
                            " ORDER BY pos",
                            0, &st, err, errlen)) < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        store_col_set(o, "id", st, 0);
        store_col_set(o, "name", st, 1);
        json_object_set_new(o, "opportunity_fields", store_col_json(st, 2));
        json_object_set_new(o, "contact_fields", store_col_json(st, 3));
        json_array_append_new(projects, o);
        if ((rc = store_load_children(s, o, (const char *)sqlite3_column_text(st, 0), err,
                                      errlen)) < 0) {
            sqlite3_finalize(st);
            return rc;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_fail(s, err, errlen, rc, "read projects");
    return 0;
}

int store_load_config(store_t *s, config_t **cfg, char *err, size_t errlen)
{
    json_t *doc = json_object(), *projects = json_array();
    char cerr[256];
    int rc, own_tx = sqlite3_get_autocommit(s->db); /* else inside a transaction of ours */

    *cfg = NULL;
    json_object_set_new(doc, "projects", projects);
    if (own_tx && (rc = store_exec(s, "BEGIN", err, errlen, "begin")) < 0) {
        json_decref(doc);
        return rc;
    }
    rc = store_load_doc(s, projects, err, errlen);
    if (own_tx) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    /* Rebuilding through the import parser keeps one definition of a valid configuration. */
    if (rc == 0 && (rc = config_from_json(doc, cfg, cerr, sizeof cerr)) < 0)
        store_failf(s, err, errlen, -rc, "stored configuration: %s", cerr);
    json_decref(doc);
    return rc;
}

/* store_exists: 1 when sql (one ? parameter) returns a row for id, 0 when not, or -errno. */
static int store_exists(store_t *s, const char *sql, const char *id, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) return rc;
    store_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return store_fail(s, err, errlen, rc, "lookup");
}

/* store_exec_id runs one statement whose only parameter is an id. */
static int store_exec_id(store_t *s, const char *sql, const char *id, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, 0, &st, err, errlen);
    if (rc < 0) return rc;
    store_bind_text(st, 1, id);
    rc = store_step(s, st, err, errlen, "change webhook");
    sqlite3_finalize(st);
    return rc;
}

/* store_put_webhook inserts one webhook at pos and bumps the configuration version (inside the
 * caller's transaction). */
static int store_put_webhook(store_t *s, const webhook_t *wh, int64_t pos, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql_insert_webhook, 0, &st, err, errlen);
    if (rc < 0) return rc;
    rc = store_insert_webhook(s, st, wh, pos, err, errlen);
    sqlite3_finalize(st);
    if (rc == 0) rc = store_exec(s, sql_bump, err, errlen, "bump config version");
    return rc;
}

int store_webhook_add(store_t *s, const webhook_t *wh, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t pos = 0;
    int rc;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = store_exists(s, "SELECT 1 FROM projects WHERE id = ?", wh->project_id, err,
                           errlen)) <= 0) {
        if (rc == 0)
            rc = store_failf(s, err, errlen, EINVAL, "unknown project \"%s\"",
                             wh->project_id ? wh->project_id : "");
        goto out;
    }
    if ((rc = store_exists(s, "SELECT 1 FROM webhooks WHERE id = ?", wh->id, err, errlen)) != 0) {
        if (rc == 1) rc = store_failf(s, err, errlen, EEXIST, "webhook \"%s\" exists", wh->id);
        goto out;
    }
    const char *masked = config_webhook_masked(wh);
    if (masked) { /* a new webhook has nothing stored to keep */
        rc = store_failf(s, err, errlen, EINVAL,
                         "%s: \"" CONFIG_MASK "\" (the export mask) keeps a stored value, but "
                         "webhook \"%s\" is new",
                         masked, wh->id);
        goto out;
    }
    if ((rc =
             store_prepare(s, "SELECT COALESCE(MAX(pos) + 1, 0) FROM webhooks WHERE project_id = ?",
                           0, &st, err, errlen)) < 0)
        goto out;
    store_bind_text(st, 1, wh->project_id);
    if (sqlite3_step(st) == SQLITE_ROW) pos = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = store_put_webhook(s, wh, pos, err, errlen);
out:
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

int store_webhook_update(store_t *s, webhook_t *wh, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    config_t *old = NULL;
    const project_t *op = NULL;
    int64_t pos = 0;
    int rc;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = store_load_config(s, &old, err, errlen)) < 0) goto out;
    const webhook_t *ow = config_find_webhook(old, wh->id, &op);
    if (!ow || !op || strcmp(op->id, wh->project_id) != 0) {
        rc = store_failf(s, err, errlen, ENOENT, "no webhook \"%s\" in project \"%s\"", wh->id,
                         wh->project_id);
        goto out;
    }
    if ((rc = config_webhook_unmask(wh, ow, "webhook", err, errlen)) < 0) goto out;
    if ((rc = store_prepare(s, "SELECT pos FROM webhooks WHERE id = ?", 0, &st, err, errlen)) < 0)
        goto out;
    store_bind_text(st, 1, wh->id);
    if (sqlite3_step(st) == SQLITE_ROW) pos = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if ((rc = store_exec_id(s, "DELETE FROM webhooks WHERE id = ?", wh->id, err, errlen)) == 0)
        rc = store_put_webhook(s, wh, pos, err, errlen);
out:
    config_free(old);
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

/* store_webhook_change: run a one-id UPDATE/DELETE on webhooks and bump the version. */
static int store_webhook_change(store_t *s, const char *sql, const char *id, int arg, char *err,
                                size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) goto out;
    store_bind_text(st, 1, id);
    if (sqlite3_bind_parameter_count(st) > 1) sqlite3_bind_int(st, 2, arg);
    rc = store_step(s, st, err, errlen, "change webhook");
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = store_failf(s, err, errlen, ENOENT, "no webhook \"%s\"", id);
    if (rc == 0) rc = store_exec(s, sql_bump, err, errlen, "bump config version");
out:
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

int store_webhook_remove(store_t *s, const char *id, char *err, size_t errlen)
{
    return store_webhook_change(s, "DELETE FROM webhooks WHERE id = ?", id, 0, err, errlen);
}

int store_webhook_set_enabled(store_t *s, const char *id, int enabled, char *err, size_t errlen)
{
    return store_webhook_change(s, "UPDATE webhooks SET enabled = ?2 WHERE id = ?1", id,
                                enabled ? 1 : 0, err, errlen);
}

/* --- delivery log --- */

static const char *const store_status_names[] = {"pending", "retrying", "succeeded", "failed"};

const char *store_status_name(delivery_status_t st)
{
    if ((unsigned)st < sizeof store_status_names / sizeof store_status_names[0])
        return store_status_names[st];
    return "unknown";
}

int store_status_parse(const char *s)
{
    for (int i = 0; s && i < (int)(sizeof store_status_names / sizeof store_status_names[0]); i++)
        if (strcmp(s, store_status_names[i]) == 0) return i;
    return -1;
}

int store_begin(store_t *s, char *err, size_t errlen)
{
    int rc;
    if (s->in_tx) return store_failf(s, err, errlen, EBUSY, "a transaction is already open");
    if ((rc = store_exec(s, "BEGIN IMMEDIATE", err, errlen, "begin")) < 0) return rc;
    s->in_tx = 1;
    return 0;
}

int store_commit(store_t *s, char *err, size_t errlen)
{
    int rc;
    if (!s->in_tx) return store_failf(s, err, errlen, EINVAL, "commit without a transaction");
    rc = store_exec(s, "COMMIT", err, errlen, "commit");
    if (rc < 0 && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = 0;
    return rc;
}

int store_rollback(store_t *s)
{
    int rc = 0;
    if (!sqlite3_get_autocommit(s->db) &&
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = store_errno(sqlite3_errcode(s->db));
    s->in_tx = 0;
    return rc;
}

/* store_dlv_body stores the body of record id unless it has one (a body never changes). */
static int store_dlv_body(store_t *s, int64_t id, const char *body, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->st_body;
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, body);
    int rc = store_step(s, st, err, errlen, "store request body");
    sqlite3_clear_bindings(st);
    return rc;
}

/* store_bind_attempt binds the attempt's own nine fields of d (request method, URL and headers,
 * response status, headers, body and truncation, error, duration) from parameter first on, in
 * the order both the first row's INSERT and a later attempt's UPDATE list them. */
static void store_bind_attempt(sqlite3_stmt *st, int first, const delivery_t *d)
{
    store_bind_text(st, first, d->req_method);
    store_bind_text(st, first + 1, d->req_url);
    store_bind_text(st, first + 2, d->req_headers);
    sqlite3_bind_int(st, first + 3, d->resp_status);
    store_bind_text(st, first + 4, d->resp_headers);
    if (d->resp_body)
        sqlite3_bind_blob64(st, first + 5, d->resp_body, d->resp_body_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, first + 5);
    sqlite3_bind_int(st, first + 6, d->resp_truncated ? 1 : 0);
    store_bind_text(st, first + 7, d->error);
    sqlite3_bind_int64(st, first + 8, d->duration_ms);
}

/* store_dlv_insert writes d as the invocation's first row (created and updated as given) with
 * its body, unless it has a row: *inserted 1 or 0. 0 or a negative errno with err. */
static int store_dlv_insert(store_t *s, const delivery_t *d, int64_t created, int64_t updated,
                            int *inserted, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->st_insert;
    int rc;
    *inserted = 0;
    store_bind_text(st, 1, d->invocation_id);
    store_bind_text(st, 2, d->webhook_id);
    store_bind_text(st, 3, d->event_id);
    store_bind_text(st, 4, d->event_type);
    sqlite3_bind_int(st, 5, (int)d->status);
    sqlite3_bind_int(st, 6, d->attempts);
    sqlite3_bind_int64(st, 7, d->next_attempt_at);
    sqlite3_bind_int64(st, 8, created);
    sqlite3_bind_int64(st, 9, updated);
    store_bind_attempt(st, 10, d);
    store_bind_text(st, 19, d->project_id);
    rc = store_step(s, st, err, errlen, "record delivery");
    sqlite3_clear_bindings(st);
    if (rc < 0 || sqlite3_changes(s->db) == 0) return rc;
    *inserted = 1;
    if (d->req_body)
        rc = store_dlv_body(s, sqlite3_last_insert_rowid(s->db), d->req_body, err, errlen);
    return rc;
}

/* store_dlv_prior reads what a write must know of the invocation's record: 1 with its id,
 * attempt, status and whether its body is stored; 0 when it has none; or a negative errno. */
static int store_dlv_prior(store_t *s, const char *inv, int64_t *id, int *attempts, int *status,
                           int *has_body, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->st_prior;
    store_bind_text(st, 1, inv);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        *id = sqlite3_column_int64(st, 0);
        *attempts = sqlite3_column_int(st, 1);
        *status = sqlite3_column_int(st, 2);
        *has_body = sqlite3_column_int(st, 3);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(s, err, errlen, rc, "read delivery");
    return found;
}

int store_delivery_pending(store_t *s, const char *invocation_id, const char *webhook_id,
                           const char *project_id, const char *event_id, const char *event_type,
                           const char *req_body, int64_t created_at, char *err, size_t errlen)
{
    delivery_t d = {.invocation_id = (char *)invocation_id,
                    .webhook_id = (char *)webhook_id,
                    .project_id = (char *)project_id,
                    .event_id = (char *)event_id,
                    .event_type = (char *)event_type,
                    .req_body = (char *)req_body,
                    .status = DLV_PENDING};
    int64_t at = created_at ? created_at : store_now_ms();
    int inserted;
    return store_dlv_insert(s, &d, at, at, &inserted, err, errlen);
}

int store_dlv_write(store_t *s, const delivery_t *d, int *prior_attempts, int *prior_status,
                    int *changed, char *err, size_t errlen)
{
    int64_t updated = d->updated_at ? d->updated_at : store_now_ms(), id = 0;
    int inserted = 0, attempts = 0, status = -1, has_body = 0, rc;
    *changed = 0;
    /* A first attempt's outcome usually makes the record (one INSERT), a later attempt's finds
     * it (a read, then the UPDATE): either order is right, this one saves a statement. */
    int found = 0;
    if (d->attempts > 1 && (found = store_dlv_prior(s, d->invocation_id, &id, &attempts, &status,
                                                    &has_body, err, errlen)) < 0)
        return found;
    if (!found) {
        if ((rc = store_dlv_insert(s, d, d->created_at ? d->created_at : updated, updated,
                                   &inserted, err, errlen)) < 0)
            return rc;
        if (inserted) {
            if (prior_attempts) *prior_attempts = 0;
            if (prior_status) *prior_status = -1;
            *changed = 1;
            return 0;
        }
        if ((found = store_dlv_prior(s, d->invocation_id, &id, &attempts, &status, &has_body, err,
                                     errlen)) <= 0)
            return found; /* 0: the row went between the two (another process pruned it) */
    }
    if (prior_attempts) *prior_attempts = attempts;
    if (prior_status) *prior_status = status;
    /* A late duplicate of an older attempt (after a crash) must not overwrite a newer one, nor
     * an attempt's duplicate a final outcome of that same attempt. */
    if (!(d->attempts > attempts || (d->attempts == attempts && status < DLV_SUCCEEDED))) return 0;
    sqlite3_stmt *st = s->st_update;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, (int)d->status);
    sqlite3_bind_int(st, 3, d->attempts);
    sqlite3_bind_int64(st, 4, d->next_attempt_at);
    sqlite3_bind_int64(st, 5, updated);
    store_bind_attempt(st, 6, d);
    rc = store_step(s, st, err, errlen, "record delivery");
    sqlite3_clear_bindings(st);
    if (rc < 0) return rc;
    *changed = 1;
    /* a record first written without its body (a pending row from an older sender) gets it */
    if (!has_body && d->req_body) rc = store_dlv_body(s, id, d->req_body, err, errlen);
    return rc;
}

int store_delivery_record(store_t *s, const delivery_t *d, char *err, size_t errlen)
{
    int changed;
    return store_dlv_write(s, d, NULL, NULL, &changed, err, errlen);
}

int store_delivery_mark(store_t *s, const char *invocation_id, delivery_status_t st_,
                        int64_t next_attempt_at, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->st_mark;
    int rc;
    store_bind_text(st, 1, invocation_id);
    sqlite3_bind_int(st, 2, (int)st_);
    sqlite3_bind_int64(st, 3, next_attempt_at);
    sqlite3_bind_int64(st, 4, store_now_ms());
    rc = store_step(s, st, err, errlen, "mark delivery");
    sqlite3_clear_bindings(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = store_failf(s, err, errlen, ENOENT, "no delivery \"%s\"", invocation_id);
    return rc;
}

/* store_run_once: prepare sql, bind with bind(arg, st), step it to completion, finalize; the
 * number of rows changed in *changes. For the rare writes that need no cached statement. */
static int store_run_once(store_t *s, const char *sql, void (*bind)(void *arg, sqlite3_stmt *st),
                          void *arg, int *changes, char *err, size_t errlen, const char *what)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, 0, &st, err, errlen);
    if (rc < 0) return rc;
    bind(arg, st);
    rc = store_step(s, st, err, errlen, what);
    sqlite3_finalize(st);
    if (rc == 0 && changes) *changes = sqlite3_changes(s->db);
    return rc;
}

typedef struct store_args {
    const char *inv, *wh, *proj, *ev, *et, *body, *why;
    int64_t a, b, c;
    int n;
} store_args_t;

/* store_bind_scheduled binds store_delivery_scheduled's statement. */
static void store_bind_scheduled(void *arg, sqlite3_stmt *st)
{
    const store_args_t *a = arg;
    store_bind_text(st, 1, a->inv);
    sqlite3_bind_int(st, 2, a->n);
    sqlite3_bind_int64(st, 3, a->a);
    sqlite3_bind_int64(st, 4, store_now_ms());
}

int store_delivery_scheduled(store_t *s, const char *invocation_id, int attempt,
                             int64_t next_attempt_at, char *err, size_t errlen)
{
    store_args_t a = {
        .inv = invocation_id, .n = attempt > 1 ? attempt - 1 : 0, .a = next_attempt_at};
    int changes = 0;
    int rc = store_run_once(s,
                            /* attempt 1: a new round (redelivery, recover); the sends of
                             * the last one count on */
                            "UPDATE delivery_log SET status = 1, earlier_sends = earlier_sends +"
                            " CASE WHEN ?2 = 0 THEN attempts ELSE 0 END, attempts = ?2,"
                            " next_attempt_at = ?3, updated_at = ?4 WHERE invocation_id = ?1",
                            store_bind_scheduled, &a, &changes, err, errlen, "mark scheduled");
    if (rc == 0 && changes == 0)
        rc = store_failf(s, err, errlen, ENOENT, "no delivery \"%s\"", invocation_id);
    return rc;
}

/* store_bind_waiting binds the update of a pending record that became deferred. */
static void store_bind_waiting(void *arg, sqlite3_stmt *st)
{
    const store_args_t *a = arg;
    sqlite3_bind_int64(st, 1, a->c);
    sqlite3_bind_int64(st, 2, a->b);
    sqlite3_bind_int64(st, 3, store_now_ms());
}

int store_delivery_waiting(store_t *s, const char *invocation_id, const char *webhook_id,
                           const char *project_id, const char *event_id, const char *event_type,
                           const char *req_body, int64_t created_at, int64_t next_attempt_at,
                           char *err, size_t errlen)
{
    delivery_t d = {.invocation_id = (char *)invocation_id,
                    .webhook_id = (char *)webhook_id,
                    .project_id = (char *)project_id,
                    .event_id = (char *)event_id,
                    .event_type = (char *)event_type,
                    .req_body = (char *)req_body,
                    .status = DLV_RETRYING,
                    .next_attempt_at = next_attempt_at};
    int64_t now = store_now_ms(), id = 0;
    int inserted, attempts, status, has_body, changes = 0;
    int rc = store_dlv_insert(s, &d, created_at ? created_at : now, now, &inserted, err, errlen);
    if (rc < 0 || inserted) return rc;
    if ((rc = store_dlv_prior(s, invocation_id, &id, &attempts, &status, &has_body, err, errlen)) <=
            0 ||
        status != DLV_PENDING)
        return rc < 0 ? rc : 0; /* gone, or newer news than a pending record */
    store_args_t a = {.b = next_attempt_at, .c = id};
    if ((rc = store_run_once(s,
                             "UPDATE delivery_log SET status = 1, next_attempt_at = ?2,"
                             " updated_at = ?3 WHERE id = ?1 AND status = 0",
                             store_bind_waiting, &a, &changes, err, errlen,
                             "mark deferred delivery")) < 0)
        return rc;
    if (changes && !has_body && req_body) rc = store_dlv_body(s, id, req_body, err, errlen);
    return rc;
}

/* store_bind_lost binds store_delivery_lost's statement. */
static void store_bind_lost(void *arg, sqlite3_stmt *st)
{
    const store_args_t *a = arg;
    store_bind_text(st, 1, a->inv);
    sqlite3_bind_int(st, 2, a->n);
    sqlite3_bind_int64(st, 3, a->a);
    store_bind_text(st, 4, a->why);
    sqlite3_bind_int64(st, 5, store_now_ms());
}

int store_delivery_lost(store_t *s, const char *invocation_id, delivery_status_t st,
                        int64_t before_ms, const char *why, char *err, size_t errlen)
{
    store_args_t a = {.inv = invocation_id, .n = (int)st, .a = before_ms, .why = why};
    int changes = 0;
    int rc = store_run_once(s,
                            "UPDATE delivery_log SET status = 3, next_attempt_at = 0, error = ?4,"
                            " updated_at = ?5 WHERE invocation_id = ?1 AND status = ?2"
                            " AND updated_at < ?3",
                            store_bind_lost, &a, &changes, err, errlen, "end lost delivery");
    return rc < 0 ? rc : changes > 0;
}

/* store_walk_deliveries steps st (finalized here), hands each row to cb until cb returns
 * non-zero; a negative return is passed back. what names the query in an error. */
static int store_walk_deliveries(store_t *s, sqlite3_stmt *st,
                                 int (*cb)(void *arg, const delivery_t *d), void *arg,
                                 const char *what, char *err, size_t errlen)
{
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        delivery_t d;
        if (store_row_delivery(st, &d) < 0) {
            sqlite3_finalize(st);
            return store_failf(s, err, errlen, ENOMEM, "out of memory");
        }
        n = cb(arg, &d);
        store_delivery_free(&d);
        if (n != 0) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = store_fail(s, err, errlen, rc, what);
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    return n < 0 ? n : 0;
}

int store_deliveries_stale(store_t *s, delivery_status_t st_, int64_t before_ms,
                           int (*cb)(void *arg, const delivery_t *d), void *arg, char *err,
                           size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if (st_ != DLV_PENDING && st_ != DLV_RETRYING)
        return store_failf(s, err, errlen, EINVAL, "%s is not a live status",
                           store_status_name(st_));
    /* "status < 2" repeated so the planner may use the partial index deliveries_live. */
    if ((rc = store_prepare(s,
                            "SELECT " STORE_DLV_READ_COLS " FROM deliveries WHERE status < 2"
                            " AND status = ?1 AND updated_at < ?2",
                            0, &st, err, errlen)) < 0)
        return rc;
    sqlite3_bind_int(st, 1, (int)st_);
    sqlite3_bind_int64(st, 2, before_ms);
    return store_walk_deliveries(s, st, cb, arg, "list live deliveries", err, errlen);
}

/* store_col_dup: copy a text column (NULL stays NULL); sets *oom on allocation failure. */
static char *store_col_dup(sqlite3_stmt *st, int col, int *oom)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    char *c;
    if (!t) return NULL;
    if (!(c = strdup(t))) *oom = 1;
    return c;
}

int store_row_delivery(sqlite3_stmt *st, delivery_t *d)
{
    int oom = 0;
    memset(d, 0, sizeof *d);
    d->invocation_id = store_col_dup(st, 0, &oom);
    d->webhook_id = store_col_dup(st, 1, &oom);
    d->event_id = store_col_dup(st, 2, &oom);
    d->event_type = store_col_dup(st, 3, &oom);
    d->status = (delivery_status_t)sqlite3_column_int(st, 4);
    d->attempts = sqlite3_column_int(st, 5);
    d->next_attempt_at = sqlite3_column_int64(st, 6);
    d->created_at = sqlite3_column_int64(st, 7);
    d->updated_at = sqlite3_column_int64(st, 8);
    d->req_method = store_col_dup(st, 9, &oom);
    d->req_url = store_col_dup(st, 10, &oom);
    d->req_headers = store_col_dup(st, 11, &oom);
    d->req_body = store_col_dup(st, 12, &oom);
    d->resp_status = sqlite3_column_int(st, 13);
    d->resp_headers = store_col_dup(st, 14, &oom);
    if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
        const void *b = sqlite3_column_blob(st, 15);
        size_t n = (size_t)sqlite3_column_bytes(st, 15);
        if ((d->resp_body = malloc(n + 1))) {
            if (n) memcpy(d->resp_body, b, n);
            d->resp_body[n] = '\0';
            d->resp_body_len = n;
        } else {
            oom = 1;
        }
    }
    d->resp_truncated = sqlite3_column_int(st, 16);
    d->error = store_col_dup(st, 17, &oom);
    d->duration_ms = sqlite3_column_int64(st, 18);
    d->earlier_sends = sqlite3_column_int(st, 19);
    d->project_id = store_col_dup(st, 20, &oom);
    if (oom) {
        store_delivery_free(d);
        return -ENOMEM;
    }
    return 0;
}

int store_delivery_get(store_t *s, const char *invocation_id, delivery_t *d, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = s->st_get;
    int rc;
    memset(d, 0, sizeof *d);
    store_bind_text(st, 1, invocation_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if ((rc = store_row_delivery(st, d)) < 0)
            store_failf(s, err, errlen, ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        rc = store_failf(s, err, errlen, ENOENT, "no delivery \"%s\"", invocation_id);
    } else {
        rc = store_fail(s, err, errlen, rc, "read delivery");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int store_deliveries_list(store_t *s, const delivery_filter_t *f,
                          int (*cb)(void *arg, const delivery_t *d), void *arg, char *err,
                          size_t errlen)
{
    char sql[512];
    sqlite3_stmt *st;
    int rc;
    snprintf(sql, sizeof sql,
             "SELECT " STORE_DLV_READ_COLS " FROM deliveries WHERE 1%s%s%s"
             " ORDER BY created_at DESC, invocation_id LIMIT ?4",
             f && f->webhook_id ? " AND webhook_id = ?1" : "",
             f && f->event_id ? " AND event_id = ?2" : "",
             f && f->status >= 0 ? " AND status = ?3" : "");
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) return rc;
    if (f && f->webhook_id) store_bind_text(st, 1, f->webhook_id);
    if (f && f->event_id) store_bind_text(st, 2, f->event_id);
    if (f && f->status >= 0) sqlite3_bind_int(st, 3, f->status);
    sqlite3_bind_int(st, 4, f && f->limit > 0 ? f->limit : STORE_LIST_DEFAULT);
    /* A non-zero return from cb stops the walk; a negative one is passed back. */
    return store_walk_deliveries(s, st, cb, arg, "list deliveries", err, errlen);
}

int store_delivery_copy(delivery_t *dst, const delivery_t *src)
{
    const char *const from[] = {src->invocation_id, src->webhook_id, src->event_id,
                                src->event_type,    src->req_method, src->req_url,
                                src->req_headers,   src->req_body,   src->resp_headers,
                                src->error,         src->project_id};
    char **const to[] = {&dst->invocation_id, &dst->webhook_id, &dst->event_id,    &dst->event_type,
                         &dst->req_method,    &dst->req_url,    &dst->req_headers, &dst->req_body,
                         &dst->resp_headers,  &dst->error,      &dst->project_id};
    size_t n = sizeof to / sizeof to[0];
    *dst = *src;
    dst->resp_body = NULL;
    for (size_t i = 0; i < n; i++)
        *to[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (from[i] && !(*to[i] = strdup(from[i]))) goto oom;
    if (src->resp_body) { /* may hold NUL bytes: resp_body_len of them, then one */
        if (!(dst->resp_body = malloc(src->resp_body_len + 1))) goto oom;
        memcpy(dst->resp_body, src->resp_body, src->resp_body_len + 1);
    }
    return 0;
oom:
    store_delivery_free(dst);
    return -ENOMEM;
}

void store_delivery_free(delivery_t *d)
{
    if (!d) return;
    free(d->invocation_id);
    free(d->webhook_id);
    free(d->event_id);
    free(d->event_type);
    free(d->req_method);
    free(d->req_url);
    free(d->req_headers);
    free(d->req_body);
    free(d->resp_headers);
    free(d->resp_body);
    free(d->error);
    free(d->project_id);
    memset(d, 0, sizeof *d);
}

/* store_time_json: RFC 3339 UTC with milliseconds, or null for 0. */
static json_t *store_time_json(int64_t ms)
{
    char buf[48], date[32];
    struct tm tm;
    time_t t;
    int64_t frac;
    if (ms == 0) return json_null();
    t = (time_t)(ms / 1000);
    frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        t--;
    }
    if (!gmtime_r(&t, &tm) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm))
        return json_null();
    snprintf(buf, sizeof buf, "%s.%03dZ", date, (int)frac);
    return json_string(buf);
}

/* store_utf8_seq: length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid. */
static size_t store_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0], cp;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* store_text_json: a JSON string of n bytes, invalid UTF-8 bytes replaced by U+FFFD. */
static json_t *store_text_json(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *buf, *o;
    json_t *j;
    if (!s) return json_null();
    if (!(buf = malloc(n * 3 + 1))) return NULL;
    o = buf;
    for (size_t i = 0; i < n;) {
        size_t len = store_utf8_seq(p + i, n - i);
        if (len) {
            memcpy(o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(buf, (size_t)(o - buf));
    free(buf);
    return j;
}

/* store_headers_json: parse a headers column; an empty object when absent or malformed. */
static json_t *store_headers_json(const char *text)
{
    json_t *h = text ? json_loads(text, 0, NULL) : NULL;
    if (h && json_is_object(h)) return h;
    json_decref(h);
    return json_object();
}

json_t *store_delivery_to_json(const delivery_t *d)
{
    json_t *o = json_object(), *req = json_null(), *resp = json_null();
    if (!o) return NULL;
    json_object_set_new(o, "invocation_id", json_string(d->invocation_id));
    json_object_set_new(o, "webhook_id", json_string(d->webhook_id));
    json_object_set_new(o, "event_id", json_string(d->event_id));
    json_object_set_new(o, "event_type", json_string(d->event_type));
    json_object_set_new(o, "status", json_string(store_status_name(d->status)));
    json_object_set_new(o, "attempts", json_integer(d->earlier_sends + d->attempts));
    json_object_set_new(o, "next_attempt_at", store_time_json(d->next_attempt_at));
    json_object_set_new(o, "created_at", store_time_json(d->created_at));
    json_object_set_new(o, "updated_at", store_time_json(d->updated_at));
    if (d->req_method) {
        req = json_object();
        json_object_set_new(req, "method", json_string(d->req_method));
        json_object_set_new(req, "url",
                            store_text_json(d->req_url, d->req_url ? strlen(d->req_url) : 0));
        json_object_set_new(req, "headers", store_headers_json(d->req_headers));
        json_object_set_new(req, "body",
                            store_text_json(d->req_body, d->req_body ? strlen(d->req_body) : 0));
    }
    json_object_set_new(o, "request", req);
    if (d->resp_status) {
        resp = json_object();
        json_object_set_new(resp, "status", json_integer(d->resp_status));
        json_object_set_new(resp, "headers", store_headers_json(d->resp_headers));
        json_object_set_new(resp, "body",
                            d->resp_body ? store_text_json(d->resp_body, d->resp_body_len)
                                         : json_string(""));
        json_object_set_new(resp, "truncated", json_boolean(d->resp_truncated));
    }
    json_object_set_new(o, "response", resp);
    json_object_set_new(o, "error",
                        d->error ? store_text_json(d->error, strlen(d->error)) : json_null());
    json_object_set_new(o, "duration_ms", json_integer(d->duration_ms));
    return o;
}

/* store_busy_wait is SQLite's busy handler: wait for another connection's write lock in short
 * steps (100 µs, growing to 2 ms) up to busy_timeout_ms. SQLite's own (sqlite3_busy_timeout)
 * sleeps 1, 2, 5, 10 ... 100 ms: a sender waiting behind another sender's 3 ms commit would sleep
 * past it with the lock idle, so two senders sharing one log would run slower than one. */
static int store_busy_wait(void *arg, int count)
{
    store_t *s = arg;
    if (count == 0) s->busy_waited_us = 0;
    if (s->busy_waited_us >= (int64_t)s->busy_timeout_ms * 1000) return 0;
    int64_t step = count < 20 ? 100 : count < 100 ? 500 : 2000;
    struct timespec ts = {0, (long)step * 1000};
    nanosleep(&ts, NULL);
    s->busy_waited_us += step;
    return 1;
}

void store_set_busy(store_t *s, int timeout_ms, int retries)
{
    s->busy_timeout_ms = timeout_ms;
    sqlite3_busy_handler(s->db, store_busy_wait, s);
    s->busy_retries = retries > 0 ? retries : 1;
}

int store_set_durable(store_t *s, int durable, char *err, size_t errlen)
{
    return store_exec(s, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", err,
                      errlen, "synchronous");
}

int store_set_cache_kib(store_t *s, int kib, char *err, size_t errlen)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%d", kib > 0 ? kib : 2000);
    return store_exec(s, sql, err, errlen, "cache_size");
}

void store_prune_begin(store_prune_t *c, int64_t max_age_ms, int keep_per_webhook, int batch)
{
    memset(c, 0, sizeof *c);
    c->max_age_ms = max_age_ms > 0 ? max_age_ms : 0;
    c->keep_per_webhook = keep_per_webhook > 0 ? keep_per_webhook : 0;
    c->batch = batch > 0 ? batch : STORE_PRUNE_BATCH;
    c->age_cutoff = store_now_ms() - c->max_age_ms;
    c->phase = c->max_age_ms ? 0 : 1;
    if (!c->max_age_ms && !c->keep_per_webhook) c->phase = 3, c->done = 1;
}

void store_prune_end(store_prune_t *c)
{
    free(c->webhook);
    free(c->cut_inv);
    c->webhook = c->cut_inv = NULL;
}

/* store_bind_prune_age_ids binds the age rule's delete. */
static void store_bind_prune_age_ids(void *arg, sqlite3_stmt *st)
{
    const store_prune_t *c = arg;
    sqlite3_bind_int64(st, 1, c->age_cutoff);
}

/* store_mono_us: monotonic microseconds (how long a prune step holds the write lock). */
static int64_t store_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* store_prune_ids deletes the records of ids (n of them) by id in one short transaction of its
 * own (a savepoint inside the caller's batch), each delete checking cond again, so a row changed
 * since it was read stays; their bodies go with them (the trigger delivery_log_delete). cond
 * uses ?1..?4 (bound by bind). Returns the rows deleted or -errno. */
static int store_prune_ids(store_t *s, store_prune_t *c, const int64_t *ids, int n,
                           const char *cond, void (*bind)(void *, sqlite3_stmt *), char *err,
                           size_t errlen, const char *what)
{
    char sql[512];
    sqlite3_stmt *st;
    int rc, deleted = 0;
    if (n == 0) return 0;
    snprintf(sql, sizeof sql, "DELETE FROM delivery_log WHERE id = ?9 AND %s", cond);
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) return rc;
    bind(c, st);
    int64_t t0 = store_mono_us();
    if ((rc = store_tx_begin(s, err, errlen)) < 0) {
        sqlite3_finalize(st);
        return rc;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        sqlite3_bind_int64(st, 9, ids[i]);
        if ((rc = store_step(s, st, err, errlen, what)) == 0) deleted += sqlite3_changes(s->db);
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    rc = store_tx_end(s, 1, err, errlen);
    c->lock_us = store_mono_us() - t0;
    return rc < 0 ? rc : deleted;
}

/* store_prune_delete deletes one batch: the ids of up to c->batch matching rows are read first,
 * outside any write transaction (the index walk and the row reads are most of the work), then
 * deleted by store_prune_ids. Returns the rows deleted or -errno; *more is 0 once the range is
 * exhausted. */
static int store_prune_delete(store_t *s, store_prune_t *c, const char *cond,
                              void (*bind)(void *, sqlite3_stmt *), char *err, size_t errlen,
                              const char *what, int *more)
{
    char sql[512];
    sqlite3_stmt *st;
    int64_t *ids;
    int rc, n = 0;
    *more = 0;
    if (!(ids = malloc((size_t)c->batch * sizeof *ids)))
        return store_failf(s, err, errlen, ENOMEM, "out of memory");
    snprintf(sql, sizeof sql, "SELECT id FROM delivery_log WHERE %s LIMIT ?9", cond);
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) goto out;
    bind(c, st);
    sqlite3_bind_int(st, 9, c->batch);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < c->batch)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = store_fail(s, err, errlen, rc, what);
        goto out;
    }
    *more = n == c->batch;
    rc = store_prune_ids(s, c, ids, n, cond, bind, err, errlen, what);
out:
    free(ids);
    return rc;
}

/* store_prune_age deletes one batch of the age rule, walking the log in id order (the order of
 * first writes) from where the last batch stopped: at most STORE_PRUNE_SCAN x c->batch rows
 * are read, and the walk ends at the first record created at or after the cut-off (one created
 * since cannot have been updated before it). Records written late for their creation time sit
 * among newer ones and go in a later pass, once those are old too. Returns the rows deleted or
 * -errno; *more is 0 once the walk is over. */
#define STORE_PRUNE_SCAN 4
static int store_prune_age(store_t *s, store_prune_t *c, char *err, size_t errlen, int *more)
{
    sqlite3_stmt *st;
    int64_t *ids;
    int rc, n = 0, seen = 0, limit = c->batch * STORE_PRUNE_SCAN;
    *more = 0;
    if (!(ids = malloc((size_t)c->batch * sizeof *ids)))
        return store_failf(s, err, errlen, ENOMEM, "out of memory");
    if ((rc = store_prepare(s,
                            "SELECT id, created_at, updated_at, status FROM delivery_log"
                            " WHERE id > ?1 ORDER BY id LIMIT ?2",
                            0, &st, err, errlen)) < 0)
        goto out;
    sqlite3_bind_int64(st, 1, c->after_id);
    sqlite3_bind_int(st, 2, limit);
    int end = 0;
    while (n < c->batch && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        seen++;
        if (sqlite3_column_int64(st, 1) >= c->age_cutoff) {
            end = 1;
            break;
        }
        c->after_id = id;
        int status = sqlite3_column_int(st, 3);
        if (sqlite3_column_int64(st, 2) < c->age_cutoff &&
            (status == DLV_SUCCEEDED || status == DLV_FAILED))
            ids[n++] = id;
    }
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        *more = !end && (n == c->batch || seen == limit);
        rc = 0;
    }
    sqlite3_finalize(st);
    if (rc != 0) {
        rc = store_fail(s, err, errlen, rc, "prune by age");
        goto out;
    }
    rc = store_prune_ids(s, c, ids, n, "updated_at < ?1 AND status IN (2, 3)",
                         store_bind_prune_age_ids, err, errlen, "prune by age");
out:
    free(ids);
    return rc;
}

/* store_bind_prune_count binds the count rule's delete. */
static void store_bind_prune_count(void *arg, sqlite3_stmt *st)
{
    const store_prune_t *c = arg;
    store_bind_text(st, 1, c->webhook);
    sqlite3_bind_int64(st, 2, c->cut_created);
    store_bind_text(st, 3, c->cut_inv);
}

/* store_prune_next_webhook moves the cursor to the next webhook (in id order) that has more
 * than keep_per_webhook records, with its cut-off, or to the end. Reads only: an index seek
 * per webhook and a walk over its newest keep_per_webhook index entries. */
static int store_prune_next_webhook(store_t *s, store_prune_t *c, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = store_prepare(s,
                            "SELECT webhook_id FROM delivery_log WHERE webhook_id > ?1"
                            " ORDER BY webhook_id LIMIT 1",
                            0, &st, err, errlen)) < 0)
        return rc;
    store_bind_text(st, 1, c->webhook ? c->webhook : "");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        char *wh = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (!wh) return store_failf(s, err, errlen, ENOMEM, "out of memory");
        free(c->webhook);
        c->webhook = wh;
    } else {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return store_fail(s, err, errlen, rc, "prune: next webhook");
        c->phase = 3;
        c->done = 1;
        return 0;
    }
    if ((rc = store_prepare(
             s,
             "SELECT created_at, invocation_id FROM delivery_log WHERE webhook_id = ?1"
             " ORDER BY created_at DESC, invocation_id LIMIT 1 OFFSET ?2",
             0, &st, err, errlen)) < 0)
        return rc;
    store_bind_text(st, 1, c->webhook);
    sqlite3_bind_int(st, 2, c->keep_per_webhook - 1);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        free(c->cut_inv);
        c->cut_created = sqlite3_column_int64(st, 0);
        c->cut_inv = strdup((const char *)sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
        if (!c->cut_inv) return store_failf(s, err, errlen, ENOMEM, "out of memory");
        c->phase = 2;
        return 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_fail(s, err, errlen, rc, "prune: cut-off");
    return 0; /* no more than keep_per_webhook: on to the next one */
}

int store_prune_step(store_t *s, store_prune_t *c, char *err, size_t errlen)
{
    int n, more;
    c->lock_us = 0;
    switch (c->phase) {
    case 0:
        /* Only finished records go: a pending or retrying one is still live work. The walk
         * starts at the oldest id; live rows in it are skipped, not rewritten, and not read
         * again in this pass. */
        n = store_prune_age(s, c, err, errlen, &more);
        if (n < 0) return n;
        if (!more) c->phase = c->keep_per_webhook ? 1 : 3;
        break;
    case 1:
        return store_prune_next_webhook(s, c, err, errlen);
    case 2:
        /* Everything after the cut-off in (created_at DESC, invocation_id) order, on the
         * deliveries_webhook range up to the cut-off's created_at. */
        n = store_prune_delete(s, c,
                               "webhook_id = ?1 AND created_at <= ?2"
                               " AND (created_at < ?2 OR invocation_id > ?3) AND status IN (2, 3)",
                               store_bind_prune_count, err, errlen, "prune by count", &more);
        if (n < 0) return n;
        if (!more) c->phase = 1;
        break;
    default:
        c->done = 1;
        return 0;
    }
    if (c->phase == 3) c->done = 1;
    c->deleted += n;
    return n;
}

int store_prune(store_t *s, int64_t max_age_ms, int keep_per_webhook, char *err, size_t errlen)
{
    store_prune_t c;
    int rc = 0;
    store_prune_begin(&c, max_age_ms, keep_per_webhook, STORE_PRUNE_BATCH);
    while (!c.done && (rc = store_prune_step(s, &c, err, errlen)) >= 0)
        ;
    store_prune_end(&c);
    return rc < 0 ? rc : (int)c.deleted;
}
