"""test_clock.py - the wall clock stepped under a running scheduler (an LD_PRELOAD shim,
tests/clockshift, moves its CLOCK_REALTIME by what a file says): a step forward of 3 hours does
not fire the waiting retries early, a step back of 3 hours does not stall them; the retries keep
their backoff either way."""

import os
import time

from harness import BUILD, PipelineTestCase, config, created, webhook

SHIM = os.path.join(BUILD, "tests", "clockshift.so")


class TestClock(PipelineTestCase):
    def _stepped(self, step_ms):
        if not os.path.exists(SHIM):
            self.fail("%s is missing: make builds it" % SHIM)
        base = 1500
        p = self.pipeline(start=False, retry_base_ms=base, retry_factor=1, retry_jitter=0,
                          cfg=lambda port: config(port, webhooks=[webhook(
                              "wh_c", "http://127.0.0.1:%d/flaky/2/x" % port,
                              ["opportunity.created"])]))
        shift = os.path.join(p.tmp, "clockshift")
        with open(shift, "w") as f:
            f.write("0\n")
        env = p.env
        p.env = dict(env, LD_PRELOAD=SHIM, HOOKLINE_CLOCKSHIFT_FILE=shift,
                     ASAN_OPTIONS=env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        p.start()  # every stage on the shifted clock
        p.env = env
        ids = ["evt_clk%d" % i for i in range(5)]
        for n, i in enumerate(ids):  # staggered: their retries fall due one after another
            p.publish([created(i)])
            p.wait_received("/flaky/", count=n + 1)
            time.sleep(0.15)  # the spacing under test, not a synchronization
        first = p.received("/flaky/")
        with open(shift + ".new", "w") as f:
            f.write("%d\n" % step_ms)
        os.rename(shift + ".new", shift)  # the clock steps while the retries wait
        reqs = p.wait_received("/flaky/", count=3 * len(ids), timeout=30)
        ds = p.wait_deliveries(lambda ds: len(ds) == len(ids) and
                               all(d["status"] == "succeeded" for d in ds), timeout=30)
        t0 = min(r["t"] for r in first)
        by_inv = {}
        for r in reqs:
            by_inv.setdefault(r["h"]["webhook-id"], []).append(r["t"])
        gaps = []
        for inv, ts in by_inv.items():
            ts.sort()
            self.assertEqual(len(ts), 3, (inv, ts))
            gaps += [b - a for a, b in zip(ts, ts[1:])]
        # neither fired at once (forward step) nor stalled for hours (backward step)
        self.assertGreaterEqual(min(gaps), base / 1000.0 * 0.9, gaps)
        self.assertLess(max(gaps), base / 1000.0 * 4, gaps)
        self.assertLess(max(r["t"] for r in reqs) - t0, 20)
        self.assertEqual(len(ds), len(ids))
        p.stop()

    def test_clock_step_forward_does_not_fire_retries(self):
        self._stepped(3 * 3600 * 1000)

    def test_clock_step_back_does_not_stall_retries(self):
        self._stepped(-3 * 3600 * 1000)
