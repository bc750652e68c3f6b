/* store_token.c - API and portal tokens in the store: random text shown once, only its SHA-256
 * kept (UNIQUE, so a lookup is one index probe), revocation and expiry checked on every use. */
#include "domain/store_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define TOKEN_PREFIX "hlt_"
#define TOKEN_RAW 32
#define TOKEN_B64 43 /* base64url of 32 bytes, unpadded */

/* token_random fills buf with n bytes from the kernel's CSPRNG. */
static int token_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        got += (size_t)r;
    }
    return 0;
}

/* token_text writes "hlt_" and the base64url text of raw into out. */
static void token_text(const unsigned char raw[TOKEN_RAW], char out[STORE_TOKEN_TEXT])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = out + strlen(TOKEN_PREFIX);
    memcpy(out, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < TOKEN_RAW; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *o++ = b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0) *o++ = b64[(acc << (6 - bits)) & 63];
    *o = '\0';
}

/* token_hash: SHA-256 of the token's text. */
static void token_hash(const char *token, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256((const unsigned char *)token, strlen(token), out);
}

int store_token_name_valid(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > STORE_TOKEN_NAME_MAX) {
        snprintf(err, errlen, "token name: want 1 to %d characters, got %zu", STORE_TOKEN_NAME_MAX,
                 n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            snprintf(err, errlen, "token name '%s': only letters, digits, '.', '_' and '-'", name);
            return 0;
        }
    }
    return 1;
}

/* token_insert writes one row for a fresh random token; the text goes to token. */
static int token_insert(store_t *s, const char *name, const char *project, int kind, int64_t now,
                        int64_t expires_at, char token[STORE_TOKEN_TEXT], char *err, size_t errlen)
{
    unsigned char raw[TOKEN_RAW], hash[SHA256_DIGEST_LENGTH];
    int rc = token_random(raw, sizeof raw);
    if (rc < 0) return store_failf(s, err, errlen, -rc, "getrandom: %s", strerror(-rc));
    token_text(raw, token);
    OPENSSL_cleanse(raw, sizeof raw);
    token_hash(token, hash);

    sqlite3_stmt *st;
    rc = store_prepare(s,
                       "INSERT INTO tokens(name, hash, project_id, kind, created_at, expires_at)"
                       " VALUES(?, ?, ?, ?, ?, ?)",
                       0, &st, err, errlen);
    if (rc < 0) return rc;
    store_bind_text(st, 1, name);
    sqlite3_bind_blob(st, 2, hash, sizeof hash, SQLITE_STATIC);
    store_bind_text(st, 3, project && project[0] ? project : NULL);
    sqlite3_bind_int(st, 4, kind);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, expires_at);
    rc = store_step(s, st, err, errlen, "insert token");
    sqlite3_finalize(st);
    if (rc == -EEXIST) store_failf(s, err, errlen, EEXIST, "a token named '%s' exists", name);
    if (rc < 0) OPENSSL_cleanse(token, STORE_TOKEN_TEXT);
    return rc;
}

int store_token_create(store_t *s, const char *name, const char *project, int kind,
                       int64_t expires_at, char token[STORE_TOKEN_TEXT], char *err, size_t errlen)
{
    if (!store_token_name_valid(name, err, errlen)) return -EINVAL;
    if (kind != STORE_TOKEN_API && kind != STORE_TOKEN_PORTAL) {
        snprintf(err, errlen, "token kind: want 0 or 1, got %d", kind);
        return -EINVAL;
    }
    return token_insert(s, name, project, kind, store_now_ms(), expires_at, token, err, errlen);
}

int store_token_portal(store_t *s, const char *project, int64_t ttl_ms,
                       char token[STORE_TOKEN_TEXT], int64_t *expires_at, char *err, size_t errlen)
{
    if (!project || !project[0]) {
        snprintf(err, errlen, "portal token: a project is required");
        return -EINVAL;
    }
    int64_t now = store_now_ms();
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "DELETE FROM tokens WHERE kind = 1 AND expires_at > 0"
                           " AND expires_at < ?",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    sqlite3_bind_int64(st, 1, now - 86400000);
    rc = store_step(s, st, err, errlen, "remove expired portal tokens");
    sqlite3_finalize(st);
    if (rc < 0) return rc;

    for (int tries = 0; tries < 4; tries++) {
        unsigned char id[8];
        char name[32];
        if ((rc = token_random(id, sizeof id)) < 0)
            return store_failf(s, err, errlen, -rc, "getrandom: %s", strerror(-rc));
        int o = snprintf(name, sizeof name, "portal-");
        for (size_t i = 0; i < sizeof id; i++)
            o += snprintf(name + o, sizeof name - o, "%02x", id[i]);
        rc = token_insert(s, name, project, STORE_TOKEN_PORTAL, now, now + ttl_ms, token, err,
                          errlen);
        if (rc != -EEXIST) break;
    }
    if (rc == 0) *expires_at = now + ttl_ms;
    return rc;
}

/* token_row fills t from a row of (name, project_id, kind, created_at, expires_at, revoked_at). */
static void token_row(sqlite3_stmt *st, store_token_t *t)
{
    memset(t, 0, sizeof *t);
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(t->name, sizeof t->name, "%s", v ? v : "");
    v = (const char *)sqlite3_column_text(st, 1);
    snprintf(t->project, sizeof t->project, "%s", v ? v : "");
    t->kind = sqlite3_column_int(st, 2);
    t->created_at = sqlite3_column_int64(st, 3);
    t->expires_at = sqlite3_column_int64(st, 4);
    t->revoked_at = sqlite3_column_int64(st, 5);
}

int store_token_list(store_t *s, store_token_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT name, project_id, kind, created_at, expires_at, revoked_at"
                           " FROM tokens ORDER BY name",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    size_t cap = 0;
    store_token_t *v = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_token_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        token_row(st, &v[(*n)++]);
    }
    if (rc != SQLITE_DONE) {
        rc = store_fail(s, err, errlen, rc, "list tokens");
        sqlite3_finalize(st);
        free(v);
        *n = 0;
        return rc;
    }
    sqlite3_finalize(st);
    *out = v;
    return 0;
}

int store_token_revoke(store_t *s, const char *name, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "UPDATE tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ?"
                           " ELSE revoked_at END WHERE name = ?",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    sqlite3_bind_int64(st, 1, store_now_ms());
    store_bind_text(st, 2, name);
    rc = store_step(s, st, err, errlen, "revoke token");
    int changed = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    if (rc < 0) return rc;
    if (changed == 0) return store_failf(s, err, errlen, ENOENT, "no token named '%s'", name);
    return 0;
}

/* token_shape_ok: "hlt_" and 43 base64url characters, nothing else. */
static int token_shape_ok(const char *t)
{
    size_t p = strlen(TOKEN_PREFIX);
    if (strncmp(t, TOKEN_PREFIX, p) != 0 || strlen(t) != p + TOKEN_B64) return 0;
    for (const char *c = t + p; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return 0;
    return 1;
}

int store_token_verify(store_t *s, const char *token, int64_t now_ms, store_token_t *out, char *err,
                       size_t errlen)
{
    if (!token || !token_shape_ok(token)) {
        snprintf(err, errlen, "unknown token");
        return -ENOENT;
    }
    unsigned char hash[SHA256_DIGEST_LENGTH];
    token_hash(token, hash);
    sqlite3_stmt *st;
    int rc = store_prepare(s,
                           "SELECT name, project_id, kind, created_at, expires_at, revoked_at,"
                           " hash FROM tokens WHERE hash = ?",
                           0, &st, err, errlen);
    if (rc < 0) return rc;
    sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        snprintf(err, errlen, "unknown token");
        return -ENOENT;
    }
    if (rc != SQLITE_ROW) {
        rc = store_fail(s, err, errlen, rc, "look up token");
        sqlite3_finalize(st);
        return rc;
    }
    /* The index found the row; the stored hash is compared in constant time all the same. */
    const void *h = sqlite3_column_blob(st, 6);
    int same = h && sqlite3_column_bytes(st, 6) == (int)sizeof hash &&
               CRYPTO_memcmp(h, hash, sizeof hash) == 0;
    token_row(st, out);
    sqlite3_finalize(st);
    if (!same) {
        snprintf(err, errlen, "unknown token");
        return -ENOENT;
    }
    if (out->revoked_at) {
        snprintf(err, errlen, "token revoked");
        return -EKEYREVOKED;
    }
    if (out->expires_at && now_ms >= out->expires_at) {
        snprintf(err, errlen, "token expired");
        return -EKEYEXPIRED;
    }
    return 0;
}
