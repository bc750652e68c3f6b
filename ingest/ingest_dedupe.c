/* ingest_dedupe.c - the dedupe index's interface: open and close, the check of a key (the
 * pending table, then every segment within the window), holding, committing and aborting a
 * key, the keys put back from the journal, expiry of whole segments, and figures. Its parts:
 * dedupe.h. */
#include "dedupe.h"

#include "util/fsmode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t (*ingest_dedupe_hash_for_tests)(const void *key, size_t len);

/* dd_on_cron drops expired segments. */
static void dd_on_cron(uv_timer_t *t)
{
    ingest_dedupe_expire(t->data);
}

int ingest_dedupe_open(ingest_dedupe_t **dp, uv_loop_t *loop, const ingest_dedupe_opts_t *opts,
                       char *err, size_t errlen)
{
    *dp = NULL;
    if (!opts->window_s) {
        snprintf(err, errlen, "dedupe window must be > 0");
        return -EINVAL;
    }
    ingest_dedupe_t *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(opts->dir))) {
        free(d);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    d->loop = loop;
    d->o = *opts;
    d->o.dir = d->dir;
    d->dir_fd = -1;
    d->qtail = &d->q;
    d->next_no = 1;
    pthread_mutex_init(&d->mu, NULL);
    dedupe_batch_init(d);
    int rc = 0;
    if (mkdir(d->dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", d->dir, strerror(errno));
    }
    if (rc == 0 && fsmode_tighten_dir(d->dir, err, errlen) < 0) rc = -EACCES;
    if (rc == 0 && (d->dir_fd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", d->dir, strerror(errno));
    }
    if (rc == 0) rc = dedupe_load(d, err, errlen);
    if (rc == 0 && (rc = worker_init(&d->worker, loop)) < 0)
        snprintf(err, errlen, "starting the dedupe thread: %s", strerror(-rc));
    if (rc < 0) {
        while (d->segs) {
            dd_seg_t *s = d->segs;
            d->segs = s->next;
            dedupe_seg_free(s);
        }
        if (d->dir_fd >= 0) close(d->dir_fd);
        pthread_mutex_destroy(&d->mu);
        free(d->dir);
        free(d);
        return rc;
    }
    uv_timer_init(loop, &d->timer);
    uv_timer_init(loop, &d->cron);
    d->timer.data = d->cron.data = d;
    d->open_handles = 2;
    uv_timer_start(&d->cron, dd_on_cron, 1000, 1000);
    uv_unref((uv_handle_t *)&d->cron);
    ingest_dedupe_expire(d);
    *dp = d;
    return 0;
}

/* dd_check is ingest_dedupe_check with the key's hash computed. */
static int dd_check(ingest_dedupe_t *d, uint64_t hash, const char *key, size_t len,
                    ingest_dedupe_entry_t **pending)
{
    uint64_t now = dd_now(d);
    *pending = NULL;
    ingest_dedupe_entry_t *e = dedupe_tab_find(d, hash, key, len);
    if (e) {
        if (e->state == DD_COMMITTED) return INGEST_DEDUPE_DUP;
        e->refs++;
        *pending = e;
        return INGEST_DEDUPE_PENDING;
    }
    for (dd_seg_t *s = d->segs; s; s = s->next)
        if (dd_live(d, s->t_last, now) && dedupe_seg_lookup(d, s, hash, key, (uint32_t)len, now))
            return INGEST_DEDUPE_DUP;
    return INGEST_DEDUPE_NEW;
}

int ingest_dedupe_check(ingest_dedupe_t *d, const char *key, size_t len,
                        ingest_dedupe_entry_t **pending)
{
    return dd_check(d, dd_hash(key, len), key, len, pending);
}

/* dd_hold is ingest_dedupe_hold with the key's hash computed. */
static ingest_dedupe_entry_t *dd_hold(ingest_dedupe_t *d, uint64_t hash, const char *key,
                                      size_t len)
{
    ingest_dedupe_entry_t *e = dedupe_entry_new(hash, key, len);
    if (!e) return NULL;
    e->refs = 1;
    e->state = DD_HELD;
    if (dedupe_tab_add(d, e) < 0) {
        dedupe_entry_free(e);
        return NULL;
    }
    d->held++;
    return e;
}

ingest_dedupe_entry_t *ingest_dedupe_hold(ingest_dedupe_t *d, const char *key, size_t len)
{
    return dd_hold(d, dd_hash(key, len), key, len);
}

uint64_t ingest_dedupe_prefetch(const ingest_dedupe_t *d, const char *key, size_t len)
{
    uint64_t hash = dd_hash(key, len), h2;
    dedupe_tab_prefetch(d, hash);
    for (const dd_seg_t *s = d->segs; s; s = s->next)
        __builtin_prefetch(dd_bloom_block(s, hash, &h2));
    return hash;
}

int ingest_dedupe_claim_hashed(ingest_dedupe_t *d, const char *key, size_t len, uint64_t hash,
                               ingest_dedupe_entry_t **e)
{
    int st = dd_check(d, hash, key, len, e);
    if (st == INGEST_DEDUPE_NEW) *e = dd_hold(d, hash, key, len);
    return st;
}

int ingest_dedupe_claim(ingest_dedupe_t *d, const char *key, size_t len, ingest_dedupe_entry_t **e)
{
    return ingest_dedupe_claim_hashed(d, key, len, dd_hash(key, len), e);
}

void ingest_dedupe_commit(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (e->state != DD_HELD) return;
    e->state = DD_COMMITTED;
    e->time = (uint32_t)dd_now(d);
    d->held--;
    dedupe_enqueue(d, e);
}

void ingest_dedupe_abort(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (e->state != DD_HELD) return;
    e->state = DD_ABORTED;
    d->held--;
    dedupe_tab_remove(d, e);
}

int ingest_dedupe_accepted(const ingest_dedupe_entry_t *e)
{
    return e->state;
}

void ingest_dedupe_unref(ingest_dedupe_entry_t *e)
{
    if (e && --e->refs == 0) dedupe_entry_free(e);
}

int ingest_dedupe_replay(ingest_dedupe_t *d, const char *key, size_t len, uint64_t time_s)
{
    uint64_t now = dd_now(d);
    if (!dd_live(d, time_s, now)) return 0;
    ingest_dedupe_entry_t *pending;
    int st = ingest_dedupe_check(d, key, len, &pending);
    if (pending) ingest_dedupe_unref(pending);
    if (st != INGEST_DEDUPE_NEW) return 0;
    ingest_dedupe_entry_t *e = dedupe_entry_new(dd_hash(key, len), key, len);
    if (!e) return -ENOMEM;
    e->state = DD_COMMITTED;
    e->time = (uint32_t)time_s;
    if (dedupe_tab_add(d, e) < 0) {
        dedupe_entry_free(e);
        return -ENOMEM;
    }
    dedupe_enqueue(d, e);
    return 0;
}

uint64_t ingest_dedupe_queued(const ingest_dedupe_t *d)
{
    return d->queued;
}

uint64_t ingest_dedupe_written(const ingest_dedupe_t *d)
{
    return d->written;
}

size_t ingest_dedupe_backlog(const ingest_dedupe_t *d)
{
    return (size_t)(d->queued - d->written);
}

/* Removing an expired segment (tens of MiB: 25 ms measured for unlink) runs on the worker. */
typedef struct dd_unlink {
    worker_job_t job; /* first */
    char *path;
    uint64_t keys;
    int fd, err;
} dd_unlink_t;

static void dd_unlink_run(worker_job_t *job)
{
    dd_unlink_t *u = (dd_unlink_t *)job;
    if (u->fd >= 0) close(u->fd);
    u->err = unlink(u->path) < 0 && errno != ENOENT ? errno : 0;
}

static void dd_unlink_done(worker_job_t *job)
{
    dd_unlink_t *u = (dd_unlink_t *)job;
    if (u->err)
        log_error("dedupe: removing %s: %s", u->path, strerror(u->err));
    else
        log_debug("dedupe: %s expired (%" PRIu64 " keys)", u->path, u->keys);
    free(u->path);
    free(u);
}

int ingest_dedupe_expire(ingest_dedupe_t *d)
{
    uint64_t now = dd_now(d);
    int dropped = 0;
    dd_seg_t **pp = &d->segs;
    while (*pp) {
        dd_seg_t *s = *pp;
        if (s->busy || dd_live(d, s->t_last, now)) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (d->hot == s) d->hot = NULL;
        dd_unlink_t *u = calloc(1, sizeof *u);
        if (u) {
            u->path = s->path;
            u->fd = s->fd;
            u->keys = s->entries;
            u->job.run = dd_unlink_run;
            u->job.done = dd_unlink_done;
            s->path = NULL;
            s->fd = -1;
            worker_submit(d->worker, &u->job);
        } else if (unlink(s->path) < 0 && errno != ENOENT) { /* out of memory: here then */
            log_error("dedupe: removing %s: %s", s->path, strerror(errno));
        }
        dedupe_seg_free(s);
        dropped++;
    }
    return dropped;
}

void ingest_dedupe_get_stats(const ingest_dedupe_t *d, ingest_dedupe_stats_t *st)
{
    memset(st, 0, sizeof *st);
    uint64_t now = dd_now(d);
    for (const dd_seg_t *s = d->segs; s; s = s->next) {
        if (dd_live(d, s->t_last, now)) st->keys += s->entries;
        st->segments++;
        st->disk_bytes += s->key_end;
        st->filter_bytes += s->nblocks * 64;
    }
    st->keys += d->held + d->qn;
    st->damaged = d->damaged;
}

/* dd_closed frees the index once both timers are closed. */
static void dd_closed(uv_handle_t *h)
{
    ingest_dedupe_t *d = h->data;
    if (--d->open_handles == 0) {
        pthread_mutex_destroy(&d->mu);
        free(d);
    }
}

void ingest_dedupe_close(ingest_dedupe_t *d)
{
    if (!d || d->closing) return;
    d->closing = 1;
    uv_timer_stop(&d->timer);
    uv_timer_stop(&d->cron);
    /* the batch under way finishes here; what is queued is written inline from now on */
    worker_close(d->worker);
    for (int round = 0; round < 100 && d->qn && !d->writing; round++)
        dedupe_batch_start(d);
    dedupe_tab_clear(d);
    while (d->segs) {
        dd_seg_t *s = d->segs;
        d->segs = s->next;
        dedupe_seg_free(s);
    }
    if (d->dir_fd >= 0) close(d->dir_fd);
    free(d->dir);
    d->dir = NULL;
    uv_close((uv_handle_t *)&d->timer, dd_closed);
    uv_close((uv_handle_t *)&d->cron, dd_closed);
}
