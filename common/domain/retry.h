/* retry.h - the backoff policy: before retry n (1..max-1) wait base * factor^(n-1), +-jitter. */
#ifndef HL_RETRY_H
#define HL_RETRY_H

#include <stdint.h>

typedef struct retry_policy {
    int64_t base_ms;  /* 30000 */
    double factor;    /* 4 */
    double jitter;    /* 0.1: +-10 % */
    int max_attempts; /* 6: attempts in all, the first included */
} retry_policy_t;

#define RETRY_POLICY_DEFAULT                                                                       \
    {                                                                                              \
        30000, 4.0, 0.1, 6                                                                         \
    }

/* retry_delay_ms: the wait after failed attempt n (1-based) before attempt n+1. u is a uniform
 * random value in [0, 1] (the caller draws it, so tests are exact): the delay is
 * base * factor^(n-1) * (1 + jitter * (2u - 1)), rounded, at least 0. */
int64_t retry_delay_ms(const retry_policy_t *p, int failed_attempt, double u);

/* retry_next decides after failed attempt n: returns 1 with *next_at_ms when another attempt is
 * due (now + delay, or now + retry_after_ms when that is longer, capped at the schedule's
 * longest delay base * factor^(max-2) * (1 + jitter)), or 0 when n was the last (failed). */
int retry_next(const retry_policy_t *p, int failed_attempt, int64_t now_ms, int64_t retry_after_ms,
               int64_t *next_at_ms);

/* retry_random_unit: a uniform draw in [0, 1] from arc4random. */
double retry_random_unit(void);

#endif
