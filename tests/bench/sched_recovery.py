#!/usr/bin/python3
"""sched_recovery.py - how fast hook-scheduler comes back with a big backlog.

Fills the scheduler through the real pipeline (hookctl publish -> ingest -> router -> sender ->
scheduler) with N pending retries: four webhooks whose URL refuses connections, a first retry a
day away. Once `hookctl status --json` shows scheduler pending == N it SIGKILLs the scheduler,
restarts it and measures
  ready   time from exec to the readiness newline (--notify-fd): the journal is replayed by then
  answer  time from exec until `hookctl status` answers with pending == N
  rss     VmRSS of the scheduler before the kill and after the restart
RUNS times (kill/restart of the same data dir), then prints each run and the median.

A benchmark, not a test: `make bench-recovery` (N=100000 by default, a few minutes).
env: BIN (daemons, default <repo>/bin), BENCH_INVOCATIONS (100000), BENCH_RUNS (3),
     HOOKLINE_TEST_KEEP=1 keeps the temporary directory.
"""

import json
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Pipeline, config, created, webhook  # noqa: E402
from benchlib import proc_kib, sched_stats  # noqa: E402

N = int(os.environ.get("BENCH_INVOCATIONS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HOOKS = 4
DAY_MS = 86400000


def journal_bytes(p, name):
    d = os.path.join(p.data, "journal")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if f.startswith(name + "-") and f.endswith(".jnl"))


def cfg(port):
    # Port 1 on loopback refuses at once: every first attempt fails fast, no receiver needed.
    hooks = [webhook("wh_b%d" % i, "http://127.0.0.1:1/bench/%d" % i, ["opportunity.created"])
             for i in range(HOOKS)]
    return config(port, webhooks=hooks)


def fill(p):
    events = N // HOOKS
    t0 = time.monotonic()
    for start in range(0, events, 5000):
        p.publish([created("evt_bench%06d" % i) for i in range(start, min(events, start + 5000))])
    sys.stderr.write("published %d events (%d invocations) in %.1f s\n"
                     % (events, events * HOOKS, time.monotonic() - t0))
    shown = t0
    while True:
        st = sched_stats(p) or {}
        pending = st.get("pending", 0)
        if pending >= events * HOOKS:
            break
        if time.monotonic() - shown >= 5:
            sys.stderr.write("%d pending after %.0f s\n" % (pending, time.monotonic() - t0))
            shown = time.monotonic()
        if time.monotonic() - t0 > 1800:
            p.fail("scheduler pending stuck at %d" % pending)
        time.sleep(0.5)
    sys.stderr.write("scheduler holds %d pending retries after %.1f s\n"
                     % (events * HOOKS, time.monotonic() - t0))
    return events * HOOKS


def one_run(p, want):
    before = proc_kib(p.daemons["scheduler"].proc.pid, "VmRSS")
    p.kill("scheduler", sig=signal.SIGKILL)
    t0 = time.monotonic()
    d = p.start_daemon("scheduler")  # returns at the readiness newline
    ready = time.monotonic() - t0
    while True:
        st = sched_stats(p)
        if st and st.get("pending") == want:
            break
        if time.monotonic() - t0 > 600:
            p.fail("restarted scheduler never showed %d pending: %r" % (want, st))
        time.sleep(0.005)
    answer = time.monotonic() - t0
    after = proc_kib(d.proc.pid, "VmRSS")
    return ready, answer, before, after


def main():
    p = Pipeline(name="bench-recovery", retry_base_ms=DAY_MS, retry_factor=2, retry_jitter=0,
                 cfg=cfg, sender_args=["--connect-timeout-ms", "2000"])
    ok = False
    try:
        p.start()
        want = fill(p)
        jbytes = journal_bytes(p, "scheduler")
        rows = [one_run(p, want) for _ in range(RUNS)]
        ok = True
    finally:
        if not ok:
            p.dump_logs()
        p.cleanup()
    print("scheduler recovery: %d pending retries, journal %.1f MiB, bin %s"
          % (want, jbytes / 1048576.0, os.path.dirname(p.daemons["scheduler"].argv[0])))
    print("%-8s %10s %10s %14s %14s" % ("run", "ready s", "answer s", "RSS before MiB",
                                        "RSS after MiB"))
    for i, (ready, answer, before, after) in enumerate(rows, 1):
        print("%-8d %10.3f %10.3f %14.1f %14.1f" % (i, ready, answer, before / 1024.0,
                                                   after / 1024.0))
    med = [statistics.median(col) for col in zip(*rows)]
    print("%-8s %10.3f %10.3f %14.1f %14.1f" % ("median", med[0], med[1], med[2] / 1024.0,
                                               med[3] / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
