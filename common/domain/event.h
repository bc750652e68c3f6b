/* event.h - producer events: validation against the contract, normalization, and won/lost
 * derivation from the funnel configuration. */
#ifndef HL_EVENT_H
#define HL_EVENT_H

#include "domain/config.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_MAX 128
#define EVENT_MAX_BYTES (1u << 20) /* one input line or frame */

/* event_parse_json parses one JSON Lines line (no trailing newline needed) into an object,
 * rejecting duplicate keys, invalid UTF-8, more than EVENT_MAX_BYTES. Returns 0 or -EINVAL with
 * a reason ("invalid JSON at column 12: ..."). Caller decrefs *out. */
int event_parse_json(const char *line, size_t len, json_t **out, char *err, size_t errlen);

/* event_normalize validates one input object and produces the normalized events: one, or two
 * when a transition enters the funnel's configured won (lost) stage ("<id>.won" follows the
 * transition). Rules: type is opportunity.created|opportunity.transitioned (won/lost are
 * refused as input); id matches [A-Za-z0-9._:-]{1,128}, else a UUIDv7 is assigned; project_id
 * a non-empty string; occurred_at RFC 3339 (normalized to UTC, "...Z"), else now; opportunity an
 * object with a non-empty string or integer id (and funnel_id for transitions); contact absent,
 * null, or an object with id; to_stage_id required for transitions; from_stage_id optional
 * string or null. Unknown top-level keys are refused.
 *
 * Normalized form (internal JSON, what the router reads):
 *   {"id","type","project_id","occurred_at","opportunity":{...as sent},"contact":{...}|null,
 *    and for transitioned/won/lost: "funnel_id","from_stage_id" (string|null),"to_stage_id"}
 * cfg may be NULL (no derivation). Returns the count (1 or 2) with out[] set (caller decrefs),
 * or -EINVAL with a reason naming the field ("opportunity.id: missing"). */
int event_normalize(const json_t *in, const config_t *cfg, int64_t now_ms, json_t *out[2],
                    char *err, size_t errlen);

/* event_is_routed: 1 when cfg knows the event's project (and funnel for transitions). */
int event_is_routed(const json_t *event, const config_t *cfg);

#endif
