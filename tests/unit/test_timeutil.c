/* test_timeutil.c - RFC 3339 formatting and parsing, and UUIDv7 layout. */
#include "check.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

/* parse_ok parses s and checks the result against want milliseconds. */
static void parse_ok(const char *s, int64_t want)
{
    int64_t ms = -1;
    int r = time_parse_rfc3339(s, &ms);
    if (r != 0 || ms != want)
        fprintf(stderr, "parse %s: r=%d ms=%lld want %lld\n", s, r, (long long)ms, (long long)want);
    CHECK_INT(r, 0);
    CHECK_INT(ms, want);
}

/* parse_bad checks that s is refused. */
static void parse_bad(const char *s)
{
    int64_t ms = 0;
    int r = time_parse_rfc3339(s, &ms);
    if (r != -EINVAL) fprintf(stderr, "parse %s: accepted (%lld)\n", s, (long long)ms);
    CHECK_INT(r, -EINVAL);
}

/* hexval is the value of one hex digit. */
static int hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10;
}

int main(void)
{
    char buf[32];
    const int64_t base = 1795694400000; /* 2026-11-26T12:00:00Z */

    CHECK_STR(time_format_rfc3339(base, buf, sizeof buf), "2026-11-26T12:00:00Z");
    CHECK_STR(time_format_rfc3339(base + 123, buf, sizeof buf), "2026-11-26T12:00:00.123Z");
    CHECK_STR(time_format_rfc3339(base + 5, buf, sizeof buf), "2026-11-26T12:00:00.005Z");
    CHECK_STR(time_format_rfc3339(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    CHECK_STR(time_format_rfc3339(-1, buf, sizeof buf), "1969-12-31T23:59:59.999Z");

    parse_ok("2026-11-26T12:00:00Z", base);
    parse_ok("2026-11-26t12:00:00z", base);
    parse_ok("2026-11-26T12:00:00.123Z", base + 123);
    parse_ok("2026-11-26T12:00:00.1Z", base + 100);
    parse_ok("2026-11-26T12:00:00.123456789Z", base + 123);
    parse_ok("2026-11-26T13:30:00+01:30", base);
    parse_ok("2026-11-26T07:00:00-05:00", base);
    parse_ok("2026-11-26T12:00:00+00:00", base);
    parse_ok("2026-11-26T12:00:00-00:00", base);
    parse_ok("2026-11-27T00:00:00.5+12:00", base + 500);
    parse_ok("2024-02-29T00:00:00Z", 1709164800000);
    parse_ok("2000-02-29T00:00:00Z", 951782400000);
    parse_ok("1969-12-31T23:59:59.999Z", -1);

    /* round trip */
    int64_t ms, now = time_now_ms();
    CHECK(now > base - 400LL * 86400 * 1000); /* a sane clock: after late 2025 */
    CHECK_INT(time_parse_rfc3339(time_format_rfc3339(now, buf, sizeof buf), &ms), 0);
    CHECK_INT(ms, now);

    parse_bad("");
    parse_bad("2026-11-26");
    parse_bad("2026-11-26T12:00:00");   /* no offset */
    parse_bad("2026-13-01T00:00:00Z");  /* month 13 */
    parse_bad("2026-00-01T00:00:00Z");  /* month 0 */
    parse_bad("2026-01-32T00:00:00Z");  /* day 32 */
    parse_bad("2026-01-00T00:00:00Z");  /* day 0 */
    parse_bad("2026-02-29T00:00:00Z");  /* not a leap year */
    parse_bad("1900-02-29T00:00:00Z");  /* century, not a leap year */
    parse_bad("2026-04-31T00:00:00Z");  /* April has 30 days */
    parse_bad("2026-11-26T24:00:00Z");  /* hour 24 */
    parse_bad("2026-11-26T12:60:00Z");  /* minute 60 */
    parse_bad("2026-11-26T12:00:61Z");  /* second 61 */
    parse_bad("2026-11-26T12:00:00.Z"); /* empty fraction */
    parse_bad("2026-11-26T12:00:00+1:00");
    parse_bad("2026-11-26T12:00:00+24:00");
    parse_bad("2026-11-26T12:00:00+01:60");
    parse_bad("2026-11-26T12:00:00+0100");
    parse_bad("2026-11-26T12:00:00Zjunk");
    parse_bad("2026-11-26X12:00:00Z");
    parse_bad("26-11-26T12:00:00Z");
    parse_bad("2026-1-26T12:00:00Z");
    parse_bad(" 2026-11-26T12:00:00Z");

    /* UUIDv7: layout, version, variant, timestamp, randomness */
    char u1[UUID_STR_LEN], u2[UUID_STR_LEN];
    uuid_v7(base, u1);
    uuid_v7(base, u2);
    CHECK_INT(strlen(u1), 36);
    int layout_ok = 1;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u1[i] != '-'
                 : !(isdigit((unsigned char)u1[i]) || (u1[i] >= 'a' && u1[i] <= 'f')))
            layout_ok = 0;
    }
    CHECK(layout_ok);
    CHECK(u1[14] == '7');                         /* version */
    CHECK(strchr("89ab", u1[19]) != NULL);        /* variant 10 */
    CHECK(strncmp(u1, "01a217ba-1200", 13) == 0); /* 48-bit ms of base: 0x01a217ba1200 */
    CHECK(strcmp(u1, u2) != 0);
    uint64_t ts = 0;
    for (int i = 0; i < 13; i++)
        if (u1[i] != '-') ts = ts << 4 | (uint64_t)hexval(u1[i]);
    CHECK_INT(ts, base);

    /* later timestamps sort later as text */
    char prev[UUID_STR_LEN];
    uuid_v7(now, prev);
    int sorted = 1;
    for (int i = 1; i <= 100; i++) {
        char cur[UUID_STR_LEN];
        uuid_v7(now + i, cur);
        if (strcmp(prev, cur) >= 0) sorted = 0;
        memcpy(prev, cur, sizeof cur);
    }
    CHECK(sorted);

    return check_done("timeutil");
}
