/* sender_prep.c - each webhook's request parts that are the same on every attempt (URL, project,
 * static header lines, signing keys, masked-header JSON), built once per webhook per configuration
 * version and shared by its jobs, which hold a reference while they run. */
#include "sender.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sender_prep_cmp orders prepared webhooks by id. */
static int sender_prep_cmp(sender_prep_t *a, sender_prep_t *b)
{
    return strcmp(a->webhook_id, b->webhook_id);
}
RB_HEAD(sender_prep_tree, sender_prep);
RB_GENERATE_STATIC(sender_prep_tree, sender_prep, node, sender_prep_cmp)

/* The cache: every prepared webhook of one configuration version. */
struct sender_prep_cache {
    struct sender_prep_tree tree;
    int64_t version;
};

void sender_prep_unref(sender_prep_t *p)
{
    if (!p || --p->refs > 0) return;
    auth_prep_free(p->auth);
    free(p->webhook_id);
    free(p->project_id);
    free(p->url);
    free(p);
}

/* sender_prep_flush drops the cache's references (jobs keep theirs). */
static void sender_prep_flush(struct sender_prep_cache *c)
{
    sender_prep_t *p;
    while ((p = RB_MIN(sender_prep_tree, &c->tree))) {
        RB_REMOVE(sender_prep_tree, &c->tree, p);
        sender_prep_unref(p);
    }
}

void sender_prep_close(sender_t *s)
{
    if (!s->prep) return;
    sender_prep_flush(s->prep);
    free(s->prep);
    s->prep = NULL;
}

/* sender_prep_build prepares webhook wh. */
static sender_prep_t *sender_prep_build(const webhook_t *wh, char *err, size_t errlen, int *rc)
{
    sender_prep_t *p = calloc(1, sizeof *p);
    if (!p || !(p->webhook_id = strdup(wh->id)) || !(p->project_id = strdup(wh->project_id)) ||
        !(p->url = strdup(wh->url))) {
        sender_prep_unref(p);
        snprintf(err, errlen, "out of memory");
        *rc = -ENOMEM;
        return NULL;
    }
    p->refs = 1;
    p->enabled = wh->enabled;
    if ((*rc = auth_prep_new(wh, &p->auth, err, errlen)) < 0) {
        p->auth = NULL; /* kept: the project is known, the attempt fails with err */
        snprintf(p->err, sizeof p->err, "%s", err);
        p->err_rc = *rc;
    }
    /* the static lines, linked backwards onto the engine's constant tail */
    p->head = (struct curl_slist *)http_header_tail(); /* never written through */
    size_t n = p->auth ? auth_prep_nstatic(p->auth) : 0;
    for (size_t i = n; i-- > 0 && i < sizeof p->nodes / sizeof p->nodes[0];) {
        p->nodes[i].data = (char *)auth_prep_static_line(p->auth, i);
        p->nodes[i].next = p->head;
        p->head = &p->nodes[i];
    }
    *rc = 0;
    return p;
}

int sender_prep_get(sender_t *s, const char *webhook_id, sender_prep_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (!s->prep && !(s->prep = calloc(1, sizeof *s->prep))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct sender_prep_cache *c = s->prep;
    int64_t v = cfgwatch_version(s->cfg);
    if (c->version != v) { /* another configuration: everything is built again as needed */
        sender_prep_flush(c);
        c->version = v;
    }
    sender_prep_t key = {.webhook_id = (char *)webhook_id};
    sender_prep_t *p = RB_FIND(sender_prep_tree, &c->tree, &key);
    if (!p) {
        const webhook_t *wh = config_find_webhook(cfgwatch_config(s->cfg), webhook_id, NULL);
        if (!wh) {
            snprintf(err, errlen, "webhook %s no longer exists", webhook_id);
            return -ENOENT;
        }
        int rc;
        if (!(p = sender_prep_build(wh, err, errlen, &rc))) return rc;
        RB_INSERT(sender_prep_tree, &c->tree, p);
    }
    p->refs++;
    *out = p;
    return 0;
}
