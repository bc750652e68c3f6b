/* payload.c - what a webhook receives: the invocation id derived from (event, webhook), the
 * matching rule, and the exact JSON body, rendered compactly with shortest round-trip numbers. */
#include "domain/payload.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void payload_invocation_id(const char *event_id, const char *webhook_id,
                           char out[INVOCATION_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* The NUL separator keeps ("a.b", "c") and ("a", ".bc") apart. */
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, event_id, strlen(event_id) + 1) &&
             EVP_DigestUpdate(ctx, webhook_id, strlen(webhook_id)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok) /* only on allocation failure inside OpenSSL; nothing sensible to return */
        abort();
    memcpy(out, "inv_", 4);
    for (int i = 0; i < 16; i++) {
        out[4 + 2 * i] = hex[md[i] >> 4];
        out[5 + 2 * i] = hex[md[i] & 15];
    }
    out[36] = '\0';
}

int payload_matches(const webhook_t *wh, const char *project_id, unsigned type)
{
    return wh->enabled && wh->project_id && project_id && strcmp(wh->project_id, project_id) == 0 &&
           (wh->events & type) != 0;
}

/* --- the body: rendered by our own compact writer; the event's part once (data as a jansson
 * tree), the webhook's part per webhook, spliced as head, webhook part, tail --- */

typedef struct outbuf {
    char *p;
    size_t n, cap;
    int nomem;
} outbuf_t;

/* out_put appends n bytes, remembering an allocation failure. */
static void out_put(outbuf_t *b, const char *s, size_t n)
{
    if (b->nomem) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* out_string writes a JSON string literal; the text is valid UTF-8 already (jansson checks). */
static void out_string(outbuf_t *b, const char *s, size_t n)
{
    out_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out_put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"':
            out_put(b, "\\\"", 2);
            break;
        case '\\':
            out_put(b, "\\\\", 2);
            break;
        case '\n':
            out_put(b, "\\n", 2);
            break;
        case '\r':
            out_put(b, "\\r", 2);
            break;
        case '\t':
            out_put(b, "\\t", 2);
            break;
        case '\b':
            out_put(b, "\\b", 2);
            break;
        case '\f':
            out_put(b, "\\f", 2);
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            out_put(b, esc, 6);
        }
    }
    out_put(b, s + run, n - run);
    out_put(b, "\"", 1);
}

/* out_real writes the shortest decimal that reads back as the same double, so a producer's 0.1
 * arrives as 0.1, and keeps it a real (a '.' or exponent). */
static void out_real(outbuf_t *b, double d)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eE") && strlen(buf) + 2 < sizeof buf) strcat(buf, ".0");
    out_put(b, buf, strlen(buf));
}

/* out_value writes v compactly, object keys in insertion order. */
static void out_value(outbuf_t *b, const json_t *v)
{
    char num[32];
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        out_put(b, "{", 1);
        i = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (i++) out_put(b, ",", 1);
            out_string(b, k, strlen(k));
            out_put(b, ":", 1);
            out_value(b, x);
        }
        out_put(b, "}", 1);
        break;
    case JSON_ARRAY:
        out_put(b, "[", 1);
        json_array_foreach((json_t *)v, i, x)
        {
            if (i) out_put(b, ",", 1);
            out_value(b, x);
        }
        out_put(b, "]", 1);
        break;
    case JSON_STRING:
        out_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out_put(b, num, strlen(num));
        break;
    case JSON_REAL:
        out_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        out_put(b, "true", 4);
        break;
    case JSON_FALSE:
        out_put(b, "false", 5);
        break;
    case JSON_NULL:
        out_put(b, "null", 4);
        break;
    }
}

/* or_null: a new reference to v, or to null when v is NULL. */
static json_t *or_null(json_t *v)
{
    return v ? json_incref(v) : json_null();
}

/* str_or_null: a JSON string of s, or null when s is NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* entity: {"id", then each configured field in order, null when not sent}, or null. */
static json_t *entity(json_t *sent, char *const *fields, size_t nfields)
{
    if (!json_is_object(sent)) return json_null();
    json_t *o = json_object();
    int bad = !o || json_object_set_new(o, "id", or_null(json_object_get(sent, "id")));
    for (size_t i = 0; !bad && i < nfields; i++)
        bad = json_object_set_new(o, fields[i], or_null(json_object_get(sent, fields[i])));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* stage_ref: {"id","name"} for a stage id of funnel f (name null when unknown), null for none. */
static json_t *stage_ref(const json_t *id, const funnel_t *f)
{
    const char *s = json_string_value(id);
    if (!s) return json_null();
    const stage_t *st = f ? config_find_stage(f, s) : NULL;
    return json_pack("{s:s, s:o}", "id", s, "name", str_or_null(st ? st->name : NULL));
}

/* build_data: the "data" member for event ev of project p. NULL on ENOMEM. */
static json_t *build_data(const json_t *ev, const project_t *p)
{
    json_t *d = json_object();
    json_t *opp = json_object_get(ev, "opportunity");
    json_t *contact = json_object_get(ev, "contact");
    int bad = !d;
    bad = bad || json_object_set_new(d, "opportunity",
                                     entity(opp, p->opportunity_fields, p->nopportunity_fields));
    bad = bad ||
          json_object_set_new(d, "contact", entity(contact, p->contact_fields, p->ncontact_fields));
    const char *type = json_string_value(json_object_get(ev, "type"));
    unsigned t = type ? config_event_type_parse(type) : 0;
    if (!bad && t != EVT_CREATED) {
        const char *fid = json_string_value(json_object_get(ev, "funnel_id"));
        const funnel_t *f = fid ? config_find_funnel(p, fid) : NULL;
        json_t *funnel = json_pack("{s:o, s:o}", "id", str_or_null(fid), "name",
                                   str_or_null(f ? f->name : NULL));
        bad = json_object_set_new(d, "funnel", funnel);
        bad = bad || json_object_set_new(d, "from_stage",
                                         stage_ref(json_object_get(ev, "from_stage_id"), f));
        bad = bad ||
              json_object_set_new(d, "to_stage", stage_ref(json_object_get(ev, "to_stage_id"), f));
    }
    if (bad) {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* out_key writes "key": */
static void out_key(outbuf_t *b, const char *key)
{
    out_string(b, key, strlen(key));
    out_put(b, ":", 1);
}

/* The head's members, in order, each the event's own value (null when absent). */
static const char *const head_keys[] = {"id", "type", "occurred_at", "project_id"};

int payload_event_build(payload_event_t *pe, const json_t *event, const project_t *p)
{
    memset(pe, 0, sizeof *pe);
    json_t *data = build_data(event, p);
    if (!data) return -ENOMEM;
    outbuf_t b = {0};
    for (size_t i = 0; i < sizeof head_keys / sizeof head_keys[0]; i++) {
        const json_t *v = json_object_get(event, head_keys[i]);
        out_put(&b, i ? "," : "{", 1);
        out_key(&b, head_keys[i]);
        if (v)
            out_value(&b, v);
        else
            out_put(&b, "null", 4);
    }
    out_put(&b, ",", 1);
    out_key(&b, "webhook");
    size_t head = b.n;
    out_put(&b, ",", 1);
    out_key(&b, "data");
    out_value(&b, data);
    out_put(&b, "}", 1);
    json_decref(data);
    if (b.nomem) {
        free(b.p);
        return -ENOMEM;
    }
    pe->head = (job_str_t){b.p, head};
    pe->tail = (job_str_t){b.p + head, b.n - head};
    return 0;
}

void payload_event_free(payload_event_t *pe)
{
    free((char *)pe->head.p);
    memset(pe, 0, sizeof *pe);
}

char *payload_webhook_part(const webhook_t *wh, size_t *len)
{
    outbuf_t b = {0};
    out_put(&b, "{", 1);
    out_key(&b, "id");
    out_string(&b, wh->id, strlen(wh->id));
    out_put(&b, ",", 1);
    out_key(&b, "name");
    if (wh->name)
        out_string(&b, wh->name, strlen(wh->name));
    else
        out_put(&b, "null", 4);
    out_put(&b, "}", 1);
    if (b.nomem) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

char *payload_build(const json_t *event, const project_t *p, const webhook_t *wh, size_t *len)
{
    payload_event_t pe;
    size_t wlen = 0;
    if (payload_event_build(&pe, event, p) < 0) return NULL;
    char *part = payload_webhook_part(wh, &wlen);
    size_t n = pe.head.n + wlen + pe.tail.n;
    char *body = part ? malloc(n + 1) : NULL;
    if (body) {
        memcpy(body, pe.head.p, pe.head.n);
        memcpy(body + pe.head.n, part, wlen);
        memcpy(body + pe.head.n + wlen, pe.tail.p, pe.tail.n);
        body[n] = '\0';
        *len = n;
    }
    free(part);
    payload_event_free(&pe);
    return body;
}
