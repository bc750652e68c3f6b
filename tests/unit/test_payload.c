/* test_payload.c - golden request bodies for created and won events, names from the
 * configuration, null for what is missing, JSON types kept; invocation ids and matching. */
#include "check.h"
#include "domain/config.h"
#include "domain/event.h"
#include "domain/payload.h"

#include <stdlib.h>

static const char *const cfg_text =
    "{\"projects\":[{\"id\":\"prj_1\",\"name\":\"Acme\","
    "\"opportunity_fields\":[\"title\",\"value\",\"owner\"],"
    "\"contact_fields\":[\"name\",\"email\"],"
    "\"funnels\":[{\"id\":\"fun_1\",\"name\":\"Sales\",\"stages\":["
    "{\"id\":\"stg_new\",\"name\":\"New\"},{\"id\":\"stg_won\",\"name\":\"Closed won\"},"
    "{\"id\":\"stg_lost\",\"name\":\"Closed lost\"}],"
    "\"won_stage_id\":\"stg_won\",\"lost_stage_id\":\"stg_lost\"}],"
    "\"webhooks\":["
    "{\"id\":\"wh_1\",\"name\":\"Slack Notifications for Won Deals\","
    "\"url\":\"https://hooks.example.com/won\",\"enabled\":true,"
    "\"events\":[\"opportunity.won\"],\"auth\":{\"type\":\"none\"}},"
    "{\"id\":\"wh_2\",\"name\":\"All created\",\"url\":\"https://hooks.example.com/c\","
    "\"events\":[\"opportunity.created\",\"opportunity.transitioned\"]},"
    "{\"id\":\"wh_3\",\"name\":\"Off\",\"url\":\"https://hooks.example.com/off\","
    "\"enabled\":false,\"events\":[\"opportunity.created\"]}]},"
    "{\"id\":\"prj_2\",\"name\":\"Other\",\"opportunity_fields\":[],\"contact_fields\":[],"
    "\"funnels\":[],\"webhooks\":[]}]}";

static config_t *cfg;
static const project_t *prj;

/* normalize: the normalized events of one input line (count returned, out[] set). */
static int normalize(const char *line, json_t *out[2])
{
    char err[256] = "";
    json_t *in = NULL;
    out[0] = out[1] = NULL;
    if (event_parse_json(line, strlen(line), &in, err, sizeof err) < 0) {
        fprintf(stderr, "parse: %s\n", err);
        return -1;
    }
    int n = event_normalize(in, cfg, 0, out, err, sizeof err);
    if (n < 0) fprintf(stderr, "normalize: %s\n", err);
    json_decref(in);
    return n;
}

/* body_of: the body for event ev and webhook id (malloc'd, caller frees). */
static char *body_of(const json_t *ev, const char *wh_id)
{
    const webhook_t *wh = config_find_webhook(cfg, wh_id, NULL);
    size_t len = 0;
    char *b = wh ? payload_build(ev, prj, wh, &len) : NULL;
    CHECK(b != NULL && strlen(b) == len);
    return b;
}

/* check_created: configured fields in order, missing null, no contact, no funnel keys. */
static void check_created(void)
{
    json_t *ev[2];
    CHECK_INT(normalize("{\"type\":\"opportunity.created\",\"id\":\"evt_1\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                        "\"opportunity\":{\"value\":1200.5,\"id\":\"opp_9\",\"extra\":1,"
                        "\"title\":\"Big \\\"deal\\\"\\n\\u00e9\\u2603\"}}",
                        ev),
              1);
    char *b = body_of(ev[0], "wh_2");
    CHECK_STR(b, "{\"id\":\"evt_1\",\"type\":\"opportunity.created\","
                 "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"project_id\":\"prj_1\","
                 "\"webhook\":{\"id\":\"wh_2\",\"name\":\"All created\"},"
                 "\"data\":{\"opportunity\":{\"id\":\"opp_9\","
                 "\"title\":\"Big \\\"deal\\\"\\n\xc3\xa9\xe2\x98\x83\",\"value\":1200.5,"
                 "\"owner\":null},\"contact\":null}}");
    free(b);
    json_decref(ev[0]);

    /* Values keep their JSON type; reals come out as the producer wrote them. */
    CHECK_INT(normalize("{\"type\":\"opportunity.created\",\"id\":\"evt_2\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00.5+00:00\","
                        "\"opportunity\":{\"id\":17,\"title\":{\"a\":[1,true,null]},"
                        "\"value\":0.1,\"owner\":false},"
                        "\"contact\":{\"id\":\"ct_3\",\"email\":\"a@b.c\",\"phone\":\"1\"}}",
                        ev),
              1);
    b = body_of(ev[0], "wh_2");
    CHECK_STR(b, "{\"id\":\"evt_2\",\"type\":\"opportunity.created\","
                 "\"occurred_at\":\"2026-11-26T12:00:00.500Z\",\"project_id\":\"prj_1\","
                 "\"webhook\":{\"id\":\"wh_2\",\"name\":\"All created\"},"
                 "\"data\":{\"opportunity\":{\"id\":17,\"title\":{\"a\":[1,true,null]},"
                 "\"value\":0.1,\"owner\":false},"
                 "\"contact\":{\"id\":\"ct_3\",\"name\":null,\"email\":\"a@b.c\"}}}");
    free(b);
    json_decref(ev[0]);

    /* Real edge cases keep the real type and round-trip exactly. */
    CHECK_INT(normalize("{\"type\":\"opportunity.created\",\"id\":\"evt_3\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                        "\"opportunity\":{\"id\":\"o\",\"title\":1e300,\"value\":2.0,"
                        "\"owner\":-0.000123456789012345}}",
                        ev),
              1);
    b = body_of(ev[0], "wh_2");
    CHECK(b && strstr(b, "\"title\":1e+300,\"value\":2.0,\"owner\":-0.000123456789012345}"));
    json_t *back = b ? json_loads(b, 0, NULL) : NULL;
    CHECK(back != NULL);
    json_t *opp = json_object_get(json_object_get(back, "data"), "opportunity");
    CHECK(json_real_value(json_object_get(opp, "owner")) == -0.000123456789012345);
    CHECK(json_is_real(json_object_get(opp, "value")));
    json_decref(back);
    free(b);
    json_decref(ev[0]);
}

/* check_won: funnel and stage names from the configuration, from_stage null. */
static void check_won(void)
{
    json_t *ev[2];
    CHECK_INT(normalize("{\"type\":\"opportunity.transitioned\",\"id\":\"t1\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                        "\"opportunity\":{\"id\":\"opp_9\",\"funnel_id\":\"fun_1\","
                        "\"title\":\"T\",\"value\":5,\"owner\":\"ann\"},"
                        "\"contact\":{\"id\":\"ct_3\",\"name\":\"Bo\",\"email\":\"b@x\"},"
                        "\"to_stage_id\":\"stg_won\"}",
                        ev),
              2);
    char *b = body_of(ev[1], "wh_1");
    CHECK_STR(b, "{\"id\":\"t1.won\",\"type\":\"opportunity.won\","
                 "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"project_id\":\"prj_1\","
                 "\"webhook\":{\"id\":\"wh_1\",\"name\":\"Slack Notifications for Won Deals\"},"
                 "\"data\":{\"opportunity\":{\"id\":\"opp_9\",\"title\":\"T\",\"value\":5,"
                 "\"owner\":\"ann\"},\"contact\":{\"id\":\"ct_3\",\"name\":\"Bo\","
                 "\"email\":\"b@x\"},\"funnel\":{\"id\":\"fun_1\",\"name\":\"Sales\"},"
                 "\"from_stage\":null,\"to_stage\":{\"id\":\"stg_won\",\"name\":\"Closed won\"}}}");
    free(b);
    b = body_of(ev[0], "wh_2");
    CHECK(b && strstr(b, "\"id\":\"t1\",\"type\":\"opportunity.transitioned\","));
    free(b);
    json_decref(ev[0]);
    json_decref(ev[1]);

    /* A stage the configuration does not know: name null. */
    CHECK_INT(normalize("{\"type\":\"opportunity.transitioned\",\"id\":\"t2\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                        "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_1\"},"
                        "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_gone\"}",
                        ev),
              1);
    b = body_of(ev[0], "wh_2");
    CHECK_STR(b,
              "{\"id\":\"t2\",\"type\":\"opportunity.transitioned\","
              "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"project_id\":\"prj_1\","
              "\"webhook\":{\"id\":\"wh_2\",\"name\":\"All created\"},"
              "\"data\":{\"opportunity\":{\"id\":1,\"title\":null,\"value\":null,"
              "\"owner\":null},\"contact\":null,\"funnel\":{\"id\":\"fun_1\",\"name\":\"Sales\"},"
              "\"from_stage\":{\"id\":\"stg_new\",\"name\":\"New\"},"
              "\"to_stage\":{\"id\":\"stg_gone\",\"name\":null}}}");
    free(b);
    json_decref(ev[0]);

    /* A funnel the configuration does not know: every name null. */
    CHECK_INT(normalize("{\"type\":\"opportunity.transitioned\",\"id\":\"t3\",\"project_id\":"
                        "\"prj_1\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                        "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_x\"},"
                        "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_won\"}",
                        ev),
              1);
    b = body_of(ev[0], "wh_2");
    CHECK(b && strstr(b, "\"funnel\":{\"id\":\"fun_x\",\"name\":null},"
                         "\"from_stage\":{\"id\":\"stg_new\",\"name\":null},"
                         "\"to_stage\":{\"id\":\"stg_won\",\"name\":null}}}"));
    free(b);
    json_decref(ev[0]);
}

/* check_ids: deterministic, per webhook, the documented shape. */
static void check_ids(void)
{
    char a[INVOCATION_ID_LEN], b[INVOCATION_ID_LEN], c[INVOCATION_ID_LEN], d[INVOCATION_ID_LEN];
    payload_invocation_id("evt_1", "wh_1", a);
    payload_invocation_id("evt_1", "wh_1", b);
    payload_invocation_id("evt_1", "wh_2", c);
    payload_invocation_id("evt_1.won", "wh_1", d);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strcmp(a, d) != 0);
    CHECK_INT(strlen(a), 36);
    CHECK(strncmp(a, "inv_", 4) == 0);
    CHECK_INT(strspn(a + 4, "0123456789abcdef"), 32);
    /* The separator keeps split points apart. */
    payload_invocation_id("ab", "c", b);
    payload_invocation_id("a", "bc", c);
    CHECK(strcmp(b, c) != 0);
    /* SHA-256("evt_1\0wh_1"), first 16 bytes: pinned so ids never change across versions. */
    CHECK_STR(a, "inv_ef3f95f0e460fbed9e91510293f1df1c");
}

/* check_matches: enabled, same project, listed type. */
static void check_matches(void)
{
    const webhook_t *w1 = config_find_webhook(cfg, "wh_1", NULL);
    const webhook_t *w2 = config_find_webhook(cfg, "wh_2", NULL);
    const webhook_t *w3 = config_find_webhook(cfg, "wh_3", NULL);
    CHECK(w1 && w2 && w3);
    if (!w1 || !w2 || !w3) return;
    CHECK_INT(payload_matches(w1, "prj_1", EVT_WON), 1);
    CHECK_INT(payload_matches(w1, "prj_1", EVT_LOST), 0);
    CHECK_INT(payload_matches(w1, "prj_1", EVT_TRANSITIONED), 0);
    CHECK_INT(payload_matches(w1, "prj_2", EVT_WON), 0);
    CHECK_INT(payload_matches(w2, "prj_1", EVT_CREATED), 1);
    CHECK_INT(payload_matches(w2, "prj_1", EVT_TRANSITIONED), 1);
    CHECK_INT(payload_matches(w3, "prj_1", EVT_CREATED), 0); /* disabled */
}

int main(void)
{
    char err[256] = "";
    json_t *doc = json_loads(cfg_text, 0, NULL);
    CHECK(doc != NULL);
    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    json_decref(doc);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return check_done("payload");
    }
    prj = config_find_project(cfg, "prj_1");
    CHECK(prj != NULL);
    check_created();
    check_won();
    check_ids();
    check_matches();
    config_free(cfg);
    return check_done("payload");
}
