/* ingest_dedupe.c - the dedupe index: keys accepted within the window, in time-sliced segment
 * files (a table of hash slots, then the keys, appended); in memory one blocked Bloom filter per
 * segment, the keys not yet written, and the slots of the one segment taking new keys (written
 * out once, when it is sealed; older segments are read with pread). Key writes, fdatasync and
 * sealing run on a worker thread. */
#include "ingest_dedupe.h"

#include "util/crc32c.h"
#include "util/fsmode.h"
#include "util/log.h"
#include "util/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A segment file: a 4 KiB header, 2^log2 slots of 16 bytes, then the keys, appended. A slot is
 * {u64 hash (0: empty), u32 key offset, u32 accept time in seconds}; a key record is {u32
 * length, u32 crc32c of time and key, u32 accept time, key}. While a segment takes new keys only
 * its key records are written (one append per batch); its slots live in memory and are written
 * once, when it is sealed (header flag). An unsealed segment found at open (the one that was
 * taking keys at a crash or stop) is rebuilt from its key records, and sealed then unless it is
 * the newest and has room (it goes on taking keys). Native byte order: the files never leave
 * the host. */
#define DD_MAGIC "HLDDX1\n"
#define DD_HEADER 4096u
#define DD_SLOT 16u
#define DD_SEG_LOG2 20u              /* 1M slots (16 MiB), at most 512K keys a segment */
#define DD_MEM_LOG2 12u              /* the in-memory slots start at 4096 (64 KiB) and double */
#define DD_KEY_FILE_MAX (3ull << 30) /* key offsets are 32-bit: roll well before 4 GiB */
#define DD_REC 12u                   /* key record header */
#define DD_KEY_MAX (1u << 20)        /* longest key (an input line is at most 1 MiB) */
#define DD_BITS_PER_KEY 10u          /* ~1 % false positives with 6 bits in a 512-bit block */
#define DD_PROBE_SLOTS 16u           /* slots read at once while probing */
#define DD_BATCH_MAX 65536u          /* keys written by one batch */
#define DD_BATCH_SEGS 8              /* segments one batch may touch */
#define DD_RETRY_MS 1000u            /* after a failed write batch or segment creation */
#define DD_SLICES 8u                 /* a segment takes new keys for window / 8 */
#define DD_NAME_FMT "seg-%016" PRIx64 ".ddx"
#define DD_HUGE (2u << 20)  /* the in-memory slots ask for transparent huge pages */
#define DD_ENTRY_BYTES 128u /* pending entries of this size (short keys) are reused */
#define DD_POOL_MAX 32768u  /* ... up to this many kept free (4 MiB) */

enum { DD_HELD = 0, DD_COMMITTED = 1, DD_ABORTED = -1 };

typedef struct dd_slot {
    uint64_t hash;
    uint32_t off;
    uint32_t time;
} dd_slot_t;

typedef struct dd_header {
    char magic[8];
    uint32_t log2;   /* the table region: 2^log2 slots; the keys start after it */
    uint32_t sealed; /* 1: the slot table on disk is complete */
    uint64_t t_first;
    uint32_t tlog2; /* sealed: the table written holds 2^tlog2 slots (<= log2) */
    uint32_t pad;
} dd_header_t;

typedef struct dd_seg {
    struct dd_seg *next; /* oldest first */
    uint64_t no;
    int fd;
    char *path;
    uint32_t log2;    /* region */
    uint32_t tlog2;   /* the slot table: 2^tlog2 slots (in memory it grows up to log2) */
    uint64_t key_end; /* next key offset, assigned on the loop */
    uint64_t entries;
    uint64_t t_first, t_last;
    uint64_t *bloom; /* nblocks blocks of 8 words; calloc'd: untouched pages cost nothing */
    size_t nblocks;
    dd_slot_t *mem;    /* the slots in memory, until the segment is sealed on disk (else NULL);
                        * the worker may replace it (growing): read it under the mutex */
    uint64_t mem_used; /* slots used in mem (worker, or the loop at open) */
    int in_mem;        /* mem is set (loop thread's view) */
    int busy;          /* write batches and seals that name it */
    int to_seal;       /* it took its last key: seal it after the batch that writes its last keys */
    int created;       /* the directory entry is not yet synced */
    int damage_logged;
} dd_seg_t;

struct ingest_dedupe_entry {
    ingest_dedupe_entry_t *chain; /* pending table */
    ingest_dedupe_entry_t *qnext; /* write queue, then the batch */
    uint64_t hash;
    uint32_t time, len;
    int state;
    int refs; /* the caller's, and one while in the pending table */
    int in_table, pooled;
    dd_seg_t *seg; /* assigned when its batch starts */
    uint64_t off;
    char key[];
};

typedef struct dd_batch {
    worker_job_t job; /* first */
    ingest_dedupe_t *d;
    ingest_dedupe_entry_t *head, **tail;
    uint64_t n;
    dd_seg_t *segs[DD_BATCH_SEGS];
    int nsegs, sync_dir;
    int rc;
    char err[512];
} dd_batch_t;

struct ingest_dedupe {
    uv_loop_t *loop;
    ingest_dedupe_opts_t o;
    char *dir;
    int dir_fd;
    worker_t *worker;
    uv_timer_t timer; /* batch window, retries */
    uv_timer_t cron;  /* expiry */
    int open_handles, closing;
    dd_seg_t *segs, *hot;
    uint64_t next_no;
    ingest_dedupe_entry_t **tab;
    size_t tabcap, tabn, held;
    ingest_dedupe_entry_t *q, **qtail;
    size_t qn;
    dd_batch_t batch;
    int writing;
    pthread_mutex_t mu; /* the in-memory slots: the worker inserts, the loop looks up */
    uint64_t queued, written, damaged;
    log_limit_t fail_log;
};

uint64_t (*ingest_dedupe_hash_for_tests)(const void *key, size_t len);

/* --- hashing and filters --- */

/* dd_mix is the murmur3 finalizer. */
static uint64_t dd_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* dd_hash: FNV-1a with a finalizer; never 0 (an empty slot). */
static uint64_t dd_hash(const char *key, size_t n)
{
    uint64_t h;
    if (ingest_dedupe_hash_for_tests) {
        h = ingest_dedupe_hash_for_tests(key, n);
    } else {
        h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
        h = dd_mix(h);
    }
    return h ? h : 1;
}

/* dd_bloom_block: the filter block of a hash, and the second hash its bits come from. */
static uint64_t *dd_bloom_block(const dd_seg_t *s, uint64_t hash, uint64_t *h2)
{
    *h2 = dd_mix(hash ^ 0x9e3779b97f4a7c15ull);
    size_t b = (size_t)(((*h2 >> 32) * (uint64_t)s->nblocks) >> 32);
    return s->bloom + b * 8;
}

/* dd_bloom_add sets a key's 6 bits in its block. */
static void dd_bloom_add(dd_seg_t *s, uint64_t hash)
{
    uint64_t h2, *blk = dd_bloom_block(s, hash, &h2);
    for (int i = 0; i < 6; i++) {
        unsigned bit = (unsigned)(h2 >> (9 * i)) & 511u;
        __atomic_fetch_or(&blk[bit >> 6], 1ull << (bit & 63), __ATOMIC_RELAXED); /* worker */
    }
}

/* dd_bloom_has: 0 when the key is surely not in the segment. */
static int dd_bloom_has(const dd_seg_t *s, uint64_t hash)
{
    uint64_t h2;
    const uint64_t *blk = dd_bloom_block(s, hash, &h2);
    for (int i = 0; i < 6; i++) {
        unsigned bit = (unsigned)(h2 >> (9 * i)) & 511u;
        if (!(__atomic_load_n(&blk[bit >> 6], __ATOMIC_RELAXED) & (1ull << (bit & 63)))) return 0;
    }
    return 1;
}

/* --- time --- */

/* dd_now: wall-clock seconds (the window outlives restarts, so not the monotonic clock). */
static uint64_t dd_now(const ingest_dedupe_t *d)
{
    if (d->o.now_s) return d->o.now_s(d->o.now_arg);
    return (uint64_t)time(NULL);
}

/* dd_live: a key accepted at t is still within the window at now. */
static int dd_live(const ingest_dedupe_t *d, uint64_t t, uint64_t now)
{
    return t + d->o.window_s > now;
}

/* --- segment files --- */

/* dd_slots: the slot table's size; dd_region: the room reserved for it in the file. */
static uint64_t dd_slots(const dd_seg_t *s)
{
    return 1ull << s->tlog2;
}

static uint64_t dd_region(const dd_seg_t *s)
{
    return 1ull << s->log2;
}

/* dd_seg_alloc makes the in-memory half of a segment (its filter). */
static dd_seg_t *dd_seg_alloc(const ingest_dedupe_t *d, uint64_t no, uint32_t log2)
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

/* dd_slots_alloc maps zeroed memory for n slots, 2 MiB aligned and advised for transparent
 * huge pages: random inserts then fault in a few huge pages instead of thousands of small ones.
 * Returns NULL when out of memory. */
static dd_slot_t *dd_slots_alloc(uint64_t n)
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

/* dd_slots_free unmaps what dd_slots_alloc mapped. */
static void dd_slots_free_mem(dd_slot_t *mem, uint64_t n)
{
    if (!mem) return;
    if (n * DD_SLOT < DD_HUGE)
        free(mem);
    else
        munmap(mem, (size_t)(n * DD_SLOT));
}

static void dd_slots_free(dd_seg_t *s)
{
    dd_slots_free_mem(s->mem, dd_slots(s));
    s->mem = NULL;
    s->in_mem = 0;
}

static void dd_seg_free(dd_seg_t *s)
{
    dd_slots_free(s);
    if (s->fd >= 0) close(s->fd);
    free(s->bloom);
    free(s->path);
    free(s);
}

/* dd_pread_full reads n bytes at off; returns the count read (short at the end of the file) or
 * a negative errno. */
static ssize_t dd_pread_full(int fd, void *buf, size_t n, uint64_t off)
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

/* dd_pwrite_full writes n bytes at off. Returns 0 or a negative errno. */
static int dd_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
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
    ssize_t got = dd_pread_full(fd, buf, n, off);
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

/* dd_seg_lookup: whether segment s holds key within the window. Loop thread. */
static int dd_seg_lookup(ingest_dedupe_t *d, dd_seg_t *s, uint64_t hash, const char *key,
                         uint32_t len, uint64_t now)
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
        ssize_t got = dd_pread_full(s->fd, buf, want * DD_SLOT, DD_HEADER + i * DD_SLOT);
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
    dd_seg_t *s = dd_seg_alloc(d, d->next_no, log2);
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
    if (rc == 0) rc = dd_pwrite_full(s->fd, &h, sizeof h, 0);
    if (rc == 0 && !(s->mem = dd_slots_alloc(dd_slots(s)))) rc = -ENOMEM;
    s->in_mem = s->mem != NULL;
    if (rc < 0) {
        unsigned long held = 0;
        if (log_limit_pass(&d->fail_log, 10000, &held))
            log_error("dedupe: creating %s: %s; keys wait in memory and are retried", s->path,
                      strerror(-rc));
        if (s->fd >= 0) unlink(s->path);
        dd_seg_free(s);
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

/* dd_hot: the segment a key of len bytes goes to now, rolling to a new one when the current one
 * is half full, its slice is over, or its keys near 4 GiB. */
/* dd_fits: segment s may take one more key of len bytes now. */
static int dd_fits(const ingest_dedupe_t *d, const dd_seg_t *s, uint32_t len, uint64_t now)
{
    uint64_t slice = d->o.window_s / DD_SLICES ? d->o.window_s / DD_SLICES : 1;
    return s->in_mem && s->entries < dd_region(s) / 2 && now < s->t_first + slice &&
           s->key_end + DD_REC + len <= DD_KEY_FILE_MAX;
}

static dd_seg_t *dd_hot(ingest_dedupe_t *d, uint32_t len, uint64_t now)
{
    if (d->hot && dd_fits(d, d->hot, len, now)) return d->hot;
    return dd_seg_create(d, now);
}

/* dd_mem_grow doubles the in-memory slots of s. Returns 0 or -ENOMEM (nothing changed). */
static int dd_mem_grow(dd_seg_t *s)
{
    uint64_t n = dd_slots(s), m = n * 2;
    dd_slot_t *t = dd_slots_alloc(m);
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

/* dd_mem_insert puts a slot into the in-memory slots of segment s: the first empty slot of its
 * probe run, or the slot of the same key (an older acceptance, its record read back from disk)
 * whose time it renews; the slots double while more than half would be used. The worker thread
 * (under the mutex), or the loop at open. Returns 0 or -ENOMEM. */
static int dd_mem_insert(dd_seg_t *s, uint64_t hash, const char *key, uint32_t len, uint64_t off,
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

/* dd_seal_write writes a segment's slots from memory and then the header's sealed flag, each
 * followed by fdatasync when do_fsync. Any thread. Returns 0 or a negative errno with err. */
static int dd_seal_write(dd_seg_t *s, int do_fsync, char *err, size_t errlen)
{
    int rc = dd_pwrite_full(s->fd, s->mem, (size_t)(dd_slots(s) * DD_SLOT), DD_HEADER);
    if (rc == 0 && do_fsync && fdatasync(s->fd) < 0) rc = -errno;
    dd_header_t h = {.log2 = s->log2, .sealed = 1, .t_first = s->t_first, .tlog2 = s->tlog2};
    memcpy(h.magic, DD_MAGIC, 8);
    if (rc == 0) rc = dd_pwrite_full(s->fd, &h, sizeof h, 0); /* one sector: all or nothing */
    if (rc == 0 && do_fsync && fdatasync(s->fd) < 0) rc = -errno;
    if (rc < 0) snprintf(err, errlen, "%s: sealing: %s", s->path, strerror(-rc));
    return rc;
}

/* dd_seg_rebuild reads an unsealed segment's key records into its in-memory slots, cutting off
 * a torn tail (logged with the file and offset). Returns 0 or a negative errno (logged). */
static int dd_seg_rebuild(ingest_dedupe_t *d, dd_seg_t *s, uint64_t size)
{
    s->tlog2 = s->log2 < DD_MEM_LOG2 ? s->log2 : DD_MEM_LOG2;
    if (!(s->mem = dd_slots_alloc(dd_slots(s)))) {
        log_error("dedupe: %s: out of memory rebuilding it", s->path);
        return -ENOMEM;
    }
    s->in_mem = 1;
    size_t bufsize = (1u << 20) + DD_REC + DD_KEY_MAX;
    char *buf = malloc(bufsize);
    if (!buf) {
        log_error("dedupe: %s: out of memory rebuilding it", s->path);
        return -ENOMEM;
    }
    uint64_t base = s->key_end; /* file offset of buf[0] */
    size_t have = 0, pos = 0;
    const char *why = NULL;
    for (;;) {
        size_t left = have - pos, need = DD_REC;
        uint32_t hdr[3] = {0, 0, 0};
        if (left >= DD_REC) {
            memcpy(hdr, buf + pos, DD_REC);
            if (hdr[0] == 0 || hdr[0] > DD_KEY_MAX) {
                why = "damaged";
                break;
            }
            need = DD_REC + hdr[0];
        }
        if (left < need) { /* read on, behind what is left */
            memmove(buf, buf + pos, left);
            base += pos;
            have = left;
            pos = 0;
            ssize_t got = dd_pread_full(s->fd, buf + have, bufsize - have, base + have);
            if (got <= 0) {
                if (got < 0 || left) why = got < 0 ? "unreadable" : "cut short";
                break;
            }
            have += (size_t)got;
            continue;
        }
        if (crc32c(0, buf + pos + 8, 4 + (size_t)hdr[0]) != hdr[1]) {
            why = "damaged";
            break;
        }
        const char *key = buf + pos + DD_REC;
        uint64_t hash = dd_hash(key, hdr[0]);
        if (dd_mem_insert(s, hash, key, hdr[0], base + pos, hdr[2]) < 0) {
            why = "beyond memory";
            break;
        }
        dd_bloom_add(s, hash);
        s->entries++;
        if (hdr[2] > s->t_last) s->t_last = hdr[2];
        pos += need;
    }
    uint64_t off = base + pos;
    free(buf);
    s->key_end = off;
    if (why) {
        s->damage_logged = 1;
        d->damaged++;
        log_warn("dedupe: %s: key record at offset %" PRIu64 " %s (a write lost in a crash): the "
                 "%" PRIu64 " bytes from there are dropped; the journal puts back the keys of the "
                 "events it still holds",
                 s->path, off, why, size - off);
        if (ftruncate(s->fd, (off_t)off) < 0)
            log_error("dedupe: %s: cutting off the tail: %s", s->path, strerror(errno));
    }
    return 0;
}

/* dd_seg_read opens an existing segment at open: a sealed one's filter is rebuilt from its
 * slots; an unsealed one (it was taking keys when ingest stopped) from its key records, and it is
 * sealed now. Returns the segment, or NULL when the file was set aside (logged). */
static dd_seg_t *dd_seg_read(ingest_dedupe_t *d, uint64_t no, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    dd_header_t h;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_error("dedupe: %s: %s; its keys are forgotten", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    char err[512];
    if (fsmode_tighten_file(path, err, sizeof err) < 0) log_warn("dedupe: %s", err);
    ssize_t got = dd_pread_full(fd, &h, sizeof h, 0);
    if (got != (ssize_t)sizeof h || memcmp(h.magic, DD_MAGIC, 8) != 0 || h.log2 < 4 ||
        h.log2 > 28 || h.sealed > 1 || (h.sealed && (h.tlog2 < 4 || h.tlog2 > h.log2))) {
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.damaged", path);
        log_error("dedupe: %s: not an index segment (header %s, %lld bytes); renamed to %s and "
                  "its keys forgotten; the journal puts back the keys of the events it holds",
                  path, got < (ssize_t)sizeof h ? "cut short" : "damaged", (long long)st.st_size,
                  aside);
        close(fd);
        if (rename(path, aside) < 0) unlink(path);
        return NULL;
    }
    dd_seg_t *s = dd_seg_alloc(d, no, h.log2);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->fd = fd;
    s->t_first = s->t_last = h.t_first;
    if (h.sealed) s->tlog2 = h.tlog2;
    uint64_t table_end = DD_HEADER + dd_region(s) * DD_SLOT;
    if ((uint64_t)st.st_size < table_end) {
        log_error("dedupe: %s: cut short at %lld bytes (%" PRIu64 " expected); the slots past "
                  "that are empty now and the keys forgotten; the journal puts back the keys of "
                  "the events it holds",
                  path, (long long)st.st_size, table_end);
        if (ftruncate(fd, (off_t)table_end) < 0)
            log_error("dedupe: %s: extending: %s", path, strerror(errno));
        st.st_size = (off_t)table_end;
        h.sealed = 0;
    }
    s->key_end = table_end;
    if (!h.sealed) { /* dd_load seals it, or goes on filling it */
        if (dd_seg_rebuild(d, s, (uint64_t)st.st_size) < 0) {
            dd_seg_free(s); /* its keys come back from the journal's replay */
            return NULL;
        }
        return s;
    }
    s->key_end = (uint64_t)st.st_size;
    size_t chunk = 65536;
    dd_slot_t *buf = malloc(chunk * DD_SLOT);
    uint64_t dangling = 0;
    for (uint64_t i = 0; buf && i < dd_slots(s); i += chunk) {
        uint64_t want = dd_slots(s) - i < chunk ? dd_slots(s) - i : chunk;
        got = dd_pread_full(fd, buf, want * DD_SLOT, DD_HEADER + i * DD_SLOT);
        if (got < 0) break;
        for (size_t k = 0; k < (size_t)got / DD_SLOT; k++) {
            if (!buf[k].hash) continue;
            s->entries++;
            if (buf[k].time > s->t_last) s->t_last = buf[k].time;
            if ((uint64_t)buf[k].off + DD_REC > s->key_end || buf[k].off < table_end) dangling++;
            dd_bloom_add(s, buf[k].hash);
        }
    }
    free(buf);
    if (dangling) {
        s->damage_logged = 1;
        d->damaged += dangling;
        log_warn("dedupe: %s: %" PRIu64 " slots name keys past the end of the file (writes cut "
                 "short by a crash); they are ignored, and the journal puts back the keys of the "
                 "events it still holds",
                 path, dangling);
    }
    return s;
}

/* dd_cmp_u64 orders segment numbers. */
static int dd_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* dd_load reads every segment in the directory, oldest first. Returns 0 or a negative errno. */
static int dd_load(ingest_dedupe_t *d, char *err, size_t errlen)
{
    DIR *dir = opendir(d->dir);
    if (!dir) {
        snprintf(err, errlen, "%s: %s", d->dir, strerror(errno));
        return -errno;
    }
    uint64_t *nos = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        uint64_t no;
        char tail[8];
        if (sscanf(de->d_name, "seg-%16" SCNx64 ".dd%1s", &no, tail) != 2 ||
            strcmp(tail, "x") != 0 || strlen(de->d_name) != 24)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *v = realloc(nos, cap * sizeof *v);
            if (!v) {
                closedir(dir);
                free(nos);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            nos = v;
        }
        nos[n++] = no;
    }
    closedir(dir);
    if (n) qsort(nos, n, sizeof *nos, dd_cmp_u64);
    dd_seg_t **tail = &d->segs;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, DD_NAME_FMT, nos[i]);
        if (nos[i] >= d->next_no) d->next_no = nos[i] + 1;
        dd_seg_t *s = dd_seg_read(d, nos[i], name);
        if (!s) continue;
        *tail = s;
        tail = &s->next;
    }
    free(nos);
    /* Segments that were taking keys when ingest stopped are sealed now, but the newest one goes
     * on taking keys while it may (a restart does not start a new file). */
    uint64_t now = dd_now(d);
    for (dd_seg_t *s = d->segs; s; s = s->next) {
        if (!s->mem) continue;
        if (!s->next && dd_fits(d, s, 0, now)) {
            d->hot = s;
            break;
        }
        char e2[512];
        if (dd_seal_write(s, d->o.do_fsync, e2, sizeof e2) < 0) {
            log_error("dedupe: %s; its slots stay in memory", e2);
            continue;
        }
        dd_slots_free(s);
    }
    return 0;
}

/* --- the pending table: keys held or committed and not yet written --- */

static ingest_dedupe_entry_t *dd_tab_find(const ingest_dedupe_t *d, uint64_t hash, const char *key,
                                          size_t len)
{
    if (!d->tabcap) return NULL;
    for (ingest_dedupe_entry_t *e = d->tab[hash & (d->tabcap - 1)]; e; e = e->chain)
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) return e;
    return NULL;
}

/* dd_tab_add puts e in the table (taking the table's reference). Returns 0 or -ENOMEM. */
static int dd_tab_add(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if ((d->tabn + 1) * 2 > d->tabcap) { /* at most half full: mostly one probe */
        size_t cap = d->tabcap ? d->tabcap * 2 : 1024;
        ingest_dedupe_entry_t **t = calloc(cap, sizeof *t);
        if (!t) return -ENOMEM;
        for (size_t i = 0; i < d->tabcap; i++) {
            ingest_dedupe_entry_t *x = d->tab[i], *next;
            for (; x; x = next) {
                next = x->chain;
                x->chain = t[x->hash & (cap - 1)];
                t[x->hash & (cap - 1)] = x;
            }
        }
        free(d->tab);
        d->tab = t;
        d->tabcap = cap;
    }
    ingest_dedupe_entry_t **b = &d->tab[e->hash & (d->tabcap - 1)];
    e->chain = *b;
    *b = e;
    e->in_table = 1;
    e->refs++;
    d->tabn++;
    return 0;
}

/* dd_tab_remove takes e out of the table and drops the table's reference. */
static void dd_tab_remove(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (!e->in_table) return;
    ingest_dedupe_entry_t **pp = &d->tab[e->hash & (d->tabcap - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp) *pp = e->chain;
    e->in_table = 0;
    d->tabn--;
    if (d->tabn == 0 && d->tabcap > 65536) { /* a burst is over: give the array back */
        free(d->tab);
        d->tab = NULL;
        d->tabcap = 0;
    }
    ingest_dedupe_unref(e);
}

/* Pending entries come and go at the event rate: short ones are reused from a free list (loop
 * thread only, shared by every index of the process). */
static ingest_dedupe_entry_t *dd_pool;
static size_t dd_pool_n;

static ingest_dedupe_entry_t *dd_entry_new(uint64_t hash, const char *key, size_t len)
{
    ingest_dedupe_entry_t *e;
    int pooled = sizeof *e + len <= DD_ENTRY_BYTES;
    if (pooled && dd_pool) {
        e = dd_pool;
        dd_pool = e->chain;
        dd_pool_n--;
        memset(e, 0, sizeof *e);
    } else if (!(e = calloc(1, pooled ? DD_ENTRY_BYTES : sizeof *e + len))) {
        return NULL;
    }
    e->pooled = pooled;
    e->hash = hash;
    e->len = (uint32_t)len;
    memcpy(e->key, key, len);
    return e;
}

/* dd_entry_free puts an entry back on the free list or frees it. */
static void dd_entry_free(ingest_dedupe_entry_t *e)
{
    if (e->pooled && dd_pool_n < DD_POOL_MAX) {
        e->chain = dd_pool;
        dd_pool = e;
        dd_pool_n++;
        return;
    }
    free(e);
}

/* --- write batches --- */

static void dd_batch_start(ingest_dedupe_t *d);

/* dd_on_timer ends a batch window or retries a failed batch. */
static void dd_on_timer(uv_timer_t *t)
{
    dd_batch_start(t->data);
}

/* dd_schedule starts the batch window when keys wait and no batch is out. */
static void dd_schedule(ingest_dedupe_t *d)
{
    if (d->closing) {
        if (!d->writing) dd_batch_start(d);
        return;
    }
    if (d->writing || !d->qn || uv_is_active((uv_handle_t *)&d->timer)) return;
    uv_timer_start(&d->timer, dd_on_timer, d->o.batch_ms, 0);
}

/* dd_batch_run writes a batch on the worker thread: each segment's new key records in one write
 * (their offsets are consecutive), their slots into the segment's memory and their filter bits,
 * then fdatasync. */
static void dd_batch_run(worker_job_t *job)
{
    dd_batch_t *b = (dd_batch_t *)job;
    b->rc = 0;
    for (int si = 0; si < b->nsegs && b->rc == 0; si++) {
        dd_seg_t *s = b->segs[si];
        uint64_t first = UINT64_MAX, end = 0;
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            if (e->off < first) first = e->off;
            if (e->off + DD_REC + e->len > end) end = e->off + DD_REC + e->len;
        }
        char *buf = malloc((size_t)(end - first));
        if (!buf) {
            b->rc = -ENOMEM;
            snprintf(b->err, sizeof b->err, "out of memory");
            break;
        }
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            char *rec = buf + (e->off - first);
            uint32_t hdr[3] = {e->len, 0, e->time};
            memcpy(rec, hdr, DD_REC);
            memcpy(rec + DD_REC, e->key, e->len);
            hdr[1] = crc32c(0, rec + 8, 4 + (size_t)e->len);
            memcpy(rec + 4, &hdr[1], 4);
        }
        b->rc = dd_pwrite_full(s->fd, buf, (size_t)(end - first), first);
        free(buf);
        if (b->rc < 0) {
            snprintf(b->err, sizeof b->err, "%s: writing keys: %s", s->path, strerror(-b->rc));
            break;
        }
        /* the keys are written: their slots and filter bits, here off the loop (the loop finds
         * them in its pending table until this batch is done) */
        for (ingest_dedupe_entry_t *e = b->head; e; e = e->qnext) {
            if (e->seg != s) continue;
            pthread_mutex_lock(&b->d->mu); /* per key: a lookup never waits for a whole batch */
            int rc = dd_mem_insert(s, e->hash, e->key, e->len, e->off, e->time);
            pthread_mutex_unlock(&b->d->mu);
            if (rc < 0) {
                b->rc = rc;
                snprintf(b->err, sizeof b->err, "%s: out of memory for its slots", s->path);
                break;
            }
            dd_bloom_add(s, e->hash);
        }
        if (b->rc == 0 && b->d->o.do_fsync && fdatasync(s->fd) < 0) {
            b->rc = -errno;
            snprintf(b->err, sizeof b->err, "%s: fdatasync: %s", s->path, strerror(errno));
        }
    }
    if (b->rc == 0 && b->sync_dir && b->d->o.do_fsync && fsync(b->d->dir_fd) < 0) {
        b->rc = -errno;
        snprintf(b->err, sizeof b->err, "%s: fsync: %s", b->d->dir, strerror(errno));
    }
}

/* dd_batch_done takes a batch's result on the loop: written keys leave the pending table (the
 * segments answer for them now); after a failure they go back to the queue, retried later. */
static void dd_batch_done(worker_job_t *job)
{
    dd_batch_t *b = (dd_batch_t *)job;
    ingest_dedupe_t *d = b->d;
    d->writing = 0;
    for (int i = 0; i < b->nsegs; i++) {
        b->segs[i]->busy--;
        if (b->rc == 0 && b->sync_dir) b->segs[i]->created = 0;
    }
    ingest_dedupe_entry_t *e = b->head, *next;
    b->head = NULL;
    if (b->rc < 0) {
        unsigned long held = 0;
        if (log_limit_pass(&d->fail_log, 10000, &held))
            log_error("dedupe: %s; %" PRIu64 " keys wait in memory and are retried (%lu more "
                      "failures not logged)",
                      b->err, b->n, held);
        ingest_dedupe_entry_t **tail = &e;
        while (*tail) {
            (*tail)->seg->entries--;
            (*tail)->seg = NULL;
            tail = &(*tail)->qnext;
        }
        *tail = d->q; /* back at the head, in order */
        if (!d->q) d->qtail = tail;
        d->q = e;
        d->qn += b->n;
        if (!d->closing) {
            uv_timer_start(&d->timer, dd_on_timer, DD_RETRY_MS, 0);
            return;
        }
        /* closing: the keys stay unwritten; the journal puts them back at the next start */
        while ((e = d->q)) {
            d->q = e->qnext;
            dd_tab_remove(d, e);
        }
        d->qn = 0;
        d->qtail = &d->q;
        return;
    }
    for (; e; e = next) {
        next = e->qnext;
        e->qnext = NULL;
        dd_tab_remove(d, e);
    }
    d->written += b->n;
    if (d->o.on_written) d->o.on_written(d->o.written_arg);
    if (d->qn) dd_batch_start(d); /* they waited through this batch already */
}

/* A segment being sealed on the worker thread. */
typedef struct dd_seal {
    worker_job_t job; /* first */
    ingest_dedupe_t *d;
    dd_seg_t *s;
    int rc;
    char err[512];
} dd_seal_t;

/* dd_seal_run writes the slots and the sealed flag, on the worker thread. */
static void dd_seal_run(worker_job_t *job)
{
    dd_seal_t *j = (dd_seal_t *)job;
    j->rc = dd_seal_write(j->s, j->d->o.do_fsync, j->err, sizeof j->err);
}

/* dd_seal_done: the segment is read from disk from now on; its slots leave memory. A failed
 * seal keeps them in memory (the next start rebuilds the segment from its keys). */
static void dd_seal_done(worker_job_t *job)
{
    dd_seal_t *j = (dd_seal_t *)job;
    j->s->busy--;
    if (j->rc < 0) {
        log_error("dedupe: %s; its slots stay in memory", j->err);
    } else {
        dd_slots_free(j->s);
    }
    free(j);
}

/* dd_seal_queued submits a seal for each segment that took its last key. */
static void dd_seal_queued(ingest_dedupe_t *d)
{
    for (dd_seg_t *s = d->segs; s; s = s->next) {
        if (!s->to_seal) continue;
        dd_seal_t *j = calloc(1, sizeof *j);
        if (!j) return; /* tried again after the next batch */
        s->to_seal = 0;
        s->busy++;
        j->d = d;
        j->s = s;
        j->job.run = dd_seal_run;
        j->job.done = dd_seal_done;
        worker_submit(d->worker, &j->job);
    }
}

/* dd_batch_start hands the queued keys (up to DD_BATCH_MAX) to the worker: each gets its
 * segment, key offset and filter bits here on the loop. */
static void dd_batch_start(ingest_dedupe_t *d)
{
    uv_timer_stop(&d->timer);
    if (d->writing || !d->qn) return;
    dd_batch_t *b = &d->batch;
    uint64_t now = dd_now(d);
    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    b->nsegs = 0;
    b->sync_dir = 0;
    while (d->q && b->n < DD_BATCH_MAX) {
        ingest_dedupe_entry_t *e = d->q;
        dd_seg_t *s = dd_hot(d, e->len, now);
        if (!s) break;
        int si = 0;
        while (si < b->nsegs && b->segs[si] != s)
            si++;
        if (si == b->nsegs) {
            if (b->nsegs == DD_BATCH_SEGS) break;
            b->segs[b->nsegs++] = s;
            s->busy++;
            b->sync_dir |= s->created;
        }
        d->q = e->qnext;
        if (!d->q) d->qtail = &d->q;
        d->qn--;
        e->qnext = NULL;
        e->seg = s;
        e->off = s->key_end;
        s->key_end += DD_REC + e->len;
        s->entries++;
        if (e->time > s->t_last) s->t_last = e->time;

        *b->tail = e;
        b->tail = &e->qnext;
        b->n++;
    }
    if (!b->n) { /* no segment could be created: try again later */
        if (!d->closing) uv_timer_start(&d->timer, dd_on_timer, DD_RETRY_MS, 0);
        return;
    }
    d->writing = 1;
    worker_submit(d->worker, &b->job); /* runs inline once the worker is closed */
    dd_seal_queued(d);                 /* after the batch that writes the last keys */
}

/* dd_enqueue queues a committed entry (in the table) for the next batch. */
static void dd_enqueue(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    e->qnext = NULL;
    *d->qtail = e;
    d->qtail = &e->qnext;
    d->qn++;
    d->queued++;
    dd_schedule(d);
}

/* --- the interface --- */

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
    d->batch.d = d;
    pthread_mutex_init(&d->mu, NULL);
    d->batch.job.run = dd_batch_run;
    d->batch.job.done = dd_batch_done;
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
    if (rc == 0) rc = dd_load(d, err, errlen);
    if (rc == 0 && (rc = worker_init(&d->worker, loop)) < 0)
        snprintf(err, errlen, "starting the dedupe thread: %s", strerror(-rc));
    if (rc < 0) {
        while (d->segs) {
            dd_seg_t *s = d->segs;
            d->segs = s->next;
            dd_seg_free(s);
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
    ingest_dedupe_entry_t *e = dd_tab_find(d, hash, key, len);
    if (e) {
        if (e->state == DD_COMMITTED) return INGEST_DEDUPE_DUP;
        e->refs++;
        *pending = e;
        return INGEST_DEDUPE_PENDING;
    }
    for (dd_seg_t *s = d->segs; s; s = s->next)
        if (dd_live(d, s->t_last, now) && dd_seg_lookup(d, s, hash, key, (uint32_t)len, now))
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
    ingest_dedupe_entry_t *e = dd_entry_new(hash, key, len);
    if (!e) return NULL;
    e->refs = 1;
    e->state = DD_HELD;
    if (dd_tab_add(d, e) < 0) {
        dd_entry_free(e);
        return NULL;
    }
    d->held++;
    return e;
}

ingest_dedupe_entry_t *ingest_dedupe_hold(ingest_dedupe_t *d, const char *key, size_t len)
{
    return dd_hold(d, dd_hash(key, len), key, len);
}

int ingest_dedupe_claim(ingest_dedupe_t *d, const char *key, size_t len, ingest_dedupe_entry_t **e)
{
    uint64_t hash = dd_hash(key, len);
    int st = dd_check(d, hash, key, len, e);
    if (st == INGEST_DEDUPE_NEW) *e = dd_hold(d, hash, key, len);
    return st;
}

void ingest_dedupe_commit(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (e->state != DD_HELD) return;
    e->state = DD_COMMITTED;
    e->time = (uint32_t)dd_now(d);
    d->held--;
    dd_enqueue(d, e);
}

void ingest_dedupe_abort(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (e->state != DD_HELD) return;
    e->state = DD_ABORTED;
    d->held--;
    dd_tab_remove(d, e);
}

int ingest_dedupe_accepted(const ingest_dedupe_entry_t *e)
{
    return e->state;
}

void ingest_dedupe_unref(ingest_dedupe_entry_t *e)
{
    if (e && --e->refs == 0) dd_entry_free(e);
}

int ingest_dedupe_replay(ingest_dedupe_t *d, const char *key, size_t len, uint64_t time_s)
{
    uint64_t now = dd_now(d);
    if (!dd_live(d, time_s, now)) return 0;
    ingest_dedupe_entry_t *pending;
    int st = ingest_dedupe_check(d, key, len, &pending);
    if (pending) ingest_dedupe_unref(pending);
    if (st != INGEST_DEDUPE_NEW) return 0;
    ingest_dedupe_entry_t *e = dd_entry_new(dd_hash(key, len), key, len);
    if (!e) return -ENOMEM;
    e->state = DD_COMMITTED;
    e->time = (uint32_t)time_s;
    if (dd_tab_add(d, e) < 0) {
        dd_entry_free(e);
        return -ENOMEM;
    }
    dd_enqueue(d, e);
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
        dd_seg_free(s);
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
        dd_batch_start(d);
    for (size_t i = 0; i < d->tabcap; i++) {
        ingest_dedupe_entry_t *e = d->tab[i], *next;
        for (; e; e = next) {
            next = e->chain;
            e->in_table = 0;
            ingest_dedupe_unref(e);
        }
    }
    free(d->tab);
    d->tab = NULL;
    d->tabcap = d->tabn = 0;
    while (d->segs) {
        dd_seg_t *s = d->segs;
        d->segs = s->next;
        dd_seg_free(s);
    }
    if (d->dir_fd >= 0) close(d->dir_fd);
    free(d->dir);
    d->dir = NULL;
    uv_close((uv_handle_t *)&d->timer, dd_closed);
    uv_close((uv_handle_t *)&d->cron, dd_closed);
}
