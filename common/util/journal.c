/* journal.c - append-only segment files of CRC-32C checked records: buffered appends, explicit
 * write+fdatasync for group commit, replay that cuts torn tails, and oldest-first deletion of
 * segments that hold nothing live. */
#include "util/journal.h"

#include "util/crc32c.h"
#include "util/fsmode.h"
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
    int sealed;    /* a write to it failed: never appended to again (see journal_rollback) */
    uint64_t size; /* bytes including buffered records */
    uint64_t good; /* bytes written (and synced when asked): what a failed sync goes back to */
    uint64_t live;
    uint64_t records; /* appended or replayed, live or not: live/records is its occupancy */
} journal_seg_t;

/* Bytes appended to one segment since the last sync. */
typedef struct journal_chunk {
    uint32_t num;
    int fd;         /* the segment's file, opened when the chunk is taken into a batch */
    uint64_t start; /* file offset of buf[0] */
    char *buf;
    size_t len, cap;
    uint64_t live_added, records_added;
} journal_chunk_t;

/* Buffered records taken out of the journal to be written, possibly on another thread. */
struct journal_batch {
    journal_chunk_t *chunks;
    size_t nchunks;
    const char *dir, *name; /* the journal's, for error messages */
    int dirfd, sync_dir;    /* fsync the directory too (a segment was created) */
    int open_rc;            /* a segment could not be opened or created when the batch was taken */
    char open_err[4400];
};

struct journal {
    char *dir, *name;
    int dirfd, lockfd;
    size_t segment_max;
    int replayed;
    int dir_dirty;    /* a segment was created since the directory was last fsynced */
    uint32_t max_num; /* the highest segment number ever used: numbers are never reused */
    unsigned pinned;  /* journal_pin: no segment is removed while > 0 */
    journal_seg_t *segs;
    size_t nsegs, segcap;
    journal_chunk_t *chunks;
    size_t nchunks, chunkcap;
    journal_batch_t *inflight; /* taken, being written, not yet finished */
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
    if (num > j->max_num) j->max_num = num;
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
        char path[4400], why[4500];
        snprintf(path, sizeof path, "%s/%s", j->dir, n);
        if (fsmode_tighten_file(path, why, sizeof why) < 0) log_warn("%s", why);
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
    /* an earlier install or a hand-made copy may have left them readable by others */
    if (fsmode_tighten_dir(dir, err, errlen) < 0 || fsmode_tighten_file(path, err, errlen) < 0)
        log_warn("%s", err);
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
        /* set first: the owner may release records of this segment while it is replayed */
        s->size = s->good = (uint64_t)st.st_size;
        if ((r = journal_replay_seg(j, s, cb, arg, &end, &why)) < 0) return r;
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
    c->fd = -1;
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
    int roll = s && (s->sealed || (s->size > JOURNAL_HDR_LEN &&
                                   s->size + JOURNAL_REC_HDR + len > (uint64_t)j->segment_max));
    if (!s || roll) {
        /* never a number used before in this process: a stale position must not name a record
         * of a later segment */
        uint32_t num = j->max_num + 1;
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
    c->records_added++;
    if (live) {
        s->live++;
        c->live_added++;
    }
    return 0;
nomem:
    snprintf(err, errlen, "journal %s/%s: out of memory", j->dir, j->name);
    return -ENOMEM;
}

/* journal_seg_busy: 1 when segment num has records buffered or being written. */
static int journal_seg_busy(const journal_t *j, uint32_t num)
{
    for (size_t i = 0; i < j->nchunks; i++)
        if (j->chunks[i].num == num) return 1;
    for (size_t i = 0; j->inflight && i < j->inflight->nchunks; i++)
        if (j->inflight->chunks[i].num == num) return 1;
    return 0;
}

/* journal_gc unlinks leading segments with nothing live, never the active one nor one with
 * unwritten records; nothing during replay (later segments are not counted yet) or while the
 * journal is pinned. */
static void journal_gc(journal_t *j)
{
    if (!j->replayed || j->pinned) return;
    while (j->nsegs > 1 && j->segs[0].live == 0 && !journal_seg_busy(j, j->segs[0].num))
        journal_seg_remove(j, 0, 1);
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

/* journal_chunks_drop takes back what n chunks added to their segments: sizes go back to the
 * good size, files are cut there, and the segment is sealed so that no later record reuses an
 * offset a dropped record had (a stale position then names nothing; see journal_release). */
static void journal_chunks_drop(journal_t *j, journal_chunk_t *cs, size_t n)
{
    char path[4200];
    for (size_t i = 0; i < n; i++) {
        journal_chunk_t *c = &cs[i];
        journal_seg_t *s = journal_find(j, c->num);
        if (s) {
            s->live -= c->live_added <= s->live ? c->live_added : s->live;
            s->records -= c->records_added <= s->records ? c->records_added : s->records;
            s->size = s->good;
            s->sealed = 1;
            if (s->fd >= 0 && ftruncate(s->fd, (off_t)s->good) < 0) {
                journal_seg_path(j, s->num, path, sizeof path);
                log_error("journal %s: cannot truncate back to %" PRIu64 " bytes: %s", path,
                          s->good, strerror(errno));
            }
        }
        free(c->buf);
    }
}

/* journal_rollback drops the failed batch and every record buffered after it (they follow the
 * failed bytes in the file): never-written segments disappear, the others are sealed. */
static void journal_rollback(journal_t *j, journal_batch_t *b)
{
    journal_chunks_drop(j, b->chunks, b->nchunks);
    journal_chunks_drop(j, j->chunks, j->nchunks);
    j->nchunks = 0;
    j->dir_dirty |= b->sync_dir;
    for (size_t i = j->nsegs; i-- > 0;)
        if (j->segs[i].good == 0) journal_seg_remove(j, i, 1);
}

journal_batch_t *journal_batch_take(journal_t *j)
{
    if (j->inflight || j->nchunks == 0) return NULL;
    journal_batch_t *b = calloc(1, sizeof *b);
    if (!b) return NULL; /* the records stay buffered for the next try */
    b->chunks = j->chunks;
    b->nchunks = j->nchunks;
    j->chunks = NULL;
    j->nchunks = j->chunkcap = 0;
    j->inflight = b;
    b->dirfd = j->dirfd;
    b->dir = j->dir;
    b->name = j->name;
    for (size_t i = 0; i < b->nchunks && b->open_rc == 0; i++) {
        journal_chunk_t *c = &b->chunks[i];
        journal_seg_t *s = journal_find(j, c->num);
        int fd = s ? journal_seg_fd(j, s, c->start == 0) : -EIO;
        if (fd < 0) {
            char path[4200];
            journal_seg_path(j, c->num, path, sizeof path);
            b->open_rc = fd;
            snprintf(b->open_err, sizeof b->open_err, "journal %s: open: %s", path, strerror(-fd));
        }
        c->fd = fd;
    }
    b->sync_dir = j->dir_dirty;
    j->dir_dirty = 0;
    return b;
}

int journal_batch_write(journal_batch_t *b, int do_fsync, char *err, size_t errlen)
{
    if (b->open_rc < 0) {
        snprintf(err, errlen, "%s", b->open_err);
        return b->open_rc;
    }
    for (size_t i = 0; i < b->nchunks; i++) {
        journal_chunk_t *c = &b->chunks[i];
        const char *what = "write";
        int r = journal_write_all(c->fd, c->buf, c->len, c->start);
        if (r == 0 && do_fsync && fdatasync(c->fd) < 0) {
            r = -errno;
            what = "fdatasync";
        }
        if (r < 0) {
            snprintf(err, errlen, "journal %s/%s-%016" PRIx32 ".jnl: %s: %s", b->dir, b->name,
                     c->num, what, strerror(-r));
            return r;
        }
    }
    if (do_fsync && b->sync_dir && fsync(b->dirfd) < 0) {
        int r = -errno;
        snprintf(err, errlen, "journal %s: fsync directory: %s", b->dir, strerror(-r));
        return r;
    }
    return 0;
}

void journal_batch_finish(journal_t *j, journal_batch_t *b, int status)
{
    if (status < 0) {
        journal_rollback(j, b);
    } else {
        for (size_t i = 0; i < b->nchunks; i++) {
            journal_chunk_t *c = &b->chunks[i];
            journal_seg_t *s = journal_find(j, c->num);
            if (s && c->start + c->len > s->good) s->good = c->start + c->len;
            free(c->buf);
        }
    }
    free(b->chunks);
    free(b);
    j->inflight = NULL;
    journal_gc(j);
}

int journal_buffered(const journal_t *j)
{
    return j->nchunks > 0;
}

int journal_sync(journal_t *j, int do_fsync, char *err, size_t errlen)
{
    if (j->inflight) {
        snprintf(err, errlen, "journal %s/%s: sync while a batch is being written", j->dir,
                 j->name);
        return -EBUSY;
    }
    journal_batch_t *b = journal_batch_take(j);
    if (!b) {
        if (j->nchunks == 0) return 0;
        snprintf(err, errlen, "journal %s/%s: out of memory", j->dir, j->name);
        return -ENOMEM;
    }
    int r = journal_batch_write(b, do_fsync, err, errlen);
    journal_batch_finish(j, b, r);
    return r;
}

int journal_release(journal_t *j, journal_pos_t pos)
{
    journal_seg_t *s = journal_find(j, journal_pos_segment(pos));
    uint64_t off = pos & 0xffffffffu;
    /* Only a durable record can be released: a record not yet written, or one a failed sync
     * dropped (its segment is gone, or sealed below its offset), is refused, so no owner can
     * take a live count twice. */
    if (!s || off < JOURNAL_HDR_LEN || off >= s->good || s->live == 0) {
        log_error("journal %s/%s: release of segment %" PRIu32 " offset %" PRIu64 " refused: %s",
                  j->dir, j->name, journal_pos_segment(pos), off,
                  !s               ? "no such segment"
                  : off >= s->good ? "not durable (never written, or dropped by a failed sync)"
                                   : "nothing live in that segment");
        return !s ? -ENOENT : -EINVAL;
    }
    s->live--;
    journal_gc(j);
    return 0;
}

void journal_pin(journal_t *j)
{
    j->pinned++;
}

void journal_unpin(journal_t *j)
{
    if (j->pinned && --j->pinned == 0) journal_gc(j);
}

/* journal_pread_record reads and checks the record at off of fd, which holds limit valid bytes.
 * Returns 0 with a malloc'd copy in *rec, or a negative errno (-EBADMSG: damaged). */
static int journal_pread_record(int fd, uint64_t off, uint64_t limit, void **rec, size_t *len)
{
    unsigned char hdr[JOURNAL_REC_HDR];
    *rec = NULL;
    *len = 0;
    if (off + JOURNAL_REC_HDR > limit) return -ENOENT;
    ssize_t r = pread(fd, hdr, sizeof hdr, (off_t)off);
    if (r < 0) return -errno;
    if (r != (ssize_t)sizeof hdr) return -EIO;
    uint32_t n = journal_get32(hdr), crc = journal_get32(hdr + 4);
    if (n == 0 || n > JOURNAL_RECORD_MAX || off + JOURNAL_REC_HDR + n > limit) return -EBADMSG;
    char *out = malloc(n);
    if (!out) return -ENOMEM;
    size_t got = 0;
    while (got < n) {
        r = pread(fd, out + got, n - got, (off_t)(off + JOURNAL_REC_HDR + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(out);
            return -e;
        }
        got += (size_t)r;
    }
    if (crc32c(0, out, n) != crc) {
        free(out);
        return -EBADMSG;
    }
    *rec = out;
    *len = n;
    return 0;
}

int journal_read(journal_t *j, journal_pos_t pos, void **rec, size_t *len)
{
    uint32_t num = (uint32_t)(pos >> 32);
    uint64_t off = pos & 0xffffffffu;
    journal_seg_t *s = journal_find(j, num);
    *rec = NULL;
    *len = 0;
    if (!s || off < JOURNAL_HDR_LEN || off + JOURNAL_REC_HDR > s->size) return -ENOENT;
    if (off < s->good) {
        int fd = journal_seg_fd(j, s, 0);
        if (fd < 0) return fd;
        return journal_pread_record(fd, off, s->good, rec, len);
    }
    /* still in memory: buffered, or in the batch being written */
    const unsigned char *p = NULL;
    for (size_t i = 0; i < j->nchunks + (j->inflight ? j->inflight->nchunks : 0); i++) {
        journal_chunk_t *c = i < j->nchunks ? &j->chunks[i] : &j->inflight->chunks[i - j->nchunks];
        if (c->num == num && off >= c->start && off + JOURNAL_REC_HDR <= c->start + c->len)
            p = (const unsigned char *)c->buf + (off - c->start);
    }
    if (!p) return -ENOENT;
    uint32_t n = journal_get32(p), crc = journal_get32(p + 4);
    if (n == 0 || n > JOURNAL_RECORD_MAX || off + JOURNAL_REC_HDR + n > s->size) return -EBADMSG;
    if (crc32c(0, p + JOURNAL_REC_HDR, n) != crc) return -EBADMSG;
    char *out = malloc(n);
    if (!out) return -ENOMEM;
    memcpy(out, p + JOURNAL_REC_HDR, n);
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
        c->records_added--;
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

int journal_copy_prepare(journal_t *j, journal_copy_t *c)
{
    journal_seg_t *s = journal_find(j, journal_pos_segment(c->pos));
    c->off = c->pos & 0xffffffffu;
    c->rec = NULL;
    c->len = 0;
    c->rc = -ENOENT;
    if (!s || c->off < JOURNAL_HDR_LEN || c->off >= s->good) return -ENOENT;
    int fd = journal_seg_fd(j, s, 0);
    if (fd < 0) return c->rc = fd;
    c->fd = fd;
    c->limit = s->good;
    return c->rc = 0;
}

void journal_copy_read(journal_copy_t *c)
{
    if (c->rc == 0) c->rc = journal_pread_record(c->fd, c->off, c->limit, &c->rec, &c->len);
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
    if (j->inflight) { /* never finished: as after a crash, what it held may or may not be on disk
                        */
        for (size_t i = 0; i < j->inflight->nchunks; i++)
            free(j->inflight->chunks[i].buf);
        free(j->inflight->chunks);
        free(j->inflight);
    }
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].fd >= 0) close(j->segs[i].fd);
    free(j->segs);
    if (j->dirfd >= 0) close(j->dirfd);
    if (j->lockfd >= 0) close(j->lockfd);
    free(j->dir);
    free(j->name);
    free(j);
}
