"""apiclient.py - hook-api for integration tests: start the real bin/hook-api on a pipeline's data
dir (any free port, read back from run/api.INSTANCE.addr), make tokens with `hookctl token
create`, and speak real HTTP (http.client) to it.

    api = start_api(p)                      # p: a started harness.Pipeline
    tok = api.token("admin")                # admin token; token("t", project="prj_1")
    st, body = api.call("GET", "/v1/projects/prj_1/deliveries", token=tok)
"""

import http.client
import json
import os
import signal
import subprocess
import time

from harness import BIN, SCALE, _die_with_parent


class Api:
    def __init__(self, p, proc, host, port, log_path):
        self.p = p
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log_path

    def token(self, name, project=None):
        args = ["token", "create", "--name", name]
        if project:
            args += ["--project", project]
        out, _ = self.p.check_hookctl(*args)
        tok = [w for w in out.split() if w.startswith("hlt_")]
        if not tok:
            self.p.fail("hookctl token create printed no token: %r" % out)
        return tok[0]

    def call(self, method, path, body=None, token=None, raw=None, timeout=30):
        """call returns (status, parsed JSON body or None, raw body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout * SCALE)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.request(method, path, body=data, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (413) and closed before the whole body went: read the answer
            resp = conn.getresponse()
            got = resp.read()
        finally:
            conn.close()
        parsed = None
        if got:
            try:
                parsed = json.loads(got)
            except ValueError:
                parsed = None
        return resp.status, parsed, got

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(15 * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.p.fail("hook-api did not exit within 15 s of SIGTERM")
            if rc != 0:
                self.p.fail("hook-api exited %d after SIGTERM" % rc)


def start_api(p, instance="0", args=()):
    """start_api runs bin/hook-api on p's data dir and waits until /healthz answers 200."""
    log_path = os.path.join(p.logs, "api.%s.log" % instance)
    addr_path = os.path.join(p.data, "run", "api.%s.addr" % instance)
    try:
        os.unlink(addr_path)
    except FileNotFoundError:
        pass
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [os.path.join(BIN, "hook-api"), "--data-dir", p.data, "--instance", instance,
         "--listen", "127.0.0.1:0"] + list(args),
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, env=p.env,
        preexec_fn=_die_with_parent)
    log.close()
    p._api_procs = getattr(p, "_api_procs", []) + [proc]  # killed by kill_apis at cleanup
    end = time.monotonic() + 15 * SCALE
    addr = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            p.fail("hook-api exited %s at start" % proc.returncode)
        try:
            with open(addr_path) as f:
                addr = f.read().strip()
        except FileNotFoundError:
            addr = None
        if addr and addr.endswith("\n") is False and ":" in addr:
            hostport = addr.split("://", 1)[-1].rstrip("/")
            host, port = hostport.rsplit(":", 1)
            api = Api(p, proc, host.strip("[]"), int(port), log_path)
            try:
                st, _, _ = api.call("GET", "/healthz", timeout=2)
                if st == 200:
                    return api
            except OSError:
                pass
        time.sleep(0.02)
    p.fail("hook-api did not answer /healthz within 15 s (addr %r)" % addr)


def kill_apis(p):
    """kill_apis kills whatever hook-api start_api began on p and still runs (no assertions)."""
    for proc in getattr(p, "_api_procs", []):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
