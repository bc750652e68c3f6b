/* test_dispatch.c - windows per peer, least-loaded first, requeue on peer loss, acks, cancel. */
#include "check.h"
#include "util/dispatch.h"

#include <stdint.h>

typedef struct item {
    dispatch_item_t it; /* first */
    int id;
} item_t;

typedef struct sent {
    conn_t *c;
    int id;
    uint64_t seq;
} sent_t;

static sent_t sent[64];
static int nsent;

/* record_send is the dispatcher's send callback: it only records what went where. */
static void record_send(void *ctx, conn_t *c, dispatch_item_t *it, uint64_t seq)
{
    sent[nsent++] = (sent_t){c, ((item_t *)it)->id, seq};
}

int main(void)
{
    dispatch_t *d;
    item_t items[8];
    /* conn_t is opaque to the dispatcher: two distinct addresses stand in for peers */
    static char a_, b_;
    conn_t *A = (conn_t *)&a_, *B = (conn_t *)&b_;
    CHECK_INT(dispatch_init(&d, 2, record_send, NULL), 0);
    for (int i = 0; i < 8; i++)
        items[i].id = i;

    /* no peer: everything waits */
    for (int i = 0; i < 5; i++)
        dispatch_push(d, &items[i].it);
    CHECK_INT(nsent, 0);
    CHECK_INT(dispatch_queued(d), 5);

    /* one peer takes its window (2), the second one the next 2, least loaded first */
    CHECK_INT(dispatch_add_peer(d, A), 0);
    CHECK_INT(nsent, 2);
    CHECK(sent[0].c == A && sent[0].id == 0 && sent[1].id == 1);
    CHECK_INT(dispatch_add_peer(d, B), 0);
    CHECK_INT(nsent, 4);
    CHECK(sent[2].c == B && sent[3].c == B);
    CHECK_INT(dispatch_inflight(d), 4);
    CHECK_INT(dispatch_queued(d), 1);

    /* an ack frees a slot and the queue moves */
    dispatch_item_t *got = dispatch_ack(d, A, sent[0].seq);
    CHECK(got == &items[0].it);
    CHECK_INT(nsent, 5);
    CHECK(sent[4].c == A && sent[4].id == 4);
    /* a stale ack (wrong connection, or unknown seq) changes nothing */
    CHECK(dispatch_ack(d, B, sent[1].seq) == NULL);
    CHECK(dispatch_ack(d, A, 9999) == NULL);

    /* losing B puts its two items back at the front; A has no room */
    dispatch_remove_peer(d, B);
    CHECK_INT(dispatch_queued(d), 2);
    CHECK_INT(dispatch_inflight(d), 2);
    CHECK_INT(nsent, 5);

    /* cancelling an in-flight item frees its slot and refills it at once */
    dispatch_cancel(d, &items[1].it);
    CHECK_INT(nsent, 6);
    CHECK(sent[5].c == A && sent[5].id == 2); /* B's oldest went first */
    CHECK_INT(dispatch_queued(d), 1);

    /* the old seq of a cancelled item is unknown afterwards */
    CHECK(dispatch_ack(d, A, sent[1].seq) == NULL);

    /* pop_any drains every item once, queued or in flight */
    int seen = 0;
    dispatch_item_t *x;
    while ((x = dispatch_pop_any(d)))
        seen++;
    CHECK_INT(seen, 3);
    CHECK_INT(dispatch_queued(d) + dispatch_inflight(d), 0);
    dispatch_close(d);
    return check_done("dispatch");
}
