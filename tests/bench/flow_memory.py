#!/usr/bin/python3
"""flow_memory.py - what a backlog costs each stage in memory (issue 8, flow control): with the
routers or the senders SIGSTOPped, events are published until all are accepted; then SIGCONT,
and everything must arrive. Bounds: ingest <= 64 MiB with 300,000 small events and with 30,000
events of 64 KiB waiting for a stopped router; the router <= 96 MiB with 2,000 events x 16
webhooks of 16 KiB bodies waiting for stopped senders; memory given back after the drain.

Scenarios (each on a fresh data dir):
  ingest-small  routers stopped, INGEST_SMALL events of about 200 bytes, no webhook matches
  ingest-64k    routers stopped, INGEST_BIG events with a 64 KiB field, no webhook matches
  router-16k    senders stopped, ROUTER_EVENTS events x ROUTER_WEBHOOKS webhooks, 16 KiB bodies;
                after SIGCONT every request must reach the receiver, each invocation once or
                more (at-least-once), none missing

For each it prints, per stage: VmHWM while stopped (the peak the backlog caused), VmHWM at the
end, VmRSS after the drain; and the events accepted, the publish time, the drain time.

A benchmark, not a test (tests/integration/test_flow.py runs the same scenarios smaller and
asserts the bounds): `make bench-flow`.
env: BIN, INGEST_SMALL (300000), INGEST_BIG (30000), ROUTER_EVENTS (2000), ROUTER_WEBHOOKS (16),
     FLOW_SCENARIOS (all, comma separated), HOOKLINE_TEST_KEEP=1 keeps the temp dirs.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import BIN, Pipeline, config, created, webhook  # noqa: E402

MIB = 1024.0
INGEST_BOUND_MIB = 64
ROUTER_BOUND_MIB = 96


def proc_kib(pid, field):
    """proc_kib returns a kB field of /proc/PID/status (VmRSS, VmHWM), 0 when absent."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stats(p, stage, instance=0):
    """stats returns one stage instance's figures from `hookctl status --json`, or {}."""
    rc, out, _ = p.hookctl("status", "--json")
    if not out.strip():
        return {}
    st = json.loads(out)["stages"].get(stage) or []
    return st[instance]["stats"] if len(st) > instance else {}


def pids(p):
    """pids maps each running stage key ("ingest", "router.0", ...) to its pid."""
    return {k: d.proc.pid for k, d in p.daemons.items() if d.running()}


def memory(p, field):
    """memory returns {stage key: field in KiB} for every running stage."""
    return {k: proc_kib(pid, field) for k, pid in pids(p).items()}


def publish_stream(p, lines, total):
    """publish_stream pipes `total` JSON lines from the iterator `lines` into `hookctl publish -`
    (written by a thread, so a paused ingest slows the writer and not the test) and returns
    (exit status, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([os.path.join(BIN, "hookctl"), "--data-dir", p.data, "publish", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=p.env)
    err = []

    def writer():
        try:
            buf = []
            size = 0
            for line in lines:
                buf.append(line)
                size += len(line)
                if size >= 1 << 20:
                    proc.stdin.write(b"".join(buf))
                    buf, size = [], 0
            proc.stdin.write(b"".join(buf))
            proc.stdin.close()
        except BrokenPipeError as e:
            err.append(e)

    got = {}

    def reader(name, f):
        got[name] = f.read()
        f.close()

    threads = [threading.Thread(target=writer, daemon=True),
               threading.Thread(target=reader, args=("out", proc.stdout), daemon=True),
               threading.Thread(target=reader, args=("err", proc.stderr), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc.wait()
    return proc.returncode, got["out"].decode(), got["err"].decode(), time.monotonic() - t0


def event_lines(n, prefix, field_bytes, project="prj_1"):
    """event_lines yields n opportunity.created events as JSON lines, each with a title of
    field_bytes characters."""
    title = "t" * field_bytes
    for i in range(n):
        e = created("%s-%d" % (prefix, i), opp_id="opp_%d" % i, project_id=project, title=title)
        yield (json.dumps(e) + "\n").encode()


def stop(p, keys, sig):
    for k in keys:
        p.daemons[k].proc.send_signal(sig)


def count_lines(path, state):
    """count_lines counts complete lines of a growing file, reading only what is new."""
    try:
        with open(path, "rb") as f:
            f.seek(state.get("off", 0))
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                state["n"] = state.get("n", 0) + chunk.count(b"\n")
                state["off"] = state.get("off", 0) + len(chunk)
    except FileNotFoundError:
        pass
    return state.get("n", 0)


def invocation_ids(path):
    """invocation_ids returns the webhook-id header of every request the receiver logged."""
    ids = []
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                ids.append(json.loads(line)["h"]["webhook-id"])
    return ids


def ingest_scenario(p, n, field_bytes, timeout=600):
    """ingest_scenario: routers stopped, n events (unrouted project: nothing to deliver) are
    published; then the routers continue and ingest must hand every one over. Returns figures."""
    routers = [k for k in p.daemons if k.startswith("router.")]
    stop(p, routers, signal.SIGSTOP)
    try:
        rc, out, err, secs = publish_stream(p, event_lines(n, "ev", field_bytes, "prj_none"), n)
        if rc != 0:
            p.fail("hookctl publish exited %d: %s %s" % (rc, out, err[-2000:]))
        st = stats(p, "ingest")
        if st.get("events") != n:
            p.fail("ingest accepted %r events, want %d" % (st.get("events"), n))
        stopped_hwm = memory(p, "VmHWM")
        stopped_rss = memory(p, "VmRSS")
    finally:
        stop(p, routers, signal.SIGCONT)
    t0 = time.monotonic()
    p.wait_for(lambda: (lambda s: s.get("routed") == n and s.get("queued") == 0 and
                        s.get("in_flight") == 0)(stats(p, "ingest")), timeout,
               lambda: "ingest never handed every event over: %r" % stats(p, "ingest"),
               interval=0.2)
    drain = time.monotonic() - t0
    time.sleep(0.5)  # let the allocator settle before reading the after-drain RSS
    return {"events": n, "publish_s": secs, "drain_s": drain, "stopped_hwm": stopped_hwm,
            "stopped_rss": stopped_rss, "end_hwm": memory(p, "VmHWM"),
            "drained_rss": memory(p, "VmRSS")}


def router_config(port, nwebhooks):
    """router_config: nwebhooks webhooks on opportunity.created, all to the receiver."""
    return config(port, webhooks=[
        webhook("wh_%d" % i, "http://127.0.0.1:%d/ok/wh_%d" % (port, i), ["opportunity.created"])
        for i in range(nwebhooks)])


def router_scenario(p, n, nwebhooks, field_bytes, timeout=600):
    """router_scenario: senders stopped, n events matching nwebhooks webhooks each are
    published; once the router holds all it will take, its memory is read; then the senders
    continue and every invocation must reach the receiver. Returns figures."""
    senders = [k for k in p.daemons if k.startswith("sender.")]
    want = n * nwebhooks
    stop(p, senders, signal.SIGSTOP)
    try:
        rc, out, err, secs = publish_stream(p, event_lines(n, "rv", field_bytes), n)
        if rc != 0:
            p.fail("hookctl publish exited %d: %s %s" % (rc, out, err[-2000:]))

        # The router takes what ingest's windows allow and builds what the senders' windows
        # allow; wait until that stops changing (nothing more can move while senders sleep).
        last = [None, time.monotonic()]

        def settled():
            s = stats(p, "router")
            key = (s.get("events"), s.get("jobs"), s.get("waiting"))
            if key != last[0]:
                last[0], last[1] = key, time.monotonic()
            return s if s.get("events") and time.monotonic() - last[1] > 1.0 else None

        held = p.wait_for(settled, 60, "the router never settled", interval=0.1)
        stopped_hwm = memory(p, "VmHWM")
        stopped_rss = memory(p, "VmRSS")
    finally:
        stop(p, senders, signal.SIGCONT)
    t0 = time.monotonic()
    state = {}
    p.wait_for(lambda: count_lines(p.receiver_log, state) >= want, timeout,
               lambda: "receiver has %d of %d requests" % (count_lines(p.receiver_log, state),
                                                           want), interval=0.2)
    p.wait_for(lambda: stats(p, "ingest").get("routed") == n, 60,
               lambda: "ingest: %r" % stats(p, "ingest"))
    drain = time.monotonic() - t0
    ids = set(invocation_ids(p.receiver_log))
    if len(ids) != want:
        p.fail("receiver got %d distinct invocations, want %d" % (len(ids), want))
    time.sleep(0.5)
    return {"events": n, "invocations": want, "distinct": len(ids), "held": held,
            "publish_s": secs, "drain_s": drain, "stopped_hwm": stopped_hwm,
            "stopped_rss": stopped_rss, "end_hwm": memory(p, "VmHWM"),
            "drained_rss": memory(p, "VmRSS")}


def report(name, fig, focus, bound):
    """report prints one scenario's figures."""
    print("%s: %d events accepted in %.1f s (%.0f/s), drained in %.1f s%s"
          % (name, fig["events"], fig["publish_s"], fig["events"] / fig["publish_s"],
             fig["drain_s"], ", %d invocations delivered (%d distinct)"
             % (fig["invocations"], fig["distinct"]) if "invocations" in fig else ""))
    print("  %-12s %14s %14s %14s" % ("stage", "peak stopped", "peak end", "after drain"))
    for k in sorted(fig["end_hwm"]):
        print("  %-12s %10.1f MiB %10.1f MiB %10.1f MiB%s"
              % (k, fig["stopped_hwm"].get(k, 0) / MIB, fig["end_hwm"][k] / MIB,
                 fig["drained_rss"].get(k, 0) / MIB,
                 "   (bound %d MiB)" % bound if k == focus else ""))
    ok = fig["end_hwm"][focus] / MIB <= bound
    print("  %s peak %.1f MiB: %s" % (focus, fig["end_hwm"][focus] / MIB,
                                       "within the bound" if ok else "OVER THE BOUND"))
    return ok


def main():
    want = (os.environ.get("FLOW_SCENARIOS") or "ingest-small,ingest-64k,router-16k").split(",")
    ok = True
    if "ingest-small" in want:
        n = int(os.environ.get("INGEST_SMALL", "300000"))
        p = Pipeline(name="bench-flow-small")
        try:
            p.start()
            ok &= report("ingest-small", ingest_scenario(p, n, 16), "ingest", INGEST_BOUND_MIB)
            p.stop()
        finally:
            p.cleanup()
    if "ingest-64k" in want:
        n = int(os.environ.get("INGEST_BIG", "30000"))
        p = Pipeline(name="bench-flow-64k")
        try:
            p.start()
            ok &= report("ingest-64k", ingest_scenario(p, n, 64 * 1024), "ingest",
                         INGEST_BOUND_MIB)
            p.stop()
        finally:
            p.cleanup()
    if "router-16k" in want:
        n = int(os.environ.get("ROUTER_EVENTS", "2000"))
        w = int(os.environ.get("ROUTER_WEBHOOKS", "16"))
        p = Pipeline(name="bench-flow-router", cfg=lambda port: router_config(port, w))
        try:
            p.start()
            ok &= report("router-16k", router_scenario(p, n, w, 16 * 1024), "router.0",
                         ROUTER_BOUND_MIB)
            p.stop()
        finally:
            p.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
