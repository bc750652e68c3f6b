/* ingest_dedupe.h - the dedupe index of hook-ingest: which (project_id, id) keys were accepted
 * within the window. Exact (the full key is verified on disk), bounded in memory (a blocked Bloom
 * filter per segment, the keys on disk read with pread), expired by whole time-sliced segments. */
#ifndef HL_INGEST_DEDUPE_H
#define HL_INGEST_DEDUPE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ingest_dedupe ingest_dedupe_t;
typedef struct ingest_dedupe_entry ingest_dedupe_entry_t;

typedef struct ingest_dedupe_opts {
    const char *dir;   /* the index directory, created 0700 (DATA/dedupe) */
    unsigned window_s; /* remember keys this long (> 0) */
    int do_fsync;      /* fdatasync the index files after each write batch */
    unsigned batch_ms; /* gather writes this long before a batch (0: next loop iteration) */
    unsigned seg_log2; /* 0: default; slots per segment = 2^seg_log2 (tests use small ones) */
    uint64_t (*now_s)(void *arg); /* wall-clock seconds (NULL: time(2)); tests fake it */
    void *now_arg;
    void (*on_written)(void *arg); /* after each write batch: ingest_dedupe_written grew */
    void *written_arg;
} ingest_dedupe_opts_t;

/* ingest_dedupe_open opens (creating) the index in opts->dir: every segment file is read once to
 * rebuild its filter; a segment wholly outside the window is deleted; a damaged one is logged
 * with its path and what is kept of it. Returns 0 or a negative errno with err. */
int ingest_dedupe_open(ingest_dedupe_t **dp, uv_loop_t *loop, const ingest_dedupe_opts_t *opts,
                       char *err, size_t errlen);

/* What ingest_dedupe_check found. */
enum {
    INGEST_DEDUPE_NEW = 0, /* never accepted within the window */
    INGEST_DEDUPE_DUP,     /* accepted: its event is durable */
    INGEST_DEDUPE_PENDING, /* accepted, its journal sync is under way: *pending names it */
};

/* ingest_dedupe_check looks key up: in the entries not yet written, then in every segment
 * within the window (a filter, then the slots and the key itself read from disk). For PENDING,
 * *pending is the first copy's entry with a reference taken (ingest_dedupe_unref): its state
 * says, once its sync is answered, whether the first copy was accepted. */
int ingest_dedupe_check(ingest_dedupe_t *d, const char *key, size_t len,
                        ingest_dedupe_entry_t **pending);

/* ingest_dedupe_hold remembers key as being journaled now (state HELD), so that a second copy is
 * PENDING. Returns the entry with one reference for the caller, or NULL (out of memory: the
 * event is then simply not deduplicated against copies that arrive during its sync). */
ingest_dedupe_entry_t *ingest_dedupe_hold(ingest_dedupe_t *d, const char *key, size_t len);
/* ingest_dedupe_claim is check, then hold when NEW (one hash, one table probe): for NEW, *e is
 * the held entry (or NULL when out of memory); for PENDING the first copy's entry; for DUP
 * NULL. The caller owns one reference to *e; a NEW key whose event then fails to be journaled
 * is given back with ingest_dedupe_abort. */
int ingest_dedupe_claim(ingest_dedupe_t *d, const char *key, size_t len, ingest_dedupe_entry_t **e);
/* ingest_dedupe_prefetch returns key's hash and starts loading the memory its claim reads (its
 * pending-table slot, its filter blocks): called before other work (normalizing the event), the
 * claim then finds them in cache. ingest_dedupe_claim_hashed is claim with that hash. */
uint64_t ingest_dedupe_prefetch(const ingest_dedupe_t *d, const char *key, size_t len);
int ingest_dedupe_claim_hashed(ingest_dedupe_t *d, const char *key, size_t len, uint64_t hash,
                               ingest_dedupe_entry_t **e);
/* ingest_dedupe_commit: the held entry's event is durable in the journal; the key is written to
 * the index by the next batch. ingest_dedupe_abort: its sync failed; the key is forgotten (a
 * retry is new). Neither drops the caller's reference. */
void ingest_dedupe_commit(ingest_dedupe_t *d, ingest_dedupe_entry_t *e);
void ingest_dedupe_abort(ingest_dedupe_t *d, ingest_dedupe_entry_t *e);
/* ingest_dedupe_accepted: 1 once the entry was committed, 0 while held, -1 after an abort. */
int ingest_dedupe_accepted(const ingest_dedupe_entry_t *e);
/* ingest_dedupe_unref drops a reference (the entry is freed with its last one). */
void ingest_dedupe_unref(ingest_dedupe_entry_t *e);

/* ingest_dedupe_replay puts back the key of an event found in the journal at start, accepted at
 * time_s: written again by the next batch unless the index already holds it (a write lost with
 * a power cut is so repaired) or it is older than the window. Returns 0 or -ENOMEM. */
int ingest_dedupe_replay(ingest_dedupe_t *d, const char *key, size_t len, uint64_t time_s);

/* ingest_dedupe_queued counts the keys committed or replayed so far; ingest_dedupe_written the
 * ones of them written (and fdatasynced per do_fsync). Keys are written in that order, so an
 * event whose key was queued as number n is in the index once written >= n. */
uint64_t ingest_dedupe_queued(const ingest_dedupe_t *d);
uint64_t ingest_dedupe_written(const ingest_dedupe_t *d);
/* ingest_dedupe_backlog: keys committed and not yet written (flow control). */
size_t ingest_dedupe_backlog(const ingest_dedupe_t *d);

/* ingest_dedupe_expire drops the segments wholly outside the window (a timer does it every
 * second; tests call it after moving their clock). Returns how many were dropped. */
int ingest_dedupe_expire(ingest_dedupe_t *d);

typedef struct ingest_dedupe_stats {
    uint64_t keys;       /* remembered: in the segments within the window, and pending */
    uint64_t segments;   /* segment files */
    uint64_t disk_bytes; /* their size */
    uint64_t filter_bytes;
    uint64_t damaged; /* torn or damaged records met (logged) */
} ingest_dedupe_stats_t;
void ingest_dedupe_get_stats(const ingest_dedupe_t *d, ingest_dedupe_stats_t *st);

/* ingest_dedupe_close writes what is committed and not yet written (on the calling thread),
 * closes the files and frees the index once its timer is closed. Entries still referenced stay
 * valid for ingest_dedupe_accepted/unref only. */
void ingest_dedupe_close(ingest_dedupe_t *d);

/* ingest_dedupe_hash_for_tests, when set, replaces the key hash (tests force collisions). */
extern uint64_t (*ingest_dedupe_hash_for_tests)(const void *key, size_t len);

#endif
