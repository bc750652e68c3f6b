"""test_causal.py - issue 9, causal configuration (CONTRACT.md: "A change is in force when the
command returns"): once a hookctl command that changes the configuration has returned, every
event accepted afterwards is matched against that configuration or a newer one, in every stage
and instance."""

import json
import sys
import time

from harness import SCALE, PipelineTestCase, config, created

ROUNDS = 100


class TestCausalConfig(PipelineTestCase):
    def test_add_then_publish_at_once(self):
        """100 rounds, two routers and two senders: add a webhook, remove (even rounds) or
        disable (odd rounds) the one added in the round before, publish one event at once. Each
        event must reach exactly the webhook added in its round (and wh_4, which takes every
        created event), never the one just removed or disabled."""
        p = self.pipeline(routers=2, senders=2)
        base = "http://127.0.0.1:%d" % p.port
        for i in range(ROUNDS):
            wid = "wh_r%03d" % i
            p.check_hookctl("webhook", "add", "--project", "prj_1", "--id", wid, "--url",
                            base + "/ok/" + wid, "--event", "opportunity.created")
            if i:
                prev = "wh_r%03d" % (i - 1)
                p.check_hookctl("webhook", "rm" if i % 2 == 0 else "disable", prev)
            p.publish([created("evt_round%03d" % i)])
        # every event reaches wh_4; the rounds' webhooks are counted from the delivery log once
        # those are in
        p.wait_received("/ok/wh_4", count=ROUNDS, timeout=30)

        deadline = time.monotonic() + 30 * SCALE
        while True:  # all in, or the time is up: then count what is missing
            ds = p.deliveries()
            rounds = [d for d in ds if d["webhook_id"] != "wh_4"]
            if (len(rounds) >= ROUNDS and all(d["status"] == "succeeded" for d in ds)) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        got = {}
        for d in ds:
            got.setdefault(d["event_id"], set()).add(d["webhook_id"])
        missing = [i for i in range(ROUNDS)
                   if "wh_r%03d" % i not in got.get("evt_round%03d" % i, set())]
        extra = {e: sorted(w - {"wh_4", "wh_r" + e[-3:]}) for e, w in got.items()
                 if w - {"wh_4", "wh_r" + e[-3:]}}
        failed = [d for d in ds if d["status"] == "failed"]
        sys.stderr.write("\n  causal configuration: %d rounds (add, then rm or disable the "
                         "previous, then publish), %d missing, %d sent to a webhook removed or "
                         "disabled before\n" % (ROUNDS, len(missing), len(extra)))
        self.assertEqual(missing, [], "events that missed the webhook added just before")
        self.assertEqual(extra, {}, "events sent to a webhook removed or disabled before")
        self.assertEqual(failed, [], "invocations failed")
        reqs = p.received("/ok/wh_r")
        for r in reqs:
            eid = json.loads(r["body"])["id"]
            self.assertEqual(r["path"], "/ok/wh_r" + eid[-3:], "request on a stale webhook")
        self.assertEqual(len(reqs), ROUNDS)
        p.stop()

    def test_import_then_publish_at_once(self):
        """The same through import, which replaces the whole configuration: each round's import
        holds only that round's webhook."""
        p = self.pipeline(routers=2, senders=2)
        base = "http://127.0.0.1:%d" % p.port
        cfg = config(p.port)
        hooks = cfg["projects"][0]["webhooks"]
        n = ROUNDS // 4
        for i in range(n):
            wid = "wh_i%03d" % i
            cfg["projects"][0]["webhooks"] = hooks + [{
                "id": wid, "name": wid, "url": base + "/ok/" + wid, "enabled": True,
                "events": ["opportunity.created"], "auth": {"type": "none"}}]
            p.import_config(cfg, settle=False)
            p.publish([created("evt_imp%03d" % i)])
        p.wait_received("/ok/wh_4", count=n, timeout=30 * SCALE)
        reqs = p.wait_received("/ok/wh_i", count=n, timeout=30 * SCALE)
        for r in reqs:
            eid = json.loads(r["body"])["id"]
            self.assertEqual(r["path"], "/ok/wh_i" + eid[-3:])
        p.stop()
