/* test_payload_splice.c - the spliced body (the event part rendered once, the webhook part per
 * webhook) is byte for byte the body of the builder it replaced (kept below, frozen, as the
 * oracle): every event type, the projection options, unicode, escapes, every JSON type, large
 * fields, odd webhook ids and names. */
#include "check.h"
#include "domain/config.h"
#include "domain/event.h"
#include "domain/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the builder before the splice (common/domain/payload.c at e888ba9), names prefixed ref_ */

typedef struct ref_outbuf {
    char *p;
    size_t n, cap;
    int nomem;
} ref_outbuf_t;

/* ref_out_put appends n bytes, remembering an allocation failure. */
static void ref_out_put(ref_outbuf_t *b, const char *s, size_t n)
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

/* ref_out_string writes a JSON string literal; the text is valid UTF-8 already (jansson checks). */
static void ref_out_string(ref_outbuf_t *b, const char *s, size_t n)
{
    ref_out_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ref_out_put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"':
            ref_out_put(b, "\\\"", 2);
            break;
        case '\\':
            ref_out_put(b, "\\\\", 2);
            break;
        case '\n':
            ref_out_put(b, "\\n", 2);
            break;
        case '\r':
            ref_out_put(b, "\\r", 2);
            break;
        case '\t':
            ref_out_put(b, "\\t", 2);
            break;
        case '\b':
            ref_out_put(b, "\\b", 2);
            break;
        case '\f':
            ref_out_put(b, "\\f", 2);
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            ref_out_put(b, esc, 6);
        }
    }
    ref_out_put(b, s + run, n - run);
    ref_out_put(b, "\"", 1);
}

/* ref_out_real writes the shortest decimal that reads back as the same double, so a producer's 0.1
 * arrives as 0.1, and keeps it a real (a '.' or exponent). */
static void ref_out_real(ref_outbuf_t *b, double d)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eE") && strlen(buf) + 2 < sizeof buf) strcat(buf, ".0");
    ref_out_put(b, buf, strlen(buf));
}

/* ref_out_value writes v compactly, object keys in insertion order. */
static void ref_out_value(ref_outbuf_t *b, const json_t *v)
{
    char num[32];
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        ref_out_put(b, "{", 1);
        i = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (i++) ref_out_put(b, ",", 1);
            ref_out_string(b, k, strlen(k));
            ref_out_put(b, ":", 1);
            ref_out_value(b, x);
        }
        ref_out_put(b, "}", 1);
        break;
    case JSON_ARRAY:
        ref_out_put(b, "[", 1);
        json_array_foreach((json_t *)v, i, x)
        {
            if (i) ref_out_put(b, ",", 1);
            ref_out_value(b, x);
        }
        ref_out_put(b, "]", 1);
        break;
    case JSON_STRING:
        ref_out_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        ref_out_put(b, num, strlen(num));
        break;
    case JSON_REAL:
        ref_out_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        ref_out_put(b, "true", 4);
        break;
    case JSON_FALSE:
        ref_out_put(b, "false", 5);
        break;
    case JSON_NULL:
        ref_out_put(b, "null", 4);
        break;
    }
}

/* ref_or_null: a new reference to v, or to null when v is NULL. */
static json_t *ref_or_null(json_t *v)
{
    return v ? json_incref(v) : json_null();
}

/* ref_str_or_null: a JSON string of s, or null when s is NULL. */
static json_t *ref_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ref_entity: {"id", then each configured field in order, null when not sent}, or null. */
static json_t *ref_entity(json_t *sent, char *const *fields, size_t nfields)
{
    if (!json_is_object(sent)) return json_null();
    json_t *o = json_object();
    int bad = !o || json_object_set_new(o, "id", ref_or_null(json_object_get(sent, "id")));
    for (size_t i = 0; !bad && i < nfields; i++)
        bad = json_object_set_new(o, fields[i], ref_or_null(json_object_get(sent, fields[i])));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ref_stage_ref: {"id","name"} for a stage id of funnel f (name null when unknown), null for none.
 */
static json_t *ref_stage_ref(const json_t *id, const funnel_t *f)
{
    const char *s = json_string_value(id);
    if (!s) return json_null();
    const stage_t *st = f ? config_find_stage(f, s) : NULL;
    return json_pack("{s:s, s:o}", "id", s, "name", ref_str_or_null(st ? st->name : NULL));
}

/* ref_build_data: the "data" member for event ev of project p. NULL on ENOMEM. */
static json_t *ref_build_data(const json_t *ev, const project_t *p)
{
    json_t *d = json_object();
    json_t *opp = json_object_get(ev, "opportunity");
    json_t *contact = json_object_get(ev, "contact");
    int bad = !d;
    bad =
        bad || json_object_set_new(d, "opportunity",
                                   ref_entity(opp, p->opportunity_fields, p->nopportunity_fields));
    bad = bad || json_object_set_new(d, "contact",
                                     ref_entity(contact, p->contact_fields, p->ncontact_fields));
    const char *type = json_string_value(json_object_get(ev, "type"));
    unsigned t = type ? config_event_type_parse(type) : 0;
    if (!bad && t != EVT_CREATED) {
        const char *fid = json_string_value(json_object_get(ev, "funnel_id"));
        const funnel_t *f = fid ? config_find_funnel(p, fid) : NULL;
        json_t *funnel = json_pack("{s:o, s:o}", "id", ref_str_or_null(fid), "name",
                                   ref_str_or_null(f ? f->name : NULL));
        bad = json_object_set_new(d, "funnel", funnel);
        bad = bad || json_object_set_new(d, "from_stage",
                                         ref_stage_ref(json_object_get(ev, "from_stage_id"), f));
        bad = bad || json_object_set_new(d, "to_stage",
                                         ref_stage_ref(json_object_get(ev, "to_stage_id"), f));
    }
    if (bad) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static char *ref_payload_build(const json_t *event, const project_t *p, const webhook_t *wh,
                               size_t *len)
{
    json_t *body = json_object();
    int bad = !body;
    bad = bad || json_object_set_new(body, "id", ref_or_null(json_object_get(event, "id")));
    bad = bad || json_object_set_new(body, "type", ref_or_null(json_object_get(event, "type")));
    bad = bad || json_object_set_new(body, "occurred_at",
                                     ref_or_null(json_object_get(event, "occurred_at")));
    bad = bad || json_object_set_new(body, "project_id",
                                     ref_or_null(json_object_get(event, "project_id")));
    bad = bad || json_object_set_new(
                     body, "webhook",
                     json_pack("{s:s, s:o}", "id", wh->id, "name", ref_str_or_null(wh->name)));
    bad = bad || json_object_set_new(body, "data", ref_build_data(event, p));
    if (bad) {
        json_decref(body);
        return NULL;
    }
    ref_outbuf_t b = {0};
    ref_out_value(&b, body);
    json_decref(body);
    if (b.nomem) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

/* ---- the comparisons */

static const char *const cfg_text =
    "{\"projects\":["
    /* fields configured, \"id\" among them; funnels with unicode and escaped names */
    "{\"id\":\"prj_a\",\"name\":\"A\","
    "\"opportunity_fields\":[\"title\",\"id\",\"value\",\"owner\",\"n\\u00e9\",\"nested\"],"
    "\"contact_fields\":[\"name\",\"email\",\"tags\"],"
    "\"funnels\":[{\"id\":\"fun_1\",\"name\":\"Sales \\\"EU\\\" \\u2603\",\"stages\":["
    "{\"id\":\"stg_new\",\"name\":\"New\\tline\\n\"},{\"id\":\"stg_won\",\"name\":\"Won "
    "\\ud83c\\udf89\"},"
    "{\"id\":\"stg_lost\"},{\"id\":\"stg_mid\",\"name\":\"Mid\\\\way\"}],"
    "\"won_stage_id\":\"stg_won\",\"lost_stage_id\":\"stg_lost\"},"
    "{\"id\":\"fun_2\",\"stages\":[{\"id\":\"s1\",\"name\":\"One\"},{\"id\":\"s2\",\"name\":"
    "\"Two\"}]}],"
    "\"webhooks\":["
    "{\"id\":\"wh_1\",\"name\":\"Plain\",\"url\":\"https://h.example.com/1\","
    "\"events\":[\"opportunity.created\",\"opportunity.transitioned\",\"opportunity.won\","
    "\"opportunity.lost\"]},"
    "{\"id\":\"wh \\\"q\\\" \\\\ \\u00e9\\u0001\",\"url\":\"https://h.example.com/2\","
    "\"events\":[\"opportunity.created\",\"opportunity.won\",\"opportunity.lost\"]},"
    "{\"id\":\"wh_3\",\"name\":\"ctl \\u001f\\u007f\\u2028 \\\"quoted\\\" \\ud83d\\ude00\","
    "\"url\":\"https://h.example.com/3\",\"events\":[\"opportunity.transitioned\"]},"
    "{\"id\":\"wh_4\",\"name\":\"\",\"url\":\"https://h.example.com/4\","
    "\"events\":[\"opportunity.created\",\"opportunity.transitioned\"]}]},"
    /* nothing configured: id only, no funnels */
    "{\"id\":\"prj_e\",\"name\":\"E\",\"opportunity_fields\":[],\"contact_fields\":[],"
    "\"funnels\":[],\"webhooks\":["
    "{\"id\":\"wh_e\",\"name\":\"Empty project\",\"url\":\"https://h.example.com/e\","
    "\"events\":[\"opportunity.created\",\"opportunity.transitioned\"]}]}]}";

static config_t *cfg;
static int compared;

/* compare_event checks every webhook of project pid against the oracle for event ev. */
static void compare_event(const json_t *ev, const char *pid)
{
    const project_t *p = config_find_project(cfg, pid);
    CHECK(p != NULL);
    if (!p) return;
    payload_event_t pe;
    CHECK_INT(payload_event_build(&pe, ev, p), 0);
    for (size_t i = 0; i < p->nwebhooks; i++) {
        const webhook_t *wh = &p->webhooks[i];
        size_t rlen = 0, blen = 0, wlen = 0;
        char *want = ref_payload_build(ev, p, wh, &rlen);
        char *got = payload_build(ev, p, wh, &blen);
        char *part = payload_webhook_part(wh, &wlen);
        CHECK(want && got && part);
        if (!want || !got || !part) {
            free(want);
            free(got);
            free(part);
            continue;
        }
        /* what the router sends: head, part, tail, from one event part for every webhook */
        size_t n = pe.head.n + wlen + pe.tail.n;
        char *spliced = malloc(n + 1);
        CHECK(spliced != NULL);
        if (spliced) {
            memcpy(spliced, pe.head.p, pe.head.n);
            memcpy(spliced + pe.head.n, part, wlen);
            memcpy(spliced + pe.head.n + wlen, pe.tail.p, pe.tail.n);
            spliced[n] = '\0';
            CHECK_INT(n, rlen);
            CHECK(n == rlen && memcmp(spliced, want, rlen) == 0);
            if (n != rlen || memcmp(spliced, want, rlen) != 0)
                fprintf(stderr, "  webhook %s:\n  want %.300s\n  got  %.300s\n", wh->id, want,
                        spliced);
        }
        CHECK_INT(blen, rlen);
        CHECK(blen == rlen && memcmp(got, want, rlen) == 0 && got[blen] == '\0');
        compared++;
        free(spliced);
        free(want);
        free(got);
        free(part);
    }
    payload_event_free(&pe);
}

/* compare_normalized compares each normalized event of one producer line. */
static void compare_normalized(const char *line, int want_events)
{
    char err[256] = "";
    json_t *in = NULL, *out[2] = {NULL, NULL};
    if (event_parse_json(line, strlen(line), &in, err, sizeof err) < 0) {
        fprintf(stderr, "parse: %s: %.200s\n", err, line);
        CHECK(0);
        return;
    }
    int n = event_normalize(in, cfg, 0, out, err, sizeof err);
    if (n < 0) fprintf(stderr, "normalize: %s: %.200s\n", err, line);
    CHECK_INT(n, want_events);
    for (int i = 0; i < n; i++) {
        const char *pid = json_string_value(json_object_get(out[i], "project_id"));
        compare_event(out[i], pid ? pid : "prj_a");
        json_decref(out[i]);
    }
    json_decref(in);
}

/* compare_raw compares an event given as JSON as is (types the normalizer would not pass). */
static void compare_raw(const char *js, const char *pid)
{
    json_error_t jerr;
    json_t *ev = json_loads(js, JSON_ALLOW_NUL, &jerr);
    if (!ev)
        fprintf(stderr, "json: %s at %d: %.40s\n", jerr.text, jerr.position,
                js + (jerr.position > 20 ? jerr.position - 20 : 0));
    CHECK(ev != NULL);
    if (!ev) return;
    compare_event(ev, pid);
    json_decref(ev);
}

/* big returns a JSON string literal's inside of n bytes cycling through escapes and unicode. */
static char *big(size_t n)
{
    static const char *const bits[] = {"a",       "\\\"",    "\\\\",    "\\n",
                                       "\\u0001", "\\u00e9", "\\u2603", "\\ud83d\\ude00",
                                       "/",       "\\t",     "z",       "\\u001f"};
    char *s = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; s; i++) { /* whole escapes only */
        const char *b = bits[i % (sizeof bits / sizeof bits[0])];
        if (k + strlen(b) > n) break;
        memcpy(s + k, b, strlen(b));
        k += strlen(b);
    }
    if (s) s[k] = '\0';
    return s;
}

static void check_types(void)
{
    /* created: configured fields in order, missing ones null, a contact or none */
    compare_normalized("{\"type\":\"opportunity.created\",\"id\":\"e1\",\"project_id\":\"prj_a\","
                       "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"opportunity\":{\"id\":\"o1\","
                       "\"title\":\"Big \\\"deal\\\"\\n\\u00e9\\u2603\",\"value\":1200.5}}",
                       1);
    compare_normalized("{\"type\":\"opportunity.created\",\"id\":\"e2\",\"project_id\":\"prj_a\","
                       "\"occurred_at\":\"2026-11-26T12:00:00.5+02:00\",\"opportunity\":{\"id\":7,"
                       "\"title\":{\"a\":[1,true,null,{\"b\":-0.0}]},\"value\":0.1,"
                       "\"owner\":false,\"n\\u00e9\":1e300,\"nested\":[[],{}]},"
                       "\"contact\":{\"id\":\"c1\",\"email\":\"a@b.c\",\"tags\":[\"x\",\"y\"],"
                       "\"phone\":\"not configured\"}}",
                       1);
    /* transitioned, and the won and lost it yields; stages known, unknown, none */
    compare_normalized("{\"type\":\"opportunity.transitioned\",\"id\":\"t1\",\"project_id\":"
                       "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                       "\"opportunity\":{\"id\":\"o9\",\"funnel_id\":\"fun_1\",\"title\":\"T\"},"
                       "\"contact\":{\"id\":\"c3\",\"name\":\"Bo \\u00d8\"},"
                       "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_won\"}",
                       2);
    compare_normalized("{\"type\":\"opportunity.transitioned\",\"id\":\"t2\",\"project_id\":"
                       "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                       "\"opportunity\":{\"id\":\"o9\",\"funnel_id\":\"fun_1\"},"
                       "\"to_stage_id\":\"stg_lost\"}",
                       2);
    compare_normalized("{\"type\":\"opportunity.transitioned\",\"id\":\"t3\",\"project_id\":"
                       "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                       "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_1\"},"
                       "\"from_stage_id\":\"stg_mid\",\"to_stage_id\":\"stg_gone\"}",
                       1);
    compare_normalized("{\"type\":\"opportunity.transitioned\",\"id\":\"t4\",\"project_id\":"
                       "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                       "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_2\"},"
                       "\"from_stage_id\":\"s1\",\"to_stage_id\":\"s2\"}",
                       1);
    compare_normalized("{\"type\":\"opportunity.transitioned\",\"id\":\"t5\",\"project_id\":"
                       "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                       "\"opportunity\":{\"id\":1,\"funnel_id\":\"fun_x\"},"
                       "\"from_stage_id\":\"stg_new\",\"to_stage_id\":\"stg_won\"}",
                       1);
    /* a project with no fields and no funnels */
    compare_normalized("{\"type\":\"opportunity.created\",\"id\":\"e3\",\"project_id\":\"prj_e\","
                       "\"occurred_at\":\"2026-11-26T12:00:00Z\",\"opportunity\":{\"id\":\"o\","
                       "\"title\":\"dropped\"},\"contact\":{\"id\":\"c\",\"name\":\"dropped\"}}",
                       1);
}

static void check_raw(void)
{
    /* every control character, DEL, U+2028, astral planes, an embedded NUL, in ids too */
    compare_raw("{\"type\":\"opportunity.created\",\"id\":\"e\\u0000\\u0001\\u0002\\u0003\\u0004"
                "\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012"
                "\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d"
                "\\u001e\\u001f\\u007f\\u2028\\u2029\\ud800\\udc00\\udbff\\udfff\",\"project_id\":"
                "\"prj_a\",\"occurred_at\":\"x\",\"opportunity\":{\"id\":\"\\\\/\\\"\","
                "\"title\":\"\"}}",
                "prj_a");
    /* head members of other types or absent; opportunity not an object; contact an array */
    compare_raw("{\"type\":\"opportunity.created\",\"id\":42,\"project_id\":\"prj_a\","
                "\"opportunity\":[1,2],\"contact\":[{\"id\":1}]}",
                "prj_a");
    compare_raw("{\"type\":\"opportunity.won\",\"project_id\":\"prj_a\",\"occurred_at\":null,"
                "\"opportunity\":{\"id\":null,\"value\":-9223372036854775807,\"owner\":1.5e-7,"
                "\"title\":123456789.125},\"funnel_id\":\"fun_1\",\"to_stage_id\":\"stg_won\","
                "\"from_stage_id\":17}",
                "prj_a");
    compare_raw("{\"type\":\"opportunity.lost\",\"id\":\"l\",\"project_id\":\"prj_a\","
                "\"opportunity\":{\"id\":\"o\"},\"funnel_id\":7,\"to_stage_id\":\"stg_lost\"}",
                "prj_a");
    compare_raw("{\"type\":\"unknown.type\",\"id\":\"u\",\"project_id\":\"prj_e\"}", "prj_e");
    compare_raw("{}", "prj_e");
}

static void check_large(void)
{
    static const size_t sizes[] = {1000, 16 * 1024, 300 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *pad = big(sizes[i]);
        CHECK(pad != NULL);
        if (!pad) return;
        size_t n = 3 * strlen(pad) + 1024;
        char *line = malloc(n);
        CHECK(line != NULL);
        if (line) {
            snprintf(line, n,
                     "{\"type\":\"opportunity.transitioned\",\"id\":\"big%zu\",\"project_id\":"
                     "\"prj_a\",\"occurred_at\":\"2026-11-26T12:00:00Z\","
                     "\"opportunity\":{\"id\":\"o\",\"funnel_id\":\"fun_1\",\"title\":\"%s\","
                     "\"nested\":{\"deep\":[\"%s\"]}},\"contact\":{\"id\":\"c\",\"name\":\"%s\"},"
                     "\"to_stage_id\":\"stg_won\"}",
                     i, pad, sizes[i] > 20000 ? "" : pad, sizes[i] > 20000 ? "" : pad);
            compare_raw(line, "prj_a");
        }
        free(line);
        free(pad);
    }
}

int main(void)
{
    char err[256] = "";
    json_t *doc = json_loads(cfg_text, JSON_ALLOW_NUL, NULL);
    CHECK(doc != NULL);
    CHECK_INT(config_from_json(doc, &cfg, err, sizeof err), 0);
    json_decref(doc);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return check_done("payload_splice");
    }
    check_types();
    check_raw();
    check_large();
    /* 8 normalized events + 6 raw + 3 large, by 4 or 1 webhooks: every pair compared */
    if (compared < 60) fprintf(stderr, "  only %d bodies compared\n", compared);
    CHECK(compared >= 60);
    config_free(cfg);
    return check_done("payload_splice");
}
