/* event.c - producer events: strict JSON parsing, validation against the contract's input table,
 * normalization (ids, UTC times) and won/lost derivation from the funnel configuration. */
#include "domain/event.h"

#include "util/timeutil.h"
#include "util/uuid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define EVENT_MAX_DEPTH 64
#define EVENT_PATH_MAX 160 /* longest member path quoted in an error; longer ones are cut */

/* The only top-level keys a producer may send. */
static const char *const event_keys[] = {"type",          "id",          "project_id",
                                         "occurred_at",   "opportunity", "contact",
                                         "from_stage_id", "to_stage_id", NULL};

/* depth_ok: 1 when v nests at most max levels of objects and arrays (v itself is level 1). */
static int depth_ok(const json_t *v, int max)
{
    if (!json_is_object(v) && !json_is_array(v)) return 1;
    if (max < 1) return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x)
        {
            if (!depth_ok(x, max - 1)) return 0;
        }
        return 1;
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!depth_ok(x, max - 1)) return 0;
    }
    return 1;
}

/* One open container while locating an error: its path prefix length, and what is in it. */
typedef struct path_frame {
    size_t len;   /* length of the path text before this container's members */
    int is_array; /* array: index counts members; object: want_key says a key comes next */
    size_t index;
    int want_key;
} path_frame_t;

/* path_set: path = the containers' prefix + the current member (".key" or "[i]"). */
static void path_set(char *path, size_t n, const path_frame_t *f, const char *key, size_t klen)
{
    size_t len = f->len; /* < n: it is the length of a string in path */
    if (f->is_array)
        snprintf(path + len, n - len, "[%zu]", f->index);
    else
        snprintf(path + len, n - len, "%s%.*s", len ? "." : "", (int)klen, key);
}

/* event_error_path finds which member the parser stopped in: it scans the text up to byte pos
 * and writes the path of the last value or key that started before it ("opportunity.tags[2]")
 * into path, "" when at the top level. Tolerant: it only tracks strings and brackets. */
static void event_error_path(const char *text, size_t len, size_t pos, char path[EVENT_PATH_MAX])
{
    path_frame_t st[EVENT_MAX_DEPTH + 2];
    int depth = -1; /* index of the innermost open container */
    char cur[EVENT_PATH_MAX] = "";
    path[0] = '\0';
    if (pos > len) pos = len;
    for (size_t i = 0; i < pos; i++) {
        char c = text[i];
        path_frame_t *f = depth >= 0 && depth <= EVENT_MAX_DEPTH ? &st[depth] : NULL;
        if (c == '"') {
            size_t start = ++i;
            while (i < len && text[i] != '"')
                i += text[i] == '\\' ? 2 : 1;
            if (f && !f->is_array && f->want_key) {
                path_set(cur, sizeof cur, f, text + start, (i < len ? i : len) - start);
                f->want_key = 0;
            } else if (f && f->is_array) {
                path_set(cur, sizeof cur, f, NULL, 0);
            }
            memcpy(path, cur, EVENT_PATH_MAX);
        } else if (c == '{' || c == '[') {
            if (f && f->is_array) path_set(cur, sizeof cur, f, NULL, 0);
            if (++depth <= EVENT_MAX_DEPTH)
                st[depth] =
                    (path_frame_t){.len = strlen(cur), .is_array = c == '[', .want_key = c == '{'};
            memcpy(path, cur, EVENT_PATH_MAX);
        } else if (c == '}' || c == ']') {
            if (depth >= 0 && depth <= EVENT_MAX_DEPTH) cur[st[depth].len] = '\0';
            if (depth >= 0) depth--;
        } else if (c == ',' && f) {
            if (f->is_array)
                f->index++;
            else
                f->want_key = 1;
        } else if (f && f->is_array && c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
                   (i == 0 || strchr("[, \t\r\n", text[i - 1]))) {
            path_set(cur, sizeof cur, f, NULL, 0); /* a number or literal starts */
            memcpy(path, cur, EVENT_PATH_MAX);
        } else if (f && !f->is_array && c == ':') {
            memcpy(path, cur, EVENT_PATH_MAX);
        }
    }
}

/* event_near: the token jansson quotes in "... near 'TOKEN'", into buf ("" when none). */
static const char *event_near(const char *text, char *buf, size_t n)
{
    const char *p = strstr(text, " near '");
    size_t len;
    buf[0] = '\0';
    if (!p) return buf;
    p += strlen(" near '");
    len = strlen(p);
    if (len && p[len - 1] == '\'') len--;
    snprintf(buf, n, "%.*s", (int)(len > 64 ? 64 : len), p);
    return buf;
}

/* event_json_error turns a parse failure into a reason that names the member and the cause. */
static void event_json_error(const char *line, size_t len, const json_error_t *jerr, char *err,
                             size_t errlen)
{
    char path[EVENT_PATH_MAX], near[72], where[EVENT_PATH_MAX + 32];
    event_error_path(line, len, (size_t)jerr->position, path);
    event_near(jerr->text, near, sizeof near);
    if (path[0])
        snprintf(where, sizeof where, "%s (column %d)", path, jerr->column);
    else
        snprintf(where, sizeof where, "column %d", jerr->column);
    switch (json_error_code(jerr)) {
    case json_error_duplicate_key:
        snprintf(err, errlen, "%s: duplicate key", where);
        return;
    case json_error_numeric_overflow:
        if (strncmp(jerr->text, "too big integer", 15) == 0)
            snprintf(err, errlen,
                     "%s: integer %s is out of range (-9223372036854775808..9223372036854775807)",
                     where, near);
        else
            snprintf(err, errlen, "%s: number %s is out of range (overflows a double)", where,
                     near);
        return;
    case json_error_invalid_utf8:
        snprintf(err, errlen, "%s: invalid UTF-8 (%s)", where, jerr->text);
        return;
    case json_error_null_character:
        snprintf(err, errlen, "%s: \\u0000 is not allowed in strings", where);
        return;
    case json_error_stack_overflow:
        snprintf(err, errlen, "event nests deeper than %d levels", EVENT_MAX_DEPTH);
        return;
    default:
        snprintf(err, errlen, "invalid JSON at line %d column %d%s%s%s: %s", jerr->line,
                 jerr->column, path[0] ? " (in " : "", path, path[0] ? ")" : "", jerr->text);
    }
}

int event_parse_json(const char *line, size_t len, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > EVENT_MAX_BYTES) {
        snprintf(err, errlen, "event too large: %zu bytes (at most %u)", len, EVENT_MAX_BYTES);
        return -EINVAL;
    }
    /* Without JSON_DISABLE_EOF_CHECK jansson refuses trailing garbage; without JSON_ALLOW_NUL
     * it refuses \u0000; it always refuses invalid UTF-8, lone surrogates, integers beyond
     * int64 and reals that overflow to infinity, so no NaN or inf ever reaches a body. */
    json_error_t jerr;
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        event_json_error(line, len, &jerr, err, errlen);
        return -EINVAL;
    }
    if (!json_is_object(v)) {
        snprintf(err, errlen, "event is not a JSON object");
        json_decref(v);
        return -EINVAL;
    }
    if (!depth_ok(v, EVENT_MAX_DEPTH)) {
        snprintf(err, errlen, "event nests deeper than %d levels", EVENT_MAX_DEPTH);
        json_decref(v);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* id_ok: 1 when s matches [A-Za-z0-9._:-]{1,128}. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > EVENT_ID_MAX) return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* nonempty_string: the value when v is a non-empty string, else NULL. */
static const char *nonempty_string(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? s : NULL;
}

/* check_entity validates opportunity or contact: an object whose id is a non-empty string or
 * an integer. Fills err naming the field. */
static int check_entity(const json_t *v, const char *what, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: must be an object", what);
        return -EINVAL;
    }
    const json_t *id = json_object_get(v, "id");
    if (!id) {
        snprintf(err, errlen, "%s.id: missing", what);
        return -EINVAL;
    }
    if (!nonempty_string(id) && !json_is_integer(id)) {
        snprintf(err, errlen, "%s.id: must be a non-empty string or an integer", what);
        return -EINVAL;
    }
    return 0;
}

/* check_keys refuses top-level keys the contract does not define. */
static int check_keys(const json_t *in, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        int known = 0;
        for (const char *const *e = event_keys; *e && !known; e++)
            known = strcmp(k, *e) == 0;
        if (!known) {
            snprintf(err, errlen, "%s: unknown key", k);
            return -EINVAL;
        }
    }
    return 0;
}

/* check_type: the event type, which must be one a producer may send. */
static int check_type(const json_t *in, unsigned *type, char *err, size_t errlen)
{
    const json_t *t = json_object_get(in, "type");
    if (!t) {
        snprintf(err, errlen, "type: missing");
        return -EINVAL;
    }
    const char *s = json_string_value(t);
    *type = s ? config_event_type_parse(s) : 0;
    if (*type == EVT_WON || *type == EVT_LOST) {
        snprintf(err, errlen, "type: %s is derived by hookline and not accepted as input", s);
        return -EINVAL;
    }
    if (*type != EVT_CREATED && *type != EVT_TRANSITIONED) {
        snprintf(err, errlen, "type: must be opportunity.created or opportunity.transitioned");
        return -EINVAL;
    }
    return 0;
}

/* pick_id: the producer's id, or a fresh UUIDv7 when absent (or null). */
static int pick_id(const json_t *in, int64_t now_ms, char *buf, size_t n, char *err, size_t errlen)
{
    const json_t *v = json_object_get(in, "id");
    if (!v || json_is_null(v)) {
        char u[UUID_STR_LEN];
        uuid_v7(now_ms, u);
        snprintf(buf, n, "%s", u);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !id_ok(s)) {
        snprintf(err, errlen, "id: must be 1..%d characters of [A-Za-z0-9._:-]", EVENT_ID_MAX);
        return -EINVAL;
    }
    snprintf(buf, n, "%s", s);
    return 0;
}

/* pick_time: occurred_at normalized to UTC RFC 3339, or now when absent (or null). */
static int pick_time(const json_t *in, int64_t now_ms, char *buf, size_t n, char *err,
                     size_t errlen)
{
    const json_t *v = json_object_get(in, "occurred_at");
    int64_t ms = now_ms;
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);
        if (!s || time_parse_rfc3339(s, &ms) < 0) {
            snprintf(err, errlen, "occurred_at: must be an RFC 3339 date-time");
            return -EINVAL;
        }
    }
    time_format_rfc3339(ms, buf, n);
    return 0;
}

/* check_stages validates funnel_id, from_stage_id and to_stage_id for the event's type. */
static int check_stages(const json_t *in, unsigned type, char *err, size_t errlen)
{
    const json_t *from = json_object_get(in, "from_stage_id");
    const json_t *to = json_object_get(in, "to_stage_id");
    if (type != EVT_TRANSITIONED) {
        const char *bad = from && !json_is_null(from) ? "from_stage_id"
                          : to && !json_is_null(to)   ? "to_stage_id"
                                                      : NULL;
        if (bad) {
            snprintf(err, errlen, "%s: only allowed for opportunity.transitioned", bad);
            return -EINVAL;
        }
        return 0;
    }
    const json_t *funnel = json_object_get(json_object_get(in, "opportunity"), "funnel_id");
    if (!funnel) {
        snprintf(err, errlen, "opportunity.funnel_id: missing");
        return -EINVAL;
    }
    if (!nonempty_string(funnel)) {
        snprintf(err, errlen, "opportunity.funnel_id: must be a non-empty string");
        return -EINVAL;
    }
    if (!to) {
        snprintf(err, errlen, "to_stage_id: missing");
        return -EINVAL;
    }
    if (!nonempty_string(to)) {
        snprintf(err, errlen, "to_stage_id: must be a non-empty string");
        return -EINVAL;
    }
    if (from && !json_is_null(from) && !nonempty_string(from)) {
        snprintf(err, errlen, "from_stage_id: must be a non-empty string or null");
        return -EINVAL;
    }
    return 0;
}

/* nul_free: 1 unless a string anywhere in v holds U+0000 (only msgpack can carry one; its
 * journaled JSON would not parse back in the router). */
static int nul_free(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_string(v)) return !memchr(json_string_value(v), '\0', json_string_length(v));
    if (json_is_array(v)) {
        json_array_foreach((json_t *)v, i, x) if (!nul_free(x)) return 0;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) if (!nul_free(x)) return 0;
    }
    return 1;
}

/* check_nul refuses U+0000 in any string of the event, naming the top-level field. */
static int check_nul(const json_t *in, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) if (!nul_free(v))
    {
        snprintf(err, errlen, "%s: strings must not contain U+0000", k);
        return -EINVAL;
    }
    return 0;
}

/* check_event runs every validation rule; err names the first field that breaks one. */
static int check_event(const json_t *in, unsigned *type, char *err, size_t errlen)
{
    if (!json_is_object(in)) {
        snprintf(err, errlen, "event is not a JSON object");
        return -EINVAL;
    }
    int rc = check_type(in, type, err, errlen);
    if (!rc) rc = check_keys(in, err, errlen);
    if (!rc) rc = check_nul(in, err, errlen);
    if (rc) return rc;
    const json_t *project = json_object_get(in, "project_id");
    if (!project) {
        snprintf(err, errlen, "project_id: missing");
        return -EINVAL;
    }
    if (!nonempty_string(project)) {
        snprintf(err, errlen, "project_id: must be a non-empty string");
        return -EINVAL;
    }
    const json_t *opp = json_object_get(in, "opportunity");
    if (!opp) {
        snprintf(err, errlen, "opportunity: missing");
        return -EINVAL;
    }
    if ((rc = check_entity(opp, "opportunity", err, errlen))) return rc;
    const json_t *contact = json_object_get(in, "contact");
    if (contact && !json_is_null(contact) && (rc = check_entity(contact, "contact", err, errlen)))
        return rc;
    return check_stages(in, *type, err, errlen);
}

/* build_normalized assembles the internal form from a validated input. NULL on ENOMEM. */
static json_t *build_normalized(const json_t *in, unsigned type, const char *id,
                                const char *occurred_at)
{
    json_t *o = json_object();
    const json_t *contact = json_object_get(in, "contact");
    const json_t *opp = json_object_get(in, "opportunity");
    int bad = !o;
    bad = bad || json_object_set_new(o, "id", json_string(id));
    bad = bad || json_object_set_new(o, "type", json_string(config_event_type_name(type)));
    bad = bad || json_object_set(o, "project_id", json_object_get(in, "project_id"));
    bad = bad || json_object_set_new(o, "occurred_at", json_string(occurred_at));
    bad = bad || json_object_set_new(o, "opportunity", json_deep_copy(opp));
    bad = bad || json_object_set_new(
                     o, "contact", json_is_object(contact) ? json_deep_copy(contact) : json_null());
    if (!bad && type == EVT_TRANSITIONED) {
        const json_t *from = json_object_get(in, "from_stage_id");
        bad = json_object_set(o, "funnel_id", json_object_get(opp, "funnel_id"));
        bad = bad ||
              json_object_set_new(o, "from_stage_id", from ? json_deep_copy(from) : json_null());
        bad = bad || json_object_set(o, "to_stage_id", json_object_get(in, "to_stage_id"));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* derive: the won/lost event a transition implies under cfg, or NULL (none, or ENOMEM in
 * *nomem). */
static json_t *derive(const json_t *ev, const config_t *cfg, int *nomem)
{
    *nomem = 0;
    if (!cfg) return NULL;
    const project_t *p =
        config_find_project(cfg, json_string_value(json_object_get(ev, "project_id")));
    const funnel_t *f =
        p ? config_find_funnel(p, json_string_value(json_object_get(ev, "funnel_id"))) : NULL;
    if (!f) return NULL;
    const char *to = json_string_value(json_object_get(ev, "to_stage_id"));
    unsigned type = f->won_stage_id && strcmp(to, f->won_stage_id) == 0     ? EVT_WON
                    : f->lost_stage_id && strcmp(to, f->lost_stage_id) == 0 ? EVT_LOST
                                                                            : 0;
    if (!type) return NULL;
    char id[EVENT_ID_MAX + 8];
    snprintf(id, sizeof id, "%s.%s", json_string_value(json_object_get(ev, "id")),
             type == EVT_WON ? "won" : "lost");
    json_t *d = json_deep_copy(ev);
    if (!d || json_object_set_new(d, "id", json_string(id)) ||
        json_object_set_new(d, "type", json_string(config_event_type_name(type)))) {
        json_decref(d);
        *nomem = 1;
        return NULL;
    }
    return d;
}

int event_normalize(const json_t *in, const config_t *cfg, int64_t now_ms, json_t *out[2],
                    char *err, size_t errlen)
{
    out[0] = out[1] = NULL;
    unsigned type = 0;
    char id[EVENT_ID_MAX + 1], at[40];
    int rc = check_event(in, &type, err, errlen);
    if (!rc) rc = pick_id(in, now_ms, id, sizeof id, err, errlen);
    if (!rc) rc = pick_time(in, now_ms, at, sizeof at, err, errlen);
    if (rc) return rc;

    out[0] = build_normalized(in, type, id, at);
    if (!out[0]) {
        snprintf(err, errlen, "out of memory normalizing the event");
        return -ENOMEM;
    }
    if (type != EVT_TRANSITIONED) return 1;
    int nomem;
    out[1] = derive(out[0], cfg, &nomem);
    if (nomem) {
        json_decref(out[0]);
        out[0] = NULL;
        snprintf(err, errlen, "out of memory deriving won/lost");
        return -ENOMEM;
    }
    return out[1] ? 2 : 1;
}

int event_is_routed(const json_t *event, const config_t *cfg)
{
    if (!cfg) return 0;
    const char *pid = json_string_value(json_object_get(event, "project_id"));
    const project_t *p = pid ? config_find_project(cfg, pid) : NULL;
    if (!p) return 0;
    const char *fid = json_string_value(json_object_get(event, "funnel_id"));
    const char *ts = json_string_value(json_object_get(event, "type"));
    unsigned type = ts ? config_event_type_parse(ts) : 0;
    if (type == EVT_CREATED) return 1;
    return fid && config_find_funnel(p, fid) ? 1 : 0;
}
