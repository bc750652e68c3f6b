/* fsmode.h - tighten the modes of private files and directories at start: a directory to 0700,
 * a file to 0600, when they have any permission bit beyond that. */
#ifndef HL_FSMODE_H
#define HL_FSMODE_H

#include <stddef.h>

/* fsmode_tighten_dir makes the directory at path 0700 when its mode has any bit beyond 0700
 * (group or other permissions, setgid, sticky); a stricter mode (0500) is left alone. When it
 * changes the mode it logs one line naming path and the old mode. Returns 1 when it changed the
 * mode, 0 when there was nothing to do or path does not exist, or a negative errno with a
 * message naming path in err (-ENOTDIR when path is not a directory). Symlinks are followed. */
int fsmode_tighten_dir(const char *path, char *err, size_t errlen);

/* fsmode_tighten_file is fsmode_tighten_dir for anything but a directory (a regular file, a
 * socket), made 0600: bits beyond 0600 (execute, group or other, setuid) are cleared. Returns
 * 1, 0 (also for a missing path), or a negative errno with err (-EISDIR for a directory). */
int fsmode_tighten_file(const char *path, char *err, size_t errlen);

#endif
