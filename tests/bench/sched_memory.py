#!/usr/bin/python3
"""sched_memory.py - what a pending retry costs hook-scheduler in memory, and how fast it comes
back after SIGKILL with a million of them (issue 4: <= 128 bytes each, resume within 2 s).

1. Starts a scheduler on an empty data dir and reads its VmRSS once status answers: the base.
2. Writes N pending "r" records straight into a fresh scheduler journal (sched_memory.c, the
   record layout of scheduler/sched_queue.c): DUE_NOW of them due now, the rest a year away.
3. Starts the scheduler on it: ready = exec to the readiness newline (--notify-fd), answer =
   exec until `hookctl status --json` shows pending == N; then VmRSS. (RSS - base) / N is the
   figure: bytes of memory per pending retry.
4. SIGKILLs it and restarts it RUNS times, timing ready and answer again.
5. Starts a sender: the DUE_NOW retries due now must reach the receiver (dispatch resumed).

A benchmark, not a test: `make bench-memory` (N=1000000 by default, about a minute).
env: BIN, BUILD (for $BUILD/bench/sched_memory), BENCH_PENDING (1000000), BENCH_RUNS (3),
     BENCH_DUE_NOW (10), BENCH_BODY_BYTES (256), HOOKLINE_TEST_KEEP=1 keeps the temp dirs.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Pipeline, config, webhook  # noqa: E402
from benchlib import proc_kib, sched_stats  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.abspath(os.environ.get("BUILD") or os.path.join(REPO, "build"))
N = int(os.environ.get("BENCH_PENDING", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DUE_NOW = int(os.environ.get("BENCH_DUE_NOW", "10"))
BODY = int(os.environ.get("BENCH_BODY_BYTES", "256"))
WEBHOOK = "wh_mem"


def start_and_wait(p, want):
    """start_and_wait starts the scheduler; returns (daemon, ready s, answer s)."""
    t0 = time.monotonic()
    d = p.start_daemon("scheduler")  # returns at the readiness newline
    ready = time.monotonic() - t0
    while True:
        st = sched_stats(p)
        if st and st.get("pending") == want:
            break
        if time.monotonic() - t0 > 600:
            p.fail("scheduler never showed %d pending: %r" % (want, st))
        time.sleep(0.005)
    return d, ready, time.monotonic() - t0


def settled_rss(pid):
    """settled_rss reads VmRSS after the process has been idle a moment."""
    time.sleep(0.5)
    return proc_kib(pid, "VmRSS")


def base_rss():
    p = Pipeline(name="bench-memory-empty", cfg=False)
    try:
        d, _, _ = start_and_wait(p, 0)
        return settled_rss(d.proc.pid)
    finally:
        p.cleanup()


def main():
    base = base_rss()
    p = Pipeline(name="bench-memory", retry_jitter=0,
                 cfg=lambda port: config(port, webhooks=[
                     webhook(WEBHOOK, "http://127.0.0.1:%d/mem" % port,
                             ["opportunity.created"])]))
    ok = False
    try:
        p.start_receiver()
        p.import_config(p.cfg(p.port), settle=False)
        t0 = time.monotonic()
        subprocess.run([os.path.join(BUILD, "bench", "sched_memory"), p.data, str(N),
                        str(DUE_NOW), WEBHOOK, str(BODY)], check=True)
        jdir = os.path.join(p.data, "journal")
        jbytes = sum(os.path.getsize(os.path.join(jdir, f)) for f in os.listdir(jdir)
                     if f.endswith(".jnl"))
        sys.stderr.write("wrote %d records (%.0f MiB) in %.1f s\n"
                         % (N, jbytes / 1048576.0, time.monotonic() - t0))
        d, ready, answer = start_and_wait(p, N)
        rss = settled_rss(d.proc.pid)
        hwm = proc_kib(d.proc.pid, "VmHWM")
        rows = [(ready, answer, rss)]
        for _ in range(RUNS):
            p.kill("scheduler", sig=signal.SIGKILL)
            d, ready, answer = start_and_wait(p, N)
            rows.append((ready, answer, settled_rss(d.proc.pid)))
        # Dispatch resumes: a sender connects and gets the retries that are due.
        t0 = time.monotonic()
        p.start_daemon("sender")
        p.wait_received("/mem", count=DUE_NOW, timeout=30)
        resumed = time.monotonic() - t0
        p.wait_for(lambda: (sched_stats(p) or {}).get("pending") == N - DUE_NOW, 30,
                   "the delivered retries never left pending")
        ok = True
    finally:
        if not ok:
            p.dump_logs()
        p.cleanup()
    per = (rss - base) * 1024.0 / N
    print("scheduler memory: %d pending retries, journal %.0f MiB, bin %s"
          % (N, jbytes / 1048576.0, os.path.dirname(p.daemons["scheduler"].argv[0])))
    print("  RSS empty %.1f MiB, with %d pending %.1f MiB (peak %.1f MiB): %.1f bytes per retry"
          " (target <= 128)" % (base / 1024.0, N, rss / 1024.0, hwm / 1024.0, per))
    print("%-10s %10s %10s %10s" % ("start", "ready s", "answer s", "RSS MiB"))
    for i, (ready, answer, r) in enumerate(rows):
        print("%-10s %10.3f %10.3f %10.1f" % ("first" if i == 0 else "kill %d" % i, ready,
                                               answer, r / 1024.0))
    if RUNS:
        med = [statistics.median(col) for col in zip(*rows[1:])]
        print("%-10s %10.3f %10.3f %10.1f  (after SIGKILL; target answer <= 2 s)"
              % ("median", med[0], med[1], med[2] / 1024.0))
    print("  dispatch resumed: %d due retries at the receiver %.3f s after a sender started"
          % (DUE_NOW, resumed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
