/* clockshift.c - an LD_PRELOAD shim for the clock-step tests: CLOCK_REALTIME (clock_gettime,
 * gettimeofday, time) runs ahead or behind by the number of milliseconds written in the file
 * named by $HOOKLINE_CLOCKSHIFT_FILE (read again at most every 20 ms), as if an operator or NTP
 * had stepped the system clock; CLOCK_MONOTONIC is left alone, as the kernel leaves it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static long long shift_ms, next_read_ns;

/* clockshift_mono_ns: the real monotonic clock, for the re-read interval. */
static long long clockshift_mono_ns(void)
{
    struct timespec ts;
    real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* clockshift_current returns the shift in force, re-reading the file now and then. */
static long long clockshift_current(void)
{
    long long now = clockshift_mono_ns();
    if (now < next_read_ns) return shift_ms;
    next_read_ns = now + 20000000ll;
    const char *path = getenv("HOOKLINE_CLOCKSHIFT_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    long long v = 0;
    if (f) {
        if (fscanf(f, "%lld", &v) == 1) shift_ms = v;
        fclose(f);
    }
    return shift_ms;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!real_clock_gettime)
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real_clock_gettime(id, ts);
    if (rc != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)) return rc;
    long long ns =
        (long long)ts->tv_sec * 1000000000ll + ts->tv_nsec + clockshift_current() * 1000000ll;
    ts->tv_sec = (time_t)(ns / 1000000000ll);
    ts->tv_nsec = (long)(ns % 1000000000ll);
    return 0;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
