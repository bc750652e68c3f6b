/* auth.c - the headers of one delivery attempt: Standard Webhooks id, timestamp and HMAC-SHA256
 * signature, the webhook's credentials (basic, api key, bearer), masking, and base64. */
#include "domain/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HOOKLINE_VERSION
#define HOOKLINE_VERSION "0.0.0"
#endif

#define AUTH_SECRET_PREFIX "whsec_"
#define AUTH_MASK "***"
#define AUTH_SIG_MAX 64 /* "v1," + 44 base64 chars + NUL, rounded */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *auth_base64_encode(const unsigned char *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out) return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* b64_value: the 6-bit value of one alphabet character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long auth_base64_decode(const char *s, unsigned char *out, size_t outlen)
{
    size_t len = strlen(s);
    /* Padding is optional (some secrets are published without it), but only at the end. */
    size_t pad = 0;
    while (len > 0 && s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4 != 0) return -EINVAL;
    if (len % 4 == 1) return -EINVAL;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > outlen) return -EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    return (long)n;
}

int auth_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
              size_t body_len, char *out, size_t outlen)
{
    if (!secret || !msg_id || (!body && body_len)) return -EINVAL;
    const char *b64 = secret;
    if (strncmp(b64, AUTH_SECRET_PREFIX, strlen(AUTH_SECRET_PREFIX)) == 0)
        b64 += strlen(AUTH_SECRET_PREFIX);
    size_t keycap = strlen(b64) / 4 * 3 + 3;
    unsigned char *key = malloc(keycap ? keycap : 1);
    if (!key) return -ENOMEM;
    long keylen = auth_base64_decode(b64, key, keycap);
    if (keylen <= 0) {
        free(key);
        return -EINVAL;
    }

    char *prefix = NULL;
    int plen = asprintf(&prefix, "%s.%" PRId64 ".", msg_id, timestamp_s);
    if (plen < 0) prefix = NULL;
    unsigned char *msg = plen >= 0 ? malloc((size_t)plen + body_len) : NULL;
    if (!msg) {
        free(prefix);
        free(key);
        return -ENOMEM;
    }
    size_t mlen = (size_t)plen + body_len;
    memcpy(msg, prefix, (size_t)plen);
    free(prefix);
    if (body_len) memcpy(msg + plen, body, body_len);

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    unsigned char *ok = HMAC(EVP_sha256(), key, (int)keylen, msg, mlen, mac, &maclen);
    OPENSSL_cleanse(key, keycap);
    free(key);
    free(msg);
    if (!ok) return -EINVAL;
    char *sig = auth_base64_encode(mac, maclen);
    if (!sig) return -ENOMEM;
    int n = snprintf(out, outlen, "v1,%s", sig);
    free(sig);
    return n > 0 && (size_t)n < outlen ? 0 : -EINVAL;
}

/* header_push appends one header (copies name and value). */
static int header_push(header_list_t *h, const char *name, const char *value, int sensitive)
{
    auth_header_t *v = realloc(h->v, (h->n + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    h->v = v;
    char *n = strdup(name), *val = strdup(value);
    if (!n || !val) {
        free(n);
        free(val);
        return -ENOMEM;
    }
    h->v[h->n++] = (auth_header_t){.name = n, .value = val, .sensitive = sensitive};
    return 0;
}

/* basic_value: "Basic base64(user:password)", malloc'd. */
static char *basic_value(const auth_t *a)
{
    const char *u = a->username ? a->username : "", *p = a->password ? a->password : "";
    size_t n = strlen(u) + 1 + strlen(p);
    char *pair = malloc(n + 1);
    if (!pair) return NULL;
    snprintf(pair, n + 1, "%s:%s", u, p);
    char *b64 = auth_base64_encode((const unsigned char *)pair, n);
    OPENSSL_cleanse(pair, n);
    free(pair);
    if (!b64) return NULL;
    char *out = NULL;
    if (asprintf(&out, "Basic %s", b64) < 0) out = NULL;
    free(b64);
    return out;
}

/* push_credentials appends the Authorization or X-API-KEY header that wh->auth calls for. */
static int push_credentials(header_list_t *out, const auth_t *a)
{
    char *v = NULL;
    int rc = 0;
    switch (a->type) {
    case AUTH_NONE:
        return 0;
    case AUTH_BASIC:
        if (!(v = basic_value(a))) return -ENOMEM;
        rc = header_push(out, "Authorization", v, 1);
        break;
    case AUTH_API_KEY:
        return header_push(out, "X-API-KEY", a->key ? a->key : "", 1);
    case AUTH_BEARER:
        if (asprintf(&v, "Bearer %s", a->token ? a->token : "") < 0) return -ENOMEM;
        rc = header_push(out, "Authorization", v, 1);
        break;
    default:
        return -EINVAL;
    }
    free(v);
    return rc;
}

/* auth_secret_current: does a rotation entry still sign at the attempt's time? */
static int auth_secret_current(const webhook_secret_t *s, int64_t timestamp_s)
{
    return s->expires_at == 0 || timestamp_s * 1000 < s->expires_at;
}

/* auth_signatures builds the webhook-signature value: one "v1,<sig>" per current secret,
 * space-separated, malloc'd into *out (NULL when no secret is current). Returns 0 or -errno. */
static int auth_signatures(const webhook_t *wh, const char *invocation_id, int64_t timestamp_s,
                           const char *body, size_t body_len, char **out)
{
    size_t n = (wh->secret ? 1 : 0) + wh->nsecrets, len = 0;
    char *v;
    *out = NULL;
    if (n == 0) return 0;
    if (!(v = malloc(n * AUTH_SIG_MAX))) return -ENOMEM;
    v[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *secret;
        if (wh->secret && i == 0) {
            secret = wh->secret;
        } else {
            const webhook_secret_t *s = &wh->secrets[i - (wh->secret ? 1 : 0)];
            if (!auth_secret_current(s, timestamp_s)) continue;
            secret = s->secret;
        }
        if (len) v[len++] = ' ';
        int rc = auth_sign(secret, invocation_id, timestamp_s, body, body_len, v + len,
                           n * AUTH_SIG_MAX - len);
        if (rc < 0) {
            free(v);
            return rc;
        }
        len += strlen(v + len);
    }
    if (len == 0) {
        free(v);
        return 0;
    }
    *out = v;
    return 0;
}

int auth_build_headers(const webhook_t *wh, const char *invocation_id, const char *event_type,
                       int attempt, int64_t timestamp_s, const char *body, size_t body_len,
                       header_list_t *out, char *err, size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    char ts[24], att[16], *sig = NULL;
    snprintf(ts, sizeof ts, "%" PRId64, timestamp_s);
    snprintf(att, sizeof att, "%d", attempt);

    int rc = header_push(out, "Content-Type", "application/json", 0);
    if (!rc) rc = header_push(out, "User-Agent", "hookline/" HOOKLINE_VERSION, 0);
    if (!rc) rc = header_push(out, "webhook-id", invocation_id, 0);
    if (!rc) rc = header_push(out, "webhook-timestamp", ts, 0);
    if (!rc) {
        rc = auth_signatures(wh, invocation_id, timestamp_s, body, body_len, &sig);
        if (rc == -EINVAL) {
            snprintf(err, errlen, "webhook %s: signing secret is not whsec_ + base64", wh->id);
            auth_headers_free(out);
            return rc;
        }
        if (!rc && sig) rc = header_push(out, "webhook-signature", sig, 1);
        free(sig);
    }
    if (!rc) rc = header_push(out, "X-Webhook-Event", event_type, 0);
    if (!rc) rc = header_push(out, "X-Webhook-Attempt", att, 0);
    if (!rc) rc = push_credentials(out, &wh->auth);
    if (rc) {
        snprintf(err, errlen, "webhook %s: building headers: %s", wh->id,
                 rc == -EINVAL ? "unknown auth type" : strerror(-rc));
        auth_headers_free(out);
    }
    return rc;
}

json_t *auth_headers_json(const header_list_t *h)
{
    json_t *o = json_object();
    if (!o) return NULL;
    for (size_t i = 0; i < h->n; i++) {
        const auth_header_t *x = &h->v[i];
        if (json_object_set_new(o, x->name, json_string(x->sensitive ? AUTH_MASK : x->value))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

char *auth_header_line(const auth_header_t *h)
{
    char *line = NULL;
    if (asprintf(&line, "%s: %s", h->name, h->value) < 0) return NULL;
    return line;
}

void auth_headers_free(header_list_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i].sensitive) OPENSSL_cleanse(h->v[i].value, strlen(h->v[i].value));
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    h->v = NULL;
    h->n = 0;
}
