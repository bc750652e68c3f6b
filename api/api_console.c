/* api_console.c - the web console's files (api/console/), embedded at build time by
 * tools/embed.c and served from memory at "/" and "/NAME": no token (the page asks for one),
 * revalidated by ETag, under a Content-Security-Policy that lets the page reach only this
 * server. */
#include "api.h"

#include <string.h>

typedef struct console_file {
    const char *name;
    const char *type;
    const unsigned char *data;
    size_t len;
    const char *etag;
} console_file_t;

#include "console_files.inc"

/* Nothing but this origin: no CDN, no inline script, no framing (the token lives in the page). */
#define CONSOLE_CSP                                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* console_find: the embedded file of that name, or NULL. */
static const console_file_t *console_find(const char *name)
{
    for (const console_file_t *f = console_files; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

/* console_etag_matches: does an If-None-Match list name etag (or "*")? */
static int console_etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncmp(p, "W/", 2) == 0) p += 2;
        if (*p == '*') return 1;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ')) return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* api_console answers GET / (index.html) and GET /NAME (one embedded file, else 404). */
void api_console(api_req_t *r)
{
    const char *name = api_param(r, 0);
    if (!name || !*name) name = "index.html";
    const console_file_t *f = console_find(name);
    if (!f) {
        api_reply_error(r, 404, "no such page: /%s (the console is at /)", name);
        return;
    }
    api_reply_header(r, "ETag", f->etag);
    api_reply_header(r, "Cache-Control", "no-cache");
    api_reply_header(r, "X-Content-Type-Options", "nosniff");
    api_reply_header(r, "Referrer-Policy", "no-referrer");
    if (strncmp(f->type, "text/html", 9) == 0) {
        api_reply_header(r, "Content-Security-Policy", CONSOLE_CSP);
        api_reply_header(r, "X-Frame-Options", "DENY");
    }
    const char *inm = api_header(r, "If-None-Match");
    if (inm && console_etag_matches(inm, f->etag)) {
        api_reply_raw(r, 304, f->type, "", 0, 1);
        return;
    }
    api_reply_raw(r, 200, f->type, f->data, f->len, 1);
}
