/* ctl_config.c - hookctl import, export and webhook rm|enable|disable|list (add and update:
 * ctl_webhook.c): the
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

int ctl_config_store_status(const ctl_t *ctl, int rc, const char *id, const char *err)
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
    if (argc < 2) return ctl_usage_error(ctl, "expected add, update, rm, enable, disable or list");
    const char *verb = argv[1];
    snprintf(cmd, sizeof cmd, "webhook %s", verb);
    if (strcmp(verb, "add") == 0) {
        ctl->cmd = cmd;
        return ctl_webhook_add(ctl, argc - 1, argv + 1);
    }
    if (strcmp(verb, "update") == 0) {
        ctl->cmd = cmd;
        return ctl_webhook_update(ctl, argc - 1, argv + 1);
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
    return ctl_usage_error(ctl, "unknown action '%s' (add, update, rm, enable, disable, list)",
                           verb);
}
