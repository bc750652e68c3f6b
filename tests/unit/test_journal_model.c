/* test_journal_model.c - the journal and committer against a simple model, under SIGKILL: a
 * child process makes random appends, releases, supersedes (release of the old record once its
 * replacement is durable), failed syncs (RLIMIT_FSIZE standing in for a full disk) and
 * multi-segment compactions on a real loop, checking after every step that every durable live
 * record is still readable, and reports each record that became durable and each it released.
 * The parent SIGKILLs it at a random moment, sometimes tears the newest segment's tail, replays
 * the journal and checks that no durable record that was not released is missing. */
#include "check.h"
#include "util/committer.h"
#include "util/journal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODEL_ROUNDS 40
#define MODEL_SLOTS 160         /* live records the child holds at most */
#define MODEL_IDS (1u << 20)    /* ids per round: round r uses r * MODEL_IDS + ... */
#define MODEL_MAX_STEPS 6000    /* a child that is not killed stops here */
#define MODEL_STEPS_PER_TICK 24 /* operations per loop iteration */

enum { ID_UNKNOWN = 0, ID_DURABLE, ID_RELEASED };

/* What the parent knows of every id, across rounds. */
static unsigned char *id_state;
static char dir[64];

/* A message from the child: kind 'D' (durable), 'R' (about to release), 'V' (violation, id is a
 * line number), 'T' (a step done). */
typedef struct model_msg {
    char kind;
    uint32_t id;
} model_msg_t;

/* ---- the child ---- */

typedef struct slot {
    uint32_t id;
    journal_pos_t pos;
    int state; /* 0 free, 1 appended (waiting), 2 durable live */
} slot_t;

typedef struct model {
    uv_loop_t loop;
    uv_idle_t idle;
    journal_t *j;
    committer_t *c;
    slot_t slots[MODEL_SLOTS];
    uint32_t next_id;
    int out; /* the pipe to the parent */
    unsigned steps;
    int limit_set; /* RLIMIT_FSIZE lowered for the next sync */
    struct rlimit old_limit;
    unsigned seed;
} model_t;

typedef struct waiter {
    model_t *m;
    int slot, replaces; /* replaces: the slot whose record it supersedes, or -1 */
    uint32_t replaces_id;
} waiter_t;

/* model_send writes one message (a pipe write of 8 bytes is atomic). */
static void model_send(model_t *m, char kind, uint32_t id)
{
    model_msg_t msg = {kind, id};
    if (write(m->out, &msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
}

#define MODEL_VIOLATION(m) model_send((m), 'V', (uint32_t)__LINE__)

/* model_rand returns a number in [0, n). */
static unsigned model_rand(model_t *m, unsigned n)
{
    return (unsigned)(rand_r(&m->seed) % n);
}

/* model_payload formats the record of id: "id:<id>:" and filler of a random length. */
static size_t model_payload(model_t *m, uint32_t id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "id:%u:", id);
    size_t len = (size_t)n + model_rand(m, 1500);
    if (len > cap) len = cap;
    for (size_t i = (size_t)n; i < len; i++)
        buf[i] = (char)('a' + (id + i) % 26);
    return len;
}

/* model_restore_limit puts the file size limit back after an injected failure. */
static void model_restore_limit(model_t *m)
{
    if (!m->limit_set) return;
    setrlimit(RLIMIT_FSIZE, &m->old_limit);
    m->limit_set = 0;
}

/* model_durable is the committer's answer for one appended record. */
static void model_durable(void *arg, int status)
{
    waiter_t *w = arg;
    model_t *m = w->m;
    slot_t *s = &m->slots[w->slot];
    model_restore_limit(m);
    if (status < 0) {
        /* dropped: the journal must refuse to release it */
        if (journal_release(m->j, s->pos) == 0) MODEL_VIOLATION(m);
        s->state = 0;
        free(w);
        return;
    }
    s->state = 2;
    model_send(m, 'D', s->id);
    if (w->replaces >= 0) {
        slot_t *old = &m->slots[w->replaces];
        if (old->state == 2 && old->id == w->replaces_id) { /* not released meanwhile */
            model_send(m, 'R', old->id);
            if (journal_release(m->j, old->pos) != 0) MODEL_VIOLATION(m);
            old->state = 0;
        }
    }
    free(w);
}

/* model_free_slot returns a free slot or -1. */
static int model_free_slot(model_t *m)
{
    unsigned start = model_rand(m, MODEL_SLOTS);
    for (unsigned i = 0; i < MODEL_SLOTS; i++) {
        unsigned k = (start + i) % MODEL_SLOTS;
        if (m->slots[k].state == 0) return (int)k;
    }
    return -1;
}

/* model_live_slot returns a random durable live slot or -1. */
static int model_live_slot(model_t *m)
{
    unsigned start = model_rand(m, MODEL_SLOTS);
    for (unsigned i = 0; i < MODEL_SLOTS; i++) {
        unsigned k = (start + i) % MODEL_SLOTS;
        if (m->slots[k].state == 2) return (int)k;
    }
    return -1;
}

/* model_append appends a new record (superseding slot replaces when >= 0). */
static void model_append(model_t *m, int replaces)
{
    char buf[1600], err[256];
    int k = model_free_slot(m);
    if (k < 0) return;
    slot_t *s = &m->slots[k];
    s->id = m->next_id++;
    size_t len = model_payload(m, s->id, buf, sizeof buf);
    if (journal_append(m->j, buf, len, 1, &s->pos, err, sizeof err) < 0) {
        MODEL_VIOLATION(m);
        return;
    }
    s->state = 1;
    waiter_t *w = calloc(1, sizeof *w);
    if (!w) _exit(4);
    *w = (waiter_t){m, k, replaces, replaces >= 0 ? m->slots[replaces].id : 0};
    committer_after(m->c, model_durable, w);
}

/* model_check reads back every durable live record: none may be missing. */
static void model_check(model_t *m)
{
    char want[32];
    for (int k = 0; k < MODEL_SLOTS; k++) {
        slot_t *s = &m->slots[k];
        if (s->state != 2) continue;
        void *rec;
        size_t len;
        int n = snprintf(want, sizeof want, "id:%u:", s->id);
        if (journal_read(m->j, s->pos, &rec, &len) < 0) {
            MODEL_VIOLATION(m);
            continue;
        }
        if (len < (size_t)n || memcmp(rec, want, (size_t)n) != 0) MODEL_VIOLATION(m);
        free(rec);
    }
}

/* model_step makes one random operation. */
static void model_step(model_t *m)
{
    unsigned op = model_rand(m, 100);
    int live = model_live_slot(m);
    if (op < 45) {
        model_append(m, -1);
    } else if (op < 75 && live >= 0) {
        slot_t *s = &m->slots[live];
        model_send(m, 'R', s->id);
        if (journal_release(m->j, s->pos) != 0) MODEL_VIOLATION(m);
        s->state = 0;
    } else if (op < 93 && live >= 0) {
        model_append(m, live);
    } else if (op < 95 && !m->limit_set) {
        /* the next sync fails: no file may grow past its size now */
        struct rlimit lim;
        getrlimit(RLIMIT_FSIZE, &m->old_limit);
        lim = m->old_limit;
        lim.rlim_cur = 8192 + model_rand(m, 4096);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) m->limit_set = 1;
    }
    model_check(m);
    model_send(m, 'T', 0);
    m->steps++;
}

/* model_on_idle runs a few steps per loop iteration. */
static void model_on_idle(uv_idle_t *h)
{
    model_t *m = h->data;
    for (int i = 0; i < MODEL_STEPS_PER_TICK; i++)
        model_step(m);
    if (m->steps >= MODEL_MAX_STEPS) _exit(0); /* a crash of its own: nothing is closed */
}

/* model_visit names every durable live record in segments up to seg. */
static void model_visit(void *arg, uint32_t seg, committer_moves_t *mv)
{
    model_t *m = arg;
    for (int k = 0; k < MODEL_SLOTS; k++)
        if (m->slots[k].state == 2 && journal_pos_segment(m->slots[k].pos) <= seg)
            committer_move(mv, m->slots[k].pos);
}

/* model_relocate: still held? and on commit, the record now lives at its copy. */
static void model_relocate(void *arg, committer_move_t *moves, size_t n, int commit)
{
    model_t *m = arg;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < MODEL_SLOTS; k++)
            if (m->slots[k].state == 2 && m->slots[k].pos == moves[i].old) {
                moves[i].held = 1;
                if (commit) m->slots[k].pos = moves[i].new;
            }
}

typedef struct replay_ctx {
    model_t *m;
    int bad;
} replay_ctx_t;

/* model_replayed takes one replayed record as a stage would: released ones are let go at once
 * (as a marker would), the others are live. */
static int model_replayed(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    replay_ctx_t *rc = arg;
    model_t *m = rc->m;
    unsigned id;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)rec);
    if (sscanf(buf, "id:%u:", &id) != 1) {
        rc->bad++;
        return 0;
    }
    int k = model_free_slot(m);
    if (id_state[id] == ID_RELEASED || k < 0) {
        if (id_state[id] != ID_RELEASED) model_send(m, 'R', id); /* no room: let it go */
        if (journal_release(m->j, pos) != 0) MODEL_VIOLATION(m);
        return 0;
    }
    m->slots[k] = (slot_t){.id = id, .pos = pos, .state = 2};
    if (id_state[id] != ID_DURABLE) model_send(m, 'D', id); /* written, never answered */
    return 0;
}

/* model_child runs until killed. */
static void model_child(int out, unsigned round, size_t segmax, fsync_policy_t pol)
{
    static model_t m;
    char err[512];
    memset(&m, 0, sizeof m);
    m.out = out;
    m.seed = round * 7919u + 17;
    m.next_id = (round + 1) * MODEL_IDS;
    log_init("model", "0", (log_level_t)(LOG_LVL_ERROR + 1)); /* quiet: failures are the point */
    signal(SIGXFSZ, SIG_IGN);
    if (uv_loop_init(&m.loop) < 0) _exit(5);
    if (journal_open(&m.j, dir, "model", segmax, err, sizeof err) < 0) _exit(6);
    replay_ctx_t rc = {&m, 0};
    if (journal_replay(m.j, model_replayed, &rc) < 0 || rc.bad) _exit(7);
    if (committer_init(&m.c, &m.loop, m.j, pol, 2) < 0) _exit(8);
    committer_compact_every(m.c, 3, 2, model_visit, model_relocate, &m);
    uv_idle_init(&m.loop, &m.idle);
    m.idle.data = &m;
    uv_idle_start(&m.idle, model_on_idle);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    _exit(9);
}

/* ---- the parent ---- */

/* rm_entry removes one path for nftw. */
static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

typedef struct found {
    unsigned char *seen;
    unsigned records;
} found_t;

/* found_one notes every id a replay finds. */
static int found_one(void *arg, journal_pos_t pos, const void *rec, size_t len)
{
    found_t *f = arg;
    unsigned id;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)rec);
    if (sscanf(buf, "id:%u:", &id) == 1 && id < (MODEL_ROUNDS + 2) * MODEL_IDS) f->seen[id] = 1;
    f->records++;
    return 0;
}

/* tear_newest appends a few garbage bytes to the newest segment: a torn write of records that
 * were never synced. */
static void tear_newest(unsigned seed)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/model-*.jnl 2>/dev/null | tail -n 1", dir);
    FILE *p = popen(cmd, "r");
    char path[200] = "";
    if (!p) return;
    if (!fgets(path, sizeof path, p)) path[0] = 0;
    pclose(p);
    path[strcspn(path, "\n")] = 0;
    if (!path[0]) return;
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return;
    unsigned char junk[40];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(seed * 31 + i * 7);
    junk[0] = 200; /* a plausible length */
    junk[1] = junk[2] = junk[3] = 0;
    if (write(fd, junk, 5 + seed % 30) < 0) perror("tear");
    close(fd);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/hl-jmodel-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    size_t nids = (size_t)(MODEL_ROUNDS + 2) * MODEL_IDS;
    id_state = calloc(nids, 1);
    unsigned char *seen = calloc(nids, 1);
    if (!id_state || !seen) return 1;
    static const size_t segmaxes[] = {4096, 16384, 65536, 1u << 20};
    static const fsync_policy_t pols[] = {FSYNC_BATCH, FSYNC_ALWAYS, FSYNC_OFF};
    unsigned long steps = 0, durable = 0, released = 0, violations = 0, kills = 0;
    unsigned max_segments = 0;
    srand(12345);
    for (unsigned round = 0; round < MODEL_ROUNDS; round++) {
        int fds[2];
        if (pipe(fds) < 0) return 1;
        size_t segmax = segmaxes[round % 4];
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            model_child(fds[1], round, segmax, pols[round % 3]);
        }
        close(fds[1]);
        /* read its reports; kill it at a random moment */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long kill_after_ms = 30 + rand() % 400;
        int killed = 0;
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        for (;;) {
            model_msg_t msg;
            ssize_t r = read(fds[0], &msg, sizeof msg);
            if (r == (ssize_t)sizeof msg) {
                if (msg.kind == 'D') {
                    if (id_state[msg.id] == ID_UNKNOWN) id_state[msg.id] = ID_DURABLE;
                    durable++;
                } else if (msg.kind == 'R') {
                    id_state[msg.id] = ID_RELEASED;
                    released++;
                } else if (msg.kind == 'V') {
                    fprintf(stderr, "round %u: the child saw a violation at line %u\n", round,
                            msg.id);
                    violations++;
                } else if (msg.kind == 'T') {
                    steps++;
                }
                continue;
            }
            if (r == 0) break; /* the child is gone and the pipe drained */
            clock_gettime(CLOCK_MONOTONIC, &now);
            long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            if (!killed && ms >= kill_after_ms) {
                kill(pid, SIGKILL);
                killed = 1;
                kills++;
            }
            usleep(200);
        }
        close(fds[0]);
        int st;
        waitpid(pid, &st, 0);
        CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
              (WIFEXITED(st) && WEXITSTATUS(st) == 0));
        if (round % 3 == 1) tear_newest(round);
        /* replay: every durable record never released must be there */
        journal_t *j;
        char err[512];
        found_t f = {seen, 0};
        memset(seen, 0, nids);
        log_init("model", "0", (log_level_t)(LOG_LVL_ERROR + 1));
        CHECK_INT(journal_open(&j, dir, "model", segmax, err, sizeof err), 0);
        CHECK_INT(journal_replay(j, found_one, &f), 0);
        journal_stats_t js;
        journal_get_stats(j, &js);
        if (js.segments > max_segments) max_segments = (unsigned)js.segments;
        journal_close(j);
        unsigned missing = 0;
        for (size_t id = 0; id < nids; id++)
            if (id_state[id] == ID_DURABLE && !seen[id]) {
                if (missing++ < 5)
                    fprintf(stderr, "round %u: durable record %zu missing\n", round, id);
            }
        CHECK_INT(missing, 0);
    }
    CHECK_INT(violations, 0);
    CHECK(steps > 1000);
    CHECK(durable > 1000 && released > 500);
    printf("journal model: %lu steps in %d rounds (%lu SIGKILLs), %lu records durable, %lu "
           "released, up to %u segments at a crash, %lu violations\n",
           steps, MODEL_ROUNDS, kills, durable, released, max_segments, violations);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(id_state);
    free(seen);
    return check_done("journal_model");
}
