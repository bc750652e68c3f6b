/* store_v5.h - for the store's upgrade tests: turn a database the store wrote back into schema
 * version 5, as hookline 5 left it (its deliveries table and five indexes, verbatim), with the
 * same records, so opening it again runs the upgrade to the current version. */
#ifndef HL_TEST_STORE_V5_H
#define HL_TEST_STORE_V5_H

#include <sqlite3.h>
#include <stdio.h>

/* The delivery log of schema version 5: the table as created then altered (earlier_sends, then
 * project_id, appended), and its indexes. */
static const char store_v5_log[] =
    "CREATE TABLE deliveries_v5(invocation_id TEXT PRIMARY KEY,"
    " webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,"
    " status INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, req_method TEXT, req_url TEXT, req_headers TEXT,"
    " req_body TEXT, resp_status INTEGER NOT NULL DEFAULT 0, resp_headers TEXT, resp_body BLOB,"
    " resp_truncated INTEGER NOT NULL DEFAULT 0, error TEXT,"
    " duration_ms INTEGER NOT NULL DEFAULT 0, earlier_sends INTEGER NOT NULL DEFAULT 0,"
    " project_id TEXT);"
    "INSERT INTO deliveries_v5 SELECT invocation_id, webhook_id, event_id, event_type, status,"
    " attempts, next_attempt_at, created_at, updated_at, req_method, req_url, req_headers,"
    " req_body, resp_status, resp_headers, resp_body, resp_truncated, error, duration_ms,"
    " earlier_sends, project_id FROM deliveries;"
    "DROP VIEW deliveries; DROP TABLE delivery_log; DROP TABLE delivery_bodies;"
    "ALTER TABLE deliveries_v5 RENAME TO deliveries;"
    "CREATE INDEX deliveries_webhook ON deliveries(webhook_id, created_at);"
    "CREATE INDEX deliveries_updated ON deliveries(updated_at);"
    "CREATE INDEX deliveries_created ON deliveries(created_at);"
    "CREATE INDEX deliveries_live ON deliveries(status, updated_at) WHERE status < 2;"
    "CREATE INDEX deliveries_project ON deliveries(project_id, created_at, invocation_id);"
    "PRAGMA user_version = 5;";

/* store_to_v5 rewrites the (closed) database at path as schema version 5, then runs more (SQL
 * taking it further back, or NULL). Returns 0, or -1 with the reason on stderr. */
static int store_to_v5(const char *path, const char *more)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "BEGIN", NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, store_v5_log, NULL, NULL, &msg);
    if (rc == SQLITE_OK && more) rc = sqlite3_exec(db, more, NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "store_to_v5: %s\n", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

#endif
