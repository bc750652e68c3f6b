/* test_sender_dedupe.c - the sender's memory of copies: finished attempts remembered up to the
 * ring's size (the oldest forgotten first, the table staying consistent through evictions), and
 * running jobs found by (invocation, attempt). */
#include "check.h"
#include "../../sender/sender.h"
#include "domain/payload.h"

#include <stdio.h>
#include <stdlib.h>

#define RECENT 65536 /* SENDER_RECENT */

static void inv_of(int i, char *out)
{
    snprintf(out, INVOCATION_ID_LEN, "inv_%032x", (unsigned)i * 2654435761u);
}

static void test_recent(void)
{
    sender_t s = {0};
    char inv[INVOCATION_ID_LEN];
    int total = RECENT + RECENT / 2; /* a third evicted */
    for (int i = 0; i < total; i++) {
        inv_of(i, inv);
        sender_dedupe_done(&s, inv, 1 + i % 3);
    }
    int wrong_kept = 0, wrong_lost = 0, wrong_attempt = 0;
    for (int i = 0; i < total; i++) {
        inv_of(i, inv);
        int kept = i >= total - RECENT;
        int seen = sender_dedupe_recent(&s, inv, strlen(inv), 1);
        wrong_kept += !kept && seen;
        wrong_lost += kept && !seen;
        if (kept) wrong_attempt += sender_dedupe_recent(&s, inv, strlen(inv), 1 + i % 3 + 1);
    }
    CHECK_INT(wrong_kept, 0);
    CHECK_INT(wrong_lost, 0);
    CHECK_INT(wrong_attempt, 0);
    inv_of(total - 1, inv);
    sender_dedupe_done(&s, inv, 6); /* a later attempt of a remembered one */
    CHECK(sender_dedupe_recent(&s, inv, strlen(inv), 6));
    sender_dedupe_forget(&s, inv, strlen(inv));
    CHECK(!sender_dedupe_recent(&s, inv, strlen(inv), 1));
    CHECK(!sender_dedupe_recent(&s, "inv_nope", 8, 1));
    sender_dedupe_close(&s);
}

static void test_jobs(void)
{
    sender_t s = {0};
    enum { N = 20000 };
    sender_job_t *jobs = calloc(N, sizeof *jobs);
    char(*ids)[INVOCATION_ID_LEN] = calloc(N, INVOCATION_ID_LEN);
    for (int i = 0; i < N; i++) {
        inv_of(i / 2, ids[i]); /* two attempts of each invocation */
        jobs[i].inv = ids[i];
        jobs[i].attempt = 1 + i % 2;
        sender_dedupe_add(&s, &jobs[i]);
        CHECK(jobs[i].indexed);
    }
    sender_job_t twin = {.inv = ids[0], .attempt = 1};
    sender_dedupe_add(&s, &twin);
    CHECK(!twin.indexed); /* a live twin: the first one answers */
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += sender_dedupe_find(&s, ids[i], 1 + i % 2) != &jobs[i];
    CHECK_INT(bad, 0);
    for (int i = 0; i < N; i += 2) /* every first attempt goes */
        sender_dedupe_remove(&s, &jobs[i]);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += sender_dedupe_find(&s, ids[i], 1 + i % 2) != (i % 2 ? &jobs[i] : NULL);
    CHECK_INT(bad, 0);
    sender_dedupe_close(&s);
    free(jobs);
    free(ids);
}

int main(void)
{
    test_recent();
    test_jobs();
    return check_done("sender_dedupe");
}
