/* sched_entry.h - one pending retry as the scheduler holds it in memory: its id, attempt, due
 * time and journal position, and where it is (due heap or dispatcher). */
#ifndef HL_SCHED_ENTRY_H
#define HL_SCHED_ENTRY_H

#include "util/journal.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { ENTRY_NEW = 0, ENTRY_WAITING, ENTRY_DISPATCHED } entry_state_t;

#define SCHED_ID_BIN 16 /* bytes of a packed "inv_" + 32 hex id */

struct sched_flight;

/* One pending retry: 56 bytes, plus a slot or two in the index's hash table and one in the due
 * heap (about 82 bytes of RSS each at a million; the budget is 128, docs/PERFORMANCE.md).
 * Everything else about the job stays in its journal record at pos. */
typedef struct sched_entry {
    union {
        uint8_t bin[SCHED_ID_BIN]; /* id_text 0: the id is "inv_" + these bytes in hex */
        char *text;                /* id_text 1: any other id, malloc'd (sched_id.c) */
    } id;
    int64_t due;  /* unix ms */
    uint64_t gen; /* of its journal record; done markers name it */
    journal_pos_t pos;
    union {
        size_t slot;                 /* ENTRY_WAITING: its index in the due heap */
        struct sched_flight *flight; /* ENTRY_DISPATCHED: its dispatch record */
        struct sched_entry *free;    /* unused: the next free entry of the index */
    } at;
    int32_t attempt; /* the attempt this entry will make */
    uint8_t state;   /* entry_state_t */
    uint8_t id_text;
} sched_entry_t;

#endif
