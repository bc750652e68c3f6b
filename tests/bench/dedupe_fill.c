/* dedupe_fill.c - fills a dedupe index directly through ingest_dedupe.c (no socket, no journal)
 * with N keys "prj_1" NUL "<prefix><i>", accepted now, as hook-ingest would after N accepted
 * events: for measuring hook-ingest's memory and start time with many remembered ids
 * (tests/bench/dedupe_bench.py). Prints the fill time and this process's own RSS. Usage:
 * dedupe_fill DIR N [PREFIX] */
#include "../../ingest/ingest_dedupe.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fill_rss_kib reads one VmXXX figure of this process. */
static long fill_rss_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dedupe_fill DIR N [PREFIX]\n");
        return 2;
    }
    const char *prefix = argc > 3 ? argv[3] : "evt_";
    long long n = atoll(argv[2]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* no fdatasync while filling: the figure wanted is memory, not the fill's own speed */
    ingest_dedupe_opts_t o = {.dir = argv[1], .window_s = 86400, .do_fsync = 0, .batch_ms = 0};
    ingest_dedupe_t *d;
    char err[512];
    if (ingest_dedupe_open(&d, &loop, &o, err, sizeof err) < 0) {
        fprintf(stderr, "dedupe_fill: %s\n", err);
        return 1;
    }
    int64_t t0 = time_mono_ms();
    long long done = 0;
    while (done < n) {
        for (int i = 0; i < 50000 && done < n; i++, done++) {
            char key[128];
            int a = snprintf(key, sizeof key, "prj_1");
            int b = snprintf(key + a + 1, sizeof key - (size_t)a - 1, "%s%lld", prefix, done);
            ingest_dedupe_entry_t *e = ingest_dedupe_hold(d, key, (size_t)(a + 1 + b));
            if (!e) {
                fprintf(stderr, "dedupe_fill: out of memory\n");
                return 1;
            }
            ingest_dedupe_commit(d, e);
            ingest_dedupe_unref(e);
        }
        while (ingest_dedupe_written(d) < ingest_dedupe_queued(d))
            uv_run(&loop, UV_RUN_ONCE);
    }
    ingest_dedupe_stats_t st;
    ingest_dedupe_get_stats(d, &st);
    printf("{\"keys\": %llu, \"segments\": %llu, \"disk_bytes\": %llu, \"filter_bytes\": %llu, "
           "\"fill_s\": %.1f, \"fill_rss_kib\": %ld}\n",
           (unsigned long long)st.keys, (unsigned long long)st.segments,
           (unsigned long long)st.disk_bytes, (unsigned long long)st.filter_bytes,
           (double)(time_mono_ms() - t0) / 1000.0, fill_rss_kib("VmRSS"));
    ingest_dedupe_close(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
