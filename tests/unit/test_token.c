/* test_token.c - store_token.c: token text and hash, create/list/revoke/verify, names taken,
 * expiry of portal tokens, a revoke seen by a second handle at once, and the store holding only
 * the hash. */
#include "check.h"
#include "domain/store.h"

#include <errno.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dbpath[256];

/* now_ms: wall clock, as the store uses. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* token_shape: "hlt_" and 43 base64url characters. */
static int token_shape(const char *t)
{
    if (strncmp(t, "hlt_", 4) != 0 || strlen(t) != 47) return 0;
    for (const char *c = t + 4; *c; c++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c))
            return 0;
    return 1;
}

static void test_create_verify(store_t *s)
{
    char a[STORE_TOKEN_TEXT], b[STORE_TOKEN_TEXT], err[256];
    store_token_t t;
    CHECK_INT(store_token_create(s, "admin", NULL, STORE_TOKEN_API, 0, a, err, sizeof err), 0);
    CHECK_INT(store_token_create(s, "acme", "prj_1", STORE_TOKEN_API, 0, b, err, sizeof err), 0);
    CHECK(token_shape(a));
    CHECK(token_shape(b));
    CHECK(strcmp(a, b) != 0);

    CHECK_INT(store_token_verify(s, a, now_ms(), &t, err, sizeof err), 0);
    CHECK_STR(t.name, "admin");
    CHECK_STR(t.project, "");
    CHECK_INT(t.kind, STORE_TOKEN_API);
    CHECK(t.created_at > 0 && t.created_at <= now_ms());
    CHECK_INT(store_token_verify(s, b, now_ms(), &t, err, sizeof err), 0);
    CHECK_STR(t.name, "acme");
    CHECK_STR(t.project, "prj_1");

    /* a name is taken once; bad names and kinds are refused */
    char c[STORE_TOKEN_TEXT];
    CHECK_INT(store_token_create(s, "acme", NULL, STORE_TOKEN_API, 0, c, err, sizeof err), -EEXIST);
    CHECK(strstr(err, "'acme' exists") != NULL);
    CHECK_INT(store_token_create(s, "", NULL, STORE_TOKEN_API, 0, c, err, sizeof err), -EINVAL);
    CHECK_INT(store_token_create(s, "a b", NULL, STORE_TOKEN_API, 0, c, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "'a b'") != NULL);
    CHECK_INT(store_token_create(s, "k", NULL, 7, 0, c, err, sizeof err), -EINVAL);
    char longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT(store_token_create(s, longname, NULL, STORE_TOKEN_API, 0, c, err, sizeof err),
              -EINVAL);

    /* unknown, malformed, one character changed */
    CHECK_INT(store_token_verify(s, "hlt_nope", now_ms(), &t, err, sizeof err), -ENOENT);
    CHECK_INT(store_token_verify(s, "", now_ms(), &t, err, sizeof err), -ENOENT);
    CHECK_INT(store_token_verify(s, NULL, now_ms(), &t, err, sizeof err), -ENOENT);
    char d[STORE_TOKEN_TEXT];
    memcpy(d, a, sizeof d);
    d[10] = d[10] == 'A' ? 'B' : 'A';
    CHECK_INT(store_token_verify(s, d, now_ms(), &t, err, sizeof err), -ENOENT);
    CHECK_STR(err, "unknown token");
    char e[STORE_TOKEN_TEXT + 1];
    snprintf(e, sizeof e, "%s=", a);
    CHECK_INT(store_token_verify(s, e, now_ms(), &t, err, sizeof err), -ENOENT);

    /* revoke: at once, also through a second handle (another hook-api) */
    store_t *s2;
    CHECK_INT(store_open(&s2, dbpath, err, sizeof err), 0);
    CHECK_INT(store_token_verify(s2, b, now_ms(), &t, err, sizeof err), 0);
    CHECK_INT(store_token_revoke(s, "acme", err, sizeof err), 0);
    CHECK_INT(store_token_verify(s2, b, now_ms(), &t, err, sizeof err), -EKEYREVOKED);
    CHECK_STR(err, "token revoked");
    int64_t first = t.revoked_at;
    CHECK(first > 0);
    usleep(2000);
    CHECK_INT(store_token_revoke(s2, "acme", err, sizeof err), 0); /* again: kept as it was */
    CHECK_INT(store_token_verify(s, b, now_ms(), &t, err, sizeof err), -EKEYREVOKED);
    CHECK_INT(t.revoked_at, first);
    CHECK_INT(store_token_revoke(s, "nobody", err, sizeof err), -ENOENT);
    CHECK(strstr(err, "'nobody'") != NULL);
    CHECK_INT(store_token_verify(s, a, now_ms(), &t, err, sizeof err), 0); /* others live on */
    store_close(s2);

    /* the store has the SHA-256 of each token, never the text */
    sqlite3 *db;
    CHECK_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st;
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT hash FROM tokens WHERE name = 'admin'", -1, &st, NULL),
              SQLITE_OK);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)a, strlen(a), h);
    CHECK_INT(sqlite3_column_bytes(st, 0), SHA256_DIGEST_LENGTH);
    CHECK(memcmp(sqlite3_column_blob(st, 0), h, sizeof h) == 0);
    sqlite3_finalize(st);
    CHECK_INT(sqlite3_prepare_v2(db,
                                 "SELECT count(*) FROM tokens WHERE instr(name, ?1) OR"
                                 " instr(coalesce(project_id, ''), ?1) OR instr(hash, ?1)",
                                 -1, &st, NULL),
              SQLITE_OK);
    sqlite3_bind_text(st, 1, a + 4, -1, SQLITE_STATIC);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_portal(store_t *s)
{
    char p[STORE_TOKEN_TEXT], q[STORE_TOKEN_TEXT], err[256];
    int64_t exp, before = now_ms();
    store_token_t t;
    CHECK_INT(store_token_portal(s, "prj_1", 60000, p, &exp, err, sizeof err), 0);
    CHECK(token_shape(p));
    CHECK(exp >= before + 60000 && exp <= now_ms() + 60000);
    CHECK_INT(store_token_verify(s, p, now_ms(), &t, err, sizeof err), 0);
    CHECK_INT(t.kind, STORE_TOKEN_PORTAL);
    CHECK_STR(t.project, "prj_1");
    CHECK_INT(t.expires_at, exp);
    CHECK(strncmp(t.name, "portal-", 7) == 0 && strlen(t.name) == 23);
    /* valid until its end, expired from then on */
    CHECK_INT(store_token_verify(s, p, exp - 1, &t, err, sizeof err), 0);
    CHECK_INT(store_token_verify(s, p, exp, &t, err, sizeof err), -EKEYEXPIRED);
    CHECK_STR(err, "token expired");
    CHECK_INT(store_token_portal(s, "", 60000, q, &exp, err, sizeof err), -EINVAL);
    CHECK_INT(store_token_portal(s, NULL, 60000, q, &exp, err, sizeof err), -EINVAL);

    /* portal tokens expired over a day ago go away when the next one is made */
    CHECK_INT(store_token_portal(s, "prj_1", -2 * 86400000LL, q, &exp, err, sizeof err), 0);
    size_t n;
    store_token_t *v;
    CHECK_INT(store_token_list(s, &v, &n, err, sizeof err), 0);
    size_t portals = 0;
    for (size_t i = 0; i < n; i++)
        portals += v[i].kind == STORE_TOKEN_PORTAL;
    CHECK_INT(portals, 2);
    free(v);
    CHECK_INT(store_token_portal(s, "prj_1", 60000, q, &exp, err, sizeof err), 0);
    CHECK_INT(store_token_list(s, &v, &n, err, sizeof err), 0);
    portals = 0;
    for (size_t i = 0; i < n; i++)
        portals += v[i].kind == STORE_TOKEN_PORTAL;
    CHECK_INT(portals, 2); /* the first and the newest */
    free(v);
}

static void test_list(store_t *s)
{
    size_t n;
    store_token_t *v;
    char err[256];
    CHECK_INT(store_token_list(s, &v, &n, err, sizeof err), 0);
    CHECK_INT(n, 4); /* acme, admin, two portal tokens */
    CHECK_STR(v[0].name, "acme");
    CHECK(v[0].revoked_at > 0);
    CHECK_STR(v[1].name, "admin");
    CHECK_STR(v[1].project, "");
    CHECK_INT(v[1].revoked_at, 0);
    CHECK_INT(v[1].expires_at, 0);
    CHECK_INT(v[2].kind, STORE_TOKEN_PORTAL);
    free(v);
}

int main(void)
{
    char dir[] = "/tmp/hl-test-token-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hookline.db", dir);
    store_t *s;
    char err[256];
    if (store_open(&s, dbpath, err, sizeof err) < 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return 1;
    }
    test_create_verify(s);
    test_portal(s);
    test_list(s);
    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return check_done("token");
}
