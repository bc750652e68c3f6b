"""test_liveness.py - a hung peer does not hold its window: with 2 routers and 2 senders, one
router and one sender are SIGSTOPped (not killed); every event published meanwhile is delivered
while they stay stopped, because their peers time them out (--peer-timeout-ms) and hand what
they held to the others. After SIGCONT nothing is lost and the stopped ones rejoin. And a busy
peer (a sender whose requests take several timeouts) is never timed out."""

import json
import os
import signal
import time

from harness import SCALE, PipelineTestCase, config, created, transitioned, webhook

TIMEOUT_MS = 1000
ARGS = ["--peer-timeout-ms", str(TIMEOUT_MS)]


def stopped(pid):
    """stopped: the process is in state T (stopped by a signal)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


class TestLiveness(PipelineTestCase):
    def events(self, prefix, n):
        """events returns n events (half created, half won transitions) and the (event id,
        webhook) pairs they must reach: created -> wh_4; won transition -> wh_3 and wh_1."""
        evs, want = [], set()
        for i in range(n):
            eid = "%s-%d" % (prefix, i)
            if i % 2:
                evs.append(created(eid, "opp_%d" % i))
                want.add((eid, "wh_4"))
            else:
                evs.append(transitioned(eid, "opp_%d" % i))
                want |= {(eid, "wh_3"), (eid + ".won", "wh_1")}
        return evs, want

    def got(self, p):
        """got returns the (event id, webhook) pairs the receiver answered 2xx."""
        out = set()
        for r in p.received("/ok/"):
            body = json.loads(r["body"])
            out.add((body["id"], body["webhook"]["id"]))
        return out

    def mesh(self, p):
        """mesh returns each instance's peer counts from hookctl status: ingest's routers,
        the routers' and the scheduler's senders."""
        rc, out, _ = p.hookctl("status", "--json")
        if rc != 0:
            return None
        st = json.loads(out)["stages"]
        m = {"ingest": st["ingest"][0]["stats"]["routers"],
             "scheduler": st["scheduler"][0]["stats"]["senders"]}
        for r in st["router"]:
            m["router." + r["instance"]] = r["stats"]["senders"]
        return m

    def wait_mesh(self, p, timeout=20):
        want = {"ingest": 2, "scheduler": 2, "router.0": 2, "router.1": 2}
        return p.wait_for(lambda: self.mesh(p) == want, timeout,
                          lambda: "peers never all connected: %r" % (self.mesh(p),))

    def test_stopped_router_and_sender_do_not_hold_work(self):
        p = self.pipeline(routers=2, senders=2, ingest_args=ARGS, router_args=ARGS,
                          sender_args=ARGS, scheduler_args=ARGS)
        self.wait_mesh(p)
        r1, s1 = p.daemons["router.1"].proc.pid, p.daemons["sender.1"].proc.pid
        p.kill("router", "1", signal.SIGSTOP, wait=False)
        p.kill("sender", "1", signal.SIGSTOP, wait=False)
        p.wait_for(lambda: stopped(r1) and stopped(s1), 5, "SIGSTOP did not stop them")

        evs, want = self.events("live", 200)
        t0 = time.monotonic()
        p.publish(evs)
        # Windows handed to the stopped ones come back after the timeout; the whole batch must
        # be through in a few timeouts, never waiting for SIGCONT.
        limit = 15
        p.wait_for(lambda: want <= self.got(p), limit,
                   lambda: "with router.1 and sender.1 stopped, %d of %d invocations arrived "
                   "within %.0f s" % (len(want & self.got(p)), len(want), limit * SCALE))
        took = time.monotonic() - t0
        self.assertTrue(stopped(r1) and stopped(s1), "they stayed stopped throughout")
        print("\n  liveness: %d invocations delivered in %.2f s with router.1 and sender.1 "
              "SIGSTOPped (--peer-timeout-ms %d)" % (len(want), took, TIMEOUT_MS))

        # Their peers said why they dropped them, naming them.
        def logged(key, peer):
            with open(os.path.join(p.logs, key + ".log"), errors="replace") as f:
                return any("%s: closing: peer (pid " % peer in l and "sent nothing" in l and
                           "--peer-timeout-ms %d" % TIMEOUT_MS in l for l in f)
        # Each peer times the stopped ones out on its own clock: the batch may be through (all
        # on router.0 and sender.0) before one of them has gone a whole timeout without a word
        # from a stopped peer, so each line gets a few timeouts to appear.
        for key, peer in (("ingest", "router.1"), ("router.0", "sender.1"),
                          ("scheduler", "sender.1"), ("sender.0", "router.1")):
            p.wait_for(lambda: logged(key, peer), 5 * TIMEOUT_MS / 1000.0,
                       lambda: "%s never logged timing out %s" % (key, peer))
        # A healthy peer is never timed out, even with a batch running through it.
        for key in ("ingest", "router.0", "sender.0", "scheduler"):
            for peer in ("router.0", "sender.0", "ingest", "scheduler"):
                if peer != key:
                    self.assertFalse(logged(key, peer), "%s timed out %s" % (key, peer))

        # SIGCONT: they rejoin, and take work again; nothing is lost.
        for stage in ("router", "sender"):
            p.kill(stage, "1", signal.SIGCONT, wait=False)
            p.daemons[stage + ".1"].expected_dead = False  # stop() checks they exit 0
        self.wait_mesh(p)
        evs2, want2 = self.events("after", 100)
        p.publish(evs2)
        p.wait_for(lambda: (want | want2) <= self.got(p), 20,
                   lambda: "after SIGCONT, %d of %d invocations arrived"
                   % (len((want | want2) & self.got(p)), len(want | want2)))
        inv_ok = lambda recs: (len(recs) == len(want | want2) and  # noqa: E731
                               all(r["status"] == "succeeded" for r in recs))
        p.wait_deliveries(inv_ok, 20)
        p.stop()


    def test_busy_sender_is_not_timed_out(self):
        """Requests of 2.5 s (over twice the timeout) fill the sender; its loop still runs, so
        nobody drops it: each invocation is requested exactly once, and no log names a
        timeout."""
        cfg = lambda port: config(port, webhooks=[  # noqa: E731
            webhook("wh_slow", "http://127.0.0.1:%d/slow/2500/x" % port,
                    ["opportunity.created"])])
        p = self.pipeline(cfg=cfg, ingest_args=ARGS, router_args=ARGS, scheduler_args=ARGS,
                          sender_args=ARGS + ["--max-per-endpoint", "8"])
        n = 16  # two rounds of 8 at once: about 5 s, five timeouts
        p.publish([created("busy-%d" % i, "opp_%d" % i) for i in range(n)])
        p.wait_received("/slow/", count=n, timeout=30)
        p.wait_deliveries(lambda recs: len(recs) == n and
                          all(r["status"] == "succeeded" for r in recs), 20)
        ids = [r["h"]["webhook-id"] for r in p.received("/slow/")]
        self.assertEqual(len(ids), len(set(ids)), "an invocation was requested twice")
        self.assertEqual(len(ids), n)
        for name in os.listdir(p.logs):
            with open(os.path.join(p.logs, name), errors="replace") as f:
                bad = [l for l in f if "sent nothing" in l or "ran" in l and "ms late" in l]
            self.assertEqual(bad, [], name)
        p.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
