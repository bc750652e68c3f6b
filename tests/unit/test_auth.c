/* test_auth.c - request headers: the Standard Webhooks signature test vector, each auth mode's
 * header, header order, masking, and base64. */
#include "check.h"
#include "domain/auth.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* check_base64: round trips, padding, and refusal of bad input. */
static void check_base64(void)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = auth_base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
        CHECK_STR(e, coded[i]);
        free(e);
        unsigned char buf[16] = {0};
        long n = auth_base64_decode(coded[i], buf, sizeof buf);
        CHECK_INT(n, (long)strlen(plain[i]));
        CHECK(n >= 0 && memcmp(buf, plain[i], (size_t)n) == 0);
    }
    unsigned char buf[16];
    CHECK_INT(auth_base64_decode("Zm9vYg", buf, sizeof buf), 4); /* unpadded is tolerated */
    CHECK_INT(auth_base64_decode("Zm9v!", buf, sizeof buf), -EINVAL);
    CHECK_INT(auth_base64_decode("Z", buf, sizeof buf), -EINVAL);
    CHECK_INT(auth_base64_decode("Zg=", buf, sizeof buf), -EINVAL);
    CHECK_INT(auth_base64_decode("Zg==Zg==", buf, sizeof buf), -EINVAL);
    CHECK_INT(auth_base64_decode("Zm9vYmFy", buf, 3), -EINVAL); /* too small a buffer */
}

/* check_sign: the Standard Webhooks specification's test vector. */
static void check_sign(void)
{
    char sig[64];
    CHECK_INT(
        auth_sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), sig, sizeof sig), 0);
    CHECK_STR(sig, SPEC_SIG);
    /* Without the prefix the whole secret is the base64 key: same result. */
    CHECK_INT(auth_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SPEC_ID, SPEC_TS, SPEC_BODY,
                        strlen(SPEC_BODY), sig, sizeof sig),
              0);
    CHECK_STR(sig, SPEC_SIG);
    /* Any change to id, timestamp or body changes the signature. */
    CHECK_INT(
        auth_sign(SPEC_SECRET, SPEC_ID, SPEC_TS + 1, SPEC_BODY, strlen(SPEC_BODY), sig, sizeof sig),
        0);
    CHECK(strcmp(sig, SPEC_SIG) != 0);
    CHECK_INT(
        auth_sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY) - 1, sig, sizeof sig),
        0);
    CHECK(strcmp(sig, SPEC_SIG) != 0);
    CHECK_INT(auth_sign("whsec_not*base64", SPEC_ID, SPEC_TS, "", 0, sig, sizeof sig), -EINVAL);
    CHECK_INT(auth_sign("whsec_", SPEC_ID, SPEC_TS, "", 0, sig, sizeof sig), -EINVAL);
    CHECK_INT(auth_sign(SPEC_SECRET, SPEC_ID, SPEC_TS, "", 0, sig, 10), -EINVAL);
}

/* find: the value of header name in h, or NULL. */
static const auth_header_t *find(const header_list_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].name, name) == 0) return &h->v[i];
    return NULL;
}

/* check_order_and_signature: the full header list of a signed bearer webhook. */
static void check_order_and_signature(void)
{
    webhook_t wh = {.id = "wh_1",
                    .name = "n",
                    .project_id = "prj_1",
                    .enabled = 1,
                    .auth = {.type = AUTH_BEARER, .token = "tok123"},
                    .secret = SPEC_SECRET};
    header_list_t h;
    char err[256] = "";
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 3, SPEC_TS, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    const char *names[] = {"Content-Type",      "User-Agent",        "webhook-id",
                           "webhook-timestamp", "webhook-signature", "X-Webhook-Event",
                           "X-Webhook-Attempt", "Authorization"};
    const char *values[] = {"application/json", NULL, SPEC_ID,        "1614265330", SPEC_SIG,
                            "opportunity.won",  "3",  "Bearer tok123"};
    int sensitive[] = {0, 0, 0, 0, 1, 0, 0, 1};
    CHECK_INT(h.n, 8);
    for (size_t i = 0; i < h.n && i < 8; i++) {
        CHECK_STR(h.v[i].name, names[i]);
        if (values[i]) CHECK_STR(h.v[i].value, values[i]);
        CHECK_INT(h.v[i].sensitive, sensitive[i]);
    }
    CHECK(h.n > 1 && strncmp(h.v[1].value, "hookline/", 9) == 0 && strlen(h.v[1].value) > 9);

    char *line = auth_header_line(&h.v[7]);
    CHECK_STR(line, "Authorization: Bearer tok123");
    free(line);

    json_t *j = auth_headers_json(&h);
    char *s = json_dumps(j, JSON_COMPACT);
    CHECK(s && strstr(s, "tok123") == NULL && strstr(s, SPEC_SIG) == NULL);
    CHECK_STR(json_string_value(json_object_get(j, "Authorization")), "***");
    CHECK_STR(json_string_value(json_object_get(j, "webhook-signature")), "***");
    CHECK_STR(json_string_value(json_object_get(j, "webhook-id")), SPEC_ID);
    CHECK_STR(json_string_value(json_object_get(j, "X-Webhook-Attempt")), "3");
    CHECK_INT(json_object_size(j), 8);
    free(s);
    json_decref(j);
    auth_headers_free(&h);
    CHECK_INT(h.n, 0);
    CHECK(h.v == NULL);
}

/* check_modes: none, basic and api_key; unsigned without a secret; a bad secret fails. */
static void check_modes(void)
{
    char err[256] = "";
    header_list_t h;
    webhook_t wh = {.id = "wh_2", .project_id = "prj_1", .enabled = 1};

    CHECK_INT(
        auth_build_headers(&wh, "inv_x", "opportunity.created", 1, 5, "{}", 2, &h, err, sizeof err),
        0);
    CHECK_INT(h.n, 6);
    CHECK(find(&h, "webhook-signature") == NULL);
    CHECK(find(&h, "Authorization") == NULL && find(&h, "X-API-KEY") == NULL);
    CHECK(h.n == 6 && strcmp(h.v[4].name, "X-Webhook-Event") == 0);
    auth_headers_free(&h);

    wh.auth = (auth_t){.type = AUTH_BASIC, .username = "user", .password = "pa:ss"};
    CHECK_INT(
        auth_build_headers(&wh, "inv_x", "opportunity.created", 1, 5, "{}", 2, &h, err, sizeof err),
        0);
    const auth_header_t *a = find(&h, "Authorization");
    CHECK(a != NULL);
    if (a) {
        CHECK_STR(a->value, "Basic dXNlcjpwYTpzcw=="); /* base64("user:pa:ss") */
        CHECK_INT(a->sensitive, 1);
    }
    auth_headers_free(&h);

    wh.auth = (auth_t){.type = AUTH_API_KEY, .key = "k-42"};
    CHECK_INT(
        auth_build_headers(&wh, "inv_x", "opportunity.created", 2, 5, "{}", 2, &h, err, sizeof err),
        0);
    a = find(&h, "X-API-KEY");
    CHECK(a != NULL && strcmp(a->value, "k-42") == 0 && a->sensitive);
    CHECK(find(&h, "Authorization") == NULL);
    CHECK(h.n == 7 && strcmp(h.v[6].name, "X-API-KEY") == 0);
    json_t *j = auth_headers_json(&h);
    CHECK_STR(json_string_value(json_object_get(j, "X-API-KEY")), "***");
    CHECK_STR(json_string_value(json_object_get(j, "Content-Type")), "application/json");
    json_decref(j);
    auth_headers_free(&h);

    wh.secret = "whsec_%%%";
    CHECK_INT(
        auth_build_headers(&wh, "inv_x", "opportunity.created", 1, 5, "{}", 2, &h, err, sizeof err),
        -EINVAL);
    CHECK(strstr(err, "wh_2") != NULL);
    CHECK_INT(h.n, 0);
}

/* spec_sig computes "v1,<sig>" the way the Standard Webhooks specification states it, with
 * OpenSSL directly (not auth_sign): key = base64-decode(secret minus "whsec_"), HMAC-SHA256 over
 * "<id>.<timestamp>.<body>", base64 of the MAC. */
static void spec_sig(const char *secret, const char *id, long ts, const char *body, char *out,
                     size_t n)
{
    const char *b64 = secret + strlen("whsec_");
    unsigned char key[128], mac[EVP_MAX_MD_SIZE], enc[128];
    int klen = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)strlen(b64));
    size_t pad = strlen(b64) - strcspn(b64, "=");
    char msg[512];
    unsigned int mlen = 0;
    snprintf(msg, sizeof msg, "%s.%ld.%s", id, ts, body);
    HMAC(EVP_sha256(), key, klen - (int)pad, (const unsigned char *)msg, strlen(msg), mac, &mlen);
    EVP_EncodeBlock(enc, mac, (int)mlen);
    snprintf(out, n, "v1,%s", (const char *)enc);
}

#define ROT_OLD "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define ROT_NEW "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

/* check_rotation: every current secret signs, space-separated, each verifiable on its own; an
 * expired one stops signing exactly at its expiry; the header is masked like one signature. */
static void check_rotation(void)
{
    char err[256] = "", want_spec[160], want_old[160], want_new[160], both[512];
    webhook_secret_t list[2] = {{.secret = ROT_OLD, .expires_at = (SPEC_TS + 60) * 1000LL},
                                {.secret = ROT_NEW, .expires_at = 0}};
    webhook_t wh = {.id = "wh_r",
                    .project_id = "prj_1",
                    .enabled = 1,
                    .secret = SPEC_SECRET,
                    .secrets = list,
                    .nsecrets = 2};
    header_list_t h;

    spec_sig(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, want_spec, sizeof want_spec);
    CHECK_STR(want_spec, SPEC_SIG); /* the independent computation agrees with the spec vector */
    spec_sig(ROT_OLD, SPEC_ID, SPEC_TS, SPEC_BODY, want_old, sizeof want_old);
    spec_sig(ROT_NEW, SPEC_ID, SPEC_TS, SPEC_BODY, want_new, sizeof want_new);

    /* Before the old secret expires: three signatures, "secret" first, then the list's order. */
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, SPEC_TS, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    const auth_header_t *sig = find(&h, "webhook-signature");
    snprintf(both, sizeof both, "%s %s %s", want_spec, want_old, want_new);
    CHECK(sig != NULL && sig->sensitive);
    if (sig) CHECK_STR(sig->value, both);
    json_t *j = auth_headers_json(&h);
    char *text = json_dumps(j, JSON_COMPACT);
    CHECK_STR(json_string_value(json_object_get(j, "webhook-signature")), "***");
    CHECK(text && !strstr(text, want_old + 3) && !strstr(text, want_new + 3));
    free(text);
    json_decref(j);
    auth_headers_free(&h);

    /* The last second before expiry still signs with it; at the expiry time it does not. */
    long ts_last = SPEC_TS + 59, ts_exp = SPEC_TS + 60;
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, ts_last, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    sig = find(&h, "webhook-signature");
    spec_sig(ROT_OLD, SPEC_ID, ts_last, SPEC_BODY, want_old, sizeof want_old);
    CHECK(sig && strstr(sig->value, want_old) != NULL);
    auth_headers_free(&h);
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, ts_exp, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    sig = find(&h, "webhook-signature");
    spec_sig(SPEC_SECRET, SPEC_ID, ts_exp, SPEC_BODY, want_spec, sizeof want_spec);
    spec_sig(ROT_OLD, SPEC_ID, ts_exp, SPEC_BODY, want_old, sizeof want_old);
    spec_sig(ROT_NEW, SPEC_ID, ts_exp, SPEC_BODY, want_new, sizeof want_new);
    snprintf(both, sizeof both, "%s %s", want_spec, want_new);
    if (sig) CHECK_STR(sig->value, both);
    CHECK(sig && strstr(sig->value, want_old) == NULL);
    auth_headers_free(&h);

    /* Only a rotation list, every entry expired: no signature header at all. */
    wh.secret = NULL;
    list[1].expires_at = SPEC_TS * 1000LL;
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, ts_exp, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    CHECK(find(&h, "webhook-signature") == NULL);
    CHECK_INT(h.n, 6);
    auth_headers_free(&h);

    /* Only a rotation list, one current: exactly its signature. */
    list[1].expires_at = 0;
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, ts_exp, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              0);
    sig = find(&h, "webhook-signature");
    if (sig) CHECK_STR(sig->value, want_new);
    CHECK(sig != NULL);
    auth_headers_free(&h);

    /* An undecodable entry fails the attempt, naming the webhook and not the secret. */
    list[0] = (webhook_secret_t){.secret = "whsec_%%%%", .expires_at = 0};
    CHECK_INT(auth_build_headers(&wh, SPEC_ID, "opportunity.won", 1, ts_exp, SPEC_BODY,
                                 strlen(SPEC_BODY), &h, err, sizeof err),
              -EINVAL);
    CHECK(strstr(err, "wh_r") != NULL && strstr(err, "%%%%") == NULL);
    CHECK_INT(h.n, 0);
}

/* prep_same: auth_prep_attempt gives the same header lines (as a set) and the same masked JSON
 * text as auth_build_headers + auth_headers_json, for wh at timestamp ts. */
static void prep_same_inv(const webhook_t *wh, const char *inv, const char *et, int64_t ts)
{
    char err[256] = "";
    header_list_t hl;
    CHECK_INT(
        auth_build_headers(wh, inv, et, 4, ts, SPEC_BODY, strlen(SPEC_BODY), &hl, err, sizeof err),
        0);
    json_t *mj = auth_headers_json(&hl);
    char *want_json = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    auth_prep_t *p = NULL;
    CHECK_INT(auth_prep_new(wh, &p, err, sizeof err), 0);
    if (!p) return;
    char buf[4096];
    const char *lines[AUTH_ATTEMPT_LINES], *masked = NULL;
    size_t n = 0;
    CHECK(auth_prep_attempt_cap(p, strlen(inv), strlen(et)) <= sizeof buf);
    CHECK_INT(auth_prep_attempt(p, inv, et, 4, ts, SPEC_BODY, strlen(SPEC_BODY), buf, sizeof buf,
                                lines, &n, &masked),
              0);
    CHECK_STR(masked, want_json);
    CHECK_INT(n + auth_prep_nstatic(p), hl.n);
    for (size_t i = 0; i < hl.n; i++) { /* every built line is one of prep's */
        char *line = auth_header_line(&hl.v[i]);
        int found = 0;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(lines[k], line) == 0;
        for (size_t k = 0; k < auth_prep_nstatic(p); k++)
            found |= strcmp(auth_prep_static_line(p, k), line) == 0;
        if (!found) fprintf(stderr, "  line not from prep: %s\n", line);
        CHECK(found);
        free(line);
    }
    CHECK_INT(auth_prep_attempt(p, inv, et, 4, ts, SPEC_BODY, strlen(SPEC_BODY), buf, 64, lines, &n,
                                &masked),
              -ENOSPC);
    auth_prep_free(p);
    free(want_json);
    auth_headers_free(&hl);
}

static void prep_same(const webhook_t *wh, const char *et, int64_t ts)
{
    prep_same_inv(wh, SPEC_ID, et, ts);
}

/* check_prep: the prepared path matches the full builder in every mode. */
static void check_prep(void)
{
    webhook_t wh = {
        .id = "wh_p", .name = "n", .project_id = "prj", .enabled = 1, .url = "http://x/"};
    prep_same(&wh, "opportunity.won", SPEC_TS); /* no auth, no secret */
    wh.secret = SPEC_SECRET;
    wh.auth = (auth_t){.type = AUTH_BEARER, .token = "tok\"en"};
    prep_same(&wh, "opportunity.won", SPEC_TS);
    wh.auth = (auth_t){.type = AUTH_BASIC, .username = "u", .password = "p:w"};
    prep_same(&wh, "odd\"type\\\n\x01", SPEC_TS);
    wh.auth = (auth_t){.type = AUTH_API_KEY, .key = "k"};
    webhook_secret_t rot[2] = {
        {.secret = "whsec_dGVzdHNlY3JldA==", .expires_at = 0},
        {.secret = "whsec_b2xkc2VjcmV0", .expires_at = SPEC_TS * 1000LL + 1}};
    wh.secrets = rot;
    wh.nsecrets = 2;
    prep_same(&wh, "opportunity.lost", SPEC_TS);     /* three signatures */
    prep_same(&wh, "opportunity.lost", SPEC_TS + 1); /* the second rotation entry expired */
    wh.secret = NULL;
    rot[0].expires_at = 1;
    prep_same(&wh, "opportunity.lost", SPEC_TS + 1); /* none current: no signature line */
    /* the worst escaping the buffer must hold: an id and an event type of control bytes */
    char odd_inv[40], odd_et[200];
    memset(odd_inv, 1, sizeof odd_inv - 1);
    odd_inv[sizeof odd_inv - 1] = 0;
    memset(odd_et, 2, sizeof odd_et - 1);
    odd_et[sizeof odd_et - 1] = 0;
    wh.secret = SPEC_SECRET;
    prep_same_inv(&wh, odd_inv, odd_et, SPEC_TS);
    /* the spec's vector through the prepared path */
    webhook_t spec = {.id = "wh_s",
                      .name = "n",
                      .project_id = "p",
                      .enabled = 1,
                      .url = "http://x/",
                      .secret = SPEC_SECRET};
    auth_prep_t *p = NULL;
    char err[256], buf[4096];
    CHECK_INT(auth_prep_new(&spec, &p, err, sizeof err), 0);
    const char *lines[AUTH_ATTEMPT_LINES], *masked;
    size_t n = 0;
    CHECK_INT(auth_prep_attempt(p, SPEC_ID, "e", 1, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), buf,
                                sizeof buf, lines, &n, &masked),
              0);
    CHECK_STR(lines[2], "webhook-signature: " SPEC_SIG);
    auth_prep_free(p);
    spec.secret = "whsec_not*base64";
    CHECK_INT(auth_prep_new(&spec, &p, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "wh_s") != NULL && strstr(err, "not*") == NULL);
}

int main(void)
{
    check_prep();
    check_base64();
    check_sign();
    check_order_and_signature();
    check_modes();
    check_rotation();
    return check_done("auth");
}
