/* config.h - the configuration model: projects, funnels and their stages, webhooks with auth.
 * Parsed and validated from the import JSON, rendered back for export, looked up by id. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Event types, usable as a bit set in webhook_t.events. */
enum {
    EVT_CREATED = 1 << 0,      /* opportunity.created */
    EVT_TRANSITIONED = 1 << 1, /* opportunity.transitioned */
    EVT_WON = 1 << 2,          /* opportunity.won */
    EVT_LOST = 1 << 3,         /* opportunity.lost */
};
/* config_event_type_parse: "opportunity.won" -> EVT_WON, 0 when unknown. */
unsigned config_event_type_parse(const char *s);
/* config_event_type_name: EVT_WON -> "opportunity.won", NULL when not exactly one known bit. */
const char *config_event_type_name(unsigned type);

typedef enum { AUTH_NONE = 0, AUTH_BASIC, AUTH_API_KEY, AUTH_BEARER } auth_type_t;

typedef struct auth {
    auth_type_t type;
    char *username, *password; /* basic */
    char *key;                 /* api_key */
    char *token;               /* bearer */
} auth_t;

typedef struct stage {
    char *id, *name;
} stage_t;

typedef struct funnel {
    char *id, *name;
    stage_t *stages;
    size_t nstages;
    char *won_stage_id, *lost_stage_id; /* NULL when absent */
} funnel_t;

/* One signing secret of a rotation list ("secrets" in the import format). */
typedef struct webhook_secret {
    char *secret;       /* "whsec_..." */
    int64_t expires_at; /* unix ms after which it no longer signs; 0 = never */
} webhook_secret_t;

typedef struct webhook {
    char *id, *project_id, *name, *url;
    int enabled;
    unsigned events; /* EVT_* bits */
    auth_t auth;
    char *secret; /* "whsec_..." or NULL: the "secret" key, current, never expires */
    /* The "secrets" key: rotation. Every one not yet expired signs too (Standard Webhooks lists
     * several signatures space-separated), so receivers can move to a new secret at leisure. */
    webhook_secret_t *secrets;
    size_t nsecrets;
} webhook_t;

typedef struct project {
    char *id, *name;
    char **opportunity_fields;
    size_t nopportunity_fields;
    char **contact_fields;
    size_t ncontact_fields;
    funnel_t *funnels;
    size_t nfunnels;
    webhook_t *webhooks;
    size_t nwebhooks;
} project_t;

typedef struct config {
    project_t *projects;
    size_t nprojects;
} config_t;

/* config_from_json validates the whole document (shape, types, unique ids across the file,
 * URL syntax: absolute http/https with a host, known event types, auth fields per type,
 * secret "whsec_" + base64, "secrets" entries {secret, expires_at (RFC 3339, optional)} with no
 * secret listed twice across "secret" and "secrets", won/lost stage ids that exist in the funnel)
 * and builds a config.
 * Returns 0, or -EINVAL with err naming the path ("projects[0].webhooks[1].url: ...").
 * Nothing is built on error. Caller frees with config_free. */
int config_from_json(const json_t *doc, config_t **out, char *err, size_t errlen);
/* config_to_json renders the import format; secrets (passwords, keys, tokens, signing
 * secrets, every entry of "secrets") are "***" unless with_secrets. Caller decrefs. */
json_t *config_to_json(const config_t *cfg, int with_secrets);
/* config_project_from_json validates one project object (as in the import file, "webhooks"
 * included if given; errors name the key: "funnels[0].won_stage_id: ...") into *out (caller
 * config_project_clear; nothing to free on error). config_project_to_json renders it without
 * its webhooks (the API's project). Caller decrefs. */
int config_project_from_json(const json_t *obj, project_t *out, char *err, size_t errlen);
json_t *config_project_to_json(const project_t *p);
void config_project_clear(project_t *p);
/* config_webhook_from_json validates one webhook object (as in the import file) for project_id. */
int config_webhook_from_json(const json_t *obj, const char *project_id, webhook_t *out, char *err,
                             size_t errlen);
json_t *config_webhook_to_json(const webhook_t *wh, int with_secrets);
/* config_webhook_merge (config_patch.c): the object old becomes under patch, a partial webhook
 * object: each top-level key of patch replaces old's whole (null drops an optional key; "***"
 * in a credential is left for the store to unmask against old). patch may repeat but not change
 * "id" and "project_id". Returns a new object to validate with config_webhook_from_json (caller
 * decrefs; it holds old's credentials in clear), or NULL with err naming the key. */
json_t *config_webhook_merge(const webhook_t *old, const json_t *patch, char *err, size_t errlen);
void config_webhook_clear(webhook_t *wh);
/* config_validate_url: 0 when url is an absolute http(s) URL with a host, else -EINVAL + err. */
int config_validate_url(const char *url, char *err, size_t errlen);

const project_t *config_find_project(const config_t *cfg, const char *id);
const funnel_t *config_find_funnel(const project_t *p, const char *id);
const stage_t *config_find_stage(const funnel_t *f, const char *id);
/* config_find_webhook looks across all projects; *project (may be NULL) gets its project. */
const webhook_t *config_find_webhook(const config_t *cfg, const char *id,
                                     const project_t **project);

void config_free(config_t *cfg);

/* The mask export shows for a credential or secret. In an import (or an API write) it means
 * "keep the value stored for this webhook": config_unmask replaces every masked password, key,
 * token, secret and "secrets" entry (by position) of cfg with the one stored for the same webhook
 * id in old (NULL: nothing stored); where none is stored it fails with -EINVAL and err naming the
 * field, so the mask is never stored as a credential. config_webhook_masked names the first
 * masked field of one webhook ("auth.token", ...), or NULL. */
#define CONFIG_MASK "***"
int config_unmask(config_t *cfg, const config_t *old, char *err, size_t errlen);
/* config_webhook_unmask does it for one webhook against its stored self (NULL: none); path
 * prefixes the field in err ("webhook": "webhook.auth.token: ..."). */
int config_webhook_unmask(webhook_t *wh, const webhook_t *old, const char *path, char *err,
                          size_t errlen);
const char *config_webhook_masked(const webhook_t *wh);

#endif
