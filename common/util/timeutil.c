/* timeutil.c - wall-clock milliseconds and RFC 3339 date-time text (format in UTC, parse any
 * offset). */
#include "util/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int64_t time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *time_format_rfc3339(int64_t ms, char *buf, size_t n)
{
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) { /* floor toward the past for times before 1970 */
        milli += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, n, "invalid-time");
        return buf;
    }
    if (milli)
        snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)milli);
    else
        snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

/* time_digits reads exactly n decimal digits at *p into *v and advances; -1 when not digits. */
static int time_digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

/* time_days_in_month knows the Gregorian leap years. */
static int time_days_in_month(int year, int mon)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
    return days[mon - 1];
}

int time_parse_rfc3339(const char *s, int64_t *ms)
{
    int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0, milli = 0;
    const char *p = s;
    if (!s) return -EINVAL;
    if (time_digits(&p, 4, &year) || *p++ != '-' || time_digits(&p, 2, &mon) || *p++ != '-' ||
        time_digits(&p, 2, &day))
        return -EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ') return -EINVAL;
    p++;
    if (time_digits(&p, 2, &hour) || *p++ != ':' || time_digits(&p, 2, &min) || *p++ != ':' ||
        time_digits(&p, 2, &sec))
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -EINVAL;
        /* keep the first three digits as milliseconds ("1" is 100 ms), ignore the rest */
        int ndig = 0;
        for (; *p >= '0' && *p <= '9'; p++, ndig++)
            if (ndig < 3) milli = milli * 10 + (*p - '0');
        for (; ndig < 3; ndig++)
            milli *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (time_digits(&p, 2, &oh) || *p++ != ':' || time_digits(&p, 2, &om)) return -EINVAL;
        if (oh > 23 || om > 59) return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*p != '\0') return -EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > time_days_in_month(year, mon) || hour > 23 ||
        min > 59 || sec > 60)
        return -EINVAL;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm); /* a leap second (:60) rolls into the next minute */
    int64_t secs = (int64_t)t - (int64_t)sign * (oh * 3600 + om * 60);
    *ms = secs * 1000 + milli;
    return 0;
}
