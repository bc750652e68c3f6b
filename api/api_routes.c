/* api_routes.c - hook-api's route table: CONTRACT.md's table of /v1/ rows, the probes, metrics
 * and the console. The first match of method and pattern wins; a path that matches a pattern
 * under another method gets 405, none at all 404. */
#include "api.h"

const api_route_t api_routes[] = {
    {"GET", "/v1/projects", API_AUTH_ANY, api_projects_list},
    {"PUT", "/v1/projects/{}", API_AUTH_ADMIN, api_project_put},
    {"GET", "/v1/projects/{}", API_AUTH_PROJECT, api_project_get},
    {"DELETE", "/v1/projects/{}", API_AUTH_ADMIN, api_project_delete},
    {"GET", "/v1/projects/{}/webhooks", API_AUTH_PROJECT, api_webhooks_list},
    {"POST", "/v1/projects/{}/webhooks", API_AUTH_PROJECT, api_webhook_create},
    {"GET", "/v1/projects/{}/webhooks/{}", API_AUTH_PROJECT, api_webhook_get},
    {"PATCH", "/v1/projects/{}/webhooks/{}", API_AUTH_PROJECT, api_webhook_patch},
    {"DELETE", "/v1/projects/{}/webhooks/{}", API_AUTH_PROJECT, api_webhook_delete},
    {"POST", "/v1/projects/{}/webhooks/{}/recover", API_AUTH_PROJECT, api_webhook_recover},
    {"POST", "/v1/projects/{}/events", API_AUTH_PROJECT, api_events_publish},
    {"GET", "/v1/projects/{}/deliveries", API_AUTH_PROJECT, api_deliveries_list},
    {"GET", "/v1/projects/{}/deliveries/{}", API_AUTH_PROJECT, api_delivery_get},
    {"POST", "/v1/projects/{}/deliveries/{}/redeliver", API_AUTH_PROJECT, api_delivery_redeliver},
    {"POST", "/v1/projects/{}/portal", API_AUTH_PROJECT, api_portal_create},
    {"GET", "/metrics", API_AUTH_NONE, api_metrics},
    {"GET", "/healthz", API_AUTH_NONE, api_healthz},
    {"GET", "/readyz", API_AUTH_NONE, api_readyz},
    {"GET", "/", API_AUTH_NONE, api_console},
    {"GET", "/{}", API_AUTH_NONE, api_console},
    {NULL, NULL, API_AUTH_NONE, NULL},
};
