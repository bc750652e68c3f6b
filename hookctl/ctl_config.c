/* ctl_config.c - hookctl import, export and webhook add|rm|enable|disable|list: the
 * configuration in the store, validated by config.c before anything changes. */
#include "ctl.h"

#include "domain/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ctl_config_import: parse, validate, replace in one transaction. */
int ctl_config_import(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    char err[512] = "";
    const char *name;
    json_error_t jerr;
    config_t *cfg = NULL;
    store_t *st = NULL;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind != 1) return ctl_usage_error(ctl, "expected one FILE (or - for stdin)");
    FILE *f = ctl_input_open(ctl, argv[optind], &name);
    if (f == NULL) return CTL_EXIT_USAGE;
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    ctl_input_close(f);
    if (doc == NULL) {
        ctl_error(ctl, "%s: line %d column %d: %s", name, jerr.line, jerr.column, jerr.text);
        return CTL_EXIT_USAGE;
    }
    rc = config_from_json(doc, &cfg, err, sizeof err);
    json_decref(doc);
    if (rc < 0) {
        ctl_error(ctl, "%s: %s", name, err[0] ? err : strerror(-rc));
        return CTL_EXIT_USAGE;
    }
    if ((rc = ctl_store_open(ctl, &st)) != 0) {
        config_free(cfg);
        return rc;
    }
    rc = store_replace_config(st, cfg, err, sizeof err);
    if (rc < 0) {
        ctl_error(ctl, "%s: %s", name, err[0] ? err : strerror(-rc));
        rc = rc == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    } else {
        size_t nwh = 0;
        for (size_t i = 0; i < cfg->nprojects; i++)
            nwh += cfg->projects[i].nwebhooks;
        printf("imported %zu projects, %zu webhooks\n", cfg->nprojects, nwh);
        rc = CTL_EXIT_OK;
    }
    config_free(cfg);
    store_close(st);
    return rc;
}

/* ctl_config_load: open the store and load the configuration (exit status on failure). */
static int ctl_config_load(ctl_t *ctl, store_t **st, config_t **cfg)
{
    char err[512] = "";
    int rc = ctl_store_open(ctl, st);
    if (rc != 0) return rc;
    rc = store_load_config(*st, cfg, err, sizeof err);
    if (rc < 0) {
        ctl_error(ctl, "cannot load configuration: %s", err[0] ? err : strerror(-rc));
        store_close(*st);
        *st = NULL;
        return CTL_EXIT_FAIL;
    }
    return 0;
}

/* ctl_config_export: the import format on stdout, secrets masked unless asked. */
int ctl_config_export(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"with-secrets", no_argument, NULL, 's'}, {0, 0, 0, 0}};
    int with_secrets = 0, c, rc;
    store_t *st;
    config_t *cfg;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 's')
            with_secrets = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if ((rc = ctl_config_load(ctl, &st, &cfg)) != 0) return rc;
    json_t *doc = config_to_json(cfg, with_secrets);
    rc = CTL_EXIT_OK;
    if (doc == NULL || json_dumpf(doc, stdout, JSON_INDENT(2)) < 0) {
        ctl_error(ctl, "cannot render the configuration");
        rc = CTL_EXIT_FAIL;
    } else {
        putchar('\n');
    }
    json_decref(doc);
    config_free(cfg);
    store_close(st);
    return rc;
}

/* ctl_config_store_status: exit status for a failed single-webhook change. */
static int ctl_config_store_status(ctl_t *ctl, int rc, const char *id, const char *err)
{
    if (rc == -ENOENT) {
        ctl_error(ctl, "no webhook %s", id);
        return CTL_EXIT_FAIL;
    }
    if (rc == -EEXIST) {
        ctl_error(ctl, "webhook %s already exists", id);
        return CTL_EXIT_USAGE;
    }
    ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
    return rc == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
}

enum {
    WH_PROJECT = 'p',
    WH_ID = 'i',
    WH_URL = 'u',
    WH_EVENT = 'e',
    WH_NAME = 'n',
    WH_AUTH = 'a',
    WH_USER = 'U',
    WH_PASS = 'P',
    WH_KEY = 'k',
    WH_TOKEN = 't',
    WH_SECRET = 's',
    WH_DISABLED = 'd',
    WH_JSON = 'j',
};

/* ctl_config_webhook_add: build the import-format object from flags (or --json), validate it
 * with config.c, then add it. */
static int ctl_config_webhook_add(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"project", required_argument, NULL, WH_PROJECT},
                                         {"id", required_argument, NULL, WH_ID},
                                         {"url", required_argument, NULL, WH_URL},
                                         {"event", required_argument, NULL, WH_EVENT},
                                         {"name", required_argument, NULL, WH_NAME},
                                         {"auth", required_argument, NULL, WH_AUTH},
                                         {"username", required_argument, NULL, WH_USER},
                                         {"password", required_argument, NULL, WH_PASS},
                                         {"key", required_argument, NULL, WH_KEY},
                                         {"token", required_argument, NULL, WH_TOKEN},
                                         {"secret", required_argument, NULL, WH_SECRET},
                                         {"disabled", no_argument, NULL, WH_DISABLED},
                                         {"json", required_argument, NULL, WH_JSON},
                                         {0, 0, 0, 0}};
    const char *project = NULL, *id = NULL, *url = NULL, *name = NULL, *auth = NULL;
    const char *user = NULL, *pass = NULL, *key = NULL, *token = NULL, *secret = NULL;
    const char *json = NULL;
    int disabled = 0, c, rc, flags = 0;
    json_t *events = json_array(), *obj = NULL;
    char err[512] = "";
    webhook_t wh;
    store_t *st = NULL;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        switch (c) {
        case WH_PROJECT:
            project = optarg;
            break;
        case WH_ID:
            id = optarg;
            break;
        case WH_URL:
            url = optarg;
            break;
        case WH_EVENT:
            json_array_append_new(events, json_string(optarg));
            break;
        case WH_NAME:
            name = optarg;
            break;
        case WH_AUTH:
            auth = optarg;
            break;
        case WH_USER:
            user = optarg;
            break;
        case WH_PASS:
            pass = optarg;
            break;
        case WH_KEY:
            key = optarg;
            break;
        case WH_TOKEN:
            token = optarg;
            break;
        case WH_SECRET:
            secret = optarg;
            break;
        case WH_DISABLED:
            disabled = 1;
            break;
        case WH_JSON:
            json = optarg;
            break;
        default:
            json_decref(events);
            return CTL_EXIT_USAGE;
        }
        if (c != WH_PROJECT && c != WH_JSON) flags = 1;
    }
    if (optind != argc) {
        json_decref(events);
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    }
    if (json) {
        json_error_t jerr;
        if (flags) {
            json_decref(events);
            return ctl_usage_error(ctl, "--json takes the whole webhook; only --project goes "
                                        "with it");
        }
        json_decref(events);
        obj = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL || !json_is_object(obj)) {
            json_decref(obj);
            ctl_error(ctl, "--json: %s", obj ? "not an object" : jerr.text);
            return CTL_EXIT_USAGE;
        }
        /* The object may name its project itself; the import format keeps it outside. */
        json_t *pj = json_object_get(obj, "project_id");
        if (pj && json_is_string(pj) && project == NULL) project = json_string_value(pj);
        if (project) project = strdup(project);
        json_object_del(obj, "project_id");
    } else {
        if (id == NULL || url == NULL || json_array_size(events) == 0) {
            json_decref(events);
            return ctl_usage_error(ctl, "--id, --url and at least one --event are required");
        }
        if (auth == NULL)
            auth = user || pass ? "basic" : key ? "api_key" : token ? "bearer" : "none";
        json_t *a = json_pack("{s:s}", "type", auth);
        if (user) json_object_set_new(a, "username", json_string(user));
        if (pass) json_object_set_new(a, "password", json_string(pass));
        if (key) json_object_set_new(a, "key", json_string(key));
        if (token) json_object_set_new(a, "token", json_string(token));
        obj = json_pack("{s:s, s:s, s:b, s:o, s:o}", "id", id, "url", url, "enabled", !disabled,
                        "events", events, "auth", a);
        if (obj == NULL) {
            ctl_error(ctl, "values must be UTF-8 text");
            return CTL_EXIT_USAGE;
        }
        if (name) json_object_set_new(obj, "name", json_string(name));
        if (secret) json_object_set_new(obj, "secret", json_string(secret));
        if (project) project = strdup(project);
    }
    if (project == NULL) {
        json_decref(obj);
        return ctl_usage_error(ctl, "--project is required");
    }
    memset(&wh, 0, sizeof wh);
    rc = config_webhook_from_json(obj, project, &wh, err, sizeof err);
    json_decref(obj);
    if (rc < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
        free((char *)project);
        return CTL_EXIT_USAGE;
    }
    if ((rc = ctl_store_open(ctl, &st)) == 0) {
        int r = store_webhook_add(st, &wh, err, sizeof err);
        if (r == -EINVAL && err[0] == '\0') snprintf(err, sizeof err, "no project %s", project);
        if (r < 0) {
            rc = ctl_config_store_status(ctl, r, wh.id, err);
        } else {
            printf("webhook %s added to project %s\n", wh.id, project);
            rc = CTL_EXIT_OK;
        }
        store_close(st);
    }
    config_webhook_clear(&wh);
    free((char *)project);
    return rc;
}

/* ctl_config_webhook_change: rm, enable, disable of one id. */
static int ctl_config_webhook_change(ctl_t *ctl, int argc, char **argv, const char *verb)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    char err[512] = "";
    store_t *st;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind != 1) return ctl_usage_error(ctl, "expected one webhook ID");
    const char *id = argv[optind];
    if ((rc = ctl_store_open(ctl, &st)) != 0) return rc;
    if (strcmp(verb, "rm") == 0)
        rc = store_webhook_remove(st, id, err, sizeof err);
    else
        rc = store_webhook_set_enabled(st, id, strcmp(verb, "enable") == 0, err, sizeof err);
    store_close(st);
    if (rc < 0) return ctl_config_store_status(ctl, rc, id, err);
    printf("webhook %s %s\n", id,
           strcmp(verb, "rm") == 0       ? "removed"
           : strcmp(verb, "enable") == 0 ? "enabled"
                                         : "disabled");
    return CTL_EXIT_OK;
}

/* ctl_config_events_text: "opportunity.won,opportunity.lost" into buf. */
static const char *ctl_config_events_text(unsigned events, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned bit = 1; bit <= EVT_LOST; bit <<= 1) {
        const char *name = (events & bit) ? config_event_type_name(bit) : NULL;
        if (name == NULL) continue;
        int w = snprintf(buf + off, n - off, "%s%s", off ? "," : "", name);
        if (w < 0 || (size_t)w >= n - off) break;
        off += (size_t)w;
    }
    return buf;
}

/* ctl_config_webhook_list: a table, or one JSON object per line (secrets masked). */
static int ctl_config_webhook_list(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
    int as_json = 0, c, rc;
    store_t *st;
    config_t *cfg;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'j')
            as_json = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if ((rc = ctl_config_load(ctl, &st, &cfg)) != 0) return rc;
    int wid = 2, wproj = 7, wev = 6, wurl = 3;
    char ev[128];
    for (size_t i = 0; i < cfg->nprojects; i++) {
        const project_t *p = &cfg->projects[i];
        for (size_t k = 0; k < p->nwebhooks; k++) {
            const webhook_t *wh = &p->webhooks[k];
            int l = (int)strlen(ctl_config_events_text(wh->events, ev, sizeof ev));
            wev = l > wev ? l : wev;
            wid = (int)strlen(wh->id) > wid ? (int)strlen(wh->id) : wid;
            wproj = (int)strlen(p->id) > wproj ? (int)strlen(p->id) : wproj;
            wurl = (int)strlen(wh->url) > wurl ? (int)strlen(wh->url) : wurl;
        }
    }
    if (!as_json)
        printf("%-*s  %-*s  %-7s  %-*s  %-*s  %s\n", wid, "ID", wproj, "PROJECT", "ENABLED", wev,
               "EVENTS", wurl, "URL", "NAME");
    for (size_t i = 0; i < cfg->nprojects; i++) {
        const project_t *p = &cfg->projects[i];
        for (size_t k = 0; k < p->nwebhooks; k++) {
            const webhook_t *wh = &p->webhooks[k];
            if (as_json) {
                json_t *o = config_webhook_to_json(wh, 0);
                json_object_set_new(o, "project_id", json_string(p->id));
                json_dumpf(o, stdout, JSON_COMPACT);
                putchar('\n');
                json_decref(o);
            } else {
                printf("%-*s  %-*s  %-7s  %-*s  %-*s  %s\n", wid, wh->id, wproj, p->id,
                       wh->enabled ? "yes" : "no", wev,
                       ctl_config_events_text(wh->events, ev, sizeof ev), wurl, wh->url,
                       wh->name && wh->name[0] ? wh->name : "-");
            }
        }
    }
    config_free(cfg);
    store_close(st);
    return CTL_EXIT_OK;
}

/* ctl_config_webhook: dispatch webhook add|rm|enable|disable|list. */
int ctl_config_webhook(ctl_t *ctl, int argc, char **argv)
{
    static char cmd[64];
    if (argc < 2) return ctl_usage_error(ctl, "expected add, rm, enable, disable or list");
    const char *verb = argv[1];
    snprintf(cmd, sizeof cmd, "webhook %s", verb);
    if (strcmp(verb, "add") == 0) {
        ctl->cmd = cmd;
        return ctl_config_webhook_add(ctl, argc - 1, argv + 1);
    }
    if (strcmp(verb, "rm") == 0 || strcmp(verb, "remove") == 0 || strcmp(verb, "enable") == 0 ||
        strcmp(verb, "disable") == 0) {
        if (strcmp(verb, "remove") == 0) verb = "rm";
        ctl->cmd = cmd;
        return ctl_config_webhook_change(ctl, argc - 1, argv + 1, verb);
    }
    if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0) {
        ctl->cmd = cmd;
        return ctl_config_webhook_list(ctl, argc - 1, argv + 1);
    }
    return ctl_usage_error(ctl, "unknown action '%s' (add, rm, enable, disable, list)", verb);
}
