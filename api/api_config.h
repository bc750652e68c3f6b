/* api_config.h - what the configuration handlers (api_projects.c, api_webhooks.c) share: the
 * project a route names, and a failed store change in HTTP terms. */
#ifndef HL_API_CONFIG_H
#define HL_API_CONFIG_H

#include "api.h"

/* api_config_project: the project named by the route's first {param} in the configuration in
 * force, or NULL after answering 404 {"error": "no project \"p\""}. */
const project_t *api_config_project(api_req_t *r);

/* api_config_store_fail answers a store change that failed with rc (a negative errno) and err:
 * 400 for -EINVAL (err names the field), 503 while another writer holds the store (-EBUSY),
 * 500 otherwise. Callers answer their own 404 and 409 first. */
void api_config_store_fail(api_req_t *r, int rc, const char *err);

#endif
