/* test_store_page.c - pages of one project's deliveries (store_page.c): the project each write
 * records, newest-first keyset pages with ties, records arriving between pages, filters, the
 * cursor's text and its rejection when malformed, a deleted webhook's records, the query plan. */
#include "check.h"
#include "store_v5.h"
#include "domain/config.h"
#include "domain/store.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dbpath[256];

static const char two_projects[] =
    "{\"projects\": ["
    " {\"id\": \"prj_a\", \"name\": \"A\", \"opportunity_fields\": [], \"contact_fields\": [],"
    "  \"funnels\": [], \"webhooks\": ["
    "   {\"id\": \"wh_a\", \"name\": \"a\", \"url\": \"https://a.example/\", \"enabled\": true,"
    "    \"events\": [\"opportunity.created\"]},"
    "   {\"id\": \"wh_a2\", \"name\": \"a2\", \"url\": \"https://a2.example/\", \"enabled\": true,"
    "    \"events\": [\"opportunity.created\"]}]},"
    " {\"id\": \"prj_b\", \"name\": \"B\", \"opportunity_fields\": [], \"contact_fields\": [],"
    "  \"funnels\": [], \"webhooks\": ["
    "   {\"id\": \"wh_b\", \"name\": \"b\", \"url\": \"https://b.example/\", \"enabled\": true,"
    "    \"events\": [\"opportunity.created\"]}]}]}";

/* A page's records, as the callback saw them. */
typedef struct seen {
    char inv[64][64];
    int64_t created[64];
    int n;
} seen_t;

static int collect(void *arg, const delivery_t *d)
{
    seen_t *s = arg;
    if (s->n >= 64) return -ENOSPC;
    snprintf(s->inv[s->n], sizeof s->inv[s->n], "%s", d->invocation_id);
    s->created[s->n] = d->created_at;
    s->n++;
    return 0;
}

/* page: one page of project p after cursor (NULL: first); its cursor into next. */
static int page(store_t *s, const char *p, const char *wh, int status, int limit,
                const char *cursor, seen_t *out, char *next)
{
    char err[256] = "";
    delivery_page_t q = {
        .project_id = p, .webhook_id = wh, .status = status, .limit = limit, .cursor = cursor};
    memset(out, 0, sizeof *out);
    int rc = store_deliveries_page(s, &q, collect, out, next, STORE_CURSOR_MAX, err, sizeof err);
    if (rc < 0 && rc != -EINVAL) fprintf(stderr, "page: %s\n", err);
    return rc;
}

/* load_config puts the two projects into the store. */
static void load_config(store_t *s)
{
    json_error_t je;
    json_t *doc = json_loads(two_projects, 0, &je);
    config_t *cfg = NULL;
    char err[256] = "";
    CHECK(doc != NULL);
    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    CHECK_INT(store_replace_config(s, cfg, err, sizeof err), 0);
    config_free(cfg);
    json_decref(doc);
}

/* test_project_written: the project given is kept; none given takes the webhook's; a webhook
 * unknown to the store and none given leaves it NULL; a record's later write keeps it. */
static void test_project_written(store_t *s)
{
    char err[256] = "";
    delivery_t d;
    CHECK_INT(
        store_delivery_pending(s, "w1", "wh_a", "prj_a", "e1", "t", "{}", 10, err, sizeof err), 0);
    CHECK_INT(store_delivery_pending(s, "w2", "wh_b", NULL, "e2", "t", "{}", 10, err, sizeof err),
              0);
    CHECK_INT(
        store_delivery_pending(s, "w3", "wh_gone", NULL, "e3", "t", "{}", 10, err, sizeof err), 0);
    CHECK_INT(store_delivery_waiting(s, "w4", "wh_gone", "prj_b", "e4", "t", "{}", 10, 99, err,
                                     sizeof err),
              0);
    CHECK_INT(store_delivery_get(s, "w1", &d, err, sizeof err), 0);
    CHECK_STR(d.project_id, "prj_a");
    store_delivery_free(&d);
    CHECK_INT(store_delivery_get(s, "w2", &d, err, sizeof err), 0);
    CHECK_STR(d.project_id, "prj_b");
    store_delivery_free(&d);
    CHECK_INT(store_delivery_get(s, "w3", &d, err, sizeof err), 0);
    CHECK(d.project_id == NULL);
    /* the attempt's record, with no project given, keeps the one stored */
    store_delivery_free(&d);
    CHECK_INT(store_delivery_get(s, "w4", &d, err, sizeof err), 0);
    CHECK_STR(d.project_id, "prj_b");
    free(d.project_id);
    d.project_id = NULL;
    d.attempts = 1;
    d.status = DLV_SUCCEEDED;
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
    store_delivery_free(&d);
    CHECK_INT(store_delivery_get(s, "w4", &d, err, sizeof err), 0);
    CHECK_STR(d.project_id, "prj_b");
    CHECK_INT(d.status, DLV_SUCCEEDED);
    store_delivery_free(&d);
}

/* add: a record of project p (via its webhook wh) created at t, in status st. */
static void add(store_t *s, const char *inv, const char *wh, const char *p, int64_t t,
                delivery_status_t st)
{
    char err[256] = "";
    delivery_t d = {.invocation_id = (char *)inv,
                    .webhook_id = (char *)wh,
                    .project_id = (char *)p,
                    .event_id = "ev",
                    .event_type = "opportunity.created",
                    .status = st,
                    .attempts = 1,
                    .created_at = t,
                    .updated_at = t};
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
}

/* in_order: (created, inv) strictly descending across a page. */
static int in_order(const seen_t *a)
{
    for (int i = 1; i < a->n; i++) {
        if (a->created[i] > a->created[i - 1]) return 0;
        if (a->created[i] == a->created[i - 1] && strcmp(a->inv[i], a->inv[i - 1]) >= 0) return 0;
    }
    return 1;
}

/* test_pages: 40 records of prj_a in ties of four, prj_b's in between; pages of 7 see each once,
 * newest first, while newer records arrive between pages; the last page has no cursor. */
static void test_pages(store_t *s)
{
    char inv[32], next[STORE_CURSOR_MAX], cur[STORE_CURSOR_MAX] = "";
    int count[40] = {0}, total = 0, pages = 0, ordered = 1;
    int64_t last_created = INT64_MAX;
    seen_t pg;
    for (int i = 0; i < 40; i++) {
        snprintf(inv, sizeof inv, "a%02d", i);
        add(s, inv, i % 2 ? "wh_a" : "wh_a2", "prj_a", 1000 + (i / 4) * 10,
            i % 3 ? DLV_SUCCEEDED : DLV_FAILED);
        snprintf(inv, sizeof inv, "b%02d", i);
        add(s, inv, "wh_b", "prj_b", 1000 + i, DLV_SUCCEEDED);
    }
    for (;;) {
        int rc = page(s, "prj_a", NULL, -1, 7, cur[0] ? cur : NULL, &pg, next);
        CHECK(rc >= 0);
        if (rc < 0) break;
        pages++;
        ordered &= in_order(&pg);
        if (pg.n && pg.created[0] > last_created) ordered = 0;
        for (int i = 0; i < pg.n; i++) {
            int k = -1;
            if (sscanf(pg.inv[i], "a%d", &k) == 1 && k >= 0 && k < 40)
                count[k]++;
            else if (strcmp(pg.inv[i], "w1") == 0) /* test_project_written's, the oldest */
                k = -1;
            else
                CHECK_STR(pg.inv[i], "a record of prj_a older than the first page");
            total++;
        }
        if (pg.n) last_created = pg.created[pg.n - 1];
        /* records arriving meanwhile are newer: they never shift the pages still to come */
        snprintf(inv, sizeof inv, "new%02d", pages);
        add(s, inv, "wh_a", "prj_a", 5000 + pages, DLV_PENDING);
        if (!next[0]) break;
        CHECK(rc == 7);
        snprintf(cur, sizeof cur, "%s", next);
    }
    CHECK(ordered);
    CHECK_INT(total, 41);
    CHECK_INT(pages, 6); /* 5 of 7, then 6 */
    for (int i = 0; i < 40; i++)
        CHECK_INT(count[i], 1);

    /* the first page now starts with the newest arrival */
    CHECK_INT(page(s, "prj_a", NULL, -1, 2, NULL, &pg, next), 2);
    CHECK_STR(pg.inv[0], "new06");
    CHECK_STR(pg.inv[1], "new05");
    CHECK(next[0] != '\0');

    /* filters: webhook, status; another project's records never show */
    int n = 0, ok = 1;
    cur[0] = '\0';
    do {
        CHECK(page(s, "prj_a", "wh_a2", DLV_FAILED, 3, cur[0] ? cur : NULL, &pg, next) >= 0);
        for (int i = 0; i < pg.n; i++) {
            int k = -1;
            ok &= sscanf(pg.inv[i], "a%d", &k) == 1 && k % 2 == 0 && k % 3 == 0;
        }
        n += pg.n;
        snprintf(cur, sizeof cur, "%s", next);
    } while (next[0]);
    CHECK(ok);
    CHECK_INT(n, 7); /* even multiples of 3 below 40: 0, 6, ..., 36 */
    CHECK_INT(page(s, "prj_b", NULL, -1, 1000, NULL, &pg, next), 40 + 2);
    CHECK_INT(page(s, "prj_none", NULL, -1, 50, NULL, &pg, next), 0);
    CHECK_STR(next, "");
}

/* test_cursor_text: round trip, and every kind of malformed cursor or limit is -EINVAL. */
static void test_cursor_text(store_t *s)
{
    char c[STORE_CURSOR_MAX], inv[200], next[STORE_CURSOR_MAX];
    int64_t t = 0;
    seen_t pg;
    CHECK_INT(store_page_cursor_encode(1795694400123, "019ae1f0-7c1d-7aaa-b000-000000000001", c,
                                       sizeof c),
              0);
    CHECK(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          strlen(c));
    CHECK_INT(store_page_cursor_decode(c, &t, inv, sizeof inv), 0);
    CHECK_INT(t, 1795694400123);
    CHECK_STR(inv, "019ae1f0-7c1d-7aaa-b000-000000000001");
    CHECK_INT(store_page_cursor_encode(5, "x", c, 4), -ENOSPC);

    const char *bad[] = {
        "!!!!",                           /* outside the alphabet */
        "MTIz",                           /* "123": no colon */
        "OmFi",                           /* ":ab": no time */
        "MTI6",                           /* "12:": no id */
        "MTI6YQ==",                       /* padded */
        "MTI6YR",                         /* "12:a" with leftover bits set */
        "M",                              /* a length no encoding has */
        "MTI6YSBi",                       /* "12:a b": a space in the id */
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk6YQ", /* a time past int64 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = page(s, "prj_a", NULL, -1, 5, bad[i], &pg, next);
        if (rc != -EINVAL) fprintf(stderr, "cursor %s: got %d\n", bad[i], rc);
        CHECK_INT(rc, -EINVAL);
        CHECK_INT(pg.n, 0);
    }
    CHECK_INT(page(s, "prj_a", NULL, -1, 0, NULL, &pg, next), -EINVAL);
    CHECK_INT(page(s, "prj_a", NULL, -1, STORE_PAGE_MAX + 1, NULL, &pg, next), -EINVAL);
    CHECK(page(s, "prj_a", NULL, -1, STORE_PAGE_MAX, NULL, &pg, next) >= 0);
    CHECK(page(s, "prj_a", NULL, -1, 1, "", &pg, next) == 1); /* "" is the first page */
}

/* test_scan_window: a filter matching 3 of 3000 records, pages looking at 500 records at most:
 * short (even empty) pages with a cursor, each match seen once, newest first. */
static void test_scan_window(store_t *s)
{
    char err[256] = "", inv[32], cur[STORE_CURSOR_MAX] = "", next[STORE_CURSOR_MAX];
    int pages = 0, found = 0, ok = 1;
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(inv, sizeof inv, "s%04d", i);
        add(s, inv, "wh_s", "prj_scan", 100000 + i,
            i == 0 || i == 1200 || i == 2999 ? DLV_FAILED : DLV_SUCCEEDED);
    }
    CHECK_INT(store_commit(s, err, sizeof err), 0);
    const char *want[] = {"s2999", "s1200", "s0000"};
    for (;;) {
        seen_t pg;
        delivery_page_t q = {.project_id = "prj_scan",
                             .status = DLV_FAILED,
                             .limit = 2,
                             .cursor = cur[0] ? cur : NULL,
                             .scan = 500};
        memset(&pg, 0, sizeof pg);
        int rc = store_deliveries_page(s, &q, collect, &pg, next, sizeof next, err, sizeof err);
        CHECK(rc >= 0 && rc <= 2);
        if (rc < 0 || ++pages > 20) break;
        for (int i = 0; i < pg.n; i++)
            ok &= found < 3 && strcmp(pg.inv[i], want[found++]) == 0;
        if (!next[0]) break;
        snprintf(cur, sizeof cur, "%s", next);
    }
    CHECK(ok);
    CHECK_INT(found, 3);
    CHECK_INT(pages, 7); /* 6 windows of 500, then an empty rest (the 6th ended at the oldest) */
}

/* test_deleted_webhook: a removed webhook's records still list under its project. */
static void test_deleted_webhook(store_t *s)
{
    char err[256] = "", next[STORE_CURSOR_MAX];
    seen_t pg;
    CHECK_INT(store_webhook_remove(s, "wh_a2", err, sizeof err), 0);
    CHECK_INT(page(s, "prj_a", "wh_a2", -1, 100, NULL, &pg, next), 20);
}

/* test_upgrade: a version 4 log (no project column) opened at version 5: each record takes its
 * webhook's project; a record whose webhook had gone has none. */
static void test_upgrade(const char *dir)
{
    char path[300], err[256] = "", next[STORE_CURSOR_MAX];
    store_t *s = NULL;
    delivery_t d;
    seen_t pg;
    snprintf(path, sizeof path, "%s/v4.db", dir);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    load_config(s);
    add(s, "u1", "wh_a", NULL, 10, DLV_SUCCEEDED);
    add(s, "u2", "wh_b", NULL, 20, DLV_FAILED);
    add(s, "u3", "wh_gone", NULL, 30, DLV_FAILED);
    store_close(s);
    s = NULL;
    CHECK_INT(store_to_v5(path, "DROP INDEX deliveries_project;"
                                "ALTER TABLE deliveries DROP COLUMN project_id;"
                                "PRAGMA user_version = 4;"),
              0);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(page(s, "prj_a", NULL, -1, 10, NULL, &pg, next), 1);
    CHECK_STR(pg.inv[0], "u1");
    CHECK_INT(page(s, "prj_b", NULL, -1, 10, NULL, &pg, next), 1);
    CHECK_STR(pg.inv[0], "u2");
    CHECK_INT(store_delivery_get(s, "u3", &d, err, sizeof err), 0);
    CHECK(d.project_id == NULL);
    store_delivery_free(&d);
    store_close(s);
}

/* test_plan: the page query walks the index deliveries_project. */
static void test_plan(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int uses = 0, sorts = 0;
    CHECK_INT(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db,
                                 "EXPLAIN QUERY PLAN SELECT invocation_id FROM deliveries WHERE"
                                 " project_id = 'prj_a' AND (created_at, invocation_id) < (5, 'x')"
                                 " ORDER BY created_at DESC, invocation_id DESC LIMIT 8",
                                 -1, &st, NULL),
              SQLITE_OK);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        if (d && strstr(d, "deliveries_project")) uses = 1;
        if (d && strstr(d, "TEMP B-TREE")) sorts = 1;
    }
    CHECK(uses);
    CHECK(!sorts);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    char dir[] = "/tmp/hl-test-store-page-XXXXXX", err[256] = "";
    store_t *s = NULL;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hookline.db", dir);
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (s) {
        load_config(s);
        test_project_written(s);
        test_pages(s);
        test_cursor_text(s);
        test_scan_window(s);
        test_deleted_webhook(s);
        store_close(s);
        test_plan();
        test_upgrade(dir);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("store_page");
}
