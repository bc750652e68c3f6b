/* dedupe_tab.c - the dedupe index's pending table: the keys held (their event's journal sync
 * under way) or committed and not yet written to a segment. Open addressing with linear probing
 * and backward-shift deletion; a slot carries its entry's hash, so a probe for a new key reads
 * one cache line and no entry. Short entries are reused from a free list. Loop thread only. */
#include "dedupe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DD_TAB_MIN 1024u   /* slots of a new table */
#define DD_TAB_KEEP 65536u /* a bigger table is given back once it empties (a burst is over) */

ingest_dedupe_entry_t *dedupe_tab_find(const ingest_dedupe_t *d, uint64_t hash, const char *key,
                                       size_t len)
{
    if (!d->tabcap) return NULL;
    size_t mask = d->tabcap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const dd_tslot_t *t = &d->tab[i];
        if (!t->e) return NULL; /* at most half full: an empty slot ends every run */
        if (t->hash == hash && t->e->len == len && memcmp(t->e->key, key, len) == 0) return t->e;
    }
}

void dedupe_tab_prefetch(const ingest_dedupe_t *d, uint64_t hash)
{
    if (d->tabcap) __builtin_prefetch(&d->tab[hash & (d->tabcap - 1)]);
}

/* dd_tab_put puts e into the first empty slot of its run. */
static void dd_tab_put(dd_tslot_t *tab, size_t cap, ingest_dedupe_entry_t *e)
{
    size_t i = e->hash & (cap - 1);
    while (tab[i].e)
        i = (i + 1) & (cap - 1);
    tab[i] = (dd_tslot_t){e->hash, e};
}

int dedupe_tab_add(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if ((d->tabn + 1) * 2 > d->tabcap) { /* at most half full: short runs */
        size_t cap = d->tabcap ? d->tabcap * 2 : DD_TAB_MIN;
        dd_tslot_t *t = calloc(cap, sizeof *t);
        if (!t) return -ENOMEM;
        for (size_t i = 0; i < d->tabcap; i++)
            if (d->tab[i].e) dd_tab_put(t, cap, d->tab[i].e);
        free(d->tab);
        d->tab = t;
        d->tabcap = cap;
    }
    dd_tab_put(d->tab, d->tabcap, e);
    e->in_table = 1;
    e->refs++;
    d->tabn++;
    return 0;
}

void dedupe_tab_remove(ingest_dedupe_t *d, ingest_dedupe_entry_t *e)
{
    if (!e->in_table) return;
    size_t mask = d->tabcap - 1, hole = e->hash & mask;
    while (d->tab[hole].e != e)
        hole = (hole + 1) & mask;
    /* Backward shift: a later member of the run moves into the hole unless its home slot lies
     * cyclically in (hole, j], so that every run stays unbroken without tombstones. */
    for (size_t j = (hole + 1) & mask; d->tab[j].e; j = (j + 1) & mask) {
        size_t home = d->tab[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            d->tab[hole] = d->tab[j];
            hole = j;
        }
    }
    d->tab[hole] = (dd_tslot_t){0, NULL};
    e->in_table = 0;
    d->tabn--;
    if (d->tabn == 0 && d->tabcap > DD_TAB_KEEP) {
        free(d->tab);
        d->tab = NULL;
        d->tabcap = 0;
    }
    ingest_dedupe_unref(e);
}

void dedupe_tab_clear(ingest_dedupe_t *d)
{
    for (size_t i = 0; i < d->tabcap; i++) {
        ingest_dedupe_entry_t *e = d->tab[i].e;
        if (!e) continue;
        e->in_table = 0;
        ingest_dedupe_unref(e);
    }
    free(d->tab);
    d->tab = NULL;
    d->tabcap = d->tabn = 0;
}

/* Pending entries come and go at the event rate: short ones are reused from a free list (loop
 * thread only, shared by every index of the process). */
static ingest_dedupe_entry_t *dd_pool;
static size_t dd_pool_n;

ingest_dedupe_entry_t *dedupe_entry_new(uint64_t hash, const char *key, size_t len)
{
    ingest_dedupe_entry_t *e;
    int pooled = sizeof *e + len <= DD_ENTRY_BYTES;
    if (pooled && dd_pool) {
        e = dd_pool;
        dd_pool = e->next;
        dd_pool_n--;
        memset(e, 0, sizeof *e);
    } else if (!(e = calloc(1, pooled ? DD_ENTRY_BYTES : sizeof *e + len))) {
        return NULL;
    }
    e->pooled = pooled;
    e->hash = hash;
    e->len = (uint32_t)len;
    memcpy(e->key, key, len);
    return e;
}

void dedupe_entry_free(ingest_dedupe_entry_t *e)
{
    if (e->pooled && dd_pool_n < DD_POOL_MAX) {
        e->next = dd_pool;
        dd_pool = e;
        dd_pool_n++;
        return;
    }
    free(e);
}
