/* guard.h - the sender's address guard: refuses loopback, private, link-local, CGNAT, multicast
 * and unspecified targets unless an operator-allowed CIDR (--allow-target) holds the address. */
#ifndef HL_GUARD_H
#define HL_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct guard guard_t;

/* guard_init allocates an empty guard (no allowed ranges: only public addresses pass).
 * Returns 0 and *gp, or -ENOMEM. The caller frees it with guard_close. */
int guard_init(guard_t **gp);

/* guard_close frees the guard and its ranges; NULL is a no-op. */
void guard_close(guard_t *g);

/* guard_add_cidr adds an allowed range: "127.0.0.0/8", "fd00::/8", or a bare address (a host
 * range). An IPv4-mapped IPv6 range (::ffff:a.b.c.d/96+) is stored as its IPv4 range. Host bits
 * set beyond the prefix are an error, so typos do not silently widen or narrow the range.
 * Returns 0, or -EINVAL with a message in err, or -ENOMEM. */
int guard_add_cidr(guard_t *g, const char *cidr, char *err, size_t errlen);

/* guard_allows says whether a connection to sa may be opened: 1 when an allowed range holds the
 * address or the address is not in a refused range, 0 otherwise (also for non-IP families).
 * IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) IPv6 addresses are
 * judged by the IPv4 address they embed as well. g may be NULL (no allowed ranges). The port is
 * ignored. */
int guard_allows(const guard_t *g, const struct sockaddr *sa);

#endif
