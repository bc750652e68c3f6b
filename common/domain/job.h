/* job.h - the one codec of JOB and RETRY frames (router|scheduler -> sender, sender ->
 * scheduler): a job's fields as borrowed views, packed and unpacked in one place. */
#ifndef HL_JOB_H
#define HL_JOB_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* A string view into someone else's bytes (a frame, a journal record, a job's arena). */
typedef struct job_str {
    const char *p; /* never NULL after job_unpack (may point at "") */
    size_t n;
} job_str_t;

/* The fields of one JOB or RETRY frame. Views are borrowed: valid as long as the bytes they were
 * unpacked from (or set from). */
typedef struct job_msg {
    uint64_t seq;
    job_str_t inv, webhook_id, event_id, event_type, body;
    int64_t attempt;    /* 1-based */
    int64_t created_at; /* invocation creation, unix ms; 0 when absent */
    /* JOB only */
    int copy;            /* PK_COPY: it may be a copy of one handed out before */
    int64_t cfg_version; /* PK_CFG_VERSION; 0 when absent (the scheduler sends none) */
    /* RETRY only */
    int64_t retry_after_ms; /* PK_RETRY_AFTER */
    int deferred;           /* PK_DEFERRED: an attempt never made */
} job_msg_t;

/* job_str_of views a NUL-terminated string (NULL reads as ""). */
job_str_t job_str_of(const char *s);

/* job_pack writes m as one frame's map of type (PT_JOB or PT_RETRY) with pk (between
 * conn_frame_begin and conn_frame_end, or frame_begin and frame_end). A JOB carries cfg_version
 * only when it is not 0. */
void job_pack(msgpack_packer *pk, int type, const job_msg_t *m);

/* job_pack_parts is job_pack with the body given as nparts pieces, written one after another
 * straight into the frame (m->body is not read): a body spliced from parts is never built. */
void job_pack_parts(msgpack_packer *pk, int type, const job_msg_t *m, const job_str_t *parts,
                    size_t nparts);

/* The job keys every JOB and RETRY frame carries, and a record holding a job beside keys of its
 * own (the scheduler's journal) carries too: inv, wh, ev, et, att, body, ca. */
#define JOB_NFIELDS 7

/* job_pack_fields writes m's JOB_NFIELDS job keys into a map the caller opened. */
void job_pack_fields(msgpack_packer *pk, const job_msg_t *m);

/* job_unpack_fields reads the job keys of a map that is not a JOB or RETRY frame (a REDELIVER
 * frame, a journal record): inv, wh, ev, et and body required as in job_unpack; att and ca
 * optional (0 when absent); the rest of *m zero. Returns 0, or -EINVAL with err naming the key. */
int job_unpack_fields(const msgpack_object *f, job_msg_t *m, char *err, size_t errlen);

/* job_unpack reads frame map f of type (PT_JOB or PT_RETRY) into *m (views into f's bytes).
 * Required: seq, inv (non-empty, shorter than INVOCATION_ID_LEN), wh, ev, et, att >= 1, body;
 * optional: ca, cp, cv (JOB), ra, def (RETRY). Returns 0, or -EINVAL with err naming the missing
 * or mistyped key. */
int job_unpack(const msgpack_object *f, int type, job_msg_t *m, char *err, size_t errlen);

#endif
