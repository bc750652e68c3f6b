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

/* base64 helpers (standard alphabet, padded). auth_base64_decode returns the length or -EINVAL. */
char *auth_base64_encode(const unsigned char *data, size_t n);
long auth_base64_decode(const char *s, unsigned char *out, size_t outlen);

#endif
