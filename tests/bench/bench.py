#!/usr/bin/python3
"""bench.py - `make bench`: throughput, latency, CPU, connections and memory of the whole
pipeline against a real nginx receiver on loopback, next to three ceilings measured in the same run.

Receiver: nginx (a generated nginx.conf in a temp dir, `daemon off`, `master_process off`)
answering 204 to POST /ok/..., 500 to POST /fail/...: on 127.0.0.1:P (plain), on 2,000 loopback
addresses 127.1.x.y:Q (the distinct-host phases) and on 127.0.0.1:T with TLS (a self-signed
certificate made with the openssl CLI; the sender gets it as --ca-file). Its access log records
$msec, $http_webhook_id, $connection, $connection_requests and $ssl_session_reused per request;
a request with $connection_requests = 1 opened a new connection (over TLS: a handshake).

Phases of each run (BENCH_RUNS, default 3; the table shows the median and each run; BENCH_PHASES
picks them, comma-separated, default all):
  ceilings   wrk -c 256 against /ok/wrk (1 KiB POST body, the pipeline's header set);
             curl: tests/bench/curl_ceiling.c, plain libcurl multi on libuv, options set once,
             16 keep-alive connections (16 URLs x 1), same body and header set;
             bare: tests/bench/bare_sender.c, the sender's own HTTP engine (sender/http.c) and
             header builder (domain/auth.c), no framing/journal/log, 16 endpoints x 16
  pipeline   EVENTS created events through `hookctl publish` (16 webhooks, ~1 KiB bodies, bearer
             auth, --fsync batch): deliveries/s from the publish start to the last request at
             nginx; CPU µs per delivery per stage (/proc/PID/stat utime+stime), peak RSS
             (VmHWM), new connections per delivery (nginx), sender connection stats
  latency    a paced producer on run/ingest.sock at 1,000 and 5,000 deliveries/s (transitioned
             events, matched by one webhook: events/s = deliveries/s) and unpaced with the 16
             webhooks (saturation): time from the {"ok":true} reply to nginx's $msec, p50/p99/p99.9
  isolation  a fresh pipeline with 16 endpoints, one hanging (accepts, never answers) and one
             answering 500: deliveries/s to the 14 healthy ones vs the all-healthy run
  ep256      a fresh pipeline, 256 webhooks on 256 distinct hosts (127.1.x.y): a warm-up publish
             (1/8 of the events, not measured), then the measured publish as in `pipeline`
  ep2000     the same with 2,000 webhooks on 2,000 distinct hosts
  tls        a fresh pipeline, 16 webhooks on https://127.0.0.1:T (sender --ca-file); handshakes
             per delivery (full and resumed, from $ssl_session_reused); and curl_ceiling over TLS
  senders    two fresh pipelines back to back, 16 webhooks, one with 1 sender and one with 2
             (one router): the 2-sender / 1-sender throughput ratio
  dedupe     hook-ingest alone, events/s with --dedupe-window on and off and their ratio
             (tests/bench/dedupe_bench.py throughput; `make bench-dedupe` adds the memory part)
Writes the figures to $BUILD/bench/results.json (BENCH_OUT): every run, the medians, the targets
met or not. Environment: BIN, BUILD, BENCH_RUNS, BENCH_PHASES, BENCH_EVENTS (pipeline events per
run, 16 deliveries each), BENCH_PHASE_DELIVERIES (deliveries per measured publish in ep256,
ep2000, tls, senders), BENCH_BARE_REQUESTS (bare sender and curl ceiling requests),
BENCH_WRK_SECONDS, BENCH_DEDUPE_RUNS, BENCH_DEDUPE_EVENTS, BENCH_PERF=1 (perf stat instructions
per delivery for each stage).
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
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "3"))
PERF = os.environ.get("BENCH_PERF") not in (None, "", "0")
PHASE_DELIVERIES = int(os.environ.get("BENCH_PHASE_DELIVERIES", "12000"))
ALL_PHASES = ("ceilings", "pipeline", "latency", "isolation", "ep256", "ep2000", "tls", "senders",
              "dedupe")
PHASES = [x.strip() for x in os.environ.get("BENCH_PHASES", ",".join(ALL_PHASES)).split(",")
          if x.strip()]
for _ph in PHASES:
    if _ph not in ALL_PHASES:
        sys.exit("bench: BENCH_PHASES: unknown phase '%s' (known: %s)" % (_ph, ",".join(ALL_PHASES)))
EP_HOSTS = 2000              # loopback addresses nginx listens on for the distinct-host phases
CURL_CONNS = 16              # the plain libcurl ceiling: 16 URLs x 1 keep-alive connection
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

def ep_host(i):
    """ep_host: the loopback address of distinct-host endpoint i (127.1.0.1, 127.1.0.2, ...)."""
    return "127.1.%d.%d" % (i // 250, i % 250 + 1)


class Nginx:
    """Nginx runs nginx as a child with its own conf, pid and logs: plain on a spare 127.0.0.1
    port, on EP_HOSTS loopback addresses (one spare port), and TLS on another spare port."""

    FORMAT = ("$msec $http_webhook_id $connection $connection_requests $status $request_length "
              "$uri $ssl_session_reused")

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"))
        self.port = free_port()
        self.ep_port = free_port()
        self.tls_port = free_port()
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.access = os.path.join(self.dir, "logs", "access.log")
        self.proc = None
        self.phase = 0

    def make_cert(self):
        """make_cert: a self-signed P-256 certificate for 127.0.0.1 (the sender's --ca-file)."""
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.key, "-out",
                            self.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1,DNS:localhost"], capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise RuntimeError("openssl req exited %d: %s" % (p.returncode, p.stderr[-1000:]))

    def start(self):
        d = self.dir
        self.make_cert()
        locs = ("location /ok/ { access_log %(access)s bench buffer=256k; return 204; }\n"
                "        location /fail/ { access_log %(access)s bench buffer=256k; return 500; }"
                % {"access": self.access})
        ep_listen = "\n".join("        listen %s:%d backlog=1024;" % (ep_host(i), self.ep_port)
                              for i in range(EP_HOSTS))
        conf = """worker_processes 1;
worker_rlimit_nofile 19000;
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 16384; multi_accept on; }
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
        %(locs)s
    }
    server {
%(ep_listen)s
        %(locs)s
    }
    server {
        listen 127.0.0.1:%(tls_port)d ssl backlog=4096;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        %(locs)s
    }
}
""" % {"d": d, "fmt": self.FORMAT, "port": self.port, "locs": locs, "ep_listen": ep_listen,
       "tls_port": self.tls_port, "cert": self.cert, "key": self.key}
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        err = open(os.path.join(d, "logs", "stderr.log"), "ab")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", path, "-e", os.path.join(
            d, "logs", "error.log")], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        end = time.monotonic() + 10
        for host, port in (("127.0.0.1", self.port), (ep_host(EP_HOSTS - 1), self.ep_port),
                           ("127.0.0.1", self.tls_port)):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("nginx exited with %s: %s" % (self.proc.returncode, open(
                        os.path.join(d, "logs", "error.log")).read()[-2000:]))
                try:
                    socket.create_connection((host, port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise RuntimeError("nginx did not listen on %s:%d" % (host, port))
                    time.sleep(0.02)
        return self

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
                if len(p) != 8:
                    continue
                recs.append({"t": float(p[0]), "id": p[1], "conn": int(p[2]), "creq": int(p[3]),
                             "status": int(p[4]), "len": int(p[5]), "uri": p[6], "ssl": p[7]})
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
        """stats: each instance's status figures by daemon key ("ingest", "router.0",
        "sender.1", ...), plus "senders": the numeric figures summed over every sender."""
        end = time.monotonic() + 30
        while True:
            rc, out, err = self.hookctl("status", "--json")
            st = json.loads(out)["stages"] if out.strip() else {}
            if len(st.get("sender", [])) == len(self.senders):
                break
            dead = [k for k, d in self.daemons.items() if not d.running()]
            if dead or time.monotonic() > end:
                self.dump_logs()
                self.fail("hookctl status: %d of %d senders answered (exited: %s): %s" % (
                    len(st.get("sender", [])), len(self.senders), ", ".join(dead) or "none",
                    err.strip()[-300:]))
            time.sleep(0.1)  # a stage too busy to answer within hookctl's status timeout
        res = {}
        for stage, insts in st.items():
            for inst in insts:
                key = stage if stage in ("ingest", "scheduler") else "%s.%s" % (
                    stage, inst["instance"])
                res[key] = inst["stats"]
        senders = [v for k, v in res.items() if k.startswith("sender.")]
        res["senders"] = {f: sum(x.get(f, 0) for x in senders) for f, v in senders[0].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return res

    def wait_sender(self, field, target, timeout=120):
        """wait_sender polls the senders' status until their summed stats[field] >= target."""
        end = time.monotonic() + timeout
        while True:
            v = self.stats()["senders"][field]
            if v >= target:
                return v
            if time.monotonic() > end:
                self.fail("senders' %s stayed at %d, wanted %d" % (field, v, target))
            time.sleep(0.05)

    def stage_keys(self):
        """stage_keys: the daemon keys of this pipeline (ingest, scheduler, router.N, sender.N)."""
        return [k for k, d in self.daemons.items() if d.running()]


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
    snap = {k: cpu_s(p.pid(k)) for k in p.stage_keys()}
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


def conn_figures(recs, n):
    """conn_figures: connection figures of one phase's nginx records. A request with
    $connection_requests = 1 is the first on a new connection (over TLS: after a handshake,
    resumed when $ssl_session_reused is "r")."""
    new = [r for r in recs if r["creq"] == 1]
    res = {"nginx_connections": len(set(r["conn"] for r in recs)), "new_connections": len(new),
           "new_conn_pct": round(100.0 * len(new) / n, 3) if n else None}
    if recs and recs[0]["ssl"] != "-":
        res["tls_handshakes"] = len(new)
        res["tls_full_handshakes"] = sum(1 for r in new if r["ssl"] != "r")
        res["tls_handshakes_per_delivery"] = round(len(new) / n, 5) if n else None
    return res


def run_publish(p, nginx, run, pad, hooks_ok, label, events=None, perf=False):
    """run_publish: events (default EVENTS) created events through `hookctl publish`;
    deliveries/s from the publish start to the last request at nginx (only /ok/ requests count),
    CPU µs per delivery per stage, connections opened."""
    events = events or EVENTS
    path = os.path.join(p.tmp, "%s-%d.jsonl" % (label, run))
    with open(path, "w") as f:
        for i in range(events):
            f.write(json.dumps(created_event("%s-%d-%d" % (label, run, i), pad)) + "\n")
    st0 = p.stats()
    before = st0["senders"]
    want_ok = before["succeeded"] + events * hooks_ok
    perf = perf_start(p) if perf else {}
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
    st1 = p.stats()
    after = st1["senders"]
    recs = [r for r in nginx.take_log() if r["uri"].startswith("/ok/") and r["status"] == 204]
    n = len(recs)
    last = max(r["t"] for r in recs)
    secs = last - t0
    keys = p.stage_keys()
    res = {
        "events": events,
        "deliveries": n,
        "seconds": round(secs, 3),
        "rate": round(n / secs, 1),
        "cpu_us": {k: round((c1[k] - c0[k]) * 1e6 / n, 2) for k in c0},
        "rss_peak_kib": {k: vm_kib(p.pid(k)) for k in keys},
        "sender_connections": after["connections"] - before["connections"],
        "sender_reused": after["reused"] - before["reused"],
        "log_batches": after["log_batches"] - before["log_batches"],
        # Jobs the senders handed to the scheduler for waiting too long for a slot
        # (--defer-after-ms), and retries pending there when the phase started.
        "deferred": after["deferred"] - before["deferred"],
        "sched_pending_at_start": st0["scheduler"].get("pending"),
    }
    res.update(conn_figures(recs, n))
    res["nginx_reuse"] = round(1 - res["nginx_connections"] / n, 4) if n else None
    res["cpu_us"]["stages"] = round(sum(res["cpu_us"][k] for k in keys), 2)
    res["cpu_us"]["senders"] = round(sum(res["cpu_us"][k] for k in keys
                                         if k.startswith("sender.")), 2)
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
    before = p.stats()["senders"]["succeeded"]
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
    r.update(conn_figures(recs, len(recs)))
    r["cpu_us"] = round(r["cpu_s"] * 1e6 / r["requests"], 2)
    r["nginx_cpu_us"] = round((c1 - c0) * 1e6 / max(1, len(recs)), 2)
    r["nginx_reuse"] = round(1 - r["nginx_connections"] / len(recs), 4) if recs else None
    return r


def run_curl(nginx, url_prefix, ca_file=None):
    """run_curl: the plain libcurl ceiling (tests/bench/curl_ceiling.c), CURL_CONNS keep-alive
    connections (16 URLs x 1), the same body and header set."""
    exe = os.path.join(BUILD, "bench", "curl_ceiling")
    argv = [exe, "--url-prefix", url_prefix, "--endpoints", str(CURL_CONNS),
            "--conns-per-endpoint", "1", "--requests", str(BARE_REQUESTS), "--body-bytes",
            str(BODY), "--token", TOKEN] + (["--ca-file", ca_file] if ca_file else [])
    c0 = cpu_s(nginx.proc.pid)
    p = subprocess.run(argv, capture_output=True, text=True)
    c1 = cpu_s(nginx.proc.pid)
    if p.returncode != 0:
        raise RuntimeError("curl_ceiling exited %d: %s" % (p.returncode, p.stderr[-1000:]))
    r = json.loads(p.stdout)
    recs = nginx.take_log()
    r.update(conn_figures(recs, len(recs)))
    r["cpu_us"] = round(r["cpu_s"] * 1e6 / r["requests"], 2)
    r["nginx_cpu_us"] = round((c1 - c0) * 1e6 / max(1, len(recs)), 2)
    return r


def start_pipeline(tmp_name, nginx, urls, senders=1, sender_args=()):
    p = BenchPipeline(nginx.port, name=tmp_name, fsync="batch", retry_base_ms=30000,
                      retry_factor=4, retry_jitter=0.1, max_attempts=6, senders=senders,
                      sender_args=sender_args, cfg=lambda port: bench_config(port, urls, ""))
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
        st = p.stats()["senders"]
        r["failed_attempts"] = st["failed_attempts"]
        r["http_in_flight_at_end"] = st["http_in_flight"]
        r["http_queued_at_end"] = st["http_queued"]
        return r
    finally:
        p.cleanup()
        nginx.take_log()


def run_fresh(nginx, run, pad, label, urls, senders=1, sender_args=()):
    """run_fresh: a fresh pipeline with the webhooks urls ({id: url}, all healthy): a warm-up
    publish of 1/8 of the events (connections, SQLite pages; not measured), then the measured
    publish of about PHASE_DELIVERIES deliveries."""
    events = max(1, PHASE_DELIVERIES // len(urls))
    t0 = time.monotonic()
    p = start_pipeline("bench-" + label, nginx, urls, senders=senders, sender_args=sender_args)
    try:
        started = time.monotonic() - t0
        nginx.take_log()
        warm = max(1, events // 8)
        run_publish(p, nginx, run, pad, len(urls), label + "-warm", events=warm)
        r = run_publish(p, nginx, run, pad, len(urls), label, events=events)
        r["webhooks"] = len(urls)
        r["senders"] = senders
        r["warmup_events"] = warm
        r["start_seconds"] = round(started, 2)
        return r
    finally:
        p.cleanup()
        nginx.take_log()


def run_endpoints(nginx, run, pad, n):
    """run_endpoints: n webhooks on n distinct hosts (loopback addresses, one nginx port)."""
    urls = {"wh_%d" % i: "http://%s:%d/ok/ep_%d" % (ep_host(i), nginx.ep_port, i)
            for i in range(n)}
    return run_fresh(nginx, run, pad, "ep%d" % n, urls)


def run_tls(nginx, run, pad):
    """run_tls: 16 webhooks over TLS to nginx, the sender trusting its certificate."""
    urls = {"wh_%d" % i: "https://127.0.0.1:%d/ok/tls_%d" % (nginx.tls_port, i)
            for i in range(HOOKS)}
    return run_fresh(nginx, run, pad, "tls", urls, sender_args=["--ca-file", nginx.cert])


def run_senders(nginx, run, pad, n):
    """run_senders: 16 webhooks, one router, n senders."""
    urls = {"wh_%d" % i: "http://127.0.0.1:%d/ok/s%d_%d" % (nginx.port, n, i)
            for i in range(HOOKS)}
    return run_fresh(nginx, run, pad, "senders%d" % n, urls, senders=n)


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


def run_values(runs, path):
    """run_values: the value at path of each run (None where a run lacks it)."""
    vals = []
    for r in runs:
        v = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        vals.append(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
    return vals


# The targets: (text, op, limit, every). every: each run must meet it, not the median.
TARGETS = {
    "vs_curl": (">= 0.6", ">=", 0.6, False),
    "rate16": (">= 15000", ">=", 15000, False),
    "cpu_all": ("<= 75", "<=", 75, False),
    "p99_1000": ("<= 10", "<=", 10, False),
    "p99_5000": ("<= 20 all", "<=", 20, True),
    "new_conn": ("<= 1", "<=", 1, False),
    "ep256_vs_16": (">= 0.8", ">=", 0.8, False),
    "senders2": (">= 1.5", ">=", 1.5, False),
    "isolation": (">= 90", ">=", 90, False),
}


def table(runs, med):
    """table: the text table (figure, median, target, met, each run) and the target verdicts."""
    rows, verdicts = [], []
    cur = [""]

    def row(label, path, fmt="%.0f", target=None):
        vals = run_values(runs, path)
        got = [v for v in vals if v is not None]
        m = statistics.median(got) if got else None
        met = ""
        if target and m is not None:
            text, op, limit, every = TARGETS[target]
            ok = (lambda v: v >= limit) if op == ">=" else (lambda v: v <= limit)
            met = "yes" if (all(ok(v) for v in got) if every else ok(m)) else "NO"
            verdicts.append({"figure": "%s: %s" % (cur[0], label.strip()), "target": text, "median": m, "runs": vals,
                             "met": met == "yes"})
        rows.append((label, "-" if m is None else fmt % m, TARGETS[target][0] if target else "",
                     met, " ".join("-" if v is None else fmt % v for v in vals)))

    def section(title):
        cur[0] = title
        rows.append((title, "", "", "", ""))

    section("ceilings")
    row("wrk, %d conns (req/s)" % CONNS, ["wrk", "rate"])
    row("plain libcurl, %d conns (req/s)" % CURL_CONNS, ["curl", "rate"])
    row("  CPU us/request", ["curl", "cpu_us"], "%.1f")
    row("  new connections", ["curl", "new_connections"])
    row("bare sender, %dx%d (req/s)" % (HOOKS, PER_ENDPOINT), ["bare", "rate"])
    row("  CPU us/request", ["bare", "cpu_us"], "%.1f")
    section("pipeline, 16 webhooks")
    row("deliveries/s", ["pipeline", "rate"], "%.0f", "rate16")
    row("  / plain libcurl (x)", ["ratio", "vs_curl"], "%.2f", "vs_curl")
    row("  / bare sender (x)", ["ratio", "vs_bare"], "%.2f")
    row("  / wrk (x)", ["ratio", "vs_wrk"], "%.3f")
    for k in STAGES:
        row("CPU us/delivery: %s" % k, ["pipeline", "cpu_us", k], "%.1f")
    row("CPU us/delivery: all stages", ["pipeline", "cpu_us", "stages"], "%.1f", "cpu_all")
    row("  / plain libcurl CPU (x)", ["ratio", "cpu_vs_curl"], "%.2f")
    row("  / bare sender CPU (x)", ["ratio", "cpu_vs_bare"], "%.2f")
    row("CPU us/delivery: nginx", ["pipeline", "cpu_us", "nginx"], "%.1f")
    row("new connections/delivery (%)", ["pipeline", "new_conn_pct"], "%.2f", "new_conn")
    row("  distinct connections (nginx)", ["pipeline", "nginx_connections"])
    row("  sender reuse, own stats (%)", ["pipeline", "sender_reuse_pct"], "%.1f")
    row("jobs deferred to the scheduler", ["pipeline", "deferred"])
    for k in STAGES:
        row("peak RSS MiB: %s" % k, ["pipeline", "rss_peak_mib", k], "%.1f")
    section("latency, acceptance to nginx (ms)")
    for rate in RATES:
        for q in ("p50_ms", "p99_ms", "p999_ms"):
            row("@%d/s %s" % (rate, q[:-3]), ["latency_%d" % rate, q], "%.1f",
                {1000: "p99_1000", 5000: "p99_5000"}[rate] if q == "p99_ms" else None)
    for q in ("p50_ms", "p99_ms", "p999_ms"):
        row("@saturation %s" % q[:-3], ["latency_sat", q], "%.1f")
    row("  saturation achieved (deliveries/s)", ["latency_sat", "achieved"])
    section("isolation (one endpoint hangs, one answers 500)")
    row("14 healthy (deliveries/s)", ["isolation", "rate"])
    row("  / all-healthy (%)", ["ratio", "isolation_pct"], "%.0f", "isolation")
    for n in (256, 2000):
        ph = "ep%d" % n
        section("%d webhooks on %d distinct hosts" % (n, n))
        row("deliveries/s", [ph, "rate"])
        row("  / 16 webhooks (x)", ["ratio", ph + "_vs_16"], "%.2f",
            "ep256_vs_16" if n == 256 else None)
        row("new connections/delivery (%)", [ph, "new_conn_pct"], "%.2f", "new_conn")
        row("CPU us/delivery: sender", [ph, "cpu_us", "senders"], "%.1f")
        row("CPU us/delivery: all stages", [ph, "cpu_us", "stages"], "%.1f")
    section("TLS, 16 webhooks")
    row("deliveries/s", ["tls", "rate"])
    row("  / 16 webhooks plain (x)", ["ratio", "tls_vs_16"], "%.2f")
    row("TLS handshakes/delivery (%)", ["tls", "new_conn_pct"], "%.2f", "new_conn")
    row("  full (not resumed) handshakes", ["tls", "tls_full_handshakes"])
    row("CPU us/delivery: sender", ["tls", "cpu_us", "senders"], "%.1f")
    row("CPU us/delivery: all stages", ["tls", "cpu_us", "stages"], "%.1f")
    row("plain libcurl over TLS, %d conns (req/s)" % CURL_CONNS, ["curl_tls", "rate"])
    row("  pipeline TLS / it (x)", ["ratio", "tls_vs_curl_tls"], "%.2f")
    section("senders (fresh pipelines, 16 webhooks, one router)")
    row("1 sender (deliveries/s)", ["senders1", "rate"])
    row("2 senders (deliveries/s)", ["senders2", "rate"])
    row("  2 / 1 (x)", ["ratio", "senders2_vs_1"], "%.2f", "senders2")
    row("CPU us/delivery, 2 senders: sender.0", ["senders2", "cpu_us", "sender.0"], "%.1f")
    row("CPU us/delivery, 2 senders: sender.1", ["senders2", "cpu_us", "sender.1"], "%.1f")
    row("CPU us/delivery, 2 senders: both", ["senders2", "cpu_us", "senders"], "%.1f")
    row("CPU us/delivery, 1 sender: all stages", ["senders1", "cpu_us", "stages"], "%.1f")
    row("CPU us/delivery, 2 senders: all stages", ["senders2", "cpu_us", "stages"], "%.1f")
    if any("instructions_per_delivery" in r.get("pipeline", {}) for r in runs):
        section("perf stat, pipeline")
        for k in STAGES:
            row("instructions/delivery: %s" % k, ["pipeline", "instructions_per_delivery", k])
    # Drop sections whose rows all lack figures (phases not run).
    kept, i = [], 0
    while i < len(rows):
        if rows[i][1:] == ("", "", "", ""):
            j = i + 1
            while j < len(rows) and rows[j][1:] != ("", "", "", ""):
                j += 1
            body = [x for x in rows[i + 1:j] if x[1] != "-"]
            if body:
                kept.append(rows[i])
                kept.extend(body)
            i = j
        else:
            kept.append(rows[i])
            i += 1
    w = max(len(r[0]) for r in kept)
    lines = ["%-*s  %10s  %-9s  %-3s  %s" % (w, "figure", "median", "target", "met", "runs")]
    for label, m, target, met, vals in kept:
        if not m and not vals:
            lines.append("-- " + label)
        else:
            lines.append("%-*s  %10s  %-9s  %-3s  %s" % (w, label, m, target, met, vals))
    return "\n".join(lines), verdicts


def derive(r):
    """derive adds the ratios and unit conversions of one run (the ratios pair figures of this
    run only)."""
    ratio = r.setdefault("ratio", {})

    def rate(ph):
        return r.get(ph, {}).get("rate")

    def put(name, a, b, scale=1.0):
        if a is not None and b:
            ratio[name] = round(scale * a / b, 4)

    pl = r.get("pipeline", {})
    put("vs_curl", rate("pipeline"), rate("curl"))
    put("vs_bare", rate("pipeline"), rate("bare"))
    put("vs_wrk", rate("pipeline"), rate("wrk"))
    if pl:
        put("cpu_vs_curl", pl["cpu_us"]["stages"], r.get("curl", {}).get("cpu_us"))
        put("cpu_vs_bare", pl["cpu_us"]["stages"], r.get("bare", {}).get("cpu_us"))
    put("isolation_pct", rate("isolation"), rate("pipeline"), 100.0)
    put("ep256_vs_16", rate("ep256"), rate("pipeline"))
    put("ep2000_vs_16", rate("ep2000"), rate("pipeline"))
    put("tls_vs_16", rate("tls"), rate("pipeline"))
    put("tls_vs_curl_tls", rate("tls"), rate("curl_tls"))
    put("senders2_vs_1", rate("senders2"), rate("senders1"))
    for ph in ("pipeline", "isolation", "ep256", "ep2000", "tls", "senders1", "senders2"):
        x = r.get(ph)
        if not x:
            continue
        x["rss_peak_mib"] = {k: v / 1024.0 for k, v in x["rss_peak_kib"].items()}
        if x.get("sender_reuse") is not None:
            x["sender_reuse_pct"] = 100.0 * x["sender_reuse"]
        if x.get("nginx_reuse") is not None:
            x["nginx_reuse_pct"] = 100.0 * x["nginx_reuse"]
    if "bare" in r:
        r["bare"]["maxrss_mib"] = r["bare"]["maxrss_kib"] / 1024.0


def main():
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="hookline-bench-")
    nginx = Nginx(tmp).start()
    hang = HangServer()
    urls = {"wh_%d" % i: "http://127.0.0.1:%d/ok/wh_%d" % (nginx.port, i) for i in range(HOOKS)}
    p = start_pipeline("bench", nginx, urls)
    runs, timing = [], {}

    def phase(run, name, fn):
        log("run %d: %s" % (run, name))
        t = time.monotonic()
        res = fn()
        timing.setdefault(name, []).append(round(time.monotonic() - t, 1))
        return res

    try:
        pad_c = size_pad(p, created_event)
        pad_t = size_pad(p, transitioned_event)
        sizes = {"created": body_len(p, created_event, pad_c),
                 "transitioned": body_len(p, transitioned_event, pad_t)}
        log("bodies: %s bytes; nginx on ports %d (plain), %d (%d hosts), %d (TLS); %d run(s); "
            "phases %s" % (sizes, nginx.port, nginx.ep_port, EP_HOSTS, nginx.tls_port, RUNS,
                           ",".join(PHASES)))
        nginx.take_log()
        # Warm-up: connections to all 16 webhooks, SQLite pages, allocator; not measured.
        run_latency(p, nginx, 0, 2000, pad_t, ["wh_0"], transitioned_event, 0.5)
        run_publish(p, nginx, 0, pad_c, HOOKS, "warm", events=max(1, EVENTS // 8))
        for run in range(1, RUNS + 1):
            r = {}
            if "ceilings" in PHASES:
                r["wrk"] = phase(run, "wrk", lambda: run_wrk(nginx, tmp))
                r["curl"] = phase(run, "plain libcurl ceiling", lambda: run_curl(
                    nginx, "http://127.0.0.1:%d/ok/curl_" % nginx.port))
                r["bare"] = phase(run, "bare sender", lambda: run_bare(nginx))
            if "pipeline" in PHASES:
                r["pipeline"] = phase(run, "pipeline, %d events x %d webhooks" % (EVENTS, HOOKS),
                                      lambda: run_publish(p, nginx, run, pad_c, HOOKS, "sat",
                                                          perf=PERF))
            if "latency" in PHASES:
                for rate in RATES:
                    r["latency_%d" % rate] = phase(
                        run, "latency at %d/s" % rate,
                        lambda: run_latency(p, nginx, run, rate, pad_t, ["wh_0"],
                                            transitioned_event, RATE_SECONDS[rate]))
                r["latency_sat"] = phase(run, "latency at saturation", lambda: run_latency(
                    p, nginx, run, None, pad_c, list(urls), created_event, 0))
            if "isolation" in PHASES:
                r["isolation"] = phase(run, "isolation (one endpoint hangs, one answers 500)",
                                       lambda: run_isolation(nginx, hang, run, pad_c))
            for n in (256, 2000):
                if "ep%d" % n in PHASES:
                    r["ep%d" % n] = phase(run, "%d webhooks on %d hosts" % (n, n),
                                          lambda: run_endpoints(nginx, run, pad_c, n))
            if "tls" in PHASES:
                r["tls"] = phase(run, "TLS, 16 webhooks", lambda: run_tls(nginx, run, pad_c))
                r["curl_tls"] = phase(run, "plain libcurl ceiling over TLS", lambda: run_curl(
                    nginx, "https://127.0.0.1:%d/ok/curltls_" % nginx.tls_port, nginx.cert))
            if "senders" in PHASES:
                r["senders1"] = phase(run, "1 sender", lambda: run_senders(nginx, run, pad_c, 1))
                r["senders2"] = phase(run, "2 senders", lambda: run_senders(nginx, run, pad_c, 2))
            derive(r)
            runs.append(r)
            log("run %d: %s" % (run, ", ".join("%s %.0f/s" % (k, v["rate"]) for k, v in r.items()
                                                if isinstance(v, dict) and "rate" in v)))
    finally:
        p.cleanup()
        nginx.stop()
        hang.stop()
    dedupe = None
    if "dedupe" in PHASES:
        import dedupe_bench
        log("dedupe: ingest accept rate with --dedupe-window on and off")
        t = time.monotonic()
        dedupe = dedupe_bench.throughput(
            runs=int(os.environ.get("BENCH_DEDUPE_RUNS", "3")),
            events=int(os.environ.get("BENCH_DEDUPE_EVENTS", "50000")))
        timing["dedupe"] = [round(time.monotonic() - t, 1)]
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
    text, verdicts = table(runs, med)
    result = {"machine": machine(),
              "settings": {"runs": RUNS, "phases": PHASES, "events": EVENTS,
                           "phase_deliveries": PHASE_DELIVERIES, "webhooks": HOOKS,
                           "body_bytes": sizes, "wrk_connections": CONNS,
                           "curl_connections": CURL_CONNS, "max_per_endpoint": PER_ENDPOINT,
                           "bare_requests": BARE_REQUESTS, "wrk_seconds": WRK_SECONDS,
                           "fsync": "batch", "latency_rates": list(RATES)},
              "median": med, "runs": runs, "targets": verdicts, "dedupe": dedupe,
              "phase_seconds": timing, "seconds": round(time.monotonic() - t_start, 1)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(text)
    if dedupe:
        print("\ningest alone, %d events, median of %d runs: %d events/s with --dedupe-window "
              "86400, %d with 0: ratio %.3f (goal >= 0.9; the median of the back-to-back pairs' "
              "ratios)" % (dedupe["events"], dedupe["runs"], dedupe["on"], dedupe["off"],
                           dedupe["ratio"]))
    met = sum(1 for v in verdicts if v["met"])
    print("\ntargets met: %d of %d%s" % (met, len(verdicts), "".join(
        "\n  NOT met: %s %s (median %s)" % (v["figure"], v["target"], v["median"])
        for v in verdicts if not v["met"])))
    print("\nmachine: %(nproc)d x %(cpu)s, kernel %(kernel)s" % result["machine"])
    print("figures: %s (%.0f s)" % (OUT, result["seconds"]))
    if os.environ.get("HOOKLINE_TEST_KEEP") in (None, "", "0"):
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
