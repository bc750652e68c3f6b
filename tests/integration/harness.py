"""harness.py - integration test helpers: run the real daemons on a temporary data dir with a
real recording HTTP receiver, and assert on what the receiver got and what hookctl shows.

Typical use:

    from harness import PipelineTestCase, created, transitioned

    class TestBasic(PipelineTestCase):
        def test_won(self):
            p = self.pipeline()                      # receiver + config + 4 stages, all ready
            p.publish([transitioned("e1", "opp_1", "stg_new", "stg_won")])
            reqs = p.wait_received(lambda r: r["h"].get("x-webhook-event") == "opportunity.won")
            ...
            p.stop()                                 # SIGTERM, asserts every exit status is 0

hook-api: Pipeline(api=True) (or api=2, api=["a", "b"]; api_args=(...) adds flags) starts
hook-api instances after the stages with --listen 127.0.0.1:0; each writes the address it bound
to DATA/run/api.<instance>.addr before it reports ready. Or start one yourself on a pipeline made
with start=False: p.start_api(instance="0", args=()). Then:

            admin = p.token("admin")                 # hookctl token create --name admin
            tok = p.token("t1", project="prj_1")     # a project token
            r = p.api("GET", "/v1/projects", token=admin)   # ApiResponse: .status .headers
            r.json()                                 # .body (bytes), .json(); instance="0"
            p.api_url("/healthz")                    # "http://127.0.0.1:PORT/healthz"

Environment: BIN (the daemons' directory, default <repo>/bin), HOOKLINE_TEST_KEEP=1 keeps the
temporary directory, HOOKLINE_TEST_TIMEOUT_SCALE multiplies every deadline (default 3 when BIN
looks like a sanitizer build, else 1).
"""

import base64
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(REPO, "bin"))
BUILD = os.path.abspath(os.environ.get("BUILD") or os.path.join(REPO, "build"))
RECEIVER = os.path.join(REPO, "tests", "receiver.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

_default_scale = 3.0 if "asan" in BIN else 1.0
SCALE = float(os.environ.get("HOOKLINE_TEST_TIMEOUT_SCALE") or _default_scale)

PROGRAMS = {
    "ingest": "hook-ingest",
    "router": "hook-router",
    "sender": "hook-sender",
    "scheduler": "hook-scheduler",
    "api": "hook-api",
}

# A fast schedule so retry tests run in seconds: 100, 200, 400, 800, 1600 ms, no jitter.
FAST_RETRY = {"retry_base_ms": 100, "retry_factor": 2, "retry_jitter": 0, "max_attempts": 6}


def _die_with_parent():
    """_die_with_parent (a preexec_fn) asks Linux to SIGKILL the child when the test process
    dies, so a killed or timed-out test run leaves no daemons behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _on_sigterm(signum, frame):
    # Turn `timeout`'s SIGTERM into an exception unittest does not swallow, so the cleanups
    # (which stop the daemons and the receiver) still run.
    raise KeyboardInterrupt("SIGTERM")


try:
    signal.signal(signal.SIGTERM, _on_sigterm)
except ValueError:  # not the main thread
    pass


def child_env(extra=None):
    """child_env returns the environment for daemons and hookctl, with sanitizer defaults."""
    env = dict(os.environ)
    if "ASAN_OPTIONS" not in env:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


def deadline_after(seconds):
    return time.monotonic() + seconds * SCALE


def tail(path, lines=40):
    """tail returns the last lines of a file as text ('' when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# --- configuration and events -------------------------------------------------------------

TEST_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 31))).decode()


def config(receiver_port, **overrides):
    """config returns a typical configuration (CONTRACT.md) whose webhooks post to the test
    receiver on receiver_port. Keyword overrides replace keys of the project (webhooks=[...],
    opportunity_fields=[...], funnels=[...], ...); a project=... override replaces it whole.
    Webhooks: wh_1 won (bearer + secret), wh_2 lost (basic), wh_3 transitioned (api_key),
    wh_4 created (none), wh_5 every type but disabled."""
    base = "http://127.0.0.1:%d" % receiver_port
    project = {
        "id": "prj_1",
        "name": "Acme",
        "opportunity_fields": ["title", "value", "owner"],
        "contact_fields": ["name", "email"],
        "funnels": [{
            "id": "fun_1",
            "name": "Sales",
            "stages": [
                {"id": "stg_new", "name": "New"},
                {"id": "stg_won", "name": "Closed won"},
                {"id": "stg_lost", "name": "Closed lost"},
            ],
            "won_stage_id": "stg_won",
            "lost_stage_id": "stg_lost",
        }],
        "webhooks": [
            webhook("wh_1", base + "/ok/wh_1", ["opportunity.won"], name="Won deals",
                    auth={"type": "bearer", "token": "tok_won_123"}, secret=TEST_SECRET),
            webhook("wh_2", base + "/ok/wh_2", ["opportunity.lost"], name="Lost deals",
                    auth={"type": "basic", "username": "user", "password": "pa55:word"}),
            webhook("wh_3", base + "/ok/wh_3", ["opportunity.transitioned"], name="Moves",
                    auth={"type": "api_key", "key": "key_abc"}),
            webhook("wh_4", base + "/ok/wh_4", ["opportunity.created"], name="New deals"),
            webhook("wh_5", base + "/ok/wh_5",
                    ["opportunity.created", "opportunity.transitioned", "opportunity.won",
                     "opportunity.lost"], name="Disabled", enabled=False),
        ],
    }
    if "project" in overrides:
        project = overrides.pop("project")
    project.update(overrides)
    return {"projects": [project]}


def webhook(id, url, events, name=None, auth=None, secret=None, enabled=True):
    """webhook returns one webhook entry for a config."""
    w = {"id": id, "name": name or id, "url": url, "enabled": enabled, "events": list(events),
         "auth": auth or {"type": "none"}}
    if secret:
        w["secret"] = secret
    return w


def created(id, opp_id="opp_1", project_id="prj_1", contact=None, occurred_at=None, **fields):
    """created returns an opportunity.created event; fields are the opportunity's fields."""
    e = {"type": "opportunity.created", "project_id": project_id,
         "opportunity": dict({"id": opp_id}, **fields)}
    if id is not None:
        e["id"] = id
    if contact is not None:
        e["contact"] = contact
    if occurred_at is not None:
        e["occurred_at"] = occurred_at
    return e


def transitioned(id, opp_id="opp_1", from_stage="stg_new", to_stage="stg_won", funnel_id="fun_1",
                 project_id="prj_1", contact=None, occurred_at=None, **fields):
    """transitioned returns an opportunity.transitioned event."""
    e = {"type": "opportunity.transitioned", "project_id": project_id,
         "opportunity": dict({"id": opp_id, "funnel_id": funnel_id}, **fields),
         "from_stage_id": from_stage, "to_stage_id": to_stage}
    if id is not None:
        e["id"] = id
    if contact is not None:
        e["contact"] = contact
    if occurred_at is not None:
        e["occurred_at"] = occurred_at
    return e


def signature(secret, msg_id, timestamp, body):
    """signature returns the Standard Webhooks header value v1,<base64 HMAC-SHA256>."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(key, b"%s.%s." % (str(msg_id).encode(), str(timestamp).encode()) + body,
                   hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


# --- processes -----------------------------------------------------------------------------

class Daemon:
    """Daemon is one running stage instance: its argv, log file and process."""

    def __init__(self, key, argv, log_path):
        self.key = key
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.expected_dead = False

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class ApiResponse:
    """ApiResponse is one answer from hook-api: status, headers (lower-case names), body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        return "ApiResponse(%d, %r)" % (self.status, self.body[:500])


class Pipeline:
    """Pipeline owns a temp dir (data dir, logs, receiver log), the receiver and the daemons.

    routers/senders: instance names ("0", "1", ...) or a count. Retry flags default to FAST_RETRY;
    scheduler_args/sender_args/router_args/ingest_args add flags; fsync sets --fsync for the
    journaling stages (ingest, scheduler). cfg: None for config(port), a dict, a callable taking
    the receiver port, or False for none; it is imported before the daemons start so they see
    it from their first event. api: False, True (one hook-api "0"), a count or instance names;
    api_args adds flags to each."""

    def __init__(self, routers=1, senders=1, retry_base_ms=None, retry_factor=None,
                 retry_jitter=None, max_attempts=None, scheduler_args=(), sender_args=(),
                 router_args=(), ingest_args=(), fsync=None, cfg=None, name="hookline",
                 api=False, api_args=()):
        self.tmp = tempfile.mkdtemp(prefix=name + "-test-")
        self.data = os.path.join(self.tmp, "data")
        self.logs = os.path.join(self.tmp, "logs")
        os.makedirs(self.data)
        os.makedirs(self.logs)
        self.receiver_log = os.path.join(self.tmp, "receiver.jsonl")
        self.receiver_port_file = os.path.join(self.tmp, "receiver.port")
        self.receiver = None
        self.port = None
        self.daemons = {}
        self.cfg = cfg
        retry = dict(FAST_RETRY)
        for k, v in (("retry_base_ms", retry_base_ms), ("retry_factor", retry_factor),
                     ("retry_jitter", retry_jitter), ("max_attempts", max_attempts)):
            if v is not None:
                retry[k] = v
        self.retry = retry
        self.routers = [str(i) for i in range(routers)] if isinstance(routers, int) else list(routers)
        self.senders = [str(i) for i in range(senders)] if isinstance(senders, int) else list(senders)
        self.extra = {"ingest": list(ingest_args), "router": list(router_args),
                      "sender": list(sender_args), "scheduler": list(scheduler_args),
                      "api": list(api_args)}
        if api is True:
            api = 1
        self.apis = [str(i) for i in range(api)] if isinstance(api, int) else list(api)
        self.api_urls = {}
        self.fsync = fsync
        self.env = child_env({"HOOKLINE_DATA": self.data})
        self._cfg_seq = 0
        self.dumped = False

    # --- lifecycle ---

    def start(self):
        """start runs the receiver, imports the configuration, starts every stage, waits for
        each readiness notification and then for `hookctl status` to exit 0. Returns self."""
        self.start_receiver()
        if self.cfg is not False:
            cfg = self.cfg
            if cfg is None:
                cfg = config(self.port)
            elif callable(cfg):
                cfg = cfg(self.port)
            self.import_config(cfg, settle=False)
        self.start_daemon("ingest")
        self.start_daemon("scheduler")
        for inst in self.routers:
            self.start_daemon("router", inst)
        for inst in self.senders:
            self.start_daemon("sender", inst)
        if self.routers and self.senders:  # status exits 0 only when every stage is up
            self.wait_status()
        for inst in self.apis:
            self.start_api(inst)
        return self

    def start_receiver(self):
        """start_receiver runs tests/receiver.py on a free port; waits for its port file."""
        if self.receiver is not None and self.receiver.poll() is None:
            return
        try:
            os.unlink(self.receiver_port_file)
        except FileNotFoundError:
            pass
        err = open(os.path.join(self.logs, "receiver.log"), "ab")
        self.receiver = subprocess.Popen(
            [PYTHON, RECEIVER, "--port", str(self.port or 0), "--port-file",
             self.receiver_port_file, "--log", self.receiver_log],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, close_fds=True,
            preexec_fn=_die_with_parent)
        err.close()
        end = deadline_after(10)
        while not os.path.exists(self.receiver_port_file):
            if self.receiver.poll() is not None:
                self.fail("receiver exited with %s" % self.receiver.returncode)
            if time.monotonic() > end:
                self.fail("receiver did not write its port file in time")
            time.sleep(0.02)
        with open(self.receiver_port_file) as f:
            self.port = int(f.read().strip())

    def stop_receiver(self):
        if self.receiver is not None and self.receiver.poll() is None:
            self.receiver.terminate()
            try:
                self.receiver.wait(10)
            except subprocess.TimeoutExpired:
                self.receiver.kill()
                self.receiver.wait()

    def daemon_argv(self, stage, instance="0"):
        argv = [os.path.join(BIN, PROGRAMS[stage]), "--data-dir", self.data]
        if stage in ("router", "sender", "api"):
            argv += ["--instance", instance]
        if stage == "api":
            argv += ["--listen", "127.0.0.1:0"]
        if stage == "sender":
            argv += ["--allow-target", "127.0.0.0/8"]
        if stage == "scheduler":
            r = self.retry
            argv += ["--retry-base-ms", str(r["retry_base_ms"]),
                     "--retry-factor", str(r["retry_factor"]),
                     "--retry-jitter", str(r["retry_jitter"]),
                     "--max-attempts", str(r["max_attempts"])]
        if self.fsync and stage in ("ingest", "scheduler"):
            argv += ["--fsync", self.fsync]
        return argv + self.extra[stage]

    @staticmethod
    def key(stage, instance="0"):
        return "%s.%s" % (stage, instance) if stage in ("router", "sender", "api") else stage

    def start_daemon(self, stage, instance="0", args=(), wait_ready=True):
        """start_daemon starts (or restarts, under the same name) one stage instance with
        --notify-fd and waits for its readiness newline. args adds flags. Returns the Daemon."""
        key = self.key(stage, instance)
        old = self.daemons.get(key)
        if old is not None and old.running():
            self.fail("%s is already running" % key)
        argv = self.daemon_argv(stage, instance) + list(args)
        d = Daemon(key, argv, os.path.join(self.logs, key + ".log"))
        rfd, wfd = os.pipe()
        try:
            with open(d.log_path, "ab") as log:
                log.write(("--- start %s: %s\n" % (time.strftime("%H:%M:%S"),
                                                   " ".join(argv))).encode())
                log.flush()
                d.proc = subprocess.Popen(argv + ["--notify-fd", str(wfd)], pass_fds=(wfd,),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          env=self.env, close_fds=True,
                                          preexec_fn=_die_with_parent)
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        self.daemons[key] = d
        try:
            if wait_ready:
                self._wait_notify(d, rfd, 15)
        finally:
            os.close(rfd)
        return d

    def start_api(self, instance="0", args=(), wait_ready=True):
        """start_api starts hook-api instance (--listen 127.0.0.1:0 --instance instance, plus
        api_args and args), waits for its readiness and reads the address it bound from
        DATA/run/api.<instance>.addr into api_urls[instance]. Returns the Daemon."""
        addr = os.path.join(self.data, "run", "api.%s.addr" % instance)
        try:
            os.unlink(addr)
        except FileNotFoundError:
            pass
        d = self.start_daemon("api", instance, args, wait_ready=wait_ready)
        if wait_ready:
            with open(addr) as f:
                self.api_urls[instance] = f.read().strip()
        return d

    def api_url(self, path="/", instance="0"):
        """api_url: the URL of path on a running hook-api instance."""
        return self.api_urls[instance] + "/" + path.lstrip("/")

    def api(self, method, path, token=None, body=None, headers=None, instance="0", timeout=10):
        """api sends one request to hook-api (a fresh connection) and returns an ApiResponse.
        body: bytes/str sent as is, anything else as JSON. token: sent as a Bearer token."""
        import http.client
        import urllib.parse
        u = urllib.parse.urlsplit(self.api_urls[instance])
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout * SCALE)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return ApiResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def token(self, name, project=None):
        """token runs hookctl token create --name name [--project project] and returns the
        token it printed."""
        args = ["token", "create", "--name", name]
        if project is not None:
            args += ["--project", project]
        out, _ = self.check_hookctl(*args)
        return out.strip()

    def _wait_notify(self, d, rfd, seconds):
        end = deadline_after(seconds)
        buf = b""
        while b"\n" not in buf:
            left = end - time.monotonic()
            if left <= 0:
                self.fail("%s: no readiness notification within %.0f s" % (d.key, seconds * SCALE))
            r, _, _ = select.select([rfd], [], [], min(left, 0.2))
            if r:
                chunk = os.read(rfd, 64)
                if not chunk:
                    d.proc.poll()
                    self.fail("%s: closed its notification fd without a newline (exit %s)"
                              % (d.key, d.proc.returncode))
                buf += chunk
            elif d.proc.poll() is not None:
                self.fail("%s exited with %s before it was ready" % (d.key, d.proc.returncode))

    def restart(self, stage, instance="0", sig=signal.SIGKILL, args=()):
        """restart kills a stage instance with sig (SIGKILL by default) and starts it again
        under the same name."""
        self.kill(stage, instance, sig)
        return self.start_daemon(stage, instance, args)

    def kill(self, stage, instance="0", sig=signal.SIGKILL, wait=True):
        """kill sends sig to a stage instance and (wait) reaps it. Returns its exit status."""
        d = self.daemons[self.key(stage, instance)]
        if not d.running():
            return d.proc.returncode if d.proc else None
        d.proc.send_signal(sig)
        d.expected_dead = sig != signal.SIGTERM  # stop() will not hold its status against it
        if wait:
            try:
                return d.proc.wait(15 * SCALE)
            except subprocess.TimeoutExpired:
                self.fail("%s did not exit within %.0f s of signal %d"
                          % (d.key, 15 * SCALE, sig))
        return None

    def wait_status(self, timeout=20):
        """wait_status polls `hookctl status` until it exits 0."""
        last = [None]

        def up():
            last[0] = self.hookctl("status")
            return last[0][0] == 0

        self.wait_for(up, timeout, lambda: "hookctl status never exited 0; last: %r" % (last[0],))

    def stop(self, grace=15):
        """stop SIGTERMs every daemon (senders and routers first, then scheduler and ingest),
        waits for them and asserts each exited 0; then stops the receiver."""
        order = sorted(self.daemons.values(),
                       key=lambda d: ["api", "sender", "router", "scheduler", "ingest"].index(
                           d.key.split(".")[0]))
        for d in order:
            if d.running():
                d.proc.send_signal(signal.SIGTERM)
        bad = []
        for d in order:
            if d.proc is None:
                continue
            try:
                rc = d.proc.wait(grace * SCALE)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
                bad.append("%s did not exit within %.0f s of SIGTERM" % (d.key, grace * SCALE))
                continue
            if rc != 0 and not d.expected_dead:
                bad.append("%s exited with status %s" % (d.key, rc))
        self.stop_receiver()
        if bad:
            self.fail("; ".join(bad))

    def cleanup(self, keep=None):
        """cleanup kills whatever still runs (no assertions) and removes the temp dir unless
        keep or HOOKLINE_TEST_KEEP is set."""
        for d in self.daemons.values():
            if d.running():
                d.proc.kill()
                d.proc.wait()
        self.stop_receiver()
        if keep is None:
            keep = os.environ.get("HOOKLINE_TEST_KEEP") not in (None, "", "0")
        if keep:
            sys.stderr.write("harness: kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- diagnostics ---

    def dump_logs(self, lines=40, out=None):
        """dump_logs writes the tail of every daemon's and the receiver's log to stderr."""
        out = out or sys.stderr
        names = sorted(os.listdir(self.logs)) if os.path.isdir(self.logs) else []
        for n in names:
            out.write("\n----- %s (last %d lines) -----\n%s\n"
                      % (n, lines, tail(os.path.join(self.logs, n), lines)))
        out.write("----- data dir: %s\n" % self.data)
        out.flush()
        self.dumped = True

    def fail(self, msg):
        self.dump_logs()
        raise AssertionError(msg)

    def wait_for(self, predicate, timeout=10, message=None, interval=0.05):
        """wait_for polls predicate until it returns something truthy, which it returns. On
        timeout (scaled) it dumps the logs and fails with message (a string or a callable)."""
        end = deadline_after(timeout)
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() > end:
                if callable(message):
                    message = message()
                self.fail("timed out after %.1f s: %s" % (timeout * SCALE, message or
                                                          getattr(predicate, "__name__", "wait")))
            time.sleep(interval)

    # --- hookctl ---

    def hookctl(self, *args, input=None, timeout=30):
        """hookctl runs bin/hookctl --data-dir DATA args... and returns (status, stdout, stderr)."""
        if isinstance(input, (bytes, bytearray)):
            input = input.decode()
        p = subprocess.run([os.path.join(BIN, "hookctl"), "--data-dir", self.data] + list(args),
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, env=self.env, timeout=timeout * SCALE)
        return p.returncode, p.stdout, p.stderr

    def check_hookctl(self, *args, input=None, expect=0):
        """check_hookctl is hookctl that fails the test unless the exit status is expect."""
        rc, out, err = self.hookctl(*args, input=input)
        if rc != expect:
            self.fail("hookctl %s: exit %d (expected %d)\nstdout: %s\nstderr: %s"
                      % (" ".join(args), rc, expect, out, err))
        return out, err

    def import_config(self, cfg, settle=True, expect=0):
        """import_config writes cfg to a file and runs hookctl import on it. When daemons run and
        settle is set it then waits out the contract's 1 s propagation bound."""
        self._cfg_seq += 1
        path = os.path.join(self.tmp, "config-%d.json" % self._cfg_seq)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        out, err = self.check_hookctl("import", path, expect=expect)
        if settle and expect == 0 and any(d.running() for d in self.daemons.values()):
            self.wait_config_seen()
        return out, err

    def config_version(self):
        """config_version reads the store's configuration counter."""
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data, "hookline.db"), timeout=10)
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'config_version'").fetchone()
        finally:
            db.close()
        return row[0] if row else 0

    def wait_config_seen(self, timeout=1.0):
        """wait_config_seen polls `hookctl status --json` until every running ingest, router
        and sender reports the store's configuration version: the contract says within 1 s."""
        want = self.config_version()

        def seen():
            rc, out, _ = self.hookctl("status", "--json")
            if not out.strip():
                return False
            st = json.loads(out)["stages"]
            live = sum(1 for d in self.daemons.values() if d.running() and
                       d.key.split(".")[0] in ("ingest", "router", "sender"))
            got = [i for s in ("ingest", "router", "sender") for i in st.get(s, [])
                   if i.get("stats", {}).get("config_version") == want]
            return len(got) >= live

        self.wait_for(seen, timeout, "running stages did not load configuration version %d "
                      "within %.1f s" % (want, timeout * SCALE))

    def publish(self, lines, expect=0):
        """publish sends events (dicts or raw strings, one per line) through `hookctl publish -`;
        asserts the exit status is expect (None: no check). Returns (status, stdout, stderr)."""
        text = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines)
        rc, out, err = self.hookctl("publish", "-", input=text)
        if expect is not None and rc != expect:
            self.fail("hookctl publish: exit %d (expected %d)\nstdout: %s\nstderr: %s"
                      % (rc, expect, out, err))
        return rc, out, err

    def deliveries(self, *args):
        """deliveries returns `hookctl deliveries --json` parsed (one object per line); args
        add filters (--webhook ID, --status S, ...). Without --limit it asks for all records."""
        if not any(a == "--limit" or str(a).startswith("--limit=") for a in args):
            args = args + ("--limit", "1000000")
        out, _ = self.check_hookctl("deliveries", "--json", *args)
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def delivery(self, invocation_id):
        out, _ = self.check_hookctl("delivery", invocation_id, "--json")
        return json.loads(out)

    # --- the receiver ---

    def received(self, path_prefix=None):
        """received returns every request the receiver logged (optionally those whose path
        starts with path_prefix), oldest first; a partly written last line is skipped."""
        out = []
        try:
            with open(self.receiver_log, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break
                    r = json.loads(line)
                    if path_prefix is None or r["path"].startswith(path_prefix):
                        out.append(r)
        except FileNotFoundError:
            pass
        return out

    def wait_received(self, match=None, count=1, timeout=10):
        """wait_received waits until at least count received requests satisfy match (a path
        prefix, a predicate on the record, or None for any) and returns those requests."""
        if match is None:
            pred = lambda r: True  # noqa: E731
        elif isinstance(match, str):
            pred = lambda r: r["path"].startswith(match)  # noqa: E731
        else:
            pred = match

        def got():
            rs = [r for r in self.received() if pred(r)]
            return rs if len(rs) >= count else None

        return self.wait_for(got, timeout, lambda: "wanted %d matching requests, have %d"
                             % (count, len([r for r in self.received() if pred(r)])))

    def wait_deliveries(self, predicate, timeout=10):
        """wait_deliveries waits until predicate(list of delivery records) is truthy; returns
        the list."""
        last = [[]]

        def ok():
            last[0] = self.deliveries()
            return last[0] if predicate(last[0]) else None

        return self.wait_for(ok, timeout, lambda: "deliveries never matched; last: %s"
                             % json.dumps(last[0])[:4000])

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))


class PipelineTestCase(unittest.TestCase):
    """PipelineTestCase gives each test self.pipeline(**kw) -> a started Pipeline, cleaned up
    after the test; when the test fails or errors the daemons' log tails are printed."""

    def pipeline(self, start=True, **kw):
        p = Pipeline(name=self.id().split(".")[-1], **kw)
        self._pipelines.append(p)
        return p.start() if start else p

    def run(self, result=None):
        self._pipelines = []
        before = len(result.failures) + len(result.errors) if result is not None else 0
        try:
            return super().run(result)
        finally:
            failed = result is not None and len(result.failures) + len(result.errors) > before
            for p in self._pipelines:
                if failed and not p.dumped:
                    sys.stderr.write("\n===== %s: logs =====\n" % self.id())
                    p.dump_logs()
                p.cleanup()
            self._pipelines = []
