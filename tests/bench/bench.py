#!/usr/bin/python3
"""bench.py - `make bench`: throughput, latency, CPU and memory of the whole pipeline against a
real nginx receiver on loopback, next to two ceilings measured in the same run.

Receiver: nginx (a generated nginx.conf in a temp dir, `daemon off`, `master_process off`, a
spare port) answering 204 to POST /ok/..., 500 to POST /fail/...; its access log records $msec,
$http_webhook_id, $connection and $connection_requests per request.

Each run (BENCH_RUNS, default 3; the table shows the median and each run):
  wrk        wrk -c C against /ok/wrk, a 1 KiB POST body and the pipeline's header set
  bare       tests/bench/bare_sender.c: the sender's own HTTP engine (sender/http.c) and header
             builder (domain/auth.c), no framing/journal/log, same endpoints and caps
  pipeline   N created events through `hookctl publish` (16 webhooks, ~1 KiB bodies, --fsync
             batch): deliveries/s from the publish start to the last request at nginx; CPU
             seconds per 1,000 deliveries per stage (/proc/PID/stat), peak RSS (VmHWM),
             connection reuse (sender stats and nginx $connection_requests)
  latency    a paced producer on run/ingest.sock at 1,000 and 5,000 deliveries/s (transitioned
             events, matched by one webhook: events/s = deliveries/s) and unpaced with the 16
             webhooks (saturation): time from the {"ok":true} reply to nginx's $msec, p50/p99/p99.9
  isolation  a fresh pipeline with 16 endpoints, one hanging (accepts, never answers) and one
             answering 500: deliveries/s to the 14 healthy ones vs the all-healthy run
  dedupe     hook-ingest alone, events/s with --dedupe-window on and off and their ratio
             (tests/bench/dedupe_bench.py throughput; `make bench-dedupe` adds the memory part)
Writes the figures to $BUILD/bench/results.json (BENCH_OUT). Environment: BIN, BUILD,
BENCH_RUNS, BENCH_EVENTS (pipeline events per run, 16 deliveries each), BENCH_BARE_REQUESTS,
BENCH_WRK_SECONDS, BENCH_PERF=1 (perf stat instructions per delivery for each stage).
"""

import hashlib
import json
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from harness import Pipeline, webhook, TEST_SECRET  # noqa: E402

BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(REPO, "bin"))
BUILD = os.path.abspath(os.environ.get("BUILD") or os.path.join(REPO, "build"))
OUT = os.environ.get("BENCH_OUT") or os.path.join(BUILD, "bench", "results.json")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "2000"))
BARE_REQUESTS = int(os.environ.get("BENCH_BARE_REQUESTS", "40000"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "4"))
PERF = os.environ.get("BENCH_PERF") not in (None, "", "0")
HOOKS = 16
PER_ENDPOINT = 16            # the sender's --max-per-endpoint default
CONNS = HOOKS * PER_ENDPOINT  # the most connections the sender opens to nginx: wrk uses as many
BODY = 1024
RATES = (1000, 5000)
RATE_SECONDS = {1000: 4.0, 5000: 3.0}
TOKEN = "tok_bench_0123456789"
STAGES = ("ingest", "router.0", "sender.0", "scheduler")
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_s(pid):
    """cpu_s: utime + stime of a process in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def vm_kib(pid, key="VmHWM"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pct(values, p):
    """pct: the p-quantile (0..1) by the nearest-rank method; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 1)) - 1))
    return v[k]


def inv_id(event_id, webhook_id):
    """inv_id: the contract's invocation id (webhook-id header)."""
    return "inv_" + hashlib.sha256(event_id.encode() + b"\0" + webhook_id.encode()).digest()[
        :16].hex()


# --- receivers ---------------------------------------------------------------------------------

class Nginx:
    """Nginx runs nginx as a child on a spare loopback port with its own conf, pid and logs."""

    FORMAT = "$msec $http_webhook_id $connection $connection_requests $status $request_length $uri"

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"))
        self.port = free_port()
        self.access = os.path.join(self.dir, "logs", "access.log")
        self.proc = None
        self.phase = 0

    def start(self):
        d = self.dir
        conf = """worker_processes 1;
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
    log_format bench '%(fmt)s';
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    # The 1 KiB bodies fit the buffer: nginx reads and drops each body before answering, so
    # every connection stays usable for the next request.
    client_body_buffer_size 64k;
    client_max_body_size 1m;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        location /ok/ { access_log %(access)s bench buffer=256k; return 204; }
        location /fail/ { access_log %(access)s bench buffer=256k; return 500; }
    }
}
""" % {"d": d, "fmt": self.FORMAT, "port": self.port, "access": self.access}
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        err = open(os.path.join(d, "logs", "stderr.log"), "ab")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", path, "-e", os.path.join(
            d, "logs", "error.log")], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited with %s: %s" % (self.proc.returncode, open(
                    os.path.join(d, "logs", "error.log")).read()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError("nginx did not listen on %d" % self.port)
                time.sleep(0.02)

    def take_log(self):
        """take_log ends the current phase: renames the access log, has nginx flush and reopen
        it (SIGUSR1), waits for the new file, and returns the phase's records."""
        self.phase += 1
        old = os.path.join(self.dir, "logs", "phase-%d.log" % self.phase)
        if not os.path.exists(self.access):
            open(self.access, "a").close()
        os.rename(self.access, old)
        os.kill(self.proc.pid, signal.SIGUSR1)
        end = time.monotonic() + 10
        while not os.path.exists(self.access):  # nginx flushes the buffer, then reopens
            if time.monotonic() > end:
                raise RuntimeError("nginx did not reopen its access log")
            time.sleep(0.005)
        recs = []
        with open(old) as f:
            for line in f:
                p = line.split()
                if len(p) != 7:
                    continue
                recs.append({"t": float(p[0]), "id": p[1], "conn": int(p[2]), "creq": int(p[3]),
                             "status": int(p[4]), "len": int(p[5]), "uri": p[6]})
        os.unlink(old)
        return recs

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HangServer:
    """HangServer accepts connections and never answers (a dead endpoint that holds the
    sender's connections until its timeout)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


# --- the pipeline ------------------------------------------------------------------------------

class BenchPipeline(Pipeline):
    """BenchPipeline is the test harness's Pipeline with nginx as the receiver."""

    def __init__(self, receiver_port, **kw):
        super().__init__(**kw)
        self._receiver_port = receiver_port

    def start_receiver(self):
        self.port = self._receiver_port

    def stop_receiver(self):
        pass

    def pid(self, key):
        return self.daemons[key].proc.pid

    def stats(self):
        rc, out, err = self.hookctl("status", "--json")
        st = json.loads(out)["stages"]
        return {"ingest": st["ingest"][0]["stats"], "router.0": st["router"][0]["stats"],
                "sender.0": st["sender"][0]["stats"], "scheduler": st["scheduler"][0]["stats"]}

    def wait_sender(self, field, target, timeout=120):
        """wait_sender polls the sender's status until stats[field] >= target."""
        end = time.monotonic() + timeout
        while True:
            v = self.stats()["sender.0"][field]
            if v >= target:
                return v
            if time.monotonic() > end:
                self.fail("sender %s stayed at %d, wanted %d" % (field, v, target))
            time.sleep(0.1)


def bench_config(port, urls, fields_pad):
    """bench_config: one project, webhooks named by urls ({id: url}); the first also takes
    transitioned events (the latency runs), every one takes created events."""
    hooks = []
    for i, (wid, url) in enumerate(urls.items()):
        events = ["opportunity.created"] + (["opportunity.transitioned"] if i == 0 else [])
        hooks.append(webhook(wid, url, events, name="Bench hook %d" % i,
                             auth={"type": "bearer", "token": TOKEN}, secret=TEST_SECRET))
    return {"projects": [{
        "id": "prj_b", "name": "Bench",
        "opportunity_fields": ["title", "description", "value", "owner", "region", "source"],
        "contact_fields": ["name", "email", "phone"],
        "funnels": [{"id": "fun_b", "name": "Sales", "stages": [
            {"id": "stg_a", "name": "Qualified"}, {"id": "stg_b", "name": "Proposal"},
            {"id": "stg_w", "name": "Won"}, {"id": "stg_l", "name": "Lost"}],
            "won_stage_id": "stg_w", "lost_stage_id": "stg_l"}],
        "webhooks": hooks}]}


def created_event(eid, pad):
    return {"type": "opportunity.created", "id": eid, "project_id": "prj_b",
            "occurred_at": "2026-01-02T03:04:05Z",
            "opportunity": {"id": "opp_" + eid, "title": "Enterprise plan renewal",
                            "description": pad, "value": 125000.5, "owner": "usr_42",
                            "region": "EMEA", "source": "inbound"},
            "contact": {"id": "ct_" + eid, "name": "Ada Lovelace",
                        "email": "ada@example.com", "phone": "+44 20 7946 0000"}}


def transitioned_event(eid, pad):
    e = created_event(eid, pad)
    e["type"] = "opportunity.transitioned"
    e["opportunity"]["funnel_id"] = "fun_b"
    e["from_stage_id"] = "stg_a"
    e["to_stage_id"] = "stg_b"
    return e


def size_pad(p, make):
    """size_pad finds the description length that makes the rendered body ~BODY bytes."""
    rc, out, err = p.hookctl("render", "-", input=json.dumps(make("size-probe", "")) + "\n")
    lens = [len(json.loads(l)["body"].encode()) for l in out.splitlines() if l.strip()]
    if not lens:
        p.fail("hookctl render gave nothing: %s" % err)
    return "d" * max(0, BODY - max(lens))


def body_len(p, make, pad):
    rc, out, err = p.hookctl("render", "-", input=json.dumps(make("size-probe", pad)) + "\n")
    return max(len(json.loads(l)["body"].encode()) for l in out.splitlines() if l.strip())


def proc_snapshot(p, extra=None):
    snap = {k: cpu_s(p.pid(k)) for k in STAGES}
    for k, pid in (extra or {}).items():
        snap[k] = cpu_s(pid)
    return snap


def perf_start(p):
    """perf_start attaches `perf stat -e instructions` to every stage (BENCH_PERF=1)."""
    if not PERF:
        return {}
    procs = {}
    for k in STAGES:
        out = os.path.join(p.tmp, "perf-%s.txt" % k)
        procs[k] = (subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions:u", "-o", out,
                                      "-p", str(p.pid(k))], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL), out)
    time.sleep(0.3)  # perf needs a moment to attach; a benchmark option, not a test
    return procs


def perf_stop(procs):
    res = {}
    for k, (proc, out) in procs.items():
        proc.send_signal(signal.SIGINT)
        proc.wait()
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2].startswith("instructions") and parts[0].isdigit():
                    res[k] = int(parts[0])
    return res


def run_publish(p, nginx, run, pad, hooks_ok, label):
    """run_publish: EVENTS created events through `hookctl publish`; deliveries/s from the
    publish start to the last request at nginx (only /ok/ requests count), CPU per stage."""
    path = os.path.join(p.tmp, "%s-%d.jsonl" % (label, run))
    with open(path, "w") as f:
        for i in range(EVENTS):
            f.write(json.dumps(created_event("%s-%d-%d" % (label, run, i), pad)) + "\n")
    before = p.stats()
    want_ok = before["sender.0"]["succeeded"] + EVENTS * hooks_ok
    perf = perf_start(p)
    c0 = proc_snapshot(p, {"nginx": nginx.proc.pid})
    t0 = time.time()
    pub = subprocess.Popen([os.path.join(BIN, "hookctl"), "--data-dir", p.data, "publish", path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=p.env)
    _, perr = pub.communicate()
    if pub.returncode != 0:
        p.fail("hookctl publish exited %d: %s" % (pub.returncode, perr.decode()[-500:]))
    p.wait_sender("succeeded", want_ok)
    c1 = proc_snapshot(p, {"nginx": nginx.proc.pid})
    instr = perf_stop(perf)
    after = p.stats()
    recs = [r for r in nginx.take_log() if r["uri"].startswith("/ok/") and r["status"] == 204]
    n = len(recs)
    last = max(r["t"] for r in recs)
    secs = last - t0
    conns = len(set(r["conn"] for r in recs))
    res = {
        "deliveries": n,
        "seconds": round(secs, 3),
        "rate": round(n / secs, 1),
        "cpu_per_1000": {k: round((c1[k] - c0[k]) * 1000.0 / n, 4) for k in c0},
        "rss_peak_kib": {k: vm_kib(p.pid(k)) for k in STAGES},
        "sender_connections": after["sender.0"]["connections"] - before["sender.0"]["connections"],
        "sender_reused": after["sender.0"]["reused"] - before["sender.0"]["reused"],
        "nginx_connections": conns,
        "nginx_reuse": round(1 - conns / n, 4) if n else None,
        "log_batches": after["sender.0"]["log_batches"] - before["sender.0"]["log_batches"],
    }
    res["cpu_per_1000"]["stages"] = round(sum(res["cpu_per_1000"][k] for k in STAGES), 4)
    att = res["sender_connections"] + res["sender_reused"]
    res["sender_reuse"] = round(res["sender_reused"] / att, 4) if att else None
    if instr:
        res["instructions_per_delivery"] = {k: round(v / n) for k, v in instr.items()}
    return res


def produce(p, events, rate, hook_ids):
    """produce writes events (dicts) to run/ingest.sock paced at rate events/s (None: as fast as
    the socket takes them), records the arrival time of each reply, and returns
    {event id: acceptance time} plus the ids of the webhooks each event reaches."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.path.join(p.data, "run", "ingest.sock"))
    sock.setblocking(False)
    lines = [(json.dumps(e) + "\n").encode() for e in events]
    ids = [e["id"] for e in events]
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    accepted, buf, times = {}, b"", []
    replies = 0
    sent = 0
    out = b""
    t0 = time.monotonic()
    wall0 = time.time()
    while replies < len(lines):
        now = time.monotonic()
        if rate:
            due = min(len(lines), int((now - t0) * rate) + 1)
        else:
            due = len(lines) if len(out) < (1 << 20) else sent
        if due > sent:
            out += b"".join(lines[sent:due])
            sent = due
        if out:
            try:
                k = sock.send(out)
                out = out[k:]
            except BlockingIOError:
                pass
        if rate and sent < len(lines):
            timeout = max(0.0, t0 + sent / rate - time.monotonic())
        else:
            timeout = 0.05 if not out else 0.0
        for _key, _ev in sel.select(timeout):
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("ingest closed the producer connection")
            t = wall0 + (time.monotonic() - t0)  # one clock: wall time at start + monotonic
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                times.append(t)
                replies += 1
                if b'"ok":true' not in line:
                    raise RuntimeError("rejected: %s" % line[:200])
    sock.close()
    for i, t in enumerate(times):
        accepted[ids[i]] = t
    return accepted


def run_latency(p, nginx, run, rate, pad, hook_ids, make, seconds):
    """run_latency: latency from acceptance to nginx's $msec, at rate events/s (None: unpaced),
    each event reaching every webhook of hook_ids."""
    label = "lat%s" % (rate or "sat")
    n = int(rate * seconds) if rate else EVENTS
    events = [make("%s-%d-%d" % (label, run, i), pad) for i in range(n)]
    before = p.stats()["sender.0"]["succeeded"]
    accepted = produce(p, events, rate, hook_ids)
    p.wait_sender("succeeded", before + n * len(hook_ids))
    inv = {}
    for e in events:
        for w in hook_ids:
            inv[inv_id(e["id"], w)] = e["id"]
    lat = []
    recs = nginx.take_log()
    last = 0.0
    for r in recs:
        eid = inv.get(r["id"])
        if eid is not None:
            lat.append((r["t"] - accepted[eid]) * 1000.0)
            last = max(last, r["t"])
    if len(lat) < n * len(hook_ids):
        p.fail("latency run %s: %d of %d requests found at nginx" % (label, len(lat),
                                                                      n * len(hook_ids)))
    first = min(accepted.values())
    return {"offered": rate, "deliveries": len(lat),
            "achieved": round(len(lat) / (last - first), 1) if last > first else None,
            "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "p999_ms": round(pct(lat, 0.999), 1), "max_ms": round(max(lat), 1)}


def run_wrk(nginx, tmp):
    """run_wrk: wrk with CONNS connections, 1 KiB POST bodies and the pipeline's headers."""
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = string.rep("x", %d)\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["User-Agent"] = "hookline/0.1.0"\n'
                'wrk.headers["webhook-id"] = "inv_00112233445566778899aabbccddeeff"\n'
                'wrk.headers["webhook-timestamp"] = "1767225600"\n'
                'wrk.headers["webhook-signature"] = '
                '"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="\n'
                'wrk.headers["X-Webhook-Event"] = "opportunity.created"\n'
                'wrk.headers["X-Webhook-Attempt"] = "1"\n'
                'wrk.headers["Authorization"] = "Bearer %s"\n' % (BODY, TOKEN))
    c0 = cpu_s(nginx.proc.pid)
    p = subprocess.Popen(["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % WRK_SECONDS, "-s", script,
                          "http://127.0.0.1:%d/ok/wrk" % nginx.port], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate()
    c1 = cpu_s(nginx.proc.pid)
    rate = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rate = float(line.split()[1])
    recs = nginx.take_log()
    if rate is None:
        raise RuntimeError("wrk: no Requests/sec in:\n" + out)
    return {"rate": rate, "connections": CONNS, "requests": len(recs),
            "nginx_cpu_per_1000": round((c1 - c0) * 1000.0 / max(1, len(recs)), 4)}


def run_bare(nginx):
    """run_bare: the bare sender, same endpoints, caps and body size."""
    exe = os.path.join(BUILD, "bench", "bare_sender")
    c0 = cpu_s(nginx.proc.pid)
    p = subprocess.run([exe, "--url-prefix", "http://127.0.0.1:%d/ok/bare_" % nginx.port,
                        "--endpoints", str(HOOKS), "--requests", str(BARE_REQUESTS),
                        "--body-bytes", str(BODY), "--max-per-endpoint", str(PER_ENDPOINT),
                        "--secret", TEST_SECRET], capture_output=True, text=True)
    c1 = cpu_s(nginx.proc.pid)
    if p.returncode != 0:
        raise RuntimeError("bare_sender exited %d: %s" % (p.returncode, p.stderr[-1000:]))
    r = json.loads(p.stdout)
    recs = nginx.take_log()
    conns = len(set(x["conn"] for x in recs))
    r["cpu_per_1000"] = round(r["cpu_s"] * 1000.0 / r["requests"], 4)
    r["nginx_cpu_per_1000"] = round((c1 - c0) * 1000.0 / max(1, len(recs)), 4)
    r["nginx_reuse"] = round(1 - conns / len(recs), 4) if recs else None
    return r


def start_pipeline(tmp_name, nginx, urls):
    p = BenchPipeline(nginx.port, name=tmp_name, fsync="batch", retry_base_ms=30000,
                      retry_factor=4, retry_jitter=0.1, max_attempts=6,
                      cfg=lambda port: bench_config(port, urls, ""))
    p.start()
    return p


def run_isolation(nginx, hang, run, pad):
    """run_isolation: 14 healthy endpoints, one answering 500, one hanging."""
    urls = {}
    for i in range(HOOKS - 2):
        urls["wh_%d" % i] = "http://127.0.0.1:%d/ok/iso_%d" % (nginx.port, i)
    urls["wh_fail"] = "http://127.0.0.1:%d/fail/iso" % nginx.port
    urls["wh_hang"] = "http://127.0.0.1:%d/hang" % hang.port
    p = start_pipeline("bench-iso", nginx, urls)
    try:
        nginx.take_log()
        r = run_publish(p, nginx, run, pad, HOOKS - 2, "iso")
        st = p.stats()["sender.0"]
        r["failed_attempts"] = st["failed_attempts"]
        r["http_in_flight_at_end"] = st["http_in_flight"]
        r["http_queued_at_end"] = st["http_queued"]
        return r
    finally:
        p.cleanup()
        nginx.take_log()


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True,
                                    text=True).stderr.strip(),
            "libcurl": subprocess.run(["curl-config", "--version"], capture_output=True,
                                      text=True).stdout.strip() if os.path.exists(
                "/usr/bin/curl-config") else "?"}


def median_of(runs, path):
    vals = []
    for r in runs:
        v = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None


def table(runs, med):
    rows = []

    def row(label, path, fmt="%.0f", target=""):
        vals = []
        for r in runs:
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            vals.append("-" if v is None else fmt % v)
        m = median_of(runs, path)
        rows.append((label, "-" if m is None else fmt % m, " ".join(vals), target))

    row("wrk, %d conns (req/s)" % CONNS, ["wrk", "rate"])
    row("bare sender (req/s)", ["bare", "rate"])
    row("pipeline (deliveries/s)", ["pipeline", "rate"])
    row("  vs bare sender (%)", ["ratio", "vs_bare_pct"], "%.0f", ">= 60")
    row("  vs wrk (%)", ["ratio", "vs_wrk_pct"])
    for rate in RATES:
        for q in ("p50_ms", "p99_ms", "p999_ms"):
            row("latency @%d/s %s" % (rate, q[:-3]), ["latency_%d" % rate, q], "%.1f",
                "<= 10" if (rate == 1000 and q == "p99_ms") else "")
    for q in ("p50_ms", "p99_ms", "p999_ms"):
        row("latency @saturation %s" % q[:-3], ["latency_sat", q], "%.1f")
    row("  saturation achieved (deliveries/s)", ["latency_sat", "achieved"])
    for k in STAGES + ("stages",):
        row("CPU s/1000 deliveries: %s" % k, ["pipeline", "cpu_per_1000", k], "%.3f")
    row("CPU s/1000 requests: bare sender", ["bare", "cpu_per_1000"], "%.3f")
    row("  stages / bare sender (x)", ["ratio", "cpu_vs_bare"], "%.2f", "<= 2")
    row("CPU s/1000: nginx (pipeline run)", ["pipeline", "cpu_per_1000", "nginx"], "%.3f")
    for k in STAGES:
        row("peak RSS MiB: %s" % k, ["pipeline", "rss_peak_mib", k], "%.1f")
    row("bare sender peak RSS MiB", ["bare", "maxrss_mib"], "%.1f")
    row("connection reuse, sender stats (%)", ["pipeline", "sender_reuse_pct"], "%.1f")
    row("connection reuse, nginx (%)", ["pipeline", "nginx_reuse_pct"], "%.1f")
    row("connections opened (nginx)", ["pipeline", "nginx_connections"])
    row("isolation: 14 healthy (deliveries/s)", ["isolation", "rate"])
    row("  vs all-healthy (%)", ["ratio", "isolation_pct"], "%.0f", ">= 90")
    if any("instructions_per_delivery" in r.get("pipeline", {}) for r in runs):
        for k in STAGES:
            row("instructions/delivery: %s" % k, ["pipeline", "instructions_per_delivery", k])
    w = max(len(r[0]) for r in rows)
    lines = ["%-*s  %10s  %-8s  %s" % (w, "figure", "median", "target", "runs")]
    for label, m, vals, target in rows:
        lines.append("%-*s  %10s  %-8s  %s" % (w, label, m, target, vals))
    return "\n".join(lines)


def derive(r):
    """derive adds the ratios and unit conversions of one run."""
    pl, bare, wrk = r["pipeline"], r["bare"], r["wrk"]
    r["ratio"] = {"vs_bare_pct": 100.0 * pl["rate"] / bare["rate"],
                  "vs_wrk_pct": 100.0 * pl["rate"] / wrk["rate"],
                  "cpu_vs_bare": pl["cpu_per_1000"]["stages"] / bare["cpu_per_1000"]}
    if "isolation" in r:
        r["ratio"]["isolation_pct"] = 100.0 * r["isolation"]["rate"] / pl["rate"]
    pl["rss_peak_mib"] = {k: v / 1024.0 for k, v in pl["rss_peak_kib"].items()}
    bare["maxrss_mib"] = bare["maxrss_kib"] / 1024.0
    if pl.get("sender_reuse") is not None:
        pl["sender_reuse_pct"] = 100.0 * pl["sender_reuse"]
    if pl.get("nginx_reuse") is not None:
        pl["nginx_reuse_pct"] = 100.0 * pl["nginx_reuse"]


def main():
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="hookline-bench-")
    nginx = Nginx(tmp).start()
    hang = HangServer()
    urls = {"wh_%d" % i: "http://127.0.0.1:%d/ok/wh_%d" % (nginx.port, i) for i in range(HOOKS)}
    p = start_pipeline("bench", nginx, urls)
    runs = []
    try:
        pad_c = size_pad(p, created_event)
        pad_t = size_pad(p, transitioned_event)
        sizes = {"created": body_len(p, created_event, pad_c),
                 "transitioned": body_len(p, transitioned_event, pad_t)}
        log("bodies: %s bytes; nginx on port %d; %d run(s)" % (sizes, nginx.port, RUNS))
        nginx.take_log()
        # Warm-up: connections, SQLite pages, allocator; not measured.
        run_latency(p, nginx, 0, 2000, pad_t, ["wh_0"], transitioned_event, 0.5)
        for run in range(1, RUNS + 1):
            r = {}
            log("run %d: wrk" % run)
            r["wrk"] = run_wrk(nginx, tmp)
            log("run %d: bare sender" % run)
            r["bare"] = run_bare(nginx)
            log("run %d: pipeline, %d events x %d webhooks" % (run, EVENTS, HOOKS))
            r["pipeline"] = run_publish(p, nginx, run, pad_c, HOOKS, "sat")
            for rate in RATES:
                log("run %d: latency at %d/s" % (run, rate))
                r["latency_%d" % rate] = run_latency(p, nginx, run, rate, pad_t, ["wh_0"],
                                                     transitioned_event, RATE_SECONDS[rate])
            log("run %d: latency at saturation" % run)
            r["latency_sat"] = run_latency(p, nginx, run, None, pad_c, list(urls),
                                           created_event, 0)
            log("run %d: isolation (one endpoint hangs, one answers 500)" % run)
            r["isolation"] = run_isolation(nginx, hang, run, pad_c)
            derive(r)
            runs.append(r)
            log("run %d: %.0f deliveries/s (bare %.0f, wrk %.0f)" % (
                run, r["pipeline"]["rate"], r["bare"]["rate"], r["wrk"]["rate"]))
    finally:
        p.cleanup()
        nginx.stop()
        hang.stop()
    import dedupe_bench
    log("dedupe: ingest accept rate with --dedupe-window on and off")
    dedupe = dedupe_bench.throughput(runs=int(os.environ.get("BENCH_DEDUPE_RUNS", "5")),
                                     events=int(os.environ.get("BENCH_DEDUPE_EVENTS", "300000")))
    keys = set()

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + [k])
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.add(tuple(prefix + [k]))
    for r in runs:
        walk(r, [])
    med = {}
    for path in sorted(keys):
        d = med
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = median_of(runs, path)
    result = {"machine": machine(),
              "settings": {"runs": RUNS, "events": EVENTS, "webhooks": HOOKS, "body_bytes": sizes,
                           "connections": CONNS, "max_per_endpoint": PER_ENDPOINT,
                           "bare_requests": BARE_REQUESTS, "wrk_seconds": WRK_SECONDS,
                           "fsync": "batch", "latency_rates": list(RATES)},
              "median": med, "runs": runs, "dedupe": dedupe,
              "seconds": round(time.monotonic() - t_start, 1)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(table(runs, med))
    print("\ningest alone, %d events, median of %d runs: %d events/s with --dedupe-window 86400, "
          "%d with 0: ratio %.3f (goal >= 0.9; the median of the back-to-back pairs' ratios)"
          % (dedupe["events"], dedupe["runs"], dedupe["on"], dedupe["off"], dedupe["ratio"]))
    print("\nmachine: %(nproc)d x %(cpu)s, kernel %(kernel)s" % result["machine"])
    print("figures: %s (%.0f s)" % (OUT, result["seconds"]))
    if os.environ.get("HOOKLINE_TEST_KEEP") in (None, "", "0"):
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
