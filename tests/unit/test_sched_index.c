/* test_sched_index.c - the scheduler's id packing, hash index and due heap against a plain
 * model: random adds, finds, removes and heap pops, with binary and text ids. */
#include "../../scheduler/sched_heap.h"
#include "../../scheduler/sched_id.h"
#include "../../scheduler/sched_index.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 3000

typedef struct model {
    char id[INVOCATION_ID_LEN];
    int present, in_heap;
    int64_t due;
    sched_entry_t *e;
} model_t;

static model_t m[N];

/* make_id: "inv_" + 32 hex for most, an arbitrary text id for every seventh. */
static void make_id(int i, char *out)
{
    if (i % 7 == 0)
        snprintf(out, INVOCATION_ID_LEN, "custom-%d.x", i);
    else
        snprintf(out, INVOCATION_ID_LEN, "inv_%08x%08x%08x%08x", (unsigned)i * 2654435761u,
                 (unsigned)i, (unsigned)(i * 7), 0xabcdef01u);
}

/* heap_min_model returns the model index with the smallest (due, id) among heap members. */
static int heap_min_model(void)
{
    int best = -1;
    for (int i = 0; i < N; i++) {
        if (!m[i].in_heap) continue;
        if (best < 0 || m[i].due < m[best].due ||
            (m[i].due == m[best].due && strcmp(m[i].id, m[best].id) < 0))
            best = i;
    }
    return best;
}

int main(void)
{
    sched_index_t ix;
    sched_heap_t h;
    char buf[INVOCATION_ID_LEN];
    sched_index_init(&ix);
    sched_heap_init(&h);
    srand(12345);
    for (int i = 0; i < N; i++)
        make_id(i, m[i].id);

    int mismatches = 0, heap_errors = 0;
    for (int step = 0; step < 40000; step++) {
        int i = rand() % N, op = rand() % 10;
        if (op < 4 && !m[i].present) { /* add, and wait in the heap */
            sched_entry_t *e;
            CHECK_INT(sched_index_add(&ix, m[i].id, strlen(m[i].id), &e), 0);
            CHECK_INT(sched_heap_reserve(&h, sched_index_count(&ix)), 0);
            e->due = m[i].due = rand() % 50; /* many equal due times: the id breaks ties */
            e->state = ENTRY_WAITING;
            sched_heap_push(&h, e);
            m[i].present = m[i].in_heap = 1;
            m[i].e = e;
        } else if (op < 6 && m[i].present) { /* remove */
            if (m[i].in_heap) sched_heap_remove(&h, m[i].e);
            sched_index_remove(&ix, m[i].e);
            m[i].present = m[i].in_heap = 0;
            m[i].e = NULL;
        } else if (op < 7) { /* pop the earliest */
            int want = heap_min_model();
            sched_entry_t *top = sched_heap_top(&h);
            if (want < 0) {
                heap_errors += top != NULL;
            } else {
                heap_errors += top != m[want].e;
                sched_heap_remove(&h, top);
                top->state = ENTRY_NEW;
                m[want].in_heap = 0;
            }
        } else { /* find */
            sched_entry_t *e = sched_index_find(&ix, m[i].id, strlen(m[i].id));
            mismatches += m[i].present ? e != m[i].e : e != NULL;
            if (e) mismatches += strcmp(sched_id_str(e, buf), m[i].id) != 0;
        }
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(heap_errors, 0);
    size_t count = 0, cursor = 0;
    for (int i = 0; i < N; i++)
        count += m[i].present;
    CHECK_INT(sched_index_count(&ix), count);
    size_t seen = 0;
    while (sched_index_next(&ix, &cursor))
        seen++;
    CHECK_INT(seen, count);
    /* ids that are not "inv_" + 32 lowercase hex survive as text */
    sched_entry_t *e;
    CHECK_INT(sched_index_add(&ix, "inv_ABCDEF", 10, &e), 0);
    CHECK_STR(sched_id_str(e, buf), "inv_ABCDEF");
    CHECK(sched_index_find(&ix, "inv_ABCDEF", 10) == e);
    sched_heap_close(&h);
    sched_index_close(&ix);
    return check_done("sched_index");
}
