/* test_job.c - the JOB/RETRY codec: what job_pack writes job_unpack reads back, and a frame with
 * a key missing or mistyped is refused with the key named. */
#include "check.h"
#include "domain/job.h"
#include "domain/proto.h"
#include "util/frame.h"

#include <errno.h>
#include <string.h>

/* roundtrip packs m as type and unpacks it into out (views into *buf; free with the sbuffer). */
static int roundtrip(int type, const job_msg_t *m, job_msg_t *out, msgpack_sbuffer *sb,
                     msgpack_unpacked *up, char *err, size_t errlen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    job_pack(&pk, type, m);
    if (msgpack_unpack_next(up, sb->data, sb->size, NULL) != MSGPACK_UNPACK_SUCCESS) return -1;
    return job_unpack(&up->data, type, out, err, errlen);
}

static job_msg_t sample(void)
{
    job_msg_t m = {0};
    m.seq = 42;
    m.inv = job_str_of("inv_0123456789abcdef0123456789abcdef");
    m.webhook_id = job_str_of("wh_1");
    m.event_id = job_str_of("evt_9");
    m.event_type = job_str_of("opportunity.won");
    m.body = (job_str_t){"{\"a\":1}\0tail", 12}; /* bytes, a NUL inside */
    m.attempt = 3;
    m.created_at = 1700000000123;
    return m;
}

#define SAME(a, b) ((a).n == (b).n && memcmp((a).p, (b).p, (a).n) == 0)

static void test_job_roundtrip(void)
{
    job_msg_t m = sample(), out;
    m.copy = 1;
    m.cfg_version = 17;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    char err[128] = "";
    CHECK_INT(roundtrip(PT_JOB, &m, &out, &sb, &up, err, sizeof err), 0);
    CHECK_INT(out.seq, 42);
    CHECK(SAME(out.inv, m.inv) && SAME(out.webhook_id, m.webhook_id));
    CHECK(SAME(out.event_id, m.event_id) && SAME(out.event_type, m.event_type));
    CHECK(SAME(out.body, m.body));
    CHECK_INT(out.attempt, 3);
    CHECK_INT(out.created_at, 1700000000123);
    CHECK_INT(out.copy, 1);
    CHECK_INT(out.cfg_version, 17);
    uint64_t t = 0;
    CHECK(frame_get_u64(&up.data, PK_TYPE, &t) == 0 && t == PT_JOB);
    CHECK(frame_get(&up.data, PK_RETRY_AFTER) == NULL);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

static void test_retry_roundtrip(void)
{
    job_msg_t m = sample(), out;
    m.retry_after_ms = 120000;
    m.deferred = 1;
    m.body = job_str_of(""); /* an empty body is a body */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    char err[128] = "";
    CHECK_INT(roundtrip(PT_RETRY, &m, &out, &sb, &up, err, sizeof err), 0);
    CHECK_INT(out.retry_after_ms, 120000);
    CHECK_INT(out.deferred, 1);
    CHECK_INT(out.body.n, 0);
    CHECK(out.body.p != NULL);
    CHECK(frame_get(&up.data, PK_COPY) == NULL);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* bad packs a map of the given keys (string or integer values) and expects err to name key. */
static void bad(const char *want, int n, const char *const *keys, const int *is_str)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        frame_pack_str(&pk, keys[i]);
        if (is_str[i])
            frame_pack_str(&pk, strcmp(keys[i], PK_INVOCATION) == 0 ? "inv_x" : "v");
        else
            msgpack_pack_int64(&pk, strcmp(keys[i], PK_ATTEMPT) == 0 && n == 2 ? -1 : 5);
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
    job_msg_t out;
    char err[128] = "";
    CHECK_INT(job_unpack(&up.data, PT_JOB, &out, err, sizeof err), -EINVAL);
    if (!strstr(err, want)) fprintf(stderr, "  err: %s (wanted %s)\n", err, want);
    CHECK(strstr(err, want) != NULL);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

static void test_job_refused(void)
{
    const char *k1[] = {PK_ATTEMPT, PK_INVOCATION};
    const int s1[] = {0, 1};
    bad("\"seq\" missing", 2, k1, s1);
    const char *k2[] = {PK_SEQ, PK_ATTEMPT}; /* attempt -1 */
    const int s2[] = {0, 0};
    bad("\"att\" not an integer >= 1", 2, k2, s2);
    const char *k3[] = {PK_SEQ,      PK_ATTEMPT,    PK_INVOCATION, PK_WEBHOOK,
                        PK_EVENT_ID, PK_EVENT_TYPE, PK_BODY};
    const int s3[] = {0, 1, 1, 1, 1, 1, 0}; /* attempt "v" */
    bad("\"att\" not an integer", 7, k3, s3);
    const int s4[] = {0, 0, 1, 1, 0, 1, 1}; /* an event id that is a number */
    const char *k4[] = {PK_SEQ,      PK_ATTEMPT,    PK_INVOCATION, PK_WEBHOOK,
                        PK_EVENT_ID, PK_EVENT_TYPE, PK_BODY};
    bad("\"ev\" not a string", 7, k4, s4);
    const char *k5[] = {PK_SEQ, PK_ATTEMPT, PK_INVOCATION, PK_WEBHOOK, PK_EVENT_ID, PK_EVENT_TYPE};
    const int s5[] = {0, 0, 1, 1, 1, 1};
    bad("\"body\" missing", 6, k5, s5);
}

/* A body given in parts makes the same bytes as the body given whole. */
static void test_job_parts(void)
{
    job_msg_t m = sample();
    m.copy = 1;
    m.cfg_version = 3;
    const job_str_t parts[] = {{"{\"a\"", 4}, {"", 0}, {":1}\0tail", 8}};
    msgpack_sbuffer whole, spliced;
    msgpack_sbuffer_init(&whole);
    msgpack_sbuffer_init(&spliced);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &whole, msgpack_sbuffer_write);
    job_pack(&pk, PT_JOB, &m);
    msgpack_packer_init(&pk, &spliced, msgpack_sbuffer_write);
    m.body = job_str_of("ignored");
    job_pack_parts(&pk, PT_JOB, &m, parts, 3);
    CHECK_INT(spliced.size, whole.size);
    CHECK(spliced.size == whole.size && memcmp(spliced.data, whole.data, whole.size) == 0);
    msgpack_sbuffer_destroy(&whole);
    msgpack_sbuffer_destroy(&spliced);
}

/* A record carrying the job keys beside its own reads back; att and ca are optional there. */
static void test_job_fields(void)
{
    job_msg_t m = sample(), out;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + JOB_NFIELDS);
    frame_pack_kv_str(&pk, "k", "r");
    job_pack_fields(&pk, &m);
    frame_pack_kv_i64(&pk, "due", 99);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
    char err[128] = "";
    CHECK_INT(job_unpack_fields(&up.data, &out, err, sizeof err), 0);
    CHECK(SAME(out.inv, m.inv) && SAME(out.webhook_id, m.webhook_id));
    CHECK(SAME(out.event_id, m.event_id) && SAME(out.event_type, m.event_type));
    CHECK(SAME(out.body, m.body));
    CHECK_INT(out.attempt, 3);
    CHECK_INT(out.created_at, 1700000000123);
    CHECK_INT(out.seq, 0);
    /* Not a JOB frame: no seq, so job_unpack refuses it. */
    CHECK_INT(job_unpack(&up.data, PT_JOB, &out, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "\"seq\" missing") != NULL);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* A REDELIVER-like map: no att, no ca; then one without wh. */
    for (int drop_wh = 0; drop_wh < 2; drop_wh++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, drop_wh ? 4 : 5);
        frame_pack_kv_str(&pk, PK_INVOCATION, "inv_1");
        if (!drop_wh) frame_pack_kv_str(&pk, PK_WEBHOOK, "wh_1");
        frame_pack_kv_str(&pk, PK_EVENT_ID, "evt_1");
        frame_pack_kv_str(&pk, PK_EVENT_TYPE, "opportunity.created");
        frame_pack_kv_str(&pk, PK_BODY, "{}");
        msgpack_unpacked_init(&up);
        CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
        err[0] = '\0';
        int rc = job_unpack_fields(&up.data, &out, err, sizeof err);
        if (drop_wh) {
            CHECK_INT(rc, -EINVAL);
            CHECK(strstr(err, "\"wh\" missing") != NULL);
        } else {
            CHECK_INT(rc, 0);
            CHECK_INT(out.attempt, 0);
            CHECK_INT(out.created_at, 0);
            CHECK(out.body.n == 2 && memcmp(out.body.p, "{}", 2) == 0);
        }
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
    }
}

int main(void)
{
    test_job_roundtrip();
    test_retry_roundtrip();
    test_job_refused();
    test_job_parts();
    test_job_fields();
    return check_done("job");
}
