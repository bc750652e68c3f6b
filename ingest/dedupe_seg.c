/* dedupe_seg.c - the dedupe index's segment files: making, freeing and creating them, looking a
 * key up (its filter, then its slots and the key read back from disk), putting keys into the
 * slots of the segment taking them, and sealing it. The format: dedupe.h. */
#include "dedupe.h"

#include "util/crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* dedupe_seg_alloc makes the in-memory half of a segment (its filter). */
dd_seg_t *dedupe_seg_alloc(const ingest_dedupe_t *d, uint64_t no, uint32_t log2)
{
    dd_seg_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->no = no;
    s->fd = -1;
    s->log2 = s->tlog2 = log2;
    uint64_t keys = (1ull << log2) / 2;
    s->nblocks = (size_t)((keys * DD_BITS_PER_KEY + 511) / 512);
    if (s->nblocks == 0) s->nblocks = 1;
    s->bloom = calloc(s->nblocks * 8, sizeof(uint64_t));
    size_t n = strlen(d->dir) + 40;
    s->path = malloc(n);
    if (!s->bloom || !s->path) {
        free(s->bloom);
        free(s->path);
        free(s);
        return NULL;
    }
    snprintf(s->path, n, "%s/" DD_NAME_FMT, d->dir, no);
    return s;
}

/* dedupe_slots_alloc maps zeroed memory for n slots, 2 MiB aligned and advised for transparent
 * huge pages: random inserts then fault in a few huge pages instead of thousands of small ones.
 * Returns NULL when out of memory. */
dd_slot_t *dedupe_slots_alloc(uint64_t n)
{
    size_t len = (size_t)(n * DD_SLOT), map = len + DD_HUGE;
    if (len < DD_HUGE) return calloc(n, DD_SLOT); /* small: the heap's pages */
    char *p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)p + DD_HUGE - 1) & ~(uintptr_t)(DD_HUGE - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (p + map > a + len) munmap(a + len, (size_t)(p + map - (a + len)));
    madvise(a, len, MADV_HUGEPAGE); /* advice only: fine if refused */
    return (dd_slot_t *)(void *)a;
}

/* dedupe_slots_free unmaps what dedupe_slots_alloc mapped. */
static void dd_slots_free_mem(dd_slot_t *mem, uint64_t n)
{
    if (!mem) return;
    if (n * DD_SLOT < DD_HUGE)
        free(mem);
    else
        munmap(mem, (size_t)(n * DD_SLOT));
}

void dedupe_slots_free(dd_seg_t *s)
{
    dd_slots_free_mem(s->mem, dd_slots(s));
    s->mem = NULL;
    s->in_mem = 0;
}

void dedupe_seg_free(dd_seg_t *s)
{
    dedupe_slots_free(s);
    if (s->fd >= 0) close(s->fd);
    free(s->bloom);
    free(s->path);
    free(s);
}

/* dedupe_pread_full reads n bytes at off; returns the count read (short at the end of the file) or
 * a negative errno. */
ssize_t dedupe_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* dedupe_pwrite_full writes n bytes at off. Returns 0 or a negative errno. */
int dedupe_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = pwrite(fd, (const char *)buf + put, n - put, (off_t)(off + put));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        put += (size_t)r;
    }
    return 0;
}

/* dd_key_matches: whether the key record at off is key. A record cut short or failing its
 * checksum (a write lost in a crash) matches nothing; *damaged says so. Any thread. */
static int dd_key_matches(int fd, uint64_t off, const char *key, uint32_t len, int *damaged)
{
    char stackbuf[512];
    size_t n = DD_REC + (size_t)len;
    char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) return 0;
    ssize_t got = dedupe_pread_full(fd, buf, n, off);
    int match = 0;
    uint32_t hdr[3] = {0, 0, 0};
    if (got >= DD_REC) memcpy(hdr, buf, DD_REC);
    if (got < DD_REC || (hdr[0] == len && (size_t)got < n)) {
        *damaged = 1;
    } else if (hdr[0] == len) {
        if (crc32c(0, buf + 8, 4 + (size_t)len) != hdr[1])
            *damaged = 1;
        else
            match = memcmp(buf + DD_REC, key, len) == 0;
    }
    if (buf != stackbuf) free(buf);
    return match;
}

/* dd_seg_note_damage logs (once per segment) a slot whose key record is not intact. */
static void dd_seg_note_damage(ingest_dedupe_t *d, dd_seg_t *s, uint64_t off)
{
    d->damaged++;
    if (s->damage_logged) return;
    s->damage_logged = 1;
    log_warn("dedupe: %s: key record at offset %" PRIu64
             " cut short or damaged (a write lost in a crash); that slot is ignored, and the "
             "journal puts back the keys of the events it still holds",
             s->path, off);
}

/* dedupe_seg_lookup: whether segment s holds key within the window. Loop thread. */
int dedupe_seg_lookup(ingest_dedupe_t *d, dd_seg_t *s, uint64_t hash, const char *key, uint32_t len,
                      uint64_t now)
{
    if (!dd_bloom_has(s, hash)) return 0;
    if (s->in_mem) { /* the segment taking keys: its slots in memory, which the worker grows */
        int found = 0;
        pthread_mutex_lock(&d->mu);
        uint64_t nslots = dd_slots(s), i = hash & (nslots - 1);
        for (uint64_t seen = 0; seen < nslots; seen++, i = (i + 1) & (nslots - 1)) {
            dd_slot_t sl = s->mem[i];
            if (sl.hash == 0) break;
            if (sl.hash != hash || !dd_live(d, sl.time, now)) continue;
            int damaged = 0;
            if ((found = dd_key_matches(s->fd, sl.off, key, len, &damaged))) break;
            if (damaged) dd_seg_note_damage(d, s, sl.off);
        }
        pthread_mutex_unlock(&d->mu);
        return found;
    }
    uint64_t nslots = dd_slots(s), i = hash & (nslots - 1), seen = 0;
    dd_slot_t buf[DD_PROBE_SLOTS];
    while (seen < nslots) {
        uint64_t want = nslots - i < DD_PROBE_SLOTS ? nslots - i : DD_PROBE_SLOTS;
        ssize_t got = dedupe_pread_full(s->fd, buf, want * DD_SLOT, DD_HEADER + i * DD_SLOT);
        if (got < (ssize_t)DD_SLOT) return 0;
        size_t n = (size_t)got / DD_SLOT;
        for (size_t k = 0; k < n; k++) {
            if (buf[k].hash == 0) return 0;
            if (buf[k].hash != hash || !dd_live(d, buf[k].time, now)) continue;
            int damaged = 0;
            if (dd_key_matches(s->fd, buf[k].off, key, len, &damaged)) return 1;
            if (damaged) dd_seg_note_damage(d, s, buf[k].off);
        }
        seen += n;
        i = (i + n) & (nslots - 1);
    }
    return 0;
}

/* dd_seg_create makes a new empty segment file for keys from now on. Loop thread (rare: one per
 * slice or per million keys). Returns the segment or NULL (logged). */
static dd_seg_t *dd_seg_create(ingest_dedupe_t *d, uint64_t now)
{
    uint32_t log2 = d->o.seg_log2 ? d->o.seg_log2 : DD_SEG_LOG2;
    dd_seg_t *s = dedupe_seg_alloc(d, d->next_no, log2);
    if (!s) {
        log_error("dedupe: out of memory creating a segment");
        return NULL;
    }
    dd_header_t h = {.log2 = log2, .t_first = now};
    memcpy(h.magic, DD_MAGIC, 8);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = s->fd < 0 ? -errno : 0;
    if (rc == 0 && ftruncate(s->fd, (off_t)(DD_HEADER + dd_region(s) * DD_SLOT)) < 0) rc = -errno;
    s->tlog2 = log2 < DD_MEM_LOG2 ? log2 : DD_MEM_LOG2;
    if (rc == 0) rc = dedupe_pwrite_full(s->fd, &h, sizeof h, 0);
    if (rc == 0 && !(s->mem = dedupe_slots_alloc(dd_slots(s)))) rc = -ENOMEM;
    s->in_mem = s->mem != NULL;
    if (rc < 0) {
        unsigned long held = 0;
        if (log_limit_pass(&d->fail_log, 10000, &held))
            log_error("dedupe: creating %s: %s; keys wait in memory and are retried", s->path,
                      strerror(-rc));
        if (s->fd >= 0) unlink(s->path);
        dedupe_seg_free(s);
        return NULL;
    }
    d->next_no++;
    if (d->hot) d->hot->to_seal = 1;
    s->key_end = DD_HEADER + dd_region(s) * DD_SLOT;
    s->t_first = s->t_last = now;
    s->created = 1;
    dd_seg_t **pp = &d->segs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    d->hot = s;
    return s;
}

/* dedupe_seg_fits: segment s may take one more key of len bytes now. */
int dedupe_seg_fits(const ingest_dedupe_t *d, const dd_seg_t *s, uint32_t len, uint64_t now)
{
    uint64_t slice = d->o.window_s / DD_SLICES ? d->o.window_s / DD_SLICES : 1;
    return s->in_mem && s->entries < dd_region(s) / 2 && now < s->t_first + slice &&
           s->key_end + DD_REC + len <= DD_KEY_FILE_MAX;
}

/* dedupe_seg_hot: the segment a key of len bytes goes to now, rolling to a new one when the
 * current one is half full, its slice is over, or its keys near 4 GiB. */
dd_seg_t *dedupe_seg_hot(ingest_dedupe_t *d, uint32_t len, uint64_t now)
{
    if (d->hot && dedupe_seg_fits(d, d->hot, len, now)) return d->hot;
    return dd_seg_create(d, now);
}

/* dd_mem_grow doubles the in-memory slots of s. Returns 0 or -ENOMEM (nothing changed). */
static int dd_mem_grow(dd_seg_t *s)
{
    uint64_t n = dd_slots(s), m = n * 2;
    dd_slot_t *t = dedupe_slots_alloc(m);
    if (!t) return -ENOMEM;
    for (uint64_t k = 0; k < n; k++) {
        if (!s->mem[k].hash) continue;
        uint64_t i = s->mem[k].hash & (m - 1);
        while (t[i].hash)
            i = (i + 1) & (m - 1);
        t[i] = s->mem[k];
    }
    dd_slots_free_mem(s->mem, n);
    s->mem = t;
    s->tlog2++;
    return 0;
}

/* dedupe_seg_insert puts a slot into the in-memory slots of segment s: the first empty slot of its
 * probe run, or the slot of the same key (an older acceptance, its record read back from disk)
 * whose time it renews; the slots double while more than half would be used. The worker thread
 * (under the mutex), or the loop at open. Returns 0 or -ENOMEM. */
int dedupe_seg_insert(dd_seg_t *s, uint64_t hash, const char *key, uint32_t len, uint64_t off,
                      uint32_t time_s)
{
    if ((s->mem_used + 1) * 2 > dd_slots(s) && s->tlog2 < s->log2 && dd_mem_grow(s) < 0 &&
        s->mem_used + 1 >= dd_slots(s))
        return -ENOMEM; /* no room at all: the batch is retried */
    uint64_t nslots = dd_slots(s), i = hash & (nslots - 1);
    for (uint64_t seen = 0; seen < nslots; seen++, i = (i + 1) & (nslots - 1)) {
        dd_slot_t *sl = &s->mem[i];
        int damaged = 0;
        if (sl->hash != 0 &&
            (sl->hash != hash || !dd_key_matches(s->fd, sl->off, key, len, &damaged)))
            continue;
        s->mem_used += sl->hash == 0;
        *sl = (dd_slot_t){.hash = hash, .off = (uint32_t)off, .time = time_s};
        return 0;
    }
    return -ENOMEM; /* cannot happen: checked above */
}

/* dedupe_seg_seal writes a segment's slots from memory and then the header's sealed flag, each
 * followed by fdatasync when do_fsync. Any thread. Returns 0 or a negative errno with err. */
int dedupe_seg_seal(dd_seg_t *s, int do_fsync, char *err, size_t errlen)
{
    int rc = dedupe_pwrite_full(s->fd, s->mem, (size_t)(dd_slots(s) * DD_SLOT), DD_HEADER);
    if (rc == 0 && do_fsync && fdatasync(s->fd) < 0) rc = -errno;
    dd_header_t h = {.log2 = s->log2, .sealed = 1, .t_first = s->t_first, .tlog2 = s->tlog2};
    memcpy(h.magic, DD_MAGIC, 8);
    if (rc == 0) rc = dedupe_pwrite_full(s->fd, &h, sizeof h, 0); /* one sector: all or nothing */
    if (rc == 0 && do_fsync && fdatasync(s->fd) < 0) rc = -errno;
    if (rc < 0) snprintf(err, errlen, "%s: sealing: %s", s->path, strerror(-rc));
    return rc;
}
