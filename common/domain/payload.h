/* payload.h - what a webhook receives: invocation ids, matching, and the exact request body. */
#ifndef HL_PAYLOAD_H
#define HL_PAYLOAD_H

#include "domain/config.h"
#include <jansson.h>
#include <stddef.h>

#define INVOCATION_ID_LEN 40 /* "inv_" + 32 hex + NUL, rounded */

/* payload_invocation_id derives the id from (event id, webhook id) alone: "inv_" + the first
 * 16 bytes of SHA-256(event_id NUL webhook_id) in hex. Same on every attempt and replay. */
void payload_invocation_id(const char *event_id, const char *webhook_id,
                           char out[INVOCATION_ID_LEN]);

/* payload_matches: the webhook is enabled, belongs to project_id and lists the type bit. */
int payload_matches(const webhook_t *wh, const char *project_id, unsigned type);

/* payload_build returns the exact body (malloc'd, NUL-terminated, *len set) for a normalized
 * event (event.h) and a matching webhook of project p: id, type, occurred_at, project_id,
 * webhook {id,name}, data {opportunity, contact, and funnel/from_stage/to_stage for
 * transitioned, won and lost} with all and only the configured fields in configured order
 * (null when not sent), names from the configuration (null when unknown). NULL on ENOMEM. */
char *payload_build(const json_t *event, const project_t *p, const webhook_t *wh, size_t *len);

#endif
