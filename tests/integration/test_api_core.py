"""test_api_core.py - hook-api's core as a client sees it: bearer tokens (401/403, revoke while
it runs), routing (404/405), the 1 MiB body limit (413), the total per-request deadline against a
slow client, --max-connections, /healthz, SIGTERM drain, portal links, and hookctl token's
output and exit codes. No token may appear in any daemon log."""

import calendar
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCALE, PipelineTestCase, config  # noqa: E402

TOKEN_RE = re.compile(r"^hlt_[A-Za-z0-9_-]{43}$")


class ApiCoreTest(PipelineTestCase):

    def api_pipeline(self, api_args=()):
        """A data dir with the test configuration (project prj_1) and one hook-api; no stages."""
        p = self.pipeline(start=False, api_args=list(api_args))
        p.import_config(config(9))
        p.start_api()
        return p

    def port(self, p):
        return int(p.api_urls["0"].rsplit(":", 1)[1])

    def assert_no_tokens_logged(self, p, tokens):
        for name in os.listdir(p.logs):
            with open(os.path.join(p.logs, name), errors="replace") as f:
                text = f.read()
            for t in tokens:
                self.assertNotIn(t, text, "a token appears in %s" % name)
            self.assertNotIn("hlt_", text, "something token-like appears in %s" % name)
            self.assertNotIn("Bearer", text, "an Authorization header appears in %s" % name)

    def assert_error(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json", r)
        body = r.json()
        self.assertIsInstance(body.get("error"), str, r)
        self.assertTrue(body["error"], r)
        return body["error"]

    # --- tokens and auth ---

    def test_auth(self):
        p = self.api_pipeline(["--portal-ttl", "120", "--public-url", "https://hooks.example/"])
        admin = p.token("admin")
        prj = p.token("acme", project="prj_1")
        other = p.token("other", project="prj_2")
        for t in (admin, prj, other):
            self.assertRegex(t, TOKEN_RE)

        r = p.api("GET", "/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertEqual(r.headers["content-type"], "application/json")

        # 401: missing, not Bearer, unknown (well-formed and not), with the challenge header
        for hdr in ({}, {"Authorization": "Basic YWRtaW46eA=="},
                    {"Authorization": "Bearer hlt_" + "A" * 43},
                    {"Authorization": "Bearer nonsense"}):
            r = p.api("GET", "/v1/projects", headers=hdr)
            self.assert_error(r, 401)
            self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        r = p.api("POST", "/v1/projects/prj_1/portal", headers={})
        self.assertIn("missing", self.assert_error(r, 401))

        # 403: a project token on another project, and on admin routes
        msg = self.assert_error(p.api("POST", "/v1/projects/prj_1/portal", token=other), 403)
        self.assertIn("prj_2", msg)
        self.assert_error(p.api("GET", "/v1/projects/prj_1", token=other), 403)
        self.assert_error(p.api("PUT", "/v1/projects/prj_1", token=prj, body={"name": "x"}), 403)
        self.assert_error(p.api("DELETE", "/v1/projects/prj_1", token=prj), 403)
        self.assert_error(p.api("PUT", "/v1/projects/prj_9", token=prj, body={"name": "x"}), 403)

        # portal links: the admin token and the project's own token may make them
        before = time.time()
        r = p.api("POST", "/v1/projects/prj_1/portal", token=admin)
        self.assertEqual(r.status, 201, r)
        link = r.json()
        m = re.match(r"^https://hooks\.example/#project=prj_1&token=(hlt_[A-Za-z0-9_-]{43})$",
                     link["url"])
        self.assertTrue(m, link)
        portal = m.group(1)
        exp = calendar.timegm(time.strptime(link["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        self.assertTrue(before + 120 - 2 <= exp <= time.time() + 120 + 1, link)
        r = p.api("POST", "/v1/projects/prj_1/portal", token=prj)
        self.assertEqual(r.status, 201, r)
        # URL-decoded path parameters: prj%5F1 is prj_1
        r = p.api("POST", "/v1/projects/prj%5F1/portal", token=prj)
        self.assertEqual(r.status, 201, r)
        self.assertIn("#project=prj_1&", r.json()["url"])
        self.assert_error(p.api("POST", "/v1/projects/nope/portal", token=admin), 404)

        # a portal token reaches its project alone, and makes no further links
        self.assertIn("portal", self.assert_error(
            p.api("POST", "/v1/projects/prj_1/portal", token=portal), 403))
        self.assert_error(p.api("GET", "/v1/projects/prj_2/webhooks", token=portal), 403)
        self.assert_error(p.api("DELETE", "/v1/projects/prj_1", token=portal), 403)
        r = p.api("GET", "/v1/projects/prj_1/webhooks", token=portal)
        self.assertNotIn(r.status, (401, 403), r)

        # revoke while hook-api runs: the very next request is refused
        self.assertEqual(p.api("POST", "/v1/projects/prj_1/portal", token=prj).status, 201)
        p.check_hookctl("token", "revoke", "acme")
        self.assertIn("revoked", self.assert_error(
            p.api("POST", "/v1/projects/prj_1/portal", token=prj), 401))
        # the portal link's own token lives on; revoking it by name ends it too
        _, out, _ = p.hookctl("token", "list", "--json")
        portals = [json.loads(l)["name"] for l in out.splitlines()
                   if json.loads(l)["kind"] == "portal"]
        self.assertEqual(len(portals), 4, out)
        for n in portals:
            p.check_hookctl("token", "revoke", n)
        self.assert_error(p.api("GET", "/v1/projects/prj_1/webhooks", token=portal), 401)

        p.stop()
        self.assert_no_tokens_logged(p, [admin, prj, other, portal])

    def test_hookctl_token(self):
        p = self.pipeline(start=False)
        rc, out, err = p.hookctl("token", "create", "--name", "ops")
        self.assertEqual(rc, 0, err)
        tok = out.strip()
        self.assertRegex(tok, TOKEN_RE)
        self.assertEqual(out, tok + "\n")
        rc, out, err = p.hookctl("token", "create", "--name", "ops", "--project", "prj_1")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("'ops' exists", err)
        rc, _, err = p.hookctl("token", "create", "--name", "bad name")
        self.assertEqual(rc, 2, err)
        self.assertIn("--name", err)
        rc, _, err = p.hookctl("token", "create")
        self.assertEqual(rc, 2, err)
        rc, out, err = p.hookctl("token", "create", "--name", "acme-ci", "--project", "prj_1")
        self.assertEqual(rc, 0, err)
        tok2 = out.strip()
        self.assertNotEqual(tok, tok2)

        rc, out, err = p.hookctl("token", "list")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "PROJECT", "KIND", "STATE", "CREATED",
                                            "EXPIRES"])
        self.assertEqual([l.split()[:4] for l in lines[1:]],
                         [["acme-ci", "prj_1", "api", "active"], ["ops", "(admin)", "api",
                                                                   "active"]])
        self.assertNotIn("hlt_", out)
        rc, out, err = p.hookctl("token", "list", "--json")
        self.assertEqual(rc, 0, err)
        rows = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([(r["name"], r["project"], r["kind"], r["state"]) for r in rows],
                         [("acme-ci", "prj_1", "api", "active"), ("ops", None, "api", "active")])
        self.assertTrue(all(re.match(r"^\d{4}-\d\d-\d\dT", r["created_at"]) for r in rows))
        self.assertNotIn("hlt_", out)

        self.assertEqual(p.hookctl("token", "revoke", "nobody")[0], 1)
        rc, _, err = p.hookctl("token", "revoke", "ops")
        self.assertEqual(rc, 0, err)
        rows = [json.loads(l) for l in p.check_hookctl("token", "list", "--json")[0].splitlines()]
        self.assertEqual([(r["name"], r["state"], r["revoked_at"] is not None) for r in rows],
                         [("acme-ci", "active", False), ("ops", "revoked", True)])
        self.assertEqual(p.hookctl("token", "revoke")[0], 2)
        self.assertEqual(p.hookctl("token", "frobnicate")[0], 2)

        # the store holds the SHA-256 of each token and never its text
        db = sqlite3.connect(os.path.join(p.data, "hookline.db"))
        try:
            stored = db.execute("SELECT name, hash FROM tokens ORDER BY name").fetchall()
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        self.assertEqual(stored, [("acme-ci", hashlib.sha256(tok2.encode()).digest()),
                                  ("ops", hashlib.sha256(tok.encode()).digest())])
        for t in (tok, tok2):
            self.assertNotIn(t, dump)
            self.assertNotIn(t[4:], dump)

    # --- routing and bodies ---

    def test_routing(self):
        p = self.api_pipeline()
        admin = p.token("admin")
        # (a single segment like /nope belongs to the console's route "/{}")
        self.assertIn("/v1/nope", self.assert_error(p.api("GET", "/v1/nope"), 404))
        self.assert_error(p.api("GET", "/nope/deeper"), 404)
        self.assert_error(p.api("GET", "/v1/projects/prj_1/nothing/here", token=admin), 404)
        self.assert_error(p.api("GET", "/v1/projects/", token=admin), 404)
        r = p.api("POST", "/healthz")
        self.assert_error(r, 405)
        self.assertEqual(r.headers.get("allow"), "GET")
        r = p.api("DELETE", "/v1/projects/prj_1/portal", token=admin)
        self.assert_error(r, 405)
        self.assertEqual(r.headers.get("allow"), "POST")
        r = p.api("PATCH", "/v1/projects/prj_1", token=admin)
        self.assert_error(r, 405)
        self.assertEqual(sorted(r.headers.get("allow").split(", ")), ["DELETE", "GET", "PUT"])
        self.assert_error(p.api("POST", "/v1/projects/a%zz/portal", token=admin), 400)
        p.stop()
        self.assert_no_tokens_logged(p, [admin])

    def test_body_limit(self):
        p = self.api_pipeline()
        admin = p.token("admin")
        port = self.port(p)
        # a declared 2 MiB body is refused at once, before any of it is sent
        s = socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE)
        s.sendall(("POST /v1/projects/prj_1/events HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (admin, 2 << 20)).encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 413 "), got)
        # a chunked 2 MiB body (no length given) is refused once it passes 1 MiB
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SCALE)
        c.putrequest("POST", "/v1/projects/prj_1/portal")
        c.putheader("Authorization", "Bearer " + admin)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        piece = b"x" * 65536
        for _ in range(32):
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        self.assertEqual(r.status, 413, body)
        self.assertIn("1048576", body["error"])
        # just under the limit is not refused for its size
        r = p.api("POST", "/v1/projects/prj_1/portal", token=admin, body=b" " * ((1 << 20) - 1))
        self.assertEqual(r.status, 201, r)
        # a 2 MiB body through an ordinary client, and the server goes on answering
        try:
            r = p.api("POST", "/v1/projects/prj_1/events", token=admin, body=b"{" * (2 << 20))
            self.assert_error(r, 413)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the client was still sending
        r = p.api("GET", "/healthz")
        self.assertEqual(r.status, 200)
        p.stop()
        self.assert_no_tokens_logged(p, [admin])

    # --- connections ---

    def test_slow_client_deadline(self):
        p = self.api_pipeline(["--request-timeout-ms", "1500"])
        port = self.port(p)
        s = socket.create_connection(("127.0.0.1", port))
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        def trickle():
            # one header line every 100 ms: never idle, never finished
            try:
                for i in range(100):
                    time.sleep(0.1)
                    s.sendall(b"X-Trickle-%d: 1\r\n" % i)
            except OSError:
                pass

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        # other requests go on while the slow one trickles
        for _ in range(5):
            t0 = time.monotonic()
            r = p.api("GET", "/healthz", timeout=2)
            self.assertEqual(r.status, 200)
            self.assertLess(time.monotonic() - t0, 0.5 * SCALE)
        # and the slow one is cut near its deadline, not at MHD's idle timeout
        s.settimeout(6 * SCALE)
        cut = None
        try:
            while True:
                if not s.recv(4096):
                    break
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            self.fail("the slow connection was not cut within 6 s")
        cut = time.monotonic() - start
        s.close()
        th.join(10)
        self.assertGreaterEqual(cut, 1.4, cut)
        self.assertLess(cut, 1.5 + 1.5 * SCALE, cut)
        p.stop()

    def test_max_connections(self):
        p = self.api_pipeline(["--max-connections", "2", "--request-timeout-ms", "20000"])
        port = self.port(p)
        held = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            held.append(s)
        # both are taken: a third request is not served while they are open
        with self.assertRaises((socket.timeout, TimeoutError, ConnectionError)):
            p.api("GET", "/healthz", timeout=0.7)
        held.pop().close()
        t0 = time.monotonic()
        r = p.api("GET", "/healthz", timeout=3)
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 1.0 * SCALE)
        for s in held:
            s.close()
        p.stop()

    def test_sigterm_drain(self):
        p = self.api_pipeline()
        admin = p.token("admin")
        port = self.port(p)
        body = b'{"note": "in flight"}'
        s = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
        s.sendall(("POST /v1/projects/prj_1/portal HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                   % (admin, len(body))).encode() + body[:5])
        # the request is in flight (headers in, body half sent) when SIGTERM comes
        p.wait_for(lambda: p.api("GET", "/healthz").status == 200)
        d = p.daemons["api.0"]
        d.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except (ConnectionRefusedError, ConnectionResetError):
                # refused once the listener is closed; reset when a probe was still in its
                # backlog at that moment (the kernel resets what nobody will accept)
                return True

        p.wait_for(refused, 5, "hook-api still accepts connections while draining")
        self.assertIsNone(d.proc.poll(), "hook-api exited with a request in flight")
        s.sendall(body[5:])
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got and got.rstrip().endswith(b"}"):
                break
        s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 201 "), got)
        self.assertEqual(d.proc.wait(10 * SCALE), 0)
        self.assertFalse(os.path.exists(os.path.join(p.data, "run", "api.0.addr")))
        p.stop()
        self.assert_no_tokens_logged(p, [admin])

    def test_options(self):
        p = self.pipeline(start=False)
        import subprocess
        from harness import BIN
        exe = os.path.join(BIN, "hook-api")
        r = subprocess.run([exe, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^hookline \d+\.\d+\.\d+\n$")
        r = subprocess.run([exe, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        for flag in ("--listen", "--max-connections", "--request-timeout-ms", "--portal-ttl",
                     "--public-url"):
            self.assertIn(flag, r.stdout)
        r = subprocess.run([exe, "--data-dir", p.data, "--max-connections", "0"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--max-connections", r.stderr)
        r = subprocess.run([exe, "--data-dir", p.data, "--listen", "nocolon"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--listen", r.stderr)
        # a port taken: exit 1 naming it
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        r = subprocess.run([exe, "--data-dir", p.data, "--listen", "127.0.0.1:%d" % taken],
                           capture_output=True, text=True, timeout=10)
        busy.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("127.0.0.1:%d" % taken, r.stderr)
        self.assertIn("in use", r.stderr)


if __name__ == "__main__":
    unittest.main()
