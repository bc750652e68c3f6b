/* auth.h - the request headers of one attempt: content type, user agent, Standard Webhooks id,
 * timestamp and signature, event type, attempt, and the webhook's credentials; and masking. */
#ifndef HL_AUTH_H
#define HL_AUTH_H

#include "domain/config.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct auth_header {
    char *name, *value;
    int sensitive; /* credential or signature: shown as "***" wherever a person reads it */
} auth_header_t;

typedef struct header_list {
    auth_header_t *v;
    size_t n;
} header_list_t;

/* auth_build_headers fills out with the contract's headers, in this order: Content-Type,
 * User-Agent, webhook-id, webhook-timestamp, webhook-signature, X-Webhook-Event,
 * X-Webhook-Attempt, then Authorization or X-API-KEY per wh->auth. timestamp_s is the attempt's
 * time: it goes into webhook-timestamp and the signatures, and decides which secrets sign.
 * webhook-signature holds one "v1,<sig>" per current secret, space-separated (Standard Webhooks):
 * wh->secret, then each wh->secrets[i] whose expires_at is 0 or later than timestamp_s; it is
 * left out when no secret is current. Returns 0, or a negative errno (-EINVAL for an undecodable
 * secret) with err naming the webhook (never the secret). */
int auth_build_headers(const webhook_t *wh, const char *invocation_id, const char *event_type,
                       int attempt, int64_t timestamp_s, const char *body, size_t body_len,
                       header_list_t *out, char *err, size_t errlen);

/* auth_sign computes "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" where key is the base64
 * part of "whsec_<base64>" (a secret without the prefix is decoded whole). Returns 0 or -EINVAL. */
int auth_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
              size_t body_len, char *out, size_t outlen);

/* auth_headers_json renders {name: value} with sensitive values as "***". Caller decrefs. */
json_t *auth_headers_json(const header_list_t *h);
/* auth_header_line: "Name: value" (malloc'd) for libcurl. */
char *auth_header_line(const auth_header_t *h);
void auth_headers_free(header_list_t *h);

/* A webhook's request parts that are the same on every attempt, built once (auth_prep_new): the
 * static header lines, the decoded signing keys, and the masked JSON around the attempt's own
 * headers. An attempt then only writes id, timestamp, signature, event type and attempt number
 * (auth_prep_attempt), with no allocation. The headers and their masked JSON are exactly
 * auth_build_headers' and auth_headers_json's (the same names, values, order). Not thread-safe:
 * one thread signs with one auth_prep_t. */
typedef struct auth_prep auth_prep_t;
#define AUTH_ATTEMPT_LINES 5 /* webhook-id, -timestamp, -signature, X-Webhook-Event, -Attempt */

/* auth_prep_new prepares wh (copied: wh may go away). Returns 0 and *out, or a negative errno
 * with err naming the webhook (never a secret): -EINVAL for an undecodable secret or an unknown
 * auth type. */
int auth_prep_new(const webhook_t *wh, auth_prep_t **out, char *err, size_t errlen);
void auth_prep_free(auth_prep_t *p);
/* auth_prep_nstatic / auth_prep_static_line: the "Name: value" lines sent after the attempt's
 * own on every attempt: Content-Type, User-Agent, then the credential header if any. */
size_t auth_prep_nstatic(const auth_prep_t *p);
const char *auth_prep_static_line(const auth_prep_t *p, size_t i);
/* auth_prep_attempt_cap: the bytes auth_prep_attempt needs for an invocation id of inv_len and
 * an event type of et_len bytes. */
size_t auth_prep_attempt_cap(const auth_prep_t *p, size_t inv_len, size_t et_len);
/* auth_prep_attempt writes the attempt's header lines into buf (cap bytes, at least
 * auth_prep_attempt_cap), NUL-terminated one after another, with lines[0..*n) pointing at them
 * (webhook-signature left out when no secret is current at timestamp_s), and *masked = the
 * masked JSON object of every header (static ones included), also inside buf. Returns 0, or
 * -ENOSPC when cap is short, -EINVAL when signing failed. */
int auth_prep_attempt(const auth_prep_t *p, const char *inv, const char *event_type, int attempt,
                      int64_t timestamp_s, const void *body, size_t body_len, char *buf, size_t cap,
                      const char *lines[AUTH_ATTEMPT_LINES], size_t *n, const char **masked);

/* base64 helpers (standard alphabet, padded). auth_base64_decode returns the length or -EINVAL. */
char *auth_base64_encode(const unsigned char *data, size_t n);
long auth_base64_decode(const char *s, unsigned char *out, size_t outlen);

#endif
