/* http_uv.c - libcurl multi on libuv: the socket and timer callbacks, one uv_poll per socket
 * kept from libcurl's open to its close (stopped while the connection idles in the cache), and
 * the address guard at open time. */
#include "http_int.h"

#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* http_sock_find: the record of fd, or NULL. */
static http_sock_t *http_sock_find(http_t *h, curl_socket_t fd)
{
    if (fd < 0 || (size_t)fd >= h->nsocks) return NULL;
    return h->socks[fd];
}

/* http_sock_closed: close callback of a socket's poll handle. */
static void http_sock_closed(uv_handle_t *hd)
{
    http_sock_t *r = hd->data;
    http_t *h = r->h;
    free(r);
    http_handle_gone(h);
}

/* http_sock_drop: forget fd's record: off the table, its host released, its watcher closed
 * (while the fd is still open) and the record freed in the close callback. */
static void http_sock_drop(http_t *h, http_sock_t *r)
{
    if (r->fd >= 0 && (size_t)r->fd < h->nsocks && h->socks[r->fd] == r) h->socks[r->fd] = NULL;
    if (r->host) {
        r->host->conns--;
        http_host_unref(h, r->host);
        r->host = NULL;
    }
    if (!r->inited) {
        free(r);
        return;
    }
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, http_sock_closed);
}

/* http_sock_new: a record for fd in the table (a stale one there is dropped first). NULL on
 * ENOMEM. */
static http_sock_t *http_sock_new(http_t *h, curl_socket_t fd, int owned)
{
    if ((size_t)fd >= h->nsocks) {
        size_t n = h->nsocks ? h->nsocks : 64;
        while (n <= (size_t)fd)
            n *= 2;
        http_sock_t **ns = realloc(h->socks, n * sizeof(*ns));
        if (!ns) return NULL;
        memset(ns + h->nsocks, 0, (n - h->nsocks) * sizeof(*ns));
        h->socks = ns;
        h->nsocks = n;
    }
    http_sock_t *old = http_sock_find(h, fd);
    if (old) http_sock_drop(h, old);
    http_sock_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->fd = fd;
    r->h = h;
    r->owned = owned;
    h->socks[fd] = r;
    return r;
}

/* http_open_cb: the guard, on the address libcurl resolved, right before connect; the socket
 * is recorded against its host. */
static curl_socket_t http_open_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_xfer_t *x = ud;
    http_t *h = x->h;
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
    if (!guard_allows(h->cfg.guard, &a->addr)) {
        x->guard_refused++;
        return CURL_SOCKET_BAD;
    }
    x->guard_passed++;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    http_sock_t *r = http_sock_new(h, fd, 1);
    if (!r) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    http_host_t *host = x->req ? x->req->priv.host : NULL;
    if (host) {
        host->refs++;
        host->conns++;
        r->host = host;
    }
    return fd;
}

/* http_close_cb: libcurl closes a socket it opened through http_open_cb: its watcher goes
 * first (uv_close while the fd is valid), then the fd. */
static int http_close_cb(void *ud, curl_socket_t fd)
{
    http_t *h = ud;
    http_sock_t *r = http_sock_find(h, fd);
    if (r) http_sock_drop(h, r);
    return close(fd);
}

CURLcode http_uv_setopts(http_t *h, http_xfer_t *x)
{
    CURLcode rc = curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, http_open_cb);
    if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
    if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETFUNCTION, http_close_cb);
    if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETDATA, h);
    return rc;
}

/* http_timer_cb: libcurl's timeout expired. */
static void http_timer_cb(uv_timer_t *t)
{
    http_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_multi(h);
}

/* http_timer_fn: libcurl asks for its timeout: -1 stop, 0 as soon as the loop turns. */
static int http_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    http_t *h = userp;
    if (h->torn_down) return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, http_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* http_poll_cb: a watched socket is ready (or failed): tell libcurl. */
static void http_poll_cb(uv_poll_t *p, int status, int events)
{
    http_sock_t *k = p->data;
    http_t *h = k->h;
    int flags = 0, running;
    if (status < 0) {
        /* libuv reports POLLERR (say, a reset) as UV_EBADF and stops the handle. Let libcurl
         * read and write so it meets the socket's own error (ECONNRESET) and names it. */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
        uv_poll_stop(p);
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, k->fd, flags, &running);
    http_check_multi(h);
}

/* http_socket_fn: libcurl says which events it wants on a socket, or that it stops watching
 * it: then an owned socket's watcher is only stopped (the connection may idle in the cache and
 * come back), another's closed. */
static int http_socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    http_t *h = userp;
    http_sock_t *r = http_sock_find(h, s);
    if (what == CURL_POLL_REMOVE) {
        if (r && r->owned) {
            if (r->inited) uv_poll_stop(&r->poll);
            r->watching = 0;
        } else if (r) {
            http_sock_drop(h, r);
        }
        return 0;
    }
    if (!r && !(r = http_sock_new(h, s, 0))) {
        log_error("http: out of memory watching socket %d", (int)s);
        return -1;
    }
    if (!r->inited) {
        int rc = uv_poll_init_socket(h->loop, &r->poll, s);
        if (rc < 0) {
            log_error("http: cannot watch socket %d: %s", (int)s, uv_strerror(rc));
            return -1;
        }
        r->inited = 1;
        r->poll.data = r;
        h->open_handles++;
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    int rc = uv_poll_start(&r->poll, ev, http_poll_cb);
    if (rc < 0) {
        log_error("http: cannot poll socket %d: %s", (int)s, uv_strerror(rc));
        return -1;
    }
    r->watching = 1;
    return 0;
}

/* http_timer_closed: close callback of the two timers. */
static void http_timer_closed(uv_handle_t *hd)
{
    http_handle_gone(hd->data);
}

void http_uv_init(http_t *h)
{
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_fn);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    h->cache_size = h->cfg.max_inflight;
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, h->cache_size);
    uv_timer_init(h->loop, &h->timer);
    uv_timer_init(h->loop, &h->defer);
    h->timer.data = h;
    h->defer.data = h;
    h->open_handles = 2;
}

void http_uv_close(http_t *h)
{
    for (size_t fd = 0; fd < h->nsocks; fd++)
        if (h->socks[fd]) http_sock_drop(h, h->socks[fd]);
    free(h->socks);
    h->socks = NULL;
    h->nsocks = 0;
    uv_close((uv_handle_t *)&h->timer, http_timer_closed);
    uv_close((uv_handle_t *)&h->defer, http_timer_closed);
}
