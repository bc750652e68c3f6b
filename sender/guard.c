/* guard.c - the sender's address guard: a table of refused ranges (loopback, RFC 1918, ULA,
 * link-local, CGNAT, multicast, unspecified, reserved) and the operator's allowed CIDRs. */
#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One range: family AF_INET (4 address bytes used) or AF_INET6 (16). */
typedef struct guard_range {
    int family;
    uint8_t addr[16];
    unsigned prefix;
} guard_range_t;

struct guard {
    guard_range_t *ranges;
    size_t n, cap;
};

/* Refused IPv4 ranges, as text so the table reads like the RFCs. */
static const char *const guard_deny4[] = {
    "0.0.0.0/8",      /* unspecified, "this network" */
    "10.0.0.0/8",     /* RFC 1918 */
    "100.64.0.0/10",  /* CGNAT, RFC 6598 */
    "127.0.0.0/8",    /* loopback */
    "169.254.0.0/16", /* link-local */
    "172.16.0.0/12",  /* RFC 1918 */
    "192.168.0.0/16", /* RFC 1918 */
    "224.0.0.0/4",    /* multicast */
    "240.0.0.0/4",    /* reserved, and 255.255.255.255 broadcast */
};

/* Refused IPv6 ranges; the IPv4-embedding forms are handled in guard_allows. */
static const char *const guard_deny6[] = {
    "::/128",    /* unspecified */
    "::1/128",   /* loopback */
    "fc00::/7",  /* unique local */
    "fe80::/10", /* link-local */
    "fec0::/10", /* site-local (deprecated, still private) */
    "ff00::/8",  /* multicast */
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

/* guard_parse: parse "addr[/prefix]" into r; returns 0 or -EINVAL with err. */
static int guard_parse(const char *cidr, guard_range_t *r, char *err, size_t errlen)
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
    /* ::ffff:a.b.c.d/96+ is an IPv4 range written in IPv6; keep it as IPv4. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (r->family == AF_INET6 && r->prefix >= 96 && memcmp(r->addr, mapped, 12) == 0) {
        memmove(r->addr, r->addr + 12, 4);
        memset(r->addr + 4, 0, 12);
        r->family = AF_INET;
        r->prefix -= 96;
    }
    return 0;
}

/* guard_in_table: does one of the textual ranges hold a? The table is static and valid. */
static int guard_in_table(const char *const *table, size_t n, int fam, const uint8_t *a)
{
    char err[8];
    for (size_t i = 0; i < n; i++) {
        guard_range_t r;
        if (guard_parse(table[i], &r, err, sizeof(err)) == 0 && guard_match(&r, fam, a)) return 1;
    }
    return 0;
}

/* guard_allowed: does an operator range hold a? */
static int guard_allowed(const guard_t *g, int fam, const uint8_t *a)
{
    for (size_t i = 0; g && i < g->n; i++)
        if (guard_match(&g->ranges[i], fam, a)) return 1;
    return 0;
}

/* guard_ok4: the verdict for one IPv4 address. */
static int guard_ok4(const guard_t *g, const uint8_t *a4)
{
    if (guard_allowed(g, AF_INET, a4)) return 1;
    return !guard_in_table(guard_deny4, sizeof(guard_deny4) / sizeof(guard_deny4[0]), AF_INET, a4);
}

int guard_init(guard_t **gp)
{
    *gp = calloc(1, sizeof(guard_t));
    return *gp ? 0 : -ENOMEM;
}

void guard_close(guard_t *g)
{
    if (!g) return;
    free(g->ranges);
    free(g);
}

int guard_add_cidr(guard_t *g, const char *cidr, char *err, size_t errlen)
{
    guard_range_t r;
    int rc = guard_parse(cidr, &r, err, errlen);
    if (rc < 0) return rc;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        guard_range_t *nr = realloc(g->ranges, cap * sizeof(*nr));
        if (!nr) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        g->ranges = nr;
        g->cap = cap;
    }
    g->ranges[g->n++] = r;
    return 0;
}

int guard_allows(const guard_t *g, const struct sockaddr *sa)
{
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return guard_ok4(g, (const uint8_t *)&sin->sin_addr);
    }
    if (sa->sa_family != AF_INET6) return 0;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *a = sin6->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t zero[12] = {0};

    /* An IPv4-mapped address is an IPv4 connection: judge it wholly as IPv4. */
    if (memcmp(a, mapped, 12) == 0) return guard_allowed(g, AF_INET6, a) || guard_ok4(g, a + 12);
    if (guard_allowed(g, AF_INET6, a)) return 1;
    if (guard_in_table(guard_deny6, sizeof(guard_deny6) / sizeof(guard_deny6[0]), AF_INET6, a))
        return 0;
    /* Forms that route to an embedded IPv4 address must not reach a refused one. */
    if (memcmp(a, nat64, 12) == 0 || memcmp(a, zero, 12) == 0) return guard_ok4(g, a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) return guard_ok4(g, a + 2);
    return 1;
}
