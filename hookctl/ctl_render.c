/* ctl_render.c - hookctl render: the ingest and router work in-process (normalize, derive,
 * match, build body and headers) for JSON Lines input; prints what would be sent, sends nothing. */
#include "ctl.h"

#include "domain/auth.h"
#include "domain/event.h"
#include "domain/payload.h"
#include "util/timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ctl_render_event: print one object per webhook of the event's project that matches. Returns the
 * count of failures (after printing "line N: ..." for each). */
static int ctl_render_event(const config_t *cfg, const json_t *ev, unsigned long line,
                            int64_t now_ms)
{
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *project_id = json_string_value(json_object_get(ev, "project_id"));
    const project_t *p = project_id ? config_find_project(cfg, project_id) : NULL;
    unsigned bit = type ? config_event_type_parse(type) : 0;
    int failures = 0;

    if (p == NULL || id == NULL || bit == 0) return 0; /* unrouted: nothing would be sent */
    for (size_t i = 0; i < p->nwebhooks; i++) {
        const webhook_t *wh = &p->webhooks[i];
        char inv[INVOCATION_ID_LEN], err[256] = "";
        header_list_t hl = {0};
        size_t len;

        if (!payload_matches(wh, project_id, bit)) continue;
        char *body = payload_build(ev, p, wh, &len);
        if (body == NULL) {
            fprintf(stderr, "line %lu: webhook %s: cannot build the body\n", line, wh->id);
            failures++;
            continue;
        }
        payload_invocation_id(id, wh->id, inv);
        int rc =
            auth_build_headers(wh, inv, type, 1, now_ms / 1000, body, len, &hl, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "line %lu: webhook %s: %s\n", line, wh->id,
                    err[0] ? err : strerror(-rc));
            free(body);
            failures++;
            continue;
        }
        json_t *o = json_object();
        json_object_set_new(o, "invocation_id", json_string(inv));
        json_object_set_new(o, "webhook_id", json_string(wh->id));
        json_object_set_new(o, "event_type", json_string(type));
        json_object_set_new(o, "url", json_string(wh->url));
        json_object_set_new(o, "headers", auth_headers_json(&hl));
        json_object_set_new(o, "body", json_stringn(body, len));
        char *text = json_dumps(o, JSON_COMPACT);
        if (text) {
            puts(text);
            free(text);
        } else {
            fprintf(stderr, "line %lu: webhook %s: cannot render the output\n", line, wh->id);
            failures++;
        }
        json_decref(o);
        auth_headers_free(&hl);
        free(body);
    }
    return failures;
}

/* ctl_render_run: hookctl render [FILE|-]. */
int ctl_render_run(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    const char *name;
    store_t *st;
    config_t *cfg;
    char err[512] = "", *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long line_no = 0, rejected = 0;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind > 1) return ctl_usage_error(ctl, "expected at most one FILE");
    FILE *in = ctl_input_open(ctl, optind < argc ? argv[optind] : "-", &name);
    if (in == NULL) return CTL_EXIT_USAGE;
    if ((rc = ctl_store_open(ctl, &st)) != 0) {
        ctl_input_close(in);
        return rc;
    }
    rc = store_load_config(st, &cfg, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        ctl_error(ctl, "cannot load configuration: %s", err[0] ? err : strerror(-rc));
        ctl_input_close(in);
        return CTL_EXIT_FAIL;
    }
    while ((n = getline(&line, &cap, in)) >= 0) {
        json_t *obj, *out[2];
        size_t len = (size_t)n;
        line_no++;
        if (len > 0 && line[len - 1] == '\n') len--;
        if (ctl_line_is_blank(line, len)) continue;
        int64_t now = time_now_ms();
        err[0] = '\0';
        if (event_parse_json(line, len, &obj, err, sizeof err) < 0) {
            fprintf(stderr, "line %lu: %s\n", line_no, err);
            rejected++;
            continue;
        }
        int k = event_normalize(obj, cfg, now, out, err, sizeof err);
        json_decref(obj);
        if (k < 0) {
            fprintf(stderr, "line %lu: %s\n", line_no, err);
            rejected++;
            continue;
        }
        int failures = 0;
        for (int i = 0; i < k; i++) {
            failures += ctl_render_event(cfg, out[i], line_no, now);
            json_decref(out[i]);
        }
        if (failures) rejected++;
    }
    if (ferror(in)) {
        ctl_error(ctl, "%s: %s", name, strerror(errno));
        rc = CTL_EXIT_FAIL;
    } else {
        rc = rejected ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    free(line);
    ctl_input_close(in);
    config_free(cfg);
    return rc;
}
