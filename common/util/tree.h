/* tree.h - the BSD red-black tree and queue macros from libbsd, with the one attribute they
 * expect that libbsd leaves undefined on Linux. */
#ifndef HL_TREE_H
#define HL_TREE_H
#ifndef __unused
#define __unused __attribute__((unused))
#endif
#include <sys/queue.h>
#include <sys/tree.h>
#endif
