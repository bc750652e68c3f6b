/* main.c - hook-api: the HTTP face of hookline (management API, metrics, console) on the daemon
 * skeleton: options, the store, the HTTP server's start, drain and stop. */
#include "api_int.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* api_write_addr writes "http://HOST:PORT\n" into DATA/run/api.<instance>.addr (atomically),
 * so tests and scripts find a port chosen with --listen HOST:0. */
static int api_write_addr(api_t *a, const char *url)
{
    daemon_t *d = a->d;
    char tmp[sizeof a->addr_path + 8];
    if ((size_t)snprintf(a->addr_path, sizeof a->addr_path, "%s/api.%s.addr", daemon_run_dir(d),
                         daemon_instance(d)) >= sizeof a->addr_path) {
        a->addr_path[0] = '\0';
        log_error("address file path too long");
        return -ENAMETOOLONG;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", a->addr_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        log_error("%s: %s", tmp, strerror(e));
        a->addr_path[0] = '\0';
        return -e;
    }
    char line[600];
    int n = snprintf(line, sizeof line, "%s\n", url);
    int ok = write(fd, line, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, a->addr_path) < 0) {
        int e = errno;
        log_error("%s: %s", a->addr_path, strerror(e));
        unlink(tmp);
        a->addr_path[0] = '\0';
        return -e;
    }
    return 0;
}

/* api_start opens the store (through the configuration watcher) and starts the server. */
static int api_start(daemon_t *d)
{
    api_t *a = daemon_ctx(d);
    char err[256];
    a->d = d;
    a->listen_fd = -1;
    TAILQ_INIT(&a->conns);
    int rc = cfgwatch_init(&a->cfg, daemon_loop(d), daemon_db_path(d), 500, err, sizeof err);
    if (rc < 0) {
        log_error("store %s: %s", daemon_db_path(d), err);
        return rc;
    }
    if ((rc = api_http_start(a)) < 0) return rc;
    char url[512];
    snprintf(url, sizeof url, "http://%s", a->listen);
    /* --listen HOST:0 names the port bound: replace the 0 */
    char *colon = strrchr(url, ':');
    if (colon) snprintf(colon + 1, sizeof url - (size_t)(colon + 1 - url), "%d", a->port);
    if (a->public_url_opt && a->public_url_opt[0]) {
        snprintf(a->public_url, sizeof a->public_url, "%s", a->public_url_opt);
        size_t n = strlen(a->public_url);
        while (n > 0 && a->public_url[n - 1] == '/')
            a->public_url[--n] = '\0';
    } else {
        snprintf(a->public_url, sizeof a->public_url, "%s", url);
    }
    if ((rc = api_write_addr(a, url)) < 0) return rc;
    log_info("listening on %s (console %s/)", url, a->public_url);
    return 0;
}

/* api_idle: every request begun has been answered and sent. */
static int api_idle(daemon_t *d)
{
    return api_http_idle(daemon_ctx(d));
}

/* api_drain: stop accepting connections, finish the requests in flight, stop. */
static void api_drain(daemon_t *d)
{
    api_t *a = daemon_ctx(d);
    api_http_quiesce(a);
    daemon_stop_when_idle(d, api_idle);
}

/* api_close stops the server and releases the store. */
static void api_close(daemon_t *d)
{
    api_t *a = daemon_ctx(d);
    api_http_stop(a);
    if (a->addr_path[0] && unlink(a->addr_path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", a->addr_path, strerror(errno));
    cfgwatch_close(a->cfg);
    a->cfg = NULL;
}

/* The options of hook-api, one row each (daemon.h). */
static const daemon_option_t api_options[] = {
    DAEMON_OPTION_STRING("listen", "HOST:PORT", "127.0.0.1:8080", api_t, listen,
                         "address to serve HTTP on (port 0: any free port; the address bound "
                         "is written to run/api.INSTANCE.addr)"),
    DAEMON_OPTION_UINT("max-connections", "N", "256", 1, 100000, api_t, max_connections,
                       "connections served at once; more wait to be accepted"),
    DAEMON_OPTION_INT64("request-timeout-ms", "N", "30000", 100, 3600000, api_t, request_timeout_ms,
                        "a request's whole life, from its connection (or the previous "
                        "request) to its answer; a connection past it is cut"),
    DAEMON_OPTION_INT64("portal-ttl", "SECONDS", "3600", 60, 31 * 86400, api_t, portal_ttl,
                        "how long a portal link (POST /v1/projects/P/portal) stays valid"),
    DAEMON_OPTION_STRING("public-url", "URL", NULL, api_t, public_url_opt,
                         "base URL of portal links (default http://HOST:PORT of --listen)"),
    DAEMON_OPTION_END,
};

static const daemon_ops_t api_ops = {
    .program = "hook-api",
    .stage = "api",
    .summary = "serves the HTTP API (/v1/), /metrics, /healthz, /readyz and the web console",
    .multi_instance = 1,
    .raw_input = 0,
    .has_journal = 0,
    .options = api_options,
    .on_start = api_start,
    .on_drain = api_drain,
    .on_close = api_close,
};

int main(int argc, char **argv)
{
    static api_t a; /* options are filled in by daemon_main from api_options */
    return daemon_main(argc, argv, &api_ops, &a);
}
