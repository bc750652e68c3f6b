/* ctl_publish.c - hookctl publish: stream JSON Lines to run/ingest.sock and read the one reply
 * per line concurrently (poll on input, socket in and socket out), so big files never deadlock.
 * Ctrl-C prints the summary so far and exits 130. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_PUBLISH_READ_CHUNK (256u << 10)
#define CTL_PUBLISH_OUT_HIGH (4u << 20)  /* stop reading input while this much is unsent */
#define CTL_PUBLISH_REPLY_MAX (1u << 20) /* one reply line */
#define CTL_PUBLISH_IDLE_MS 60000 /* ingest silent this long with lines unanswered: give up */
#define CTL_PUBLISH_PROGRESS_MS 100
#define CTL_PUBLISH_EXIT_INTERRUPTED 130 /* 128 + SIGINT, as shells report it */

static volatile sig_atomic_t ctl_publish_interrupted;

typedef struct ctl_publish_buf {
    char *p;
    size_t len, off, cap;
} ctl_publish_buf_t;

typedef struct ctl_publish {
    ctl_t *ctl;
    int in_fd, sock;
    int in_eof, sock_eof;
    ctl_publish_buf_t in;    /* input bytes not yet split into lines; in.off = scan position */
    ctl_publish_buf_t out;   /* bytes for the socket; out.off = sent so far */
    ctl_publish_buf_t reply; /* reply bytes not yet a whole line */
    uint64_t line_no;
    uint64_t *q; /* ring of input line numbers waiting for a reply */
    size_t q_head, q_count, q_cap;
    uint64_t sent, accepted, rejected, duplicates, events;
    int tty, progress_shown;
    int64_t last_progress, last_activity;
    const char *sock_path;
} ctl_publish_t;

/* ctl_publish_now_ms: monotonic milliseconds. */
static int64_t ctl_publish_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ctl_publish_buf_reserve: room for n more bytes after len. Returns 0 or -ENOMEM. */
static int ctl_publish_buf_reserve(ctl_publish_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n) return 0;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ctl_publish_buf_consume: drop the first off bytes (compacting). */
static void ctl_publish_buf_compact(ctl_publish_buf_t *b, size_t off)
{
    memmove(b->p, b->p + off, b->len - off);
    b->len -= off;
    b->off = b->off > off ? b->off - off : 0;
}

/* ctl_publish_clear_progress: erase the progress line before another message. */
static void ctl_publish_clear_progress(ctl_publish_t *pb)
{
    if (pb->progress_shown) {
        fputs("\r\033[K", stderr);
        pb->progress_shown = 0;
    }
}

/* ctl_publish_progress: "N lines sent, M acknowledged" at most every 100 ms on a terminal. */
static void ctl_publish_progress(ctl_publish_t *pb, int64_t now)
{
    if (!pb->tty || now - pb->last_progress < CTL_PUBLISH_PROGRESS_MS) return;
    pb->last_progress = now;
    fprintf(stderr, "\r%llu lines sent, %llu acknowledged", (unsigned long long)pb->sent,
            (unsigned long long)(pb->accepted + pb->duplicates + pb->rejected));
    pb->progress_shown = 1;
}

/* ctl_publish_queue_push: remember the input line number of a sent line. Returns 0 or -ENOMEM. */
static int ctl_publish_queue_push(ctl_publish_t *pb, uint64_t line)
{
    if (pb->q_count == pb->q_cap) {
        size_t cap = pb->q_cap ? pb->q_cap * 2 : 4096;
        uint64_t *q = malloc(cap * sizeof *q);
        if (q == NULL) return -ENOMEM;
        for (size_t i = 0; i < pb->q_count; i++)
            q[i] = pb->q[(pb->q_head + i) % pb->q_cap];
        free(pb->q);
        pb->q = q;
        pb->q_cap = cap;
        pb->q_head = 0;
    }
    pb->q[(pb->q_head + pb->q_count) % pb->q_cap] = line;
    pb->q_count++;
    return 0;
}

/* ctl_publish_queue_pop: the line number the next reply answers. */
static uint64_t ctl_publish_queue_pop(ctl_publish_t *pb)
{
    uint64_t line = pb->q[pb->q_head];
    pb->q_head = (pb->q_head + 1) % pb->q_cap;
    pb->q_count--;
    return line;
}

/* ctl_publish_add_line: queue one input line (without its newline) for sending unless blank. */
static int ctl_publish_add_line(ctl_publish_t *pb, const char *s, size_t n)
{
    pb->line_no++;
    if (ctl_line_is_blank(s, n)) return 0;
    if (pb->out.off > 0 && pb->out.off == pb->out.len) pb->out.off = pb->out.len = 0;
    if (ctl_publish_buf_reserve(&pb->out, n + 1) < 0 || ctl_publish_queue_push(pb, pb->line_no) < 0)
        return -ENOMEM;
    memcpy(pb->out.p + pb->out.len, s, n);
    pb->out.p[pb->out.len + n] = '\n';
    pb->out.len += n + 1;
    pb->sent++;
    return 0;
}

/* ctl_publish_read_input: read one chunk of input and split whole lines out. */
static int ctl_publish_read_input(ctl_publish_t *pb)
{
    if (ctl_publish_buf_reserve(&pb->in, CTL_PUBLISH_READ_CHUNK) < 0) return -ENOMEM;
    ssize_t n = read(pb->in_fd, pb->in.p + pb->in.len, CTL_PUBLISH_READ_CHUNK);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) return 0;
        return -errno;
    }
    if (n == 0) {
        pb->in_eof = 1;
        if (pb->in.len > 0 && ctl_publish_add_line(pb, pb->in.p, pb->in.len) < 0) return -ENOMEM;
        pb->in.len = pb->in.off = 0;
        return 0;
    }
    pb->in.len += (size_t)n;
    size_t start = 0;
    while (pb->in.off < pb->in.len) {
        char *nl = memchr(pb->in.p + pb->in.off, '\n', pb->in.len - pb->in.off);
        if (nl == NULL) {
            pb->in.off = pb->in.len;
            break;
        }
        size_t end = (size_t)(nl - pb->in.p);
        if (ctl_publish_add_line(pb, pb->in.p + start, end - start) < 0) return -ENOMEM;
        start = end + 1;
        pb->in.off = start;
    }
    if (start > 0) ctl_publish_buf_compact(&pb->in, start);
    return 0;
}

/* ctl_publish_strip_line_prefix: ingest numbers lines of its own stream; the file's numbers differ
 * (blank lines are not sent), so drop a leading "line N: " from its reason. */
static const char *ctl_publish_strip_line_prefix(const char *s)
{
    if (strncmp(s, "line ", 5) != 0) return s;
    const char *p = s + 5;
    if (*p < '0' || *p > '9') return s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p[0] == ':' && p[1] == ' ') return p + 2;
    return s;
}

/* ctl_publish_handle_reply: one reply line. Returns 0 or -EPROTO after printing why. */
static int ctl_publish_handle_reply(ctl_publish_t *pb, const char *s, size_t n)
{
    json_error_t jerr;
    if (pb->q_count == 0) {
        ctl_publish_clear_progress(pb);
        ctl_error(pb->ctl, "ingest sent a reply for no line: %.*s", (int)(n > 200 ? 200 : n), s);
        return -EPROTO;
    }
    json_t *r = json_loadb(s, n, 0, &jerr);
    json_t *ok = r ? json_object_get(r, "ok") : NULL;
    if (r == NULL || !json_is_boolean(ok)) {
        ctl_publish_clear_progress(pb);
        ctl_error(pb->ctl, "unreadable reply from ingest: %.*s", (int)(n > 200 ? 200 : n), s);
        json_decref(r);
        return -EPROTO;
    }
    uint64_t line = ctl_publish_queue_pop(pb);
    if (json_is_true(ok) && json_is_true(json_object_get(r, "duplicate"))) {
        pb->duplicates++; /* accepted before: nothing is delivered again */
    } else if (json_is_true(ok)) {
        pb->accepted++;
        json_t *ids = json_object_get(r, "ids");
        pb->events += json_is_array(ids) ? json_array_size(ids) : 1;
    } else {
        const char *why = json_string_value(json_object_get(r, "error"));
        pb->rejected++;
        ctl_publish_clear_progress(pb);
        fprintf(stderr, "line %llu: %s\n", (unsigned long long)line,
                why ? ctl_publish_strip_line_prefix(why) : "rejected");
    }
    json_decref(r);
    return 0;
}

/* ctl_publish_read_replies: read what the socket has and handle every whole reply line. */
static int ctl_publish_read_replies(ctl_publish_t *pb)
{
    if (ctl_publish_buf_reserve(&pb->reply, 64 * 1024) < 0) return -ENOMEM;
    ssize_t n = read(pb->sock, pb->reply.p + pb->reply.len, pb->reply.cap - pb->reply.len);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) return 0;
        pb->sock_eof = 1;
        return -errno;
    }
    if (n == 0) {
        pb->sock_eof = 1;
        return -ECONNRESET;
    }
    pb->last_activity = ctl_publish_now_ms();
    pb->reply.len += (size_t)n;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(pb->reply.p + start, '\n', pb->reply.len - start);
        if (nl == NULL) break;
        size_t end = (size_t)(nl - pb->reply.p);
        int rc = ctl_publish_handle_reply(pb, pb->reply.p + start, end - start);
        if (rc < 0) return rc;
        start = end + 1;
    }
    if (start > 0) ctl_publish_buf_compact(&pb->reply, start);
    if (pb->reply.len > CTL_PUBLISH_REPLY_MAX) {
        ctl_publish_clear_progress(pb);
        ctl_error(pb->ctl, "reply line from ingest over %u bytes", CTL_PUBLISH_REPLY_MAX);
        return -EPROTO;
    }
    return 0;
}

/* ctl_publish_write_out: send as much as the socket takes. */
static int ctl_publish_write_out(ctl_publish_t *pb)
{
    while (pb->out.off < pb->out.len) {
        ssize_t n =
            send(pb->sock, pb->out.p + pb->out.off, pb->out.len - pb->out.off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -errno;
        }
        pb->out.off += (size_t)n;
        pb->last_activity = ctl_publish_now_ms();
    }
    pb->out.off = pb->out.len = 0;
    return 0;
}

/* ctl_publish_connect: AF_UNIX stream to path, non-blocking afterwards. Returns fd or -errno. */
static int ctl_publish_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sun.sun_path) return -ENAMETOOLONG;
    memcpy(sun.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ctl_publish_loop: poll until every sent line is answered, the input is done, or the socket fails.
 * Returns 0, or a negative errno after printing why. */
static int ctl_publish_loop(ctl_publish_t *pb)
{
    int rc = 0;
    pb->last_activity = ctl_publish_now_ms();
    for (;;) {
        int pending_out = pb->out.off < pb->out.len;
        if (pb->in_eof && !pending_out && pb->q_count == 0) return 0;
        struct pollfd fds[2] = {{.fd = pb->sock, .events = POLLIN | (pending_out ? POLLOUT : 0)},
                                {.fd = -1}};
        if (!pb->in_eof && pb->out.len - pb->out.off < CTL_PUBLISH_OUT_HIGH) {
            fds[1].fd = pb->in_fd;
            fds[1].events = POLLIN;
        }
        int n = poll(fds, 2, CTL_PUBLISH_PROGRESS_MS);
        if (ctl_publish_interrupted) return -EINTR;
        if (n < 0 && errno != EINTR) {
            ctl_error(pb->ctl, "poll: %s", strerror(errno));
            return -errno;
        }
        int64_t now = ctl_publish_now_ms();
        if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if ((rc = ctl_publish_read_replies(pb)) < 0) break;
        }
        if (n > 0 && (fds[0].revents & POLLOUT) && (rc = ctl_publish_write_out(pb)) < 0) break;
        if (n > 0 && fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if ((rc = ctl_publish_read_input(pb)) < 0) {
                ctl_publish_clear_progress(pb);
                ctl_error(pb->ctl, "reading input: %s", strerror(-rc));
                return rc;
            }
            /* Try to send right away: saves a poll round for each chunk. */
            if (pb->out.off < pb->out.len && (rc = ctl_publish_write_out(pb)) < 0) break;
        }
        if ((pb->q_count > 0 || pb->out.off < pb->out.len) &&
            now - pb->last_activity > CTL_PUBLISH_IDLE_MS) {
            ctl_publish_clear_progress(pb);
            ctl_error(pb->ctl, "ingest at %s did not answer for %d s: %zu lines unacknowledged",
                      pb->sock_path, CTL_PUBLISH_IDLE_MS / 1000, pb->q_count);
            return -ETIMEDOUT;
        }
        ctl_publish_progress(pb, now);
    }
    if (rc == -EPROTO) return rc;
    /* The connection failed: take the replies that already arrived, then report. */
    while (!pb->sock_eof) {
        struct pollfd pfd = {.fd = pb->sock, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0 || ctl_publish_read_replies(pb) < 0) break;
    }
    if (pb->in_eof && pb->q_count == 0 && pb->out.off == pb->out.len) return 0;
    ctl_publish_clear_progress(pb);
    ctl_error(pb->ctl, "connection to ingest at %s lost (%s): %zu line%s unacknowledged%s",
              pb->sock_path, rc == -ECONNRESET ? "closed" : strerror(-rc), pb->q_count,
              pb->q_count == 1 ? "" : "s", pb->in_eof ? "" : ", rest of the input not sent");
    return rc;
}

/* ctl_publish_on_sigint: Ctrl-C ends the loop at its next poll (poll returns EINTR). */
static void ctl_publish_on_sigint(int sig)
{
    (void)sig;
    ctl_publish_interrupted = 1;
}

/* ctl_publish_plural: "1 line", "2 lines". */
static const char *ctl_publish_plural(uint64_t n, const char *one, const char *many, char *buf,
                                      size_t len)
{
    snprintf(buf, len, "%llu %s", (unsigned long long)n, n == 1 ? one : many);
    return buf;
}

/* ctl_publish_summary prints the one-line summary on stderr: "published 3 lines: 1 accepted
 * (2 events), 1 duplicate, 1 rejected", or after Ctrl-C how far it got. */
static void ctl_publish_summary(const ctl_publish_t *pb, int interrupted)
{
    char a[64], b[64], c[64], d[64];
    const char *events = ctl_publish_plural(pb->events, "event", "events", b, sizeof b);
    const char *dups = ctl_publish_plural(pb->duplicates, "duplicate", "duplicates", c, sizeof c);
    if (!interrupted) {
        fprintf(stderr, "published %s: %llu accepted (%s), %s, %llu rejected\n",
                ctl_publish_plural(pb->sent, "line", "lines", a, sizeof a),
                (unsigned long long)pb->accepted, events, dups, (unsigned long long)pb->rejected);
        return;
    }
    uint64_t unanswered = pb->sent - pb->accepted - pb->duplicates - pb->rejected;
    fprintf(stderr,
            "interrupted: %s read, %llu accepted (%s), %s, %llu rejected; %s sent without a reply "
            "yet (each may or may not have been accepted: publishing them again is safe for "
            "events with an id)\n",
            ctl_publish_plural(pb->line_no, "line", "lines", a, sizeof a),
            (unsigned long long)pb->accepted, events, dups, (unsigned long long)pb->rejected,
            ctl_publish_plural(unanswered, "line", "lines", d, sizeof d));
}

/* ctl_publish_run: hookctl publish [FILE|-]. */
int ctl_publish_run(ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{0, 0, 0, 0}};
    char path[PATH_MAX];
    ctl_publish_t pb;
    int c, rc;

    for (int first = 1; (c = ctl_getopt(ctl, argc, argv, opts, first)) != -1; first = 0)
        return CTL_EXIT_USAGE;
    if (argc - optind > 1) return ctl_usage_error(ctl, "expected at most one FILE");
    memset(&pb, 0, sizeof pb);
    pb.ctl = ctl;
    pb.in_fd = 0;
    const char *file = optind < argc ? argv[optind] : "-";
    if (strcmp(file, "-") != 0 && (pb.in_fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        ctl_error(ctl, "%s: %s", file, strerror(errno));
        return CTL_EXIT_USAGE;
    }
    if (ctl_socket_path(ctl, "ingest.sock", path, sizeof path) < 0) {
        ctl_error(ctl, "socket path too long: %s/ingest.sock", ctl->run_dir);
        return CTL_EXIT_FAIL;
    }
    pb.sock_path = path;
    pb.sock = ctl_publish_connect(path);
    if (pb.sock < 0) {
        ctl_error(ctl, "cannot reach ingest at %s: %s", path, strerror(-pb.sock));
        if (pb.in_fd > 0) close(pb.in_fd);
        return CTL_EXIT_FAIL;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = ctl_publish_on_sigint}; /* no SA_RESTART: poll ends */
    sigemptyset(&sa.sa_mask);
    ctl_publish_interrupted = 0;
    sigaction(SIGINT, &sa, NULL);
    pb.tty = isatty(2);
    rc = ctl_publish_loop(&pb);
    ctl_publish_clear_progress(&pb);
    ctl_publish_summary(&pb, rc == -EINTR);
    close(pb.sock);
    if (pb.in_fd > 0) close(pb.in_fd);
    free(pb.in.p);
    free(pb.out.p);
    free(pb.reply.p);
    free(pb.q);
    signal(SIGINT, SIG_DFL);
    if (rc == -EINTR) return CTL_PUBLISH_EXIT_INTERRUPTED;
    if (rc < 0) return CTL_EXIT_FAIL;
    return pb.rejected ? CTL_EXIT_USAGE : CTL_EXIT_OK;
}
