/* journal.c - append-only segment files of CRC-32C checked records: buffered appends, explicit
 * write+fdatasync for group commit, replay that cuts torn tails, and oldest-first deletion of
 * segments that hold nothing live. */
#include "util/journal.h"

#include "util/crc32c.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_HDR "HLJNL1\n" /* 7 chars and the NUL: the 8-byte segment header */
#define JOURNAL_HDR_LEN 8u
#define JOURNAL_REC_HDR 8u           /* u32 le length, u32 le crc32c */
#define JOURNAL_SEG_LIMIT (1u << 31) /* offsets must fit the low 32 bits of a position */
#define JOURNAL_READ_WINDOW (1u << 20)

typedef struct journal_seg {
    uint32_t num;
    int fd;        /* -1 until opened */
    int on_disk;   /* the file exists */
    uint64_t size; /* bytes including buffered records */
    uint64_t good; /* bytes written (and synced when asked): what a failed sync goes back to */
    uint64_t live;
    uint64_t records; /* appended or replayed, live or not: live/records is its occupancy */
} journal_seg_t;

/* Bytes appended to one segment since the last sync. */
typedef struct journal_chunk {
    uint32_t num;
    uint64_t start; /* file offset of buf[0] */
    char *buf;
    size_t len, cap;
    uint64_t live_added;
} journal_chunk_t;

struct journal {
    char *dir, *name;
    int dirfd, lockfd;
    size_t segment_max;
    int replayed;
    int dir_dirty; /* a segment was created since the directory was last fsynced */
    journal_seg_t *segs;
    size_t nsegs, segcap;
    journal_chunk_t *chunks;
    size_t nchunks, chunkcap;
};

/* journal_put32 stores v little-endian. */
static void journal_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* journal_get32 loads a little-endian u32. */
static uint32_t journal_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* journal_seg_path formats DIR/NAME-<num>.jnl into buf. */
static void journal_seg_path(const journal_t *j, uint32_t num, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s-%016" PRIx32 ".jnl", j->dir, j->name, num);
}

/* journal_seg_fname formats the file name alone (relative to dirfd). */
static void journal_seg_fname(const journal_t *j, uint32_t num, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%016" PRIx32 ".jnl", j->name, num);
}

/* journal_find returns the segment numbered num, or NULL. */
static journal_seg_t *journal_find(journal_t *j, uint32_t num)
{
    for (size_t i = j->nsegs; i-- > 0;)
        if (j->segs[i].num == num) return &j->segs[i];
    return NULL;
}

/* journal_seg_fd opens the segment's file on first use. Returns the fd or a negative errno. */
static int journal_seg_fd(journal_t *j, journal_seg_t *s, int create)
{
    char fname[300];
    if (s->fd >= 0) return s->fd;
    journal_seg_fname(j, s->num, fname, sizeof fname);
    int fd = openat(j->dirfd, fname, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) return -errno;
    s->fd = fd;
    if (create) {
        s->on_disk = 1;
        j->dir_dirty = 1;
    }
    return fd;
}

/* journal_seg_add appends a segment entry (segments are kept sorted by number). */
static journal_seg_t *journal_seg_add(journal_t *j, uint32_t num)
{
    if (j->nsegs == j->segcap) {
        size_t cap = j->segcap ? j->segcap * 2 : 8;
        journal_seg_t *ns = realloc(j->segs, cap * sizeof *ns);
        if (!ns) return NULL;
        j->segs = ns;
        j->segcap = cap;
    }
    journal_seg_t *s = &j->segs[j->nsegs++];
    memset(s, 0, sizeof *s);
    s->num = num;
    s->fd = -1;
    return s;
}

/* journal_seg_remove closes and forgets segment index i; unlinks its file when unlink_file. */
static void journal_seg_remove(journal_t *j, size_t i, int unlink_file)
{
    char fname[300];
    journal_seg_t *s = &j->segs[i];
    if (s->fd >= 0) close(s->fd);
    if (unlink_file && s->on_disk) {
        journal_seg_fname(j, s->num, fname, sizeof fname);
        if (unlinkat(j->dirfd, fname, 0) < 0 && errno != ENOENT)
            log_warn("journal %s/%s: cannot remove: %s", j->dir, fname, strerror(errno));
    }
    memmove(&j->segs[i], &j->segs[i + 1], (j->nsegs - i - 1) * sizeof *s);
    j->nsegs--;
}

/* journal_cmp_seg orders segments by number for qsort. */
static int journal_cmp_seg(const void *a, const void *b)
{
    uint32_t x = ((const journal_seg_t *)a)->num, y = ((const journal_seg_t *)b)->num;
    return x < y ? -1 : x > y;
}

/* journal_mkdirs creates dir and its missing parents (mode 0700). */
static int journal_mkdirs(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST) return -errno;
    return 0;
}

/* journal_scan lists the existing segment files of the journal. */
static int journal_scan(journal_t *j, char *err, size_t errlen)
{
    int fd = dup(j->dirfd);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "journal %s: %s", j->dir, strerror(e));
        return -e;
    }
    size_t nl = strlen(j->name);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        char *end;
        if (strlen(n) != nl + 1 + 16 + 4 || strncmp(n, j->name, nl) != 0 || n[nl] != '-' ||
            strcmp(n + nl + 17, ".jnl") != 0)
            continue;
        unsigned long long num = strtoull(n + nl + 1, &end, 16);
        if (end != n + nl + 17 || num == 0 || num > UINT32_MAX - 1) continue;
        journal_seg_t *s = journal_seg_add(j, (uint32_t)num);
        if (!s) {
            closedir(d);
            snprintf(err, errlen, "journal %s: out of memory", j->dir);
            return -ENOMEM;
        }
        s->on_disk = 1;
    }
    closedir(d);
    if (j->nsegs > 1) qsort(j->segs, j->nsegs, sizeof *j->segs, journal_cmp_seg);
    return 0;
}

int journal_open(journal_t **jp, const char *dir, const char *name, size_t segment_max, char *err,
                 size_t errlen)
{
    char path[4200];
    int r;
    *jp = NULL;
    journal_t *j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir)) || !(j->name = strdup(name))) {
        if (j) free(j->dir);
        free(j);
        snprintf(err, errlen, "journal %s: out of memory", dir);
        return -ENOMEM;
    }
    j->dirfd = j->lockfd = -1;
    if (segment_max == 0) segment_max = JOURNAL_SEGMENT_MAX_DEFAULT;
    if (segment_max > JOURNAL_SEG_LIMIT) segment_max = JOURNAL_SEG_LIMIT;
    j->segment_max = segment_max;
    if ((r = journal_mkdirs(dir)) < 0) {
        snprintf(err, errlen, "journal: cannot create %s: %s", dir, strerror(-r));
        goto fail;
    }
    j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        r = -errno;
        snprintf(err, errlen, "journal: cannot open %s: %s", dir, strerror(-r));
        goto fail;
    }
    /* one process per journal: a second writer would interleave records */
    snprintf(path, sizeof path, "%s/%s.lock", dir, name);
    j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lockfd < 0) {
        r = -errno;
        snprintf(err, errlen, "journal: cannot open %s: %s", path, strerror(-r));
        goto fail;
    }
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "journal %s/%s is in use by another process", dir, name);
        goto fail;
    }
    if ((r = journal_scan(j, err, errlen)) < 0) goto fail;
    *jp = j;
    return 0;
fail:
    journal_close(j);
    return r;
}

static void journal_gc(journal_t *j);

/* A sliding read window over one segment file, for replay. */
typedef struct journal_reader {
    int fd;
    uint64_t fsize, start;
    char *buf;
    size_t len, cap;
} journal_reader_t;

/* journal_reader_get points *p at n bytes from offset off: 1 when they exist, 0 when the file
 * ends first, negative errno on I/O error. */
static int journal_reader_get(journal_reader_t *rd, uint64_t off, size_t n, const char **p)
{
    if (off + n > rd->fsize) return 0;
    if (off < rd->start || off + n > rd->start + rd->len) {
        size_t want = n > JOURNAL_READ_WINDOW ? n : JOURNAL_READ_WINDOW;
        if (want > rd->fsize - off) want = (size_t)(rd->fsize - off);
        if (want > rd->cap) {
            char *nb = realloc(rd->buf, want);
            if (!nb) return -ENOMEM;
            rd->buf = nb;
            rd->cap = want;
        }
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(rd->fd, rd->buf + got, want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return -errno;
            if (r == 0) break;
            got += (size_t)r;
        }
        rd->start = off;
        rd->len = got;
        if (got < n) return 0;
    }
    *p = rd->buf + (off - rd->start);
    return 1;
}

/* journal_replay_seg replays one segment; sets *end to the offset after the last good record
 * and *why to a reason when the segment ended early. */
static int journal_replay_seg(journal_t *j, journal_seg_t *s, journal_replay_cb cb, void *arg,
                              uint64_t *end, const char **why)
{
    journal_reader_t rd = {.fd = s->fd};
    struct stat st;
    const char *p;
    int r;
    *why = NULL;
    if (fstat(s->fd, &st) < 0) return -errno;
    rd.fsize = (uint64_t)st.st_size;
    r = journal_reader_get(&rd, 0, JOURNAL_HDR_LEN, &p);
    if (r <= 0 || memcmp(p, JOURNAL_HDR, JOURNAL_HDR_LEN) != 0) {
        free(rd.buf);
        if (r < 0) return r;
        *end = 0;
        *why = "missing or bad segment header";
        return 0;
    }
    uint64_t off = JOURNAL_HDR_LEN;
    for (;;) {
        if (off == rd.fsize) break;
        r = journal_reader_get(&rd, off, JOURNAL_REC_HDR, &p);
        if (r <= 0) {
            *why = "short record header";
            break;
        }
        uint32_t len = journal_get32((const unsigned char *)p);
        uint32_t crc = journal_get32((const unsigned char *)p + 4);
        if (len == 0 || len > JOURNAL_RECORD_MAX) {
            *why = len ? "record length over limit" : "zero record length";
            break;
        }
        r = journal_reader_get(&rd, off + JOURNAL_REC_HDR, len, &p);
        if (r <= 0) {
            *why = "short record payload";
            break;
        }
        if (crc32c(0, p, len) != crc) {
            *why = "crc mismatch";
            break;
        }
        s->live++;
        s->records++;
        r = cb(arg, (journal_pos_t)s->num << 32 | off, p, len);
        if (r < 0) {
            free(rd.buf);
            return r;
        }
        off += JOURNAL_REC_HDR + len;
    }
    free(rd.buf);
    if (r < 0) return r;
    *end = off;
    return 0;
}

/* journal_drop_bad_newest takes newest segments without a valid header out of the journal: one
 * whose header bytes are missing or zero was being created when the process died, its records
 * never synced, so it is removed; any other bad header is kept aside as NAME.corrupt. */
static int journal_drop_bad_newest(journal_t *j)
{
    char path[4200], aside[4300], hdr[JOURNAL_HDR_LEN];
    while (j->nsegs > 0) {
        journal_seg_t *s = &j->segs[j->nsegs - 1];
        int r = journal_seg_fd(j, s, 0);
        journal_seg_path(j, s->num, path, sizeof path);
        if (r < 0) {
            log_error("journal %s: cannot open: %s", path, strerror(-r));
            return r;
        }
        ssize_t n = pread(s->fd, hdr, sizeof hdr, 0);
        if (n < 0) {
            r = -errno;
            log_error("journal %s: cannot read: %s", path, strerror(-r));
            return r;
        }
        if (n == (ssize_t)sizeof hdr && memcmp(hdr, JOURNAL_HDR, sizeof hdr) == 0) return 0;
        int unborn = 1;
        for (ssize_t i = 0; i < n; i++)
            if (hdr[i] != 0 && hdr[i] != JOURNAL_HDR[i]) unborn = 0;
        if (unborn) {
            log_warn("journal %s: missing segment header at offset 0 (torn creation), removing "
                     "the segment",
                     path);
            journal_seg_remove(j, j->nsegs - 1, 1);
            continue;
        }
        snprintf(aside, sizeof aside, "%s.corrupt", path);
        log_error("journal %s: bad segment header at offset 0, moved aside to %s", path, aside);
        if (rename(path, aside) < 0) {
            r = -errno;
            log_error("journal %s: cannot rename: %s", path, strerror(-r));
            return r;
        }
        journal_seg_remove(j, j->nsegs - 1, 0);
    }
    return 0;
}

int journal_replay(journal_t *j, journal_replay_cb cb, void *arg)
{
    char path[4200];
    int r = journal_drop_bad_newest(j);
    if (r < 0) return r;
    for (size_t i = 0; i < j->nsegs; i++) {
        journal_seg_t *s = &j->segs[i];
        int newest = i == j->nsegs - 1;
        uint64_t end = 0;
        const char *why;
        journal_seg_path(j, s->num, path, sizeof path);
        if ((r = journal_seg_fd(j, s, 0)) < 0) {
            log_error("journal %s: cannot open: %s", path, strerror(-r));
            return r;
        }
        struct stat st;
        if (fstat(s->fd, &st) < 0) return -errno;
        if ((r = journal_replay_seg(j, s, cb, arg, &end, &why)) < 0) return r;
        s->size = s->good = (uint64_t)st.st_size;
        if (!why) continue;
        if (!newest) {
            log_warn("journal %s: %s at offset %" PRIu64 ", skipping the %" PRIu64
                     " bytes after it",
                     path, why, end, (uint64_t)st.st_size - end);
            continue;
        }
        log_warn("journal %s: %s at offset %" PRIu64 ", truncating the %" PRIu64 " bytes after it",
                 path, why, end, (uint64_t)st.st_size - end);
        if (ftruncate(s->fd, (off_t)end) < 0 || fdatasync(s->fd) < 0) {
            r = -errno;
            log_error("journal %s: cannot truncate: %s", path, strerror(-r));
            return r;
        }
        s->size = s->good = end;
    }
    j->replayed = 1;
    journal_gc(j);
    return 0;
}

/* journal_chunk_for returns the pending chunk of segment s, starting one when needed. */
static journal_chunk_t *journal_chunk_for(journal_t *j, journal_seg_t *s)
{
    if (j->nchunks && j->chunks[j->nchunks - 1].num == s->num) return &j->chunks[j->nchunks - 1];
    if (j->nchunks == j->chunkcap) {
        size_t cap = j->chunkcap ? j->chunkcap * 2 : 4;
        journal_chunk_t *nc = realloc(j->chunks, cap * sizeof *nc);
        if (!nc) return NULL;
        j->chunks = nc;
        j->chunkcap = cap;
    }
    journal_chunk_t *c = &j->chunks[j->nchunks++];
    memset(c, 0, sizeof *c);
    c->num = s->num;
    c->start = s->size;
    return c;
}

/* journal_chunk_put appends n bytes to a chunk. Returns 0 or -ENOMEM. */
static int journal_chunk_put(journal_chunk_t *c, const void *data, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n)
            cap *= 2;
        char *nb = realloc(c->buf, cap);
        if (!nb) return -ENOMEM;
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    return 0;
}

int journal_append(journal_t *j, const void *rec, size_t len, int live, journal_pos_t *pos,
                   char *err, size_t errlen)
{
    unsigned char hdr[JOURNAL_REC_HDR];
    if (!j->replayed) {
        snprintf(err, errlen, "journal %s/%s: append before replay", j->dir, j->name);
        return -EINVAL;
    }
    if (len == 0 || len > JOURNAL_RECORD_MAX) {
        snprintf(err, errlen, "journal %s/%s: record of %zu bytes (must be 1..%u)", j->dir, j->name,
                 len, JOURNAL_RECORD_MAX);
        return len ? -EFBIG : -EINVAL;
    }
    journal_seg_t *s = j->nsegs ? &j->segs[j->nsegs - 1] : NULL;
    int roll = s && s->size > JOURNAL_HDR_LEN &&
               s->size + JOURNAL_REC_HDR + len > (uint64_t)j->segment_max;
    if (!s || roll) {
        uint32_t num = s ? s->num + 1 : 1;
        if (num == UINT32_MAX) {
            snprintf(err, errlen, "journal %s/%s: segment numbers exhausted", j->dir, j->name);
            return -EFBIG;
        }
        if (!(s = journal_seg_add(j, num))) goto nomem;
    }
    journal_chunk_t *c = journal_chunk_for(j, s);
    if (!c) goto nomem;
    if (s->size == 0) { /* a new segment: its header goes out with its first records */
        if (journal_chunk_put(c, JOURNAL_HDR, JOURNAL_HDR_LEN) < 0) goto nomem;
        s->size = JOURNAL_HDR_LEN;
    }
    journal_put32(hdr, (uint32_t)len);
    journal_put32(hdr + 4, crc32c(0, rec, len));
    size_t old = c->len;
    if (journal_chunk_put(c, hdr, sizeof hdr) < 0 || journal_chunk_put(c, rec, len) < 0) {
        c->len = old;
        goto nomem;
    }
    *pos = (journal_pos_t)s->num << 32 | s->size;
    s->size += JOURNAL_REC_HDR + len;
    s->records++;
    if (live) {
        s->live++;
        c->live_added++;
    }
    return 0;
nomem:
    snprintf(err, errlen, "journal %s/%s: out of memory", j->dir, j->name);
    return -ENOMEM;
}

/* journal_gc unlinks leading segments with nothing live, never the active one nor one with
 * unwritten records. */
static void journal_gc(journal_t *j)
{
    while (j->nsegs > 1 && j->segs[0].live == 0) {
        for (size_t i = 0; i < j->nchunks; i++)
            if (j->chunks[i].num == j->segs[0].num) return;
        journal_seg_remove(j, 0, 1);
    }
}

/* journal_write_all writes n bytes at off, retrying short writes. Returns 0 or -errno. */
static int journal_write_all(int fd, const char *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        if (w == 0) return -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* journal_rollback drops every pending chunk after a failed sync: files go back to their good
 * size, live counts lose what the dropped records added, never-written segments disappear. */
static void journal_rollback(journal_t *j)
{
    char path[4200];
    for (size_t i = 0; i < j->nchunks; i++) {
        journal_chunk_t *c = &j->chunks[i];
        journal_seg_t *s = journal_find(j, c->num);
        if (s) {
            s->live -= c->live_added <= s->live ? c->live_added : s->live;
            s->size = s->good;
            if (s->fd >= 0 && ftruncate(s->fd, (off_t)s->good) < 0) {
                journal_seg_path(j, s->num, path, sizeof path);
                log_error("journal %s: cannot truncate back to %" PRIu64 " bytes: %s", path,
                          s->good, strerror(errno));
            }
        }
        free(c->buf);
    }
    j->nchunks = 0;
    for (size_t i = j->nsegs; i-- > 0;)
        if (j->segs[i].good == 0) journal_seg_remove(j, i, 1);
}

int journal_sync(journal_t *j, int do_fsync, char *err, size_t errlen)
{
    char path[4200];
    int r = 0;
    const char *what = "write";
    journal_seg_t *s = NULL;
    for (size_t i = 0; i < j->nchunks; i++) {
        journal_chunk_t *c = &j->chunks[i];
        s = journal_find(j, c->num);
        if (!s) {
            r = -EIO;
            goto fail;
        }
        what = "open";
        if ((r = journal_seg_fd(j, s, c->start == 0)) < 0) goto fail;
        what = "write";
        if ((r = journal_write_all(s->fd, c->buf, c->len, c->start)) < 0) goto fail;
        what = "fdatasync";
        if (do_fsync && fdatasync(s->fd) < 0) {
            r = -errno;
            goto fail;
        }
    }
    s = NULL;
    if (do_fsync && j->dir_dirty) {
        what = "fsync directory";
        if (fsync(j->dirfd) < 0) {
            r = -errno;
            goto fail;
        }
        j->dir_dirty = 0;
    }
    for (size_t i = 0; i < j->nchunks; i++) {
        journal_seg_t *cs = journal_find(j, j->chunks[i].num);
        if (cs) cs->good = cs->size;
        free(j->chunks[i].buf);
    }
    j->nchunks = 0;
    journal_gc(j);
    return 0;
fail:
    if (s)
        journal_seg_path(j, s->num, path, sizeof path);
    else
        snprintf(path, sizeof path, "%s", j->dir);
    snprintf(err, errlen, "journal %s: %s: %s", path, what, strerror(-r));
    journal_rollback(j);
    return r;
}

void journal_release(journal_t *j, journal_pos_t pos)
{
    journal_seg_t *s = journal_find(j, (uint32_t)(pos >> 32));
    if (!s || s->live == 0) return;
    s->live--;
    journal_gc(j);
}

int journal_read(journal_t *j, journal_pos_t pos, void **rec, size_t *len)
{
    uint32_t num = (uint32_t)(pos >> 32);
    uint64_t off = pos & 0xffffffffu;
    unsigned char hdr[JOURNAL_REC_HDR];
    journal_seg_t *s = journal_find(j, num);
    *rec = NULL;
    *len = 0;
    if (!s || off < JOURNAL_HDR_LEN || off + JOURNAL_REC_HDR > s->size) return -ENOENT;
    const unsigned char *p = NULL;
    if (off >= s->good) { /* still in memory */
        for (size_t i = 0; i < j->nchunks; i++) {
            journal_chunk_t *c = &j->chunks[i];
            if (c->num == num && off >= c->start && off + JOURNAL_REC_HDR <= c->start + c->len)
                p = (const unsigned char *)c->buf + (off - c->start);
        }
        if (!p) return -ENOENT;
        memcpy(hdr, p, sizeof hdr);
    } else {
        int fd = journal_seg_fd(j, s, 0);
        if (fd < 0) return fd;
        ssize_t r = pread(fd, hdr, sizeof hdr, (off_t)off);
        if (r < 0) return -errno;
        if (r != (ssize_t)sizeof hdr) return -EIO;
    }
    uint32_t n = journal_get32(hdr), crc = journal_get32(hdr + 4);
    if (n == 0 || n > JOURNAL_RECORD_MAX || off + JOURNAL_REC_HDR + n > s->size) return -EBADMSG;
    char *out = malloc(n);
    if (!out) return -ENOMEM;
    if (p) {
        memcpy(out, p + JOURNAL_REC_HDR, n);
    } else {
        size_t got = 0;
        while (got < n) {
            ssize_t r = pread(s->fd, out + got, n - got, (off_t)(off + JOURNAL_REC_HDR + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                int e = r < 0 ? errno : EIO;
                free(out);
                return -e;
            }
            got += (size_t)r;
        }
    }
    if (crc32c(0, out, n) != crc) {
        free(out);
        return -EBADMSG;
    }
    *rec = out;
    *len = n;
    return 0;
}

int journal_unappend(journal_t *j, journal_pos_t pos, int live)
{
    journal_seg_t *s = journal_find(j, journal_pos_segment(pos));
    uint64_t off = pos & 0xffffffffu;
    if (!s || s != &j->segs[j->nsegs - 1] || off < s->good) return -EINVAL;
    for (size_t i = 0; i < j->nchunks; i++) {
        journal_chunk_t *c = &j->chunks[i];
        if (c->num != s->num || off < c->start || off + JOURNAL_REC_HDR > c->start + c->len)
            continue;
        uint32_t n = journal_get32((const unsigned char *)c->buf + (off - c->start));
        if (off + JOURNAL_REC_HDR + n != s->size) return -EINVAL; /* not the last record */
        c->len = (size_t)(off - c->start);
        s->size = off;
        s->records--;
        if (live) {
            s->live--;
            c->live_added--;
        }
        return 0;
    }
    return -EINVAL;
}

int journal_compact_candidate(journal_t *j, size_t keep, uint32_t *seg)
{
    /* The leading run of segments at most half live, up to 16 at a time, never the newest:
     * moving their few live records frees them; a segment mostly live is left alone (moving it
     * would only copy it). */
    size_t n = 0;
    while (n + 1 < j->nsegs && n < 16 && j->segs[n].live * 2 <= j->segs[n].records)
        n++;
    if (j->nsegs <= keep || n == 0) return 0;
    *seg = j->segs[n - 1].num;
    return 1;
}

int journal_move(journal_t *j, journal_pos_t pos, journal_pos_t *newpos, char *err, size_t errlen)
{
    void *rec;
    size_t len;
    int rc = journal_read(j, pos, &rec, &len);
    if (rc < 0) {
        snprintf(err, errlen,
                 "journal %s: cannot read record at segment %" PRIu32 " offset %llu: %s", j->name,
                 journal_pos_segment(pos), (unsigned long long)(pos & 0xffffffffu), strerror(-rc));
        return rc;
    }
    rc = journal_append(j, rec, len, 1, newpos, err, errlen);
    free(rec);
    return rc;
}

void journal_get_stats(journal_t *j, journal_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->segments = j->nsegs;
    for (size_t i = 0; i < j->nsegs; i++) {
        st->live_records += j->segs[i].live;
        st->bytes += j->segs[i].size;
    }
}

void journal_close(journal_t *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->nchunks; i++)
        free(j->chunks[i].buf);
    free(j->chunks);
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].fd >= 0) close(j->segs[i].fd);
    free(j->segs);
    if (j->dirfd >= 0) close(j->dirfd);
    if (j->lockfd >= 0) close(j->lockfd);
    free(j->dir);
    free(j->name);
    free(j);
}
