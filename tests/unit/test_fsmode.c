/* test_fsmode.c - tightening modes: files to 0600 and directories to 0700 only when looser,
 * one log line naming the path and the old mode per change, missing paths, wrong kinds. */
#include "check.h"
#include "util/fsmode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char logpath[4200];

/* mode_of: the permission bits of path, or -1. */
static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : (int)(st.st_mode & 07777);
}

/* make_file: create path with exactly mode (chmod, so the umask does not interfere). */
static void make_file(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_INT(chmod(path, mode), 0);
}

/* make_dir: create path with exactly mode. */
static void make_dir(const char *path, mode_t mode)
{
    CHECK_INT(mkdir(path, 0700), 0);
    CHECK_INT(chmod(path, mode), 0);
}

/* logged: what was written to stderr since the last call (stderr goes to logpath). */
static char *logged(void)
{
    static char buf[8192];
    static long seen;
    int fd = open(logpath, O_RDONLY | O_CLOEXEC);
    buf[0] = '\0';
    if (fd < 0) return buf;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, seen);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        seen += n;
    }
    return buf;
}

/* lines: how many newline-terminated lines s holds. */
static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int main(void)
{
    char tmpl[] = "/tmp/hookline-fsmode-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir) return check_done("fsmode");
    char path[4096], sub[4096], err[4200];
    snprintf(logpath, sizeof(logpath), "%s/stderr.log", dir);

    /* stderr into a file, so the log lines can be read back */
    int saved = dup(2);
    int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(lfd >= 0 && saved >= 0);
    dup2(lfd, 2);
    close(lfd);

    /* Files: looser modes become 0600, with one line naming the path and the old mode. */
    static const struct {
        mode_t from;
        int changed;
        mode_t to;
    } files[] = {
        {0644, 1, 0600},  {0666, 1, 0600}, {0640, 1, 0600}, {0604, 1, 0600}, {0700, 1, 0600},
        {04600, 1, 0600}, {0600, 0, 0600}, {0400, 0, 0400}, {0200, 0, 0200}, {0000, 0, 0000},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/f%zu.db", dir, i);
        make_file(path, files[i].from);
        CHECK_INT(fsmode_tighten_file(path, err, sizeof(err)), files[i].changed);
        CHECK_INT(mode_of(path), files[i].to);
        char *l = logged();
        char old[16];
        snprintf(old, sizeof(old), "%04o", (unsigned)files[i].from);
        if (files[i].changed) {
            CHECK_INT(lines(l), 1);
            CHECK(strstr(l, path) != NULL);
            CHECK(strstr(l, old) != NULL);
            CHECK(strstr(l, "0600") != NULL);
        } else {
            CHECK_STR(l, "");
        }
        /* the second time there is nothing to do */
        CHECK_INT(fsmode_tighten_file(path, err, sizeof(err)), 0);
        CHECK_STR(logged(), "");
    }

    /* Directories: looser modes become 0700. */
    static const struct {
        mode_t from;
        int changed;
        mode_t to;
    } dirs[] = {
        {0755, 1, 0700},  {0750, 1, 0700}, {0711, 1, 0700}, {01777, 1, 0700},
        {02700, 1, 0700}, {0700, 0, 0700}, {0500, 0, 0500},
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/d%zu", dir, i);
        make_dir(path, dirs[i].from);
        CHECK_INT(fsmode_tighten_dir(path, err, sizeof(err)), dirs[i].changed);
        CHECK_INT(mode_of(path), dirs[i].to);
        char *l = logged();
        char old[16];
        snprintf(old, sizeof(old), "%04o", (unsigned)dirs[i].from);
        if (dirs[i].changed) {
            CHECK_INT(lines(l), 1);
            CHECK(strstr(l, path) != NULL);
            CHECK(strstr(l, old) != NULL);
        } else {
            CHECK_STR(l, "");
        }
        CHECK_INT(fsmode_tighten_dir(path, err, sizeof(err)), 0);
        CHECK_INT(chmod(path, 0700), 0);
    }

    /* A missing path is not an error, and logs nothing. */
    snprintf(path, sizeof(path), "%s/hookline.db-wal", dir);
    CHECK_INT(fsmode_tighten_file(path, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/journal", dir);
    CHECK_INT(fsmode_tighten_dir(path, err, sizeof(err)), 0);
    CHECK_STR(logged(), "");

    /* The wrong kind of file, or a path through a file, is an error naming the path. */
    snprintf(path, sizeof(path), "%s/d0", dir);
    err[0] = '\0';
    CHECK_INT(fsmode_tighten_file(path, err, sizeof(err)), -EISDIR);
    CHECK(strstr(err, path) != NULL);
    CHECK_INT(mode_of(path), 0700);
    snprintf(path, sizeof(path), "%s/f0.db", dir);
    CHECK_INT(chmod(path, 0644), 0);
    err[0] = '\0';
    CHECK_INT(fsmode_tighten_dir(path, err, sizeof(err)), -ENOTDIR);
    CHECK(strstr(err, path) != NULL);
    CHECK_INT(mode_of(path), 0644);
    snprintf(sub, sizeof(sub), "%s/f0.db/x", dir);
    err[0] = '\0';
    CHECK_INT(fsmode_tighten_file(sub, err, sizeof(err)), -ENOTDIR);
    CHECK(strstr(err, sub) != NULL);
    CHECK_STR(logged(), "");

    /* A symlink is followed: its target is tightened. */
    snprintf(sub, sizeof(sub), "%s/link.db", dir);
    CHECK_INT(symlink(path, sub), 0);
    CHECK_INT(fsmode_tighten_file(sub, err, sizeof(err)), 1);
    CHECK_INT(mode_of(path), 0600);
    CHECK(strstr(logged(), sub) != NULL);

    dup2(saved, 2);
    close(saved);
    /* Show what went to the file: the log lines, and any CHECK failure reported meanwhile. */
    char cmd[8400];
    snprintf(cmd, sizeof(cmd), "cat '%s' >&2", logpath);
    CHECK_INT(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
    return check_done("fsmode");
}
