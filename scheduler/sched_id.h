/* sched_id.h - invocation ids packed into a sched_entry_t: 16 bytes for every id the router
 * makes, a malloc'd copy for any other. */
#ifndef HL_SCHED_ID_H
#define HL_SCHED_ID_H

#include "domain/payload.h"
#include "sched_entry.h"

/* sched_id_set stores id inv (n bytes) in e: packed when it is "inv_" + 32 lowercase hex (every
 * id payload_invocation_id makes), else a malloc'd copy. Returns 0 or -ENOMEM. */
int sched_id_set(sched_entry_t *e, const char *inv, size_t n);
/* sched_id_key fills the id of a lookup key k like sched_id_set, without allocating: a text id
 * points into buf. Returns 0, or -EINVAL when n is too long to be any entry's id. */
int sched_id_key(sched_entry_t *k, const char *inv, size_t n, char buf[INVOCATION_ID_LEN]);
/* sched_id_clear frees a text id. */
void sched_id_clear(sched_entry_t *e);
/* sched_id_str returns e's id as text: the text id itself, or buf filled. */
const char *sched_id_str(const sched_entry_t *e, char buf[INVOCATION_ID_LEN]);
/* sched_id_cmp orders ids as their text (strcmp); sched_id_equal: same id. */
int sched_id_cmp(const sched_entry_t *a, const sched_entry_t *b);
int sched_id_equal(const sched_entry_t *a, const sched_entry_t *b);
/* sched_id_hash hashes an id with a per-process seed. */
uint64_t sched_id_hash(const sched_entry_t *e, uint64_t seed);

#endif
