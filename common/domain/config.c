/* config.c - the configuration model: validates the import document into config_t (nothing built
 * on error, errors name the JSON path), renders it back for export, and looks things up by id. */
#include "domain/config.h"

#include "util/timeutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_PATH_MAX 160
#define CFG_SECRET_PREFIX "whsec_"
#define CFG_SECRET_MAX_BYTES 64

static const struct {
    unsigned bit;
    const char *name;
} cfg_event_types[] = {
    {EVT_CREATED, "opportunity.created"},
    {EVT_TRANSITIONED, "opportunity.transitioned"},
    {EVT_WON, "opportunity.won"},
    {EVT_LOST, "opportunity.lost"},
};
#define CFG_NEVENT_TYPES (sizeof cfg_event_types / sizeof cfg_event_types[0])

static const char *const cfg_auth_names[] = {"none", "basic", "api_key", "bearer"};

unsigned config_event_type_parse(const char *s)
{
    if (!s) return 0;
    for (size_t i = 0; i < CFG_NEVENT_TYPES; i++)
        if (strcmp(s, cfg_event_types[i].name) == 0) return cfg_event_types[i].bit;
    return 0;
}

const char *config_event_type_name(unsigned type)
{
    for (size_t i = 0; i < CFG_NEVENT_TYPES; i++)
        if (type == cfg_event_types[i].bit) return cfg_event_types[i].name;
    return NULL;
}

/* cfg_fail: write "path: message" into err and return -EINVAL. */
__attribute__((format(printf, 4, 5))) static int cfg_fail(char *err, size_t errlen,
                                                          const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen) {
        if (path && *path)
            snprintf(err, errlen, "%s: %s", path, msg);
        else
            snprintf(err, errlen, "%s", msg);
    }
    return -EINVAL;
}

/* cfg_nomem: report an allocation failure. */
static int cfg_nomem(char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* cfg_append: append s to out (capacity n, current length *len), cutting at the end. */
static void cfg_append(char *out, size_t n, size_t *len, const char *s)
{
    while (*s && *len + 1 < n)
        out[(*len)++] = *s++;
    out[*len] = '\0';
}

/* cfg_path: "base.key" (or "key" when base is empty); a cut path still names the spot. */
static void cfg_path(char *out, size_t n, const char *base, const char *key)
{
    size_t len = 0;
    out[0] = '\0';
    if (base && *base) {
        cfg_append(out, n, &len, base);
        cfg_append(out, n, &len, ".");
    }
    cfg_append(out, n, &len, key);
}

/* cfg_path_index: "base.key[i]". */
static void cfg_path_index(char *out, size_t n, const char *base, const char *key, size_t i)
{
    char idx[32];
    size_t len;
    snprintf(idx, sizeof idx, "[%zu]", i);
    cfg_path(out, n, base, key);
    len = strlen(out);
    cfg_append(out, n, &len, idx);
}

/* cfg_dup: strdup that reports failure (NULL stays NULL). */
static int cfg_dup(char **dst, const char *s, char *err, size_t errlen)
{
    *dst = NULL;
    if (!s) return 0;
    if (!(*dst = strdup(s))) return cfg_nomem(err, errlen);
    return 0;
}

/* cfg_check_object: the value at path must be an object holding only the allowed keys. */
static int cfg_check_object(const json_t *obj, const char *path, const char *const *allowed,
                            char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    if (!json_is_object(obj)) return cfg_fail(err, errlen, path, "must be an object");
    json_object_foreach((json_t *)obj, key, val)
    {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0) break;
        if (!allowed[i]) {
            char p[CFG_PATH_MAX];
            cfg_path(p, sizeof p, path, key);
            return cfg_fail(err, errlen, p, "unknown key");
        }
    }
    return 0;
}

/* cfg_string: a string member; absent or null gives NULL unless required. */
static int cfg_string(const json_t *obj, const char *key, const char *path, int required,
                      int nonempty, const char **out, char *err, size_t errlen)
{
    char p[CFG_PATH_MAX];
    json_t *v = json_object_get(obj, key);
    cfg_path(p, sizeof p, path, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) return cfg_fail(err, errlen, p, "missing");
        return 0;
    }
    if (!json_is_string(v)) return cfg_fail(err, errlen, p, "must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cfg_fail(err, errlen, p, "must not contain NUL characters");
    if (nonempty && json_string_length(v) == 0)
        return cfg_fail(err, errlen, p, "must not be empty");
    *out = json_string_value(v);
    return 0;
}

/* cfg_array: an optional array member; absent or null gives NULL. */
static int cfg_array(const json_t *obj, const char *key, const char *path, json_t **out, char *err,
                     size_t errlen)
{
    char p[CFG_PATH_MAX];
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) {
        cfg_path(p, sizeof p, path, key);
        return cfg_fail(err, errlen, p, "must be an array");
    }
    *out = v;
    return 0;
}

/* cfg_string_list: an optional array of distinct non-empty strings, copied. */
static int cfg_string_list(const json_t *obj, const char *key, const char *path, char ***out,
                           size_t *n, char *err, size_t errlen)
{
    json_t *arr, *v;
    size_t i;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = cfg_array(obj, key, path, &arr, err, errlen)) < 0 || !arr) return rc;
    if (json_array_size(arr) == 0) return 0;
    if (!(*out = calloc(json_array_size(arr), sizeof **out))) return cfg_nomem(err, errlen);
    json_array_foreach(arr, i, v)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, path, key, i);
        if (!json_is_string(v)) return cfg_fail(err, errlen, p, "must be a string");
        if (json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
            return cfg_fail(err, errlen, p, "must be a non-empty string without NUL");
        for (size_t j = 0; j < *n; j++)
            if (strcmp((*out)[j], json_string_value(v)) == 0)
                return cfg_fail(err, errlen, p, "duplicate \"%s\"", (*out)[j]);
        if ((rc = cfg_dup(&(*out)[*n], json_string_value(v), err, errlen)) < 0) return rc;
        (*n)++;
    }
    return 0;
}

/* cfg_strv_free: free an array of n strings. */
static void cfg_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* cfg_base64_len: decoded length of padded standard base64, or -1 when malformed. */
static long cfg_base64_len(const char *s)
{
    size_t n = strlen(s), pad = 0;
    if (n == 0 || n % 4 != 0) return -1;
    if (s[n - 1] == '=') pad++;
    if (s[n - 2] == '=') pad++;
    for (size_t i = 0; i < n - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return -1;
    }
    return (long)(n / 4 * 3 - pad);
}

/* cfg_check_secret: "whsec_" + padded base64 of 1..64 bytes. */
static int cfg_check_secret(const char *secret, const char *path, char *err, size_t errlen)
{
    size_t plen = strlen(CFG_SECRET_PREFIX);
    long len;
    if (strcmp(secret, CONFIG_MASK) == 0) return 0; /* the stored one: config_unmask */
    if (strncmp(secret, CFG_SECRET_PREFIX, plen) != 0)
        return cfg_fail(err, errlen, path, "must start with \"" CFG_SECRET_PREFIX "\"");
    len = cfg_base64_len(secret + plen);
    if (len < 1 || len > CFG_SECRET_MAX_BYTES)
        return cfg_fail(err, errlen, path,
                        "must be \"" CFG_SECRET_PREFIX "\" followed by base64 of 1..%d bytes",
                        CFG_SECRET_MAX_BYTES);
    return 0;
}

int config_validate_url(const char *url, char *err, size_t errlen)
{
    CURLU *u;
    CURLUcode uc;
    char *scheme = NULL, *host = NULL, *user = NULL;
    int rc = 0;
    if (!url || !*url) return cfg_fail(err, errlen, NULL, "not an absolute http(s) URL (empty)");
    if (!(u = curl_url())) return cfg_nomem(err, errlen);
    if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK) {
        rc = cfg_fail(err, errlen, NULL, "not an absolute http(s) URL (%s)", curl_url_strerror(uc));
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        rc = cfg_fail(err, errlen, NULL, "not an absolute http(s) URL (scheme %s)",
                      scheme ? scheme : "missing");
    } else if (strncmp(url + strlen(scheme), "://", 3) != 0) {
        /* libcurl repairs "http:/x" to "http://x/"; a typo like that should be fixed at the source.
         */
        rc =
            cfg_fail(err, errlen, NULL, "not an absolute http(s) URL (expected \"%s://\")", scheme);
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        rc = cfg_fail(err, errlen, NULL, "not an absolute http(s) URL (no host)");
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        /* Credentials in the URL would show in the delivery log; auth has a place for them. */
        rc = cfg_fail(err, errlen, NULL, "must not carry credentials (use \"auth\")");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

/* cfg_auth_clear: free an auth_t's strings. */
static void cfg_auth_clear(auth_t *a)
{
    free(a->username);
    free(a->password);
    free(a->key);
    free(a->token);
    memset(a, 0, sizeof *a);
}

/* cfg_header_safe refuses control characters in a value sent as an HTTP header: a CR or LF in a
 * token or key would inject headers of its own. */
static int cfg_header_safe(const char *v, const char *path, const char *key, char *err,
                           size_t errlen)
{
    char p[CFG_PATH_MAX];
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c < 0x20 || *c == 0x7f) {
            cfg_path(p, sizeof p, path, key);
            return cfg_fail(err, errlen, p, "must not contain control characters");
        }
    return 0;
}

/* cfg_parse_auth: the optional "auth" object of a webhook. */
static int cfg_parse_auth(const json_t *obj, const char *path, auth_t *out, char *err,
                          size_t errlen)
{
    static const char *const k_none[] = {"type", NULL};
    static const char *const k_basic[] = {"type", "username", "password", NULL};
    static const char *const k_api_key[] = {"type", "key", NULL};
    static const char *const k_bearer[] = {"type", "token", NULL};
    static const char *const *const keys[] = {k_none, k_basic, k_api_key, k_bearer};
    const char *type, *a = NULL, *b = NULL;
    char p[CFG_PATH_MAX];
    size_t t;
    int rc;

    memset(out, 0, sizeof *out);
    if (!obj || json_is_null(obj)) return 0;
    if (!json_is_object(obj)) return cfg_fail(err, errlen, path, "must be an object");
    if ((rc = cfg_string(obj, "type", path, 1, 1, &type, err, errlen)) < 0) return rc;
    for (t = 0; t < 4; t++)
        if (strcmp(type, cfg_auth_names[t]) == 0) break;
    if (t == 4) {
        cfg_path(p, sizeof p, path, "type");
        return cfg_fail(err, errlen, p, "unknown auth type \"%s\" (none, basic, api_key, bearer)",
                        type);
    }
    if ((rc = cfg_check_object(obj, path, keys[t], err, errlen)) < 0) return rc;
    out->type = (auth_type_t)t;
    switch (out->type) {
    case AUTH_NONE:
        return 0;
    case AUTH_BASIC:
        if ((rc = cfg_string(obj, "username", path, 1, 1, &a, err, errlen)) < 0 ||
            (rc = cfg_string(obj, "password", path, 1, 1, &b, err, errlen)) < 0)
            return rc;
        if (strchr(a, ':')) {
            cfg_path(p, sizeof p, path, "username");
            return cfg_fail(err, errlen, p, "must not contain ':'");
        }
        if ((rc = cfg_dup(&out->username, a, err, errlen)) < 0 ||
            (rc = cfg_dup(&out->password, b, err, errlen)) < 0)
            break;
        return 0;
    case AUTH_API_KEY:
        if ((rc = cfg_string(obj, "key", path, 1, 1, &a, err, errlen)) < 0 ||
            (rc = cfg_header_safe(a, path, "key", err, errlen)) < 0)
            return rc;
        if ((rc = cfg_dup(&out->key, a, err, errlen)) < 0) break;
        return 0;
    case AUTH_BEARER:
        if ((rc = cfg_string(obj, "token", path, 1, 1, &a, err, errlen)) < 0 ||
            (rc = cfg_header_safe(a, path, "token", err, errlen)) < 0)
            return rc;
        if ((rc = cfg_dup(&out->token, a, err, errlen)) < 0) break;
        return 0;
    }
    cfg_auth_clear(out);
    return rc;
}

/* cfg_parse_events: a non-empty array of distinct known event type names. */
static int cfg_parse_events(const json_t *obj, const char *path, unsigned *out, char *err,
                            size_t errlen)
{
    char p[CFG_PATH_MAX];
    json_t *arr = json_object_get(obj, "events"), *v;
    size_t i;
    *out = 0;
    cfg_path(p, sizeof p, path, "events");
    if (!arr) return cfg_fail(err, errlen, p, "missing");
    if (!json_is_array(arr)) return cfg_fail(err, errlen, p, "must be an array");
    if (json_array_size(arr) == 0)
        return cfg_fail(err, errlen, p, "must list at least one event type");
    json_array_foreach(arr, i, v)
    {
        unsigned bit;
        cfg_path_index(p, sizeof p, path, "events", i);
        if (!json_is_string(v)) return cfg_fail(err, errlen, p, "must be a string");
        if (!(bit = config_event_type_parse(json_string_value(v))))
            return cfg_fail(err, errlen, p, "unknown event type \"%s\"", json_string_value(v));
        if (*out & bit)
            return cfg_fail(err, errlen, p, "duplicate event type \"%s\"", json_string_value(v));
        *out |= bit;
    }
    return 0;
}

/* cfg_secrets_clear: free a webhook's rotation list. */
static void cfg_secrets_clear(webhook_t *wh)
{
    for (size_t i = 0; i < wh->nsecrets; i++) {
        explicit_bzero(wh->secrets[i].secret, strlen(wh->secrets[i].secret));
        free(wh->secrets[i].secret);
    }
    free(wh->secrets);
    wh->secrets = NULL;
    wh->nsecrets = 0;
}

/* cfg_parse_secrets: the optional "secrets" array of {secret, expires_at}; no secret may appear
 * twice, counting the single "secret" (current) as well. Fills out->secrets. */
static int cfg_parse_secrets(const json_t *obj, const char *path, const char *current,
                             webhook_t *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"secret", "expires_at", NULL};
    json_t *arr, *v;
    size_t i;
    int rc;
    if ((rc = cfg_array(obj, "secrets", path, &arr, err, errlen)) < 0 || !arr ||
        json_array_size(arr) == 0)
        return rc;
    if (!(out->secrets = calloc(json_array_size(arr), sizeof *out->secrets)))
        return cfg_nomem(err, errlen);
    json_array_foreach(arr, i, v)
    {
        char p[CFG_PATH_MAX], ps[CFG_PATH_MAX], pe[CFG_PATH_MAX];
        const char *secret, *expires;
        int64_t ms = 0;
        cfg_path_index(p, sizeof p, path, "secrets", i);
        cfg_path(ps, sizeof ps, p, "secret");
        cfg_path(pe, sizeof pe, p, "expires_at");
        if ((rc = cfg_check_object(v, p, keys, err, errlen)) < 0 ||
            (rc = cfg_string(v, "secret", p, 1, 1, &secret, err, errlen)) < 0 ||
            (rc = cfg_string(v, "expires_at", p, 0, 1, &expires, err, errlen)) < 0 ||
            (rc = cfg_check_secret(secret, ps, err, errlen)) < 0)
            goto fail;
        if (expires && time_parse_rfc3339(expires, &ms) < 0) {
            rc = cfg_fail(err, errlen, pe, "must be an RFC 3339 date-time");
            goto fail;
        }
        if (expires && ms == 0) ms = 1; /* 0 means "never"; the epoch itself is long past */
        /* The message names the position only: the secret itself never goes into an error. */
        if (current && strcmp(current, secret) == 0) {
            rc = cfg_fail(err, errlen, ps, "duplicate signing secret (same as \"secret\")");
            goto fail;
        }
        for (size_t j = 0; j < out->nsecrets; j++)
            if (strcmp(out->secrets[j].secret, secret) == 0) {
                rc =
                    cfg_fail(err, errlen, ps, "duplicate signing secret (same as secrets[%zu])", j);
                goto fail;
            }
        if ((rc = cfg_dup(&out->secrets[i].secret, secret, err, errlen)) < 0) goto fail;
        out->secrets[i].expires_at = ms;
        out->nsecrets = i + 1;
    }
    return 0;
fail:
    cfg_secrets_clear(out);
    return rc;
}

/* cfg_parse_webhook: one webhook object at path, for project_id. */
static int cfg_parse_webhook(const json_t *obj, const char *path, const char *project_id,
                             webhook_t *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"id",   "name",   "url",     "enabled", "events",
                                       "auth", "secret", "secrets", NULL};
    const char *id, *name, *url, *secret;
    char p[CFG_PATH_MAX], uerr[200];
    json_t *en;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = cfg_check_object(obj, path, keys, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "id", path, 1, 1, &id, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "name", path, 0, 0, &name, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "url", path, 1, 1, &url, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "secret", path, 0, 0, &secret, err, errlen)) < 0)
        return rc;
    cfg_path(p, sizeof p, path, "url");
    if (config_validate_url(url, uerr, sizeof uerr) < 0)
        return cfg_fail(err, errlen, p, "%s", uerr);
    en = json_object_get(obj, "enabled");
    cfg_path(p, sizeof p, path, "enabled");
    if (en && !json_is_null(en) && !json_is_boolean(en))
        return cfg_fail(err, errlen, p, "must be true or false");
    out->enabled = !en || json_is_null(en) || json_is_true(en);
    if ((rc = cfg_parse_events(obj, path, &out->events, err, errlen)) < 0) return rc;
    if (secret) {
        cfg_path(p, sizeof p, path, "secret");
        if ((rc = cfg_check_secret(secret, p, err, errlen)) < 0) return rc;
    }
    cfg_path(p, sizeof p, path, "auth");
    if ((rc = cfg_parse_auth(json_object_get(obj, "auth"), p, &out->auth, err, errlen)) < 0)
        return rc;
    if ((rc = cfg_parse_secrets(obj, path, secret, out, err, errlen)) < 0 ||
        (rc = cfg_dup(&out->id, id, err, errlen)) < 0 ||
        (rc = cfg_dup(&out->project_id, project_id, err, errlen)) < 0 ||
        (rc = cfg_dup(&out->name, name ? name : "", err, errlen)) < 0 ||
        (rc = cfg_dup(&out->url, url, err, errlen)) < 0 ||
        (rc = cfg_dup(&out->secret, secret, err, errlen)) < 0) {
        config_webhook_clear(out);
        return rc;
    }
    return 0;
}

int config_webhook_from_json(const json_t *obj, const char *project_id, webhook_t *out, char *err,
                             size_t errlen)
{
    if (!project_id || !*project_id) {
        memset(out, 0, sizeof *out);
        return cfg_fail(err, errlen, "project_id", "missing");
    }
    return cfg_parse_webhook(obj, "", project_id, out, err, errlen);
}

void config_webhook_clear(webhook_t *wh)
{
    if (!wh) return;
    free(wh->id);
    free(wh->project_id);
    free(wh->name);
    free(wh->url);
    if (wh->secret) explicit_bzero(wh->secret, strlen(wh->secret));
    free(wh->secret);
    cfg_secrets_clear(wh);
    cfg_auth_clear(&wh->auth);
    memset(wh, 0, sizeof *wh);
}

/* cfg_funnel_clear: free a funnel's contents. */
static void cfg_funnel_clear(funnel_t *f)
{
    for (size_t i = 0; i < f->nstages; i++) {
        free(f->stages[i].id);
        free(f->stages[i].name);
    }
    free(f->stages);
    free(f->id);
    free(f->name);
    free(f->won_stage_id);
    free(f->lost_stage_id);
    memset(f, 0, sizeof *f);
}

/* cfg_parse_stages: the funnel's "stages" array, ids unique within the funnel. */
static int cfg_parse_stages(const json_t *obj, const char *path, funnel_t *f, char *err,
                            size_t errlen)
{
    static const char *const keys[] = {"id", "name", NULL};
    json_t *arr, *v;
    size_t i;
    int rc;
    if ((rc = cfg_array(obj, "stages", path, &arr, err, errlen)) < 0 || !arr ||
        json_array_size(arr) == 0)
        return rc;
    if (!(f->stages = calloc(json_array_size(arr), sizeof *f->stages)))
        return cfg_nomem(err, errlen);
    json_array_foreach(arr, i, v)
    {
        char p[CFG_PATH_MAX], pid[CFG_PATH_MAX];
        const char *id, *name;
        cfg_path_index(p, sizeof p, path, "stages", i);
        if ((rc = cfg_check_object(v, p, keys, err, errlen)) < 0 ||
            (rc = cfg_string(v, "id", p, 1, 1, &id, err, errlen)) < 0 ||
            (rc = cfg_string(v, "name", p, 0, 0, &name, err, errlen)) < 0)
            return rc;
        cfg_path(pid, sizeof pid, p, "id");
        if (config_find_stage(f, id))
            return cfg_fail(err, errlen, pid, "duplicate stage id \"%s\"", id);
        if ((rc = cfg_dup(&f->stages[i].id, id, err, errlen)) < 0 ||
            (rc = cfg_dup(&f->stages[i].name, name ? name : id, err, errlen)) < 0) {
            f->nstages = i + 1;
            return rc;
        }
        f->nstages = i + 1;
    }
    return 0;
}

/* cfg_parse_stage_ref: won_stage_id / lost_stage_id, which must name a stage of the funnel. */
static int cfg_parse_stage_ref(const json_t *obj, const char *key, const char *path, funnel_t *f,
                               char **out, char *err, size_t errlen)
{
    char p[CFG_PATH_MAX];
    const char *id;
    int rc;
    if ((rc = cfg_string(obj, key, path, 0, 1, &id, err, errlen)) < 0 || !id) return rc;
    cfg_path(p, sizeof p, path, key);
    if (!config_find_stage(f, id))
        return cfg_fail(err, errlen, p, "\"%s\" is not a stage of this funnel", id);
    return cfg_dup(out, id, err, errlen);
}

/* cfg_parse_funnel: one funnel object at path. */
static int cfg_parse_funnel(const json_t *obj, const char *path, funnel_t *f, char *err,
                            size_t errlen)
{
    static const char *const keys[] = {"id",           "name",          "stages",
                                       "won_stage_id", "lost_stage_id", NULL};
    const char *id, *name;
    int rc;
    if ((rc = cfg_check_object(obj, path, keys, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "id", path, 1, 1, &id, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "name", path, 0, 0, &name, err, errlen)) < 0 ||
        (rc = cfg_dup(&f->id, id, err, errlen)) < 0 ||
        (rc = cfg_dup(&f->name, name ? name : id, err, errlen)) < 0 ||
        (rc = cfg_parse_stages(obj, path, f, err, errlen)) < 0 ||
        (rc = cfg_parse_stage_ref(obj, "won_stage_id", path, f, &f->won_stage_id, err, errlen)) <
            0 ||
        (rc = cfg_parse_stage_ref(obj, "lost_stage_id", path, f, &f->lost_stage_id, err, errlen)) <
            0)
        return rc;
    if (f->won_stage_id && f->lost_stage_id && strcmp(f->won_stage_id, f->lost_stage_id) == 0) {
        char p[CFG_PATH_MAX];
        cfg_path(p, sizeof p, path, "lost_stage_id");
        return cfg_fail(err, errlen, p, "must differ from won_stage_id");
    }
    return 0;
}

/* cfg_project_clear: free a project's contents. */
static void cfg_project_clear(project_t *p)
{
    free(p->id);
    free(p->name);
    cfg_strv_free(p->opportunity_fields, p->nopportunity_fields);
    cfg_strv_free(p->contact_fields, p->ncontact_fields);
    for (size_t i = 0; i < p->nfunnels; i++)
        cfg_funnel_clear(&p->funnels[i]);
    free(p->funnels);
    for (size_t i = 0; i < p->nwebhooks; i++)
        config_webhook_clear(&p->webhooks[i]);
    free(p->webhooks);
    memset(p, 0, sizeof *p);
}

/* cfg_parse_project: one project at path; webhook ids checked against the whole cfg so far. */
static int cfg_parse_project(const json_t *obj, const char *path, const config_t *cfg,
                             project_t *pr, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "id", "name", "opportunity_fields", "contact_fields", "funnels", "webhooks", NULL};
    const char *id, *name;
    json_t *arr, *v;
    size_t i;
    int rc;
    if ((rc = cfg_check_object(obj, path, keys, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "id", path, 1, 1, &id, err, errlen)) < 0 ||
        (rc = cfg_string(obj, "name", path, 0, 0, &name, err, errlen)) < 0 ||
        (rc = cfg_dup(&pr->id, id, err, errlen)) < 0 ||
        (rc = cfg_dup(&pr->name, name ? name : id, err, errlen)) < 0 ||
        (rc = cfg_string_list(obj, "opportunity_fields", path, &pr->opportunity_fields,
                              &pr->nopportunity_fields, err, errlen)) < 0 ||
        (rc = cfg_string_list(obj, "contact_fields", path, &pr->contact_fields,
                              &pr->ncontact_fields, err, errlen)) < 0)
        return rc;

    if ((rc = cfg_array(obj, "funnels", path, &arr, err, errlen)) < 0) return rc;
    if (arr && json_array_size(arr)) {
        if (!(pr->funnels = calloc(json_array_size(arr), sizeof *pr->funnels)))
            return cfg_nomem(err, errlen);
        json_array_foreach(arr, i, v)
        {
            char p[CFG_PATH_MAX];
            cfg_path_index(p, sizeof p, path, "funnels", i);
            pr->nfunnels = i + 1;
            if ((rc = cfg_parse_funnel(v, p, &pr->funnels[i], err, errlen)) < 0) return rc;
            for (size_t j = 0; j < i; j++)
                if (strcmp(pr->funnels[j].id, pr->funnels[i].id) == 0) {
                    char pid[CFG_PATH_MAX];
                    cfg_path(pid, sizeof pid, p, "id");
                    return cfg_fail(err, errlen, pid, "duplicate funnel id \"%s\"",
                                    pr->funnels[i].id);
                }
        }
    }

    if ((rc = cfg_array(obj, "webhooks", path, &arr, err, errlen)) < 0) return rc;
    if (arr && json_array_size(arr)) {
        if (!(pr->webhooks = calloc(json_array_size(arr), sizeof *pr->webhooks)))
            return cfg_nomem(err, errlen);
        json_array_foreach(arr, i, v)
        {
            char p[CFG_PATH_MAX], pid[CFG_PATH_MAX];
            const char *wid;
            cfg_path_index(p, sizeof p, path, "webhooks", i);
            if ((rc = cfg_parse_webhook(v, p, pr->id, &pr->webhooks[i], err, errlen)) < 0)
                return rc;
            pr->nwebhooks = i + 1;
            wid = pr->webhooks[i].id;
            cfg_path(pid, sizeof pid, p, "id");
            for (size_t j = 0; j < i; j++)
                if (strcmp(pr->webhooks[j].id, wid) == 0)
                    return cfg_fail(err, errlen, pid, "duplicate webhook id \"%s\"", wid);
            if (config_find_webhook(cfg, wid, NULL))
                return cfg_fail(err, errlen, pid, "duplicate webhook id \"%s\"", wid);
        }
    }
    return 0;
}

int config_project_from_json(const json_t *obj, project_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = cfg_parse_project(obj, "", NULL, out, err, errlen);
    if (rc < 0) cfg_project_clear(out);
    return rc;
}

void config_project_clear(project_t *p)
{
    if (p) cfg_project_clear(p);
}

int config_from_json(const json_t *doc, config_t **out, char *err, size_t errlen)
{
    static const char *const keys[] = {"projects", NULL};
    config_t *cfg;
    json_t *arr, *v;
    size_t i;
    int rc;

    *out = NULL;
    if (!json_is_object(doc))
        return cfg_fail(err, errlen, NULL, "the document must be an object {\"projects\": [...]}");
    if ((rc = cfg_check_object(doc, "", keys, err, errlen)) < 0) return rc;
    arr = json_object_get(doc, "projects");
    if (!arr) return cfg_fail(err, errlen, "projects", "missing");
    if (!json_is_array(arr)) return cfg_fail(err, errlen, "projects", "must be an array");
    if (!(cfg = calloc(1, sizeof *cfg))) return cfg_nomem(err, errlen);
    if (json_array_size(arr) &&
        !(cfg->projects = calloc(json_array_size(arr), sizeof *cfg->projects))) {
        free(cfg);
        return cfg_nomem(err, errlen);
    }
    json_array_foreach(arr, i, v)
    {
        char p[CFG_PATH_MAX];
        cfg_path_index(p, sizeof p, "", "projects", i);
        rc = cfg_parse_project(v, p, cfg, &cfg->projects[i], err, errlen);
        cfg->nprojects = i + 1;
        if (rc < 0) goto fail;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->projects[j].id, cfg->projects[i].id) == 0) {
                char pid[CFG_PATH_MAX];
                cfg_path(pid, sizeof pid, p, "id");
                rc = cfg_fail(err, errlen, pid, "duplicate project id \"%s\"", cfg->projects[i].id);
                goto fail;
            }
    }
    *out = cfg;
    return 0;
fail:
    config_free(cfg);
    return rc;
}

/* cfg_secret_json: the value itself, or the mask. */
static json_t *cfg_secret_json(const char *s, int with_secrets)
{
    return json_string(with_secrets ? s : CONFIG_MASK);
}

json_t *config_webhook_to_json(const webhook_t *wh, int with_secrets)
{
    json_t *o = json_object(), *ev = json_array(), *auth;
    if (!o || !ev) {
        json_decref(o);
        json_decref(ev);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(wh->id));
    json_object_set_new(o, "name", json_string(wh->name ? wh->name : ""));
    json_object_set_new(o, "url", json_string(wh->url));
    json_object_set_new(o, "enabled", json_boolean(wh->enabled));
    for (size_t i = 0; i < CFG_NEVENT_TYPES; i++)
        if (wh->events & cfg_event_types[i].bit)
            json_array_append_new(ev, json_string(cfg_event_types[i].name));
    json_object_set_new(o, "events", ev);
    if (wh->auth.type != AUTH_NONE && (auth = json_object())) {
        json_object_set_new(auth, "type", json_string(cfg_auth_names[wh->auth.type]));
        switch (wh->auth.type) {
        case AUTH_BASIC:
            json_object_set_new(auth, "username", json_string(wh->auth.username));
            json_object_set_new(auth, "password", cfg_secret_json(wh->auth.password, with_secrets));
            break;
        case AUTH_API_KEY:
            json_object_set_new(auth, "key", cfg_secret_json(wh->auth.key, with_secrets));
            break;
        case AUTH_BEARER:
            json_object_set_new(auth, "token", cfg_secret_json(wh->auth.token, with_secrets));
            break;
        case AUTH_NONE:
            break;
        }
        json_object_set_new(o, "auth", auth);
    }
    if (wh->secret) json_object_set_new(o, "secret", cfg_secret_json(wh->secret, with_secrets));
    if (wh->nsecrets) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < wh->nsecrets; i++) {
            json_t *e = json_object();
            char at[40];
            if (!e) continue;
            json_object_set_new(e, "secret", cfg_secret_json(wh->secrets[i].secret, with_secrets));
            if (wh->secrets[i].expires_at)
                json_object_set_new(
                    e, "expires_at",
                    json_string(time_format_rfc3339(wh->secrets[i].expires_at, at, sizeof at)));
            json_array_append_new(arr, e);
        }
        if (arr) json_object_set_new(o, "secrets", arr);
    }
    return o;
}

/* cfg_strv_json: a JSON array of n strings. */
static json_t *cfg_strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* cfg_funnel_json: one funnel in the import format. */
static json_t *cfg_funnel_json(const funnel_t *f)
{
    json_t *o = json_object(), *st = json_array();
    if (!o || !st) {
        json_decref(o);
        json_decref(st);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(f->id));
    json_object_set_new(o, "name", json_string(f->name));
    for (size_t i = 0; i < f->nstages; i++)
        json_array_append_new(
            st, json_pack("{s:s, s:s}", "id", f->stages[i].id, "name", f->stages[i].name));
    json_object_set_new(o, "stages", st);
    if (f->won_stage_id) json_object_set_new(o, "won_stage_id", json_string(f->won_stage_id));
    if (f->lost_stage_id) json_object_set_new(o, "lost_stage_id", json_string(f->lost_stage_id));
    return o;
}

json_t *config_project_to_json(const project_t *p)
{
    json_t *o = json_object(), *funnels = json_array();
    if (!o || !funnels) {
        json_decref(o);
        json_decref(funnels);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "opportunity_fields",
                        cfg_strv_json(p->opportunity_fields, p->nopportunity_fields));
    json_object_set_new(o, "contact_fields", cfg_strv_json(p->contact_fields, p->ncontact_fields));
    for (size_t j = 0; j < p->nfunnels; j++)
        json_array_append_new(funnels, cfg_funnel_json(&p->funnels[j]));
    json_object_set_new(o, "funnels", funnels);
    return o;
}

json_t *config_to_json(const config_t *cfg, int with_secrets)
{
    json_t *doc = json_object(), *projects = json_array();
    if (!doc || !projects) {
        json_decref(doc);
        json_decref(projects);
        return NULL;
    }
    json_object_set_new(doc, "projects", projects);
    for (size_t i = 0; cfg && i < cfg->nprojects; i++) {
        const project_t *p = &cfg->projects[i];
        json_t *o = config_project_to_json(p), *hooks = json_array();
        if (!o || !hooks) {
            json_decref(o);
            json_decref(hooks);
            json_decref(doc);
            return NULL;
        }
        for (size_t j = 0; j < p->nwebhooks; j++)
            json_array_append_new(hooks, config_webhook_to_json(&p->webhooks[j], with_secrets));
        json_object_set_new(o, "webhooks", hooks);
        json_array_append_new(projects, o);
    }
    return doc;
}

const project_t *config_find_project(const config_t *cfg, const char *id)
{
    for (size_t i = 0; cfg && id && i < cfg->nprojects; i++)
        if (strcmp(cfg->projects[i].id, id) == 0) return &cfg->projects[i];
    return NULL;
}

const funnel_t *config_find_funnel(const project_t *p, const char *id)
{
    for (size_t i = 0; p && id && i < p->nfunnels; i++)
        if (strcmp(p->funnels[i].id, id) == 0) return &p->funnels[i];
    return NULL;
}

const stage_t *config_find_stage(const funnel_t *f, const char *id)
{
    for (size_t i = 0; f && id && i < f->nstages; i++)
        if (f->stages[i].id && strcmp(f->stages[i].id, id) == 0) return &f->stages[i];
    return NULL;
}

const webhook_t *config_find_webhook(const config_t *cfg, const char *id, const project_t **project)
{
    for (size_t i = 0; cfg && id && i < cfg->nprojects; i++) {
        const project_t *p = &cfg->projects[i];
        for (size_t j = 0; j < p->nwebhooks; j++)
            if (p->webhooks[j].id && strcmp(p->webhooks[j].id, id) == 0) {
                if (project) *project = p;
                return &p->webhooks[j];
            }
    }
    return NULL;
}

void config_free(config_t *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nprojects; i++)
        cfg_project_clear(&cfg->projects[i]);
    free(cfg->projects);
    free(cfg);
}
