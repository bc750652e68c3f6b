/* test_event.c - producer events: strict parsing, every validation rule with its reason,
 * normalization of ids and times, won/lost derivation, and routing. */
#include "check.h"
#include "domain/config.h"
#include "domain/event.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define NOW_MS 1700000000123 /* 2023-11-14T22:13:20.123Z */

static const char *const cfg_text =
    "{\"projects\":[{\"id\":\"prj_1\",\"name\":\"Acme\","
    "\"opportunity_fields\":[\"title\"],\"contact_fields\":[\"name\"],"
    "\"funnels\":[{\"id\":\"fun_1\",\"name\":\"Sales\",\"stages\":["
    "{\"id\":\"stg_new\",\"name\":\"New\"},{\"id\":\"stg_won\",\"name\":\"Closed won\"},"
    "{\"id\":\"stg_lost\",\"name\":\"Closed lost\"}],"
    "\"won_stage_id\":\"stg_won\",\"lost_stage_id\":\"stg_lost\"},"
    "{\"id\":\"fun_2\",\"name\":\"Plain\",\"stages\":[{\"id\":\"s1\",\"name\":\"One\"}]}],"
    "\"webhooks\":[]}]}";

static config_t *cfg;

/* norm parses text and normalizes it; returns the count or the negative errno, err filled. */
static int norm(const char *text, json_t *out[2], char *err, size_t errlen)
{
    json_t *in = NULL;
    out[0] = out[1] = NULL;
    int rc = event_parse_json(text, strlen(text), &in, err, errlen);
    if (rc) return rc;
    rc = event_normalize(in, cfg, NOW_MS, out, err, errlen);
    json_decref(in);
    return rc;
}

/* reject: text must be refused with exactly reason. */
static void reject(const char *text, const char *reason, int line)
{
    json_t *out[2];
    char err[512] = "";
    int rc = norm(text, out, err, sizeof err);
    if (rc != -EINVAL || strcmp(err, reason) != 0)
        fprintf(stderr, "test_event.c:%d: rejecting %s\n", line, text);
    CHECK_INT(rc, -EINVAL);
    CHECK_STR(err, reason);
    CHECK(out[0] == NULL && out[1] == NULL);
}
#define REJECT(text, reason) reject(text, reason, __LINE__)

/* dump: compact JSON text of v (static buffer, enough for these tests). */
static const char *dump(const json_t *v)
{
    static char buf[4096];
    char *s = json_dumps(v, JSON_COMPACT);
    snprintf(buf, sizeof buf, "%s", s ? s : "(null)");
    free(s);
    return buf;
}

/* parse_err: the reason event_parse_json gives for text (which must be refused). */
static const char *parse_err(const char *text, char *err, size_t errlen)
{
    json_t *v = NULL;
    err[0] = '\0';
    CHECK_INT(event_parse_json(text, strlen(text), &v, err, errlen), -EINVAL);
    CHECK(v == NULL);
    json_decref(v);
    return err;
}

/* check_parse_limits: every refused number, string and key names where it is and why. */
static void check_parse_limits(void)
{
    char err[512];
    /* Reals that overflow to infinity never become inf in a body. */
    CHECK_STR(parse_err("{\"opportunity\":{\"id\":\"o\",\"value\":1e999}}", err, sizeof err),
              "opportunity.value (column 38): number 1e999 is out of range (overflows a double)");
    CHECK_STR(parse_err("{\"opportunity\":{\"id\":\"o\",\"value\":-1e999}}", err, sizeof err),
              "opportunity.value (column 39): number -1e999 is out of range (overflows a double)");
    /* Integers beyond int64, in an array and at the top level. */
    CHECK_STR(parse_err("{\"opportunity\":{\"id\":\"o\",\"n\":[1, 2,99999999999999999999]}}", err,
                        sizeof err),
              "opportunity.n[2] (column 55): integer 99999999999999999999 is out of range "
              "(-9223372036854775808..9223372036854775807)");
    CHECK_STR(parse_err("{\"id\":9223372036854775808}", err, sizeof err),
              "id (column 25): integer 9223372036854775808 is out of range "
              "(-9223372036854775808..9223372036854775807)");
    /* The int64 bounds themselves and a tiny real (underflow to 0) are fine. */
    json_t *v = NULL;
    const char *edge = "{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":1e-999}";
    CHECK_INT(event_parse_json(edge, strlen(edge), &v, err, sizeof err), 0);
    CHECK(json_integer_value(json_object_get(v, "a")) == INT64_MAX);
    json_decref(v);
    /* Invalid UTF-8, a lone surrogate, NUL. */
    CHECK_STR(parse_err("{\"contact\":{\"id\":\"c\",\"name\":\"a\xc3\x28\"}}", err, sizeof err),
              "contact.name (column 30): invalid UTF-8 (unable to decode byte 0xc3 near '\"a')");
    CHECK_STR(parse_err("{\"opportunity\":{\"t\":\"\\ud800\"}}", err, sizeof err),
              "invalid JSON at line 1 column 28 (in opportunity.t): invalid Unicode '\\uD800' "
              "near '\"\\ud800\"'");
    CHECK_STR(parse_err("{\"opportunity\":{\"t\":\"a\\u0000b\"}}", err, sizeof err),
              "opportunity.t (column 30): \\u0000 is not allowed in strings");
    /* Duplicate keys, nested. */
    CHECK_STR(
        parse_err("{\"opportunity\":{\"id\":\"o\",\"x\":[{\"k\":1,\"k\":2}]}}", err, sizeof err),
        "opportunity.x[0].k (column 40): duplicate key");
    /* Deeper than jansson's own limit: the same reason as 65 levels. */
    size_t n = 0, levels = 3000;
    char *deep = malloc(2 * levels + 1);
    for (size_t i = 0; i < levels; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < levels; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    memcpy(deep, "{\"a\":", 5);
    CHECK_STR(parse_err(deep, err, sizeof err), "event nests deeper than 64 levels");
    free(deep);
}

/* check_parse: strict JSON rules and their messages. */
static void check_parse(void)
{
    json_t *v = NULL;
    char err[512] = "";
    const char *ok = "{\"a\":1}";
    CHECK_INT(event_parse_json(ok, strlen(ok), &v, err, sizeof err), 0);
    CHECK(json_is_object(v));
    json_decref(v);

    /* len bounds the input: a line need not be NUL terminated. */
    CHECK_INT(event_parse_json("{\"a\":1}garbage", 7, &v, err, sizeof err), 0);
    json_decref(v);

    const char *dup = "{\"a\":1,\"a\":2}";
    CHECK_INT(event_parse_json(dup, strlen(dup), &v, err, sizeof err), -EINVAL);
    CHECK(v == NULL);
    CHECK_STR(err, "a (column 10): duplicate key");

    const char *trail = "{\"a\":1} x";
    CHECK_INT(event_parse_json(trail, strlen(trail), &v, err, sizeof err), -EINVAL);
    CHECK(strncmp(err, "invalid JSON at line 1 column ", 30) == 0);

    const char *broken = "{\"a\":";
    CHECK_INT(event_parse_json(broken, strlen(broken), &v, err, sizeof err), -EINVAL);
    CHECK(strncmp(err, "invalid JSON at line 1 column ", 30) == 0);

    const char *badutf8 = "{\"a\":\"\xff\xfe\"}";
    CHECK_INT(event_parse_json(badutf8, strlen(badutf8), &v, err, sizeof err), -EINVAL);
    CHECK(strncmp(err, "a (column ", 10) == 0);
    CHECK(strstr(err, ": invalid UTF-8 (unable to decode byte 0xff") != NULL);

    CHECK_INT(event_parse_json("[1,2]", 5, &v, err, sizeof err), -EINVAL);
    CHECK_STR(err, "event is not a JSON object");

    check_parse_limits();

    /* 64 levels are fine, 65 are not. */
    char deep[256];
    for (int levels = 64; levels <= 65; levels++) {
        size_t n = 0;
        deep[n++] = '{';
        deep[n++] = '"';
        deep[n++] = 'a';
        deep[n++] = '"';
        deep[n++] = ':';
        for (int i = 1; i < levels; i++)
            deep[n++] = '[';
        for (int i = 1; i < levels; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        int rc = event_parse_json(deep, n, &v, err, sizeof err);
        CHECK_INT(rc, levels == 64 ? 0 : -EINVAL);
        if (rc) CHECK_STR(err, "event nests deeper than 64 levels");
        json_decref(v);
    }

    size_t big = EVENT_MAX_BYTES + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    CHECK_INT(event_parse_json(huge, big, &v, err, sizeof err), -EINVAL);
    CHECK(strncmp(err, "event too large", 15) == 0);
    CHECK_INT(event_parse_json(huge, big - 1 - 1, &v, err, sizeof err), -EINVAL); /* unclosed */
    huge[big - 2] = '}';
    CHECK_INT(event_parse_json(huge, big - 1, &v, err, sizeof err), 0); /* exactly the cap */
    json_decref(v);
    free(huge);
}

/* check_created: a full created event and the defaults for id and occurred_at. */
static void check_created(void)
{
    json_t *out[2];
    char err[512] = "";
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"id\":\"evt-1:a.b_c\","
                   "\"project_id\":\"prj_1\",\"occurred_at\":\"2026-11-26T13:00:00+01:00\","
                   "\"opportunity\":{\"id\":\"opp_9\",\"title\":\"T\",\"value\":1200.5},"
                   "\"contact\":{\"id\":7,\"name\":\"N\"}}",
                   out, err, sizeof err),
              1);
    CHECK_STR(dump(out[0]), "{\"id\":\"evt-1:a.b_c\",\"type\":\"opportunity.created\","
                            "\"project_id\":\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                            "\"opportunity\":{\"id\":\"opp_9\",\"title\":\"T\",\"value\":1200.5},"
                            "\"contact\":{\"id\":7,\"name\":\"N\"}}");
    CHECK(out[1] == NULL);
    CHECK_INT(event_is_routed(out[0], cfg), 1);
    CHECK_INT(event_is_routed(out[0], NULL), 0);
    json_decref(out[0]);

    /* No id: a UUIDv7 of now; no occurred_at: now; integer opportunity id kept an integer. */
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"project_id\":\"prj_x\","
                   "\"opportunity\":{\"id\":42},\"contact\":null}",
                   out, err, sizeof err),
              1);
    const char *id = json_string_value(json_object_get(out[0], "id"));
    CHECK(id && strlen(id) == 36 && id[14] == '7');
    CHECK(id && strncmp(id, "018bcfe5-687b", 13) == 0); /* 48-bit ms of NOW_MS */
    CHECK_STR(json_string_value(json_object_get(out[0], "occurred_at")),
              "2023-11-14T22:13:20.123Z");
    CHECK(json_is_integer(json_object_get(json_object_get(out[0], "opportunity"), "id")));
    CHECK(json_is_null(json_object_get(out[0], "contact")));
    CHECK(json_object_get(out[0], "funnel_id") == NULL);
    CHECK_INT(event_is_routed(out[0], cfg), 0); /* unknown project */
    json_decref(out[0]);

    /* Two ids drawn for the same millisecond differ. */
    json_t *again[2];
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"project_id\":\"p\","
                   "\"opportunity\":{\"id\":1}}",
                   out, err, sizeof err),
              1);
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"project_id\":\"p\","
                   "\"opportunity\":{\"id\":1}}",
                   again, err, sizeof err),
              1);
    CHECK(strcmp(json_string_value(json_object_get(out[0], "id")),
                 json_string_value(json_object_get(again[0], "id"))) != 0);
    json_decref(out[0]);
    json_decref(again[0]);

    /* A 128-character id is the longest accepted. */
    char text[512], id128[129];
    memset(id128, 'a', 128);
    id128[128] = '\0';
    snprintf(text, sizeof text,
             "{\"type\":\"opportunity.created\",\"id\":\"%s\",\"project_id\":\"p\","
             "\"opportunity\":{\"id\":\"o\"}}",
             id128);
    CHECK_INT(norm(text, out, err, sizeof err), 1);
    CHECK_STR(json_string_value(json_object_get(out[0], "id")), id128);
    json_decref(out[0]);
}

/* check_transitioned: plain transitions, won and lost derivation, and routing. */
static void check_transitioned(void)
{
    json_t *out[2];
    char err[512] = "";
    CHECK_INT(norm("{\"type\":\"opportunity.transitioned\",\"id\":\"t1\",\"project_id\":\"prj_1\","
                   "\"occurred_at\":\"2026-11-26T12:00:00Z\","
                   "\"opportunity\":{\"id\":\"opp_9\",\"funnel_id\":\"fun_1\"},"
                   "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_new\"}",
                   out, err, sizeof err),
              1);
    CHECK_STR(dump(out[0]), "{\"id\":\"t1\",\"type\":\"opportunity.transitioned\","
                            "\"project_id\":\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                            "\"opportunity\":{\"id\":\"opp_9\",\"funnel_id\":\"fun_1\"},"
                            "\"contact\":null,\"funnel_id\":\"fun_1\","
                            "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_new\"}");
    CHECK_INT(event_is_routed(out[0], cfg), 1);
    json_decref(out[0]);

    /* Into the won stage: the transition, then "<id>.won" with the same fields. */
    CHECK_INT(norm("{\"type\":\"opportunity.transitioned\",\"id\":\"t2\",\"project_id\":\"prj_1\","
                   "\"occurred_at\":\"2026-11-26T12:00:00Z\","
                   "\"opportunity\":{\"id\":\"opp_9\",\"funnel_id\":\"fun_1\",\"title\":\"X\"},"
                   "\"contact\":{\"id\":\"ct_3\"},\"to_stage_id\":\"stg_won\"}",
                   out, err, sizeof err),
              2);
    CHECK_STR(json_string_value(json_object_get(out[0], "type")), "opportunity.transitioned");
    CHECK_STR(json_string_value(json_object_get(out[0], "id")), "t2");
    CHECK(json_is_null(json_object_get(out[0], "from_stage_id")));
    CHECK_STR(dump(out[1]), "{\"id\":\"t2.won\",\"type\":\"opportunity.won\","
                            "\"project_id\":\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                            "\"opportunity\":{\"id\":\"opp_9\",\"funnel_id\":\"fun_1\","
                            "\"title\":\"X\"},\"contact\":{\"id\":\"ct_3\"},"
                            "\"funnel_id\":\"fun_1\",\"from_stage_id\":null,"
                            "\"to_stage_id\":\"stg_won\"}");
    CHECK_INT(event_is_routed(out[1], cfg), 1);
    json_decref(out[0]);
    json_decref(out[1]);

    /* Into the lost stage, with a maximal id: "<id>.lost" may exceed 128. */
    char text[1024], id128[129];
    memset(id128, 'z', 128);
    id128[128] = '\0';
    snprintf(text, sizeof text,
             "{\"type\":\"opportunity.transitioned\",\"id\":\"%s\",\"project_id\":\"prj_1\","
             "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_1\"},\"from_stage_id\":null,"
             "\"to_stage_id\":\"stg_lost\"}",
             id128);
    CHECK_INT(norm(text, out, err, sizeof err), 2);
    char want[140];
    snprintf(want, sizeof want, "%s.lost", id128);
    CHECK_STR(json_string_value(json_object_get(out[1], "id")), want);
    CHECK_STR(json_string_value(json_object_get(out[1], "type")), "opportunity.lost");
    json_decref(out[0]);
    json_decref(out[1]);

    /* Without a configuration, an unknown funnel, or a funnel with no won stage: no derivation. */
    const char *won = "{\"type\":\"opportunity.transitioned\",\"id\":\"t3\",\"project_id\":"
                      "\"prj_1\",\"opportunity\":{\"id\":1,\"funnel_id\":\"%s\"},"
                      "\"to_stage_id\":\"stg_won\"}";
    json_t *in;
    snprintf(text, sizeof text, won, "fun_1");
    CHECK_INT(event_parse_json(text, strlen(text), &in, err, sizeof err), 0);
    CHECK_INT(event_normalize(in, NULL, NOW_MS, out, err, sizeof err), 1);
    CHECK(out[1] == NULL);
    json_decref(out[0]);
    json_decref(in);
    snprintf(text, sizeof text, won, "fun_9");
    CHECK_INT(norm(text, out, err, sizeof err), 1);
    CHECK_INT(event_is_routed(out[0], cfg), 0); /* known project, unknown funnel */
    json_decref(out[0]);
    snprintf(text, sizeof text, won, "fun_2");
    CHECK_INT(norm(text, out, err, sizeof err), 1);
    CHECK_INT(event_is_routed(out[0], cfg), 1);
    json_decref(out[0]);
}

/* check_invalid: each rule's refusal and its reason. */
static void check_invalid(void)
{
    REJECT("{\"project_id\":\"p\",\"opportunity\":{\"id\":1}}", "type: missing");
    REJECT("{\"type\":\"opportunity.won\",\"project_id\":\"p\",\"opportunity\":{\"id\":1}}",
           "type: opportunity.won is derived by hookline and not accepted as input");
    REJECT("{\"type\":\"opportunity.lost\",\"project_id\":\"p\",\"opportunity\":{\"id\":1}}",
           "type: opportunity.lost is derived by hookline and not accepted as input");
    REJECT("{\"type\":\"opportunity.deleted\",\"project_id\":\"p\",\"opportunity\":{\"id\":1}}",
           "type: must be opportunity.created or opportunity.transitioned");
    REJECT("{\"type\":7,\"project_id\":\"p\",\"opportunity\":{\"id\":1}}",
           "type: must be opportunity.created or opportunity.transitioned");
    REJECT("{\"type\":\"opportunity.created\",\"id\":\"a b\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1}}",
           "id: must be 1..128 characters of [A-Za-z0-9._:-]");
    REJECT("{\"type\":\"opportunity.created\",\"id\":\"\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1}}",
           "id: must be 1..128 characters of [A-Za-z0-9._:-]");
    REJECT("{\"type\":\"opportunity.created\",\"id\":12,\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1}}",
           "id: must be 1..128 characters of [A-Za-z0-9._:-]");
    char text[512], id129[130];
    memset(id129, 'a', 129);
    id129[129] = '\0';
    snprintf(text, sizeof text,
             "{\"type\":\"opportunity.created\",\"id\":\"%s\",\"project_id\":\"p\","
             "\"opportunity\":{\"id\":\"o\"}}",
             id129);
    REJECT(text, "id: must be 1..128 characters of [A-Za-z0-9._:-]");
    REJECT("{\"type\":\"opportunity.created\",\"opportunity\":{\"id\":1}}", "project_id: missing");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"\",\"opportunity\":{\"id\":1}}",
           "project_id: must be a non-empty string");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"occurred_at\":\"yesterday\","
           "\"opportunity\":{\"id\":1}}",
           "occurred_at: must be an RFC 3339 date-time");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"occurred_at\":1700000000,"
           "\"opportunity\":{\"id\":1}}",
           "occurred_at: must be an RFC 3339 date-time");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\"}", "opportunity: missing");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":[1]}",
           "opportunity: must be an object");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"t\":1}}",
           "opportunity.id: missing");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":\"\"}}",
           "opportunity.id: must be a non-empty string or an integer");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":1.5}}",
           "opportunity.id: must be a non-empty string or an integer");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":1},"
           "\"contact\":{\"name\":\"n\"}}",
           "contact.id: missing");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":1},"
           "\"contact\":\"ct_1\"}",
           "contact: must be an object");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":1},"
           "\"extra\":true}",
           "extra: unknown key");
    REJECT("{\"type\":\"opportunity.created\",\"project_id\":\"p\",\"opportunity\":{\"id\":1},"
           "\"to_stage_id\":\"s\"}",
           "to_stage_id: only allowed for opportunity.transitioned");
    REJECT("{\"type\":\"opportunity.transitioned\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1},\"to_stage_id\":\"s\"}",
           "opportunity.funnel_id: missing");
    REJECT("{\"type\":\"opportunity.transitioned\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1,\"funnel_id\":5},\"to_stage_id\":\"s\"}",
           "opportunity.funnel_id: must be a non-empty string");
    REJECT("{\"type\":\"opportunity.transitioned\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1,\"funnel_id\":\"f\"}}",
           "to_stage_id: missing");
    REJECT("{\"type\":\"opportunity.transitioned\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1,\"funnel_id\":\"f\"},\"to_stage_id\":null}",
           "to_stage_id: must be a non-empty string");
    REJECT("{\"type\":\"opportunity.transitioned\",\"project_id\":\"p\","
           "\"opportunity\":{\"id\":1,\"funnel_id\":\"f\"},\"to_stage_id\":\"s\","
           "\"from_stage_id\":3}",
           "from_stage_id: must be a non-empty string or null");

    /* Duplicate keys and broken JSON never reach normalization. */
    json_t *out[2];
    char err[512] = "";
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"type\":\"opportunity.created\","
                   "\"project_id\":\"p\",\"opportunity\":{\"id\":1}}",
                   out, err, sizeof err),
              -EINVAL);
    CHECK(strncmp(err, "type (column ", 13) == 0 && strstr(err, "): duplicate key"));
    CHECK_INT(norm("{\"type\":\"opportunity.created\",\"project_id\":\"p\","
                   "\"opportunity\":{\"id\":1,\"id\":2}}",
                   out, err, sizeof err),
              -EINVAL);
    CHECK(strncmp(err, "opportunity.id (column ", 23) == 0 && strstr(err, "): duplicate key"));
    CHECK_INT(norm("{\"type\":\"opportunity.created\",", out, err, sizeof err), -EINVAL);
    CHECK(strncmp(err, "invalid JSON at line 1 column ", 30) == 0);
}

/* check_nul: a NUL inside a string (possible through msgpack) is refused, naming the field. */
static void check_nul(void)
{
    char err[256] = "";
    json_t *out[2] = {NULL, NULL};
    json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s%}}", "type", "opportunity.created", "project_id",
                           "prj_1", "opportunity", "id", "o1", "title", "a\0b", (size_t)3);
    CHECK(ev != NULL);
    CHECK_INT(event_normalize(ev, cfg, 1000, out, err, sizeof err), -EINVAL);
    CHECK_STR(err, "opportunity: strings must not contain U+0000");
    json_decref(ev);
}

int main(void)
{
    char err[512] = "";
    json_error_t jerr;
    json_t *doc = json_loads(cfg_text, 0, &jerr);
    CHECK(doc != NULL);
    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    json_decref(doc);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return check_done("event");
    }
    check_parse();
    check_created();
    check_transitioned();
    check_invalid();
    check_nul();
    config_free(cfg);
    return check_done("event");
}
