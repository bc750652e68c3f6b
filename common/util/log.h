/* log.h - one line per record on stderr: "hook-router[0] info: message". */
#ifndef HL_LOG_H
#define HL_LOG_H

typedef enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR } log_level_t;

/* log_init sets the program name and instance shown on every line, and the minimum level. */
void log_init(const char *prog, const char *instance, log_level_t min);

/* log_level_parse maps "debug|info|warn|error" to a level; returns -1 when unknown. */
int log_level_parse(const char *s);

/* log_msg writes one line (newlines in the message are replaced by spaces) with a single write(2).
 */
void log_msg(log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A limit for a line that a lasting fault would repeat many times a second (a full disk). */
typedef struct log_limit {
    long long next_ms;        /* monotonic time before which lines are held back */
    unsigned long suppressed; /* held back since the last line written */
} log_limit_t;

/* log_limit_pass returns 1 when a line may be written now (at most one per interval_ms), with
 * *suppressed set to how many were held back before it (the caller says so in its line), or 0
 * when this one is to be held back (and counted). */
int log_limit_pass(log_limit_t *l, unsigned interval_ms, unsigned long *suppressed);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
