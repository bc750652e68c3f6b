/* store_page.c - pages of one project's delivery log, newest first, for hook-api: keyset
 * pagination on (created_at, invocation_id) along the index deliveries_project, with an opaque
 * cursor (base64url of "created_at:invocation_id") naming the last record of the page before. */
#include "domain/store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_INV_MAX 128 /* longest invocation id a cursor may carry */

static const char page_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* page_b64_encode writes n bytes of in as unpadded base64url into out (outlen bytes, with the
 * NUL). Returns 0, or -ENOSPC when out is too small. */
static int page_b64_encode(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    if ((n + 2) / 3 * 4 + 1 > outlen) return -ENOSPC;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = page_b64[(v >> 18) & 63];
        out[o++] = page_b64[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = page_b64[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = page_b64[v & 63];
    }
    out[o] = '\0';
    return 0;
}

/* page_b64_value: the 6-bit value of a base64url character, -1 for any other. */
static int page_b64_value(char c)
{
    const char *p = c ? strchr(page_b64, c) : NULL;
    return p ? (int)(p - page_b64) : -1;
}

/* page_b64_decode decodes unpadded base64url text into out (outlen bytes). Returns the length,
 * or -EINVAL (a character outside the alphabet, a length no encoding has, unused bits set, or
 * too long for out). */
static long page_b64_decode(const char *in, unsigned char *out, size_t outlen)
{
    size_t n = strlen(in), o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (n % 4 == 1) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int v = page_b64_value(in[i]);
        if (v < 0) return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen) return -EINVAL;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -EINVAL; /* the leftover bits of a canonical encoding are zero */
    return (long)o;
}

int store_page_cursor_encode(int64_t created_at, const char *invocation_id, char *out,
                             size_t outlen)
{
    char raw[32 + PAGE_INV_MAX];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ":%s", created_at, invocation_id);
    if (n < 0 || (size_t)n >= sizeof raw || created_at < 0) return -EINVAL;
    return page_b64_encode((const unsigned char *)raw, (size_t)n, out, outlen);
}

int store_page_cursor_decode(const char *cursor, int64_t *created_at, char *inv, size_t invlen)
{
    unsigned char raw[32 + PAGE_INV_MAX];
    long n = page_b64_decode(cursor, raw, sizeof raw - 1);
    int64_t t = 0;
    size_t i = 0;
    if (n <= 0) return -EINVAL;
    raw[n] = '\0';
    for (; i < (size_t)n && raw[i] >= '0' && raw[i] <= '9'; i++) {
        if (t > (INT64_MAX - 9) / 10) return -EINVAL;
        t = t * 10 + (raw[i] - '0');
    }
    if (i == 0 || i >= (size_t)n || raw[i] != ':') return -EINVAL;
    const char *id = (const char *)raw + i + 1;
    size_t idlen = (size_t)n - i - 1;
    if (idlen == 0 || idlen > PAGE_INV_MAX || idlen >= invlen) return -EINVAL;
    for (size_t k = 0; k < idlen; k++)
        if (raw[i + 1 + k] <= ' ' || raw[i + 1 + k] >= 0x7f) return -EINVAL;
    memcpy(inv, id, idlen + 1);
    *created_at = t;
    return 0;
}

/* page_window finds where a filtered page's scan stops: the key of the scan-th record of the
 * project after the cursor, along the index alone (it covers project_id, created_at and
 * invocation_id). 1 with *bc/bi, 0 when fewer records remain, or a negative errno with err. */
static int page_window(store_t *s, const char *project, int has_cursor, int64_t after_created,
                       const char *after_inv, int scan, int64_t *bc, char *bi, size_t bilen,
                       char *err, size_t errlen)
{
    char sql[400];
    sqlite3_stmt *st;
    int rc;
    snprintf(sql, sizeof sql,
             "SELECT created_at, invocation_id FROM deliveries WHERE project_id = ?1%s"
             " ORDER BY created_at DESC, invocation_id DESC LIMIT 1 OFFSET ?4",
             has_cursor ? " AND (created_at, invocation_id) < (?2, ?3)" : "");
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) return rc;
    store_bind_text(st, 1, project);
    if (has_cursor) {
        sqlite3_bind_int64(st, 2, after_created);
        store_bind_text(st, 3, after_inv);
    }
    sqlite3_bind_int(st, 4, scan - 1);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        *bc = sqlite3_column_int64(st, 0);
        if (!id || strlen(id) >= bilen || strlen(id) > PAGE_INV_MAX)
            rc = store_failf(s, err, errlen, ERANGE, "page: record key too long for a cursor");
        else
            memcpy(bi, id, strlen(id) + 1), rc = 1;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = store_fail(s, err, errlen, rc, "find a page's window");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_deliveries_page(store_t *s, const delivery_page_t *q,
                          int (*cb)(void *arg, const delivery_t *d), void *arg, char *next,
                          size_t nextlen, char *err, size_t errlen)
{
    char sql[768], inv[PAGE_INV_MAX + 1] = "", win_inv[PAGE_INV_MAX + 1] = "";
    char last_inv[PAGE_INV_MAX + 1] = "";
    int64_t after_created = 0, win_created = 0, last_created = 0;
    int has_cursor = q->cursor && q->cursor[0];
    int filtered = q->webhook_id || q->event_id || q->status >= 0;
    int scan = q->scan > 0 ? q->scan : STORE_PAGE_SCAN, windowed = 0;
    sqlite3_stmt *st;
    int rc, seen = 0, more = 0, n = 0;

    if (next && nextlen) next[0] = '\0';
    if (!q->project_id) return store_failf(s, err, errlen, EINVAL, "page: no project");
    if (q->limit < 1 || q->limit > STORE_PAGE_MAX)
        return store_failf(s, err, errlen, EINVAL, "limit: must be from 1 to %d", STORE_PAGE_MAX);
    if (has_cursor && store_page_cursor_decode(q->cursor, &after_created, inv, sizeof inv) < 0)
        return store_failf(s, err, errlen, EINVAL,
                           "cursor: malformed (pass back a next_cursor as it was given)");
    /* A filter may match few records: a page then looks at no more than scan of them, and ends
     * at the last one looked at (its cursor), however few matched. */
    if (filtered &&
        (windowed = page_window(s, q->project_id, has_cursor, after_created, inv, scan,
                                &win_created, win_inv, sizeof win_inv, err, errlen)) < 0)
        return windowed;
    /* The row-value comparisons keep to the index deliveries_project(project_id, created_at,
     * invocation_id), walked backwards: a page costs its own rows, however deep it lies. */
    snprintf(sql, sizeof sql,
             "SELECT " STORE_DLV_READ_COLS " FROM deliveries WHERE project_id = ?1%s%s%s%s%s"
             " ORDER BY created_at DESC, invocation_id DESC LIMIT ?7",
             q->webhook_id ? " AND webhook_id = ?2" : "", q->event_id ? " AND event_id = ?3" : "",
             q->status >= 0 ? " AND status = ?4" : "",
             has_cursor ? " AND (created_at, invocation_id) < (?5, ?6)" : "",
             windowed ? " AND (created_at, invocation_id) >= (?8, ?9)" : "");
    if ((rc = store_prepare(s, sql, 0, &st, err, errlen)) < 0) return rc;
    store_bind_text(st, 1, q->project_id);
    if (q->webhook_id) store_bind_text(st, 2, q->webhook_id);
    if (q->event_id) store_bind_text(st, 3, q->event_id);
    if (q->status >= 0) sqlite3_bind_int(st, 4, q->status);
    if (has_cursor) {
        sqlite3_bind_int64(st, 5, after_created);
        store_bind_text(st, 6, inv);
    }
    sqlite3_bind_int(st, 7, q->limit + 1); /* one more: is there a next page? */
    if (windowed) {
        sqlite3_bind_int64(st, 8, win_created);
        store_bind_text(st, 9, win_inv);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        delivery_t d;
        if (seen == q->limit) {
            more = 1;
            break;
        }
        if (store_row_delivery(st, &d) < 0) {
            sqlite3_finalize(st);
            return store_failf(s, err, errlen, ENOMEM, "out of memory");
        }
        seen++;
        last_created = d.created_at;
        if (!d.invocation_id || strlen(d.invocation_id) > PAGE_INV_MAX) {
            store_delivery_free(&d);
            sqlite3_finalize(st);
            return store_failf(s, err, errlen, ERANGE, "page: record key too long for a cursor");
        }
        snprintf(last_inv, sizeof last_inv, "%s", d.invocation_id);
        n = cb(arg, &d);
        store_delivery_free(&d);
        if (n != 0) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = store_fail(s, err, errlen, rc, "list a project's deliveries");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    if (n < 0) return n;
    if (!more && windowed) { /* the window is done: go on below it */
        last_created = win_created;
        snprintf(last_inv, sizeof last_inv, "%s", win_inv);
        more = 1;
    }
    if (more && next && nextlen &&
        store_page_cursor_encode(last_created, last_inv, next, nextlen) < 0)
        return store_failf(s, err, errlen, ERANGE, "page: record key too long for a cursor");
    return seen;
}
