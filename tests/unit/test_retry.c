/* test_retry.c - the backoff schedule: exact delays, jitter bounds, the attempt limit, and how
 * Retry-After stretches a wait without exceeding the schedule's longest. */
#include "check.h"
#include "domain/retry.h"

/* check_schedule: the contract's default schedule with no jitter drawn (u = 0.5). */
static void check_schedule(void)
{
    retry_policy_t p = RETRY_POLICY_DEFAULT;
    CHECK_INT(retry_delay_ms(&p, 1, 0.5), 30000);
    CHECK_INT(retry_delay_ms(&p, 2, 0.5), 120000);
    CHECK_INT(retry_delay_ms(&p, 3, 0.5), 480000);
    CHECK_INT(retry_delay_ms(&p, 4, 0.5), 1920000);
    CHECK_INT(retry_delay_ms(&p, 5, 0.5), 7680000);

    /* Millisecond schedules for tests. */
    retry_policy_t fast = {10, 2.0, 0.0, 4};
    CHECK_INT(retry_delay_ms(&fast, 1, 0.9), 10);
    CHECK_INT(retry_delay_ms(&fast, 3, 0.1), 40);
}

/* check_jitter: u = 0 and u = 1 are the -10 % and +10 % ends; out-of-range u is clamped. */
static void check_jitter(void)
{
    retry_policy_t p = RETRY_POLICY_DEFAULT;
    CHECK_INT(retry_delay_ms(&p, 1, 0.0), 27000);
    CHECK_INT(retry_delay_ms(&p, 1, 1.0), 33000);
    CHECK_INT(retry_delay_ms(&p, 2, 0.0), 108000);
    CHECK_INT(retry_delay_ms(&p, 2, 1.0), 132000);
    CHECK_INT(retry_delay_ms(&p, 1, -3.0), 27000);
    CHECK_INT(retry_delay_ms(&p, 1, 7.0), 33000);
    CHECK_INT(retry_delay_ms(&p, 1, 0.75), 31500);

    retry_policy_t wild = {1000, 2.0, 1.5, 6}; /* jitter over 100 % never goes negative */
    CHECK_INT(retry_delay_ms(&wild, 1, 0.0), 0);

    for (int i = 0; i < 2000; i++) {
        double u = retry_random_unit();
        CHECK(u >= 0.0 && u <= 1.0);
        int64_t d = retry_delay_ms(&p, 3, u);
        CHECK(d >= 432000 && d <= 528000);
    }
}

/* check_next: another attempt after failures 1..5, none after the 6th; Retry-After. */
static void check_next(void)
{
    retry_policy_t p = RETRY_POLICY_DEFAULT;
    int64_t now = 1700000000000, next = -1;
    for (int n = 1; n <= 5; n++) {
        CHECK_INT(retry_next(&p, n, now, 0, &next), 1);
        int64_t nominal = retry_delay_ms(&p, n, 0.5);
        CHECK(next >= now + nominal * 9 / 10 && next <= now + nominal * 11 / 10);
    }
    next = -1;
    CHECK_INT(retry_next(&p, 6, now, 0, &next), 0);
    CHECK_INT(next, 0);
    CHECK_INT(retry_next(&p, 7, now, 0, &next), 0);

    /* A shorter Retry-After than the schedule changes nothing. */
    CHECK_INT(retry_next(&p, 2, now, 1000, &next), 1);
    CHECK(next >= now + 108000 && next <= now + 132000);
    /* A longer one is honoured. */
    CHECK_INT(retry_next(&p, 1, now, 600000, &next), 1);
    CHECK_INT(next, now + 600000);
    /* An absurd one is capped at base * factor^(max-2) * (1 + jitter) = 8448000. */
    CHECK_INT(retry_next(&p, 1, now, 86400000, &next), 1);
    CHECK_INT(next, now + 8448000);

    retry_policy_t fast = {10, 2.0, 0.0, 3};
    CHECK_INT(retry_next(&fast, 1, 0, 0, &next), 1);
    CHECK_INT(next, 10);
    CHECK_INT(retry_next(&fast, 2, 0, 5000, &next), 1);
    CHECK_INT(next, 20);
    CHECK_INT(retry_next(&fast, 3, 0, 0, &next), 0);

    retry_policy_t once = {10, 2.0, 0.1, 1};
    CHECK_INT(retry_next(&once, 1, 0, 0, &next), 0);
}

int main(void)
{
    check_schedule();
    check_jitter();
    check_next();
    return check_done("retry");
}
