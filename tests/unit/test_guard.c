/* test_guard.c - the address guard: every special-purpose range at its edges (and in its IPv6
 * forms), the host's own addresses as they come and go (in a network namespace of its own),
 * what allowed CIDRs open, and which CIDRs are refused as input. */
#include "check.h"
#include "../../sender/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* An address of either family, as bytes. */
typedef struct addr {
    int family;
    uint8_t b[16];
} addr_t;

/* addr_len: 4 or 16. */
static size_t addr_len(const addr_t *a)
{
    return a->family == AF_INET ? 4 : 16;
}

/* addr_text: a as text, in a static buffer (one at a time). */
static const char *addr_text(const addr_t *a)
{
    static char buf[INET6_ADDRSTRLEN];
    inet_ntop(a->family, a->b, buf, sizeof(buf));
    return buf;
}

/* allows_addr: ask the guard about a. */
static int allows_addr(const guard_t *g, const addr_t *a)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (a->family == AF_INET) {
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, a->b, 4);
        return guard_allows(g, (struct sockaddr *)&sin);
    }
    sin6.sin6_family = AF_INET6;
    memcpy(&sin6.sin6_addr, a->b, 16);
    return guard_allows(g, (struct sockaddr *)&sin6);
}

/* parse_addr: text to an address; 0 or -1. */
static int parse_addr(const char *text, addr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, text, a->b) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, a->b) == 1) {
        a->family = AF_INET6;
        return 0;
    }
    fprintf(stderr, "bad test address %s\n", text);
    return -1;
}

/* allows: parse text as an IPv4 or IPv6 address and ask the guard. */
static int allows(const guard_t *g, const char *text)
{
    addr_t a;
    if (parse_addr(text, &a) < 0) return -1;
    return allows_addr(g, &a);
}

/* expect: check the verdict for a, naming the address and why when it is wrong. */
static void expect(const guard_t *g, const addr_t *a, int want, const char *what)
{
    int got = allows_addr(g, a);
    if (got != want)
        fprintf(stderr, "%s: address %s: got %d, expected %d\n", what, addr_text(a), got, want);
    CHECK_INT(got, want);
}

/* step: a + 1 (up) or a - 1 (down); returns 0 when it wrapped around the address space. */
static int step(addr_t *a, int up)
{
    for (size_t i = addr_len(a); i-- > 0;) {
        if (up ? a->b[i]++ != 0xff : a->b[i]-- != 0) return 1;
    }
    return 0;
}

/* Each special-purpose range: what its first and last address get, and what the addresses just
 * outside it get (-1: there is none). Transcribed from the IANA registries, not from guard.c. */
static const struct {
    const char *cidr;
    int first, last, before, after;
} edges[] = {
    /* IPv4 (iana-ipv4-special-registry, plus multicast) */
    {"0.0.0.0/8", 0, 0, -1, 1},          /* RFC 791: this network */
    {"10.0.0.0/8", 0, 0, 1, 1},          /* RFC 1918 */
    {"100.64.0.0/10", 0, 0, 1, 1},       /* RFC 6598: shared address space */
    {"127.0.0.0/8", 0, 0, 1, 1},         /* RFC 1122: loopback */
    {"169.254.0.0/16", 0, 0, 1, 1},      /* RFC 3927: link local */
    {"172.16.0.0/12", 0, 0, 1, 1},       /* RFC 1918 */
    {"192.0.0.0/24", 0, 0, 1, 1},        /* RFC 6890: IETF protocol assignments */
    {"192.0.0.0/29", 0, 0, 1, 0},        /* RFC 7335: service continuity (in 192.0.0.0/24) */
    {"192.0.0.8/32", 0, 0, 0, 1},        /* RFC 7600: dummy address; .9 is global */
    {"192.0.0.9/32", 1, 1, 0, 1},        /* RFC 7723: PCP anycast (globally reachable) */
    {"192.0.0.10/32", 1, 1, 1, 0},       /* RFC 8155: TURN anycast (globally reachable) */
    {"192.0.0.170/31", 0, 0, 0, 0},      /* RFC 8880: NAT64/DNS64 discovery */
    {"192.0.2.0/24", 0, 0, 1, 1},        /* RFC 5737: TEST-NET-1 */
    {"192.31.196.0/24", 1, 1, 1, 1},     /* RFC 7535: AS112-v4 (globally reachable) */
    {"192.52.193.0/24", 1, 1, 1, 1},     /* RFC 7450: AMT (globally reachable) */
    {"192.88.99.0/24", 0, 0, 1, 1},      /* RFC 7526: deprecated 6to4 relay anycast */
    {"192.168.0.0/16", 0, 0, 1, 1},      /* RFC 1918 */
    {"192.175.48.0/24", 1, 1, 1, 1},     /* RFC 7534: AS112 (globally reachable) */
    {"198.18.0.0/15", 0, 0, 1, 1},       /* RFC 2544: benchmarking */
    {"198.51.100.0/24", 0, 0, 1, 1},     /* RFC 5737: TEST-NET-2 */
    {"203.0.113.0/24", 0, 0, 1, 1},      /* RFC 5737: TEST-NET-3 */
    {"224.0.0.0/4", 0, 0, 1, 0},         /* RFC 5771: multicast; 240/4 follows */
    {"240.0.0.0/4", 0, 0, 0, -1},        /* RFC 1112: reserved */
    {"255.255.255.255/32", 0, 0, 0, -1}, /* RFC 919: limited broadcast */
    /* IPv6 (iana-ipv6-special-registry; outside 2000::/3 is reserved, 64:ff9b::/96 aside) */
    {"2000::/3", 1, 1, 0, 0},          /* RFC 3587: global unicast */
    {"::/128", 0, 0, -1, 0},           /* RFC 4291: unspecified */
    {"::1/128", 0, 0, 0, 0},           /* RFC 4291: loopback */
    {"::/96", 0, 0, -1, 0},            /* RFC 4291: IPv4-compatible (deprecated) */
    {"64:ff9b:1::/48", 0, 0, 0, 0},    /* RFC 8215: local-use translation */
    {"100::/64", 0, 0, 0, 0},          /* RFC 6666: discard-only */
    {"100:0:0:1::/64", 0, 0, 0, 0},    /* RFC 9780: dummy prefix */
    {"2001::/23", 0, 0, 1, 1},         /* RFC 2928: IETF protocol assignments */
    {"2001::/32", 0, 0, 1, 0},         /* RFC 4380: Teredo (2001:1:: is in 2001::/23) */
    {"2001:1::1/128", 1, 1, 0, 1},     /* RFC 7723: PCP anycast (globally reachable) */
    {"2001:1::2/128", 1, 1, 1, 1},     /* RFC 8155: TURN anycast (globally reachable) */
    {"2001:1::3/128", 1, 1, 1, 0},     /* RFC 9665: SRP anycast (globally reachable) */
    {"2001:2::/48", 0, 0, 0, 0},       /* RFC 5180: benchmarking */
    {"2001:3::/32", 1, 1, 0, 0},       /* RFC 7450: AMT (globally reachable) */
    {"2001:4:112::/48", 1, 1, 0, 0},   /* RFC 7535: AS112-v6 (globally reachable) */
    {"2001:10::/28", 0, 0, 0, 1},      /* RFC 4843: deprecated ORCHID; ORCHIDv2 follows */
    {"2001:20::/28", 1, 1, 0, 1},      /* RFC 7343: ORCHIDv2 (globally reachable) */
    {"2001:30::/28", 1, 1, 1, 0},      /* RFC 9374: DETs (globally reachable) */
    {"2001:db8::/32", 0, 0, 1, 1},     /* RFC 3849: documentation */
    {"2002::/16", 0, 0, 1, 1},         /* RFC 3056: 6to4 (reachability N/A) */
    {"2620:4f:8000::/48", 1, 1, 1, 1}, /* RFC 7534: AS112 (globally reachable) */
    {"3fff::/20", 0, 0, 1, 1},         /* RFC 9637: documentation */
    {"5f00::/16", 0, 0, 0, 0},         /* RFC 9602: SRv6 SIDs (outside 2000::/3 anyway) */
    {"fc00::/7", 0, 0, 0, 0},          /* RFC 4193: unique local */
    {"fe80::/10", 0, 0, 0, 0},         /* RFC 4291: link-local */
    {"fec0::/10", 0, 0, 0, 0},         /* RFC 3879: site-local */
    {"ff00::/8", 0, 0, 0, -1},         /* RFC 4291: multicast */
};

/* range_bounds: the first and last address of cidr; 0 or -1. */
static int range_bounds(const char *cidr, addr_t *first, addr_t *last)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", cidr);
    char *slash = strchr(buf, '/');
    if (!slash) return -1;
    *slash = '\0';
    unsigned prefix = (unsigned)atoi(slash + 1);
    if (parse_addr(buf, first) < 0) return -1;
    *last = *first;
    for (unsigned bit = prefix; bit < addr_len(first) * 8; bit++)
        last->b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
    return 0;
}

/* embed: the IPv6 form of an IPv4 address under a 96-bit prefix (::ffff:0:0, 64:ff9b::). */
static addr_t embed(const addr_t *v4, const char *prefix)
{
    addr_t a;
    parse_addr(prefix, &a);
    memcpy(a.b + 12, v4->b, 4);
    return a;
}

/* check_edges: every row of edges at its four points; IPv4 rows also as IPv4-mapped and NAT64
 * (64:ff9b::/96) addresses, which must get the same verdict, and under 64:ff9b:1::/48, refused. */
static void check_edges(const guard_t *g)
{
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        addr_t first, last, before, after;
        char what[96];
        CHECK_INT(range_bounds(edges[i].cidr, &first, &last), 0);
        before = first;
        after = last;
        int has_before = step(&before, 0), has_after = step(&after, 1);
        CHECK_INT(has_before, edges[i].before >= 0);
        CHECK_INT(has_after, edges[i].after >= 0);
        const addr_t *pt[4] = {&first, &last, &before, &after};
        const int want[4] = {edges[i].first, edges[i].last, edges[i].before, edges[i].after};
        static const char *const name[4] = {"first of", "last of", "just before", "just after"};
        for (int k = 0; k < 4; k++) {
            if (want[k] < 0) continue;
            snprintf(what, sizeof(what), "%s %s", name[k], edges[i].cidr);
            expect(g, pt[k], want[k], what);
            if (pt[k]->family != AF_INET) continue;
            addr_t m = embed(pt[k], "::ffff:0:0"), n = embed(pt[k], "64:ff9b::");
            addr_t l = embed(pt[k], "64:ff9b:1::");
            snprintf(what, sizeof(what), "%s %s, IPv4-mapped", name[k], edges[i].cidr);
            expect(g, &m, want[k], what);
            snprintf(what, sizeof(what), "%s %s, NAT64", name[k], edges[i].cidr);
            expect(g, &n, want[k], what);
            snprintf(what, sizeof(what), "%s %s, local-use NAT64", name[k], edges[i].cidr);
            expect(g, &l, 0, what);
        }
    }
}

static const struct {
    const char *addr;
    int ok;
} samples[] = {
    {"8.8.8.8", 1},
    {"1.1.1.1", 1},
    {"93.184.216.34", 1},
    {"223.255.255.255", 1},
    {"127.255.255.254", 0},
    {"169.254.169.254", 0},
    {"239.255.255.250", 0},
    {"192.0.0.1", 0},
    {"192.0.0.171", 0},
    {"192.0.2.1", 0},
    {"198.19.255.255", 0},
    {"198.20.0.0", 1},
    {"2606:4700:4700::1111", 1},
    {"2001:4860:4860::8888", 1},
    {"fd12:3456::1", 0},
    {"febf::1", 0},
    {"ff02::1", 0},
    {"ff0e::1", 0},
    {"4000::1", 0},
    {"::ffff:127.0.0.1", 0},
    {"::ffff:10.1.2.3", 0},
    {"::ffff:169.254.169.254", 0},
    {"::ffff:8.8.8.8", 1},
    {"64:ff9b::7f00:1", 0},
    {"64:ff9b::808:808", 1},
    {"64:ff9b:1::808:808", 0},
    {"64:ff9b:0:0:1::808:808", 0}, /* not the /96: reserved space */
    {"::127.0.0.1", 0},
    {"::8.8.8.8", 0},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", 0}, /* Teredo */
    {"2001:1::4", 0},
    {"2002:c0a8:0101::1", 0},
    {"2002:0808:0808::1", 0},
    {"2001:db8::1", 0},
    {"3fff:fff:ffff::1", 0},
    {"3fff:1000::1", 1},
};

/* write_file: write text to path; 0 or -1. */
static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* enter_netns: move this process into a network namespace of its own (as root, or through a
 * user namespace where unprivileged ones are allowed), with lo up; 0 or -1 with why. */
static int enter_netns(char *why, size_t n)
{
    if (unshare(CLONE_NEWNET) < 0) {
        int e1 = errno;
        uid_t uid = getuid();
        gid_t gid = getgid();
        char map[64];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
            snprintf(why, n, "unshare(CLONE_NEWNET): %s; with CLONE_NEWUSER: %s", strerror(e1),
                     strerror(errno));
            return -1;
        }
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        int rc = write_file("/proc/self/setgroups", "deny");
        if (rc == 0) rc = write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        if (rc == 0) rc = write_file("/proc/self/gid_map", map);
        if (rc < 0) {
            snprintf(why, n, "user namespace id maps: %s", strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = fd < 0 ? -1 : ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    if (rc < 0) snprintf(why, n, "bringing lo up: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

/* nl_addr: add (or delete) a host address on lo through rtnetlink; 0 or a negative errno. */
static int nl_addr(int add, const addr_t *a)
{
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    req.nh.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
    req.nh.nlmsg_seq = 1;
    req.ifa.ifa_family = (unsigned char)a->family;
    req.ifa.ifa_prefixlen = (unsigned char)(addr_len(a) * 8);
    req.ifa.ifa_flags = a->family == AF_INET6 ? IFA_F_NODAD : 0;
    req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    req.ifa.ifa_index = if_nametoindex("lo");
    unsigned short types[2] = {IFA_LOCAL, IFA_ADDRESS};
    for (int i = 0; i < 2; i++) {
        struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
        rta->rta_type = types[i];
        rta->rta_len = (unsigned short)RTA_LENGTH(addr_len(a));
        memcpy(RTA_DATA(rta), a->b, addr_len(a));
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    int rc = 0;
    char buf[1024];
    if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
        rc = -errno;
    } else {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        struct nlmsghdr *nh = (struct nlmsghdr *)buf;
        if (n < 0)
            rc = -errno;
        else if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) ||
                 nh->nlmsg_type != NLMSG_ERROR)
            rc = -EPROTO;
        else
            rc = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
    }
    close(fd);
    if (rc < 0)
        fprintf(stderr, "%s %s on lo: %s\n", add ? "adding" : "removing", addr_text(a),
                strerror(-rc));
    return rc;
}

/* lowest_free_fd: the descriptor the next open would get. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0) close(fd);
    return fd;
}

/* with_no_fds: lower RLIMIT_NOFILE so that no descriptor can be opened (on = 1), or restore it
 * (on = 0). */
static void with_no_fds(int on)
{
    static struct rlimit saved;
    if (on) {
        CHECK_INT(getrlimit(RLIMIT_NOFILE, &saved), 0);
        struct rlimit low = saved;
        low.rlim_cur = (rlim_t)lowest_free_fd();
        CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
    } else {
        CHECK_INT(setrlimit(RLIMIT_NOFILE, &saved), 0);
    }
}

/* check_real_host: every address the machine's own interfaces have now is refused, and opened
 * by an allowed range of exactly that address. */
static void check_real_host(void)
{
    struct ifaddrs *ifs = NULL;
    CHECK_INT(getifaddrs(&ifs), 0);
    int seen = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        addr_t a;
        memset(&a, 0, sizeof(a));
        a.family = i->ifa_addr->sa_family;
        if (a.family == AF_INET)
            memcpy(a.b, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        else
            memcpy(a.b, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        guard_t *g = NULL, *open = NULL;
        char err[128];
        CHECK_INT(guard_init(&g), 0);
        CHECK_INT(guard_init(&open), 0);
        CHECK_INT(guard_add_cidr(open, addr_text(&a), err, sizeof(err)), 0);
        expect(g, &a, 0, i->ifa_name);
        expect(NULL, &a, 0, i->ifa_name);
        expect(open, &a, 1, i->ifa_name);
        guard_close(g);
        guard_close(open);
        seen++;
    }
    freeifaddrs(ifs);
    CHECK(seen > 0); /* lo's 127.0.0.1 at least */
}

/* check_own_addresses: in a namespace of its own, addresses that are globally reachable are
 * refused exactly while one of its interfaces has them, without delay, by a guard made before
 * they came; as IPv4-mapped and NAT64 forms too; an allowed range opens them. Then the same
 * without the change subscription, and with the host's addresses unreadable (refused). */
static void check_own_addresses(void)
{
    char why[256];
    int rc = enter_netns(why, sizeof(why));
    if (rc < 0) fprintf(stderr, "cannot make a network namespace for the test: %s\n", why);
    CHECK_INT(rc, 0);
    if (rc < 0) return;

    addr_t own4, own6, near4, mapped, nat64, public4;
    parse_addr("11.22.33.44", &own4); /* DoD space: globally reachable by the registries */
    parse_addr("2a00:5:6:7::44", &own6);
    parse_addr("11.22.33.45", &near4);
    parse_addr("::ffff:11.22.33.44", &mapped);
    parse_addr("64:ff9b::b16:212c", &nat64);
    parse_addr("8.8.8.8", &public4);

    guard_t *g = NULL, *open = NULL;
    char err[128];
    CHECK_INT(guard_init(&g), 0);
    CHECK_INT(guard_init(&open), 0);
    CHECK_INT(guard_add_cidr(open, "11.22.33.44", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(open, "2a00:5:6:7::44/128", err, sizeof(err)), 0);
    expect(g, &own4, 1, "before the address is added");
    expect(g, &own6, 1, "before the address is added");
    expect(g, &nat64, 1, "before the address is added");

    CHECK_INT(nl_addr(1, &own4), 0);
    CHECK_INT(nl_addr(1, &own6), 0);
    expect(g, &own4, 0, "own address");
    expect(g, &own6, 0, "own address");
    expect(g, &mapped, 0, "own address, IPv4-mapped");
    expect(g, &nat64, 0, "own address, NAT64");
    expect(g, &near4, 1, "next to an own address");
    expect(NULL, &own4, 0, "own address, NULL guard");
    expect(NULL, &own6, 0, "own address, NULL guard");
    expect(open, &own4, 1, "own address, allowed");
    expect(open, &own6, 1, "own address, allowed");
    expect(open, &mapped, 1, "own address, IPv4-mapped, allowed");

    CHECK_INT(nl_addr(0, &own4), 0);
    CHECK_INT(nl_addr(0, &own6), 0);
    expect(g, &own4, 1, "after the address is removed");
    expect(g, &own6, 1, "after the address is removed");
    expect(NULL, &own4, 1, "after the address is removed, NULL guard");

    /* Without the subscription (no descriptor for it): the addresses are read on every check. */
    int before = lowest_free_fd();
    guard_t *poll = NULL;
    with_no_fds(1);
    CHECK_INT(guard_init(&poll), 0);
    with_no_fds(0);
    CHECK_INT(lowest_free_fd(), before); /* it holds no descriptor */
    expect(poll, &own4, 1, "no subscription, before");
    CHECK_INT(nl_addr(1, &own4), 0);
    expect(poll, &own4, 0, "no subscription, own address");
    CHECK_INT(nl_addr(0, &own4), 0);
    expect(poll, &own4, 1, "no subscription, removed");

    /* The host's addresses cannot be read: refused, unless an allowed range holds it. */
    CHECK_INT(nl_addr(1, &near4), 0); /* a change: the next check must read them again */
    with_no_fds(1);
    expect(g, &public4, 0, "host addresses unreadable");
    expect(poll, &public4, 0, "host addresses unreadable, no subscription");
    expect(open, &own4, 1, "host addresses unreadable, allowed");
    with_no_fds(0);
    expect(g, &public4, 1, "host addresses readable again");
    expect(g, &near4, 0, "host addresses readable again, own address");
    CHECK_INT(nl_addr(0, &near4), 0);
    expect(g, &near4, 1, "removed again");

    guard_close(poll);
    guard_close(open);
    guard_close(g);
}

int main(void)
{
    guard_t *g = NULL;
    char err[256];
    CHECK_INT(guard_init(&g), 0);

    check_edges(g);
    check_edges(NULL);
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int got = allows(g, samples[i].addr);
        if (got != samples[i].ok)
            fprintf(stderr, "address %s: got %d, expected %d\n", samples[i].addr, got,
                    samples[i].ok);
        CHECK_INT(got, samples[i].ok);
    }
    /* NULL guard behaves as an empty one; non-IP families are refused. */
    CHECK_INT(allows(NULL, "8.8.8.8"), 1);
    CHECK_INT(allows(NULL, "127.0.0.1"), 0);
    struct sockaddr un = {.sa_family = AF_UNIX};
    CHECK_INT(guard_allows(g, &un), 0);
    CHECK_INT(guard_allows(g, NULL), 0);

    /* Allowed ranges open exactly what they hold. */
    CHECK_INT(guard_add_cidr(g, "127.0.0.0/8", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(g, "10.1.0.0/16", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(g, "fd00::/8", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(g, "192.168.7.7", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(g, "::ffff:172.16.0.0/108", err, sizeof(err)), 0);
    CHECK_INT(guard_add_cidr(g, "2001:db8::/33", err, sizeof(err)), 0);
    CHECK_INT(allows(g, "127.0.0.1"), 1);
    CHECK_INT(allows(g, "::ffff:127.0.0.1"), 1);
    CHECK_INT(allows(g, "64:ff9b::7f00:1"), 1);
    CHECK_INT(allows(g, "10.1.200.3"), 1);
    CHECK_INT(allows(g, "10.2.0.1"), 0);
    CHECK_INT(allows(g, "fd12::1"), 1);
    CHECK_INT(allows(g, "fc00::1"), 0);
    CHECK_INT(allows(g, "192.168.7.7"), 1);
    CHECK_INT(allows(g, "192.168.7.8"), 0);
    CHECK_INT(allows(g, "172.16.3.4"), 1);
    CHECK_INT(allows(g, "172.31.255.255"), 1);
    CHECK_INT(allows(g, "2001:db8::7"), 1);
    CHECK_INT(allows(g, "2001:db8:8000::7"), 0);
    CHECK_INT(allows(g, "::1"), 0);
    CHECK_INT(allows(g, "8.8.8.8"), 1);

    /* /0 allows everything of its family. */
    guard_t *all = NULL;
    CHECK_INT(guard_init(&all), 0);
    CHECK_INT(guard_add_cidr(all, "0.0.0.0/0", err, sizeof(err)), 0);
    CHECK_INT(allows(all, "10.0.0.1"), 1);
    CHECK_INT(allows(all, "255.255.255.255"), 1);
    CHECK_INT(allows(all, "::ffff:10.0.0.1"), 1);
    CHECK_INT(allows(all, "::1"), 0);
    CHECK_INT(guard_add_cidr(all, "::/0", err, sizeof(err)), 0);
    CHECK_INT(allows(all, "::1"), 1);
    CHECK_INT(allows(all, "fe80::1"), 1);
    guard_close(all);

    /* Bad input is refused with a message naming it. */
    static const char *const bad[] = {
        "",           "10.0.0.0/",  "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x",  "10.0.0/8",
        "10.0.0.1/8", "fd00::/129", "fd00::1/8",   "nonsense",    "1.2.3.4/0008", "10.0.0.0/8/8",
        "::1 ",       " 127.0.0.1", "256.0.0.0/8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = guard_add_cidr(g, bad[i], err, sizeof(err));
        if (rc != -EINVAL) fprintf(stderr, "CIDR \"%s\" was accepted\n", bad[i]);
        CHECK_INT(rc, -EINVAL);
        CHECK(err[0] != '\0');
    }
    CHECK_INT(guard_add_cidr(g, NULL, err, sizeof(err)), -EINVAL);
    CHECK_INT(guard_add_cidr(g, "10.0.0.1/8", err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "10.0.0.1/8") != NULL && strstr(err, "/8 prefix") != NULL);
    CHECK_INT(guard_add_cidr(g, "10.0.0.0/33", err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "0..32") != NULL);
    CHECK_INT(guard_add_cidr(g, "fd00::/129", err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "0..128") != NULL);
    /* Refused input added nothing. */
    CHECK_INT(allows(g, "10.0.0.1"), 0);
    guard_close(g);
    guard_close(NULL);

    check_real_host();
    check_own_addresses(); /* last: it leaves this process in its own network namespace */
    return check_done("guard");
}
