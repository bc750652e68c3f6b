/* fsmode.c - tighten the modes of private files (0600) and directories (0700) left looser,
 * logging each change. */
#include "util/fsmode.h"

#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* fsmode_tighten: chmod path to want when its mode has bits beyond want; dir says which kind
 * of file path must be. */
static int fsmode_tighten(const char *path, mode_t want, int dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT) return 0;
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (dir != !!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, dir ? "not a directory" : "is a directory");
        return dir ? -ENOTDIR : -EISDIR;
    }
    mode_t old = st.st_mode & 07777;
    if ((old & ~want) == 0) return 0;
    if (chmod(path, want) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot change mode %04o to %04o: %s", path, (unsigned)old,
                 (unsigned)want, strerror(errno));
        return rc;
    }
    log_warn("%s: mode was %04o, tightened to %04o", path, (unsigned)old, (unsigned)want);
    return 1;
}

int fsmode_tighten_dir(const char *path, char *err, size_t errlen)
{
    return fsmode_tighten(path, 0700, 1, err, errlen);
}

int fsmode_tighten_file(const char *path, char *err, size_t errlen)
{
    return fsmode_tighten(path, 0600, 0, err, errlen);
}
