/* fuzz_config.c - libFuzzer target for `hookctl import`'s configuration parser: a document that
 * config_from_json accepts must render (config_to_json with secrets) to a document it accepts
 * again, and both parses must be the same configuration. */
#include "fuzz.h"

#include "domain/config.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

/* fuzz_render: the configuration as its import document, secrets included. */
static json_t *fuzz_render(const config_t *cfg)
{
    json_t *doc = config_to_json(cfg, 1);
    FUZZ_ASSERT(doc && json_is_object(doc), "config_to_json gave no document");
    return doc;
}

/* fuzz_same_str: both NULL or equal strings. */
static int fuzz_same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* fuzz_same_config compares two configurations field by field. */
static void fuzz_same_config(const config_t *a, const config_t *b)
{
    FUZZ_ASSERT(a->nprojects == b->nprojects, "project count");
    for (size_t i = 0; i < a->nprojects; i++) {
        const project_t *p = &a->projects[i], *q = &b->projects[i];
        FUZZ_ASSERT(fuzz_same_str(p->id, q->id) && fuzz_same_str(p->name, q->name), "project %zu",
                    i);
        FUZZ_ASSERT(p->nopportunity_fields == q->nopportunity_fields &&
                        p->ncontact_fields == q->ncontact_fields && p->nfunnels == q->nfunnels &&
                        p->nwebhooks == q->nwebhooks,
                    "project %s: counts", p->id);
        for (size_t k = 0; k < p->nopportunity_fields; k++)
            FUZZ_ASSERT(fuzz_same_str(p->opportunity_fields[k], q->opportunity_fields[k]),
                        "project %s: opportunity field %zu", p->id, k);
        for (size_t k = 0; k < p->ncontact_fields; k++)
            FUZZ_ASSERT(fuzz_same_str(p->contact_fields[k], q->contact_fields[k]),
                        "project %s: contact field %zu", p->id, k);
        for (size_t k = 0; k < p->nfunnels; k++) {
            const funnel_t *f = &p->funnels[k], *g = &q->funnels[k];
            FUZZ_ASSERT(fuzz_same_str(f->id, g->id) && fuzz_same_str(f->name, g->name) &&
                            fuzz_same_str(f->won_stage_id, g->won_stage_id) &&
                            fuzz_same_str(f->lost_stage_id, g->lost_stage_id) &&
                            f->nstages == g->nstages,
                        "funnel %s", f->id);
            for (size_t s = 0; s < f->nstages; s++)
                FUZZ_ASSERT(fuzz_same_str(f->stages[s].id, g->stages[s].id) &&
                                fuzz_same_str(f->stages[s].name, g->stages[s].name),
                            "funnel %s: stage %zu", f->id, s);
        }
        for (size_t k = 0; k < p->nwebhooks; k++) {
            const webhook_t *w = &p->webhooks[k], *v = &q->webhooks[k];
            FUZZ_ASSERT(fuzz_same_str(w->id, v->id) &&
                            fuzz_same_str(w->project_id, v->project_id) &&
                            fuzz_same_str(w->name, v->name) && fuzz_same_str(w->url, v->url) &&
                            w->enabled == v->enabled && w->events == v->events &&
                            fuzz_same_str(w->secret, v->secret),
                        "webhook %s", w->id);
            FUZZ_ASSERT(w->auth.type == v->auth.type &&
                            fuzz_same_str(w->auth.username, v->auth.username) &&
                            fuzz_same_str(w->auth.password, v->auth.password) &&
                            fuzz_same_str(w->auth.key, v->auth.key) &&
                            fuzz_same_str(w->auth.token, v->auth.token),
                        "webhook %s: auth", w->id);
            FUZZ_ASSERT(config_find_webhook(a, w->id, NULL) != NULL, "webhook %s not found", w->id);
        }
        FUZZ_ASSERT(config_find_project(a, p->id) != NULL, "project %s not found", p->id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512], err2[512];
    json_error_t jerr;
    config_t *cfg = NULL, *again = NULL;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) return 0;
    err[0] = '\0';
    int r = config_from_json(doc, &cfg, err, sizeof err);
    json_decref(doc);
    if (r < 0) {
        FUZZ_ASSERT(r == -EINVAL && err[0] && !cfg, "refusal %d without a reason", r);
        return 0;
    }
    FUZZ_ASSERT(r == 0 && cfg, "config_from_json: %d", r);

    json_t *out = fuzz_render(cfg);
    /* the exported text goes back through the importer's own parser, as a file would */
    char *text = json_dumps(out, JSON_COMPACT);
    FUZZ_ASSERT(text, "json_dumps of the export");
    json_t *reread = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_ASSERT(reread, "export is not valid JSON: %s", jerr.text);
    err2[0] = '\0';
    r = config_from_json(reread, &again, err2, sizeof err2);
    FUZZ_ASSERT(r == 0, "export refused on import: %s", err2);
    fuzz_same_config(cfg, again);
    json_t *out2 = fuzz_render(again);
    FUZZ_ASSERT(json_equal(out, out2), "export of the re-import differs");

    /* the masked export renders too (it need not import: masked secrets are not whsec_) */
    json_t *masked = config_to_json(cfg, 0);
    FUZZ_ASSERT(masked, "config_to_json without secrets");
    json_decref(masked);

    json_decref(out2);
    json_decref(reread);
    free(text);
    json_decref(out);
    config_free(again);
    config_free(cfg);
    return 0;
}
