/* guard.c - the sender's address guard: the table of special-purpose ranges (IANA's IPv4 and
 * IPv6 Special-Purpose Address Registries, RFC 6890), the host's own addresses, and the
 * operator's allowed CIDRs. */
#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One range: family AF_INET (4 address bytes used) or AF_INET6 (16). */
typedef struct guard_range {
    int family;
    uint8_t addr[16];
    unsigned prefix;
} guard_range_t;

/* What a special-purpose row says about the addresses it holds. */
typedef enum {
    GUARD_REFUSE,  /* not globally reachable (registry: False, or N/A for deprecated blocks) */
    GUARD_GLOBAL,  /* globally reachable: a hole in a wider refused block */
    GUARD_EMBEDDED /* an IPv6 form of an IPv4 address (bytes 12..15): judged as that address */
} guard_verdict_t;

typedef struct guard_row {
    const char *cidr;
    guard_verdict_t verdict;
    const char *rfc;
} guard_row_t;

/* The special-purpose ranges. The longest prefix that holds an address decides, so a globally
 * reachable block inside a refused one (192.0.0.9/32 in 192.0.0.0/24) is a row of its own.
 * Blocks the registries mark globally reachable and that no refused row holds need no row
 * (192.31.196.0/24 AS112-v4, 192.52.193.0/24 AMT, 192.175.48.0/24 AS112, 2620:4f:8000::/48
 * AS112). Multicast is not in the special-purpose registries but is never a webhook. */
static const guard_row_t guard_rows4[] = {
    {"0.0.0.0/8", GUARD_REFUSE, "RFC 791 section 3.2: this network"},
    {"10.0.0.0/8", GUARD_REFUSE, "RFC 1918: private use"},
    {"100.64.0.0/10", GUARD_REFUSE, "RFC 6598: shared address space (CGNAT)"},
    {"127.0.0.0/8", GUARD_REFUSE, "RFC 1122 section 3.2.1.3: loopback"},
    {"169.254.0.0/16", GUARD_REFUSE, "RFC 3927: link local"},
    {"172.16.0.0/12", GUARD_REFUSE, "RFC 1918: private use"},
    {"192.0.0.0/24", GUARD_REFUSE, "RFC 6890 section 2.1: IETF protocol assignments"},
    {"192.0.0.0/29", GUARD_REFUSE, "RFC 7335: IPv4 service continuity prefix"},
    {"192.0.0.8/32", GUARD_REFUSE, "RFC 7600: IPv4 dummy address"},
    {"192.0.0.9/32", GUARD_GLOBAL, "RFC 7723: Port Control Protocol anycast"},
    {"192.0.0.10/32", GUARD_GLOBAL, "RFC 8155: TURN anycast"},
    {"192.0.0.170/31", GUARD_REFUSE, "RFC 8880, RFC 7050 section 2.2: NAT64/DNS64 discovery"},
    {"192.0.2.0/24", GUARD_REFUSE, "RFC 5737: documentation (TEST-NET-1)"},
    {"192.88.99.0/24", GUARD_REFUSE, "RFC 7526: deprecated 6to4 relay anycast"},
    {"192.168.0.0/16", GUARD_REFUSE, "RFC 1918: private use"},
    {"198.18.0.0/15", GUARD_REFUSE, "RFC 2544: benchmarking"},
    {"198.51.100.0/24", GUARD_REFUSE, "RFC 5737: documentation (TEST-NET-2)"},
    {"203.0.113.0/24", GUARD_REFUSE, "RFC 5737: documentation (TEST-NET-3)"},
    {"224.0.0.0/4", GUARD_REFUSE, "RFC 5771: multicast"},
    {"240.0.0.0/4", GUARD_REFUSE, "RFC 1112 section 4: reserved"},
    {"255.255.255.255/32", GUARD_REFUSE, "RFC 8190, RFC 919 section 7: limited broadcast"},
};

/* IPv6: only 2000::/3 is allocated for global unicast, so everything outside it is refused
 * (64:ff9b::/96 aside); the rows outside it name what the registries hold there. */
static const guard_row_t guard_rows6[] = {
    {"::/0", GUARD_REFUSE, "RFC 4291 section 2.4: reserved by the IETF (outside 2000::/3)"},
    {"2000::/3", GUARD_GLOBAL, "RFC 3587: global unicast"},
    {"::/128", GUARD_REFUSE, "RFC 4291: unspecified address"},
    {"::1/128", GUARD_REFUSE, "RFC 4291: loopback address"},
    {"::/96", GUARD_REFUSE, "RFC 4291 section 2.5.5.1: IPv4-compatible (deprecated)"},
    {"::ffff:0:0/96", GUARD_EMBEDDED, "RFC 4291 section 2.5.5.2: IPv4-mapped"},
    {"64:ff9b::/96", GUARD_EMBEDDED, "RFC 6052: IPv4/IPv6 translation (NAT64)"},
    {"64:ff9b:1::/48", GUARD_REFUSE, "RFC 8215: local-use IPv4/IPv6 translation"},
    {"100::/64", GUARD_REFUSE, "RFC 6666: discard-only"},
    {"100:0:0:1::/64", GUARD_REFUSE, "RFC 9780: dummy IPv6 prefix"},
    {"2001::/23", GUARD_REFUSE, "RFC 2928: IETF protocol assignments"},
    {"2001::/32", GUARD_REFUSE, "RFC 4380, RFC 8190: Teredo"},
    {"2001:1::1/128", GUARD_GLOBAL, "RFC 7723: Port Control Protocol anycast"},
    {"2001:1::2/128", GUARD_GLOBAL, "RFC 8155: TURN anycast"},
    {"2001:1::3/128", GUARD_GLOBAL, "RFC 9665: DNS-SD Service Registration Protocol anycast"},
    {"2001:2::/48", GUARD_REFUSE, "RFC 5180: benchmarking"},
    {"2001:3::/32", GUARD_GLOBAL, "RFC 7450: AMT"},
    {"2001:4:112::/48", GUARD_GLOBAL, "RFC 7535: AS112-v6"},
    {"2001:10::/28", GUARD_REFUSE, "RFC 4843: deprecated ORCHID"},
    {"2001:20::/28", GUARD_GLOBAL, "RFC 7343: ORCHIDv2"},
    {"2001:30::/28", GUARD_GLOBAL, "RFC 9374: drone remote ID entity tags"},
    {"2001:db8::/32", GUARD_REFUSE, "RFC 3849: documentation"},
    {"2002::/16", GUARD_REFUSE, "RFC 3056: 6to4 (reachability N/A)"},
    {"3fff::/20", GUARD_REFUSE, "RFC 9637: documentation"},
    {"5f00::/16", GUARD_REFUSE, "RFC 9602: segment routing (SRv6) SIDs"},
    {"fc00::/7", GUARD_REFUSE, "RFC 4193, RFC 8190: unique local"},
    {"fe80::/10", GUARD_REFUSE, "RFC 4291: link-local unicast"},
    {"fec0::/10", GUARD_REFUSE, "RFC 3879: site-local (deprecated)"},
    {"ff00::/8", GUARD_REFUSE, "RFC 4291: multicast"},
};

#define GUARD_N4 (sizeof(guard_rows4) / sizeof(guard_rows4[0]))
#define GUARD_N6 (sizeof(guard_rows6) / sizeof(guard_rows6[0]))

/* The rows parsed once (the text tables are static and valid; test_guard checks each row). */
static guard_range_t guard_parsed4[GUARD_N4], guard_parsed6[GUARD_N6];
static pthread_once_t guard_parsed_once = PTHREAD_ONCE_INIT;

/* The host's own addresses, and the netlink subscription that says when to read them again. */
typedef struct guard_host {
    int nl_fd; /* RTMGRP_IPV{4,6}_IFADDR listener, or -1: read the addresses on every check */
    int stale; /* the list must be read again before it is used */
    guard_range_t *addrs; /* host ranges (/32 or /128) */
    size_t n, cap;
} guard_host_t;

struct guard {
    guard_range_t *ranges; /* operator-allowed */
    size_t n, cap;
    guard_host_t *host; /* changes on checks of a const guard: a cache, not part of its value */
};

/* guard_match: does range r hold the address a of family fam? */
static int guard_match(const guard_range_t *r, int fam, const uint8_t *a)
{
    if (r->family != fam) return 0;
    unsigned full = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(r->addr, a, full) != 0) return 0;
    if (rest == 0) return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (r->addr[full] & mask) == (a[full] & mask);
}

/* guard_parse_raw: parse "addr[/prefix]" into r as written; returns 0 or -EINVAL with err. */
static int guard_parse_raw(const char *cidr, guard_range_t *r, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (!cidr || !*cidr) {
        snprintf(err, errlen, "empty CIDR");
        return -EINVAL;
    }
    if (strlen(cidr) >= sizeof(buf)) {
        snprintf(err, errlen, "bad CIDR \"%.60s...\": too long", cidr);
        return -EINVAL;
    }
    strcpy(buf, cidr);
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(r, 0, sizeof(*r));
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        r->family = AF_INET;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        r->family = AF_INET6;
    } else {
        snprintf(err, errlen, "bad CIDR \"%s\": \"%s\" is not an IPv4 or IPv6 address", cidr, buf);
        return -EINVAL;
    }
    unsigned max = r->family == AF_INET ? 32 : 128;
    r->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p || strlen(p) > 3) {
            snprintf(err, errlen, "bad CIDR \"%s\": prefix length must be 0..%u", cidr, max);
            return -EINVAL;
        }
        for (; *p; p++) {
            if (*p < '0' || *p > '9') {
                snprintf(err, errlen, "bad CIDR \"%s\": prefix length must be 0..%u", cidr, max);
                return -EINVAL;
            }
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > max) {
            snprintf(err, errlen, "bad CIDR \"%s\": prefix length must be 0..%u", cidr, max);
            return -EINVAL;
        }
        r->prefix = v;
    }
    for (unsigned bit = r->prefix; bit < max; bit++) {
        if (r->addr[bit / 8] & (0x80 >> (bit % 8))) {
            snprintf(err, errlen, "bad CIDR \"%s\": address has bits set beyond the /%u prefix",
                     cidr, r->prefix);
            return -EINVAL;
        }
    }
    return 0;
}

/* guard_parse: guard_parse_raw, with an IPv4-mapped range (::ffff:a.b.c.d/96+) stored as the
 * IPv4 range it is. */
static int guard_parse(const char *cidr, guard_range_t *r, char *err, size_t errlen)
{
    int rc = guard_parse_raw(cidr, r, err, errlen);
    if (rc < 0) return rc;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (r->family == AF_INET6 && r->prefix >= 96 && memcmp(r->addr, mapped, 12) == 0) {
        memmove(r->addr, r->addr + 12, 4);
        memset(r->addr + 4, 0, 12);
        r->family = AF_INET;
        r->prefix -= 96;
    }
    return 0;
}

/* guard_parse_rows: the once-routine that parses both tables. */
static void guard_parse_rows(void)
{
    char err[128];
    for (size_t i = 0; i < GUARD_N4; i++)
        if (guard_parse_raw(guard_rows4[i].cidr, &guard_parsed4[i], err, sizeof(err)) < 0) abort();
    for (size_t i = 0; i < GUARD_N6; i++)
        if (guard_parse_raw(guard_rows6[i].cidr, &guard_parsed6[i], err, sizeof(err)) < 0) abort();
}

/* guard_lookup: the row with the longest prefix that holds a, or NULL when none does. */
static const guard_row_t *guard_lookup(int fam, const uint8_t *a)
{
    pthread_once(&guard_parsed_once, guard_parse_rows);
    const guard_row_t *rows = fam == AF_INET ? guard_rows4 : guard_rows6;
    const guard_range_t *parsed = fam == AF_INET ? guard_parsed4 : guard_parsed6;
    size_t n = fam == AF_INET ? GUARD_N4 : GUARD_N6;
    const guard_row_t *best = NULL;
    unsigned best_prefix = 0;
    for (size_t i = 0; i < n; i++) {
        if (!guard_match(&parsed[i], fam, a)) continue;
        if (!best || parsed[i].prefix > best_prefix) {
            best = &rows[i];
            best_prefix = parsed[i].prefix;
        }
    }
    return best;
}

/* guard_push: append r to a growing range array; returns 0 or -ENOMEM. */
static int guard_push(guard_range_t **arr, size_t *n, size_t *cap, const guard_range_t *r)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        guard_range_t *na = realloc(*arr, nc * sizeof(*na));
        if (!na) return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = *r;
    return 0;
}

/* guard_host_load: read every address of every interface into h; 0 or a negative errno (the
 * list is then empty and still stale). */
static int guard_host_load(guard_host_t *h)
{
    struct ifaddrs *ifs = NULL;
    h->n = 0;
    if (getifaddrs(&ifs) < 0) return errno ? -errno : -EIO;
    int rc = 0;
    for (struct ifaddrs *i = ifs; i && rc == 0; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        guard_range_t r;
        memset(&r, 0, sizeof(r));
        if (i->ifa_addr->sa_family == AF_INET) {
            r.family = AF_INET;
            r.prefix = 32;
            memcpy(r.addr, &((const struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            r.family = AF_INET6;
            r.prefix = 128;
            memcpy(r.addr, &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        rc = guard_push(&h->addrs, &h->n, &h->cap, &r);
    }
    freeifaddrs(ifs);
    if (rc < 0) h->n = 0;
    return rc;
}

/* guard_host_drain: read every pending address-change notification; any (or a lost one, when
 * the socket's queue overflowed) makes the list stale. Costs one recv when nothing changed. */
static void guard_host_drain(guard_host_t *h)
{
    char buf[4096];
    if (h->nl_fd < 0) {
        h->stale = 1;
        return;
    }
    for (;;) {
        ssize_t n = recv(h->nl_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0 || (n < 0 && errno == ENOBUFS)) {
            h->stale = 1;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) h->stale = 1;
        return;
    }
}

/* guard_host_sync: make h's list current; 0, or a negative errno when it cannot be read. */
static int guard_host_sync(guard_host_t *h)
{
    guard_host_drain(h);
    if (!h->stale) return 0;
    int rc = guard_host_load(h);
    if (rc == 0) h->stale = 0;
    return rc;
}

/* guard_host_holds: is a (family fam) one of the host's addresses in h? */
static int guard_host_holds(const guard_host_t *h, int fam, const uint8_t *a)
{
    for (size_t i = 0; i < h->n; i++)
        if (guard_match(&h->addrs[i], fam, a)) return 1;
    return 0;
}

/* guard_allowed: does an operator range hold a? */
static int guard_allowed(const guard_t *g, int fam, const uint8_t *a)
{
    for (size_t i = 0; g && i < g->n; i++)
        if (guard_match(&g->ranges[i], fam, a)) return 1;
    return 0;
}

/* guard_judge: the verdict for a of family fam, with the host's list h (known: it is current;
 * when it is not, only operator ranges let an address through). */
static int guard_judge(const guard_t *g, const guard_host_t *h, int known, int fam,
                       const uint8_t *a)
{
    if (guard_allowed(g, fam, a)) return 1;
    const guard_row_t *row = guard_lookup(fam, a);
    if (row && row->verdict == GUARD_EMBEDDED) return guard_judge(g, h, known, AF_INET, a + 12);
    if (!known || guard_host_holds(h, fam, a)) return 0;
    return !row || row->verdict == GUARD_GLOBAL;
}

/* guard_host_open: the netlink socket told of every IPv4 and IPv6 address change, or -1. */
static int guard_host_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) return -1;
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int guard_init(guard_t **gp)
{
    guard_t *g = calloc(1, sizeof(guard_t));
    guard_host_t *h = calloc(1, sizeof(guard_host_t));
    if (!g || !h) {
        free(g);
        free(h);
        *gp = NULL;
        return -ENOMEM;
    }
    /* Subscribe before the first read, so no change between the two is missed. */
    h->nl_fd = guard_host_open();
    h->stale = 1;
    (void)guard_host_sync(h); /* a failure here is retried by the first check */
    g->host = h;
    *gp = g;
    return 0;
}

void guard_close(guard_t *g)
{
    if (!g) return;
    if (g->host->nl_fd >= 0) close(g->host->nl_fd);
    free(g->host->addrs);
    free(g->host);
    free(g->ranges);
    free(g);
}

int guard_add_cidr(guard_t *g, const char *cidr, char *err, size_t errlen)
{
    guard_range_t r;
    int rc = guard_parse(cidr, &r, err, errlen);
    if (rc < 0) return rc;
    if (guard_push(&g->ranges, &g->n, &g->cap, &r) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int guard_allows(const guard_t *g, const struct sockaddr *sa)
{
    if (!sa) return 0;
    int fam = sa->sa_family;
    const uint8_t *a;
    if (fam == AF_INET)
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (fam == AF_INET6)
        a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    else
        return 0;
    guard_host_t once = {.nl_fd = -1, .stale = 1};
    guard_host_t *h = g ? g->host : &once;
    int known = guard_host_sync(h) == 0;
    int ok = guard_judge(g, h, known, fam, a);
    free(once.addrs);
    return ok;
}
