/* test_dedupe.c - the dedupe index on a real loop and files with a fake clock: exact under many
 * keys and under forced hash collisions, held entries answer PENDING and aborted ones are
 * forgotten (the pending table under one long wrapping run too), per-key and per-segment expiry
 * bound the files, reopen keeps everything, and a segment cut short or with a damaged header is
 * logged by name while the journal's replay puts every key back. */
#include "check.h"
#include "../../ingest/ingest_dedupe.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static uv_loop_t loop;
static uint64_t now = 1000000;
static char dir[64];
static char err[512];
static int fsync_on; /* fdatasync after each batch: on in one test (slow with many batches) */

static uint64_t fake_now(void *arg)
{
    (void)arg;
    return now;
}

/* collide maps every key to one of 4 hashes: the slots and filters cannot tell keys apart. */
static uint64_t collide(const void *key, size_t len)
{
    uint64_t h = 0;
    for (size_t i = 0; i < len; i++)
        h = h * 31 + ((const unsigned char *)key)[i];
    return (h & 3) + 1;
}

/* clustered puts key evt_N's home at pending-table slot 1020 + N % 8 of a 1024-slot table: one
 * long run that wraps around the end, with distinct hashes (the filters still tell them apart). */
static uint64_t clustered(const void *key, size_t len)
{
    const char *k = key, *evt = memchr(k, '\0', len);
    long n = evt ? strtol(evt + 1 + 4, NULL, 10) : 0;
    return (uint64_t)(1020 + n % 8) + ((uint64_t)n << 20);
}

static ingest_dedupe_t *open_index(unsigned window, unsigned log2)
{
    ingest_dedupe_opts_t o = {.dir = dir,
                              .window_s = window,
                              .do_fsync = fsync_on,
                              .batch_ms = 1,
                              .seg_log2 = log2,
                              .now_s = fake_now};
    ingest_dedupe_t *d = NULL;
    int rc = ingest_dedupe_open(&d, &loop, &o, err, sizeof err);
    if (rc < 0) fprintf(stderr, "open: %s\n", err);
    return d;
}

static void close_index(ingest_dedupe_t *d)
{
    ingest_dedupe_close(d);
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* key builds "prj_N\0evt_M" into buf; returns its length. */
static size_t key(char *buf, int project, int n)
{
    int a = sprintf(buf, "prj_%d", project);
    return (size_t)a + 1 + (size_t)sprintf(buf + a + 1, "evt_%d", n);
}

static int check(ingest_dedupe_t *d, int project, int n)
{
    char k[64];
    size_t len = key(k, project, n);
    ingest_dedupe_entry_t *e = NULL;
    int st = ingest_dedupe_check(d, k, len, &e);
    ingest_dedupe_unref(e);
    return st;
}

/* accept_keys holds and commits keys [from, to) of project 1, as ingest does after a good sync. */
static void accept_keys(ingest_dedupe_t *d, int from, int to)
{
    for (int i = from; i < to; i++) {
        char k[64];
        size_t len = key(k, 1, i);
        ingest_dedupe_entry_t *e = ingest_dedupe_hold(d, k, len);
        ingest_dedupe_commit(d, e);
        ingest_dedupe_unref(e);
    }
}

/* settle runs the loop until every queued key is written. */
static void settle(ingest_dedupe_t *d)
{
    for (int i = 0; i < 100000 && ingest_dedupe_written(d) < ingest_dedupe_queued(d); i++)
        uv_run(&loop, UV_RUN_ONCE);
}

/* count_all: how many of keys [from, to) of project 1 the index answers with st. */
static int count_all(ingest_dedupe_t *d, int from, int to, int st)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += check(d, 1, i) == st;
    return n;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fresh_dir(void)
{
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* segment_files lists the segment files (names into names, up to max); returns the count. */
static int segment_files(char names[][64], int max)
{
    DIR *dd = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (dd && (de = readdir(dd)))
        if (strncmp(de->d_name, "seg-", 4) == 0 && strlen(de->d_name) == 24 && n < max)
            memcpy(names[n++], de->d_name, 25); /* 24 characters and the NUL */
    if (dd) closedir(dd);
    return n;
}

/* with_captured_stderr runs fn with fd 2 sent to a file and returns what was written. */
static char captured[8192];
static ingest_dedupe_t *open_captured(unsigned window, unsigned log2)
{
    char path[128];
    snprintf(path, sizeof path, "%s.log", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), saved = dup(2);
    dup2(fd, 2);
    ingest_dedupe_t *d = open_index(window, log2);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, captured, sizeof captured - 1, 0);
    captured[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    fputs(captured, stderr);
    return d;
}

static void test_exact_many_keys(void)
{
    fresh_dir();
    fsync_on = 1;
    /* 16384 slots: 8192 keys a segment; the in-memory slots grow from 4096 on the way */
    ingest_dedupe_t *d = open_index(3600, 14);
    CHECK(d != NULL);
    accept_keys(d, 0, 20000);
    settle(d);
    CHECK_INT(ingest_dedupe_written(d), 20000);
    CHECK_INT(count_all(d, 0, 20000, INGEST_DEDUPE_DUP), 20000);
    CHECK_INT(count_all(d, 20000, 60000, INGEST_DEDUPE_NEW), 40000); /* never a false duplicate */
    CHECK_INT(check(d, 2, 10), INGEST_DEDUPE_NEW); /* the same id in another project is new */
    ingest_dedupe_stats_t st;
    ingest_dedupe_get_stats(d, &st);
    CHECK_INT(st.keys, 20000);
    CHECK_INT(st.segments, 3);
    close_index(d);
    d = open_index(3600, 14); /* reopen: the filters are rebuilt from the files */
    CHECK_INT(count_all(d, 0, 20000, INGEST_DEDUPE_DUP), 20000);
    CHECK_INT(count_all(d, 20000, 30000, INGEST_DEDUPE_NEW), 10000);
    accept_keys(d, 20000, 21000); /* the newest segment goes on taking keys */
    settle(d);
    CHECK_INT(count_all(d, 0, 21000, INGEST_DEDUPE_DUP), 21000);
    close_index(d);
    fsync_on = 0;
}

static void test_collisions(void)
{
    fresh_dir();
    ingest_dedupe_hash_for_tests = collide;
    ingest_dedupe_t *d = open_index(3600, 12);
    accept_keys(d, 0, 1500);
    settle(d);
    CHECK_INT(count_all(d, 0, 1500, INGEST_DEDUPE_DUP), 1500);
    CHECK_INT(count_all(d, 1500, 3000, INGEST_DEDUPE_NEW), 1500);
    /* replay of keys it holds adds nothing; of a key it lacks, adds it */
    uint64_t q = ingest_dedupe_queued(d);
    char k[64];
    size_t len = key(k, 1, 7);
    CHECK_INT(ingest_dedupe_replay(d, k, len, now), 0);
    CHECK_INT(ingest_dedupe_queued(d), q);
    len = key(k, 1, 2000);
    CHECK_INT(ingest_dedupe_replay(d, k, len, now), 0);
    CHECK_INT(ingest_dedupe_queued(d), q + 1);
    settle(d);
    CHECK_INT(check(d, 1, 2000), INGEST_DEDUPE_DUP);
    CHECK_INT(check(d, 1, 2001), INGEST_DEDUPE_NEW);
    close_index(d);
    ingest_dedupe_hash_for_tests = NULL;
}

static void test_pending(void)
{
    fresh_dir();
    ingest_dedupe_t *d = open_index(3600, 10);
    char k[64];
    size_t len = key(k, 1, 1);
    ingest_dedupe_entry_t *first = ingest_dedupe_hold(d, k, len), *p = NULL;
    CHECK_INT(ingest_dedupe_check(d, k, len, &p), INGEST_DEDUPE_PENDING);
    CHECK(p == first);
    CHECK_INT(ingest_dedupe_accepted(p), 0);
    ingest_dedupe_abort(d, first); /* its sync failed: the copy must not be a duplicate */
    CHECK_INT(ingest_dedupe_accepted(p), -1);
    ingest_dedupe_unref(p);
    ingest_dedupe_unref(first);
    CHECK_INT(check(d, 1, 1), INGEST_DEDUPE_NEW);
    settle(d);
    CHECK_INT(check(d, 1, 1), INGEST_DEDUPE_NEW);

    first = ingest_dedupe_hold(d, k, len);
    CHECK_INT(ingest_dedupe_check(d, k, len, &p), INGEST_DEDUPE_PENDING);
    ingest_dedupe_commit(d, first);
    CHECK_INT(ingest_dedupe_accepted(p), 1);
    ingest_dedupe_unref(p);
    ingest_dedupe_unref(first);
    CHECK_INT(check(d, 1, 1), INGEST_DEDUPE_DUP); /* committed, not yet written */
    CHECK_INT(ingest_dedupe_backlog(d), 1);
    settle(d);
    CHECK_INT(ingest_dedupe_backlog(d), 0);
    CHECK_INT(check(d, 1, 1), INGEST_DEDUPE_DUP); /* from the segment now */

    /* claim: check and hold in one */
    len = key(k, 1, 2);
    ingest_dedupe_entry_t *c1 = NULL, *c2 = NULL;
    CHECK_INT(ingest_dedupe_claim(d, k, len, &c1), INGEST_DEDUPE_NEW);
    CHECK(c1 != NULL);
    CHECK_INT(ingest_dedupe_claim(d, k, len, &c2), INGEST_DEDUPE_PENDING);
    CHECK(c2 == c1);
    ingest_dedupe_unref(c2);
    ingest_dedupe_abort(d, c1); /* its append failed */
    ingest_dedupe_unref(c1);
    CHECK_INT(ingest_dedupe_claim(d, k, len, &c1), INGEST_DEDUPE_NEW);
    ingest_dedupe_commit(d, c1);
    ingest_dedupe_unref(c1);
    CHECK_INT(ingest_dedupe_claim(d, k, len, &c2), INGEST_DEDUPE_DUP);
    CHECK(c2 == NULL);
    settle(d);
    close_index(d);
}

/* The pending table under one wrapping run: entries taken out of its middle in scattered
 * order (aborts, then a batch written) leave every other one findable. */
static void test_pending_table(void)
{
    fresh_dir();
    ingest_dedupe_hash_for_tests = clustered;
    ingest_dedupe_t *d = open_index(3600, 12);
    enum { N = 400 };
    ingest_dedupe_entry_t *e[N];
    char k[64];
    for (int i = 0; i < N; i++) {
        size_t len = key(k, 1, i);
        CHECK_INT(ingest_dedupe_claim(d, k, len, &e[i]), INGEST_DEDUPE_NEW);
    }
    for (int i = 0; i < N; i++) { /* abort every third, in a scattered order */
        int j = (i * 7) % N;
        if (j % 3 == 0) ingest_dedupe_abort(d, e[j]);
    }
    int pending = 0, fresh = 0;
    for (int i = 0; i < N; i++) {
        ingest_dedupe_entry_t *p = NULL;
        size_t len = key(k, 1, i);
        int st = ingest_dedupe_check(d, k, len, &p);
        if (st == INGEST_DEDUPE_PENDING && p == e[i] && i % 3) pending++;
        if (st == INGEST_DEDUPE_NEW && i % 3 == 0) fresh++;
        ingest_dedupe_unref(p);
    }
    CHECK_INT(pending, N - (N + 2) / 3);
    CHECK_INT(fresh, (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        if (i % 3) ingest_dedupe_commit(d, e[i]);
        ingest_dedupe_unref(e[i]);
    }
    settle(d); /* written: every one leaves the table */
    CHECK_INT(ingest_dedupe_backlog(d), 0);
    int dup = 0;
    fresh = 0;
    for (int i = 0; i < N; i++) {
        int st = check(d, 1, i);
        dup += st == INGEST_DEDUPE_DUP && i % 3;
        fresh += st == INGEST_DEDUPE_NEW && i % 3 == 0;
    }
    CHECK_INT(dup, N - (N + 2) / 3);
    CHECK_INT(fresh, (N + 2) / 3);
    close_index(d);
    ingest_dedupe_hash_for_tests = NULL;
}

static void test_expiry(void)
{
    fresh_dir();
    now = 1000000;
    ingest_dedupe_t *d = open_index(80, 10); /* slices of 10 s */
    accept_keys(d, 0, 100);
    settle(d);
    now += 79;
    CHECK_INT(count_all(d, 0, 100, INGEST_DEDUPE_DUP), 100);
    now += 1; /* 80 s after: outside the window, also before its segment is dropped */
    CHECK_INT(count_all(d, 0, 100, INGEST_DEDUPE_NEW), 100);
    CHECK_INT(ingest_dedupe_expire(d), 1);
    uv_run(&loop, UV_RUN_DEFAULT); /* the files are removed on the worker */
    char names[64][64];
    CHECK_INT(segment_files(names, 64), 0);
    /* a steady stream over 10 windows: the files stay bounded by the window */
    int max_files = 0;
    for (int t = 0; t < 800; t++) {
        accept_keys(d, 1000 + t * 5, 1000 + t * 5 + 5);
        settle(d);
        now++;
        ingest_dedupe_expire(d);
        uv_run(&loop, UV_RUN_DEFAULT);
        int n = segment_files(names, 64);
        if (n > max_files) max_files = n;
    }
    CHECK(max_files <= 10); /* window / slice + 1, plus one for the partial slice */
    CHECK_INT(check(d, 1, 1000 + 799 * 5), INGEST_DEDUPE_DUP);
    CHECK_INT(check(d, 1, 1000 + 700 * 5), INGEST_DEDUPE_NEW); /* 100 s ago */
    close_index(d);
    /* a restart after a long pause drops what is wholly outside the window */
    now += 1000;
    d = open_index(80, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(segment_files(names, 64), 0);
    close_index(d);
}

static void test_restart_reuses_segment(void)
{
    fresh_dir();
    char names[8][64];
    for (int round = 0; round < 5; round++) { /* a crash loop must not make a file per start */
        ingest_dedupe_t *d = open_index(3600, 10);
        CHECK_INT(count_all(d, 0, round * 10, INGEST_DEDUPE_DUP), round * 10);
        accept_keys(d, round * 10, round * 10 + 10);
        settle(d);
        close_index(d);
    }
    CHECK_INT(segment_files(names, 8), 1);
    ingest_dedupe_t *d = open_index(3600, 10);
    CHECK_INT(count_all(d, 0, 50, INGEST_DEDUPE_DUP), 50);
    CHECK_INT(count_all(d, 50, 100, INGEST_DEDUPE_NEW), 50);
    close_index(d);
}

static void test_damaged_files(void)
{
    fresh_dir();
    now = 2000000;
    ingest_dedupe_t *d = open_index(3600, 10);
    accept_keys(d, 0, 700); /* a sealed segment of 512 keys, and one taking keys (188) */
    settle(d);
    close_index(d);
    char names[4][64], path[1200];
    CHECK_INT(segment_files(names, 4), 2);
    if (strcmp(names[0], names[1]) > 0) { /* readdir order: sort the two */
        char t[64];
        memcpy(t, names[0], 64);
        memcpy(names[0], names[1], 64);
        memcpy(names[1], t, 64);
    }
    /* a crash cut both short: keys of the sealed one lost, the other one's records torn */
    for (int i = 0; i < 2; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        stat(path, &st);
        CHECK_INT(truncate(path, st.st_size - 2401), 0);
    }
    d = open_captured(3600, 10);
    CHECK(d != NULL);
    CHECK(strstr(captured, names[0]) != NULL);
    CHECK(strstr(captured, "past the end of the file") != NULL);
    CHECK(strstr(captured, names[1]) != NULL);
    CHECK(strstr(captured, "cut short (a write lost in a crash)") != NULL);
    int kept = count_all(d, 0, 700, INGEST_DEDUPE_DUP);
    CHECK(kept > 400 && kept < 700);
    CHECK_INT(count_all(d, 700, 1400, INGEST_DEDUPE_NEW), 700);
    /* the journal still holds these events: replay puts every key back */
    for (int i = 0; i < 700; i++) {
        char k[64];
        size_t len = key(k, 1, i);
        ingest_dedupe_replay(d, k, len, now - 5);
    }
    settle(d);
    CHECK_INT(count_all(d, 0, 700, INGEST_DEDUPE_DUP), 700);
    CHECK_INT(count_all(d, 700, 1400, INGEST_DEDUPE_NEW), 700);
    close_index(d);
    d = open_index(3600, 10); /* and after another restart */
    CHECK_INT(count_all(d, 0, 700, INGEST_DEDUPE_DUP), 700);
    close_index(d);

    /* a header destroyed: the file is set aside by name, the replay puts the keys back */
    char seg[8][64];
    int n = segment_files(seg, 8);
    CHECK(n >= 1);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, seg[i]);
        int fd = open(path, O_WRONLY);
        CHECK_INT(pwrite(fd, "garbage!", 8, 0), 8);
        close(fd);
    }
    d = open_captured(3600, 10);
    CHECK(strstr(captured, seg[0]) != NULL);
    CHECK(strstr(captured, "not an index segment") != NULL);
    snprintf(path, sizeof path, "%s/%s.damaged", dir, seg[0]);
    CHECK(access(path, F_OK) == 0);
    CHECK_INT(count_all(d, 0, 700, INGEST_DEDUPE_NEW), 700);
    for (int i = 0; i < 700; i++) {
        char k[64];
        size_t len = key(k, 1, i);
        ingest_dedupe_replay(d, k, len, now - 5);
    }
    settle(d);
    CHECK_INT(count_all(d, 0, 700, INGEST_DEDUPE_DUP), 700);
    close_index(d);
    /* modes: the directory 0700, the files 0600 */
    struct stat st;
    stat(dir, &st);
    CHECK_INT(st.st_mode & 0777, 0700);
    n = segment_files(seg, 8);
    CHECK(n >= 1);
    snprintf(path, sizeof path, "%s/%s", dir, seg[0]);
    stat(path, &st);
    CHECK_INT(st.st_mode & 0777, 0600);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/hl-test-dedupe-%d", (int)getpid());
    uv_loop_init(&loop);
    test_exact_many_keys();
    test_collisions();
    test_pending();
    test_pending_table();
    test_expiry();
    test_restart_reuses_segment();
    test_damaged_files();
    CHECK_INT(uv_loop_close(&loop), 0);
    fresh_dir();
    return check_done("dedupe");
}
