/* job.c - the JOB and RETRY frame codec: the one place their keys are packed and read. */
#include "domain/job.h"
#include "domain/payload.h"
#include "domain/proto.h"
#include "util/frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

job_str_t job_str_of(const char *s)
{
    return (job_str_t){s ? s : "", s ? strlen(s) : 0};
}

/* job_pack_keys writes the JOB_NFIELDS job keys, the body from parts. */
static void job_pack_keys(msgpack_packer *pk, const job_msg_t *m, const job_str_t *parts,
                          size_t nparts)
{
    frame_pack_kv_strn(pk, PK_INVOCATION, m->inv.p, m->inv.n);
    frame_pack_kv_strn(pk, PK_WEBHOOK, m->webhook_id.p, m->webhook_id.n);
    frame_pack_kv_strn(pk, PK_EVENT_ID, m->event_id.p, m->event_id.n);
    frame_pack_kv_strn(pk, PK_EVENT_TYPE, m->event_type.p, m->event_type.n);
    frame_pack_kv_i64(pk, PK_ATTEMPT, m->attempt);
    size_t n = 0;
    for (size_t i = 0; i < nparts; i++)
        n += parts[i].n;
    frame_pack_str(pk, PK_BODY);
    msgpack_pack_str(pk, n);
    for (size_t i = 0; i < nparts; i++)
        msgpack_pack_str_body(pk, parts[i].p, parts[i].n);
    frame_pack_kv_i64(pk, PK_CREATED, m->created_at);
}

void job_pack_fields(msgpack_packer *pk, const job_msg_t *m)
{
    job_pack_keys(pk, m, &m->body, 1);
}

void job_pack_parts(msgpack_packer *pk, int type, const job_msg_t *m, const job_str_t *parts,
                    size_t nparts)
{
    int job = type == PT_JOB;
    msgpack_pack_map(pk, (size_t)(job ? 10 + (m->cfg_version != 0) : 11));
    frame_pack_kv_u64(pk, PK_TYPE, (uint64_t)type);
    frame_pack_kv_u64(pk, PK_SEQ, m->seq);
    job_pack_keys(pk, m, parts, nparts);
    if (job) {
        frame_pack_kv_u64(pk, PK_COPY, (uint64_t)(m->copy != 0));
        if (m->cfg_version) frame_pack_kv_i64(pk, PK_CFG_VERSION, m->cfg_version);
    } else {
        frame_pack_kv_i64(pk, PK_RETRY_AFTER, m->retry_after_ms);
        frame_pack_kv_u64(pk, PK_DEFERRED, (uint64_t)(m->deferred != 0));
    }
}

void job_pack(msgpack_packer *pk, int type, const job_msg_t *m)
{
    job_pack_parts(pk, type, m, &m->body, 1);
}

/* job_get_str reads one required string key into *v. */
static int job_get_str(const msgpack_object *f, const char *key, job_str_t *v, char *err,
                       size_t errlen)
{
    int rc = frame_get_str(f, key, &v->p, &v->n);
    if (rc < 0)
        snprintf(err, errlen, "key \"%s\" %s", key, rc == -ENOENT ? "missing" : "not a string");
    return rc < 0 ? -EINVAL : 0;
}

/* job_get_flag reads an optional 0/1 key (absent: 0). */
static int job_get_flag(const msgpack_object *f, const char *key, int *v, char *err, size_t errlen)
{
    uint64_t u = 0;
    int rc = frame_get_u64(f, key, &u);
    if (rc == -EINVAL) {
        snprintf(err, errlen, "key \"%s\" not an unsigned integer", key);
        return -EINVAL;
    }
    *v = u != 0;
    return 0;
}

/* job_get_int reads an optional integer key (absent: 0). */
static int job_get_int(const msgpack_object *f, const char *key, int64_t *v, char *err,
                       size_t errlen)
{
    *v = 0;
    if (frame_get_i64(f, key, v) == -EINVAL) {
        snprintf(err, errlen, "key \"%s\" not an integer", key);
        return -EINVAL;
    }
    return 0;
}

/* job_get_strs reads the required string keys and checks the invocation id's length. */
static int job_get_strs(const msgpack_object *f, job_msg_t *m, char *err, size_t errlen)
{
    if (job_get_str(f, PK_INVOCATION, &m->inv, err, errlen) < 0 ||
        job_get_str(f, PK_WEBHOOK, &m->webhook_id, err, errlen) < 0 ||
        job_get_str(f, PK_EVENT_ID, &m->event_id, err, errlen) < 0 ||
        job_get_str(f, PK_EVENT_TYPE, &m->event_type, err, errlen) < 0 ||
        job_get_str(f, PK_BODY, &m->body, err, errlen) < 0)
        return -EINVAL;
    if (m->inv.n == 0 || m->inv.n >= INVOCATION_ID_LEN) {
        snprintf(err, errlen, "key \"%s\" of %zu bytes (1 to %d)", PK_INVOCATION, m->inv.n,
                 INVOCATION_ID_LEN - 1);
        return -EINVAL;
    }
    return job_get_int(f, PK_CREATED, &m->created_at, err, errlen);
}

/* job_get_attempt reads att (>= 1); absent is -ENOENT when optional, else -EINVAL. */
static int job_get_attempt(const msgpack_object *f, job_msg_t *m, int optional, char *err,
                           size_t errlen)
{
    int rc = frame_get_i64(f, PK_ATTEMPT, &m->attempt);
    if (rc == -ENOENT && optional) {
        m->attempt = 0;
        return 0;
    }
    if (rc < 0 || m->attempt < 1) {
        snprintf(err, errlen, "key \"%s\" %s", PK_ATTEMPT,
                 rc == -ENOENT ? "missing" : "not an integer >= 1");
        return -EINVAL;
    }
    return 0;
}

int job_unpack_fields(const msgpack_object *f, job_msg_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (f->type != MSGPACK_OBJECT_MAP) {
        snprintf(err, errlen, "not a map");
        return -EINVAL;
    }
    return job_get_attempt(f, m, 1, err, errlen) < 0 || job_get_strs(f, m, err, errlen) < 0
               ? -EINVAL
               : 0;
}

int job_unpack(const msgpack_object *f, int type, job_msg_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    int rc = frame_get_u64(f, PK_SEQ, &m->seq);
    if (rc < 0) {
        snprintf(err, errlen, "key \"%s\" %s", PK_SEQ,
                 rc == -ENOENT ? "missing" : "not an unsigned integer");
        return -EINVAL;
    }
    if (job_get_attempt(f, m, 0, err, errlen) < 0 || job_get_strs(f, m, err, errlen) < 0)
        return -EINVAL;
    if (type == PT_JOB)
        return job_get_flag(f, PK_COPY, &m->copy, err, errlen) < 0 ||
                       job_get_int(f, PK_CFG_VERSION, &m->cfg_version, err, errlen) < 0
                   ? -EINVAL
                   : 0;
    return job_get_int(f, PK_RETRY_AFTER, &m->retry_after_ms, err, errlen) < 0 ||
                   job_get_flag(f, PK_DEFERRED, &m->deferred, err, errlen) < 0
               ? -EINVAL
               : 0;
}
