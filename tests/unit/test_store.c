/* test_store.c - store: file mode, configuration replace/load/versioning and single-webhook
 * changes, the delivery log's writes, reads, JSON and pruning, and two writer processes. */
#include "check.h"
#include "store_v5.h"
#include "domain/config.h"
#include "domain/store.h"
#include "domain/store_repair.h"
#include "util/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dbpath[256];

static const char example[] =
    "{\"projects\": [{"
    "  \"id\": \"prj_1\", \"name\": \"Acme\","
    "  \"opportunity_fields\": [\"title\", \"value\", \"owner\"],"
    "  \"contact_fields\": [\"name\", \"email\"],"
    "  \"funnels\": [{\"id\": \"fun_1\", \"name\": \"Sales\","
    "     \"stages\": [{\"id\": \"stg_new\", \"name\": \"New\"}, {\"id\": \"stg_won\", \"name\": "
    "\"Closed won\"}, {\"id\": \"stg_lost\", \"name\": \"Closed lost\"}],"
    "     \"won_stage_id\": \"stg_won\", \"lost_stage_id\": \"stg_lost\"},"
    "    {\"id\": \"fun_0\", \"name\": \"Other\", \"stages\": []}],"
    "  \"webhooks\": [{\"id\": \"wh_1\", \"name\": \"Slack Notifications for Won Deals\","
    "      \"url\": \"https://hooks.example.com/won\", \"enabled\": true,"
    "      \"events\": [\"opportunity.won\"],"
    "      \"auth\": {\"type\": \"bearer\", \"token\": \"tok_abc\"},"
    "      \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"},"
    "    {\"id\": \"wh_0\", \"name\": \"\", \"url\": \"http://b.example/\", \"enabled\": false,"
    "      \"events\": [\"opportunity.created\", \"opportunity.transitioned\"],"
    "      \"auth\": {\"type\": \"basic\", \"username\": \"u\", \"password\": \"p\"}}]"
    "}, {\"id\": \"prj_0\", \"name\": \"Zeta\", \"opportunity_fields\": [], \"contact_fields\": [],"
    "  \"funnels\": [], \"webhooks\": []}]}";

/* parse_config: a config_t from JSON text (test helper). */
static config_t *parse_config(const char *text)
{
    char err[256];
    config_t *cfg = NULL;
    json_t *doc = json_loads(text, 0, NULL);
    if (config_from_json(doc, &cfg, err, sizeof err) < 0) fprintf(stderr, "config: %s\n", err);
    json_decref(doc);
    return cfg;
}

/* same_config: both render to the same JSON. */
static int same_config(const config_t *a, const config_t *b)
{
    json_t *ja = config_to_json(a, 1), *jb = config_to_json(b, 1);
    int eq = json_equal(ja, jb);
    if (!eq) {
        char *ta = json_dumps(ja, JSON_COMPACT), *tb = json_dumps(jb, JSON_COMPACT);
        fprintf(stderr, "configs differ:\n  %s\n  %s\n", ta, tb);
        free(ta);
        free(tb);
    }
    json_decref(ja);
    json_decref(jb);
    return eq;
}

/* test_config: mode, replace/load, version, webhook add/remove/enable. */
static void test_config(void)
{
    char err[256] = "";
    store_t *s = NULL;
    struct stat stt;
    int64_t v = -1;
    config_t *cfg = parse_config(example), *loaded = NULL;
    webhook_t wh;
    json_t *obj;

    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (!s) {
        fprintf(stderr, "open: %s\n", err);
        return;
    }
    CHECK_INT(stat(dbpath, &stt), 0);
    CHECK_INT(stt.st_mode & 0777, 0600);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    CHECK(loaded && loaded->nprojects == 0);
    config_free(loaded);

    CHECK_INT(store_replace_config(s, cfg, err, sizeof err), 0);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 1);
    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    CHECK(loaded && same_config(cfg, loaded));
    if (loaded) CHECK_STR(loaded->projects[1].id, "prj_0"); /* order kept, not sorted */
    config_free(loaded);

    obj = json_loads(
        "{\"id\":\"wh_new\",\"url\":\"https://n.example/\","
        "\"events\":[\"opportunity.lost\"],\"auth\":{\"type\":\"api_key\",\"key\":\"K\"}}",
        0, NULL);
    CHECK_INT(config_webhook_from_json(obj, "prj_1", &wh, err, sizeof err), 0);
    CHECK_INT(store_webhook_add(s, &wh, err, sizeof err), 0);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 2);
    CHECK_INT(store_webhook_add(s, &wh, err, sizeof err), -EEXIST);
    CHECK(strstr(err, "hookline.db: ") == err);
    free(wh.project_id);
    wh.project_id = strdup("prj_nope");
    free(wh.id);
    wh.id = strdup("wh_other");
    CHECK_INT(store_webhook_add(s, &wh, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "unknown project") != NULL);
    config_webhook_clear(&wh);
    json_decref(obj);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 2); /* failed changes do not bump */

    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    if (loaded) {
        const project_t *p = NULL;
        const webhook_t *w = config_find_webhook(loaded, "wh_new", &p);
        CHECK(w != NULL);
        CHECK(p == &loaded->projects[0]);
        CHECK_INT(loaded->projects[0].nwebhooks, 3);
        CHECK_STR(loaded->projects[0].webhooks[2].id, "wh_new"); /* appended last */
        if (w) {
            CHECK_INT(w->auth.type, AUTH_API_KEY);
            CHECK_STR(w->auth.key, "K");
            CHECK_INT(w->events, EVT_LOST);
            CHECK_INT(w->enabled, 1);
        }
    }
    config_free(loaded);

    CHECK_INT(store_webhook_set_enabled(s, "wh_new", 0, err, sizeof err), 0);
    CHECK_INT(store_webhook_set_enabled(s, "wh_missing", 0, err, sizeof err), -ENOENT);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 3);
    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    CHECK(loaded && config_find_webhook(loaded, "wh_new", NULL)->enabled == 0);
    config_free(loaded);
    CHECK_INT(store_webhook_set_enabled(s, "wh_new", 1, err, sizeof err), 0);
    CHECK_INT(store_webhook_remove(s, "wh_new", err, sizeof err), 0);
    CHECK_INT(store_webhook_remove(s, "wh_new", err, sizeof err), -ENOENT);
    CHECK(strstr(err, "wh_new") != NULL);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 5);
    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    CHECK(loaded && same_config(cfg, loaded));
    config_free(loaded);

    /* Replacing drops what the new document does not have. */
    config_free(cfg);
    cfg = parse_config("{\"projects\":[{\"id\":\"solo\",\"webhooks\":[{\"id\":\"w\","
                       "\"url\":\"https://s.example/\",\"events\":[\"opportunity.won\"]}]}]}");
    CHECK_INT(store_replace_config(s, cfg, err, sizeof err), 0);
    store_close(s);

    /* Reopen: the schema exists and the data persisted. */
    s = NULL;
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, 6);
    CHECK_INT(store_load_config(s, &loaded, err, sizeof err), 0);
    CHECK(loaded && same_config(cfg, loaded));
    CHECK(loaded && config_find_webhook(loaded, "wh_1", NULL) == NULL);
    config_free(loaded);
    config_free(cfg);
    store_close(s);
}

/* collect_cb: collect invocation ids in order into a JSON array. */
static int collect_cb(void *arg, const delivery_t *d)
{
    json_array_append_new((json_t *)arg, json_string(d->invocation_id));
    return 0;
}

/* list_ids: the ids a filter returns, joined by commas (caller frees). */
static char *list_ids(store_t *s, const char *webhook_id, const char *event_id, int status,
                      int limit)
{
    char err[256];
    delivery_filter_t f = {webhook_id, event_id, status, limit};
    json_t *a = json_array();
    size_t i, len = 0;
    json_t *v;
    char *out = calloc(1, 4096);
    if (store_deliveries_list(s, &f, collect_cb, a, err, sizeof err) < 0)
        fprintf(stderr, "list: %s\n", err);
    json_array_foreach(a, i, v) len +=
        (size_t)snprintf(out + len, 4096 - len, "%s%s", i ? "," : "", json_string_value(v));
    json_decref(a);
    return out;
}

/* record: a full attempt record (test helper). */
static int record(store_t *s, const char *inv, const char *wh, delivery_status_t st,
                  int64_t created, int64_t updated)
{
    char err[256];
    delivery_t d = {0};
    d.invocation_id = (char *)inv;
    d.webhook_id = (char *)wh;
    d.event_id = (char *)"evt";
    d.event_type = (char *)"opportunity.won";
    d.status = st;
    d.attempts = 1;
    d.created_at = created;
    d.updated_at = updated;
    d.req_method = (char *)"POST";
    d.req_url = (char *)"https://x.example/";
    d.req_headers = (char *)"{}";
    d.req_body = (char *)"{}";
    return store_delivery_record(s, &d, err, sizeof err);
}

/* attempt_record: an attempt's record with its number and status (test helper). */
static int attempt_record(store_t *s, const char *inv, int attempt, delivery_status_t st)
{
    char err[256];
    delivery_t d = {0};
    d.invocation_id = (char *)inv;
    d.webhook_id = (char *)"wh_d";
    d.event_id = (char *)"evt_d";
    d.event_type = (char *)"opportunity.created";
    d.status = st;
    d.attempts = attempt;
    d.created_at = 1000;
    d.updated_at = 2000 + attempt;
    d.req_method = (char *)"POST";
    d.req_url = (char *)"https://x.example/";
    return store_delivery_record(s, &d, err, sizeof err);
}

/* status_of returns an invocation's status and attempts as status * 100 + attempts. */
static int status_of(store_t *s, const char *inv)
{
    char err[256];
    delivery_t d;
    if (store_delivery_get(s, inv, &d, err, sizeof err) < 0) return -1;
    int v = (int)d.status * 100 + d.attempts;
    store_delivery_free(&d);
    return v;
}

/* test_late_duplicates: a duplicate of an older attempt never overwrites newer news, and a
 * redelivery starts the count again. */
static void test_late_duplicates(void)
{
    char err[256];
    store_t *s;
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    CHECK_INT(attempt_record(s, "dup1", 2, DLV_RETRYING), 0);
    CHECK_INT(attempt_record(s, "dup1", 1, DLV_RETRYING), 0); /* stale: ignored */
    CHECK_INT(status_of(s, "dup1"), DLV_RETRYING * 100 + 2);
    CHECK_INT(attempt_record(s, "dup1", 3, DLV_SUCCEEDED), 0);
    CHECK_INT(attempt_record(s, "dup1", 3, DLV_RETRYING), 0); /* same attempt after success */
    CHECK_INT(status_of(s, "dup1"), DLV_SUCCEEDED * 100 + 3);
    CHECK_INT(store_delivery_mark(s, "dup1", DLV_PENDING, 0, err, sizeof err), 0);
    CHECK_INT(status_of(s, "dup1"), DLV_PENDING * 100 + 0);
    CHECK_INT(attempt_record(s, "dup1", 1, DLV_RETRYING), 0); /* the redelivery's attempt 1 */
    CHECK_INT(status_of(s, "dup1"), DLV_RETRYING * 100 + 1);
    CHECK_INT(attempt_record(s, "dup2", 6, DLV_FAILED), 0);
    CHECK_INT(attempt_record(s, "dup2", 6, DLV_RETRYING), 0);
    CHECK_INT(status_of(s, "dup2"), DLV_FAILED * 100 + 6);
    store_close(s);
}

/* stop_cb: stops the walk after the first record. */
static int stop_cb(void *arg, const delivery_t *d)
{
    (*(int *)arg)++;
    return -ECANCELED;
}

/* test_deliveries: pending, record, mark, get, list, to_json, prune. */
static void test_deliveries(void)
{
    char err[256] = "";
    store_t *s = NULL;
    delivery_t d, got;
    json_t *j, *r;
    char *ids;
    int calls = 0;
    static const char body[] = "ok \xff\xfe end\xe2\x82"; /* invalid bytes, cut sequence */

    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    CHECK_INT(store_begin(s, err, sizeof err), -EBUSY);
    CHECK_INT(store_delivery_pending(s, "inv1", "wh_a", NULL, "evt1", "opportunity.won", NULL, 1000,
                                     err, sizeof err),
              0);
    CHECK_INT(store_delivery_pending(s, "inv1", "wh_a", NULL, "evt1", "opportunity.won", NULL, 9999,
                                     err, sizeof err),
              0);
    CHECK_INT(store_commit(s, err, sizeof err), 0);
    CHECK_INT(store_commit(s, err, sizeof err), -EINVAL);

    CHECK_INT(store_delivery_get(s, "inv1", &got, err, sizeof err), 0);
    CHECK_STR(got.webhook_id, "wh_a");
    CHECK_STR(got.event_id, "evt1");
    CHECK_INT(got.status, DLV_PENDING);
    CHECK_INT(got.attempts, 0);
    CHECK_INT(got.created_at, 1000); /* the second pending was ignored */
    CHECK(got.req_method == NULL && got.resp_body == NULL && got.error == NULL);
    j = store_delivery_to_json(&got);
    CHECK(json_is_null(json_object_get(j, "request")));
    CHECK(json_is_null(json_object_get(j, "response")));
    CHECK(json_is_null(json_object_get(j, "error")));
    CHECK(json_is_null(json_object_get(j, "next_attempt_at")));
    CHECK_STR(json_string_value(json_object_get(j, "status")), "pending");
    CHECK_STR(json_string_value(json_object_get(j, "created_at")), "1970-01-01T00:00:01.000Z");
    json_decref(j);
    store_delivery_free(&got);

    memset(&d, 0, sizeof d);
    d.invocation_id = (char *)"inv1";
    d.webhook_id = (char *)"wh_a";
    d.event_id = (char *)"evt1";
    d.event_type = (char *)"opportunity.won";
    d.status = DLV_RETRYING;
    d.attempts = 2;
    d.next_attempt_at = 1795694400123LL; /* 2026-11-26T12:00:00.123Z */
    d.created_at = 5555;
    d.updated_at = 1795694370000LL;
    d.req_method = (char *)"POST";
    d.req_url = (char *)"https://hooks.example.com/won";
    d.req_headers = (char *)"{\"Authorization\":\"***\",\"webhook-id\":\"inv1\"}";
    d.req_body = (char *)"{\"id\":\"evt1\"}";
    d.resp_status = 503;
    d.resp_headers = (char *)"{\"Retry-After\":\"5\"}";
    d.resp_body = (char *)body;
    d.resp_body_len = sizeof body - 1;
    d.resp_truncated = 1;
    d.error = (char *)"HTTP 503";
    d.duration_ms = 42;
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);

    CHECK_INT(store_delivery_get(s, "inv1", &got, err, sizeof err), 0);
    CHECK_INT(got.created_at, 1000); /* kept from the pending row */
    CHECK_INT(got.updated_at, 1795694370000LL);
    CHECK_INT(got.status, DLV_RETRYING);
    CHECK_INT(got.attempts, 2);
    CHECK_INT(got.resp_status, 503);
    CHECK_INT(got.resp_body_len, sizeof body - 1);
    CHECK(got.resp_body && memcmp(got.resp_body, body, sizeof body - 1) == 0);
    CHECK_INT(got.resp_truncated, 1);
    CHECK_STR(got.error, "HTTP 503");
    CHECK_INT(got.duration_ms, 42);
    CHECK_STR(got.req_headers, d.req_headers);

    j = store_delivery_to_json(&got);
    CHECK_STR(json_string_value(json_object_get(j, "invocation_id")), "inv1");
    CHECK_STR(json_string_value(json_object_get(j, "webhook_id")), "wh_a");
    CHECK_STR(json_string_value(json_object_get(j, "event_id")), "evt1");
    CHECK_STR(json_string_value(json_object_get(j, "event_type")), "opportunity.won");
    CHECK_STR(json_string_value(json_object_get(j, "status")), "retrying");
    CHECK_INT(json_integer_value(json_object_get(j, "attempts")), 2);
    CHECK_STR(json_string_value(json_object_get(j, "next_attempt_at")), "2026-11-26T12:00:00.123Z");
    CHECK_STR(json_string_value(json_object_get(j, "updated_at")), "2026-11-26T11:59:30.000Z");
    r = json_object_get(j, "request");
    CHECK_STR(json_string_value(json_object_get(r, "method")), "POST");
    CHECK_STR(json_string_value(json_object_get(r, "url")), "https://hooks.example.com/won");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "headers"), "Authorization")),
              "***");
    CHECK_STR(json_string_value(json_object_get(r, "body")), "{\"id\":\"evt1\"}");
    r = json_object_get(j, "response");
    CHECK_INT(json_integer_value(json_object_get(r, "status")), 503);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "headers"), "Retry-After")),
              "5");
    CHECK_STR(json_string_value(json_object_get(r, "body")),
              "ok \xef\xbf\xbd\xef\xbf\xbd end\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(json_is_true(json_object_get(r, "truncated")));
    CHECK_STR(json_string_value(json_object_get(j, "error")), "HTTP 503");
    CHECK_INT(json_integer_value(json_object_get(j, "duration_ms")), 42);
    CHECK_INT(json_object_size(j), 13);
    json_decref(j);
    store_delivery_free(&got);

    CHECK_INT(store_delivery_mark(s, "inv1", DLV_FAILED, 0, err, sizeof err), 0);
    CHECK_INT(store_delivery_mark(s, "nope", DLV_FAILED, 0, err, sizeof err), -ENOENT);
    CHECK_INT(store_delivery_get(s, "nope", &got, err, sizeof err), -ENOENT);
    CHECK_INT(store_delivery_get(s, "inv1", &got, err, sizeof err), 0);
    CHECK_INT(got.status, DLV_FAILED);
    CHECK_INT(got.next_attempt_at, 0);
    CHECK(got.updated_at != 1795694370000LL); /* mark stamps now */
    CHECK_INT(got.resp_status, 503);          /* the attempt's data stays */
    store_delivery_free(&got);

    /* Rolled-back writes vanish. */
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    CHECK_INT(record(s, "inv_rb", "wh_a", DLV_SUCCEEDED, 1, 1), 0);
    CHECK_INT(store_rollback(s), 0);
    CHECK_INT(store_delivery_get(s, "inv_rb", &got, err, sizeof err), -ENOENT);

    /* Listing: newest first, filters, limit. */
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    CHECK_INT(record(s, "a1", "wh_b", DLV_SUCCEEDED, 2000, 2000), 0);
    CHECK_INT(record(s, "a2", "wh_b", DLV_FAILED, 3000, 3000), 0);
    CHECK_INT(record(s, "a3", "wh_b", DLV_SUCCEEDED, 4000, 4000), 0);
    CHECK_INT(record(s, "a4", "wh_c", DLV_SUCCEEDED, 3500, 3500), 0);
    CHECK_INT(store_commit(s, err, sizeof err), 0);
    ids = list_ids(s, NULL, NULL, -1, 0);
    CHECK_STR(ids, "a3,a4,a2,a1,inv1");
    free(ids);
    ids = list_ids(s, "wh_b", NULL, -1, 0);
    CHECK_STR(ids, "a3,a2,a1");
    free(ids);
    ids = list_ids(s, NULL, NULL, DLV_SUCCEEDED, 2);
    CHECK_STR(ids, "a3,a4");
    free(ids);
    ids = list_ids(s, NULL, "evt1", -1, 0);
    CHECK_STR(ids, "inv1");
    free(ids);
    ids = list_ids(s, "wh_b", "evt", DLV_FAILED, 0);
    CHECK_STR(ids, "a2");
    free(ids);
    {
        delivery_filter_t f = {NULL, NULL, -1, 0};
        CHECK_INT(store_deliveries_list(s, &f, stop_cb, &calls, err, sizeof err), -ECANCELED);
        CHECK_INT(calls, 1);
    }

    /* Pruning by count keeps the newest per webhook and never live records. */
    CHECK_INT(store_delivery_pending(s, "p0", "wh_b", NULL, "evt", "opportunity.won", NULL, 100,
                                     err, sizeof err),
              0);
    CHECK_INT(store_prune(s, 0, 1, err, sizeof err), 2); /* a2, a1 */
    ids = list_ids(s, "wh_b", NULL, -1, 0);
    CHECK_STR(ids, "a3,p0");
    free(ids);
    ids = list_ids(s, "wh_c", NULL, -1, 0);
    CHECK_STR(ids, "a4");
    free(ids);
    /* By age: every finished record not updated within the window (the test rows are from
     * 1970); the pending one is live work and stays. */
    CHECK_INT(store_prune(s, 60000, 0, err, sizeof err), 2); /* a3, a4 */
    ids = list_ids(s, NULL, NULL, -1, 0);
    CHECK_STR(ids, "inv1,p0"); /* inv1 marked just now */
    free(ids);
    CHECK_INT(store_prune(s, 0, 0, err, sizeof err), 0);

    CHECK_STR(store_status_name(DLV_SUCCEEDED), "succeeded");
    CHECK_INT(store_status_parse("failed"), DLV_FAILED);
    CHECK_INT(store_status_parse("done"), -1);
    store_close(s);
}

/* writer: a child process writing batches of the delivery log and config changes. */
static int writer(int id)
{
    char err[256], inv[64];
    store_t *s = NULL;
    if (store_open(&s, dbpath, err, sizeof err) < 0) {
        fprintf(stderr, "writer %d: %s\n", id, err);
        return 1;
    }
    for (int b = 0; b < 200; b++) {
        if (store_begin(s, err, sizeof err) < 0) goto fail;
        for (int i = 0; i < 50; i++) {
            snprintf(inv, sizeof inv, "w%d-%d-%d", id, b, i);
            if (store_delivery_pending(s, inv, "wh_x", NULL, "evt", "opportunity.won", NULL, 0, err,
                                       sizeof err) < 0 ||
                record(s, inv, "wh_x", DLV_SUCCEEDED, 0, 0) < 0)
                goto fail;
        }
        if (store_commit(s, err, sizeof err) < 0) goto fail;
        if (b % 10 == 0 && store_webhook_set_enabled(s, "w", b % 20 == 0, err, sizeof err) < 0)
            goto fail;
    }
    store_close(s);
    return 0;
fail:
    fprintf(stderr, "writer %d: %s\n", id, err);
    store_close(s);
    return 1;
}

/* count_cb: counts records. */
static int count_cb(void *arg, const delivery_t *d)
{
    (*(int *)arg)++;
    return 0;
}

/* test_two_writers: two processes batching writes on one file never see SQLITE_BUSY. */
static void test_two_writers(void)
{
    char err[256];
    pid_t pids[2];
    store_t *s = NULL;
    int n = 0, status;
    delivery_filter_t f = {"wh_x", NULL, -1, 1000000};
    int64_t v0 = 0, v1 = 0;

    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(store_config_version(s, &v0), 0);
    fflush(NULL);
    for (int i = 0; i < 2; i++) {
        if ((pids[i] = fork()) == 0) _exit(writer(i));
    }
    for (int i = 0; i < 2; i++) {
        CHECK(waitpid(pids[i], &status, 0) == pids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK_INT(store_deliveries_list(s, &f, count_cb, &n, err, sizeof err), 0);
    CHECK_INT(n, 2 * 200 * 50);
    CHECK_INT(store_config_version(s, &v1), 0);
    CHECK_INT(v1 - v0, 2 * 20);
    store_close(s);
}

/* test_manual_checkpoint: with store_wal_manual the WAL grows past SQLite's 1000-page
 * automatic checkpoint, counted by store_wal_pages; a second connection checkpoints it and the
 * next commit starts the WAL over. */
static void test_manual_checkpoint(void)
{
    char err[256], inv[64];
    store_t *s = NULL, *ck = NULL;
    static char body[4096];
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    CHECK_INT(store_open(&ck, dbpath, err, sizeof err), 0);
    if (!s || !ck) goto out;
    CHECK_INT(store_wal_manual(s), 0);
    memset(body, 'b', sizeof body - 1);
    int peak = 0;
    for (int t = 0; t < 40; t++) {
        CHECK_INT(store_begin(s, err, sizeof err), 0);
        for (int i = 0; i < 50; i++) {
            snprintf(inv, sizeof inv, "inv_ck_%d_%d", t, i);
            delivery_t d = {.invocation_id = inv,
                            .webhook_id = "wh_ck",
                            .event_id = inv,
                            .event_type = "opportunity.created",
                            .status = DLV_SUCCEEDED,
                            .attempts = 1,
                            .created_at = 1,
                            .updated_at = 2,
                            .req_body = body};
            CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
        }
        CHECK_INT(store_commit(s, err, sizeof err), 0);
        if (store_wal_pages(s) > peak) peak = store_wal_pages(s);
    }
    CHECK(peak > 1000); /* no automatic checkpoint cut it short */
    CHECK_INT(store_checkpoint(ck, err, sizeof err), 0);
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    delivery_t d = {.invocation_id = "inv_ck_last",
                    .webhook_id = "wh_ck",
                    .event_id = "e",
                    .event_type = "opportunity.created",
                    .status = DLV_SUCCEEDED,
                    .attempts = 1,
                    .created_at = 1,
                    .updated_at = 2};
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
    CHECK_INT(store_commit(s, err, sizeof err), 0);
    CHECK(store_wal_pages(s) < 100); /* everything was copied: the WAL started over */
out:
    store_close(ck);
    store_close(s);
}

/* exists: 1 when the invocation has a record. */
static int exists(store_t *s, const char *inv)
{
    char err[256];
    delivery_t d;
    if (store_delivery_get(s, inv, &d, err, sizeof err) < 0) return 0;
    store_delivery_free(&d);
    return 1;
}

/* count_rows: every record in the log. */
static int count_rows(store_t *s)
{
    char err[256];
    int n = 0;
    delivery_filter_t f = {NULL, NULL, -1, 1000000};
    store_deliveries_list(s, &f, count_cb, &n, err, sizeof err);
    return n;
}

/* A prune model row: which webhook, its status, when created and updated. */
typedef struct prune_row {
    char inv[32];
    const char *wh;
    delivery_status_t st;
    int64_t created, updated;
    int keep; /* what the rules say */
    int age_kept, count_ok;
} prune_row_t;

/* prune_rank_newer: row b ranks before a in (created_at DESC, invocation_id ASC). */
static int prune_rank_newer(const prune_row_t *b, const prune_row_t *a)
{
    return b->created > a->created || (b->created == a->created && strcmp(b->inv, a->inv) < 0);
}

/* test_prune_steps: the incremental prune against a model: by age, by count per webhook (ties
 * in created_at broken by invocation id, live records counted but never deleted), in batches
 * of 7 that never exceed the batch, and nothing else deleted. */
static void test_prune_steps(void)
{
    char err[256], path[300];
    store_t *s;
    enum { N = 260 };
    static prune_row_t rows[N];
    const char *whs[] = {"wh_a", "wh_b", "wh_c", "wh_d"};
    int64_t now = time_now_ms(), day = 86400000;
    int keep = 20, batch = 7;

    snprintf(path, sizeof path, "%s.prune", dbpath);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    srand(7);
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        prune_row_t *r = &rows[i];
        snprintf(r->inv, sizeof r->inv, "inv_%03d", (i * 37) % N); /* ids not in time order */
        /* wh_a: many; wh_b: fewer than keep; wh_c: many, all created at the same time; wh_d:
         * many, with live records among the old ones. */
        r->wh = i < 120 ? whs[0] : i < 135 ? whs[1] : i < 190 ? whs[2] : whs[3];
        r->created = r->wh == whs[2] ? 5000 : 1000 + rand() % 100000;
        r->updated = (rand() % 3 == 0) ? now - 40 * day : now - rand() % day; /* a third old */
        int roll = rand() % 10;
        r->st = roll < 5   ? DLV_SUCCEEDED
                : roll < 8 ? DLV_FAILED
                : roll < 9 ? DLV_PENDING
                           : DLV_RETRYING;
        CHECK_INT(record(s, r->inv, r->wh, r->st, r->created, r->updated), 0);
    }
    CHECK_INT(store_commit(s, err, sizeof err), 0);
    /* The model: live rows stay; finished ones go when old, and then when keep newer rows (any
     * status) of their webhook are left. */
    for (int i = 0; i < N; i++) {
        prune_row_t *r = &rows[i];
        r->keep = (r->st != DLV_SUCCEEDED && r->st != DLV_FAILED) || r->updated >= now - 30 * day;
    }
    for (int i = 0; i < N; i++) {
        prune_row_t *r = &rows[i];
        int newer = 0;
        for (int j = 0; j < N; j++)
            if (j != i && rows[j].keep && rows[j].wh == r->wh && prune_rank_newer(&rows[j], r))
                newer++;
        r->age_kept = r->keep;
        if (r->st == DLV_SUCCEEDED || r->st == DLV_FAILED) r->count_ok = newer < keep;
    }
    for (int i = 0; i < N; i++)
        if (rows[i].st == DLV_SUCCEEDED || rows[i].st == DLV_FAILED)
            rows[i].keep = rows[i].age_kept && rows[i].count_ok;
    store_prune_t c;
    int steps = 0, over = 0, total = 0, n;
    store_prune_begin(&c, 30 * day, keep, batch);
    while (!c.done && steps < 1000) {
        if ((n = store_prune_step(s, &c, err, sizeof err)) < 0) {
            fprintf(stderr, "prune step: %s\n", err);
            break;
        }
        over += n > batch;
        total += n;
        steps++;
    }
    store_prune_end(&c);
    CHECK(c.done);
    CHECK_INT(over, 0);
    CHECK(steps > total / batch); /* it did take several batches */
    int want = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        want += rows[i].keep;
        if (exists(s, rows[i].inv) != rows[i].keep) {
            wrong++;
            fprintf(stderr, "prune: %s (%s, status %d, created %lld) %s\n", rows[i].inv, rows[i].wh,
                    rows[i].st, (long long)rows[i].created, rows[i].keep ? "deleted" : "kept");
        }
    }
    CHECK_INT(wrong, 0);
    CHECK_INT(count_rows(s), want);
    CHECK_INT(total, N - want);
    CHECK_INT(c.deleted, N - want);
    /* A second pass finds nothing more; with both rules off nothing starts. */
    CHECK_INT(store_prune(s, 30 * day, keep, err, sizeof err), 0);
    store_prune_begin(&c, 0, 0, batch);
    CHECK(c.done);
    CHECK_INT(store_prune_step(s, &c, err, sizeof err), 0);
    store_prune_end(&c);
    CHECK_INT(count_rows(s), want);
    store_close(s);
}

/* stale_cb collects the ids of stale live records, comma-separated, into a 512-byte buffer. */
static int stale_cb(void *arg, const delivery_t *d)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s%s", n ? "," : "", d->invocation_id);
    return 0;
}

/* test_live_records: the writes that keep live records owned (deferred attempt 1, scheduled
 * redelivery), the stale-live listing, the conditional end, and store_repair's matching. */
static void test_live_records(void)
{
    char err[256], path[300], ids[512] = "";
    store_t *s;
    delivery_t d;
    store_repair_t *r;
    int held;
    int64_t now = time_now_ms();

    snprintf(path, sizeof path, "%s.live", dbpath);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    /* A deferred attempt 1: its pending row becomes retrying, attempts 0, body kept. */
    CHECK_INT(store_delivery_pending(s, "d1", "wh", NULL, "ev_d1", "t", "{\"b\":1}", 100, err,
                                     sizeof err),
              0);
    CHECK_INT(store_delivery_waiting(s, "d1", "wh", NULL, "ev_d1", "t", "{\"x\":2}", 100, 7777, err,
                                     sizeof err),
              0);
    CHECK_INT(store_delivery_get(s, "d1", &d, err, sizeof err), 0);
    CHECK_INT(d.status, DLV_RETRYING);
    CHECK_INT(d.attempts, 0);
    CHECK_INT(d.next_attempt_at, 7777);
    CHECK_STR(d.req_body, "{\"b\":1}"); /* the pending row's body stays */
    CHECK(d.req_method == NULL);        /* no request was made: none shown */
    store_delivery_free(&d);
    /* No row yet: one is created; a row with newer news is left alone. */
    CHECK_INT(
        store_delivery_waiting(s, "d2", "wh", NULL, "ev_d2", "t", "{}", 100, 8888, err, sizeof err),
        0);
    CHECK_INT(status_of(s, "d2"), DLV_RETRYING * 100 + 0);
    CHECK_INT(attempt_record(s, "d3", 1, DLV_SUCCEEDED), 0);
    CHECK_INT(
        store_delivery_waiting(s, "d3", "wh", NULL, "ev", "t", "{}", 100, 8888, err, sizeof err),
        0);
    CHECK_INT(status_of(s, "d3"), DLV_SUCCEEDED * 100 + 1);
    /* A redelivery (attempt 1) or a repair (attempt k + 1) held by the scheduler. */
    CHECK_INT(store_delivery_scheduled(s, "d3", 1, 9999, err, sizeof err), 0);
    CHECK_INT(status_of(s, "d3"), DLV_RETRYING * 100 + 0);
    CHECK_INT(attempt_record(s, "d3", 1, DLV_SUCCEEDED), 0); /* its attempt 1 is recorded */
    CHECK_INT(status_of(s, "d3"), DLV_SUCCEEDED * 100 + 1);
    CHECK_INT(store_delivery_scheduled(s, "d3", 4, 9999, err, sizeof err), 0);
    CHECK_INT(status_of(s, "d3"), DLV_RETRYING * 100 + 3);
    CHECK_INT(store_delivery_scheduled(s, "nope", 1, 9999, err, sizeof err), -ENOENT);

    /* Stale live records: by status, updated before the cut. */
    CHECK_INT(store_deliveries_stale(s, DLV_RETRYING, now + 1000, stale_cb, ids, err, sizeof err),
              0);
    CHECK_STR(ids, "d1,d2,d3");
    ids[0] = 0;
    CHECK_INT(store_deliveries_stale(s, DLV_RETRYING, now - 60000, stale_cb, ids, err, sizeof err),
              0);
    CHECK_STR(ids, ""); /* all updated just now */
    CHECK_INT(store_deliveries_stale(s, DLV_SUCCEEDED, now, stale_cb, ids, err, sizeof err),
              -EINVAL);
    CHECK_INT(store_delivery_pending(s, "p1", "wh", NULL, "ev_p", "t", NULL, 100, err, sizeof err),
              0);
    CHECK_INT(store_delivery_pending(s, "p2", "wh", NULL, "ev_p", "t", NULL, 100, err, sizeof err),
              0);
    CHECK_INT(store_delivery_pending(s, "p3", "wh", NULL, "ev_q", "t", NULL, 100, err, sizeof err),
              0);
    CHECK_INT(store_delivery_pending(s, "p4", "wh", NULL, "ev_r", "t", NULL, 100, err, sizeof err),
              0);
    ids[0] = 0;
    CHECK_INT(store_deliveries_stale(s, DLV_PENDING, now + 1000, stale_cb, ids, err, sizeof err),
              0);
    CHECK_STR(ids, "p1,p2,p3,p4");

    /* The conditional end: only in the status and age seen. */
    CHECK_INT(store_delivery_lost(s, "p4", DLV_RETRYING, now + 1000, "x", err, sizeof err), 0);
    CHECK_INT(store_delivery_lost(s, "p4", DLV_PENDING, 50, "x", err, sizeof err), 0);
    CHECK_INT(store_delivery_lost(s, "nope", DLV_PENDING, now + 1000, "x", err, sizeof err), 0);
    CHECK_INT(store_delivery_lost(s, "p4", DLV_PENDING, now + 1000, "gone", err, sizeof err), 1);
    CHECK_INT(store_delivery_get(s, "p4", &d, err, sizeof err), 0);
    CHECK_INT(d.status, DLV_FAILED);
    CHECK_STR(d.error, "gone");
    store_delivery_free(&d);

    /* store_repair: loaded sorted by event id; holding an event holds every record of it. */
    CHECK_INT(store_repair_open(&r, path, DLV_PENDING, now + 1000, err, sizeof err), 0);
    if (r) {
        CHECK_INT(store_repair_count(r), 3);
        store_repair_hold_event(r, "ev_pXX", 4); /* "ev_p" of n bytes */
        store_repair_hold_event(r, "ev_", 3);    /* a prefix is not the event */
        store_repair_hold_event(r, "ev_zz", 5);  /* not there */
        CHECK_STR(store_repair_row(r, 0, &held)->invocation_id, "p1");
        CHECK(held);
        CHECK_STR(store_repair_row(r, 1, &held)->invocation_id, "p2");
        CHECK(held);
        CHECK_STR(store_repair_row(r, 2, &held)->invocation_id, "p3");
        CHECK(!held);
        /* A record a live stage updated after the load is not touched. */
        CHECK_INT(store_delivery_lost(s, "p3", DLV_PENDING, now + 1000, "by hand", err, sizeof err),
                  1);
        CHECK_INT(store_repair_fail(r, 2, "lost", err, sizeof err), 0);
        store_repair_close(r);
    }
    CHECK_INT(store_delivery_get(s, "p3", &d, err, sizeof err), 0);
    CHECK_STR(d.error, "by hand");
    store_delivery_free(&d);
    CHECK_INT(store_repair_open(&r, path, DLV_PENDING, now + 1000, err, sizeof err), 0);
    if (r) {
        CHECK_INT(store_repair_count(r), 2);
        CHECK_INT(store_repair_fail(r, 0, "lost", err, sizeof err), 1);
        store_repair_close(r);
    }
    CHECK_INT(status_of(s, "p1"), DLV_FAILED * 100 + 0);
    CHECK_INT(status_of(s, "p2"), DLV_PENDING * 100 + 0);
    store_close(s);
}

/* shared_lock_held: whether some other process holds a lock on the database file's shared
 * range (SQLite's SHARED lock, bytes PENDING+2 .. +511), asked from a forked child. */
static int shared_lock_held(const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0x40000000 + 2, .l_len = 510};
        if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0) _exit(2);
        _exit(fl.l_type == F_UNLCK ? 0 : 1);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

/* test_open_keeps_others_locks: opening a second connection in the same process must not drop
 * the first one's POSIX locks (a close() of any descriptor of the file would: then another
 * process may think itself the last connection, checkpoint and delete the WAL under us). */
static void test_open_keeps_others_locks(void)
{
    char err[256];
    store_t *a = NULL, *b = NULL;
    int64_t v;

    CHECK_INT(store_open(&a, dbpath, err, sizeof err), 0);
    if (!a) return;
    CHECK_INT(store_config_version(a, &v), 0); /* a read: WAL mode keeps SHARED from here on */
    CHECK_INT(shared_lock_held(dbpath), 1);
    CHECK_INT(store_open(&b, dbpath, err, sizeof err), 0);
    CHECK_INT(shared_lock_held(dbpath), 1);
    store_close(b);
    CHECK_INT(shared_lock_held(dbpath), 1);
    store_close(a);
    CHECK_INT(shared_lock_held(dbpath), 0);
}

/* test_every_send_counts: a store of schema 3 is upgraded (earlier_sends, then version 5), and a
 * redelivery's new round keeps the sends of the last one in the shown count. */
static void test_every_send_counts(void)
{
    char err[256], path[300];
    store_t *s = NULL;
    delivery_t d;

    snprintf(path, sizeof path, "%s.sends", dbpath);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(attempt_record(s, "inv_s", 3, DLV_FAILED), 0);
    store_close(s);
    /* back to schema 3, as an older hookline left it */
    CHECK_INT(store_to_v5(path, "ALTER TABLE deliveries DROP COLUMN earlier_sends;"
                                "DROP INDEX deliveries_project;"
                                "ALTER TABLE deliveries DROP COLUMN project_id;"
                                "DROP TABLE tokens; DROP TABLE counters;"
                                "PRAGMA user_version = 3;"),
              0);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(store_delivery_get(s, "inv_s", &d, err, sizeof err), 0);
    CHECK_INT(d.attempts, 3);
    CHECK_INT(d.earlier_sends, 0);
    store_delivery_free(&d);
    /* a redelivery: round 2 starts at attempt 1; 3 sends so far */
    CHECK_INT(store_delivery_scheduled(s, "inv_s", 1, 5000, err, sizeof err), 0);
    CHECK_INT(store_delivery_get(s, "inv_s", &d, err, sizeof err), 0);
    CHECK_INT(d.attempts, 0);
    CHECK_INT(d.earlier_sends, 3);
    json_t *o = store_delivery_to_json(&d);
    CHECK_INT(json_integer_value(json_object_get(o, "attempts")), 3);
    json_decref(o);
    store_delivery_free(&d);
    CHECK_INT(attempt_record(s, "inv_s", 1, DLV_SUCCEEDED), 0);
    CHECK_INT(store_delivery_get(s, "inv_s", &d, err, sizeof err), 0);
    o = store_delivery_to_json(&d);
    CHECK_INT(json_integer_value(json_object_get(o, "attempts")), 4);
    CHECK_STR(json_string_value(json_object_get(o, "status")), "succeeded");
    json_decref(o);
    store_delivery_free(&d);
    store_close(s);
}

/* dump_cb appends every field of a record (the response body's bytes in hex) to a 64 KiB
 * buffer, one line a record. */
static int dump_cb(void *arg, const delivery_t *d)
{
    char *out = arg;
    size_t n = strlen(out);
    n += (size_t)snprintf(
        out + n, 65536 - n, "%s|%s|%s|%s|%s|%d|%d|%d|%lld|%lld|%lld|%s|%s|%s|%s|%d|%s|%d|%s|%lld|",
        d->invocation_id, d->webhook_id, d->project_id ? d->project_id : "(none)", d->event_id,
        d->event_type, (int)d->status, d->attempts, d->earlier_sends, (long long)d->next_attempt_at,
        (long long)d->created_at, (long long)d->updated_at,
        d->req_method ? d->req_method : "(none)", d->req_url ? d->req_url : "(none)",
        d->req_headers ? d->req_headers : "(none)", d->req_body ? d->req_body : "(none)",
        d->resp_status, d->resp_headers ? d->resp_headers : "(none)", d->resp_truncated,
        d->error ? d->error : "(none)", (long long)d->duration_ms);
    for (size_t i = 0; d->resp_body && i < d->resp_body_len && n + 3 < 65536; i++)
        n += (size_t)snprintf(out + n, 65536 - n, "%02x", (unsigned char)d->resp_body[i]);
    snprintf(out + n, 65536 - n, "%s\n", d->resp_body ? "" : "(none)");
    return 0;
}

/* page_ids_cb appends a page's invocation ids, comma-separated, to a 4 KiB buffer. */
static int page_ids_cb(void *arg, const delivery_t *d)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 4096 - n, "%s%s", n ? "," : "", d->invocation_id);
    return 0;
}

/* sql_int: the integer the query returns (-1 when none). */
static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* test_upgrade_v5: a version-5 log with records of every kind opens as version 6 with the same
 * records, field for field, through get, list and page; the old table and its indexes are gone,
 * each body is stored once, and the log is written as before afterwards. */
static void test_upgrade_v5(void)
{
    char err[256], path[300], next[STORE_CURSOR_MAX];
    static char before[65536], after[65536];
    char pg_before[4096] = "", pg_after[4096] = "";
    store_t *s = NULL;
    config_t *cfg = parse_config(example);
    delivery_t d;
    static const char resp[] = {'o', 'k', 0, 'x', (char)0xff};

    snprintf(path, sizeof path, "%s.v5", dbpath);
    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s || !cfg) return;
    CHECK_INT(store_replace_config(s, cfg, err, sizeof err), 0);
    config_free(cfg);
    /* pending with and without a body; retrying with a next attempt; succeeded with a binary
     * response; failed with an error; a redelivered one; one whose webhook has gone */
    CHECK_INT(store_delivery_pending(s, "inv_p1", "wh_1", NULL, "evt_1", "opportunity.won",
                                     "{\"a\":1}", 1000, err, sizeof err),
              0);
    CHECK_INT(store_delivery_pending(s, "inv_p2", "wh_0", NULL, "evt_2", "opportunity.created",
                                     NULL, 1001, err, sizeof err),
              0);
    CHECK_INT(store_delivery_waiting(s, "inv_w", "wh_1", "prj_1", "evt_3", "opportunity.won",
                                     "{\"w\":3}", 1002, 99000, err, sizeof err),
              0);
    d = (delivery_t){.invocation_id = "inv_ok",
                     .webhook_id = "wh_1",
                     .event_id = "evt_4",
                     .event_type = "opportunity.won",
                     .status = DLV_SUCCEEDED,
                     .attempts = 2,
                     .created_at = 1003,
                     .updated_at = 5003,
                     .req_method = "POST",
                     .req_url = "https://hooks.example.com/won",
                     .req_headers = "{\"Authorization\":\"***\"}",
                     .req_body = "{\"b\":4}",
                     .resp_status = 200,
                     .resp_headers = "{\"Server\":\"x\"}",
                     .resp_body = (char *)resp,
                     .resp_body_len = sizeof resp,
                     .duration_ms = 12};
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
    d.invocation_id = "inv_fail";
    d.event_id = "evt_5";
    d.status = DLV_FAILED;
    d.attempts = 6;
    d.created_at = 1004;
    d.resp_status = 0;
    d.resp_headers = NULL;
    d.resp_body = NULL;
    d.resp_body_len = 0;
    d.error = "connection refused";
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);
    CHECK_INT(attempt_record(s, "inv_again", 3, DLV_FAILED), 0);
    CHECK_INT(store_delivery_scheduled(s, "inv_again", 1, 7000, err, sizeof err), 0);
    d.invocation_id = "inv_gone";
    d.webhook_id = "wh_gone";
    d.event_id = "evt_6";
    d.created_at = 1004; /* same time as inv_fail: the invocation id breaks the tie */
    CHECK_INT(store_delivery_record(s, &d, err, sizeof err), 0);

    delivery_filter_t all = {NULL, NULL, -1, 100};
    delivery_page_t q = {.project_id = "prj_1", .status = -1, .limit = 3};
    CHECK_INT(store_deliveries_list(s, &all, dump_cb, before, err, sizeof err), 0);
    CHECK_INT(
        store_deliveries_page(s, &q, page_ids_cb, pg_before, next, sizeof next, err, sizeof err),
        3);
    store_close(s);
    s = NULL;
    CHECK_INT(store_to_v5(path, NULL), 0);
    CHECK_INT(sql_int(path, "PRAGMA user_version"), 5);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries'"
                            " AND type = 'table'"),
              1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM deliveries WHERE req_body IS NOT NULL"), 5);

    CHECK_INT(store_open(&s, path, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(sql_int(path, "PRAGMA user_version"), 6);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries'"
                            " AND type = 'view'"),
              1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name IN"
                            " ('deliveries_updated', 'deliveries_v5')"),
              0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM delivery_log"), 7);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM delivery_bodies"), 5); /* one a body */
    /* ids in creation order: the prune by age walks the oldest first */
    CHECK_INT(sql_int(path, "SELECT count(*) FROM delivery_log a JOIN delivery_log b"
                            " ON a.id < b.id WHERE a.created_at > b.created_at"),
              0);
    CHECK_INT(store_deliveries_list(s, &all, dump_cb, after, err, sizeof err), 0);
    CHECK_STR(after, before);
    CHECK_INT(
        store_deliveries_page(s, &q, page_ids_cb, pg_after, next, sizeof next, err, sizeof err), 3);
    CHECK_STR(pg_after, pg_before);
    CHECK_STR(pg_after, "inv_fail,inv_ok,inv_w");
    CHECK_INT(store_delivery_get(s, "inv_ok", &d, err, sizeof err), 0);
    CHECK_STR(d.req_body, "{\"b\":4}");
    CHECK(d.resp_body_len == sizeof resp && memcmp(d.resp_body, resp, sizeof resp) == 0);
    CHECK_STR(d.project_id, "prj_1");
    store_delivery_free(&d);
    CHECK_INT(store_delivery_get(s, "inv_again", &d, err, sizeof err), 0);
    CHECK_INT(d.earlier_sends, 3);
    CHECK_INT(d.status, DLV_RETRYING);
    store_delivery_free(&d);
    /* written on as before: a pending record's outcome keeps its body, a new record comes last */
    CHECK_INT(attempt_record(s, "inv_p1", 1, DLV_SUCCEEDED), 0);
    CHECK_INT(store_delivery_get(s, "inv_p1", &d, err, sizeof err), 0);
    CHECK_INT(d.status, DLV_SUCCEEDED);
    CHECK_STR(d.req_body, "{\"a\":1}");
    store_delivery_free(&d);
    CHECK_INT(record(s, "inv_new", "wh_1", DLV_SUCCEEDED, 9000, 9000), 0);
    CHECK_INT(sql_int(path, "SELECT invocation_id = 'inv_new' FROM delivery_log"
                            " ORDER BY id DESC LIMIT 1"),
              1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM delivery_bodies"), 6);
    /* the view takes a version-5 row as sqlite3 by hand would write it, body and all */
    CHECK_INT(sql_int(path, "INSERT INTO deliveries(invocation_id, webhook_id, event_id,"
                            " event_type, status, created_at, updated_at, req_body)"
                            " VALUES('inv_hand', 'wh_1', 'evt_7', 'opportunity.won', 1, 10, 20,"
                            " 'by hand')"),
              -1); /* done: no row */
    CHECK_INT(store_delivery_get(s, "inv_hand", &d, err, sizeof err), 0);
    CHECK_STR(d.req_body, "by hand");
    CHECK_STR(d.project_id, "prj_1");
    CHECK_INT(d.status, DLV_RETRYING);
    store_delivery_free(&d);
    /* a pruned record takes its body with it */
    CHECK_INT(store_prune(s, 1, 0, err, sizeof err), 5);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM delivery_bodies b WHERE NOT EXISTS"
                            " (SELECT 1 FROM delivery_log l WHERE l.id = b.id)"),
              0);
    store_close(s);
}

/* plan_of: the EXPLAIN QUERY PLAN text of sql on the database at path ("" when it fails). */
static void plan_of(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char q[1024];
    out[0] = '\0';
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            size_t len = strlen(out);
            snprintf(out + len, n - len, "%s|", (const char *)sqlite3_column_text(st, 3));
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* test_plans: each of the log's queries walks the index it was given (and no whole table);
 * only the indexes some query uses exist. */
static void test_plans(void)
{
    char plan[1024];
    static const struct {
        const char *sql, *uses;
    } q[] = {
        {"SELECT * FROM deliveries WHERE invocation_id = 'x'", "USING INDEX deliveries_inv"},
        {"SELECT * FROM deliveries ORDER BY created_at DESC, invocation_id LIMIT 100",
         "USING INDEX deliveries_created"},
        {"SELECT * FROM deliveries WHERE webhook_id = 'w' ORDER BY created_at DESC,"
         " invocation_id LIMIT 100",
         "USING INDEX deliveries_webhook"},
        {"SELECT * FROM deliveries WHERE status < 2 AND status = 1 AND updated_at < 5",
         "USING INDEX deliveries_live"},
        {"SELECT id, created_at, updated_at, status FROM delivery_log WHERE id > 5 ORDER BY id"
         " LIMIT 10",
         "USING INTEGER PRIMARY KEY (rowid>?)"},
        {"SELECT id FROM delivery_log WHERE webhook_id = 'w' AND created_at <= 5 AND"
         " (created_at < 5 OR invocation_id > 'x') AND status IN (2, 3) LIMIT 9",
         "USING INDEX deliveries_webhook"},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        plan_of(dbpath, q[i].sql, plan, sizeof plan);
        if (!strstr(plan, q[i].uses)) fprintf(stderr, "plan of %s: %s\n", q[i].sql, plan);
        CHECK(strstr(plan, q[i].uses) != NULL);
        CHECK(strstr(plan, "SCAN l|") == NULL && strstr(plan, "SCAN delivery_log|") == NULL);
    }
    CHECK_INT(sql_int(dbpath, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
                              " tbl_name = 'delivery_log' AND name NOT IN ('deliveries_inv',"
                              " 'deliveries_project', 'deliveries_webhook', 'deliveries_created',"
                              " 'deliveries_live')"),
              0);
}

int main(void)
{
    char dir[] = "/tmp/hl-test-store-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hookline.db", dir);
    test_config();
    test_deliveries();
    test_late_duplicates();
    test_two_writers();
    test_open_keeps_others_locks();
    test_every_send_counts();
    test_upgrade_v5();
    test_plans();
    test_manual_checkpoint();
    test_prune_steps();
    test_live_records();
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_done("store");
}
