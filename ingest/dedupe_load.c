/* dedupe_load.c - reading the dedupe index's segment files at open: a sealed segment's filter
 * from its slots, an unsealed one's slots and filter from its key records (a torn tail cut off
 * and logged), a damaged file set aside. */
#include "dedupe.h"

#include "util/crc32c.h"
#include "util/fsmode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dd_seg_rebuild reads an unsealed segment's key records into its in-memory slots, cutting off
 * a torn tail (logged with the file and offset). Returns 0 or a negative errno (logged). */
static int dd_seg_rebuild(ingest_dedupe_t *d, dd_seg_t *s, uint64_t size)
{
    s->tlog2 = s->log2 < DD_MEM_LOG2 ? s->log2 : DD_MEM_LOG2;
    if (!(s->mem = dedupe_slots_alloc(dd_slots(s)))) {
        log_error("dedupe: %s: out of memory rebuilding it", s->path);
        return -ENOMEM;
    }
    s->in_mem = 1;
    size_t bufsize = (1u << 20) + DD_REC + DD_KEY_MAX;
    char *buf = malloc(bufsize);
    if (!buf) {
        log_error("dedupe: %s: out of memory rebuilding it", s->path);
        return -ENOMEM;
    }
    uint64_t base = s->key_end; /* file offset of buf[0] */
    size_t have = 0, pos = 0;
    const char *why = NULL;
    for (;;) {
        size_t left = have - pos, need = DD_REC;
        uint32_t hdr[3] = {0, 0, 0};
        if (left >= DD_REC) {
            memcpy(hdr, buf + pos, DD_REC);
            if (hdr[0] == 0 || hdr[0] > DD_KEY_MAX) {
                why = "damaged";
                break;
            }
            need = DD_REC + hdr[0];
        }
        if (left < need) { /* read on, behind what is left */
            memmove(buf, buf + pos, left);
            base += pos;
            have = left;
            pos = 0;
            ssize_t got = dedupe_pread_full(s->fd, buf + have, bufsize - have, base + have);
            if (got <= 0) {
                if (got < 0 || left) why = got < 0 ? "unreadable" : "cut short";
                break;
            }
            have += (size_t)got;
            continue;
        }
        if (crc32c(0, buf + pos + 8, 4 + (size_t)hdr[0]) != hdr[1]) {
            why = "damaged";
            break;
        }
        const char *key = buf + pos + DD_REC;
        uint64_t hash = dd_hash(key, hdr[0]);
        if (dedupe_seg_insert(s, hash, key, hdr[0], base + pos, hdr[2]) < 0) {
            why = "beyond memory";
            break;
        }
        dd_bloom_add(s, hash);
        s->entries++;
        if (hdr[2] > s->t_last) s->t_last = hdr[2];
        pos += need;
    }
    uint64_t off = base + pos;
    free(buf);
    s->key_end = off;
    if (why) {
        s->damage_logged = 1;
        d->damaged++;
        log_warn("dedupe: %s: key record at offset %" PRIu64 " %s (a write lost in a crash): the "
                 "%" PRIu64 " bytes from there are dropped; the journal puts back the keys of the "
                 "events it still holds",
                 s->path, off, why, size - off);
        if (ftruncate(s->fd, (off_t)off) < 0)
            log_error("dedupe: %s: cutting off the tail: %s", s->path, strerror(errno));
    }
    return 0;
}

/* dd_seg_read opens an existing segment at open: a sealed one's filter is rebuilt from its
 * slots; an unsealed one (it was taking keys when ingest stopped) from its key records, and it is
 * sealed now. Returns the segment, or NULL when the file was set aside (logged). */
static dd_seg_t *dd_seg_read(ingest_dedupe_t *d, uint64_t no, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    dd_header_t h;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_error("dedupe: %s: %s; its keys are forgotten", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    char err[512];
    if (fsmode_tighten_file(path, err, sizeof err) < 0) log_warn("dedupe: %s", err);
    ssize_t got = dedupe_pread_full(fd, &h, sizeof h, 0);
    if (got != (ssize_t)sizeof h || memcmp(h.magic, DD_MAGIC, 8) != 0 || h.log2 < 4 ||
        h.log2 > 28 || h.sealed > 1 || (h.sealed && (h.tlog2 < 4 || h.tlog2 > h.log2))) {
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.damaged", path);
        log_error("dedupe: %s: not an index segment (header %s, %lld bytes); renamed to %s and "
                  "its keys forgotten; the journal puts back the keys of the events it holds",
                  path, got < (ssize_t)sizeof h ? "cut short" : "damaged", (long long)st.st_size,
                  aside);
        close(fd);
        if (rename(path, aside) < 0) unlink(path);
        return NULL;
    }
    dd_seg_t *s = dedupe_seg_alloc(d, no, h.log2);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->fd = fd;
    s->t_first = s->t_last = h.t_first;
    if (h.sealed) s->tlog2 = h.tlog2;
    uint64_t table_end = DD_HEADER + dd_region(s) * DD_SLOT;
    if ((uint64_t)st.st_size < table_end) {
        log_error("dedupe: %s: cut short at %lld bytes (%" PRIu64 " expected); the slots past "
                  "that are empty now and the keys forgotten; the journal puts back the keys of "
                  "the events it holds",
                  path, (long long)st.st_size, table_end);
        if (ftruncate(fd, (off_t)table_end) < 0)
            log_error("dedupe: %s: extending: %s", path, strerror(errno));
        st.st_size = (off_t)table_end;
        h.sealed = 0;
    }
    s->key_end = table_end;
    if (!h.sealed) { /* dedupe_load seals it, or goes on filling it */
        if (dd_seg_rebuild(d, s, (uint64_t)st.st_size) < 0) {
            dedupe_seg_free(s); /* its keys come back from the journal's replay */
            return NULL;
        }
        return s;
    }
    s->key_end = (uint64_t)st.st_size;
    size_t chunk = 65536;
    dd_slot_t *buf = malloc(chunk * DD_SLOT);
    uint64_t dangling = 0;
    for (uint64_t i = 0; buf && i < dd_slots(s); i += chunk) {
        uint64_t want = dd_slots(s) - i < chunk ? dd_slots(s) - i : chunk;
        got = dedupe_pread_full(fd, buf, want * DD_SLOT, DD_HEADER + i * DD_SLOT);
        if (got < 0) break;
        for (size_t k = 0; k < (size_t)got / DD_SLOT; k++) {
            if (!buf[k].hash) continue;
            s->entries++;
            if (buf[k].time > s->t_last) s->t_last = buf[k].time;
            if ((uint64_t)buf[k].off + DD_REC > s->key_end || buf[k].off < table_end) dangling++;
            dd_bloom_add(s, buf[k].hash);
        }
    }
    free(buf);
    if (dangling) {
        s->damage_logged = 1;
        d->damaged += dangling;
        log_warn("dedupe: %s: %" PRIu64 " slots name keys past the end of the file (writes cut "
                 "short by a crash); they are ignored, and the journal puts back the keys of the "
                 "events it still holds",
                 path, dangling);
    }
    return s;
}

/* dd_cmp_u64 orders segment numbers. */
static int dd_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* dedupe_load reads every segment in the directory, oldest first. Returns 0 or a negative errno. */
int dedupe_load(ingest_dedupe_t *d, char *err, size_t errlen)
{
    DIR *dir = opendir(d->dir);
    if (!dir) {
        snprintf(err, errlen, "%s: %s", d->dir, strerror(errno));
        return -errno;
    }
    uint64_t *nos = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        uint64_t no;
        char tail[8];
        if (sscanf(de->d_name, "seg-%16" SCNx64 ".dd%1s", &no, tail) != 2 ||
            strcmp(tail, "x") != 0 || strlen(de->d_name) != 24)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *v = realloc(nos, cap * sizeof *v);
            if (!v) {
                closedir(dir);
                free(nos);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            nos = v;
        }
        nos[n++] = no;
    }
    closedir(dir);
    if (n) qsort(nos, n, sizeof *nos, dd_cmp_u64);
    dd_seg_t **tail = &d->segs;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, DD_NAME_FMT, nos[i]);
        if (nos[i] >= d->next_no) d->next_no = nos[i] + 1;
        dd_seg_t *s = dd_seg_read(d, nos[i], name);
        if (!s) continue;
        *tail = s;
        tail = &s->next;
    }
    free(nos);
    /* Segments that were taking keys when ingest stopped are sealed now, but the newest one goes
     * on taking keys while it may (a restart does not start a new file). */
    uint64_t now = dd_now(d);
    for (dd_seg_t *s = d->segs; s; s = s->next) {
        if (!s->mem) continue;
        if (!s->next && dedupe_seg_fits(d, s, 0, now)) {
            d->hot = s;
            break;
        }
        char e2[512];
        if (dedupe_seg_seal(s, d->o.do_fsync, e2, sizeof e2) < 0) {
            log_error("dedupe: %s; its slots stay in memory", e2);
            continue;
        }
        dedupe_slots_free(s);
    }
    return 0;
}
