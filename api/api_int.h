/* api_int.h - hook-api's insides shared by main.c, api_http.c and api_auth.c: the server state
 * behind api_t, the HTTP server's start/drain/stop, and the token check. Handlers use api.h. */
#ifndef HL_API_INT_H
#define HL_API_INT_H

#include "api.h"
#include "domain/cfgwatch.h"
#include "util/tree.h"

#include <stdint.h>
#include <uv.h>

struct MHD_Daemon;
typedef struct api_conn api_conn_t;

struct api {
    /* options (main.c's table) */
    const char *listen;         /* --listen HOST:PORT */
    unsigned max_connections;   /* --max-connections */
    int64_t request_timeout_ms; /* --request-timeout-ms: a request's whole life */
    int64_t portal_ttl;         /* --portal-ttl, seconds */
    const char *public_url_opt; /* --public-url */

    daemon_t *d;
    cfgwatch_t *cfg;
    char public_url[512]; /* without a trailing '/' */
    char addr_path[4096]; /* DATA/run/api.<instance>.addr, "" until written */
    int port;             /* bound port */

    /* the HTTP server (api_http.c) */
    struct MHD_Daemon *mhd;
    int listen_fd;
    uv_poll_t poll;   /* on MHD's epoll fd */
    uv_timer_t timer; /* MHD_get_timeout, or 0 ms after a resume */
    uv_timer_t sweep; /* cuts connections past --request-timeout-ms */
    int handles_open; /* of the three above, not yet closed */
    int poll_init, timers_init;
    int kick; /* MHD must run again at once */
    TAILQ_HEAD(, api_conn) conns;
    size_t nconns;
    size_t inflight; /* requests begun and not completed */
};

/* api_http_start binds --listen, starts libmicrohttpd on its epoll fd inside the loop, and
 * fills a->port. Returns 0 or a negative errno after logging why. */
int api_http_start(api_t *a);
/* api_http_quiesce stops accepting connections (drain); in-flight requests go on. */
void api_http_quiesce(api_t *a);
/* api_http_idle: no request is in flight. */
int api_http_idle(api_t *a);
/* api_http_stop stops the server (closing every connection) and closes its uv handles. */
void api_http_stop(api_t *a);

/* api_auth_check checks r's bearer token for route auth and project (the route's first
 * parameter, for API_AUTH_PROJECT) and fills *who. Returns 0, or the status it answered with
 * (401, 403, 503) after answering r. */
unsigned api_auth_check(api_req_t *r, api_auth_t auth, const char *project, api_principal_t *who);

#endif
