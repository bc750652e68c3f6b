/* store_sql.c - the SQLite plumbing every store_*.c file shares: errors with the file's name,
 * statements stepped with retries while another process holds the write lock, transactions
 * that nest as savepoints inside a caller's batch. */
#include "domain/store_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* store_now_ms: wall-clock milliseconds. */
int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* store_errno: a negative errno for an SQLite result code. */
int store_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    default:
        return -EIO;
    }
}

/* store_fail: "hookline.db: what: sqlite message" into err; returns the mapped errno. */
int store_fail(const store_t *s, char *err, size_t errlen, int rc, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s: %s", s->name, what,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    return store_errno(rc);
}

/* store_failf: "hookline.db: message" with a chosen errno. */
int store_failf(const store_t *s, char *err, size_t errlen, int e, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen) snprintf(err, errlen, "%s: %s", s->name, msg);
    return -e;
}

/* store_exec: run SQL text, retrying while another process holds the write lock. */
int store_exec(store_t *s, const char *sql, char *err, size_t errlen, const char *what)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < s->busy_retries; i++) {
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY) break;
    }
    if (rc != SQLITE_OK) return store_fail(s, err, errlen, rc, what);
    return 0;
}

/* store_step: step a write statement to completion (retrying on busy), then reset it. */
int store_step(store_t *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < s->busy_retries; i++) {
        rc = sqlite3_step(st);
        if ((rc & 0xff) != SQLITE_BUSY) break;
        sqlite3_reset(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return store_fail(s, err, errlen, rc, what);
    return 0;
}

/* store_prepare: compile a statement (persistent ones are cached for the handle's life). */
int store_prepare(store_t *s, const char *sql, int persistent, sqlite3_stmt **st, char *err,
                  size_t errlen)
{
    int rc =
        sqlite3_prepare_v3(s->db, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL);
    if (rc != SQLITE_OK) return store_fail(s, err, errlen, rc, "prepare");
    return 0;
}

/* store_bind_text: bind a string or NULL. */
void store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* store_tx_begin: our own write transaction, or a savepoint inside the caller's batch. */
int store_tx_begin(store_t *s, char *err, size_t errlen)
{
    if (s->in_tx) return store_exec(s, "SAVEPOINT store_tx", err, errlen, "savepoint");
    return store_exec(s, "BEGIN IMMEDIATE", err, errlen, "begin");
}

/* store_tx_end: commit (ok) or roll back what store_tx_begin opened. */
int store_tx_end(store_t *s, int ok, char *err, size_t errlen)
{
    if (s->in_tx) {
        if (!ok) sqlite3_exec(s->db, "ROLLBACK TO store_tx", NULL, NULL, NULL);
        return store_exec(s, "RELEASE store_tx", err, errlen, "release");
    }
    if (ok) {
        int rc = store_exec(s, "COMMIT", err, errlen, "commit");
        if (rc < 0 && !sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return 0;
}
