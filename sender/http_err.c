/* http_err.c - the HTTP engine's errors in words: what libcurl reported (its CURLcode, errno
 * and message) or what failed before a transfer started, as the contract's error strings. */
#include "http_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* http_url_host: the host part of url, for messages ("?" when unparsable). */
static void http_url_host(const char *url, char *buf, size_t n)
{
    CURLU *u = curl_url();
    char *host = NULL;
    snprintf(buf, n, "?");
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(buf, n, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

void http_err_early(const http_request_t *req, char *buf, size_t n)
{
    switch (req->priv.fail_kind) {
    case HTTP_FAIL_URL:
        snprintf(buf, n, "invalid URL: %s", curl_url_strerror((CURLUcode)req->priv.fail_code));
        break;
    case HTTP_FAIL_SCHEME:
        snprintf(buf, n, "unsupported protocol (only http and https)");
        break;
    case HTTP_FAIL_START:
        snprintf(buf, n, "could not start the transfer: %s",
                 curl_multi_strerror((CURLMcode)req->priv.fail_code));
        break;
    default:
        snprintf(buf, n, "out of memory");
        break;
    }
}

/* http_errbuf: libcurl's own message for code, without a trailing newline. */
static const char *http_errbuf(http_xfer_t *x, CURLcode code)
{
    size_t n = strlen(x->errbuf);
    while (n && (x->errbuf[n - 1] == '\n' || x->errbuf[n - 1] == '\r'))
        x->errbuf[--n] = '\0';
    return n ? x->errbuf : curl_easy_strerror(code);
}

void http_err_describe(const http_t *h, http_xfer_t *x, CURLcode code, char *buf, size_t n)
{
    long oserr = 0;
    curl_off_t pretransfer = 0;
    char host[256];
    const char *eb = http_errbuf(x, code);
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    switch (code) {
    case CURLE_OK:
        snprintf(buf, n, "incomplete HTTP response head");
        break;
    case CURLE_COULDNT_CONNECT:
        if (x->guard_refused && !x->guard_passed)
            snprintf(buf, n, "target address not allowed");
        else if (oserr == ECONNREFUSED)
            snprintf(buf, n, "connection refused");
        else if (oserr == ENETUNREACH)
            snprintf(buf, n, "network unreachable");
        else if (oserr == EHOSTUNREACH)
            snprintf(buf, n, "host unreachable");
        else if (oserr == ETIMEDOUT)
            snprintf(buf, n, "connect timeout");
        else
            snprintf(buf, n, "could not connect: %s", eb);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (strncmp(eb, "Resolving timed out", 19) == 0) {
            http_url_host(x->req->url, host, sizeof(host));
            snprintf(buf, n, "could not resolve host: %s (timeout)", host);
        } else if (strncmp(eb, "Connection timed out", 20) == 0 ||
                   (pretransfer == 0 && h->cfg.connect_timeout_ms <= h->cfg.timeout_ms)) {
            /* Before the request went out the connect timeout applies (TCP and TLS). */
            snprintf(buf, n, "connect timeout after %ld ms", h->cfg.connect_timeout_ms);
        } else {
            snprintf(buf, n, "timeout after %ld ms", h->cfg.timeout_ms);
        }
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        http_url_host(x->req->url, host, sizeof(host));
        snprintf(buf, n, "could not resolve host: %s", host);
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        snprintf(buf, n, "TLS error: %s", eb);
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        if (oserr == ECONNRESET || oserr == EPIPE)
            snprintf(buf, n, "connection reset");
        else if (strncmp(eb, "Too large response headers", 26) == 0) /* libcurl 8.0 to 8.5 */
            snprintf(buf, n, "response headers too large");
        else
            snprintf(buf, n, "%s error: %s", code == CURLE_RECV_ERROR ? "receive" : "send", eb);
        break;
    case CURLE_GOT_NOTHING:
        snprintf(buf, n, "connection closed without a response");
        break;
    case CURLE_PARTIAL_FILE:
        snprintf(buf, n, "connection closed before the response was complete");
        break;
    case CURLE_WRITE_ERROR:
        if (x->too_big)
            snprintf(buf, n, "response body over %zu bytes", h->cfg.body_max);
        else
            snprintf(buf, n, "write error: %s", eb);
        break;
    case CURLE_WEIRD_SERVER_REPLY:
        snprintf(buf, n, "invalid HTTP response: %s", eb);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        if (strncmp(eb, "Received HTTP/0.9", 17) == 0) /* no "HTTP/x.y NNN" status line */
            snprintf(buf, n, "invalid HTTP response: no HTTP status line");
        else
            snprintf(buf, n, "unsupported protocol: %s", eb);
        break;
    case CURLE_URL_MALFORMAT:
        snprintf(buf, n, "invalid URL: %s", eb);
        break;
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
#endif
    case CURLE_OUT_OF_MEMORY:
        /* libcurl 7 reports a header line over its 100 KiB limit as out of memory. */
        if (pretransfer > 0 && !x->head_done)
            snprintf(buf, n, "response headers too large");
        else
            snprintf(buf, n, "out of memory");
        break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(buf, n, "HTTP/2 error: %s", eb);
        break;
    default:
        snprintf(buf, n, "%s", eb);
        break;
    }
}
