/* committer.h - group commit for a journal on a libuv loop: many appends, one write+fdatasync on
 * a worker thread of its own, then every waiting callback back on the loop. always: a batch at
 * the end of the loop iteration; batch: within 10 ms of the first waiter; off: write(2) only.
 * Also compaction of old segments, with its reads on the same thread. */
#ifndef HL_COMMITTER_H
#define HL_COMMITTER_H

#include "util/daemon.h"
#include "util/journal.h"
#include <uv.h>

typedef struct committer committer_t;
typedef void (*committer_cb)(void *arg, int status);

/* committer_init starts the worker thread. Returns 0 or a negative errno. */
int committer_init(committer_t **cp, uv_loop_t *loop, journal_t *j, fsync_policy_t policy,
                   unsigned batch_ms);
/* committer_after calls cb(arg, status) once every record appended to the journal before this
 * call is durable per the policy: status 0; or a negative errno (-ENOSPC...) when a sync failed,
 * in which case every record appended since the last good sync is gone (journal.h) and must be
 * treated as not accepted. Never called from within committer_after; callbacks run in the order
 * they were registered. */
void committer_after(committer_t *c, committer_cb cb, void *arg);
/* committer_flush_now starts a sync now instead of at the end of the batch window (drain). */
void committer_flush_now(committer_t *c);
/* committer_busy: 1 while a sync or a compaction is under way or callbacks wait. */
int committer_busy(const committer_t *c);

/* Compaction (see journal.h). Every interval_ms, when the journal holds more than keep
 * segments, the owner is asked through visit(arg, seg, m) to name each live record it holds in
 * segments numbered seg or lower (committer_move(m, position)). They are read on the worker
 * thread, then relocate(arg, moves, n, 0) asks which the owner still holds (it sets held), those
 * are appended again, and once the copies are durable relocate(arg, moves, n, 1) has the owner
 * switch every still-held record from old to new (setting held where it did). The committer then
 * releases the old position of each held record, and the copy of each other one. */
typedef struct committer_move {
    journal_pos_t old, new;
    const void *rec; /* the record's payload (valid during relocate) */
    size_t len;
    int held;
} committer_move_t;
typedef struct committer_moves committer_moves_t;
typedef void (*committer_visit_fn)(void *arg, uint32_t seg, committer_moves_t *m);
typedef void (*committer_relocate_fn)(void *arg, committer_move_t *moves, size_t n, int commit);
void committer_compact_every(committer_t *c, unsigned interval_ms, size_t keep,
                             committer_visit_fn visit, committer_relocate_fn relocate, void *arg);
/* committer_move: one live record of the segments being compacted. */
void committer_move(committer_moves_t *m, journal_pos_t pos);
/* committer_compact_now starts one compaction pass (tests; the timer does it otherwise).
 * Returns the number of records it will read, 0 when nothing needs moving or a pass is under
 * way, or a negative errno (logged). */
int committer_compact_now(committer_t *c);

/* committer_close waits for the worker, syncs what is left on the calling thread, calls every
 * waiter, then frees the committer once its handles are closed; the journal stays open. */
void committer_close(committer_t *c);

#endif
