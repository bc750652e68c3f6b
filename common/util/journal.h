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

/* journal_append buffers one record (written out by journal_flush or journal_sync) and returns
 * its position. A record appended with live=1 counts toward its segment's live count; markers
 * (acks) are appended with live=0. Rolls to a new segment when the current one is full.
 * Returns 0 or a negative errno (-ENOSPC, -EFBIG, -EIO) with err filled. */
int journal_append(journal_t *j, const void *rec, size_t len, int live, journal_pos_t *pos,
                   char *err, size_t errlen);

/* journal_unappend takes back the record just appended at pos (live as given then), while it is
 * still buffered: for an all-or-nothing group of appends. Returns 0, or -EINVAL when pos is not
 * the newest record or was already written. */
int journal_unappend(journal_t *j, journal_pos_t pos, int live);

/* journal_sync writes buffered records and, when do_fsync, fdatasyncs (and the directory after a
 * segment was created). Returns 0 or a negative errno with err filled; on error the buffered
 * records are dropped from the buffer and the file is truncated back to its last synced size, so
 * callers must treat everything appended since the last successful sync as not written. */
int journal_sync(journal_t *j, int do_fsync, char *err, size_t errlen);

/* journal_release marks one live record at pos dead. Segments are unlinked oldest first, once
 * they and every older segment have no live records and are not the segment being written. */
void journal_release(journal_t *j, journal_pos_t pos);

/* journal_read reads back one record at pos (for payloads kept on disk). Returns 0 with a
 * malloc'd copy in *rec (caller frees) or a negative errno. */
int journal_read(journal_t *j, journal_pos_t pos, void **rec, size_t *len);

/* journal_pos_segment: the segment number of a position. */
static inline uint32_t journal_pos_segment(journal_pos_t pos)
{
    return (uint32_t)(pos >> 32);
}

/* Compaction. A record that stays live pins its segment (and every newer one) on disk; the
 * owner moves the live records of the oldest segments forward so they can be deleted:
 *   journal_compact_candidate() names, when more than keep segments exist, the newest of the
 *   leading segments that are at most half live: every record at or below it is to move;
 *   journal_move() appends a live copy of each of the owner's records in it;
 *   journal_sync() makes the copies durable; only then the owner releases the old positions
 *   and keeps the new ones (never release before the sync: a crash would lose the record).
 * journal_compact_candidate returns 1 with *seg set, or 0 when nothing needs moving. */
int journal_compact_candidate(journal_t *j, size_t keep, uint32_t *seg);
/* journal_move appends a live copy of the record at pos and returns its position in *newpos.
 * Returns 0 or a negative errno with err. */
int journal_move(journal_t *j, journal_pos_t pos, journal_pos_t *newpos, char *err, size_t errlen);

/* Figures for status and tests. */
typedef struct journal_stats {
    uint64_t segments, live_records, bytes;
} journal_stats_t;
void journal_get_stats(journal_t *j, journal_stats_t *st);

void journal_close(journal_t *j);

#endif
