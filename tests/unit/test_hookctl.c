/* test_hookctl.c - hookctl's subcommands run in-process on a temporary data dir: import
 * (good, bad, nothing changed), export masking, webhook add/rm/disable, render output, the
 * delivery log commands and redelivery refusals, and the small helpers. */
#include "check.h"
#include "../../hookctl/ctl.h"

#include "domain/config.h"
#include "domain/payload.h"
#include "domain/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_CONFIG                                                                                \
    "{\"projects\": [{\"id\": \"prj_1\", \"name\": \"Acme\",\n"                                    \
    " \"opportunity_fields\": [\"title\", \"value\"], \"contact_fields\": [\"name\"],\n"           \
    " \"funnels\": [{\"id\": \"fun_1\", \"name\": \"Sales\", \"stages\": [\n"                      \
    "   {\"id\": \"stg_new\", \"name\": \"New\"}, {\"id\": \"stg_won\", \"name\": \"Won\"}],\n"    \
    "   \"won_stage_id\": \"stg_won\"}],\n"                                                        \
    " \"webhooks\": [{\"id\": \"wh_1\", \"name\": \"Won deals\", \"url\": "                        \
    "\"https://hooks.example.com/won\",\n"                                                         \
    "   \"enabled\": true, \"events\": [\"opportunity.won\"],\n"                                   \
    "   \"auth\": {\"type\": \"bearer\", \"token\": \"tok-secret-123\"},\n"                        \
    "   \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}]}]}\n"

static char test_dir[256];
static ctl_t test_ctl;

/* test_write: write text to DIR/name and return the path (static buffer per call site). */
static const char *test_write(const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", test_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* test_run: run a subcommand with stdout to DIR/out.txt; returns its exit status and the
 * output (malloc'd) in *out when out is not NULL. */
static int test_run(ctl_cmd_fn fn, const char *cmd, char **out, int argc, char **argv)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", test_dir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    close(fd);
    test_ctl.cmd = cmd;
    int rc = fn(&test_ctl, argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    if (out) {
        FILE *f = fopen(path, "r");
        *out = calloc(1, 1 << 20);
        size_t n = fread(*out, 1, (1 << 20) - 1, f);
        (*out)[n] = '\0';
        fclose(f);
    }
    return rc;
}

/* test_webhook_count: webhooks in the stored configuration. */
static size_t test_webhook_count(void)
{
    store_t *st;
    config_t *cfg;
    char err[256];
    size_t n = 0;
    mkdir(test_ctl.data_dir, 0700);
    if (store_open(&st, test_ctl.db_path, err, sizeof err) < 0) return 999;
    if (store_load_config(st, &cfg, err, sizeof err) == 0) {
        for (size_t i = 0; i < cfg->nprojects; i++)
            n += cfg->projects[i].nwebhooks;
        config_free(cfg);
    }
    store_close(st);
    return n;
}

/* check_helpers: blank lines, numbers, socket paths. */
static void check_helpers(void)
{
    long v;
    char buf[64];
    CHECK(ctl_line_is_blank("", 0));
    CHECK(ctl_line_is_blank(" \t\r", 3));
    CHECK(!ctl_line_is_blank(" {", 2));
    CHECK_INT(ctl_parse_long("42", 0, 100, &v), 0);
    CHECK_INT(v, 42);
    CHECK_INT(ctl_parse_long("42x", 0, 100, &v), -EINVAL);
    CHECK_INT(ctl_parse_long("101", 0, 100, &v), -EINVAL);
    CHECK_INT(ctl_parse_long("", 0, 100, &v), -EINVAL);
    CHECK_STR(ctl_format_time(0, buf, sizeof buf), "-");
    CHECK_STR(ctl_format_time(1795694400000, buf, sizeof buf), "2026-11-26T12:00:00Z");
}

/* check_import_export: a bad file changes nothing; a good one imports; export masks. */
static void check_import_export(void)
{
    char path[512], *out = NULL;
    char bad[4096];

    snprintf(bad, sizeof bad, "%s", TEST_CONFIG);
    char *url = strstr(bad, "https://hooks");
    memcpy(url, "ftp://h", 7);
    char *argv_bad[] = {"import", (char *)test_write("bad.json", bad, path, sizeof path), NULL};
    CHECK_INT(test_run(ctl_config_import, "import", NULL, 2, argv_bad), CTL_EXIT_USAGE);
    CHECK_INT(test_webhook_count(), 0);

    char dpath[512];
    char *argv_dup[] = {
        "import",
        (char *)test_write("dup.json", "{\"projects\": [], \"projects\": []}", dpath, sizeof dpath),
        NULL};
    CHECK_INT(test_run(ctl_config_import, "import", NULL, 2, argv_dup), CTL_EXIT_USAGE);

    char *argv_good[] = {"import", (char *)test_write("good.json", TEST_CONFIG, path, sizeof path),
                         NULL};
    CHECK_INT(test_run(ctl_config_import, "import", &out, 2, argv_good), CTL_EXIT_OK);
    CHECK_STR(out, "imported 1 projects, 1 webhooks\n");
    free(out);
    CHECK_INT(test_webhook_count(), 1);

    char *argv_exp[] = {"export", NULL};
    CHECK_INT(test_run(ctl_config_export, "export", &out, 1, argv_exp), CTL_EXIT_OK);
    CHECK(strstr(out, "tok-secret-123") == NULL);
    CHECK(strstr(out, "whsec_") == NULL);
    CHECK(strstr(out, "\"token\": \"***\"") != NULL);
    free(out);
    char *argv_exps[] = {"export", "--with-secrets", NULL};
    CHECK_INT(test_run(ctl_config_export, "export", &out, 2, argv_exps), CTL_EXIT_OK);
    CHECK(strstr(out, "tok-secret-123") != NULL);
    json_t *doc = json_loads(out, 0, NULL);
    CHECK(doc != NULL);
    json_decref(doc);
    free(out);
}

/* check_webhook: add (flags), duplicate, disable, list masking, rm. */
static void check_webhook(void)
{
    char *out = NULL;
    char *add[] = {"webhook",   "add",
                   "--project", "prj_1",
                   "--id",      "wh_2",
                   "--url",     "https://x.example/in",
                   "--event",   "opportunity.created",
                   "--key",     "k-secret-9",
                   NULL};
    CHECK_INT(test_run(ctl_config_webhook, "webhook", NULL, 12, add), CTL_EXIT_OK);
    CHECK_INT(test_webhook_count(), 2);
    CHECK_INT(test_run(ctl_config_webhook, "webhook", NULL, 12, add), CTL_EXIT_USAGE);
    char *dis[] = {"webhook", "disable", "wh_2", NULL};
    CHECK_INT(test_run(ctl_config_webhook, "webhook", NULL, 3, dis), CTL_EXIT_OK);
    char *list[] = {"webhook", "list", "--json", NULL};
    CHECK_INT(test_run(ctl_config_webhook, "webhook", &out, 3, list), CTL_EXIT_OK);
    CHECK(strstr(out, "k-secret-9") == NULL);
    CHECK(strstr(out, "\"api_key\"") != NULL);
    CHECK(strstr(out, "\"enabled\":false") != NULL);
    free(out);
    char *rm[] = {"webhook", "rm", "wh_2", NULL};
    CHECK_INT(test_run(ctl_config_webhook, "webhook", NULL, 3, rm), CTL_EXIT_OK);
    CHECK_INT(test_run(ctl_config_webhook, "webhook", NULL, 3, rm), CTL_EXIT_FAIL);
    CHECK_INT(test_webhook_count(), 1);
}

/* check_render: a won transition yields one object for wh_1, with masked credentials. */
static void check_render(void)
{
    char path[512], *out = NULL, inv[INVOCATION_ID_LEN];
    const char *events =
        "{\"type\":\"opportunity.transitioned\",\"id\":\"evt_7\",\"project_id\":\"prj_1\","
        "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"opportunity\":{\"id\":\"opp_1\","
        "\"funnel_id\":\"fun_1\",\"title\":\"T\"},\"from_stage_id\":\"stg_new\","
        "\"to_stage_id\":\"stg_won\"}\n"
        "\n"
        "{\"type\":\"opportunity.won\",\"project_id\":\"prj_1\",\"opportunity\":{\"id\":\"o\"}}\n";
    char *argv[] = {"render", (char *)test_write("ev.jsonl", events, path, sizeof path), NULL};
    CHECK_INT(test_run(ctl_render_run, "render", &out, 2, argv), CTL_EXIT_USAGE);
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    CHECK(o != NULL);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1); /* exactly one line */
    payload_invocation_id("evt_7.won", "wh_1", inv);
    CHECK_STR(json_string_value(json_object_get(o, "invocation_id")), inv);
    CHECK_STR(json_string_value(json_object_get(o, "webhook_id")), "wh_1");
    CHECK_STR(json_string_value(json_object_get(o, "event_type")), "opportunity.won");
    CHECK_STR(json_string_value(json_object_get(o, "url")), "https://hooks.example.com/won");
    json_t *h = json_object_get(o, "headers");
    CHECK_STR(json_string_value(json_object_get(h, "Authorization")), "***");
    CHECK_STR(json_string_value(json_object_get(h, "webhook-signature")), "***");
    const char *body = json_string_value(json_object_get(o, "body"));
    CHECK(body && strstr(body, "\"id\":\"evt_7.won\"") != NULL);
    CHECK(strstr(out, "tok-secret-123") == NULL);
    json_decref(o);
    free(out);
}

/* check_deliveries: list, show, not found, and redelivery refusals without a scheduler. */
static void check_deliveries(void)
{
    store_t *st;
    char err[256], *out = NULL;
    delivery_t d = {0};

    CHECK_INT(store_open(&st, test_ctl.db_path, err, sizeof err), 0);
    CHECK_INT(store_delivery_pending(st, "inv_pending", "wh_1", NULL, "evt_1", "opportunity.won",
                                     NULL, 1795694400000, err, sizeof err),
              0);
    d.invocation_id = "inv_done";
    d.webhook_id = "wh_1";
    d.event_id = "evt_2";
    d.event_type = "opportunity.won";
    d.status = DLV_RETRYING;
    d.attempts = 2;
    d.next_attempt_at = 1795694460000;
    d.created_at = 1795694400000;
    d.updated_at = 1795694401000;
    d.req_method = "POST";
    d.req_url = "https://hooks.example.com/won";
    d.req_headers = "{\"Authorization\":\"***\",\"X-Webhook-Attempt\":\"2\"}";
    d.req_body = "{\"id\":\"evt_2\"}";
    d.resp_status = 500;
    d.resp_headers = "{\"content-type\":\"text/plain\"}";
    d.resp_body = "oops";
    d.resp_body_len = 4;
    d.resp_truncated = 1;
    d.duration_ms = 12;
    CHECK_INT(store_delivery_record(st, &d, err, sizeof err), 0);
    store_close(st);

    char *list[] = {"deliveries", "--json", "--status", "retrying", NULL};
    CHECK_INT(test_run(ctl_deliveries_list, "deliveries", &out, 4, list), CTL_EXIT_OK);
    CHECK(strstr(out, "inv_done") != NULL);
    CHECK(strstr(out, "inv_pending") == NULL);
    free(out);
    char *table[] = {"deliveries", NULL};
    CHECK_INT(test_run(ctl_deliveries_list, "deliveries", &out, 1, table), CTL_EXIT_OK);
    CHECK(strstr(out, "inv_pending") != NULL && strstr(out, "HTTP 500") != NULL);
    free(out);
    char *show[] = {"delivery", "inv_done", NULL};
    CHECK_INT(test_run(ctl_deliveries_show, "delivery", &out, 2, show), CTL_EXIT_OK);
    CHECK(strstr(out, "HTTP 500") != NULL);
    CHECK(strstr(out, "(truncated)") != NULL);
    CHECK(strstr(out, "Authorization: ***") != NULL);
    free(out);
    char *showj[] = {"delivery", "inv_done", "--json", NULL};
    CHECK_INT(test_run(ctl_deliveries_show, "delivery", &out, 3, showj), CTL_EXIT_OK);
    json_t *o = json_loads(out, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(o, "status")), "retrying");
    json_decref(o);
    free(out);
    char *missing[] = {"delivery", "inv_nope", NULL};
    CHECK_INT(test_run(ctl_deliveries_show, "delivery", NULL, 2, missing), CTL_EXIT_FAIL);
    char *re_pending[] = {"redeliver", "inv_pending", NULL};
    CHECK_INT(test_run(ctl_deliveries_redeliver, "redeliver", NULL, 2, re_pending), CTL_EXIT_FAIL);
    char *re_done[] = {"redeliver", "inv_done", NULL}; /* no scheduler running */
    CHECK_INT(test_run(ctl_deliveries_redeliver, "redeliver", NULL, 2, re_done), CTL_EXIT_FAIL);
    char *status[] = {"status", NULL};
    CHECK_INT(test_run(ctl_status_run, "status", &out, 1, status), CTL_EXIT_FAIL);
    CHECK(strstr(out, "ingest - down") != NULL);
    free(out);
    char *prune[] = {"prune", "--keep", "x", NULL};
    CHECK_INT(test_run(ctl_deliveries_prune, "prune", NULL, 3, prune), CTL_EXIT_USAGE);
}

#define ROT_A "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define ROT_B "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define ROT_C "whsec_dGVzdA=="

/* count_of: occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* check_rotation: a webhook with "secret" and a "secrets" list survives the store; export,
 * webhook list and render mask every one; export --with-secrets gives them back. */
static void check_rotation(void)
{
    char path[512], *out = NULL;
    const char *cfg =
        "{\"projects\": [{\"id\": \"prj_1\", \"name\": \"Acme\", \"funnels\": [],\n"
        " \"webhooks\": [{\"id\": \"wh_r\", \"url\": \"https://hooks.example.com/r\",\n"
        "   \"events\": [\"opportunity.created\"], \"auth\": {\"type\": \"bearer\", \"token\": "
        "\"tok-rot-9\"},\n"
        "   \"secret\": \"" ROT_A "\",\n"
        "   \"secrets\": [{\"secret\": \"" ROT_B "\", \"expires_at\": \"2000-01-01T00:00:00Z\"},\n"
        "                 {\"secret\": \"" ROT_C "\"}]}]}]}\n";
    char *argv_imp[] = {"import", (char *)test_write("rot.json", cfg, path, sizeof path), NULL};
    CHECK_INT(test_run(ctl_config_import, "import", NULL, 2, argv_imp), CTL_EXIT_OK);

    char *argv_exp[] = {"export", NULL};
    CHECK_INT(test_run(ctl_config_export, "export", &out, 1, argv_exp), CTL_EXIT_OK);
    CHECK(out && strstr(out, "whsec_") == NULL && strstr(out, "tok-rot-9") == NULL);
    CHECK_INT(count_of(out, "\"secret\": \"***\""), 3);
    CHECK(out && strstr(out, "\"expires_at\": \"2000-01-01T00:00:00Z\"") != NULL);
    free(out);
    char *argv_exps[] = {"export", "--with-secrets", NULL};
    CHECK_INT(test_run(ctl_config_export, "export", &out, 2, argv_exps), CTL_EXIT_OK);
    CHECK(out && strstr(out, ROT_A) && strstr(out, ROT_B) && strstr(out, ROT_C));
    free(out);

    char *argv_list[] = {"webhook", "list", "--json", NULL};
    CHECK_INT(test_run(ctl_config_webhook, "webhook", &out, 3, argv_list), CTL_EXIT_OK);
    CHECK(out && strstr(out, "whsec_") == NULL && count_of(out, "\"secret\":\"***\"") == 3);
    free(out);

    char *argv_r[] = {"render",
                      (char *)test_write("rot.jsonl",
                                         "{\"type\":\"opportunity.created\",\"id\":\"e_r\","
                                         "\"project_id\":\"prj_1\",\"opportunity\":{\"id\":1}}\n",
                                         path, sizeof path),
                      NULL};
    CHECK_INT(test_run(ctl_render_run, "render", &out, 2, argv_r), CTL_EXIT_OK);
    json_t *o = out ? json_loads(out, 0, NULL) : NULL;
    CHECK_STR(
        json_string_value(json_object_get(json_object_get(o, "headers"), "webhook-signature")),
        "***");
    CHECK(out && strstr(out, "v1,") == NULL && strstr(out, "AAECAwQF") == NULL &&
          strstr(out, "dGVzdA") == NULL && strstr(out, "tok-rot-9") == NULL);
    json_decref(o);
    free(out);
}

int main(void)
{
    snprintf(test_dir, sizeof test_dir, "%s/hookctl-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(test_dir) == NULL) return 1;
    test_ctl.data_dir = test_dir;
    snprintf(test_ctl.db_path, sizeof test_ctl.db_path, "%s/data/hookline.db", test_dir);
    snprintf(test_ctl.run_dir, sizeof test_ctl.run_dir, "%s/data/run", test_dir);
    test_ctl.data_dir = strdup(test_ctl.db_path);
    *strrchr((char *)test_ctl.data_dir, '/') = '\0';

    check_helpers();
    check_import_export();
    check_webhook();
    check_render();
    check_deliveries();
    check_rotation();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_dir);
    return check_done("hookctl");
}
