/* log.c - one line per record on stderr, written with a single write(2) so lines from several
 * processes sharing a log pipe never interleave. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char log_prog[64] = "hookline";
static char log_instance[64] = "0";
static log_level_t log_min = LOG_LVL_INFO;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog, const char *instance, log_level_t min)
{
    if (prog) snprintf(log_prog, sizeof log_prog, "%s", prog);
    if (instance) snprintf(log_instance, sizeof log_instance, "%s", instance);
    log_min = min;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, log_names[i]) == 0) return i;
    if (s && strcmp(s, "warning") == 0) return LOG_LVL_WARN;
    return -1;
}

void log_msg(log_level_t lvl, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    int saved = errno;
    if (lvl < log_min) return;
    if ((unsigned)lvl > LOG_LVL_ERROR) lvl = LOG_LVL_ERROR;
    int head = snprintf(line, sizeof line, "%s[%s] %s: ", log_prog, log_instance, log_names[lvl]);
    if (head < 0 || (size_t)head >= sizeof line - 1) head = 0;
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(line + head, sizeof line - (size_t)head - 1, fmt, ap);
    va_end(ap);
    if (body < 0) body = 0;
    size_t len = (size_t)head + (size_t)body;
    if (len > sizeof line - 2) len = sizeof line - 2; /* truncated: keep room for the newline */
    for (size_t i = (size_t)head; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[len++] = '\n';
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    errno = saved;
}

int log_limit_pass(log_limit_t *l, unsigned interval_ms, unsigned long *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now < l->next_ms) {
        l->suppressed++;
        return 0;
    }
    *suppressed = l->suppressed;
    l->suppressed = 0;
    l->next_ms = now + interval_ms;
    return 1;
}
