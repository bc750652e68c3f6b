/* test_guard.c - the address guard: which addresses pass, what allowed CIDRs open, and which
 * CIDRs are refused as input. */
#include "check.h"
#include "../../sender/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* allows: parse text as an IPv4 or IPv6 address and ask the guard. */
static int allows(const guard_t *g, const char *text)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    sin.sin_family = AF_INET;
    sin6.sin6_family = AF_INET6;
    if (inet_pton(AF_INET, text, &sin.sin_addr) == 1)
        return guard_allows(g, (struct sockaddr *)&sin);
    if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1)
        return guard_allows(g, (struct sockaddr *)&sin6);
    fprintf(stderr, "bad test address %s\n", text);
    return -1;
}

static const struct {
    const char *addr;
    int ok;
} default_table[] = {
    {"8.8.8.8", 1},
    {"1.1.1.1", 1},
    {"93.184.216.34", 1},
    {"172.15.255.255", 1},
    {"172.32.0.1", 1},
    {"100.63.255.255", 1},
    {"100.128.0.1", 1},
    {"223.255.255.255", 1},
    {"127.0.0.1", 0},
    {"127.255.255.254", 0},
    {"10.0.0.1", 0},
    {"10.255.255.255", 0},
    {"172.16.0.1", 0},
    {"172.31.255.255", 0},
    {"192.168.1.1", 0},
    {"169.254.169.254", 0},
    {"100.64.0.1", 0},
    {"100.127.255.255", 0},
    {"224.0.0.1", 0},
    {"239.255.255.250", 0},
    {"0.0.0.0", 0},
    {"0.1.2.3", 0},
    {"255.255.255.255", 0},
    {"2606:4700:4700::1111", 1},
    {"2001:4860:4860::8888", 1},
    {"::1", 0},
    {"::", 0},
    {"fc00::1", 0},
    {"fd12:3456::1", 0},
    {"fe80::1", 0},
    {"febf::1", 0},
    {"ff02::1", 0},
    {"::ffff:127.0.0.1", 0},
    {"::ffff:10.1.2.3", 0},
    {"::ffff:169.254.169.254", 0},
    {"::ffff:8.8.8.8", 1},
    {"64:ff9b::7f00:1", 0},
    {"64:ff9b::808:808", 1},
    {"::127.0.0.1", 0},
    {"2002:c0a8:0101::1", 0},
    {"2002:0808:0808::1", 1},
};

int main(void)
{
    guard_t *g = NULL;
    char err[256];
    CHECK_INT(guard_init(&g), 0);

    for (size_t i = 0; i < sizeof(default_table) / sizeof(default_table[0]); i++) {
        int got = allows(g, default_table[i].addr);
        if (got != default_table[i].ok)
            fprintf(stderr, "address %s: got %d, expected %d\n", default_table[i].addr, got,
                    default_table[i].ok);
        CHECK_INT(got, default_table[i].ok);
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
    CHECK_INT(allows(g, "127.0.0.1"), 1);
    CHECK_INT(allows(g, "::ffff:127.0.0.1"), 1);
    CHECK_INT(allows(g, "10.1.200.3"), 1);
    CHECK_INT(allows(g, "10.2.0.1"), 0);
    CHECK_INT(allows(g, "fd12::1"), 1);
    CHECK_INT(allows(g, "fc00::1"), 0);
    CHECK_INT(allows(g, "192.168.7.7"), 1);
    CHECK_INT(allows(g, "192.168.7.8"), 0);
    CHECK_INT(allows(g, "172.16.3.4"), 1);
    CHECK_INT(allows(g, "172.31.255.255"), 1);
    CHECK_INT(allows(g, "::1"), 0);
    CHECK_INT(allows(g, "8.8.8.8"), 1);

    /* /0 allows everything of its family. */
    guard_t *all = NULL;
    CHECK_INT(guard_init(&all), 0);
    CHECK_INT(guard_add_cidr(all, "0.0.0.0/0", err, sizeof(err)), 0);
    CHECK_INT(allows(all, "10.0.0.1"), 1);
    CHECK_INT(allows(all, "255.255.255.255"), 1);
    CHECK_INT(allows(all, "::1"), 0);
    CHECK_INT(guard_add_cidr(all, "::/0", err, sizeof(err)), 0);
    CHECK_INT(allows(all, "::1"), 1);
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
    return check_done("guard");
}
