/* test_journal.c - journal records and segments: append/sync/replay, torn and corrupt tails, a
 * failed write rolled back, segment roll and deletion, journal_read; plus CRC-32C vectors. */
#include "check.h"
#include "util/crc32c.h"
#include "util/journal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXREC 64

typedef struct seen {
    int n;
    journal_pos_t pos[MAXREC];
    char rec[MAXREC][128];
} seen_t;

static char dir[64];
static char err[512];

/* collect records each replayed record. */
static int collect(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    seen_t *s = arg;
    if (s->n < MAXREC) {
        s->pos[s->n] = pos;
        snprintf(s->rec[s->n], sizeof s->rec[0], "%.*s", (int)len, (const char *)rec);
    }
    s->n++;
    return 0;
}

/* stop_at_two asks replay to stop at the second record. */
static int stop_at_two(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    return ++*(int *)arg == 2 ? -ECANCELED : 0;
}

/* rm_entry removes one path for nftw. */
static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

/* seg_path formats the file of segment num of journal "t". */
static const char *seg_path(uint32_t num)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/t-%016x.jnl", dir, num);
    return p;
}

/* file_size returns the size of path or -1. */
static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* reopen closes j and opens/replays the journal again, with stderr captured into log. */
static journal_t *reopen(journal_t *j, size_t segmax, seen_t *s, char *log, size_t loglen)
{
    char lp[128];
    journal_t *nj = NULL;
    journal_close(j);
    memset(s, 0, sizeof *s);
    CHECK_INT(journal_open(&nj, dir, "t", segmax, err, sizeof err), 0);
    snprintf(lp, sizeof lp, "%s/stderr.txt", dir);
    int saved = dup(2), fd = open(lp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    CHECK_INT(journal_replay(nj, collect, s), 0);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, log, loglen - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(lp);
    return nj;
}

/* append_str appends a NUL-less string record and checks success. */
static journal_pos_t append_str(journal_t *j, const char *s, int live)
{
    journal_pos_t pos = 0;
    CHECK_INT(journal_append(j, s, strlen(s), live, &pos, err, sizeof err), 0);
    return pos;
}

/* test_crc checks the standard CRC-32C vectors, incremental use and the sliced path. */
static void test_crc(void)
{
    unsigned char big[1000];
    CHECK_INT(crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_INT(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    CHECK_INT(crc32c(0, "", 0), 0);
    memset(big, 0, 32);
    CHECK_INT(crc32c(0, big, 32), 0x8A9136AAu); /* RFC 3720 B.4: 32 bytes of zeros */
    memset(big, 0xff, 32);
    CHECK_INT(crc32c(0, big, 32), 0x62A8AB43u); /* 32 bytes of 0xff */
    for (int i = 0; i < 1000; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    uint32_t bytewise = 0;
    for (int i = 0; i < 1000; i++)
        bytewise = crc32c(bytewise, big + i, 1);
    CHECK_INT(crc32c(0, big, 1000), bytewise);
}

/* test_log: the line format, the level filter and newlines folded into spaces. */
static void test_log(void)
{
    char lp[128], buf[512];
    snprintf(lp, sizeof lp, "%s/log.txt", dir);
    int saved = dup(2), fd = open(lp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    log_init("hook-test", "7", LOG_LVL_INFO);
    log_debug("hidden %d", 1);
    log_warn("two\nlines %s", "here");
    log_error("x");
    log_init("hookline", "0", LOG_LVL_INFO);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(lp);
    CHECK_STR(buf, "hook-test[7] warn: two lines here\nhook-test[7] error: x\n");
    CHECK_INT(log_level_parse("debug"), LOG_LVL_DEBUG);
    CHECK_INT(log_level_parse("error"), LOG_LVL_ERROR);
    CHECK_INT(log_level_parse("loud"), -1);
}

/* test_basic: append, read from memory, sync, replay after reopen, read from disk. */
static void test_basic(void)
{
    journal_t *j = NULL;
    seen_t s = {0};
    char log[2048];
    void *rec;
    size_t len;
    journal_pos_t pos = 0;

    CHECK_INT(journal_open(&j, dir, "t", 0, err, sizeof err), 0);
    CHECK_INT(journal_append(j, "x", 1, 1, &pos, err, sizeof err), -EINVAL); /* before replay */
    journal_t *again = NULL;
    CHECK_INT(journal_open(&again, dir, "t", 0, err, sizeof err), -EBUSY);
    CHECK(again == NULL);
    CHECK_INT(journal_replay(j, collect, &s), 0);
    CHECK_INT(s.n, 0);
    CHECK_INT(journal_append(j, "", 0, 1, &pos, err, sizeof err), -EINVAL);
    journal_pos_t p1 = append_str(j, "alpha", 1);
    journal_pos_t p2 = append_str(j, "beta", 1);
    journal_pos_t p3 = append_str(j, "gamma-marker", 0);
    CHECK_INT(p1 >> 32, 1);
    CHECK_INT(p1 & 0xffffffff, 8);
    CHECK_INT(p2 & 0xffffffff, 8 + 8 + 5);
    CHECK_INT(journal_read(j, p2, &rec, &len), 0); /* still in memory */
    CHECK(len == 4 && memcmp(rec, "beta", 4) == 0);
    free(rec);
    journal_stats_t st;
    journal_get_stats(j, &st);
    CHECK_INT(st.segments, 1);
    CHECK_INT(st.live_records, 2);
    CHECK_INT(file_size(seg_path(1)), -1); /* nothing written yet */
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    CHECK_INT(file_size(seg_path(1)), 8 + 13 + 12 + 20);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0); /* nothing pending: fine */

    j = reopen(j, 0, &s, log, sizeof log);
    CHECK_STR(log, "");
    CHECK_INT(s.n, 3);
    CHECK_STR(s.rec[0], "alpha");
    CHECK_STR(s.rec[1], "beta");
    CHECK_STR(s.rec[2], "gamma-marker");
    CHECK(s.pos[0] == p1 && s.pos[1] == p2 && s.pos[2] == p3);
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 3); /* replayed records all count as live */
    CHECK_INT(journal_read(j, p3, &rec, &len), 0);
    CHECK(len == 12 && memcmp(rec, "gamma-marker", 12) == 0);
    free(rec);
    CHECK_INT(journal_read(j, (journal_pos_t)9 << 32 | 8, &rec, &len), -ENOENT);
    CHECK_INT(journal_read(j, (journal_pos_t)1 << 32 | 4096, &rec, &len), -ENOENT);

    /* appending after replay continues the same segment */
    journal_pos_t p4 = append_str(j, "delta", 1);
    CHECK_INT(p4 >> 32, 1);
    CHECK_INT(p4 & 0xffffffff, 8 + 13 + 12 + 20);
    CHECK_INT(journal_sync(j, 0, err, sizeof err), 0);

    /* a callback error stops the replay and is returned */
    journal_close(j);
    int count = 0;
    CHECK_INT(journal_open(&j, dir, "t", 0, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, stop_at_two, &count), -ECANCELED);
    CHECK_INT(count, 2);
    journal_close(j);
}

/* test_torn: a record cut in the middle is dropped with the tail, earlier ones stay. */
static void test_torn(void)
{
    journal_t *j = NULL;
    seen_t s;
    char log[2048], want[256];

    j = reopen(NULL, 0, &s, log, sizeof log);
    CHECK_INT(s.n, 4);
    journal_pos_t pc = append_str(j, "a torn record", 1);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    long long full = file_size(seg_path(1));
    CHECK_INT(truncate(seg_path(1), full - 5), 0);

    j = reopen(j, 0, &s, log, sizeof log);
    CHECK_INT(s.n, 4);
    CHECK_STR(s.rec[3], "delta");
    snprintf(want, sizeof want, "%s: short record payload at offset %llu", seg_path(1),
             (unsigned long long)(pc & 0xffffffff));
    CHECK(strstr(log, want) != NULL);
    CHECK(strstr(log, "warn") != NULL);
    CHECK_INT(file_size(seg_path(1)), (long long)(pc & 0xffffffff));

    /* a torn record header (3 bytes of a length) */
    journal_close(j);
    int fd = open(seg_path(1), O_WRONLY | O_APPEND);
    CHECK(write(fd, "\x05\x00\x00", 3) == 3);
    close(fd);
    j = reopen(NULL, 0, &s, log, sizeof log);
    CHECK_INT(s.n, 4);
    CHECK(strstr(log, "short record header") != NULL);
    CHECK_INT(file_size(seg_path(1)), (long long)(pc & 0xffffffff));

    /* appends after a repaired tail replay cleanly */
    append_str(j, "after repair", 1);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    j = reopen(j, 0, &s, log, sizeof log);
    CHECK_STR(log, "");
    CHECK_INT(s.n, 5);
    CHECK_STR(s.rec[4], "after repair");

    /* one flipped payload byte: the crc catches it, the record and all after it go */
    fd = open(seg_path(1), O_RDWR);
    char c;
    off_t at = (off_t)(s.pos[2] & 0xffffffff) + 8 + 3;
    CHECK(pread(fd, &c, 1, at) == 1);
    c ^= 0x20;
    CHECK(pwrite(fd, &c, 1, at) == 1);
    close(fd);
    j = reopen(j, 0, &s, log, sizeof log);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.rec[1], "beta");
    CHECK(strstr(log, "crc mismatch") != NULL);
    CHECK_INT(file_size(seg_path(1)), (long long)(s.pos[1] & 0xffffffff) + 8 + 4);
    journal_close(j);
}

/* test_failed_write: a write that fails half way (file size limit standing in for a full disk)
 * leaves the file at its last good size, and a retry later succeeds. */
static void test_failed_write(void)
{
    journal_t *j = NULL;
    seen_t s;
    char log[2048], big[4000];
    struct rlimit old, lim;
    journal_stats_t st;

    memset(big, 'B', sizeof big);
    j = reopen(NULL, 0, &s, log, sizeof log);
    CHECK_INT(s.n, 2);
    long long good = file_size(seg_path(1));
    journal_pos_t pos;
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)good + 1000;
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    CHECK_INT(journal_append(j, big, sizeof big, 1, &pos, err, sizeof err), 0);
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 3);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), -EFBIG);
    CHECK(strstr(err, seg_path(1)) != NULL);
    CHECK_INT(file_size(seg_path(1)), good);
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 2);
    CHECK_INT(st.bytes, good);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(journal_release(j, pos) < 0); /* dropped by the failed sync: refused */
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 2);
    CHECK_INT(journal_append(j, big, sizeof big, 1, &pos, err, sizeof err), 0);
    /* the failed segment is sealed: the record goes to a new one, so no stale position of the
     * dropped record can ever name it */
    CHECK_INT(pos >> 32, 2);
    CHECK_INT(pos & 0xffffffff, 8);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    j = reopen(j, 0, &s, log, sizeof log);
    CHECK_STR(log, "");
    CHECK_INT(s.n, 3);
    journal_close(j);
}

/* test_segments: rolling at segment_max, deletion oldest first, a failed new segment. */
static void test_segments(void)
{
    journal_t *j = NULL;
    seen_t s;
    char log[2048];
    journal_pos_t p[8];
    journal_stats_t st;
    const char *rec20 = "0123456789abcdefghij"; /* 8 + 20 bytes: two fit in 64 after the header */

    j = reopen(NULL, 64, &s, log, sizeof log);
    CHECK_INT(s.n, 3); /* segments 1 and 2 from the earlier tests, too full to take more */
    for (int i = 0; i < 3; i++)
        CHECK_INT(journal_release(j, s.pos[i]), 0);
    CHECK_INT(file_size(seg_path(1)), -1);
    CHECK_INT(file_size(seg_path(2)) > 0, 1); /* the active segment is never deleted */
    for (int i = 0; i < 6; i++)
        p[i] = append_str(j, rec20, 1);
    CHECK_INT(p[0] >> 32, 3);
    CHECK_INT(p[1] >> 32, 3);
    CHECK_INT(p[2] >> 32, 4);
    CHECK_INT(p[5] >> 32, 5);
    CHECK_INT(p[3] & 0xffffffff, 8 + 28);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    CHECK_INT(file_size(seg_path(2)), -1); /* no longer active and nothing live: gone */
    CHECK_INT(file_size(seg_path(3)), 64);
    CHECK_INT(file_size(seg_path(5)), 64);
    journal_get_stats(j, &st);
    CHECK_INT(st.segments, 3);
    CHECK_INT(st.live_records, 6);

    /* segment 4 empties first but waits for segment 3 */
    journal_release(j, p[2]);
    journal_release(j, p[3]);
    CHECK_INT(file_size(seg_path(4)), 64);
    journal_release(j, p[0]);
    CHECK_INT(file_size(seg_path(3)), 64);
    journal_release(j, p[1]);
    CHECK_INT(file_size(seg_path(3)), -1);
    CHECK_INT(file_size(seg_path(4)), -1);
    journal_release(j, p[4]);
    journal_release(j, p[5]);
    CHECK_INT(file_size(seg_path(5)), 64); /* active */
    journal_get_stats(j, &st);
    CHECK_INT(st.segments, 1);
    CHECK_INT(st.live_records, 0);

    /* a new segment whose first write fails disappears again */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 40;
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    p[6] = append_str(j, "this record rolls to segment six", 1);
    CHECK_INT(p[6] >> 32, 6);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), -EFBIG);
    CHECK_INT(file_size(seg_path(6)), -1);
    journal_get_stats(j, &st);
    CHECK_INT(st.segments, 1);
    setrlimit(RLIMIT_FSIZE, &old);
    p[6] = append_str(j, "this record goes to segment seven", 1);
    CHECK_INT(p[6] >> 32, 7); /* a number once used is never used again */
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    CHECK_INT(file_size(seg_path(7)), 8 + 8 + 33);
    CHECK_INT(file_size(seg_path(5)), -1); /* nothing live, no longer active */

    /* replay after reopen sees only segment five's record */
    j = reopen(j, 64, &s, log, sizeof log);
    CHECK_INT(s.n, 1);
    CHECK_STR(s.rec[0], "this record goes to segment seven");
    void *rec;
    size_t len;
    CHECK_INT(journal_read(j, p[6], &rec, &len), 0);
    CHECK(len == 33 && memcmp(rec, "this record goes to segment seven", 33) == 0);
    free(rec);
    journal_close(j);

    /* a newest segment left without its header (crash while creating) is removed */
    int fd = open(seg_path(8), O_WRONLY | O_CREAT, 0600);
    CHECK(write(fd, "HLJ", 3) == 3);
    close(fd);
    j = reopen(NULL, 64, &s, log, sizeof log);
    CHECK_INT(s.n, 1);
    CHECK(strstr(log, "missing segment header") != NULL);
    CHECK_INT(file_size(seg_path(8)), -1);

    /* a newest segment with a foreign header is moved aside, not trusted and not deleted */
    journal_close(j);
    fd = open(seg_path(9), O_WRONLY | O_CREAT, 0600);
    CHECK(write(fd, "GARBAGE!0123456789", 18) == 18);
    close(fd);
    j = reopen(NULL, 64, &s, log, sizeof log);
    CHECK_INT(s.n, 1);
    CHECK(strstr(log, "bad segment header") != NULL);
    CHECK_INT(file_size(seg_path(9)), -1);
    char aside[160];
    snprintf(aside, sizeof aside, "%s.corrupt", seg_path(9));
    CHECK_INT(file_size(aside), 18);
    p[7] = append_str(j, "next", 1);
    CHECK_INT(p[7] >> 32, 7); /* segment 7 is newest again and has room */
    journal_close(j);
}

/* no_records is a replay callback for journals expected empty. */
static int no_records(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    ++*(int *)arg;
    return 0;
}

/* test_empty_and_unappend: a journal with no segment has nothing to compact; an appended record
 * can be taken back while buffered, and only the newest. */
static void test_empty_and_unappend(void)
{
    journal_t *j;
    uint32_t seg = 0;
    int n = 0;
    CHECK_INT(journal_open(&j, dir, "empty", 0, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, no_records, &n), 0);
    CHECK_INT(journal_compact_candidate(j, 0, &seg), 0);
    journal_pos_t a = append_str(j, "first", 1), b = append_str(j, "second", 1);
    CHECK_INT(journal_unappend(j, a, 1), -EINVAL); /* not the newest */
    CHECK_INT(journal_unappend(j, b, 1), 0);
    journal_stats_t st;
    journal_get_stats(j, &st);
    CHECK_INT(st.live_records, 1);
    CHECK_INT(journal_sync(j, 1, err, sizeof err), 0);
    CHECK_INT(journal_unappend(j, a, 1), -EINVAL); /* written already */
    journal_close(j);
    CHECK_INT(journal_open(&j, dir, "empty", 0, err, sizeof err), 0);
    CHECK_INT(journal_replay(j, no_records, &n), 0);
    CHECK_INT(n, 1); /* only "first" */
    journal_close(j);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/hl-journal-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_crc();
    test_log();
    test_basic();
    test_torn();
    test_failed_write();
    test_segments();
    test_empty_and_unappend();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK_INT(file_size(dir), -1);
    return check_done("journal");
}
