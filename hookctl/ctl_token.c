/* ctl_token.c - hookctl token create, list and revoke: hook-api's bearer tokens in the store
 * (the token's text is printed once at creation; the store keeps only its hash). */
#include "ctl.h"
#include "util/timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* token_create: --name NAME [--project P]; the token alone on stdout. */
static int token_create(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"project", required_argument, NULL, 'p'},
                                         {0, 0, 0, 0}};
    const char *name = NULL, *project = NULL;
    char err[256];
    int c;
    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'n')
            name = optarg;
        else if (c == 'p')
            project = optarg;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    if (!name) return ctl_usage_error(ctl, "--name is required");
    if (!store_token_name_valid(name, err, sizeof err))
        return ctl_usage_error(ctl, "--name: %s", err);
    if (strncmp(name, "portal-", 7) == 0)
        return ctl_usage_error(ctl, "--name: names starting with 'portal-' are kept for portal "
                                    "links");
    if (project && !project[0]) return ctl_usage_error(ctl, "--project: must not be empty");

    store_t *st;
    int rc = ctl_store_open(ctl, &st);
    if (rc) return rc;
    char token[STORE_TOKEN_TEXT];
    rc = store_token_create(st, name, project, STORE_TOKEN_API, 0, token, err, sizeof err);
    store_close(st);
    if (rc == -EEXIST) {
        ctl_error(ctl, "a token named '%s' exists already (hookctl token list)", name);
        return CTL_EXIT_FAIL;
    }
    if (rc < 0) {
        ctl_error(ctl, "%s", err);
        return rc == -EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    printf("%s\n", token);
    OPENSSL_cleanse(token, sizeof token);
    return CTL_EXIT_OK;
}

/* token_state: "active", "revoked" or "expired". */
static const char *token_state(const store_token_t *t, int64_t now)
{
    if (t->revoked_at) return "revoked";
    if (t->expires_at && now >= t->expires_at) return "expired";
    return "active";
}

/* token_list: a table, or one JSON object per line with --json; never a token or its hash. */
static int token_list(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0, 0, 0, 0}};
    int as_json = 0, c;
    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0) {
        if (c == 'j')
            as_json = 1;
        else
            return CTL_EXIT_USAGE;
    }
    if (optind != argc) return ctl_usage_error(ctl, "unexpected argument '%s'", argv[optind]);
    store_t *st;
    int rc = ctl_store_open(ctl, &st);
    if (rc) return rc;
    store_token_t *v;
    size_t n;
    char err[256];
    rc = store_token_list(st, &v, &n, err, sizeof err);
    store_close(st);
    if (rc < 0) {
        ctl_error(ctl, "%s", err);
        return CTL_EXIT_FAIL;
    }
    int64_t now = time_now_ms();
    int wn = 4, wp = 7;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(v[i].name), lp = (int)strlen(v[i].project);
        wn = l > wn ? l : wn;
        wp = lp > wp ? lp : wp;
    }
    if (!as_json)
        printf("%-*s  %-*s  %-6s  %-7s  %-24s  %s\n", wn, "NAME", wp, "PROJECT", "KIND", "STATE",
               "CREATED", "EXPIRES");
    for (size_t i = 0; i < n; i++) {
        const store_token_t *t = &v[i];
        char created[40], expires[40], revoked[40];
        ctl_format_time(t->created_at, created, sizeof created);
        ctl_format_time(t->expires_at, expires, sizeof expires);
        ctl_format_time(t->revoked_at, revoked, sizeof revoked);
        const char *kind = t->kind == STORE_TOKEN_PORTAL ? "portal" : "api";
        if (as_json) {
            json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:s,s:o,s:o}", "name", t->name, "project",
                                  t->project[0] ? json_string(t->project) : json_null(), "kind",
                                  kind, "state", token_state(t, now), "created_at", created,
                                  "expires_at", t->expires_at ? json_string(expires) : json_null(),
                                  "revoked_at", t->revoked_at ? json_string(revoked) : json_null());
            json_dumpf(o, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(o);
        } else {
            printf("%-*s  %-*s  %-6s  %-7s  %-24s  %s\n", wn, t->name, wp,
                   t->project[0] ? t->project : "(admin)", kind, token_state(t, now), created,
                   expires);
        }
    }
    free(v);
    return CTL_EXIT_OK;
}

/* token_revoke: NAME; exit 1 when no token has it. */
static int token_revoke(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    int c;
    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind != 1) return ctl_usage_error(ctl, "expected one token NAME");
    const char *name = argv[optind];
    store_t *st;
    int rc = ctl_store_open(ctl, &st);
    if (rc) return rc;
    char err[256];
    rc = store_token_revoke(st, name, err, sizeof err);
    store_close(st);
    if (rc == -ENOENT) {
        ctl_error(ctl, "no token named '%s'", name);
        return CTL_EXIT_FAIL;
    }
    if (rc < 0) {
        ctl_error(ctl, "%s", err);
        return CTL_EXIT_FAIL;
    }
    fprintf(stderr, "token '%s' revoked\n", name);
    return CTL_EXIT_OK;
}

int ctl_token_run(ctl_t *ctl, int argc, char **argv)
{
    static char cmd[64];
    if (argc < 2) return ctl_usage_error(ctl, "expected create, list or revoke");
    const char *verb = argv[1];
    snprintf(cmd, sizeof cmd, "token %s", verb);
    if (strcmp(verb, "create") == 0) {
        ctl->cmd = cmd;
        return token_create(ctl, argc - 1, argv + 1);
    }
    if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0) {
        ctl->cmd = cmd;
        return token_list(ctl, argc - 1, argv + 1);
    }
    if (strcmp(verb, "revoke") == 0) {
        ctl->cmd = cmd;
        return token_revoke(ctl, argc - 1, argv + 1);
    }
    return ctl_usage_error(ctl, "unknown action '%s' (create, list, revoke)", verb);
}
