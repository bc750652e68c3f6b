/* retry.c - the backoff policy: exponential delays with symmetric jitter, the attempt limit, and
 * how a server's Retry-After stretches (but never beyond the schedule's longest) wait. */
#include "domain/retry.h"

#include <stdint.h>
#include <stdlib.h> /* arc4random, through the libbsd overlay */
#include <math.h>

/* Far beyond any sane schedule, yet far from int64 overflow when added to a unix ms time. */
#define RETRY_DELAY_CEILING ((double)(INT64_C(1) << 52))

/* clamp_ms: a finite, non-negative, rounded delay that fits comfortably in int64. */
static int64_t clamp_ms(double d)
{
    if (!(d > 0)) /* also catches NaN */
        return 0;
    if (d > RETRY_DELAY_CEILING) d = RETRY_DELAY_CEILING;
    return (int64_t)llround(d);
}

/* nominal_ms: base * factor^(n-1) before jitter, n >= 1. */
static double nominal_ms(const retry_policy_t *p, int n)
{
    return (double)p->base_ms * pow(p->factor, (double)(n - 1));
}

int64_t retry_delay_ms(const retry_policy_t *p, int failed_attempt, double u)
{
    if (failed_attempt < 1) failed_attempt = 1;
    if (u < 0) u = 0;
    if (u > 1) u = 1;
    return clamp_ms(nominal_ms(p, failed_attempt) * (1.0 + p->jitter * (2.0 * u - 1.0)));
}

int retry_next(const retry_policy_t *p, int failed_attempt, int64_t now_ms, int64_t retry_after_ms,
               int64_t *next_at_ms)
{
    if (failed_attempt >= p->max_attempts) {
        *next_at_ms = 0;
        return 0;
    }
    int64_t delay = retry_delay_ms(p, failed_attempt, retry_random_unit());
    if (retry_after_ms > delay) {
        /* The server asked for longer; honour it up to the longest wait the schedule has. */
        int longest = p->max_attempts - 1 >= 1 ? p->max_attempts - 1 : 1;
        int64_t cap = clamp_ms(nominal_ms(p, longest) * (1.0 + p->jitter));
        int64_t wanted = retry_after_ms < cap ? retry_after_ms : cap;
        if (wanted > delay) delay = wanted;
    }
    *next_at_ms = now_ms + delay;
    return 1;
}

double retry_random_unit(void)
{
    /* 32 random bits over 2^32 - 1 covers [0, 1] inclusive, as the header promises. */
    return (double)arc4random() / (double)UINT32_MAX;
}
