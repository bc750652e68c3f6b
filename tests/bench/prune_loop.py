#!/usr/bin/python3
"""prune_loop.py - is the scheduler's loop ever blocked while it prunes a large delivery log?
A data dir whose log holds ROWS finished records (20 webhooks, 1 KiB bodies) updated 40 days
ago; hook-scheduler starts (its first pass after 1 s prunes them all by age) and `hookctl status
--json` (answered by the scheduler's loop over its socket) is timed back to back until the
scheduler reports every row pruned, then for as long again idle. Prints the round trips' median
and maximum in both phases. Environment: BIN, ROWS (default 200000). A benchmark, not a test."""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(REPO, "bin"))
ROWS = int(os.environ.get("ROWS", "200000"))


def status(data):
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(BIN, "hookctl"), "--data-dir", data, "status", "--json"],
                       capture_output=True, text=True)
    dt = (time.monotonic() - t0) * 1000
    st = json.loads(p.stdout)["stages"].get("scheduler") or [{}]
    return dt, st[0].get("stats", {}).get("pruned", 0)


def main():
    tmp = tempfile.mkdtemp(prefix="hookline-prune-loop-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"projects": []}, f)
    subprocess.run([os.path.join(BIN, "hookctl"), "--data-dir", data, "import", cfg], check=True,
                   capture_output=True)
    db = sqlite3.connect(os.path.join(data, "hookline.db"))
    old = int((time.time() - 40 * 86400) * 1000)
    body = "x" * 1023
    db.executemany(
        "INSERT INTO deliveries(invocation_id, webhook_id, event_id, event_type, status,"
        " attempts, created_at, updated_at, req_method, req_url, req_headers, req_body,"
        " resp_status, resp_body) VALUES(?, ?, 'evt', 'opportunity.created', 2, 1, ?, ?, 'POST',"
        " 'https://x.example/', '{}', ?, 200, 'ok')",
        (("inv_%032x" % (i * 2654435761), "wh_%d" % (i % 20), old + i, old + i, body)
         for i in range(ROWS)))
    db.commit()
    db.close()
    log = open(os.path.join(tmp, "scheduler.log"), "wb")
    sched = subprocess.Popen([os.path.join(BIN, "hook-scheduler"), "--data-dir", data],
                             stdout=log, stderr=log)
    try:
        busy, idle = [], []
        t_start = time.monotonic()
        while True:
            dt, pruned = status(data)
            if time.monotonic() - t_start > 1.0 and pruned < ROWS:
                busy.append(dt)
            if pruned >= ROWS:
                break
            if time.monotonic() - t_start > 300:
                sys.exit("pruning did not finish in 300 s (pruned %d)" % pruned)
        t_busy = time.monotonic() - t_start
        t_end = time.monotonic() + max(2.0, t_busy - 1.0)
        while time.monotonic() < t_end:
            idle.append(status(data)[0])
        print("pruned %d rows in %.1f s (from start); hookctl status round trip while pruning: "
              "median %.1f ms, max %.1f ms (%d samples); idle: median %.1f ms, max %.1f ms (%d)"
              % (ROWS, t_busy, statistics.median(busy), max(busy), len(busy),
                 statistics.median(idle), max(idle), len(idle)))
    finally:
        sched.terminate()
        sched.wait()
        log.close()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
