"""test_console.py - hook-api's web console: its files served from memory (real HTTP), and the
browser test (tests/browser/console_test.js) in Debian's headless chromium and in Firefox ESR
(WebDriver BiDi) against the real
daemons, hook-api and the recording receiver; afterwards the receiver must have got what the
customer set up in the form (the Bearer token typed, a signature made with the secret shown once).

Environment: HOOKLINE_CONSOLE_SHOTS=DIR writes the screenshots console-{list,form,details}.png
into DIR (docs/ to refresh the README's); otherwise they go into the test's temp dir.
"""

import json
import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import PipelineTestCase, config

NODE = shutil.which("node") or "/usr/bin/node"
BROWSER_DIR = os.path.join(harness.REPO, "tests", "browser")
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
FIREFOX = os.environ.get("FIREFOX") or "/usr/bin/firefox-esr"


def get(p, path, headers=None):
    """get: one GET to the pipeline's hook-api -> (status, lowercased headers, body bytes)."""
    r = p.api("GET", path, headers=headers)
    return r.status, r.headers, r.body


class TestConsoleFiles(PipelineTestCase):
    def test_served_from_memory(self):
        p = self.pipeline(start=False, cfg=False)
        p.start_api()
        st, h, body = get(p, "/")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertIn(b'<script src="/app.js" defer></script>', body)
        csp = h["content-security-policy"]
        for part in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                     "frame-ancestors 'none'"):
            self.assertIn(part, csp)
        self.assertEqual(h["x-content-type-options"], "nosniff")
        # every file the page names is served, with its type, and names nothing elsewhere
        refs = re.findall(rb'(?:src|href)="([^"#]+)"', body)
        self.assertEqual(sorted(refs), [b"/app.css", b"/app.js", b"/favicon.svg"])
        types = {"/app.js": "text/javascript; charset=utf-8",
                 "/app.css": "text/css; charset=utf-8", "/favicon.svg": "image/svg+xml"}
        for path, ctype in types.items():
            st, h, data = get(p, path)
            self.assertEqual((st, h["content-type"]), (200, ctype), path)
            with open(os.path.join(harness.REPO, "api", "console", path[1:]), "rb") as f:
                self.assertEqual(data, f.read(), "%s is the file in api/console" % path)
            far = re.search(rb"(?:src|href)\s*=\s*[\"']?(?:https?:)?//|url\(\s*[\"']?(?:https?:)?//"
                            rb"|@import|fetch\(\s*[\"'`](?:https?:)?//", data)
            self.assertIsNone(far, "%s names a URL elsewhere: %r" % (path, far and far.group(0)))
            st2, h2, data2 = get(p, path, {"If-None-Match": h["etag"]})
            self.assertEqual((st2, data2), (304, b""), "%s revalidates by ETag" % path)
            for inm, want in (('"0000", W/' + h["etag"], 304), ("*", 304), ('"0000"', 200)):
                self.assertEqual(get(p, path, {"If-None-Match": inm})[0], want, (path, inm))
        st, h, data = get(p, "/index.html")
        self.assertEqual(st, 200)
        st, h, data = get(p, "/nope.js")
        self.assertEqual(st, 404)
        self.assertIn("no such page: /nope.js", json.loads(data)["error"])
        p.stop()


class TestConsoleBrowser(PipelineTestCase):
    def test_customer_flow_in_chromium(self):
        self.customer_flow("chrome", CHROMIUM, shots=True)

    def test_customer_flow_in_firefox(self):
        self.customer_flow("firefox", FIREFOX, shots=False)

    def customer_flow(self, browser, exe, shots):
        for need in (NODE, exe, os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core")):
            self.assertTrue(os.path.exists(need), "%s is missing: run scripts/deps.sh" % need)
        def cfg(port):
            c = config(port, webhooks=[])
            c["projects"].append({"id": "prj_2", "name": "Beta", "opportunity_fields": [],
                                  "contact_fields": [], "funnels": [], "webhooks": []})
            return c

        p = self.pipeline(cfg=cfg, api=True)
        tok = p.token("console-test", "prj_1")
        admin = p.token("console-admin")
        self.assertTrue(tok.startswith("hlt_") and admin.startswith("hlt_"))
        shot_dir = os.environ.get("HOOKLINE_CONSOLE_SHOTS") or os.path.join(p.tmp, "shots")
        os.makedirs(shot_dir, exist_ok=True)
        env = dict(p.env, HOOKLINE_API=p.api_urls["0"], HOOKLINE_TOKEN=tok, HOOKLINE_PROJECT="prj_1",
                   HOOKLINE_RECEIVER=p.url("/ok/console"), BROWSER=browser, CHROMIUM=CHROMIUM,
                   FIREFOX=FIREFOX, SCREENSHOT_DIR=os.path.abspath(shot_dir) if shots else "",
                   PUPPETEER_SKIP_DOWNLOAD="1",
                   HOOKLINE_ADMIN_TOKEN=admin, HOOKLINE_OTHER_PROJECT="prj_2")
        run = subprocess.run([NODE, os.path.join(BROWSER_DIR, "console_test.js")], cwd=BROWSER_DIR,
                             env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=300 * harness.SCALE)
        with open(os.path.join(p.logs, "browser.log"), "w") as f:
            f.write(run.stdout + run.stderr)
        for line in run.stdout.splitlines():
            if line.startswith(("browser ", "console first load:")):
                print(("\n" if line.startswith("browser") else "") + line, flush=True)
        if run.returncode != 0:
            p.fail("console_test.js exited %d\n%s\n%s" % (run.returncode, run.stdout[-6000:],
                                                          run.stderr[-4000:]))
        result = json.loads([l for l in run.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])

        # what the receiver got: the token typed in the form, signed with the secret shown once,
        # the first send and the redelivery with the same webhook-id
        reqs = p.wait_received("/ok/console", count=2)
        self.assertEqual(len(reqs), result["attempts"])
        ids = {r["h"]["webhook-id"] for r in reqs}
        self.assertEqual(ids, {result["invocation_id"]})
        for r in reqs:
            self.assertEqual(r["h"]["authorization"], "Bearer " + result["bearer"])
            self.assertEqual(r["h"]["x-webhook-event"], "opportunity.created")
            self.assertIn(harness.signature(result["secret"], r["h"]["webhook-id"],
                                            r["h"]["webhook-timestamp"], r["body"]),
                          r["h"]["webhook-signature"].split(" "))
            body = json.loads(r["body"])
            self.assertEqual(body["data"]["opportunity"],
                             {"id": "opp_browser_1", "title": "Browser deal", "value": 1234.5,
                              "owner": None})
        self.assertEqual([r["h"]["x-webhook-attempt"] for r in reqs][:1], ["1"])
        # the failing endpoint: 6 attempts, then once more after "Recover failed since"
        fails = p.wait_received("/fail/console", count=7)
        self.assertEqual({r["h"]["x-webhook-event"] for r in fails}, {"opportunity.transitioned"})
        self.assertEqual(len({r["h"]["webhook-id"] for r in fails}), 1)
        for name in ("list", "form", "details") if shots else ():
            with open(os.path.join(shot_dir, "console-%s.png" % name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
        self.assertGreater(result["first_load_ms"], 0)
        self.assertTrue(result["admin_flow"], "the sign-in form and project picker were driven")
        # the credential never reached a log
        for n in os.listdir(p.logs):
            if n == "browser.log":  # the test's own output (RESULT names the token)
                continue
            with open(os.path.join(p.logs, n), errors="replace") as f:
                text = f.read()
            for secret in (result["bearer"], result["secret"], tok, admin):
                self.assertNotIn(secret, text, n)
        p.stop()


if __name__ == "__main__":
    unittest.main()
