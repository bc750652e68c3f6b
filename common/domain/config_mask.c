/* config_mask.c - masked values round-trip: export shows every credential and signing secret as
 * "***", and an import of that text keeps what is stored instead of storing the mask. */
#include "domain/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mask_is: the field holds the mask. */
static int mask_is(const char *v)
{
    return v && strcmp(v, CONFIG_MASK) == 0;
}

/* mask_take replaces *field (the mask) with a copy of stored; -EINVAL with err naming the field
 * when nothing is stored, -ENOMEM. */
static int mask_take(char **field, const char *stored, const char *path, const char *name,
                     const char *id, char *err, size_t errlen)
{
    if (!stored || mask_is(stored)) {
        snprintf(err, errlen,
                 "%s.%s: \"" CONFIG_MASK "\" (the export mask) keeps the stored value, but "
                 "webhook \"%s\" has no %s stored",
                 path, name, id, name);
        return -EINVAL;
    }
    char *copy = strdup(stored);
    if (!copy) {
        snprintf(err, errlen, "%s.%s: out of memory", path, name);
        return -ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
}

/* mask_webhook unmasks one webhook against its stored self (NULL: none). */
static int mask_webhook(webhook_t *wh, const webhook_t *old, const char *path, char *err,
                        size_t errlen)
{
    /* an auth field is kept only from stored auth of the same type */
    const auth_t *oa = old && old->auth.type == wh->auth.type ? &old->auth : NULL;
    int rc = 0;
    if (mask_is(wh->auth.password))
        rc = mask_take(&wh->auth.password, oa ? oa->password : NULL, path, "auth.password", wh->id,
                       err, errlen);
    if (rc == 0 && mask_is(wh->auth.key))
        rc = mask_take(&wh->auth.key, oa ? oa->key : NULL, path, "auth.key", wh->id, err, errlen);
    if (rc == 0 && mask_is(wh->auth.token))
        rc = mask_take(&wh->auth.token, oa ? oa->token : NULL, path, "auth.token", wh->id, err,
                       errlen);
    if (rc == 0 && mask_is(wh->secret))
        rc = mask_take(&wh->secret, old ? old->secret : NULL, path, "secret", wh->id, err, errlen);
    for (size_t i = 0; rc == 0 && i < wh->nsecrets; i++) {
        char name[48];
        snprintf(name, sizeof name, "secrets[%zu].secret", i);
        if (mask_is(wh->secrets[i].secret))
            rc = mask_take(&wh->secrets[i].secret,
                           old && i < old->nsecrets ? old->secrets[i].secret : NULL, path, name,
                           wh->id, err, errlen);
    }
    return rc;
}

int config_unmask(config_t *cfg, const config_t *old, char *err, size_t errlen)
{
    for (size_t i = 0; cfg && i < cfg->nprojects; i++) {
        project_t *p = &cfg->projects[i];
        for (size_t j = 0; j < p->nwebhooks; j++) {
            char path[64];
            snprintf(path, sizeof path, "projects[%zu].webhooks[%zu]", i, j);
            const webhook_t *o = old ? config_find_webhook(old, p->webhooks[j].id, NULL) : NULL;
            int rc = mask_webhook(&p->webhooks[j], o, path, err, errlen);
            if (rc < 0) return rc;
        }
    }
    return 0;
}

const char *config_webhook_masked(const webhook_t *wh)
{
    if (mask_is(wh->auth.password)) return "auth.password";
    if (mask_is(wh->auth.key)) return "auth.key";
    if (mask_is(wh->auth.token)) return "auth.token";
    if (mask_is(wh->secret)) return "secret";
    for (size_t i = 0; i < wh->nsecrets; i++)
        if (mask_is(wh->secrets[i].secret)) return "secrets";
    return NULL;
}
