/* promtext.h - a writer of the Prometheus text exposition format (version 0.0.4): "# HELP" and
 * "# TYPE" lines, samples with escaped label values, into a growing buffer. */
#ifndef HL_PROMTEXT_H
#define HL_PROMTEXT_H

#include <stddef.h>

#define PROMTEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct promtext {
    char *buf;
    size_t len, cap;
    int oom; /* an append failed: promtext_take returns NULL */
} promtext_t;

void promtext_init(promtext_t *p);
/* promtext_family starts a metric family: "# HELP name help" (help's backslashes and newlines
 * escaped) and "# TYPE name type" (counter, gauge, histogram). */
void promtext_family(promtext_t *p, const char *name, const char *type, const char *help);
/* promtext_sample appends "name{k="v",...} value": labels is k, v, k, v, ..., NULL (or NULL
 * for none); label values have backslash, double quote and newline escaped. The value prints
 * exactly when integral (counts), else in the fewest digits (15 to 17) that read back as the
 * same double; +Inf, -Inf, NaN as spelled by the format. */
void promtext_sample(promtext_t *p, const char *name, const char *const *labels, double value);
/* promtext_take hands the text over (NUL-terminated, *len bytes; caller frees), or NULL when
 * out of memory; p is empty again either way. */
char *promtext_take(promtext_t *p, size_t *len);
void promtext_free(promtext_t *p);

#endif
