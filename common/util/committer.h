/* committer.h - group commit for a journal on a libuv loop: many appends, one fsync, then every
 * waiting callback. always: sync at the end of the loop iteration; batch: within 10 ms of the
 * first waiter; off: write(2) at the end of the iteration, no fsync. */
#ifndef HL_COMMITTER_H
#define HL_COMMITTER_H

#include "util/daemon.h"
#include "util/journal.h"
#include <uv.h>

typedef struct committer committer_t;
typedef void (*committer_cb)(void *arg, int status);

/* committer_init. Returns 0 or a negative errno. */
int committer_init(committer_t **cp, uv_loop_t *loop, journal_t *j, fsync_policy_t policy,
                   unsigned batch_ms);
/* committer_after calls cb(arg, status) once every record appended to the journal before this
 * call is durable per the policy: status 0, or a negative errno (-ENOSPC...) when the sync
 * failed, in which case those records must be treated as not accepted. Callbacks run in the
 * order they were registered. */
void committer_after(committer_t *c, committer_cb cb, void *arg);
/* committer_flush_now syncs immediately (drain, shutdown) and runs the callbacks. */
void committer_flush_now(committer_t *c);
/* Compaction (see journal.h): every interval_ms the committer flushes, and when the journal
 * holds more than keep segments asks the owner, through visit(arg, seg, m), to name each live
 * record it holds in segments numbered seg or lower by calling committer_move(m, &its_position).
 * The copies are synced, then the old positions released and the owner's position fields updated in
 * place; all within that one callback, so the fields must stay valid during visit. */
typedef struct committer_moves committer_moves_t;
typedef void (*committer_visit_fn)(void *arg, uint32_t seg, committer_moves_t *m);
void committer_compact_every(committer_t *c, unsigned interval_ms, size_t keep,
                             committer_visit_fn visit, void *arg);
/* committer_move: one live record of the segment being compacted, at *pos. */
void committer_move(committer_moves_t *m, journal_pos_t *pos);
/* committer_compact_now runs one compaction pass; returns the records moved or a negative
 * errno (logged). */
int committer_compact_now(committer_t *c);

/* committer_close flushes, then frees; the journal stays open. */
void committer_close(committer_t *c);

#endif
