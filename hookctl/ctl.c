/* ctl.c - hookctl's shared helpers: messages, option parsing, the store under the data dir,
 * input files, numbers and times. */
#include "ctl.h"

#include "util/timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ctl_error: one message line on stderr. */
void ctl_error(const ctl_t *ctl, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hookctl: %s: ", ctl->cmd ? ctl->cmd : "error");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ctl_usage_error: the message, the --help hint, exit status 2. */
int ctl_usage_error(const ctl_t *ctl, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hookctl: %s: ", ctl->cmd ? ctl->cmd : "usage");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'hookctl %s --help'.\n", ctl->cmd ? ctl->cmd : "");
    return CTL_EXIT_USAGE;
}

/* ctl_getopt: getopt_long with hookctl's own messages. */
int ctl_getopt(const ctl_t *ctl, int argc, char **argv, const struct option *opts, int first)
{
    if (first) {
        optind = 0; /* GNU: full reinitialization */
        opterr = 0;
    }
    int c = getopt_long(argc, argv, ":", opts, NULL);
    if (c == '?') {
        ctl_usage_error(ctl, "unknown option '%s'", argv[optind - 1]);
        return -2;
    }
    if (c == ':') {
        ctl_usage_error(ctl, "option '%s' needs a value", argv[optind - 1]);
        return -2;
    }
    return c;
}

/* ctl_mkdirs: mkdir -p with mode for the components that are missing. */
static int ctl_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -errno;
        buf[i] = saved;
    }
    return 0;
}

int ctl_store_required(const ctl_t *ctl)
{
    struct stat st;
    if (stat(ctl->db_path, &st) == 0) return 0;
    if (errno == ENOENT)
        ctl_error(ctl,
                  "no store at %s (data dir %s holds no hookline.db): check --data-dir and "
                  "$HOOKLINE_DATA, or create one with 'hookctl import FILE'",
                  ctl->db_path, ctl->data_dir);
    else
        ctl_error(ctl, "cannot open store %s: %s", ctl->db_path, strerror(errno));
    return CTL_EXIT_FAIL;
}

/* ctl_store_open: create DATA when missing, then open the store. */
int ctl_store_open(ctl_t *ctl, store_t **sp)
{
    char err[256] = "";
    int rc = ctl_mkdirs(ctl->data_dir, 0700);
    if (rc < 0) {
        ctl_error(ctl, "cannot create data dir %s: %s", ctl->data_dir, strerror(-rc));
        return CTL_EXIT_FAIL;
    }
    rc = store_open(sp, ctl->db_path, err, sizeof err);
    if (rc < 0) {
        ctl_error(ctl, "cannot open store %s: %s", ctl->db_path, err[0] ? err : strerror(-rc));
        return CTL_EXIT_FAIL;
    }
    return 0;
}

/* ctl_input_open: a named file or stdin. */
FILE *ctl_input_open(const ctl_t *ctl, const char *path, const char **name)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        *name = "<stdin>";
        return stdin;
    }
    *name = path;
    FILE *f = fopen(path, "r");
    if (f == NULL) ctl_error(ctl, "%s: %s", path, strerror(errno));
    return f;
}

/* ctl_input_close: close unless stdin. */
void ctl_input_close(FILE *f)
{
    if (f && f != stdin) fclose(f);
}

/* ctl_parse_long: strict decimal in range. */
int ctl_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    if (s == NULL || *s == '\0') return -EINVAL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return -EINVAL;
    *out = v;
    return 0;
}

/* ctl_format_time: RFC 3339 or "-". */
const char *ctl_format_time(int64_t ms, char *buf, size_t n)
{
    if (ms == 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    return time_format_rfc3339(ms, buf, n);
}

/* ctl_socket_path: DATA/run/<name>, bounded by sun_path. */
int ctl_socket_path(const ctl_t *ctl, const char *name, char *buf, size_t n)
{
    struct sockaddr_un sun;
    int len = snprintf(buf, n, "%s/%s", ctl->run_dir, name);
    if (len < 0 || (size_t)len >= n || (size_t)len >= sizeof sun.sun_path) return -ENAMETOOLONG;
    return 0;
}

/* ctl_line_is_blank: only whitespace. */
int ctl_line_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}
