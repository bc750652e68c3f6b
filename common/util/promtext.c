/* promtext.c - the Prometheus text exposition format writer (promtext.h). */
#include "util/promtext.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void promtext_init(promtext_t *p)
{
    memset(p, 0, sizeof *p);
}

/* promtext_reserve makes room for n more bytes (and a NUL). 0, or -1 when out of memory. */
static int promtext_reserve(promtext_t *p, size_t n)
{
    if (p->oom) return -1;
    if (p->len + n + 1 <= p->cap) return 0;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + n + 1)
        cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb) {
        p->oom = 1;
        return -1;
    }
    p->buf = nb;
    p->cap = cap;
    return 0;
}

/* promtext_put appends n bytes of s. */
static void promtext_put(promtext_t *p, const char *s, size_t n)
{
    if (promtext_reserve(p, n) < 0) return;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = 0;
}

/* promtext_puts appends a string. */
static void promtext_puts(promtext_t *p, const char *s)
{
    promtext_put(p, s, strlen(s));
}

/* promtext_escaped appends s with backslash and newline escaped, and the double quote too when
 * quote (label values; HELP text keeps its quotes). */
static void promtext_escaped(promtext_t *p, const char *s, int quote)
{
    for (const char *c = s; *c; c++) {
        if (*c == '\\')
            promtext_put(p, "\\\\", 2);
        else if (*c == '\n')
            promtext_put(p, "\\n", 2);
        else if (*c == '"' && quote)
            promtext_put(p, "\\\"", 2);
        else
            promtext_put(p, c, 1);
    }
}

void promtext_family(promtext_t *p, const char *name, const char *type, const char *help)
{
    promtext_puts(p, "# HELP ");
    promtext_puts(p, name);
    promtext_puts(p, " ");
    promtext_escaped(p, help, 0);
    promtext_puts(p, "\n# TYPE ");
    promtext_puts(p, name);
    promtext_puts(p, " ");
    promtext_puts(p, type);
    promtext_puts(p, "\n");
}

void promtext_sample(promtext_t *p, const char *name, const char *const *labels, double value)
{
    char num[64];
    promtext_puts(p, name);
    if (labels && labels[0]) {
        promtext_puts(p, "{");
        for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
            if (i) promtext_puts(p, ",");
            promtext_puts(p, labels[i]);
            promtext_puts(p, "=\"");
            promtext_escaped(p, labels[i + 1], 1);
            promtext_puts(p, "\"");
        }
        promtext_puts(p, "}");
    }
    if (isnan(value))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(value))
        snprintf(num, sizeof num, "%sInf", value > 0 ? "+" : "-");
    else if (value == floor(value) && fabs(value) < 9007199254740992.0) /* 2^53: exact */
        snprintf(num, sizeof num, "%.0f", value);
    else { /* the shortest of 15 to 17 digits that reads back as the same double */
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(num, sizeof num, "%.*g", digits, value);
            if (strtod(num, NULL) == value) break;
        }
    }
    promtext_puts(p, " ");
    promtext_puts(p, num);
    promtext_puts(p, "\n");
}

char *promtext_take(promtext_t *p, size_t *len)
{
    char *out = p->oom ? NULL : p->buf;
    if (out == NULL && !p->oom) out = calloc(1, 1); /* nothing written: "" */
    if (p->oom) free(p->buf);
    *len = out ? p->len : 0;
    promtext_init(p);
    return out;
}

void promtext_free(promtext_t *p)
{
    free(p->buf);
    promtext_init(p);
}
