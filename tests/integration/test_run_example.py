"""test_run_example.py - issue 9, `make run` keeps your data: scripts/run-example.sh (what `make
run` runs) under a real s6-svscan on a temporary data dir. The example configuration is
imported only into a data dir without one, stage flags and instance counts pass through, and a
second start with fewer instances stops the extra ones."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import BIN, REPO, SCALE, child_env

SCRIPT = os.path.join(REPO, "scripts", "run-example.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid) as f:
        return f.read().split("\0")


class TestRunExample(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="run-example-test-")
        self.data = os.path.join(self.tmp, "var")
        self.env = child_env({"DATA": self.data, "BIN": BIN,
                              "RECEIVER_PORT": str(free_port()), "API_LISTEN": "127.0.0.1:0"})
        self.env.pop("HOOKLINE_DATA", None)
        self.addCleanup(self.cleanup)

    def cleanup(self):
        subprocess.run([SCRIPT, "stop"], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.tmp, True)

    def script(self, *args, **env):
        e = dict(self.env, **env)
        r = subprocess.run([SCRIPT] + list(args), env=e, capture_output=True, text=True,
                           timeout=120 * SCALE)
        self.assertEqual(r.returncode, 0, "run-example.sh %s: %s%s" % (args, r.stdout, r.stderr))
        return r.stdout + r.stderr

    def hookctl(self, *args):
        r = subprocess.run([os.path.join(BIN, "hookctl"), "--data-dir", self.data] + list(args),
                           env=self.env, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def instances(self, stage):
        """instances returns {instance name: command line} of the live instances of stage."""
        deadline = time.monotonic() + 20 * SCALE
        while True:
            rc, out, err = self.hookctl("status", "--json")
            if rc == 0:
                try:
                    return {i["instance"]: cmdline(i["pid"])
                            for i in json.loads(out)["stages"][stage] if i["state"] == "running"}
                except FileNotFoundError:
                    pass  # it exited since: ask again
            self.assertLess(time.monotonic(), deadline, "status never 0: %s" % err)
            time.sleep(0.2)

    def wait_instances(self, stage, n):
        deadline = time.monotonic() + 30 * SCALE
        while True:
            got = self.instances(stage)
            if len(got) == n:
                return got
            self.assertLess(time.monotonic(), deadline, "%s instances: %s" % (stage, got))
            time.sleep(0.2)

    def test_keeps_data_passes_flags_scales_down(self):
        out = self.script("start", ROUTERS="2", SENDERS="2",
                          HOOKLINE_SCHEDULER_ARGS="--retry-base-ms 2000")
        self.assertIn("imported examples/config.json", out)
        # make run starts hook-api too and prints a console link with a working admin token
        m = re.search(r"the web console: +(http://127\.0\.0\.1:\d+)/#project=prj_1&token=(hlt_\S+)",
                      out)
        self.assertTrue(m, out)
        req = urllib.request.Request(m.group(1) + "/v1/projects/prj_1/portal", method="POST",
                                     headers={"Authorization": "Bearer " + m.group(2)})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 201)
        self.assertEqual(sorted(self.wait_instances("router", 2)), ["0", "1"])
        self.assertEqual(sorted(self.wait_instances("sender", 2)), ["0", "1"])
        sched = list(self.instances("scheduler").values())[0]
        self.assertIn("--retry-base-ms", sched)
        self.assertEqual(sched[sched.index("--retry-base-ms") + 1], "2000")
        rc, out, err = self.hookctl("webhook", "add", "--project", "prj_1", "--id", "wh_mine",
                                    "--url", "https://example.com/mine", "--event",
                                    "opportunity.won")
        self.assertEqual(rc, 0, err)
        self.script("stop")
        out = self.script("start", ROUTERS="1", SENDERS="1")
        self.assertIn("already holds a configuration: kept", out)
        self.assertNotIn("imported examples/config.json", out)
        rc, out, err = self.hookctl("webhook", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("wh_mine", out)
        self.assertEqual(sorted(self.wait_instances("router", 1)), ["0"])
        self.assertEqual(sorted(self.wait_instances("sender", 1)), ["0"])
        sched = list(self.instances("scheduler").values())[0]
        self.assertNotIn("--retry-base-ms", sched)
        # while running: fewer senders, new flags
        out = self.script("start", ROUTERS="1", SENDERS="1",
                          HOOKLINE_ROUTER_ARGS="--window 64")
        self.assertIn("rescanned", out)
        deadline = time.monotonic() + 30 * SCALE
        while "--window" not in list(self.wait_instances("router", 1).values())[0]:
            self.assertLess(time.monotonic(), deadline, "the router never took its new flag")
            time.sleep(0.2)
        self.script("stop")


if __name__ == "__main__":
    unittest.main()
