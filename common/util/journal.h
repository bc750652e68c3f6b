/* journal.h - append-only segment files of CRC-checked records, with explicit sync for group
 * commit. Layout: DIR/NAME-<16 hex digits>.jnl, each starting with an 8-byte header
 * "HLJNL1\n\0"; a record is [u32 le length][u32 le crc32c of payload][payload]. */
#ifndef HL_JOURNAL_H
#define HL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct journal journal_t;

/* A record position: segment number in the high 32 bits, byte offset in the low 32. */
typedef uint64_t journal_pos_t;

#define JOURNAL_SEGMENT_MAX_DEFAULT (64u << 20)
#define JOURNAL_RECORD_MAX (32u << 20)

/* journal_open opens (creating DIR if needed) the journal NAME. It does not read records:
 * call journal_replay next, once, before appending. Returns 0 or a negative errno with err. */
int journal_open(journal_t **jp, const char *dir, const char *name, size_t segment_max, char *err,
                 size_t errlen);

/* journal_replay calls cb for every intact record of every segment, oldest first. A torn or
 * corrupt record (short header, short payload, crc mismatch, length over JOURNAL_RECORD_MAX)
 * ends its segment: the tail from there is logged with the segment path and offset and cut off
 * (truncated) if it is in the newest segment; in an older segment the rest of that segment is
 * skipped and logged. Each replayed record counts as live in its segment (see journal_release).
 * cb returns 0 to go on or a negative errno to stop (returned). Returns 0 or a negative errno. */
typedef int (*journal_replay_cb)(void *arg, journal_pos_t pos, const void *rec, size_t len);
int journal_replay(journal_t *j, journal_replay_cb cb, void *arg);

/* journal_append buffers one record (written out by a batch, see below) and returns
 * its position. A record appended with live=1 counts toward its segment's live count; markers
 * (acks) are appended with live=0. Rolls to a new segment when the current one is full.
 * Returns 0 or a negative errno (-ENOSPC, -EFBIG, -EIO) with err filled. */
int journal_append(journal_t *j, const void *rec, size_t len, int live, journal_pos_t *pos,
                   char *err, size_t errlen);

/* journal_unappend takes back the record just appended at pos (live as given then), while it is
 * still buffered: for an all-or-nothing group of appends. Returns 0, or -EINVAL when pos is not
 * the newest record or was already written. */
int journal_unappend(journal_t *j, journal_pos_t pos, int live);

/* Writing buffered records, in three steps so that the write and fdatasync can run on another
 * thread (committer.c) while the loop goes on appending:
 *   journal_batch_take (loop thread) detaches everything buffered into a batch, opening or
 *     creating the segment files it goes to; NULL when nothing is buffered, a batch is already
 *     out, or memory ran short (the records then stay buffered). At most one batch is out.
 *   journal_batch_write (any thread) writes the batch and, when do_fsync, fdatasyncs every file
 *     it touched and the directory after a segment was created. It touches nothing but the
 *     batch. Returns 0 or a negative errno with err filled.
 *   journal_batch_finish (loop thread) takes the result and frees the batch. On success its
 *     records are durable: they can be released and read from disk. On failure the batch AND
 *     every record appended after it was taken are dropped: files are cut back to what was
 *     durable, each segment touched is sealed (later records go to a new segment, so a position
 *     of a dropped record is never reused) and journal_release refuses those positions. */
typedef struct journal_batch journal_batch_t;
journal_batch_t *journal_batch_take(journal_t *j);
int journal_batch_write(journal_batch_t *b, int do_fsync, char *err, size_t errlen);
void journal_batch_finish(journal_t *j, journal_batch_t *b, int status);

/* journal_buffered: 1 when records are buffered, not yet taken into a batch. */
int journal_buffered(const journal_t *j);

/* journal_sync is the three steps above in one call, on the calling thread (tests, tools,
 * shutdown). Returns 0 (also when nothing was buffered), -EBUSY while a batch is out, or the
 * write's negative errno, after which everything appended since the last successful sync is
 * gone, as journal_batch_finish says. */
int journal_sync(journal_t *j, int do_fsync, char *err, size_t errlen);

/* journal_release marks one durable live record at pos dead. Segments are unlinked oldest
 * first, once they and every older segment have no live records and are not being written (and
 * never during replay, or while the journal is pinned). A position that is not durable (not yet
 * written, or dropped by a failed sync) or names no segment is refused with a logged error:
 * -EINVAL or -ENOENT, and nothing changes. So a record that supersedes another must free the
 * old one only once it is durable itself, in its sync's completion. */
int journal_release(journal_t *j, journal_pos_t pos);

/* journal_pin / journal_unpin: while pinned, no segment is removed (a compaction reads old
 * segments from another thread). Pins nest. */
void journal_pin(journal_t *j);
void journal_unpin(journal_t *j);

/* journal_read reads back one record at pos (for payloads kept on disk). Returns 0 with a
 * malloc'd copy in *rec (caller frees) or a negative errno. */
int journal_read(journal_t *j, journal_pos_t pos, void **rec, size_t *len);

/* journal_pos_segment: the segment number of a position. */
static inline uint32_t journal_pos_segment(journal_pos_t pos)
{
    return (uint32_t)(pos >> 32);
}

/* Compaction. A record that stays live pins its segment (and every newer one) on disk; the
 * owner moves the live records of the oldest segments forward so they can be deleted
 * (committer.c runs it): journal_compact_candidate() names, when more than keep segments exist,
 * the newest of the leading segments that are at most half live, every record at or below it to
 * move; each is read back (journal_copy_prepare on the loop, journal_copy_read on any thread,
 * with the journal pinned), appended again, and only once the copy is durable is the old
 * position released. journal_compact_candidate returns 1 with *seg set, or 0. */
int journal_compact_candidate(journal_t *j, size_t keep, uint32_t *seg);

typedef struct journal_copy {
    journal_pos_t pos; /* in: the record to copy */
    int fd;            /* journal_copy_prepare: its file, valid bytes and offset */
    uint64_t limit, off;
    void *rec; /* journal_copy_read: a malloc'd copy of the payload (the caller frees) */
    size_t len;
    int rc; /* 0, or why it could not be read (-ENOENT: not durable, -EBADMSG: damaged) */
} journal_copy_t;
/* journal_copy_prepare (loop thread) checks that c->pos is a durable record and notes its file.
 * Returns 0 or a negative errno (also left in c->rc). */
int journal_copy_prepare(journal_t *j, journal_copy_t *c);
/* journal_copy_read (any thread, journal pinned) reads and checks the record prepared in c. */
void journal_copy_read(journal_copy_t *c);

/* Figures for status and tests. */
typedef struct journal_stats {
    uint64_t segments, live_records, bytes;
} journal_stats_t;
void journal_get_stats(journal_t *j, journal_stats_t *st);

void journal_close(journal_t *j);

#endif
