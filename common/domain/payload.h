/* payload.h - what a webhook receives: invocation ids, matching, and the exact request body. */
#ifndef HL_PAYLOAD_H
#define HL_PAYLOAD_H

#include "domain/config.h"
#include "domain/job.h"
#include <jansson.h>
#include <stddef.h>

#define INVOCATION_ID_LEN 40 /* "inv_" + 32 hex + NUL, rounded */

/* payload_invocation_id derives the id from (event id, webhook id) alone: "inv_" + the first
 * 16 bytes of SHA-256(event_id NUL webhook_id) in hex. Same on every attempt and replay. */
void payload_invocation_id(const char *event_id, const char *webhook_id,
                           char out[INVOCATION_ID_LEN]);

/* payload_matches: the webhook is enabled, belongs to project_id and lists the type bit. */
int payload_matches(const webhook_t *wh, const char *project_id, unsigned type);

/* The part of every body of one event that no webhook changes, rendered once: a body is head,
 * then its webhook's part (payload_webhook_part), then tail. Both views share one allocation. */
typedef struct payload_event {
    job_str_t head; /* {"id":…,"type":…,"occurred_at":…,"project_id":…,"webhook": */
    job_str_t tail; /* ,"data":{…}} */
} payload_event_t;

/* payload_event_build renders the event part of the bodies of a normalized event (event.h) for
 * the webhooks of project p (the data member depends on p's fields and funnels, not on the
 * webhook). Returns 0 or -ENOMEM; free with payload_event_free. */
int payload_event_build(payload_event_t *pe, const json_t *event, const project_t *p);
void payload_event_free(payload_event_t *pe);

/* payload_webhook_part returns the webhook member's value {"id":…,"name":…} (name null when
 * unset; malloc'd, not NUL-terminated, *len set), or NULL on ENOMEM. The configuration's strings
 * are valid UTF-8 without NUL (config.c reads them through jansson). */
char *payload_webhook_part(const webhook_t *wh, size_t *len);

/* payload_build returns the exact body (malloc'd, NUL-terminated, *len set) for a normalized
 * event (event.h) and a matching webhook of project p: id, type, occurred_at, project_id,
 * webhook {id,name}, data {opportunity, contact, and funnel/from_stage/to_stage for
 * transitioned, won and lost} with all and only the configured fields in configured order
 * (null when not sent), names from the configuration (null when unknown). NULL on ENOMEM. The same
 * bytes as the event part and the webhook part spliced (what the router sends). */
char *payload_build(const json_t *event, const project_t *p, const webhook_t *wh, size_t *len);

#endif
