/* api.h - hook-api, the HTTP face of hookline (CONTRACT.md "HTTP API"): libmicrohttpd inside
 * the daemon skeleton's libuv loop (api_http.c), a table of routes (api_routes.c) whose
 * handlers live in one file per resource (api_projects.c, api_webhooks.c, api_events.c,
 * api_deliveries.c, api_metrics.c, api_console.c), bearer tokens checked against the store
 * (api_auth.c). A handler runs on the loop thread and answers once: at once, or later after
 * api_suspend (waiting for ingest, say). */
#ifndef HL_API_H
#define HL_API_H

#include "domain/config.h"
#include "domain/store.h"
#include "util/daemon.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define API_BODY_MAX (1u << 20) /* a request body over this gets 413 */
#define API_MAX_PARAMS 4        /* {p}, {w}, {id} captured from a route's path */

typedef struct api api_t;
typedef struct api_req api_req_t;

/* Who a request's token speaks for (api_auth.c). project NULL: an admin token (any project,
 * may create and delete projects); else one project's API token or portal token. */
typedef struct api_principal {
    char name[128];     /* the token's name ("portal" for portal tokens) */
    char project[128];  /* "" for an admin token */
    int portal;         /* a short-lived portal token */
    int64_t expires_at; /* unix ms, 0 = never */
} api_principal_t;

/* What a route asks of the caller's token before its handler runs. */
typedef enum {
    API_AUTH_NONE = 0, /* /healthz, /readyz, /metrics, the console's files */
    API_AUTH_ANY,      /* any valid token (GET /v1/projects filters by scope itself) */
    API_AUTH_PROJECT,  /* a token for the project named by the route's first {param}: 403 else */
    API_AUTH_ADMIN,    /* an admin token only: 403 for a project token */
} api_auth_t;

typedef void (*api_handler_fn)(api_req_t *r);

/* One row of the route table: method ("GET", ...), a pattern whose segments are literals or
 * "{}" (captured, in order, into api_param), the auth it needs, the handler. */
typedef struct api_route {
    const char *method;
    const char *pattern; /* "/v1/projects/{}/webhooks/{}" */
    api_auth_t auth;
    api_handler_fn fn;
} api_route_t;

/* api_routes.c: the table, ended by a row with method NULL. */
extern const api_route_t api_routes[];

/* --- the request, for handlers --- */

const char *api_method(const api_req_t *r);
const char *api_path(const api_req_t *r); /* without the query string */
/* api_param: the i-th "{}" of the route, URL-decoded (NULL past the last). */
const char *api_param(const api_req_t *r, int i);
/* api_query: a query-string argument, URL-decoded, or NULL. */
const char *api_query(const api_req_t *r, const char *name);
/* api_header: a request header (case-insensitive), or NULL. */
const char *api_header(const api_req_t *r, const char *name);
/* api_body: the request body (NUL-terminated copy, len bytes; "" when none). */
const char *api_body(const api_req_t *r, size_t *len);
/* api_body_json parses the body as one JSON object: NULL after answering 400 itself with the
 * parse error (line and column) or "request body: must be a JSON object". Caller decrefs. */
json_t *api_body_json(api_req_t *r);
/* api_who: the caller's token (valid for routes with auth other than NONE). */
const api_principal_t *api_who(const api_req_t *r);
api_t *api_of(const api_req_t *r);

/* --- answering (exactly once per request) --- */

/* api_reply_json answers status with body as compact JSON (steals the reference; NULL: no
 * body, e.g. 204). */
void api_reply_json(api_req_t *r, unsigned status, json_t *body);
/* api_reply_error answers status with {"error": message}. */
__attribute__((format(printf, 3, 4))) void api_reply_error(api_req_t *r, unsigned status,
                                                           const char *fmt, ...);
/* api_reply_raw answers status with len bytes of content_type; data is copied unless
 * is_static (then it must outlive the response: an embedded console file). */
void api_reply_raw(api_req_t *r, unsigned status, const char *content_type, const void *data,
                   size_t len, int is_static);
/* api_reply_header adds a header to the answer about to be given (call before api_reply_*). */
void api_reply_header(api_req_t *r, const char *name, const char *value);

/* api_suspend: the handler returns without answering; some callback answers later (with
 * api_reply_*), on the loop thread. A request whose client went away meanwhile is still
 * answered (the answer is then dropped); api_req_t stays valid until answered. */
void api_suspend(api_req_t *r);

/* --- what handlers reach --- */

daemon_t *api_daemon(api_t *a);
/* api_store: the store (DATA/hookline.db), opened once on the loop thread. */
store_t *api_store(api_t *a);
/* api_config: the configuration in force now (reloaded when the store's version moved:
 * cfgwatch_catch_up), never NULL after start. */
const config_t *api_config(api_t *a);
/* api_portal_ttl: --portal-ttl in seconds; api_public_url: the base URL portal links use
 * ("http://HOST:PORT", from --public-url or --listen). */
int64_t api_portal_ttl(const api_t *a);
const char *api_public_url(const api_t *a);

/* --- handlers (one file per resource) --- */

/* api_projects.c */
void api_projects_list(api_req_t *r);
void api_project_put(api_req_t *r);
void api_project_get(api_req_t *r);
void api_project_delete(api_req_t *r);
/* api_webhooks.c */
void api_webhooks_list(api_req_t *r);
void api_webhook_create(api_req_t *r);
void api_webhook_get(api_req_t *r);
void api_webhook_patch(api_req_t *r);
void api_webhook_delete(api_req_t *r);
void api_webhook_recover(api_req_t *r);
/* api_events.c */
void api_events_publish(api_req_t *r);
/* api_deliveries.c */
void api_deliveries_list(api_req_t *r);
void api_delivery_get(api_req_t *r);
void api_delivery_redeliver(api_req_t *r);
/* api_auth.c */
void api_portal_create(api_req_t *r);
/* api_metrics.c */
void api_metrics(api_req_t *r);
void api_healthz(api_req_t *r);
void api_readyz(api_req_t *r);
/* api_console.c: GET / and the console's files (the route "/{}" and "/"). */
void api_console(api_req_t *r);

#endif
