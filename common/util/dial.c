/* dial.c - outbound connections of the skeleton: scan the run dir for sockets matching the
 * stage's patterns, keep one connection to each, retry with backoff. */
#include "util/dial.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIAL_SCAN_MS 200
#define DIAL_BACKOFF_MIN_MS 50
#define DIAL_BACKOFF_MAX_MS 1000

/* One socket path found by a scan, with its connection and retry state. */
typedef struct dial_target {
    struct dial_target *next;
    dial_t *dl;
    char *path;
    int busy; /* a connection is connecting or connected; 0 while waiting to retry */
    uint64_t backoff_ms, next_try;
    unsigned seen; /* scan generation that last saw the file */
} dial_target_t;

struct dial {
    conn_hub_t *hub;
    uv_loop_t *loop;
    uv_timer_t timer;
    int timer_open, stopping;
    char *run_dir, *self_path;
    char **patterns;
    size_t npatterns;
    dial_target_t *targets;
    unsigned scan_gen;
    uint64_t next_scan;
};

static void dial_arm(dial_t *dl);

/* dial_timer_closed: the timer lives inside dial_t. */
static void dial_timer_closed(uv_handle_t *h)
{
    dial_t *dl = h->data;
    dl->timer_open = 0;
}

int dial_init(dial_t **dp, conn_hub_t *hub, uv_loop_t *loop, const char *run_dir,
              const char *self_path)
{
    dial_t *dl = calloc(1, sizeof *dl);
    if (!dl) return -ENOMEM;
    dl->hub = hub;
    dl->loop = loop;
    dl->run_dir = strdup(run_dir);
    dl->self_path = self_path ? strdup(self_path) : NULL;
    if (!dl->run_dir || (self_path && !dl->self_path)) {
        free(dl->run_dir);
        free(dl->self_path);
        free(dl);
        return -ENOMEM;
    }
    uv_timer_init(loop, &dl->timer);
    dl->timer.data = dl;
    dl->timer_open = 1;
    *dp = dl;
    return 0;
}

void dial_stop(dial_t *dl)
{
    if (!dl || dl->stopping) return;
    dl->stopping = 1;
    uv_close((uv_handle_t *)&dl->timer, dial_timer_closed);
}

int dial_open(dial_t *dl)
{
    return dl && dl->timer_open;
}

void dial_free(dial_t *dl)
{
    if (!dl) return;
    for (size_t i = 0; i < dl->npatterns; i++)
        free(dl->patterns[i]);
    free(dl->patterns);
    while (dl->targets) {
        dial_target_t *t = dl->targets;
        dl->targets = t->next;
        free(t->path);
        free(t);
    }
    free(dl->run_dir);
    free(dl->self_path);
    free(dl);
}

/* dial_closed: a target's connection is gone (or never got through); schedule the retry. */
static void dial_closed(void *arg, int was_up)
{
    dial_target_t *t = arg;
    dial_t *dl = t->dl;
    t->busy = 0;
    if (was_up)
        t->backoff_ms = DIAL_BACKOFF_MIN_MS;
    else if (t->backoff_ms < DIAL_BACKOFF_MIN_MS)
        t->backoff_ms = DIAL_BACKOFF_MIN_MS;
    else if ((t->backoff_ms *= 2) > DIAL_BACKOFF_MAX_MS)
        t->backoff_ms = DIAL_BACKOFF_MAX_MS;
    t->next_try = uv_now(dl->loop) + t->backoff_ms;
    dial_arm(dl);
}

/* dial_target_connect starts one outbound connect to t. */
static void dial_target_connect(dial_t *dl, dial_target_t *t)
{
    const char *base = strrchr(t->path, '/');
    if (conn_dial(dl->hub, t->path, base ? base + 1 : t->path, dial_closed, t) < 0) {
        log_error("connect to %s: out of memory", t->path);
        t->next_try = uv_now(dl->loop) + DIAL_BACKOFF_MAX_MS;
        return;
    }
    t->busy = 1;
}

/* dial_scan lists the run dir and records every socket matching a pattern. */
static void dial_scan(dial_t *dl)
{
    DIR *dir = opendir(dl->run_dir);
    if (!dir) {
        log_warn("cannot scan %s: %s", dl->run_dir, strerror(errno));
        return;
    }
    unsigned gen = ++dl->scan_gen;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t i;
        for (i = 0; i < dl->npatterns; i++)
            if (fnmatch(dl->patterns[i], e->d_name, FNM_PERIOD) == 0) break;
        if (i == dl->npatterns) continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dl->run_dir, e->d_name) < 0) path = NULL;
        if (!path) break;
        if (dl->self_path && strcmp(path, dl->self_path) == 0) { /* never connect to ourselves */
            free(path);
            continue;
        }
        dial_target_t *t;
        for (t = dl->targets; t; t = t->next)
            if (strcmp(t->path, path) == 0) break;
        if (t) {
            free(path);
        } else if ((t = calloc(1, sizeof *t))) {
            t->dl = dl;
            t->path = path;
            t->next_try = uv_now(dl->loop);
            t->next = dl->targets;
            dl->targets = t;
        } else {
            free(path);
            break;
        }
        t->seen = gen;
    }
    closedir(dir);
}

/* dial_on_timer rescans (every 200 ms) and starts the connects that are due. */
static void dial_on_timer(uv_timer_t *timer)
{
    dial_t *dl = timer->data;
    uint64_t now = uv_now(dl->loop);
    if (now >= dl->next_scan) {
        dial_scan(dl);
        dl->next_scan = now + DIAL_SCAN_MS;
    }
    for (dial_target_t *t = dl->targets; t && !dl->stopping; t = t->next)
        if (t->seen == dl->scan_gen && !t->busy && now >= t->next_try) dial_target_connect(dl, t);
    dial_arm(dl);
}

/* dial_arm sets the timer for the next scan or the earliest retry. */
static void dial_arm(dial_t *dl)
{
    if (dl->stopping || !dl->npatterns) return;
    uint64_t now = uv_now(dl->loop), due = dl->next_scan;
    for (dial_target_t *t = dl->targets; t; t = t->next)
        if (t->seen == dl->scan_gen && !t->busy && t->next_try < due) due = t->next_try;
    uv_timer_start(&dl->timer, dial_on_timer, due > now ? due - now : 0, 0);
}

int dial_add(dial_t *dl, const char *pattern)
{
    if (!pattern || !*pattern || strchr(pattern, '/')) {
        log_error("daemon_connect: bad pattern '%s' (a file name glob in the run dir)",
                  pattern ? pattern : "");
        return -EINVAL;
    }
    char **p = realloc(dl->patterns, (dl->npatterns + 1) * sizeof *p);
    if (!p) {
        log_error("daemon_connect %s: out of memory", pattern);
        return -ENOMEM;
    }
    dl->patterns = p;
    if (!(p[dl->npatterns] = strdup(pattern))) {
        log_error("daemon_connect %s: out of memory", pattern);
        return -ENOMEM;
    }
    dl->npatterns++;
    dl->next_scan = 0; /* scan now */
    dial_arm(dl);
    return 0;
}
