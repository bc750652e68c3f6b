#!/usr/bin/python3
"""dlog_bench.py - what the delivery log's durability costs: the `make bench` pipeline run
(EVENTS created events x 16 webhooks through nginx, ~1 KiB bodies) with the sender at --fsync
off (synchronous=NORMAL, a commit per loop iteration), batch (FULL, commits grouped for 10 ms)
and always (FULL, a commit per loop iteration); deliveries/s and log commits (each one WAL
fsync under batch and always), DLOG_RUNS runs each, interleaved (a benchmark, not a test).
Environment: BIN, BUILD, BENCH_EVENTS (default 2000), DLOG_RUNS (default 3)."""

import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

RUNS = int(os.environ.get("DLOG_RUNS", "3"))
_stats = bench.BenchPipeline.stats


def _stats_retrying(self):
    """stats, asked again when a saturated stage missed hookctl status's deadline."""
    for _ in range(20):
        try:
            return _stats(self)
        except (IndexError, KeyError, ValueError):
            time.sleep(0.1)
    return _stats(self)


bench.BenchPipeline.stats = _stats_retrying
MODES = tuple(os.environ.get("DLOG_MODES", "off batch always").split())


def main():
    tmp = tempfile.mkdtemp(prefix="hookline-dlog-bench-")
    nginx = bench.Nginx(tmp).start()
    urls = {"wh_%d" % i: "http://127.0.0.1:%d/ok/wh_%d" % (nginx.port, i)
            for i in range(bench.HOOKS)}
    results = {m: [] for m in MODES}
    try:
        for run in range(1, RUNS + 1):
            for mode in MODES:
                p = bench.BenchPipeline(nginx.port, name="dlog-" + mode, fsync="batch",
                                        retry_base_ms=30000, sender_args=["--fsync", mode],
                                        cfg=lambda port: bench.bench_config(port, urls, ""))
                p.start()
                try:
                    pad = bench.size_pad(p, bench.created_event)
                    nginx.take_log()
                    r = bench.run_publish(p, nginx, run, pad, bench.HOOKS, "dlog-" + mode)
                    results[mode].append(r)
                    bench.log("run %d, sender --fsync %-6s: %7.1f deliveries/s, %d log commits"
                              % (run, mode, r["rate"], r["log_batches"]))
                except BaseException:
                    p.dump_logs()
                    raise
                finally:
                    p.stop()
                    p.cleanup()
    finally:
        nginx.stop()
    print("sender --fsync | deliveries/s (median of %d) | log commits | deliveries per commit"
          % RUNS)
    for mode in MODES:
        rates = [r["rate"] for r in results[mode]]
        commits = statistics.median(r["log_batches"] for r in results[mode])
        n = statistics.median(r["deliveries"] for r in results[mode])
        print("%-14s | %8.1f  (%s) | %6d | %5.1f" % (mode, statistics.median(rates),
                                                    ", ".join("%.0f" % x for x in rates),
                                                    commits, n / max(1, commits)))


if __name__ == "__main__":
    main()
