/* test_counters.c - the durable counters behind /metrics (store_counters.c: counted once per
 * attempt, never for a refused duplicate, rolled back with their row), the Prometheus text
 * writer (promtext.c), the rendering of hookline's series (metrics.c) and the stage socket
 * listing (stagestat.c). */
#include "check.h"
#include "domain/metrics.h"
#include "domain/store.h"
#include "util/promtext.h"
#include "util/stagestat.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/hl-test-counters-XXXXXX";
static char dbpath[300];

/* test_promtext: HELP/TYPE lines, label escaping, number formats. */
static void test_promtext(void)
{
    promtext_t p;
    size_t len;
    promtext_init(&p);
    promtext_family(&p, "x_total", "counter", "a \\ b\nc \"q\"");
    const char *ls[] = {"id", "a\"b\\c\nd", "result", "ok", NULL};
    promtext_sample(&p, "x_total", ls, 3);
    promtext_sample(&p, "x_total", NULL, 0.25);
    promtext_sample(&p, "x_total", NULL, 1.0 / 0.0);
    promtext_sample(&p, "x_total", NULL, 12345678901234.0);
    char *text = promtext_take(&p, &len);
    CHECK_STR(text, "# HELP x_total a \\\\ b\\nc \"q\"\n"
                    "# TYPE x_total counter\n"
                    "x_total{id=\"a\\\"b\\\\c\\nd\",result=\"ok\"} 3\n"
                    "x_total 0.25\n"
                    "x_total +Inf\n"
                    "x_total 12345678901234\n");
    CHECK_INT(len, text ? strlen(text) : 0);
    free(text);
    text = promtext_take(&p, &len); /* empty again */
    CHECK_STR(text, "");
    free(text);
}

/* counter: n of one counters row (0 when absent). */
static int64_t counter(store_t *s, const char *metric, const char *wh, const char *label)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t n = 0;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK) return -1;
    sqlite3_prepare_v2(
        db, "SELECT n FROM counters WHERE metric = ?1 AND webhook_id = ?2 AND label = ?3", -1, &st,
        NULL);
    sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, wh, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, label, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    (void)s;
    return n;
}

/* rec: an attempt's record. */
static delivery_t rec(const char *inv, const char *wh, int attempt, delivery_status_t st,
                      int64_t ms)
{
    delivery_t d = {
        .invocation_id = (char *)inv,
        .webhook_id = (char *)wh,
        .event_id = "ev_1",
        .event_type = "opportunity.won",
        .status = st,
        .attempts = attempt,
        .created_at = 1000,
        .updated_at = 1000 + attempt,
        .req_method = "POST",
        .req_url = "http://r.example/",
        .req_body = "{}",
        .resp_status = st == DLV_SUCCEEDED ? 200 : 500,
        .duration_ms = ms,
    };
    return d;
}

/* record: store_counted_record inside a batch, its counts gathered and flushed before the
 * commit, as the sender writes. */
static int record(store_t *s, const delivery_t *d)
{
    char err[256];
    store_counts_t acc = {0};
    int rc = store_begin(s, err, sizeof err);
    if (rc == 0) rc = store_counted_record(s, d, &acc, err, sizeof err);
    if (rc == 0) rc = store_counts_flush(s, &acc, err, sizeof err);
    store_counts_free(&acc);
    if (rc == 0) rc = store_commit(s, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "record: %s\n", err);
        store_rollback(s);
    }
    return rc;
}

/* test_counted: one count per attempt, whatever the duplicates. */
static void test_counted(void)
{
    store_t *s;
    char err[256];
    CHECK_INT(store_open(&s, dbpath, err, sizeof err), 0);
    delivery_t d;

    /* the pending row of a running attempt 1 is no attempt yet */
    CHECK_INT(store_delivery_pending(s, "inv_a", "wh_1", NULL, "ev_1", "opportunity.won", "{}",
                                     1000, err, sizeof err),
              0);
    CHECK_INT(counter(s, "attempts", "wh_1", "failure"), 0);
    /* attempt 1 fails: its undecided record counts it (30 ms: bucket 0.05) ... */
    d = rec("inv_a", "wh_1", 1, DLV_RETRYING, 30);
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_1", "failure"), 1);
    CHECK_INT(counter(s, "duration", "wh_1", "0.05"), 1);
    /* ... and the scheduler's decision on the same attempt does not count it again */
    d.next_attempt_at = 5000;
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_1", "failure"), 1);
    /* attempt 2 succeeds (200 ms: bucket 0.25) */
    d = rec("inv_a", "wh_1", 2, DLV_SUCCEEDED, 200);
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_1", "success"), 1);
    CHECK_INT(counter(s, "duration", "wh_1", "0.25"), 1);
    /* late duplicates the store refuses count nothing: attempt 1 again, the success again */
    d = rec("inv_a", "wh_1", 1, DLV_RETRYING, 30);
    CHECK_INT(record(s, &d), 0);
    d = rec("inv_a", "wh_1", 2, DLV_SUCCEEDED, 200);
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_1", "failure"), 1);
    CHECK_INT(counter(s, "attempts", "wh_1", "success"), 1);
    CHECK_INT(counter(s, "duration", "wh_1", "0.05"), 1);
    CHECK_INT(counter(s, "duration", "wh_1", "0.25"), 1);

    /* an invocation that fails for good: one failed attempt, one failed invocation, once */
    d = rec("inv_b", "wh_2", 1, DLV_FAILED, 45000); /* past 30 s: +Inf */
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_2", "failure"), 1);
    CHECK_INT(counter(s, "invocations_failed", "wh_2", ""), 1);
    CHECK_INT(counter(s, "duration", "wh_2", "+Inf"), 1);

    /* a batch rolled back takes its counts with it */
    d = rec("inv_c", "wh_2", 1, DLV_SUCCEEDED, 10);
    CHECK_INT(store_begin(s, err, sizeof err), 0);
    CHECK_INT(store_counted_record(s, &d, NULL, err, sizeof err), 0); /* written at once */
    CHECK_INT(store_rollback(s), 0);
    CHECK_INT(counter(s, "attempts", "wh_2", "success"), 0);
    CHECK(store_delivery_get(s, "inv_c", &d, err, sizeof err) == -ENOENT);

    /* a redelivery of the failed invocation: its attempt 1 is a new send, its failure too */
    CHECK_INT(store_delivery_mark(s, "inv_b", DLV_PENDING, 0, err, sizeof err), 0);
    d = rec("inv_b", "wh_2", 1, DLV_FAILED, 5);
    CHECK_INT(record(s, &d), 0);
    CHECK_INT(counter(s, "attempts", "wh_2", "failure"), 2);
    CHECK_INT(counter(s, "invocations_failed", "wh_2", ""), 2);

    /* alone (the router's refusal: no attempt made), it makes a transaction of its own */
    d = rec("inv_d", "wh_2", 0, DLV_FAILED, 0);
    CHECK_INT(store_counted_record(s, &d, NULL, err, sizeof err), 0);
    CHECK_INT(counter(s, "invocations_failed", "wh_2", ""), 3);
    CHECK_INT(counter(s, "attempts", "wh_2", "failure"), 2);

    /* one batch of several records: the gathered counts are summed per counter at the flush,
     * and each record's prior state is read inside the batch (the second attempt of inv_f is
     * new after its first in the same batch; the duplicate is not) */
    {
        store_counts_t acc = {0};
        delivery_t b1 = rec("inv_f", "wh_4", 1, DLV_RETRYING, 1);
        delivery_t b2 = rec("inv_f", "wh_4", 2, DLV_SUCCEEDED, 2);
        delivery_t b3 = rec("inv_g", "wh_4", 1, DLV_SUCCEEDED, 3);
        CHECK_INT(store_begin(s, err, sizeof err), 0);
        CHECK_INT(store_counted_record(s, &b1, &acc, err, sizeof err), 0);
        CHECK_INT(store_counted_record(s, &b2, &acc, err, sizeof err), 0);
        CHECK_INT(store_counted_record(s, &b2, &acc, err, sizeof err), 0);
        CHECK_INT(store_counted_record(s, &b3, &acc, err, sizeof err), 0);
        CHECK_INT(acc.n, 6);
        CHECK_INT(counter(s, "attempts", "wh_4", "success"), 0); /* not yet written */
        CHECK_INT(store_counts_flush(s, &acc, err, sizeof err), 0);
        CHECK_INT(acc.n, 0);
        CHECK_INT(store_commit(s, err, sizeof err), 0);
        store_counts_free(&acc);
        CHECK_INT(counter(s, "attempts", "wh_4", "success"), 2);
        CHECK_INT(counter(s, "attempts", "wh_4", "failure"), 1);
        CHECK_INT(counter(s, "duration", "wh_4", "0.005"), 3);
        /* a batch rolled back after its flush leaves nothing either */
        delivery_t b4 = rec("inv_h", "wh_4", 1, DLV_SUCCEEDED, 3);
        CHECK_INT(store_begin(s, err, sizeof err), 0);
        CHECK_INT(store_counted_record(s, &b4, &acc, err, sizeof err), 0);
        CHECK_INT(store_counts_flush(s, &acc, err, sizeof err), 0);
        CHECK_INT(store_rollback(s), 0);
        store_counts_free(&acc);
        CHECK_INT(counter(s, "attempts", "wh_4", "success"), 2);
    }

    /* a lost record ended by the repair counts as failed, once */
    d = rec("inv_e", "wh_3", 1, DLV_RETRYING, 20);
    CHECK_INT(record(s, &d), 0);
    int64_t n = -1;
    CHECK_INT(store_retries_pending(s, &n, err, sizeof err), 0);
    CHECK_INT(n, 1);
    CHECK_INT(
        store_counted_lost(s, "inv_e", "wh_3", DLV_RETRYING, INT64_MAX, "lost", err, sizeof err),
        1);
    CHECK_INT(
        store_counted_lost(s, "inv_e", "wh_3", DLV_RETRYING, INT64_MAX, "lost", err, sizeof err),
        0);
    CHECK_INT(counter(s, "invocations_failed", "wh_3", ""), 1);
    CHECK_INT(store_retries_pending(s, &n, err, sizeof err), 0);
    CHECK_INT(n, 0);

    /* the retry count reads the index of live records, not the whole log */
    sqlite3 *db;
    sqlite3_stmt *st;
    char plan[512] = "";
    CHECK_INT(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_prepare_v2(db,
                       "EXPLAIN QUERY PLAN SELECT count(*) FROM deliveries WHERE status < 2 AND"
                       " status = 1",
                       -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW)
        strncat(plan, (const char *)sqlite3_column_text(st, 3), sizeof plan - strlen(plan) - 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK(strstr(plan, "deliveries_live") != NULL);

    /* the rendering: one query's rows, cumulative buckets, _count = attempts */
    metrics_snap_t m;
    size_t len;
    metrics_collect(&m, s, "/nonexistent/run", 100);
    CHECK(m.store_ok);
    CHECK(m.stages_ok);
    CHECK_INT(m.stages.n, 0);
    CHECK_INT(m.nwebhooks, 4);
    char *text = metrics_render(&m, &len);
    CHECK(text != NULL);
    text = text ? text : strdup("");
    CHECK(strstr(text, "# TYPE hookline_attempts_total counter\n") != NULL);
    CHECK(strstr(text, "hookline_attempts_total{webhook_id=\"wh_1\",result=\"success\"} 1\n"));
    CHECK(strstr(text, "hookline_attempts_total{webhook_id=\"wh_1\",result=\"failure\"} 1\n"));
    CHECK(strstr(text, "hookline_invocations_failed_total{webhook_id=\"wh_2\"} 3\n"));
    CHECK(strstr(text, "# TYPE hookline_attempt_duration_seconds histogram\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh_1\",le=\"0.025\"}"
                       " 0\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh_1\",le=\"0.05\"}"
                       " 1\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh_1\",le=\"0.25\"}"
                       " 2\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh_1\",le=\"+Inf\"}"
                       " 2\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_sum{webhook_id=\"wh_1\"} 0.23\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_count{webhook_id=\"wh_1\"} 2\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh_2\",le=\"30\"}"
                       " 1\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_count{webhook_id=\"wh_2\"} 2\n"));
    CHECK(strstr(text, "hookline_retries_pending 0\n"));
    CHECK(strstr(text, "hookline_store_up 1\n"));
    CHECK(strstr(text, "hookline_stage_instances_up{stage=\"router\"} 0\n"));
    /* no ingest answered: the family is announced, with no sample */
    CHECK(strstr(text, "# TYPE hookline_events_accepted_total counter\n"));
    CHECK(strstr(text, "\nhookline_events_accepted_total ") == NULL);
    free(text);
    metrics_free(&m);
    store_close(s);
}

/* test_render_stages: stage figures and an odd webhook id, from a snapshot made by hand. */
static void test_render_stages(void)
{
    metrics_snap_t m;
    size_t len;
    memset(&m, 0, sizeof m);
    m.stages_ok = 1;
    m.stages.n = 3;
    m.stages.inst = calloc(3, sizeof *m.stages.inst);
    stagestat_inst_t *in = m.stages.inst;
    in[0].stage = 0;
    in[0].up = 1;
    snprintf(in[0].instance, sizeof in[0].instance, "0");
    in[0].stats =
        json_pack("{s:i, s:i, s:i}", "lines_accepted", 7, "lines_rejected", 2, "duplicates", 1);
    in[1].stage = 2;
    in[1].up = 1;
    snprintf(in[1].instance, sizeof in[1].instance, "0");
    in[1].stats = json_object();
    in[2].stage = 2;
    snprintf(in[2].sock, sizeof in[2].sock, "sender.1.sock");
    snprintf(in[2].instance, sizeof in[2].instance, "1");
    store_counter_t c = {"attempts", "wh \"odd\"\\", "failure", 4, 1.5};
    CHECK_INT(metrics_add_counter(&m, &c), 0);
    c = (store_counter_t){"duration", "wh \"odd\"\\", "10", 4, 0};
    CHECK_INT(metrics_add_counter(&m, &c), 0);
    m.store_ok = 1;
    m.retries_pending = 5;
    char *text = metrics_render(&m, &len);
    CHECK(text != NULL);
    text = text ? text : strdup("");
    CHECK(strstr(text, "\nhookline_events_accepted_total 7\n"));
    CHECK(strstr(text, "\nhookline_events_rejected_total 2\n"));
    CHECK(strstr(text, "hookline_stage_up{stage=\"ingest\",instance=\"0\"} 1\n"));
    CHECK(strstr(text, "hookline_stage_up{stage=\"sender\",instance=\"0\"} 1\n"));
    CHECK(strstr(text, "hookline_stage_up{stage=\"sender\",instance=\"1\"} 0\n"));
    CHECK(strstr(text, "hookline_stage_instances_up{stage=\"sender\"} 1\n"));
    CHECK(strstr(text, "hookline_stage_instances_up{stage=\"scheduler\"} 0\n"));
    CHECK(strstr(text, "hookline_attempts_total{webhook_id=\"wh \\\"odd\\\"\\\\\",result="
                       "\"failure\"} 4\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh \\\"odd\\\"\\\\\","
                       "le=\"5\"} 0\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_bucket{webhook_id=\"wh \\\"odd\\\"\\\\\","
                       "le=\"10\"} 4\n"));
    CHECK(strstr(text, "hookline_attempt_duration_seconds_sum{webhook_id=\"wh \\\"odd\\\"\\\\\"}"
                       " 1.5\n"));
    CHECK(strstr(text, "hookline_retries_pending 5\n"));
    /* every line is a comment or "name[{labels}] value" */
    int bad = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) {
            bad++;
            break;
        }
        if (line[0] == '#') continue;
        if (strncmp(line, "hookline_", 9) != 0 || !memchr(line, ' ', (size_t)(nl - line))) bad++;
    }
    CHECK_INT(bad, 0);
    free(text);
    metrics_free(&m);
}

/* test_stagestat: a socket file nobody answers on is listed down; other files are ignored. */
static void test_stagestat(void)
{
    char run[400], path[500], err[256];
    snprintf(run, sizeof run, "%s/run", dir);
    CHECK_INT(mkdir(run, 0700), 0);
    snprintf(path, sizeof path, "%s/sender.3.sock", run);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof sun.sun_path);
    memcpy(sun.sun_path, path, strlen(path) + 1 < sizeof sun.sun_path ? strlen(path) + 1 : 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd); /* the file stays; connecting to it is refused */
    snprintf(path, sizeof path, "%s/other.txt", run);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    CHECK_INT(stagestat_stage_of("router.12.sock"), 1);
    CHECK_INT(stagestat_stage_of("scheduler.sock"), 3);
    CHECK_INT(stagestat_stage_of("sender.sock.tmp"), -1);
    stagestat_t st;
    CHECK_INT(stagestat_collect(run, 200, &st, err, sizeof err), 0);
    CHECK_INT(st.n, 1);
    if (st.n == 1) {
        CHECK_STR(st.inst[0].sock, "sender.3.sock");
        CHECK_INT(st.inst[0].stage, 2);
        CHECK_INT(st.inst[0].up, 0);
        CHECK_STR(st.inst[0].instance, "3");
        CHECK(st.inst[0].err[0] != 0);
    }
    CHECK_INT(stagestat_up(&st, 2), 0);
    stagestat_free(&st);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hookline.db", dir);
    test_promtext();
    test_counted();
    test_render_stages();
    test_stagestat();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("counters");
}
