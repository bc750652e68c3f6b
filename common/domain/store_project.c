/* store_project.c - one project's settings (name, fields, funnels) created, replaced or removed
 * alone, for hook-api's PUT and DELETE /v1/projects/{p}: its webhooks stay on a replace and go
 * with it on a removal, in one transaction that bumps the configuration version. */
#include "store_int.h"

#include <errno.h>
#include <string.h>

/* project_pos: the stored position of project id (1), or 0 with *pos the next free one. */
static int project_pos(store_t *s, const char *id, int64_t *pos, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT pos, 1 FROM projects WHERE id = ?1 UNION ALL"
                           " SELECT COALESCE(MAX(pos) + 1, 0), 0 FROM projects",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    store_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = store_fail(s, err, errlen, rc, "read projects");
        sqlite3_finalize(st);
        return rc;
    }
    *pos = sqlite3_column_int64(st, 0);
    rc = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    return rc;
}

/* project_delete_rows: the project's row and funnels (and webhooks when with_webhooks). */
static int project_delete_rows(store_t *s, const char *id, int with_webhooks, char *err,
                               size_t errlen)
{
    static const char *const sql[] = {"DELETE FROM funnels WHERE project_id = ?",
                                      "DELETE FROM projects WHERE id = ?",
                                      "DELETE FROM webhooks WHERE project_id = ?"};
    for (size_t i = 0; i < (with_webhooks ? 3u : 2u); i++) {
        sqlite3_stmt *st;
        int rc = store_prepare(s, sql[i], 0, &st, err, errlen);
        if (rc < 0) return rc;
        store_bind_text(st, 1, id);
        rc = store_step(s, st, err, errlen, "remove project");
        sqlite3_finalize(st);
        if (rc < 0) return rc;
    }
    return 0;
}

int store_project_put(store_t *s, const project_t *p, int *created, char *err, size_t errlen)
{
    sqlite3_stmt *sp = NULL, *sf = NULL;
    project_t settings = *p; /* its webhooks are the stored ones, whatever p holds */
    int64_t pos = 0;
    int rc;
    settings.webhooks = NULL;
    settings.nwebhooks = 0;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = project_pos(s, p->id, &pos, err, errlen)) < 0) goto out;
    if (created) *created = rc == 0;
    if ((rc = project_delete_rows(s, p->id, 0, err, errlen)) < 0 ||
        (rc = store_prepare(s, STORE_SQL_INSERT_PROJECT, 0, &sp, err, errlen)) < 0 ||
        (rc = store_prepare(s, STORE_SQL_INSERT_FUNNEL, 0, &sf, err, errlen)) < 0 ||
        (rc = store_insert_project(s, sp, sf, NULL, &settings, pos, err, errlen)) < 0)
        goto out;
    rc = store_bump_config(s, err, errlen);
out:
    sqlite3_finalize(sp);
    sqlite3_finalize(sf);
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}

int store_project_delete(store_t *s, const char *id, char *err, size_t errlen)
{
    int64_t pos;
    int rc;
    if ((rc = store_tx_begin(s, err, errlen)) < 0) return rc;
    if ((rc = project_pos(s, id, &pos, err, errlen)) == 0)
        rc = store_failf(s, err, errlen, ENOENT, "no project \"%s\"", id);
    if (rc > 0 && (rc = project_delete_rows(s, id, 1, err, errlen)) == 0)
        rc = store_bump_config(s, err, errlen);
    if (rc < 0) {
        store_tx_end(s, 0, NULL, 0);
        return rc;
    }
    return store_tx_end(s, 1, err, errlen);
}
