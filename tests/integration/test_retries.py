"""test_retries.py - failing endpoints: exactly 6 attempts with growing gaps then failed; an
endpoint that recovers ends succeeded; a slow endpoint does not hold back a healthy one."""

import json

from harness import PipelineTestCase, config, created, webhook


def cfg_with(port, *hooks):
    return config(port, webhooks=list(hooks))


class TestRetries(PipelineTestCase):
    def test_always_failing_gets_six_attempts_then_failed(self):
        p = self.pipeline(cfg=lambda port: cfg_with(port, webhook(
            "wh_f", "http://127.0.0.1:%d/fail/x" % port, ["opportunity.created"])))
        p.publish([created("evt_f")])
        recs = p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "failed", timeout=30)
        reqs = p.received("/fail/")
        self.assertEqual(len(reqs), 6)
        self.assertEqual([r["h"]["x-webhook-attempt"] for r in reqs],
                         ["1", "2", "3", "4", "5", "6"])
        self.assertEqual(len({r["h"]["webhook-id"] for r in reqs}), 1)
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
        # Schedule 100, 200, 400, 800, 1600 ms (no jitter): each gap at least its delay and
        # growing.
        for gap, want in zip(gaps, [0.1, 0.2, 0.4, 0.8, 1.6]):
            self.assertGreaterEqual(gap, want * 0.95)
        for a, b in zip(gaps, gaps[1:]):
            self.assertGreater(b, a)
        d = recs[0]
        self.assertEqual(d["attempts"], 6)
        self.assertEqual(d["error"], "HTTP status 500")
        self.assertEqual(d["response"]["status"], 500)
        self.assertIsNone(d["next_attempt_at"])
        # Nothing more is sent.
        p.wait_for(lambda: True, 0.1)
        self.assertEqual(len(p.received("/fail/")), 6)
        p.stop()

    def test_flaky_recovers_on_third_attempt(self):
        p = self.pipeline(cfg=lambda port: cfg_with(port, webhook(
            "wh_fl", "http://127.0.0.1:%d/flaky/2/x" % port, ["opportunity.created"])))
        p.publish([created("evt_fl")])
        recs = p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "succeeded", timeout=20)
        self.assertEqual(recs[0]["attempts"], 3)
        self.assertEqual(recs[0]["response"]["status"], 200)
        self.assertIsNone(recs[0]["error"])
        self.assertEqual([r["status"] for r in p.received("/flaky/")], [500, 500, 200])
        p.stop()

    def test_retrying_shows_next_attempt(self):
        p = self.pipeline(retry_base_ms=60000, cfg=lambda port: cfg_with(port, webhook(
            "wh_r", "http://127.0.0.1:%d/fail/r" % port, ["opportunity.created"])))
        p.publish([created("evt_r")])
        recs = p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "retrying")
        self.assertEqual(recs[0]["attempts"], 1)
        self.assertIsNotNone(recs[0]["next_attempt_at"])
        p.stop()

    def test_slow_endpoint_does_not_hold_back_others(self):
        # The hanging endpoint's requests outlive the test (60 s timeout), so whatever reaches the
        # healthy one does so while the hanging one holds its 2 slots and queues the rest.
        # --defer-after-ms 0: this test is about the engine's per-endpoint slots alone.
        p = self.pipeline(sender_args=["--max-per-endpoint", "2", "--timeout-ms", "60000",
                                       "--grace-ms", "500", "--defer-after-ms", "0"],
                          cfg=lambda port: cfg_with(
                              port,
                              webhook("wh_hang", "http://127.0.0.1:%d/hang/x" % port,
                                      ["opportunity.created"]),
                              webhook("wh_ok", "http://127.0.0.1:%d/ok/y" % port,
                                      ["opportunity.created"])))
        p.publish([created("evt_s%d" % i) for i in range(10)])
        p.wait_received("/ok/y", count=10, timeout=10)

        def held():
            rc, out, _ = p.hookctl("status", "--json")
            st = json.loads(out)["stages"]["sender"][0]["stats"] if out.strip() else {}
            return st.get("http_in_flight") == 2 and st.get("http_queued") == 8 and st
        st = p.wait_for(held, 5, "the hanging endpoint should hold 2 slots with 8 queued")
        self.assertEqual(st["succeeded"], 10)
        self.assertEqual(st["failed_attempts"], 0)  # nothing timed out: all 10 got through
        hung = p.received("/hang/")  # the receiver logs a hanging request as it arrives
        self.assertEqual(len(hung), 2)
        self.assertEqual([r["status"] for r in hung], [None, None])  # never answered
        p.stop()

    def test_dead_endpoint_does_not_stall_the_pipeline(self):
        """With small windows everywhere, jobs queued behind a hanging endpoint would hold their
        events unacknowledged and stop ingest feeding anything; the sender hands them to the
        scheduler instead (not counted as attempts), so the healthy webhook gets every event."""
        p = self.pipeline(ingest_args=["--window", "4"], router_args=["--window", "4"],
                          sender_args=["--max-per-endpoint", "1", "--timeout-ms", "60000",
                                       "--defer-after-ms", "300", "--grace-ms", "500"],
                          scheduler_args=["--window", "4"],
                          cfg=lambda port: cfg_with(
                              port,
                              webhook("wh_hang", "http://127.0.0.1:%d/hang/x" % port,
                                      ["opportunity.created"]),
                              webhook("wh_ok", "http://127.0.0.1:%d/ok/y" % port,
                                      ["opportunity.created"])))
        p.publish([created("evt_d%d" % i) for i in range(40)])
        reqs = p.wait_received("/ok/y", count=40, timeout=20)
        self.assertEqual(sorted({json.loads(r["body"])["id"] for r in reqs}),
                         sorted("evt_d%d" % i for i in range(40)))
        st = json.loads(p.check_hookctl("status", "--json")[0])["stages"]
        self.assertGreater(st["sender"][0]["stats"]["deferred"], 0)
        self.assertEqual(st["sender"][0]["stats"]["failed_attempts"], 0)
        hang = [d for d in p.deliveries("--webhook", "wh_hang")]
        self.assertEqual(len(hang), 40)
        for d in hang:  # waiting, not failed: a deferral is not an attempt
            self.assertIn(d["status"], ("pending", "retrying"))
            self.assertLessEqual(d["attempts"], 1)
        p.stop()

    def test_a_slow_attempt_shows_pending(self):
        """A first attempt still running after 100 ms shows in the delivery log as pending; one
        that ends sooner is written once, with its outcome."""
        p = self.pipeline(cfg=lambda port: cfg_with(
            port,
            webhook("wh_slow", "http://127.0.0.1:%d/slow/1500/x" % port, ["opportunity.created"]),
            webhook("wh_fast", "http://127.0.0.1:%d/ok/y" % port, ["opportunity.created"])))
        p.publish([created("evt_p")])
        recs = p.wait_deliveries(lambda ds: any(d["webhook_id"] == "wh_slow" and
                                                d["status"] == "pending" for d in ds))
        slow = [d for d in recs if d["webhook_id"] == "wh_slow"][0]
        self.assertEqual(slow["attempts"], 0)
        self.assertIsNone(slow["request"])
        recs = p.wait_deliveries(lambda ds: len(ds) == 2 and
                                 all(d["status"] == "succeeded" for d in ds), timeout=10)
        self.assertEqual(sorted(d["attempts"] for d in recs), [1, 1])
        p.stop()

    def test_redirect_is_not_followed(self):
        p = self.pipeline(max_attempts=1, cfg=lambda port: cfg_with(port, webhook(
            "wh_rd", "http://127.0.0.1:%d/redirect/x" % port, ["opportunity.created"])))
        p.publish([created("evt_rd")])
        recs = p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "failed")
        self.assertEqual(recs[0]["response"]["status"], 302)
        self.assertEqual(len(p.received()), 1)  # the Location (port 9) was never asked
        p.stop()

    def test_calm_run_sends_no_duplicates(self):
        # No stage dies: every attempt of every invocation reaches the receiver exactly once,
        # with 2 routers and 2 senders sharing the work (the contract: a calm run sends none).
        p = self.pipeline(routers=2, senders=2, cfg=lambda port: cfg_with(
            port, webhook("wh_ok", "http://127.0.0.1:%d/ok/x" % port, ["opportunity.created"]),
            webhook("wh_fl", "http://127.0.0.1:%d/flaky/2/x" % port, ["opportunity.created"])))
        n = 300
        p.publish([created("evt_calm%03d" % i) for i in range(n)])
        p.wait_deliveries(lambda ds: len(ds) == 2 * n and
                          all(d["status"] == "succeeded" for d in ds), timeout=60)
        seen = {}
        for r in p.received():
            k = (r["h"]["webhook-id"], r["h"]["x-webhook-attempt"])
            seen[k] = seen.get(k, 0) + 1
        dups = {k: v for k, v in seen.items() if v > 1}
        self.assertEqual(dups, {}, "attempts sent more than once in a calm run")
        self.assertEqual(len(seen), n + 3 * n)  # ok: 1 attempt each; flaky: 3 each
        p.stop()
