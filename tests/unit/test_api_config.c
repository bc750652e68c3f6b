/* test_api_config.c - what hook-api's project and webhook endpoints stand on, shared with
 * hookctl: one project parsed and rendered alone (errors naming the key), a webhook changed by a
 * partial object, a project's settings put and removed in the store (its webhooks kept, then
 * removed; the configuration version bumped), and the failed records recover sends again. */
#include "check.h"
#include "domain/config.h"
#include "domain/redeliver.h"
#include "domain/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dbpath[256];

static const char example[] =
    "{\"projects\": [{\"id\": \"prj_1\", \"name\": \"Acme\","
    "  \"opportunity_fields\": [\"title\"], \"contact_fields\": [\"email\"],"
    "  \"funnels\": [{\"id\": \"fun_1\", \"name\": \"Sales\","
    "     \"stages\": [{\"id\": \"stg_new\", \"name\": \"New\"}, {\"id\": \"stg_won\"}],"
    "     \"won_stage_id\": \"stg_won\"}],"
    "  \"webhooks\": [{\"id\": \"wh_1\", \"name\": \"Won\", \"url\": \"https://a.example/\","
    "      \"events\": [\"opportunity.won\"], \"auth\": {\"type\": \"bearer\", \"token\": \"T1\"},"
    "      \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"},"
    "    {\"id\": \"wh_2\", \"url\": \"https://b.example/\", \"enabled\": false,"
    "      \"events\": [\"opportunity.created\"]}]},"
    " {\"id\": \"prj_2\", \"name\": \"Zeta\"}]}";

/* parse_config: a config_t from JSON text. */
static config_t *parse_config(const char *text)
{
    char err[256] = "";
    config_t *cfg = NULL;
    json_t *doc = json_loads(text, 0, NULL);
    if (config_from_json(doc, &cfg, err, sizeof err) < 0) fprintf(stderr, "config: %s\n", err);
    json_decref(doc);
    return cfg;
}

/* project_err: the error config_project_from_json gives for text (static buffer). */
static const char *project_err(const char *text)
{
    static char err[256];
    project_t p;
    json_t *o = json_loads(text, 0, NULL);
    err[0] = 0;
    if (config_project_from_json(o, &p, err, sizeof err) == 0) {
        config_project_clear(&p);
        snprintf(err, sizeof err, "(valid)");
    }
    json_decref(o);
    return err;
}

/* test_project_json: one project alone, its errors named from the project's own keys. */
static void test_project_json(void)
{
    char err[256] = "";
    project_t p;
    json_t *o = json_loads("{\"id\": \"prj_9\", \"opportunity_fields\": [\"a\", \"b\"],"
                           " \"funnels\": [{\"id\": \"f\", \"stages\": [{\"id\": \"s1\"}],"
                           " \"lost_stage_id\": \"s1\"}]}",
                           0, NULL);
    CHECK_INT(config_project_from_json(o, &p, err, sizeof err), 0);
    json_t *back = config_project_to_json(&p);
    CHECK(back != NULL);
    CHECK_STR(json_string_value(json_object_get(back, "name")), "prj_9"); /* defaults to id */
    CHECK(json_object_get(back, "webhooks") == NULL);                     /* settings only */
    CHECK_INT(json_array_size(json_object_get(back, "contact_fields")), 0);
    json_t *f = json_array_get(json_object_get(back, "funnels"), 0);
    CHECK_STR(json_string_value(json_object_get(f, "lost_stage_id")), "s1");
    /* rendered, it parses back to the same */
    project_t q;
    CHECK_INT(config_project_from_json(back, &q, err, sizeof err), 0);
    json_t *again = config_project_to_json(&q);
    CHECK(json_equal(back, again));
    json_decref(again);
    config_project_clear(&q);
    json_decref(back);
    config_project_clear(&p);
    json_decref(o);

    CHECK_STR(project_err("{\"id\": \"p\", \"name\": 3}"), "name: must be a string");
    CHECK_STR(project_err("{\"name\": \"x\"}"), "id: missing");
    CHECK_STR(project_err("{\"id\": \"p\", \"colour\": 1}"), "colour: unknown key");
    CHECK_STR(project_err("{\"id\": \"p\", \"opportunity_fields\": [\"a\", \"a\"]}"),
              "opportunity_fields[1]: duplicate \"a\"");
    CHECK_STR(project_err("{\"id\": \"p\", \"funnels\": [{\"id\": \"f\", \"stages\": [],"
                          " \"won_stage_id\": \"nope\"}]}"),
              "funnels[0].won_stage_id: \"nope\" is not a stage of this funnel");
    CHECK_STR(project_err("{\"id\": \"p\", \"funnels\": [{\"id\": \"f\"}, {\"id\": \"f\"}]}"),
              "funnels[1].id: duplicate funnel id \"f\"");
    CHECK_STR(project_err("[]"), "must be an object");
}

/* merged: config_webhook_merge of wh_1 of cfg with patch text; NULL with err on refusal. */
static json_t *merged(const config_t *cfg, const char *patch, char *err, size_t n)
{
    json_t *p = json_loads(patch, 0, NULL);
    json_t *o = config_webhook_merge(config_find_webhook(cfg, "wh_1", NULL), p, err, n);
    json_decref(p);
    return o;
}

/* test_webhook_merge: only the keys given change; id and project stay. */
static void test_webhook_merge(void)
{
    config_t *cfg = parse_config(example);
    char err[256] = "";
    webhook_t wh;
    json_t *o =
        merged(cfg, "{\"url\": \"https://c.example/x\", \"secret\": null}", err, sizeof err);
    CHECK(o != NULL);
    CHECK_INT(config_webhook_from_json(o, "prj_1", &wh, err, sizeof err), 0);
    CHECK_STR(wh.url, "https://c.example/x");
    CHECK_STR(wh.name, "Won");      /* kept */
    CHECK_STR(wh.auth.token, "T1"); /* kept, in clear for the store */
    CHECK(wh.secret == NULL);       /* null drops an optional key */
    CHECK_INT(wh.events, EVT_WON);
    config_webhook_clear(&wh);
    json_decref(o);

    /* a key replaces the stored one whole: a new auth type takes only its own fields */
    o = merged(cfg, "{\"auth\": {\"type\": \"basic\", \"username\": \"u\", \"password\": \"p\"}}",
               err, sizeof err);
    CHECK_INT(config_webhook_from_json(o, "prj_1", &wh, err, sizeof err), 0);
    CHECK_INT(wh.auth.type, AUTH_BASIC);
    CHECK(wh.auth.token == NULL);
    config_webhook_clear(&wh);
    json_decref(o);

    /* the same id and project may be repeated */
    o = merged(cfg, "{\"id\": \"wh_1\", \"project_id\": \"prj_1\", \"enabled\": false}", err,
               sizeof err);
    CHECK(o != NULL && json_object_get(o, "project_id") == NULL);
    CHECK(json_is_false(json_object_get(o, "enabled")));
    json_decref(o);

    CHECK(merged(cfg, "{\"id\": \"wh_9\"}", err, sizeof err) == NULL);
    CHECK_STR(err, "id: must be \"wh_1\" (a webhook keeps its id)");
    CHECK(merged(cfg, "{\"project_id\": \"prj_2\"}", err, sizeof err) == NULL);
    CHECK_STR(err, "project_id: must be \"prj_1\" (a webhook keeps its project)");
    CHECK(merged(cfg, "[1]", err, sizeof err) == NULL);
    CHECK_STR(err, "must be a JSON object");

    CHECK_INT(redeliver_webhook_ready(cfg, "wh_1"), 0);
    CHECK_INT(redeliver_webhook_ready(cfg, "wh_2"), -EPERM);
    CHECK_INT(redeliver_webhook_ready(cfg, "wh_9"), -ENOENT);
    config_free(cfg);
}

/* load: the stored configuration (caller config_free). */
static config_t *load(store_t *s)
{
    char err[256] = "";
    config_t *cfg = NULL;
    if (store_load_config(s, &cfg, err, sizeof err) < 0) fprintf(stderr, "load: %s\n", err);
    return cfg;
}

/* test_store_project: put replaces settings keeping webhooks and place; delete removes both. */
static void test_store_project(void)
{
    char err[256] = "";
    store_t *s = NULL;
    int64_t v0 = 0, v = 0;
    int created = -1;
    config_t *cfg = parse_config(example), *got;
    project_t p;

    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (!s) return;
    CHECK_INT(store_replace_config(s, cfg, err, sizeof err), 0);
    CHECK_INT(store_config_version(s, &v0), 0);

    /* replace prj_1's settings: its webhooks stay, it stays first */
    json_t *o = json_loads("{\"id\": \"prj_1\", \"name\": \"Acme 2\", \"contact_fields\": [\"x\"]}",
                           0, NULL);
    CHECK_INT(config_project_from_json(o, &p, err, sizeof err), 0);
    json_decref(o);
    CHECK_INT(store_project_put(s, &p, &created, err, sizeof err), 0);
    CHECK_INT(created, 0);
    config_project_clear(&p);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, v0 + 1);
    got = load(s);
    if (got) {
        CHECK_INT(got->nprojects, 2);
        CHECK_STR(got->projects[0].id, "prj_1");
        CHECK_STR(got->projects[0].name, "Acme 2");
        CHECK_INT(got->projects[0].nfunnels, 0);
        CHECK_INT(got->projects[0].nopportunity_fields, 0);
        CHECK_STR(got->projects[0].contact_fields[0], "x");
        CHECK_INT(got->projects[0].nwebhooks, 2);
        const webhook_t *w = config_find_webhook(got, "wh_1", NULL);
        CHECK(w && w->auth.token && strcmp(w->auth.token, "T1") == 0);
    }
    config_free(got);

    /* a new project goes last, with no webhooks */
    o = json_loads("{\"id\": \"prj_3\", \"funnels\": [{\"id\": \"f\"}]}", 0, NULL);
    CHECK_INT(config_project_from_json(o, &p, err, sizeof err), 0);
    json_decref(o);
    CHECK_INT(store_project_put(s, &p, &created, err, sizeof err), 0);
    CHECK_INT(created, 1);
    config_project_clear(&p);
    got = load(s);
    if (got) {
        CHECK_INT(got->nprojects, 3);
        CHECK_STR(got->projects[2].id, "prj_3");
        CHECK_INT(got->projects[2].nfunnels, 1);
        CHECK_INT(got->projects[2].nwebhooks, 0);
    }
    config_free(got);

    /* delete: the project and its webhooks go; an unknown one is -ENOENT and bumps nothing */
    CHECK_INT(store_project_delete(s, "prj_1", err, sizeof err), 0);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, v0 + 3);
    got = load(s);
    if (got) {
        CHECK_INT(got->nprojects, 2);
        CHECK(config_find_project(got, "prj_1") == NULL);
        CHECK(config_find_webhook(got, "wh_1", NULL) == NULL);
        CHECK(config_find_webhook(got, "wh_2", NULL) == NULL);
    }
    config_free(got);
    CHECK_INT(store_project_delete(s, "prj_1", err, sizeof err), -ENOENT);
    CHECK(strstr(err, "no project \"prj_1\"") != NULL);
    CHECK_INT(store_config_version(s, &v), 0);
    CHECK_INT(v, v0 + 3);
    /* a webhook of the removed project's id can be added again to another one */
    o = json_loads("{\"id\": \"wh_1\", \"url\": \"https://d.example/\","
                   " \"events\": [\"opportunity.lost\"]}",
                   0, NULL);
    webhook_t wh;
    CHECK_INT(config_webhook_from_json(o, "prj_2", &wh, err, sizeof err), 0);
    CHECK_INT(store_webhook_add(s, &wh, err, sizeof err), 0);
    config_webhook_clear(&wh);
    json_decref(o);
    store_close(s);
    config_free(cfg);
}

/* record: one delivery record of webhook wh in status st, updated at t. */
static void record(store_t *s, const char *inv, const char *wh, delivery_status_t st, int64_t t,
                   const char *body)
{
    char err[256] = "";
    delivery_t d = {0};
    d.invocation_id = (char *)inv;
    d.webhook_id = (char *)wh;
    d.event_id = (char *)"ev";
    d.event_type = (char *)"opportunity.won";
    d.status = st;
    d.attempts = 6;
    d.created_at = t - 1000;
    d.updated_at = t;
    d.req_method = (char *)"POST";
    d.req_url = (char *)"https://a.example/";
    d.req_headers = (char *)"{}";
    d.req_body = (char *)body;
    if (store_delivery_record(s, &d, err, sizeof err) < 0) fprintf(stderr, "record: %s\n", err);
}

/* test_failed_since: recover takes the webhook's failed records at or after the time only. */
static void test_failed_since(void)
{
    char err[256] = "";
    store_t *s = NULL;
    redeliver_list_t l;
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    if (!s) return;
    record(s, "inv_old", "wh_r", DLV_FAILED, 1000, "{}");
    record(s, "inv_at", "wh_r", DLV_FAILED, 2000, "{\"a\":1}");
    record(s, "inv_new", "wh_r", DLV_FAILED, 3000, "{}");
    record(s, "inv_ok", "wh_r", DLV_SUCCEEDED, 3000, "{}");
    record(s, "inv_other", "wh_x", DLV_FAILED, 3000, "{}");
    CHECK_INT(redeliver_failed_since(s, "wh_r", 2000, &l, err, sizeof err), 0);
    CHECK_INT(l.n, 2);
    int at = 0, nw = 0;
    for (size_t i = 0; i < l.n; i++) {
        at += strcmp(l.v[i].invocation_id, "inv_at") == 0;
        nw += strcmp(l.v[i].invocation_id, "inv_new") == 0;
        if (strcmp(l.v[i].invocation_id, "inv_at") == 0) CHECK_STR(l.v[i].req_body, "{\"a\":1}");
    }
    CHECK_INT(at, 1);
    CHECK_INT(nw, 1);
    redeliver_list_free(&l);
    CHECK_INT(l.n, 0);
    CHECK_INT(redeliver_failed_since(s, "wh_none", 0, &l, err, sizeof err), 0);
    CHECK_INT(l.n, 0);
    redeliver_list_free(&l);
    store_close(s);
}

int main(void)
{
    char dir[] = "/tmp/hl-test-api-config-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hookline.db", dir);
    test_project_json();
    test_webhook_merge();
    test_store_project();
    test_failed_since();
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_done("api_config");
}
