/* dedupe.h - the insides of the dedupe index (ingest_dedupe.h), shared by its files: the
 * segment files (dedupe_seg.c), reading them at open (dedupe_load.c), the pending table
 * (dedupe_tab.c), write batches (dedupe_batch.c) and the interface (ingest_dedupe.c).
 *
 * A segment file: a 4 KiB header, 2^log2 slots of 16 bytes, then the keys, appended. A slot is
 * {u64 hash (0: empty), u32 key offset, u32 accept time in seconds}; a key record is {u32
 * length, u32 crc32c of time and key, u32 accept time, key}. While a segment takes new keys only
 * its key records are written (one append per batch); its slots live in memory and are written
 * once, when it is sealed (header flag). An unsealed segment found at open (the one that was
 * taking keys at a crash or stop) is rebuilt from its key records, and sealed then unless it is
 * the newest and has room (it goes on taking keys). Native byte order: the files never leave
 * the host. */
#ifndef HL_INGEST_DEDUPE_INT_H
#define HL_INGEST_DEDUPE_INT_H

#include "ingest_dedupe.h"

#include "util/log.h"
#include "util/worker.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

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

/* A pending-table slot: the entry and its hash (a probe compares hashes without the entry). */
typedef struct dd_tslot {
    uint64_t hash;
    ingest_dedupe_entry_t *e; /* NULL: empty */
} dd_tslot_t;

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
    ingest_dedupe_entry_t *next;  /* the free list of short entries */
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
    dd_tslot_t *tab; /* the pending table: open addressing, linear probing */
    size_t tabcap, tabn, held;
    ingest_dedupe_entry_t *q, **qtail;
    size_t qn;
    dd_batch_t batch;
    int writing;
    pthread_mutex_t mu; /* the in-memory slots: the worker inserts, the loop looks up */
    uint64_t queued, written, damaged;
    log_limit_t fail_log;
};

/* --- hashing and filters --- */

/* dd_mix is the murmur3 finalizer. */
static inline uint64_t dd_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* dd_hash: FNV-1a with a finalizer; never 0 (an empty slot). */
static inline uint64_t dd_hash(const char *key, size_t n)
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
static inline uint64_t *dd_bloom_block(const dd_seg_t *s, uint64_t hash, uint64_t *h2)
{
    *h2 = dd_mix(hash ^ 0x9e3779b97f4a7c15ull);
    size_t b = (size_t)(((*h2 >> 32) * (uint64_t)s->nblocks) >> 32);
    return s->bloom + b * 8;
}

/* dd_bloom_add sets a key's 6 bits in its block. */
static inline void dd_bloom_add(dd_seg_t *s, uint64_t hash)
{
    uint64_t h2, *blk = dd_bloom_block(s, hash, &h2);
    for (int i = 0; i < 6; i++) {
        unsigned bit = (unsigned)(h2 >> (9 * i)) & 511u;
        __atomic_fetch_or(&blk[bit >> 6], 1ull << (bit & 63), __ATOMIC_RELAXED); /* worker */
    }
}

/* dd_bloom_has: 0 when the key is surely not in the segment. */
static inline int dd_bloom_has(const dd_seg_t *s, uint64_t hash)
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
static inline uint64_t dd_now(const ingest_dedupe_t *d)
{
    if (d->o.now_s) return d->o.now_s(d->o.now_arg);
    return (uint64_t)time(NULL);
}

/* dd_live: a key accepted at t is still within the window at now. */
static inline int dd_live(const ingest_dedupe_t *d, uint64_t t, uint64_t now)
{
    return t + d->o.window_s > now;
}

/* --- segments --- */

/* dd_slots: the slot table's size; dd_region: the room reserved for it in the file. */
static inline uint64_t dd_slots(const dd_seg_t *s)
{
    return 1ull << s->tlog2;
}

static inline uint64_t dd_region(const dd_seg_t *s)
{
    return 1ull << s->log2;
}

/* dedupe_seg.c */
dd_seg_t *dedupe_seg_alloc(const ingest_dedupe_t *d, uint64_t no, uint32_t log2);
void dedupe_seg_free(dd_seg_t *s);
dd_slot_t *dedupe_slots_alloc(uint64_t n);
void dedupe_slots_free(dd_seg_t *s);
ssize_t dedupe_pread_full(int fd, void *buf, size_t n, uint64_t off);
int dedupe_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
int dedupe_seg_lookup(ingest_dedupe_t *d, dd_seg_t *s, uint64_t hash, const char *key, uint32_t len,
                      uint64_t now);
int dedupe_seg_fits(const ingest_dedupe_t *d, const dd_seg_t *s, uint32_t len, uint64_t now);
dd_seg_t *dedupe_seg_hot(ingest_dedupe_t *d, uint32_t len, uint64_t now);
int dedupe_seg_insert(dd_seg_t *s, uint64_t hash, const char *key, uint32_t len, uint64_t off,
                      uint32_t time_s);
int dedupe_seg_seal(dd_seg_t *s, int do_fsync, char *err, size_t errlen);

/* dedupe_load.c: dedupe_load reads every segment in the directory, oldest first. Returns 0 or a
 * negative errno with err. */
int dedupe_load(ingest_dedupe_t *d, char *err, size_t errlen);

/* dedupe_tab.c: the pending table (keys held or committed and not yet written) and its
 * entries. dedupe_tab_add takes a reference for the table (0 or -ENOMEM); dedupe_tab_remove
 * drops it; dedupe_tab_clear drops every one (at close). Loop thread. */
ingest_dedupe_entry_t *dedupe_tab_find(const ingest_dedupe_t *d, uint64_t hash, const char *key,
                                       size_t len);
void dedupe_tab_prefetch(const ingest_dedupe_t *d, uint64_t hash);
int dedupe_tab_add(ingest_dedupe_t *d, ingest_dedupe_entry_t *e);
void dedupe_tab_remove(ingest_dedupe_t *d, ingest_dedupe_entry_t *e);
void dedupe_tab_clear(ingest_dedupe_t *d);
ingest_dedupe_entry_t *dedupe_entry_new(uint64_t hash, const char *key, size_t len);
void dedupe_entry_free(ingest_dedupe_entry_t *e);

/* dedupe_batch.c: write batches and seals on the worker thread. dedupe_batch_init sets up
 * d->batch; dedupe_enqueue queues a committed entry (in the table) for the next batch;
 * dedupe_batch_start hands the queued keys to the worker now. */
void dedupe_batch_init(ingest_dedupe_t *d);
void dedupe_enqueue(ingest_dedupe_t *d, ingest_dedupe_entry_t *e);
void dedupe_batch_start(ingest_dedupe_t *d);

#endif
