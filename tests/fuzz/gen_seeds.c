/* gen_seeds.c - writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) with the
 * project's own encoders: events from examples/ as JSON lines and as msgpack (mpjson), frames
 * (frame_begin/frame_end), journal segments (journal_append/journal_sync), configurations.
 * Not part of the build; see tests/fuzz/README.md for the one command that runs it. */
#include "domain/proto.h"
#include "util/frame.h"
#include "util/journal.h"
#include "util/log.h"
#include "util/mpjson.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *corpus; /* tests/fuzz/corpus */

/* die prints a reason and exits 1. */
static void die(const char *what, const char *why)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, why);
    exit(1);
}

/* put writes one seed file corpus/target/name, with an optional leading byte (-1: none). */
static void put(const char *target, const char *name, int lead, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", corpus, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", corpus, target, name);
    FILE *f = fopen(path, "wb");
    if (!f) die(path, strerror(errno));
    if (lead >= 0) fputc(lead, f);
    if (n && fwrite(data, 1, n, f) != n) die(path, "short write");
    if (fclose(f) != 0) die(path, strerror(errno));
}

/* put_str writes a text seed. */
static void put_str(const char *target, const char *name, const char *text)
{
    put(target, name, -1, text, strlen(text));
}

/* slurp reads a whole file (NUL terminated). */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (!(buf = realloc(buf, cap))) die(path, "out of memory");
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    *n = len;
    return buf;
}

/* pack_json packs one JSON text as msgpack into sb (appending). */
static void pack_json(msgpack_sbuffer *sb, const char *text)
{
    msgpack_packer pk;
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v) die(text, jerr.text);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    mpjson_pack_json(&pk, v);
    json_decref(v);
}

/* events: the example lines, some refused ones, and their msgpack forms. */
static void gen_events(const char *examples)
{
    static const char *const bad[] = {
        "{\"type\": \"opportunity.won\", \"project_id\": \"prj_1\", \"opportunity\": {\"id\": 1}}",
        "{\"type\": \"opportunity.created\", \"project_id\": \"prj_1\", \"opportunity\": {}}",
        "{\"type\": \"opportunity.created\", \"id\": \"bad id!\", \"project_id\": \"p\", "
        "\"opportunity\": {\"id\": \"o\"}}",
        "{\"type\": \"opportunity.created\", \"project_id\": \"p\", \"opportunity\": {\"id\": 7}, "
        "\"extra\": 1}",
        "{\"type\": \"opportunity.transitioned\", \"project_id\": \"prj_1\", \"opportunity\": "
        "{\"id\": \"o\", \"funnel_id\": \"fun_1\"}, \"to_stage_id\": \"stg_lost\", "
        "\"from_stage_id\": null, \"occurred_at\": \"2026-11-26T12:00:00+02:00\"}",
        "{\"type\": \"opportunity.transitioned\", \"project_id\": \"prj_2\", \"id\": \"t.1\", "
        "\"opportunity\": {\"id\": 3, \"funnel_id\": \"fun_1\"}, \"to_stage_id\": \"w\"}",
        "{\"type\": \"opportunity.created\", \"project_id\": \"p\", \"opportunity\": {\"id\": "
        "\"o\"}, \"occurred_at\": \"yesterday\"}",
        "{\"a\": 1, \"a\": 2}",
        "[1, 2, 3]",
        "{\"type\": \"opportunity.created\"",
        "{\"x\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        NULL};
    char name[64];
    size_t n;
    char *text = slurp(examples, &n);
    msgpack_sbuffer stream;
    msgpack_sbuffer_init(&stream);
    int i = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), i++) {
        msgpack_sbuffer sb;
        snprintf(name, sizeof name, "example-%d.json", i + 1);
        put_str("event", name, line);
        msgpack_sbuffer_init(&sb);
        pack_json(&sb, line);
        snprintf(name, sizeof name, "example-%d.msgpack", i + 1);
        put("event", name, -1, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (i < 3) pack_json(&stream, line);
    }
    put("event", "stream-3.msgpack", -1, stream.data, stream.size);
    msgpack_sbuffer_destroy(&stream);
    for (i = 0; bad[i]; i++) {
        snprintf(name, sizeof name, "other-%02d.json", i + 1);
        put_str("event", name, bad[i]);
        json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        if (v) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            pack_json(&sb, bad[i]);
            snprintf(name, sizeof name, "other-%02d.msgpack", i + 1);
            put("event", name, -1, sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
            json_decref(v);
        }
    }
    free(text);
}

/* frame_add appends one frame built from a JSON object (numbers as msgpack integers). */
static void frame_add(msgpack_sbuffer *sb, const char *json)
{
    msgpack_packer pk;
    size_t mark;
    frame_begin(sb, &pk, &mark);
    json_t *v = json_loads(json, 0, NULL);
    if (!v) die(json, "bad frame JSON");
    mpjson_pack_json(&pk, v);
    json_decref(v);
    frame_end(sb, mark);
}

/* frames: the protocol's frames alone, all in one stream, cut short, and under a small limit;
 * each seed starts with the target's two control bytes (piece seed, frame limit). */
static void gen_frames(void)
{
    static const char *const frames[] = {
        "{\"t\": 1, \"v\": 1, \"stage\": \"router\", \"inst\": \"0\", \"pid\": 4242}",
        "{\"t\": 2, \"seq\": 7, \"js\": \"{\\\"id\\\":\\\"evt_1\\\",\\\"type\\\":"
        "\\\"opportunity.created\\\"}\"}",
        "{\"t\": 3, \"seq\": 7}",
        "{\"t\": 4, \"seq\": 9, \"inv\": \"inv_1\", \"wh\": \"wh_1\", \"ev\": \"evt_1\", \"et\": "
        "\"opportunity.won\", \"att\": 1, \"body\": \"{}\", \"ca\": 1795000000000}",
        "{\"t\": 6, \"seq\": 9, \"inv\": \"inv_1\", \"wh\": \"wh_1\", \"ev\": \"evt_1\", \"et\": "
        "\"opportunity.won\", \"att\": 2, \"body\": \"{}\", \"ca\": 1795000000000, \"ra\": 0}",
        "{\"t\": 7, \"seq\": 9, \"st\": \"retrying\", \"next\": 1795000030000}",
        "{\"t\": 9, \"stage\": \"sender\", \"inst\": \"a\", \"pid\": 1, \"state\": \"running\", "
        "\"up\": 1000, \"stats\": {\"sent\": 3, \"failed\": 0}}",
        "{\"t\": 11, \"ok\": 0, \"err\": \"no such invocation\"}",
        NULL};
    char name[64];
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    uint8_t ctl[2] = {0x5a, 0};
    msgpack_sbuffer_write(&all, (const char *)ctl, 2);
    for (int i = 0; frames[i]; i++) {
        msgpack_sbuffer one;
        msgpack_sbuffer_init(&one);
        msgpack_sbuffer_write(&one, (const char *)ctl, 2);
        frame_add(&one, frames[i]);
        frame_add(&all, frames[i]);
        snprintf(name, sizeof name, "frame-%d", i + 1);
        put("frame", name, -1, one.data, one.size);
        msgpack_sbuffer_destroy(&one);
    }
    put("frame", "stream", -1, all.data, all.size);
    put("frame", "stream-cut", -1, all.data, all.size - 5);
    all.data[1] = (char)140; /* a 104-byte limit: the longer frames are refused */
    put("frame", "stream-small-limit", -1, all.data, all.size);
    msgpack_sbuffer_destroy(&all);
    static const uint8_t odd[][12] = {
        {0x01, 0x00, 0, 0, 0, 0},                               /* empty frame */
        {0x01, 0x00, 0xff, 0xff, 0xff, 0xff},                   /* oversized length */
        {0x01, 0x00, 0, 0, 0, 1, 0x91},                         /* not a map */
        {0x01, 0x00, 0, 0, 0, 3, 0x81, 0xa1, 't'},              /* truncated map */
        {0x01, 0x00, 0, 0, 0, 4, 0x80, 0xc0, 0xc0, 0xc0},       /* trailing bytes */
        {0x01, 0x00, 0, 0, 0, 4, 0x81, 0x01, 0xa1, 'x'},        /* integer key */
        {0x01, 0x00, 0, 0, 0, 5, 0xdf, 0xff, 0xff, 0xff, 0xff}, /* huge map count */
    };
    static const size_t oddlen[] = {6, 6, 7, 9, 10, 10, 11};
    for (size_t i = 0; i < sizeof oddlen / sizeof oddlen[0]; i++) {
        snprintf(name, sizeof name, "odd-%zu", i + 1);
        put("frame", name, -1, odd[i], oddlen[i]);
    }
}

/* rm_entry removes one path for nftw. */
static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

/* gen_journal: a segment written by the journal itself, then variants of it; the first byte of
 * each seed is the target's mode byte (layout, segment number, small segments). */
static void gen_journal(void)
{
    char dir[] = "/tmp/hookline-gen-seeds.XXXXXX", err[256], path[512];
    if (!mkdtemp(dir)) die("mkdtemp", strerror(errno));
    journal_t *j;
    if (journal_open(&j, dir, "s", 0, err, sizeof err) < 0) die("journal_open", err);
    if (journal_replay(j, NULL, NULL) < 0) die("journal_replay", "failed");
    static const char *const recs[] = {
        "{\"id\":\"evt_1001\",\"type\":\"opportunity.created\",\"project_id\":\"prj_1\"}", "ack 1",
        "{\"id\":\"evt_1005\",\"type\":\"opportunity.transitioned\"}", "x"};
    for (int i = 0; recs[i] && i < 4; i++) {
        journal_pos_t pos;
        if (journal_append(j, recs[i], strlen(recs[i]), i != 1, &pos, err, sizeof err) < 0)
            die("journal_append", err);
    }
    if (journal_sync(j, 0, err, sizeof err) < 0) die("journal_sync", err);
    journal_close(j);
    snprintf(path, sizeof path, "%s/s-%016x.jnl", dir, 1);
    size_t n;
    char *seg = slurp(path, &n);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    put("journal", "segment", 0, seg, n);                   /* raw, as written */
    put("journal", "segment-body", 1, seg + 8, n - 8);      /* header added by the target */
    put("journal", "segment-torn", 0, seg, n - 3);          /* torn last record */
    put("journal", "segment-small", 16, seg, n);            /* 64-byte segments */
    put("journal", "segment-top", 12, seg, n);              /* highest segment number */
    put("journal", "two-segments", 3, seg + 8, n - 8);      /* split over two */
    put("journal", "two-segments-bare", 2, seg + 8, n - 8); /* newer one without header */
    put("journal", "header-only", 0, seg, 8);
    seg[9] ^= 0x40;
    put("journal", "segment-bad-length", 0, seg, n);
    seg[9] ^= 0x40;
    seg[n - 1] ^= 1;
    put("journal", "segment-bad-crc", 0, seg, n);
    put("journal", "zero-header", 0, "\0\0\0\0\0\0\0\0\0\0", 10);
    free(seg);
}

/* gen_config: the example configuration, a minimal one, and some that import refuses. */
static void gen_config(const char *example)
{
    size_t n;
    char *text = slurp(example, &n);
    put("config", "example.json", -1, text, n);
    free(text);
    put_str("config", "empty.json", "{\"projects\": []}");
    put_str("config", "minimal.json",
            "{\"projects\": [{\"id\": \"p\", \"name\": \"P\", \"opportunity_fields\": [], "
            "\"contact_fields\": [], \"funnels\": [], \"webhooks\": [{\"id\": \"w\", \"name\": "
            "\"W\", \"url\": \"http://h/\", \"enabled\": false, \"events\": "
            "[\"opportunity.created\"], \"auth\": {\"type\": \"api_key\", \"key\": \"k\"}, "
            "\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}]}]}");
    put_str("config", "dup-id.json",
            "{\"projects\": [{\"id\": \"p\", \"name\": \"P\", \"funnels\": [{\"id\": \"p\", "
            "\"name\": \"F\", \"stages\": []}], \"webhooks\": []}]}");
    put_str("config", "bad-url.json",
            "{\"projects\": [{\"id\": \"p\", \"name\": \"P\", \"webhooks\": [{\"id\": \"w\", "
            "\"name\": \"W\", \"url\": \"ftp://h\", \"enabled\": true, \"events\": [], \"auth\": "
            "{\"type\": \"none\"}}]}]}");
    put_str("config", "bad-won.json",
            "{\"projects\": [{\"id\": \"p\", \"name\": \"P\", \"funnels\": [{\"id\": \"f\", "
            "\"name\": \"F\", \"stages\": [{\"id\": \"s\", \"name\": \"S\"}], \"won_stage_id\": "
            "\"nope\"}]}]}");
    put_str("config", "basic-auth.json",
            "{\"projects\": [{\"id\": \"p\", \"name\": \"P\", \"webhooks\": [{\"id\": \"w\", "
            "\"name\": \"W\", \"url\": \"https://user@h:8443/x?y=1#z\", \"enabled\": true, "
            "\"events\": [\"opportunity.won\", \"opportunity.lost\"], \"auth\": {\"type\": "
            "\"basic\", \"username\": \"u\", \"password\": \"p:w\"}}]}]}");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds CORPUS_DIR EXAMPLES_DIR\n");
        return 2;
    }
    char path[1024];
    corpus = argv[1];
    log_init("gen_seeds", "0", LOG_LVL_ERROR);
    mkdir(corpus, 0755);
    snprintf(path, sizeof path, "%s/events.jsonl", argv[2]);
    gen_events(path);
    gen_frames();
    gen_journal();
    snprintf(path, sizeof path, "%s/config.json", argv[2]);
    gen_config(path);
    return 0;
}
