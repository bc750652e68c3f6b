/* store_repair.h - the delivery log repaired from the journals at a stage's start. Each live
 * status has one owner whose journal is its truth: `pending` (a router's attempt 1 in flight)
 * belongs to ingest, which holds the event until every invocation's outcome is durable;
 * `retrying` (the scheduler holds the invocation's next attempt) belongs to the scheduler. After
 * its replay the owner loads its stale live records (store_repair_open), marks those it still
 * holds, and re-sends or ends the others (docs/DURABILITY.md, "The delivery log"). */
#ifndef HL_STORE_REPAIR_H
#define HL_STORE_REPAIR_H

#include "domain/store.h"

typedef struct store_repair store_repair_t;

/* store_repair_open loads every record in status st (DLV_PENDING or DLV_RETRYING) last updated
 * before before_ms, on a connection of its own to db_path (which waits for the write lock up to
 * a few seconds: this runs once, at start). Returns 0 or a negative errno with err. */
int store_repair_open(store_repair_t **rp, const char *db_path, delivery_status_t st,
                      int64_t before_ms, char *err, size_t errlen);
/* store_repair_count: the records loaded. */
size_t store_repair_count(const store_repair_t *r);
/* store_repair_row: the i-th record (0 <= i < count), sorted by event id; *held set when the
 * stage said it holds it. Owned by r. */
const delivery_t *store_repair_row(const store_repair_t *r, size_t i, int *held);
/* store_repair_hold_row: the stage holds record i: it is left as it is. */
void store_repair_hold_row(store_repair_t *r, size_t i);
/* store_repair_hold_event: the stage holds event event_id (n bytes): every record of it is left
 * as it is. A binary search: fine for one call per held event. */
void store_repair_hold_event(store_repair_t *r, const char *event_id, size_t n);
/* store_repair_fail ends record i as failed with error why, unless a stage has updated it since
 * the load. Returns 1 when ended, 0 when it had moved on, or a negative errno with err. */
int store_repair_fail(store_repair_t *r, size_t i, const char *why, char *err, size_t errlen);
/* store_repair_close frees r and closes its connection. */
void store_repair_close(store_repair_t *r);

#endif
