/* timeutil.h - wall-clock and monotonic milliseconds, and RFC 3339 text. */
#ifndef HL_TIMEUTIL_H
#define HL_TIMEUTIL_H
#include <stddef.h>
#include <stdint.h>
/* time_now_ms: milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t time_now_ms(void);
/* time_mono_ms: milliseconds of CLOCK_MONOTONIC, for intervals and timers: it never steps when
 * the wall clock is set. */
int64_t time_mono_ms(void);
/* time_format_rfc3339 writes "2026-11-26T12:00:00.123Z" (millis omitted when 0) into buf (>= 32
 * bytes). Returns buf. */
char *time_format_rfc3339(int64_t ms, char *buf, size_t n);
/* time_parse_rfc3339 accepts RFC 3339 date-times (with Z or +hh:mm offset, optional fraction).
 * Returns 0 and *ms, or -EINVAL. */
int time_parse_rfc3339(const char *s, int64_t *ms);
#endif
