/* ctl_webhook.c - hookctl webhook add and webhook update: one webhook from flags or --json, with
 * every credential also readable from a file or standard input (never only on the command line,
 * where ps shows it to every local user). */
#include "ctl.h"

#include "domain/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A credential read from a file holds at most this much. */
#define WH_FILE_MAX 65536

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
    WH_ENABLED = 'E',
    WH_JSON = 'j',
    WH_PASS_FILE = 256,
    WH_KEY_FILE,
    WH_TOKEN_FILE,
    WH_SECRET_FILE,
};

static const struct option wh_opts[] = {{"project", required_argument, NULL, WH_PROJECT},
                                        {"id", required_argument, NULL, WH_ID},
                                        {"url", required_argument, NULL, WH_URL},
                                        {"event", required_argument, NULL, WH_EVENT},
                                        {"name", required_argument, NULL, WH_NAME},
                                        {"auth", required_argument, NULL, WH_AUTH},
                                        {"username", required_argument, NULL, WH_USER},
                                        {"password", required_argument, NULL, WH_PASS},
                                        {"password-file", required_argument, NULL, WH_PASS_FILE},
                                        {"key", required_argument, NULL, WH_KEY},
                                        {"key-file", required_argument, NULL, WH_KEY_FILE},
                                        {"token", required_argument, NULL, WH_TOKEN},
                                        {"token-file", required_argument, NULL, WH_TOKEN_FILE},
                                        {"secret", required_argument, NULL, WH_SECRET},
                                        {"secret-file", required_argument, NULL, WH_SECRET_FILE},
                                        {"disabled", no_argument, NULL, WH_DISABLED},
                                        {"enabled", no_argument, NULL, WH_ENABLED},
                                        {"json", required_argument, NULL, WH_JSON},
                                        {0, 0, 0, 0}};

/* What the flags said; NULL / -1 where a flag was not given. */
typedef struct wh_args {
    const char *project, *id, *url, *name, *auth, *user;
    char *pass, *key, *token, *secret, *json; /* owned: they may come from files */
    json_t *events;                           /* NULL unless an --event was given */
    int enabled;                              /* -1: not given */
    int fields;                               /* a flag other than --project and --json */
    int stdin_used;
} wh_args_t;

static void wh_args_free(wh_args_t *a)
{
    free(a->pass);
    free(a->key);
    free(a->token);
    free(a->secret);
    free(a->json);
    json_decref(a->events);
}

/* wh_read_file reads a credential (or --json text) from path, "-" for standard input, without
 * its final newline. Returns the text, or NULL after printing why. */
static char *wh_read_file(ctl_t *ctl, wh_args_t *a, const char *flag, const char *path)
{
    if (strcmp(path, "-") == 0 && a->stdin_used++) {
        ctl_usage_error(ctl, "%s: standard input is already read by another flag", flag);
        return NULL;
    }
    const char *name;
    FILE *f = ctl_input_open(ctl, path, &name);
    if (!f) return NULL;
    char *buf = malloc(WH_FILE_MAX + 1);
    errno = 0;
    size_t n = buf ? fread(buf, 1, WH_FILE_MAX + 1, f) : 0;
    int bad = !buf ? ENOMEM : ferror(f) ? (errno ? errno : EIO) : 0;
    ctl_input_close(f);
    if (bad || n > WH_FILE_MAX) {
        ctl_error(ctl, "%s %s: %s", flag, name, bad ? strerror(bad) : "longer than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (n && buf[n - 1] == '\n') buf[--n] = 0;
    if (n && buf[n - 1] == '\r') buf[--n] = 0;
    if (strlen(buf) != n) {
        ctl_error(ctl, "%s %s: holds a NUL byte", flag, name);
        free(buf);
        return NULL;
    }
    return buf;
}

/* wh_set takes a value given on the command line or read from a file into *dst. */
static int wh_set(ctl_t *ctl, wh_args_t *a, char **dst, const char *flag, const char *value,
                  int from_file)
{
    free(*dst);
    *dst = from_file ? wh_read_file(ctl, a, flag, value) : strdup(value);
    return *dst ? 0 : -1;
}

/* wh_parse reads the flags. Returns 0, or an exit status after printing why. */
static int wh_parse(ctl_t *ctl, int argc, char **argv, wh_args_t *a)
{
    int c;
    memset(a, 0, sizeof *a);
    a->enabled = -1;
    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, wh_opts, first)) != -1; first = 0) {
        int rc = 0;
        switch (c) {
        case WH_PROJECT:
            a->project = optarg;
            break;
        case WH_ID:
            a->id = optarg;
            break;
        case WH_URL:
            a->url = optarg;
            break;
        case WH_NAME:
            a->name = optarg;
            break;
        case WH_AUTH:
            a->auth = optarg;
            break;
        case WH_USER:
            a->user = optarg;
            break;
        case WH_EVENT:
            if (!a->events) a->events = json_array();
            json_array_append_new(a->events, json_string(optarg));
            break;
        case WH_PASS:
            rc = wh_set(ctl, a, &a->pass, "--password", optarg, 0);
            break;
        case WH_PASS_FILE:
            rc = wh_set(ctl, a, &a->pass, "--password-file", optarg, 1);
            break;
        case WH_KEY:
            rc = wh_set(ctl, a, &a->key, "--key", optarg, 0);
            break;
        case WH_KEY_FILE:
            rc = wh_set(ctl, a, &a->key, "--key-file", optarg, 1);
            break;
        case WH_TOKEN:
            rc = wh_set(ctl, a, &a->token, "--token", optarg, 0);
            break;
        case WH_TOKEN_FILE:
            rc = wh_set(ctl, a, &a->token, "--token-file", optarg, 1);
            break;
        case WH_SECRET:
            rc = wh_set(ctl, a, &a->secret, "--secret", optarg, 0);
            break;
        case WH_SECRET_FILE:
            rc = wh_set(ctl, a, &a->secret, "--secret-file", optarg, 1);
            break;
        case WH_DISABLED:
            a->enabled = 0;
            break;
        case WH_ENABLED:
            a->enabled = 1;
            break;
        case WH_JSON: /* the object itself, @FILE, or - for standard input */
            rc = optarg[0] == '@' || strcmp(optarg, "-") == 0
                     ? wh_set(ctl, a, &a->json, "--json", optarg[0] == '@' ? optarg + 1 : "-", 1)
                     : wh_set(ctl, a, &a->json, "--json", optarg, 0);
            break;
        default:
            return CTL_EXIT_USAGE;
        }
        if (rc < 0) return CTL_EXIT_USAGE;
        if (c != WH_PROJECT && c != WH_JSON) a->fields = 1;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* wh_auth_from_flags builds the auth object the flags ask for on top of base (the stored one
 * for update, NULL for add): NULL when no auth flag was given. */
static json_t *wh_auth_from_flags(const wh_args_t *a, const json_t *base)
{
    if (!a->auth && !a->user && !a->pass && !a->key && !a->token) return NULL;
    const char *stored = base ? json_string_value(json_object_get(base, "type")) : NULL;
    const char *type = a->auth;
    if (!type)
        type = a->user || a->pass ? "basic" : a->key ? "api_key" : a->token ? "bearer" : "none";
    json_t *o = stored && strcmp(stored, type) == 0 ? json_deep_copy(base) : json_object();
    json_object_set_new(o, "type", json_string(type));
    if (a->user) json_object_set_new(o, "username", json_string(a->user));
    if (a->pass) json_object_set_new(o, "password", json_string(a->pass));
    if (a->key) json_object_set_new(o, "key", json_string(a->key));
    if (a->token) json_object_set_new(o, "token", json_string(a->token));
    return o;
}

/* wh_apply_flags sets on obj every field a flag gave. */
static void wh_apply_flags(const wh_args_t *a, json_t *obj)
{
    if (a->url) json_object_set_new(obj, "url", json_string(a->url));
    if (a->name) json_object_set_new(obj, "name", json_string(a->name));
    if (a->events) json_object_set(obj, "events", a->events);
    if (a->enabled >= 0) json_object_set_new(obj, "enabled", json_boolean(a->enabled));
    if (a->secret) json_object_set_new(obj, "secret", json_string(a->secret));
    json_t *auth = wh_auth_from_flags(a, json_object_get(obj, "auth"));
    if (auth) json_object_set_new(obj, "auth", auth);
}

/* wh_parse_json parses --json's text as an object. NULL after printing why. */
static json_t *wh_parse_json(ctl_t *ctl, const char *text)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL || !json_is_object(obj)) {
        ctl_error(ctl, "--json: %s", obj ? "not an object" : jerr.text);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* wh_build validates obj (consumed) as a webhook of project into *wh. */
static int wh_build(ctl_t *ctl, json_t *obj, const char *project, webhook_t *wh)
{
    char err[512] = "";
    memset(wh, 0, sizeof *wh);
    json_object_del(obj, "project_id");
    int rc = config_webhook_from_json(obj, project, wh, err, sizeof err);
    json_decref(obj);
    if (rc < 0) {
        ctl_error(ctl, "%s", err[0] ? err : strerror(-rc));
        config_webhook_clear(wh);
        return CTL_EXIT_USAGE;
    }
    return 0;
}

int ctl_webhook_add(ctl_t *ctl, int argc, char **argv)
{
    wh_args_t a;
    json_t *obj = NULL;
    webhook_t wh;
    store_t *st;
    char err[512] = "";
    int rc = wh_parse(ctl, argc, argv, &a);
    if (rc) goto out;
    if (a.json) {
        if (a.fields) {
            rc =
                ctl_usage_error(ctl, "--json takes the whole webhook; only --project goes with it");
            goto out;
        }
        if (!(obj = wh_parse_json(ctl, a.json))) {
            rc = CTL_EXIT_USAGE;
            goto out;
        }
        /* The object may name its project itself; the import format keeps it outside. */
        const char *pj = json_string_value(json_object_get(obj, "project_id"));
        if (pj && !a.project) a.project = pj;
    } else {
        if (!a.id || !a.url || !a.events) {
            rc = ctl_usage_error(ctl, "--id, --url and at least one --event are required");
            goto out;
        }
        obj = json_pack("{s:s, s:b, s:o}", "id", a.id, "enabled", a.enabled != 0, "auth",
                        json_pack("{s:s}", "type", "none"));
        if (!obj) {
            rc = ctl_usage_error(ctl, "values must be UTF-8 text");
            goto out;
        }
        wh_apply_flags(&a, obj);
    }
    if (!a.project) {
        json_decref(obj);
        rc = ctl_usage_error(ctl, "--project is required");
        goto out;
    }
    char *project = strdup(a.project); /* a.project may point into obj */
    rc = project ? wh_build(ctl, obj, project, &wh) : CTL_EXIT_FAIL;
    if (rc == 0 && (rc = ctl_store_open(ctl, &st)) == 0) {
        int r = store_webhook_add(st, &wh, err, sizeof err);
        if (r < 0) {
            rc = ctl_config_store_status(ctl, r, wh.id, err);
        } else {
            printf("webhook %s added to project %s\n", wh.id, project);
        }
        store_close(st);
    }
    if (project) config_webhook_clear(&wh);
    free(project);
out:
    wh_args_free(&a);
    return rc;
}

int ctl_webhook_update(ctl_t *ctl, int argc, char **argv)
{
    wh_args_t a;
    store_t *st = NULL;
    config_t *cfg = NULL;
    webhook_t wh;
    char err[512] = "";
    int rc = wh_parse(ctl, argc - 1, argv + 1, &a); /* argv[1]: the id */
    if (rc) goto out;
    if (argc < 2 || argv[1][0] == '-') {
        rc = ctl_usage_error(ctl, "expected the webhook ID first");
        goto out;
    }
    const char *id = argv[1];
    if (a.id || a.project) {
        rc = ctl_usage_error(ctl, "a webhook keeps its id and project (remove and add instead)");
        goto out;
    }
    if (!a.fields && !a.json) {
        rc = ctl_usage_error(ctl, "nothing to change");
        goto out;
    }
    if ((rc = ctl_store_open(ctl, &st)) != 0) goto out;
    if (store_load_config(st, &cfg, err, sizeof err) < 0) {
        ctl_error(ctl, "cannot load configuration: %s", err);
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    const project_t *p = NULL;
    const webhook_t *old = config_find_webhook(cfg, id, &p);
    if (!old) {
        ctl_error(ctl, "no webhook %s", id);
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    /* the stored one, with --json's keys and then the flags' fields in place of its own */
    json_t *patch = a.json ? wh_parse_json(ctl, a.json) : json_object(), *obj;
    if (!patch) {
        rc = CTL_EXIT_USAGE;
        goto out;
    }
    obj = config_webhook_merge(old, patch, err, sizeof err); /* "***": the store keeps */
    json_decref(patch);
    if (!obj) {
        rc = ctl_usage_error(ctl, "--json: %s", err);
        goto out;
    }
    wh_apply_flags(&a, obj);
    if ((rc = wh_build(ctl, obj, p->id, &wh)) != 0) goto out;
    int r = store_webhook_update(st, &wh, err, sizeof err);
    if (r < 0)
        rc = ctl_config_store_status(ctl, r, id, err);
    else
        printf("webhook %s updated\n", id);
    config_webhook_clear(&wh);
out:
    config_free(cfg);
    if (st) store_close(st);
    wh_args_free(&a);
    return rc;
}
