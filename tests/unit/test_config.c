/* test_config.c - config: the contract's example round-trips, secrets mask, and each kind of
 * invalid document is refused with an error naming its JSON path. */
#include "check.h"
#include "domain/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char example[] =
    "{\"projects\": [{"
    "  \"id\": \"prj_1\", \"name\": \"Acme\","
    "  \"opportunity_fields\": [\"title\", \"value\", \"owner\"],"
    "  \"contact_fields\": [\"name\", \"email\"],"
    "  \"funnels\": [{\"id\": \"fun_1\", \"name\": \"Sales\","
    "     \"stages\": [{\"id\": \"stg_new\", \"name\": \"New\"}, {\"id\": \"stg_won\", \"name\": "
    "\"Closed won\"},"
    "                {\"id\": \"stg_lost\", \"name\": \"Closed lost\"}],"
    "     \"won_stage_id\": \"stg_won\", \"lost_stage_id\": \"stg_lost\"}],"
    "  \"webhooks\": [{\"id\": \"wh_1\", \"name\": \"Slack Notifications for Won Deals\","
    "      \"url\": \"https://hooks.example.com/won\", \"enabled\": true,"
    "      \"events\": [\"opportunity.won\"],"
    "      \"auth\": {\"type\": \"bearer\", \"token\": \"tok_abc\"},"
    "      \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}]"
    "}]}";

/* load: parse JSON text (test helper). */
static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fprintf(stderr, "bad test JSON: %s\n", je.text);
    return j;
}

/* test_example: the contract's document parses, looks up and round-trips. */
static void test_example(void)
{
    char err[256] = "";
    json_t *doc = load(example), *out, *wh;
    config_t *cfg = NULL;
    const project_t *p = NULL;
    const webhook_t *w;
    const funnel_t *f;

    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    if (!cfg) return;
    CHECK_INT(cfg->nprojects, 1);
    p = config_find_project(cfg, "prj_1");
    CHECK(p != NULL);
    CHECK(config_find_project(cfg, "prj_2") == NULL);
    CHECK_STR(p->name, "Acme");
    CHECK_INT(p->nopportunity_fields, 3);
    CHECK_STR(p->opportunity_fields[2], "owner");
    CHECK_INT(p->ncontact_fields, 2);
    f = config_find_funnel(p, "fun_1");
    CHECK(f != NULL);
    CHECK_INT(f->nstages, 3);
    CHECK_STR(config_find_stage(f, "stg_won")->name, "Closed won");
    CHECK(config_find_stage(f, "nope") == NULL);
    CHECK_STR(f->won_stage_id, "stg_won");
    CHECK_STR(f->lost_stage_id, "stg_lost");
    p = NULL;
    w = config_find_webhook(cfg, "wh_1", &p);
    CHECK(w != NULL && p == &cfg->projects[0]);
    CHECK_STR(w->project_id, "prj_1");
    CHECK_INT(w->enabled, 1);
    CHECK_INT(w->events, EVT_WON);
    CHECK_INT(w->auth.type, AUTH_BEARER);
    CHECK_STR(w->auth.token, "tok_abc");
    CHECK_STR(w->secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

    out = config_to_json(cfg, 1);
    CHECK(json_equal(out, doc));
    json_decref(out);

    out = config_to_json(cfg, 0);
    wh = json_array_get(
        json_object_get(json_array_get(json_object_get(out, "projects"), 0), "webhooks"), 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(wh, "auth"), "token")), "***");
    CHECK_STR(json_string_value(json_object_get(wh, "secret")), "***");
    CHECK_STR(json_string_value(json_object_get(wh, "url")), "https://hooks.example.com/won");
    json_decref(out);

    config_free(cfg);
    json_decref(doc);
}

/* test_defaults: optional fields take their defaults; other auth types render. */
static void test_defaults(void)
{
    char err[256] = "";
    config_t *cfg = NULL;
    json_t *doc =
        load("{\"projects\":[{\"id\":\"p\",\"webhooks\":["
             "{\"id\":\"a\",\"url\":\"http://x.example:8080/h?q=1\","
             "\"events\":[\"opportunity.created\",\"opportunity.lost\"]},"
             "{\"id\":\"b\",\"url\":\"https://y.example/\",\"enabled\":false,"
             "\"events\":[\"opportunity.transitioned\"],"
             "\"auth\":{\"type\":\"basic\",\"username\":\"u\",\"password\":\"pw\"}},"
             "{\"id\":\"c\",\"url\":\"https://y.example/\",\"events\":[\"opportunity.won\"],"
             "\"auth\":{\"type\":\"api_key\",\"key\":\"k1\"}},"
             "{\"id\":\"d\",\"url\":\"https://y.example/\",\"events\":[\"opportunity.won\"],"
             "\"auth\":{\"type\":\"none\"},\"secret\":null}]}]}");
    json_t *out, *hooks;

    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    if (!cfg) {
        fprintf(stderr, "error: %s\n", err);
        json_decref(doc);
        return;
    }
    CHECK_STR(cfg->projects[0].name, "p");
    CHECK_INT(cfg->projects[0].nfunnels, 0);
    CHECK_STR(cfg->projects[0].webhooks[0].name, "");
    CHECK_INT(cfg->projects[0].webhooks[0].enabled, 1);
    CHECK_INT(cfg->projects[0].webhooks[0].events, EVT_CREATED | EVT_LOST);
    CHECK_INT(cfg->projects[0].webhooks[0].auth.type, AUTH_NONE);
    CHECK(cfg->projects[0].webhooks[0].secret == NULL);
    CHECK_INT(cfg->projects[0].webhooks[1].enabled, 0);
    CHECK_STR(cfg->projects[0].webhooks[1].auth.username, "u");
    CHECK_STR(cfg->projects[0].webhooks[1].auth.password, "pw");
    CHECK_STR(cfg->projects[0].webhooks[2].auth.key, "k1");
    CHECK_INT(cfg->projects[0].webhooks[3].auth.type, AUTH_NONE);

    out = config_to_json(cfg, 0);
    hooks = json_object_get(json_array_get(json_object_get(out, "projects"), 0), "webhooks");
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(hooks, 1), "auth"), "password")),
              "***");
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(hooks, 1), "auth"), "username")),
              "u");
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(hooks, 2), "auth"), "key")),
              "***");
    CHECK_INT(json_array_size(json_object_get(json_array_get(hooks, 0), "events")), 2);
    json_decref(out);

    /* Exported with secrets, the document imports back to the same thing. */
    out = config_to_json(cfg, 1);
    {
        config_t *again = NULL;
        json_t *out2;
        CHECK_INT(config_from_json(out, &again, err, sizeof err), 0);
        out2 = again ? config_to_json(again, 1) : NULL;
        CHECK(json_equal(out, out2));
        json_decref(out2);
        config_free(again);
    }
    json_decref(out);
    config_free(cfg);
    json_decref(doc);
}

/* expect_invalid: doc must be refused with -EINVAL, nothing built, err containing want. */
static void expect_invalid(const char *text, const char *want, int line)
{
    char err[256] = "";
    config_t *cfg = (config_t *)1;
    json_t *doc = load(text);
    int rc = config_from_json(doc, &cfg, err, sizeof err);
    if (rc != -EINVAL || cfg != NULL || !strstr(err, want)) {
        check_failed++;
        fprintf(stderr, "test_config.c:%d: expected -EINVAL with \"%s\", got %d \"%s\"\n", line,
                want, rc, err);
    } else {
        check_passed++;
    }
    json_decref(doc);
}

#define INVALID(text, want) expect_invalid(text, want, __LINE__)
#define WH(body) "{\"projects\":[{\"id\":\"p\",\"webhooks\":[" body "]}]}"
#define OKWH "{\"id\":\"ok\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"]}"

/* test_invalid: each kind of mistake, and the path it is reported at. */
static void test_invalid(void)
{
    INVALID("[]", "must be an object");
    INVALID("{}", "projects: missing");
    INVALID("{\"projects\":{}}", "projects: must be an array");
    INVALID("{\"projects\":[], \"extra\":1}", "extra: unknown key");
    INVALID("{\"projects\":[{\"name\":\"x\"}]}", "projects[0].id: missing");
    INVALID("{\"projects\":[{\"id\":\"\"}]}", "projects[0].id: must not be empty");
    INVALID("{\"projects\":[{\"id\":7}]}", "projects[0].id: must be a string");
    INVALID("{\"projects\":[{\"id\":\"a\"},{\"id\":\"a\"}]}",
            "projects[1].id: duplicate project id");
    INVALID("{\"projects\":[{\"id\":\"a\",\"webhook\":[]}]}", "projects[0].webhook: unknown key");
    INVALID("{\"projects\":[{\"id\":\"a\",\"contact_fields\":[\"x\",\"x\"]}]}",
            "projects[0].contact_fields[1]: duplicate");
    INVALID("{\"projects\":[{\"id\":\"a\",\"opportunity_fields\":[1]}]}",
            "projects[0].opportunity_fields[0]: must be a string");

    INVALID(
        WH(OKWH ",{\"id\":\"w\",\"url\":\"ftp://a.example/\",\"events\":[\"opportunity.won\"]}"),
        "projects[0].webhooks[1].url: not an absolute http(s) URL");
    INVALID(WH("{\"id\":\"w\",\"url\":\"/relative/path\",\"events\":[\"opportunity.won\"]}"),
            "projects[0].webhooks[0].url: not an absolute http(s) URL");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://\",\"events\":[\"opportunity.won\"]}"),
            "projects[0].webhooks[0].url: not an absolute http(s) URL");
    INVALID(
        WH("{\"id\":\"w\",\"url\":\"https://u:p@a.example/\",\"events\":[\"opportunity.won\"]}"),
        "projects[0].webhooks[0].url: must not carry credentials");
    INVALID(WH("{\"id\":\"w\",\"events\":[\"opportunity.won\"]}"),
            "projects[0].webhooks[0].url: missing");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"bearer\",\"token\":\"t\\r\\nX-Evil: 1\"}}"),
            "projects[0].webhooks[0].auth.token: must not contain control characters");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"api_key\",\"key\":\"k\\n\"}}"),
            "projects[0].webhooks[0].auth.key: must not contain control characters");
    INVALID(
        WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.deleted\"]}"),
        "projects[0].webhooks[0].events[0]: unknown event type");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\","
               "\"opportunity.won\"]}"),
            "projects[0].webhooks[0].events[1]: duplicate event type");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[]}"),
            "projects[0].webhooks[0].events: must list at least one");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\"}"),
            "projects[0].webhooks[0].events: missing");
    INVALID(WH(OKWH "," OKWH), "projects[0].webhooks[1].id: duplicate webhook id");
    INVALID("{\"projects\":[{\"id\":\"p\",\"webhooks\":[" OKWH
            "]},{\"id\":\"q\",\"webhooks\":[" OKWH "]}]}",
            "projects[1].webhooks[0].id: duplicate webhook id");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"basic\",\"username\":\"u\"}}"),
            "projects[0].webhooks[0].auth.password: missing");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"bearer\",\"token\":\"\"}}"),
            "projects[0].webhooks[0].auth.token: must not be empty");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"oauth\"}}"),
            "projects[0].webhooks[0].auth.type: unknown auth type");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"auth\":{\"type\":\"api_key\",\"key\":\"k\",\"token\":\"t\"}}"),
            "projects[0].webhooks[0].auth.token: unknown key");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"enabled\":\"yes\"}"),
            "projects[0].webhooks[0].enabled: must be true or false");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"evnets\":[]}"),
            "projects[0].webhooks[0].evnets: unknown key");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"secret\":\"abc\"}"),
            "projects[0].webhooks[0].secret: must start with \"whsec_\"");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"secret\":\"whsec_not base64!\"}"),
            "projects[0].webhooks[0].secret: must be \"whsec_\" followed by base64");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"secret\":\"whsec_\"}"),
            "projects[0].webhooks[0].secret");
    INVALID(WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"name\":5}"),
            "projects[0].webhooks[0].name: must be a string");

    INVALID("{\"projects\":[{\"id\":\"p\",\"funnels\":[{\"id\":\"f\",\"stages\":[{\"id\":\"a\"}],"
            "\"won_stage_id\":\"b\"}]}]}",
            "projects[0].funnels[0].won_stage_id: \"b\" is not a stage of this funnel");
    INVALID("{\"projects\":[{\"id\":\"p\",\"funnels\":[{\"id\":\"f\",\"stages\":[{\"id\":\"a\"},"
            "{\"id\":\"b\"}],\"lost_stage_id\":\"zz\"}]}]}",
            "projects[0].funnels[0].lost_stage_id");
    INVALID("{\"projects\":[{\"id\":\"p\",\"funnels\":[{\"id\":\"f\",\"stages\":[{\"id\":\"a\"},"
            "{\"id\":\"a\"}]}]}]}",
            "projects[0].funnels[0].stages[1].id: duplicate stage id");
    INVALID("{\"projects\":[{\"id\":\"p\",\"funnels\":[{\"id\":\"f\"},{\"id\":\"f\"}]}]}",
            "projects[0].funnels[1].id: duplicate funnel id");
    INVALID("{\"projects\":[{\"id\":\"p\",\"funnels\":[{\"id\":\"f\",\"stages\":[{\"id\":\"a\","
            "\"color\":\"red\"}]}]}]}",
            "projects[0].funnels[0].stages[0].color: unknown key");
}

#define SEC_A "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SEC_B "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define SEC_C "whsec_dGVzdA=="

/* test_secrets: "secret" and "secrets" combined, expiry parsed, masked on export, round trip,
 * and each mistake refused at its path without the secret in the message. */
static void test_secrets(void)
{
    char err[256] = "";
    webhook_t wh;
    json_t *obj =
        load("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
             "\"secret\":\"" SEC_A "\",\"secrets\":[{\"secret\":\"" SEC_B "\","
             "\"expires_at\":\"2026-12-01T10:00:00+01:00\"},{\"secret\":\"" SEC_C "\"}]}");
    CHECK_INT(config_webhook_from_json(obj, "p", &wh, err, sizeof err), 0);
    CHECK_STR(wh.secret, SEC_A);
    CHECK_INT(wh.nsecrets, 2);
    if (wh.nsecrets == 2) {
        CHECK_STR(wh.secrets[0].secret, SEC_B);
        CHECK(wh.secrets[0].expires_at == 1796115600000LL); /* 2026-12-01T09:00:00Z */
        CHECK_STR(wh.secrets[1].secret, SEC_C);
        CHECK(wh.secrets[1].expires_at == 0);
    }
    /* Export masks every one of them; with secrets it round-trips (time normalized to UTC). */
    json_t *masked = config_webhook_to_json(&wh, 0);
    char *text = json_dumps(masked, JSON_COMPACT);
    CHECK(text && !strstr(text, "AAECAwQF") && !strstr(text, "ICEiIyQl") &&
          !strstr(text, "dGVzdA"));
    CHECK_STR(text, "{\"id\":\"w\",\"name\":\"\",\"url\":\"https://a.example/\",\"enabled\":true,"
                    "\"events\":[\"opportunity.won\"],\"secret\":\"***\",\"secrets\":[{\"secret\":"
                    "\"***\",\"expires_at\":\"2026-12-01T09:00:00Z\"},{\"secret\":\"***\"}]}");
    free(text);
    json_decref(masked);
    json_t *back = config_webhook_to_json(&wh, 1);
    webhook_t again;
    CHECK_INT(config_webhook_from_json(back, "p", &again, err, sizeof err), 0);
    CHECK_INT(again.nsecrets, 2);
    if (again.nsecrets == 2) {
        CHECK_STR(again.secrets[0].secret, SEC_B);
        CHECK(again.secrets[0].expires_at == wh.secrets[0].expires_at);
    }
    config_webhook_clear(&again);
    json_decref(back);
    config_webhook_clear(&wh);
    CHECK(wh.secrets == NULL && wh.nsecrets == 0);
    json_decref(obj);

    /* "secrets" alone is fine; an empty list is no list. */
    obj = load("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"secrets\":[{\"secret\":\"" SEC_B "\"}]}");
    CHECK_INT(config_webhook_from_json(obj, "p", &wh, err, sizeof err), 0);
    CHECK(wh.secret == NULL && wh.nsecrets == 1);
    config_webhook_clear(&wh);
    json_decref(obj);
    obj = load("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"],"
               "\"secrets\":[]}");
    CHECK_INT(config_webhook_from_json(obj, "p", &wh, err, sizeof err), 0);
    CHECK(wh.secrets == NULL && wh.nsecrets == 0);
    config_webhook_clear(&wh);
    json_decref(obj);

#define SECS(list)                                                                                 \
    WH("{\"id\":\"w\",\"url\":\"https://a.example/\",\"events\":[\"opportunity.won\"]," list "}")
    INVALID(SECS("\"secrets\":{}"), "projects[0].webhooks[0].secrets: must be an array");
    INVALID(SECS("\"secrets\":[\"" SEC_A "\"]"),
            "projects[0].webhooks[0].secrets[0]: must be an object");
    INVALID(SECS("\"secrets\":[{}]"), "projects[0].webhooks[0].secrets[0].secret: missing");
    INVALID(SECS("\"secrets\":[{\"secret\":\"" SEC_A "\",\"until\":1}]"),
            "projects[0].webhooks[0].secrets[0].until: unknown key");
    INVALID(SECS("\"secrets\":[{\"secret\":\"abc\"}]"),
            "projects[0].webhooks[0].secrets[0].secret: must start with \"whsec_\"");
    INVALID(SECS("\"secrets\":[{\"secret\":\"whsec_%%%%\"}]"),
            "projects[0].webhooks[0].secrets[0].secret: must be \"whsec_\" followed by base64");
    INVALID(SECS("\"secrets\":[{\"secret\":\"" SEC_A "\",\"expires_at\":\"tomorrow\"}]"),
            "projects[0].webhooks[0].secrets[0].expires_at: must be an RFC 3339 date-time");
    INVALID(SECS("\"secrets\":[{\"secret\":\"" SEC_A "\",\"expires_at\":1796115600}]"),
            "projects[0].webhooks[0].secrets[0].expires_at: must be a string");
    INVALID(SECS("\"secrets\":[{\"secret\":\"" SEC_A "\"},{\"secret\":\"" SEC_B "\"},"
                 "{\"secret\":\"" SEC_A "\"}]"),
            "projects[0].webhooks[0].secrets[2].secret: duplicate signing secret (same as "
            "secrets[0])");
    INVALID(SECS("\"secret\":\"" SEC_B "\",\"secrets\":[{\"secret\":\"" SEC_B "\"}]"),
            "projects[0].webhooks[0].secrets[0].secret: duplicate signing secret (same as "
            "\"secret\")");
    /* No error message ever carries a secret. */
    char e2[256] = "";
    config_t *cfg = NULL;
    json_t *doc = load(SECS("\"secrets\":[{\"secret\":\"" SEC_A "\"},{\"secret\":\"" SEC_A "\"}]"));
    CHECK_INT(config_from_json(doc, &cfg, e2, sizeof e2), -EINVAL);
    CHECK(strstr(e2, "AAECAwQF") == NULL);
    json_decref(doc);
#undef SECS
}

/* test_single_webhook: the one-webhook parser and renderer used by hookctl. */
static void test_single_webhook(void)
{
    char err[256] = "";
    webhook_t wh;
    json_t *obj =
        load("{\"id\":\"w9\",\"url\":\"https://a.example/x\",\"events\":[\"opportunity.won\"],"
             "\"secret\":\"whsec_dGVzdA==\",\"auth\":{\"type\":\"api_key\",\"key\":\"kk\"}}");
    json_t *back;
    CHECK_INT(config_webhook_from_json(obj, "prj_1", &wh, err, sizeof err), 0);
    CHECK_STR(wh.id, "w9");
    CHECK_STR(wh.project_id, "prj_1");
    CHECK_STR(wh.secret, "whsec_dGVzdA==");
    back = config_webhook_to_json(&wh, 1);
    json_object_set_new(obj, "name", json_string(""));
    json_object_set_new(obj, "enabled", json_true());
    CHECK(json_equal(back, obj));
    json_decref(back);
    config_webhook_clear(&wh);
    CHECK(wh.id == NULL);
    json_decref(obj);

    obj = load("{\"id\":\"w9\",\"url\":\"gopher://a\",\"events\":[\"opportunity.won\"]}");
    CHECK_INT(config_webhook_from_json(obj, "prj_1", &wh, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "url: not an absolute http(s) URL") == err);
    json_decref(obj);
}

/* test_helpers: event type names and URL checks. */
static void test_helpers(void)
{
    char err[256];
    CHECK_INT(config_event_type_parse("opportunity.created"), EVT_CREATED);
    CHECK_INT(config_event_type_parse("opportunity.transitioned"), EVT_TRANSITIONED);
    CHECK_INT(config_event_type_parse("opportunity.won"), EVT_WON);
    CHECK_INT(config_event_type_parse("opportunity.lost"), EVT_LOST);
    CHECK_INT(config_event_type_parse("opportunity.WON"), 0);
    CHECK_INT(config_event_type_parse(NULL), 0);
    CHECK_STR(config_event_type_name(EVT_LOST), "opportunity.lost");
    CHECK(config_event_type_name(EVT_WON | EVT_LOST) == NULL);
    CHECK(config_event_type_name(0) == NULL);
    CHECK_INT(config_validate_url("https://example.com", err, sizeof err), 0);
    CHECK_INT(config_validate_url("HTTP://127.0.0.1:9000/hook", err, sizeof err), 0);
    CHECK_INT(config_validate_url("http://[::1]:80/", err, sizeof err), 0);
    CHECK_INT(config_validate_url("example.com/hook", err, sizeof err), -EINVAL);
    CHECK_INT(config_validate_url("mailto:a@b.c", err, sizeof err), -EINVAL);
    CHECK_INT(config_validate_url("https://exa mple.com/", err, sizeof err), -EINVAL);
    CHECK_INT(config_validate_url("", err, sizeof err), -EINVAL);
    CHECK_INT(config_validate_url("http:/typo.example/", err, sizeof err), -EINVAL);
    CHECK_INT(config_validate_url("https://h.example:99999/", err, sizeof err), -EINVAL);
}

int main(void)
{
    test_example();
    test_defaults();
    test_invalid();
    test_single_webhook();
    test_secrets();
    test_helpers();
    return check_done("config");
}
