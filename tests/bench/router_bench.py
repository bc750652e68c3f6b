#!/usr/bin/python3
"""router_bench.py - the router's CPU per delivery, two builds back to back: the bench pipeline
(16 webhooks with bearer auth, nginx answering 204, `hookctl publish` of created events) run with
the binaries of BIN_A and of BIN_B in turn, alternating which goes first, for each body size.

The router's CPU is read from /proc/PID/task/*/schedstat (nanoseconds on CPU, every thread), and
from /proc/PID/stat (utime + stime, clock ticks) beside it, over the publish and until the sender
has delivered everything. Prints one line per run and the median per build and size.

usage: BIN_A=/path/to/old/bin BIN_B=$PWD/bin tests/bench/router_bench.py
env:   ROUTER_BENCH_ROUNDS (3), ROUTER_BENCH_SIZES (1024,16384), ROUTER_BENCH_EVENTS (events per
       run for 1 KiB bodies, 4000; scaled down for larger bodies to keep the bytes alike),
       ROUTER_BENCH_PERF=PREFIX (perf record -e cpu-clock -g of B's router to PREFIX-SIZE.data)
"""

import glob
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import harness  # noqa: E402  (bench puts tests/integration on the path)

ROUNDS = int(os.environ.get("ROUTER_BENCH_ROUNDS", "3"))
SIZES = [int(x) for x in os.environ.get("ROUTER_BENCH_SIZES", "1024,16384").split(",")]
EVENTS = int(os.environ.get("ROUTER_BENCH_EVENTS", "4000"))
PERF = os.environ.get("ROUTER_BENCH_PERF")  # a path prefix: perf record B's router there


def cpu_ns(pid):
    """cpu_ns: nanoseconds on CPU of every thread of pid."""
    total = 0
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended between glob and open
    return total


def stages_us(r):
    """stages_us: all stages' CPU per delivery from run_publish's result, in either of bench.py's
    shapes (cpu_per_1000 in seconds, or cpu_us)."""
    if "cpu_us" in r:
        return r["cpu_us"]["stages"]
    return r["cpu_per_1000"]["stages"] * 1000.0


def use_bin(path):
    """use_bin points the harness (daemons) and bench (hookctl publish) at one build."""
    harness.BIN = path
    bench.BIN = path


def one_run(nginx, urls, label, path, size, run):
    use_bin(path)
    bench.BODY = size
    p = bench.start_pipeline("rbench-%s-%d-%d" % (label, size, run), nginx, urls)
    try:
        pad = bench.size_pad(p, bench.created_event)
        blen = bench.body_len(p, bench.created_event, pad)
        n = max(200, EVENTS * 1024 // size)
        bench.EVENTS = 100  # warm-up: connections, SQLite pages, allocator
        bench.run_publish(p, nginx, 0, pad, bench.HOOKS, "warm-%s" % label)
        bench.EVENTS = n
        pid = p.pid("router.0")
        perf = None
        if PERF and label == "B":
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p",
                                     str(pid), "-o", "%s-%d.data" % (PERF, size)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # perf needs a moment to attach; a benchmark option, not a test
        ns0, t0 = cpu_ns(pid), bench.cpu_s(pid)
        r = bench.run_publish(p, nginx, run, pad, bench.HOOKS, "run-%s" % label)
        ns1, t1 = cpu_ns(pid), bench.cpu_s(pid)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        d = r["deliveries"]
        res = {"label": label, "size": blen, "deliveries": d, "rate": r["rate"],
               "router_us": (ns1 - ns0) / 1000.0 / d, "router_tick_us": (t1 - t0) * 1e6 / d,
               "stages_us": stages_us(r)}
        bench.log("%-6s %6d B  %6d deliveries  %7.0f/s  router %6.2f us/delivery (ticks: %6.2f)"
                  "  all stages %6.1f us" % (label, blen, d, r["rate"], res["router_us"],
                                             res["router_tick_us"], res["stages_us"]))
        return res
    finally:
        p.cleanup()


def main():
    a = os.path.abspath(os.environ.get("BIN_A") or "")
    b = os.path.abspath(os.environ.get("BIN_B") or os.path.join(bench.REPO, "bin"))
    if not os.environ.get("BIN_A"):
        sys.exit("router_bench: set BIN_A (the build to compare against) and BIN_B")
    tmp = tempfile.mkdtemp(prefix="hookline-rbench-")
    nginx = bench.Nginx(tmp).start()
    urls = {"wh_%d" % i: "http://127.0.0.1:%d/ok/wh_%d" % (nginx.port, i)
            for i in range(bench.HOOKS)}
    out = []
    try:
        for size in SIZES:
            for run in range(1, ROUNDS + 1):
                order = [("A", a), ("B", b)] if run % 2 else [("B", b), ("A", a)]
                for label, path in order:
                    out.append(one_run(nginx, urls, label, path, size, run))
    finally:
        nginx.stop()
    print("router CPU per delivery (us, median of %d; schedstat, then utime+stime):" % ROUNDS)
    for size in SIZES:
        row = {}
        for label in ("A", "B"):
            rs = [r for r in out if r["label"] == label and abs(r["size"] - size) < size // 4 + 64]
            row[label] = rs
            print("  %-2s %6d B: %7.2f  (%s)  ticks %7.2f  rate %6.0f/s  all stages %6.1f" % (
                label, rs[0]["size"], statistics.median(r["router_us"] for r in rs),
                ", ".join("%.2f" % r["router_us"] for r in rs),
                statistics.median(r["router_tick_us"] for r in rs),
                statistics.median(r["rate"] for r in rs),
                statistics.median(r["stages_us"] for r in rs)))
        ma = statistics.median(r["router_us"] for r in row["A"])
        mb = statistics.median(r["router_us"] for r in row["B"])
        print("  B/A at %d B: %.2f" % (size, mb / ma if ma else float("nan")))


if __name__ == "__main__":
    main()
