/* api_auth.c - bearer tokens on hook-api's routes (looked up in the store on every request, so
 * a revoke holds at once in every instance) and portal links (POST /v1/projects/{p}/portal). */
#include "api_int.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* auth_unauthorized answers 401 with the challenge header. */
static unsigned auth_unauthorized(api_req_t *r, const char *why)
{
    api_reply_header(r, "WWW-Authenticate", "Bearer");
    api_reply_error(r, 401, "%s", why);
    return 401;
}

unsigned api_auth_check(api_req_t *r, api_auth_t auth, const char *project, api_principal_t *who)
{
    memset(who, 0, sizeof *who);
    const char *h = api_header(r, "Authorization");
    if (!h || !*h) return auth_unauthorized(r, "missing Authorization: Bearer token");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return auth_unauthorized(r, "Authorization: want 'Bearer TOKEN'");
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;

    store_token_t t;
    char err[256];
    int rc = store_token_verify(api_store(api_of(r)), tok, time_now_ms(), &t, err, sizeof err);
    if (rc == -ENOENT || rc == -EKEYREVOKED || rc == -EKEYEXPIRED) return auth_unauthorized(r, err);
    if (rc < 0) {
        log_error("checking a token: %s", err);
        api_reply_error(r, 503, "cannot check the token now: store unavailable");
        return 503;
    }
    snprintf(who->name, sizeof who->name, "%s", t.kind == STORE_TOKEN_PORTAL ? "portal" : t.name);
    snprintf(who->project, sizeof who->project, "%s", t.project);
    who->portal = t.kind == STORE_TOKEN_PORTAL;
    who->expires_at = t.expires_at;

    if (auth == API_AUTH_ADMIN && who->project[0]) {
        api_reply_error(r, 403, "token '%s' is for project '%s': this needs an admin token",
                        who->name, who->project);
        return 403;
    }
    if (auth == API_AUTH_PROJECT && who->project[0] &&
        (!project || strcmp(project, who->project) != 0)) {
        api_reply_error(r, 403, "token '%s' is for project '%s', not '%s'", who->name, who->project,
                        project ? project : "");
        return 403;
    }
    return 0;
}

/* auth_url_escape appends s to out percent-encoded for a URL fragment value. */
static void auth_url_escape(const char *s, char *out, size_t n)
{
    size_t o = strlen(out);
    for (; *s && o + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "%%%02X", c);
    }
    out[o] = '\0';
}

void api_portal_create(api_req_t *r)
{
    const api_principal_t *who = api_who(r);
    const char *p = api_param(r, 0);
    api_t *a = api_of(r);
    if (who->portal) {
        api_reply_error(r, 403, "a portal token cannot create portal links");
        return;
    }
    if (!config_find_project(api_config(a), p)) {
        api_reply_error(r, 404, "unknown project '%s'", p);
        return;
    }
    char token[STORE_TOKEN_TEXT], err[256];
    int64_t expires_at;
    int rc = store_token_portal(api_store(a), p, api_portal_ttl(a) * 1000, token, &expires_at, err,
                                sizeof err);
    if (rc < 0) {
        log_error("portal link for project %s: %s", p, err);
        api_reply_error(r, 503, "cannot create the portal link now: store unavailable");
        return;
    }
    char url[1024], when[40];
    snprintf(url, sizeof url, "%s/#project=", api_public_url(a));
    auth_url_escape(p, url, sizeof url);
    snprintf(url + strlen(url), sizeof url - strlen(url), "&token=%s", token);
    OPENSSL_cleanse(token, sizeof token);
    time_format_rfc3339(expires_at, when, sizeof when);
    api_reply_json(r, 201, json_pack("{s:s,s:s}", "url", url, "expires_at", when));
    OPENSSL_cleanse(url, sizeof url);
}
