/* guard.h - the sender's address guard: refuses every IANA special-purpose range that is not
 * globally reachable and every address of the host's own interfaces, unless an operator-allowed
 * CIDR (--allow-target) holds the address. */
#ifndef HL_GUARD_H
#define HL_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct guard guard_t;

/* guard_init allocates an empty guard (no allowed ranges: only globally reachable addresses that
 * are not the host's own pass) and subscribes to the kernel's address-change notifications, so
 * the host's addresses are re-read only after they changed (when the subscription cannot be
 * opened they are re-read on every check instead). Returns 0 and *gp, or -ENOMEM. The caller
 * frees it with guard_close. A guard belongs to one thread. */
int guard_init(guard_t **gp);

/* guard_close frees the guard, its ranges and its subscription; NULL is a no-op. */
void guard_close(guard_t *g);

/* guard_add_cidr adds an allowed range: "127.0.0.0/8", "fd00::/8", or a bare address (a host
 * range). An IPv4-mapped IPv6 range (::ffff:a.b.c.d/96+) is stored as its IPv4 range. Host bits
 * set beyond the prefix are an error, so typos do not silently widen or narrow the range.
 * Returns 0, or -EINVAL with a message in err, or -ENOMEM. */
int guard_add_cidr(guard_t *g, const char *cidr, char *err, size_t errlen);

/* guard_allows says whether a connection to sa may be opened: 1 when an allowed range holds the
 * address, or when the address is neither one of the host's own (any interface, read at this
 * call if they changed since the last) nor in a refused special-purpose range; 0 otherwise,
 * also for non-IP families and when the host's addresses cannot be read. IPv4-mapped and NAT64
 * (64:ff9b::/96) IPv6 addresses are judged as the IPv4 address they embed; IPv4-compatible
 * (::/96), 6to4 (2002::/16) and Teredo (2001::/32) ones are refused whole. g may be NULL (no
 * allowed ranges; the host's addresses are read on every call). The port is ignored. */
int guard_allows(const guard_t *g, const struct sockaddr *sa);

#endif
