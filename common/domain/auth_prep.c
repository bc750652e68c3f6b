/* auth_prep.c - a webhook's per-attempt headers without allocation: static lines, decoded keys
 * and masked JSON built once per webhook, then each attempt's id, timestamp, signature, event
 * type and attempt number written into a caller's buffer. */
#include "domain/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_PREP_SIG 48 /* "v1," + 44 base64 characters + a separator */
#define AUTH_PREP_KEY_MAX 1024
#define AUTH_PREP_STATIC 3 /* Content-Type, User-Agent, credentials */

typedef struct auth_prep_key {
    EVP_MAC_CTX *mac;   /* keyed once; each signature re-inits it with the same key */
    int64_t expires_at; /* unix ms; 0 = never */
} auth_prep_key_t;

struct auth_prep {
    char *lines[AUTH_PREP_STATIC];
    size_t nlines;
    char *masked_head, *masked_tail; /* the JSON before and after the attempt's own headers */
    size_t head_len, tail_len;
    auth_prep_key_t *keys;
    size_t nkeys;
};

/* auth_prep_mac: HMAC-SHA256, fetched once per process. */
static EVP_MAC *auth_prep_mac(void)
{
    static EVP_MAC *mac;
    if (!mac) mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return mac;
}

/* auth_prep_key decodes a "whsec_" secret into a keyed HMAC context. */
static int auth_prep_key(const char *secret, int64_t expires_at, auth_prep_key_t *k)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    unsigned char key[AUTH_PREP_KEY_MAX];
    long n = auth_base64_decode(b64, key, sizeof key);
    if (n <= 0) return -EINVAL;
    EVP_MAC *mac = auth_prep_mac();
    k->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int ok = k->mac && EVP_MAC_init(k->mac, key, (size_t)n, params);
    OPENSSL_cleanse(key, sizeof key);
    k->expires_at = expires_at;
    return ok ? 0 : -EINVAL;
}

void auth_prep_free(auth_prep_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nlines; i++) {
        OPENSSL_cleanse(p->lines[i], strlen(p->lines[i]));
        free(p->lines[i]);
    }
    for (size_t i = 0; i < p->nkeys; i++)
        EVP_MAC_CTX_free(p->keys[i].mac);
    free(p->keys);
    free(p->masked_head);
    free(p->masked_tail);
    free(p);
}

/* auth_prep_json_split renders the masked JSON of hl and cuts it around the attempt's headers:
 * head ends after the User-Agent member's comma, tail starts at the credential member's comma
 * (or the closing brace). */
static int auth_prep_json_split(auth_prep_t *p, const header_list_t *hl)
{
    json_t *o = auth_headers_json(hl);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return -ENOMEM;
    /* the list is Content-Type, User-Agent, webhook-id ... X-Webhook-Attempt ("0"), creds */
    char *mid = strstr(s, ",\"webhook-id\":");
    char *end = strstr(s, "\"X-Webhook-Attempt\":\"0\"");
    if (!mid || !end) {
        free(s);
        return -EINVAL;
    }
    end += strlen("\"X-Webhook-Attempt\":\"0\"");
    p->head_len = (size_t)(mid + 1 - s);
    p->tail_len = strlen(end);
    p->masked_head = strndup(s, p->head_len);
    p->masked_tail = strdup(end);
    free(s);
    return p->masked_head && p->masked_tail ? 0 : -ENOMEM;
}

int auth_prep_new(const webhook_t *wh, auth_prep_t **out, char *err, size_t errlen)
{
    *out = NULL;
    auth_prep_t *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    /* The static lines and the masked JSON come from the full builder (one source of truth),
     * with a placeholder attempt and no signing (the keys are checked below). */
    webhook_t plain = *wh;
    plain.secret = NULL;
    plain.nsecrets = 0;
    header_list_t hl;
    int rc = auth_build_headers(&plain, "inv_", "", 0, 0, "", 0, &hl, err, errlen);
    if (rc < 0) {
        free(p);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < hl.n; i++) {
        const char *name = hl.v[i].name;
        if (strcmp(name, "Content-Type") && strcmp(name, "User-Agent") &&
            strcmp(name, "Authorization") && strcmp(name, "X-API-KEY"))
            continue;
        if (!(p->lines[p->nlines++] = auth_header_line(&hl.v[i]))) rc = -ENOMEM;
    }
    if (rc == 0) rc = auth_prep_json_split(p, &hl);
    auth_headers_free(&hl);
    size_t nkeys = (wh->secret ? 1 : 0) + wh->nsecrets;
    if (rc == 0 && nkeys && !(p->keys = calloc(nkeys, sizeof *p->keys))) rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < nkeys; i++) {
        int own = wh->secret && i == 0;
        const webhook_secret_t *s = own ? NULL : &wh->secrets[i - (wh->secret ? 1 : 0)];
        rc = auth_prep_key(own ? wh->secret : s->secret, own ? 0 : s->expires_at, &p->keys[i]);
        p->nkeys = i + 1;
        if (rc == -EINVAL)
            snprintf(err, errlen, "webhook %s: signing secret is not whsec_ + base64", wh->id);
    }
    if (rc < 0) {
        if (rc == -ENOMEM) snprintf(err, errlen, "webhook %s: out of memory", wh->id);
        auth_prep_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

size_t auth_prep_nstatic(const auth_prep_t *p)
{
    return p->nlines;
}

const char *auth_prep_static_line(const auth_prep_t *p, size_t i)
{
    return i < p->nlines ? p->lines[i] : NULL;
}

size_t auth_prep_attempt_cap(const auth_prep_t *p, size_t inv_len, size_t et_len)
{
    /* lines: names + ": " + values + NULs (under 200 bytes beyond the id, the event type and
     * the signatures); JSON: head, tail, and the same members escaped (a byte of the id or the
     * event type is at most 6 escaped) */
    size_t lines = inv_len + et_len + 200 + p->nkeys * AUTH_PREP_SIG;
    return lines + p->head_len + p->tail_len + 6 * (inv_len + et_len) + 200;
}

/* auth_prep_sign writes "v1,<sig>" for every current key, space-separated, at out. */
static int auth_prep_sign(const auth_prep_t *p, const char *inv, const char *ts, int64_t ts_s,
                          const void *body, size_t body_len, char *out, size_t cap, size_t *len)
{
    *len = 0;
    for (size_t i = 0; i < p->nkeys; i++) {
        const auth_prep_key_t *k = &p->keys[i];
        if (k->expires_at != 0 && ts_s * 1000 >= k->expires_at) continue;
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        if (!EVP_MAC_init(k->mac, NULL, 0, NULL) ||
            !EVP_MAC_update(k->mac, (const unsigned char *)inv, strlen(inv)) ||
            !EVP_MAC_update(k->mac, (const unsigned char *)".", 1) ||
            !EVP_MAC_update(k->mac, (const unsigned char *)ts, strlen(ts)) ||
            !EVP_MAC_update(k->mac, (const unsigned char *)".", 1) ||
            (body_len && !EVP_MAC_update(k->mac, body, body_len)) ||
            !EVP_MAC_final(k->mac, mac, &maclen, sizeof mac))
            return -EINVAL;
        if (*len + AUTH_PREP_SIG + 1 > cap) return -ENOSPC;
        if (*len) out[(*len)++] = ' ';
        memcpy(out + *len, "v1,", 3);
        *len += 3;
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t j = 0; j < maclen; j += 3) { /* 32 bytes: 10 whole groups and one of 2 */
            uint32_t v = (uint32_t)mac[j] << 16 | (j + 1 < maclen ? (uint32_t)mac[j + 1] << 8 : 0) |
                         (j + 2 < maclen ? mac[j + 2] : 0);
            out[(*len)++] = b64[v >> 18 & 63];
            out[(*len)++] = b64[v >> 12 & 63];
            out[(*len)++] = j + 1 < maclen ? b64[v >> 6 & 63] : '=';
            out[(*len)++] = j + 2 < maclen ? b64[v & 63] : '=';
        }
        OPENSSL_cleanse(mac, sizeof mac);
    }
    out[*len] = 0;
    return 0;
}

/* auth_prep_json_str appends s as a JSON string body (jansson's escaping, without quotes). */
static size_t auth_prep_json_str(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*c;
        } else if (*c < 0x20) {
            char e = *c == '\b'   ? 'b'
                     : *c == '\f' ? 'f'
                     : *c == '\n' ? 'n'
                     : *c == '\r' ? 'r'
                     : *c == '\t' ? 't'
                                  : 0;
            if (e) {
                out[n++] = '\\';
                out[n++] = e;
            } else {
                memcpy(out + n, "\\u00", 4);
                out[n + 4] = hex[*c >> 4];
                out[n + 5] = hex[*c & 15];
                n += 6;
            }
        } else {
            out[n++] = (char)*c;
        }
    }
    return n;
}

int auth_prep_attempt(const auth_prep_t *p, const char *inv, const char *event_type, int attempt,
                      int64_t timestamp_s, const void *body, size_t body_len, char *buf, size_t cap,
                      const char *lines[AUTH_ATTEMPT_LINES], size_t *n, const char **masked)
{
    size_t inv_len = strlen(inv), et_len = strlen(event_type);
    if (cap < auth_prep_attempt_cap(p, inv_len, et_len)) return -ENOSPC;
    char ts[24], att[16];
    snprintf(ts, sizeof ts, "%" PRId64, timestamp_s);
    snprintf(att, sizeof att, "%d", attempt);
    char *o = buf;
    *n = 0;
    lines[(*n)++] = o;
    o += sprintf(o, "webhook-id: %s", inv) + 1;
    lines[(*n)++] = o;
    o += sprintf(o, "webhook-timestamp: %s", ts) + 1;
    char *sig = o;
    memcpy(o, "webhook-signature: ", 19);
    size_t siglen = 0;
    int rc = auth_prep_sign(p, inv, ts, timestamp_s, body, body_len, o + 19,
                            p->nkeys * AUTH_PREP_SIG + 1, &siglen);
    if (rc < 0) return rc;
    if (siglen) {
        lines[(*n)++] = sig;
        o += 19 + siglen + 1;
    }
    lines[(*n)++] = o;
    o += sprintf(o, "X-Webhook-Event: %s", event_type) + 1;
    lines[(*n)++] = o;
    o += sprintf(o, "X-Webhook-Attempt: %s", att) + 1;
    /* the masked JSON: head, the attempt's members, tail */
    *masked = o;
    memcpy(o, p->masked_head, p->head_len);
    o += p->head_len;
    o += sprintf(o, "\"webhook-id\":\"");
    o += auth_prep_json_str(o, inv);
    o += sprintf(o, "\",\"webhook-timestamp\":\"%s\",%s\"X-Webhook-Event\":\"", ts,
                 siglen ? "\"webhook-signature\":\"***\"," : "");
    o += auth_prep_json_str(o, event_type);
    o += sprintf(o, "\",\"X-Webhook-Attempt\":\"%s\"", att);
    memcpy(o, p->masked_tail, p->tail_len + 1);
    return 0;
}
