/* fuzz_journal.c - libFuzzer target for journal recovery: arbitrary bytes as segment files
 * (raw, or behind a valid header, or split over two segments), then journal_open + replay, an
 * append + sync, and a second open + replay that must give back the same records plus the new
 * one: recovery never crashes, never hangs, and leaves a journal it can read again. */
#include "fuzz.h"

#include "util/crc32c.h"
#include "util/journal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_NAME "fz"
#define FUZZ_MAX_RECS 4096

static const char fuzz_hdr[8] = "HLJNL1\n"; /* and its NUL: the 8-byte segment header */

/* The records one replay gave: position, length and CRC of each. */
typedef struct fuzz_recs {
    size_t n;
    journal_pos_t pos[FUZZ_MAX_RECS];
    size_t len[FUZZ_MAX_RECS];
    uint32_t crc[FUZZ_MAX_RECS];
} fuzz_recs_t;

/* fuzz_collect is the replay callback: it reads every byte of the record. */
static int fuzz_collect(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    fuzz_recs_t *r = arg;
    FUZZ_ASSERT(len > 0 && len <= JOURNAL_RECORD_MAX, "record of %zu bytes", len);
    uint32_t crc = crc32c(0, rec, len); /* touches every byte: ASan sees any overread */
    if (r->n < FUZZ_MAX_RECS) {
        r->pos[r->n] = pos;
        r->len[r->n] = len;
        r->crc[r->n] = crc;
    }
    r->n++;
    return 0;
}

/* fuzz_rm removes one path for nftw. */
static int fuzz_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

/* fuzz_write_seg writes segment num of the journal: an optional header, then bytes. */
static void fuzz_write_seg(const char *dir, uint32_t num, int header, const uint8_t *data,
                           size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%016" PRIx32 ".jnl", dir, FUZZ_NAME, num);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_ASSERT(fd >= 0, "create %s: %s", path, strerror(errno));
    if (header) FUZZ_ASSERT(write(fd, fuzz_hdr, sizeof fuzz_hdr) == sizeof fuzz_hdr, "write");
    FUZZ_ASSERT(size == 0 || write(fd, data, size) == (ssize_t)size, "write %s", path);
    close(fd);
}

/* fuzz_open_replay opens the journal and replays it into recs. */
static journal_t *fuzz_open_replay(const char *dir, size_t segmax, fuzz_recs_t *recs)
{
    journal_t *j;
    char err[512];
    memset(recs, 0, sizeof *recs);
    int r = journal_open(&j, dir, FUZZ_NAME, segmax, err, sizeof err);
    FUZZ_ASSERT(r == 0, "journal_open: %s", err);
    r = journal_replay(j, fuzz_collect, recs);
    FUZZ_ASSERT(r == 0, "journal_replay: %d (%s)", r, strerror(-r));
    return j;
}

/* fuzz_check_read: journal_read gives back every replayed record. */
static void fuzz_check_read(journal_t *j, const fuzz_recs_t *recs)
{
    for (size_t i = 0; i < recs->n && i < FUZZ_MAX_RECS; i++) {
        void *rec;
        size_t len;
        int r = journal_read(j, recs->pos[i], &rec, &len);
        FUZZ_ASSERT(r == 0, "journal_read of replayed record %zu: %d", i, r);
        FUZZ_ASSERT(len == recs->len[i] && crc32c(0, rec, len) == recs->crc[i],
                    "journal_read of record %zu differs from its replay", i);
        free(rec);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_recs_t first, second;
    static const uint32_t nums[4] = {1, 2, 7, UINT32_MAX - 1};
    static int inited;
    char dir[256], err[512];
    if (!inited) {
        log_init("fuzz_journal", "0", LOG_LVL_ERROR + 1); /* replay warnings are expected */
        inited = 1;
    }
    if (size < 1) return 0;
    /* byte 0: bits 0-1 layout, bits 2-3 the (newest) segment number, bit 4 small segments */
    unsigned mode = data[0] & 3, numsel = (data[0] >> 2) & 3;
    size_t segmax = data[0] & 16 ? 64 : 0;
    data++, size--;

    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/hookline-fuzz-journal.XXXXXX", tmp);
    FUZZ_ASSERT(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    uint32_t num = nums[numsel];
    switch (mode) {
    case 0: /* the bytes as they are */
        fuzz_write_seg(dir, num, 0, data, size);
        break;
    case 1: /* behind a valid header */
        fuzz_write_seg(dir, num, 1, data, size);
        break;
    default: { /* split over an older and a newer segment, the older with a header */
        size_t cut = size / 2;
        uint32_t older = num > 1 ? num - 1 : 1, newer = older + 1;
        fuzz_write_seg(dir, older, 1, data, cut);
        fuzz_write_seg(dir, newer, mode == 3, data + cut, size - cut);
        break;
    }
    }

    journal_t *j = fuzz_open_replay(dir, segmax, &first);
    fuzz_check_read(j, &first);
    static const char rec[] = "fuzz: a record appended after recovery";
    journal_pos_t pos;
    int r = journal_append(j, rec, sizeof rec, 1, &pos, err, sizeof err);
    int appended = r == 0;
    /* the only refusal allowed: segment numbers exhausted at the very top */
    FUZZ_ASSERT(r == 0 || r == -EFBIG, "journal_append: %s", err);
    if (appended) {
        r = journal_sync(j, 1, err, sizeof err);
        FUZZ_ASSERT(r == 0, "journal_sync: %s", err);
        void *back;
        size_t len;
        FUZZ_ASSERT(journal_read(j, pos, &back, &len) == 0 && len == sizeof rec &&
                        memcmp(back, rec, len) == 0,
                    "appended record does not read back");
        free(back);
    }
    journal_close(j);

    /* recovery must have left a journal that replays the same records, plus the new one */
    j = fuzz_open_replay(dir, segmax, &second);
    FUZZ_ASSERT(second.n == first.n + (size_t)appended,
                "first replay %zu records, second %zu (appended %d)", first.n, second.n, appended);
    for (size_t i = 0; i < first.n && i < FUZZ_MAX_RECS; i++)
        FUZZ_ASSERT(second.pos[i] == first.pos[i] && second.len[i] == first.len[i] &&
                        second.crc[i] == first.crc[i],
                    "record %zu changed across recovery", i);
    if (appended && first.n < FUZZ_MAX_RECS)
        FUZZ_ASSERT(second.pos[first.n] == pos && second.len[first.n] == sizeof rec,
                    "appended record not replayed last");
    fuzz_check_read(j, &second);
    journal_close(j);
    FUZZ_ASSERT(nftw(dir, fuzz_rm, 8, FTW_DEPTH | FTW_PHYS) == 0, "remove %s", dir);
    return 0;
}
