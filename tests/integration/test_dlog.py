"""test_dlog.py - the delivery log agrees with the journals: live records (pending, retrying)
that no journal holds any more are repaired when the stages start, re-sent or ended with a
reason, and records the stages do hold are left untouched."""

import json
import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PipelineTestCase, config, created, transitioned, webhook  # noqa: E402

PENDING, RETRYING, SUCCEEDED, FAILED = 0, 1, 2, 3


def dlog_config(port):
    base = "http://127.0.0.1:%d" % port
    return config(port, webhooks=[
        webhook("wh_ok", base + "/ok/wh_ok", ["opportunity.created"]),
        webhook("wh_fail", base + "/fail/wh_fail", ["opportunity.transitioned"]),
    ])


class TestDeliveryLogRepair(PipelineTestCase):
    def db(self, p):
        return sqlite3.connect(os.path.join(p.data, "hookline.db"), timeout=10)

    def craft(self, p, inv, webhook_id, event_id, status, attempts, body):
        """craft writes a live record as a crash would have left it (updated a minute ago)."""
        now = int(time.time() * 1000)
        db = self.db(p)
        try:
            db.execute(
                "INSERT INTO deliveries(invocation_id, webhook_id, event_id, event_type, status,"
                " attempts, next_attempt_at, created_at, updated_at, req_method, req_url,"
                " req_body) VALUES(?, ?, ?, 'opportunity.created', ?, ?, ?, ?, ?, ?, ?, ?)",
                (inv, webhook_id, event_id, status, attempts,
                 now - 30000 if status == RETRYING else 0, now - 120000, now - 60000,
                 "POST" if body else None, p.url("/ok/wh_ok") if body else None, body))
            db.commit()
        finally:
            db.close()

    def invocation_of(self, p, event, webhook_id):
        out, _ = p.check_hookctl("render", "-", input=json.dumps(event) + "\n")
        for line in out.splitlines():
            o = json.loads(line)
            if o["webhook_id"] == webhook_id:
                return o["invocation_id"], o["body"]
        self.fail("render gave no invocation of %s: %s" % (webhook_id, out))

    def test_stale_live_records_end_or_are_sent_again(self):
        # A long first retry keeps wh_fail's invocation in the scheduler's journal throughout.
        p = self.pipeline(cfg=dlog_config, retry_base_ms=600000)
        p.publish([transitioned("ev_held_retry", to_stage="stg_new")])
        held_retry = p.wait_deliveries(lambda ds: any(
            d["webhook_id"] == "wh_fail" and d["status"] == "retrying" for d in ds))
        held_retry = [d for d in held_retry if d["webhook_id"] == "wh_fail"][0]
        # An event ingest still holds: the routers are down when it is accepted.
        p.kill("router", sig=9)
        waiting = created("ev_held_pending", opp_id="opp_w")
        p.publish([waiting])
        p.stop()

        held_pending, _ = self.invocation_of(p, waiting, "wh_ok")
        _, body = self.invocation_of(p, created("ev_lost_retry", opp_id="opp_r"), "wh_ok")
        lost_retry = "inv_" + "a1" * 16
        lost_nobody = "inv_" + "b2" * 16
        lost_pending = "inv_" + "c3" * 16
        lost_pending_nobody = "inv_" + "d4" * 16
        self.craft(p, lost_retry, "wh_ok", "ev_lost_retry", RETRYING, 2, body)
        self.craft(p, lost_nobody, "wh_ok", "ev_lost_nobody", RETRYING, 1, None)
        self.craft(p, lost_pending, "wh_ok", "ev_lost_pending", PENDING, 0, body)
        self.craft(p, lost_pending_nobody, "wh_ok", "ev_lost_pending2", PENDING, 0, None)
        self.craft(p, held_pending, "wh_ok", "ev_held_pending", PENDING, 0, None)

        # Ingest and scheduler only: the repair is theirs, at start, before any peer.
        p.start_receiver()
        p.start_daemon("ingest")
        p.start_daemon("scheduler")
        ds = {d["invocation_id"]: d for d in p.deliveries()}
        self.assertEqual(ds[lost_pending]["status"], "failed")
        self.assertIn("outcome lost in a crash", ds[lost_pending]["error"])
        self.assertIn("hookctl redeliver", ds[lost_pending]["error"])
        self.assertEqual(ds[lost_pending_nobody]["status"], "failed")
        self.assertIn("cannot be sent again", ds[lost_pending_nobody]["error"])
        self.assertEqual(ds[lost_nobody]["status"], "failed")
        self.assertIn("retry lost in a crash", ds[lost_nobody]["error"])
        self.assertIn("no request body", ds[lost_nobody]["error"])
        # Scheduled again from the record, attempt 3 (attempt 2 is known to have failed).
        self.assertEqual(ds[lost_retry]["status"], "retrying")
        self.assertEqual(ds[lost_retry]["attempts"], 2)
        # What the journals hold is untouched.
        self.assertEqual(ds[held_pending]["status"], "pending")
        self.assertIsNone(ds[held_pending]["error"])
        kept = ds[held_retry["invocation_id"]]
        for k in ("status", "attempts", "next_attempt_at", "updated_at", "error"):
            self.assertEqual(kept[k], held_retry[k], k)
        self.assertIn("3 retrying records checked: 1 held, 1 scheduled again, 1 ended failed",
                      open(os.path.join(p.logs, "scheduler.log")).read())

        p.start_daemon("router")
        p.start_daemon("sender")
        reqs = p.wait_received(lambda r: r["h"].get("webhook-id") == lost_retry)
        self.assertEqual(reqs[0]["h"]["x-webhook-attempt"], "3")
        self.assertEqual(reqs[0]["body"], body)
        p.wait_received(lambda r: r["h"].get("webhook-id") == held_pending)
        ds = p.wait_deliveries(lambda ds: {d["invocation_id"]: d["status"] for d in ds}.get(
            lost_retry) == "succeeded" and {d["invocation_id"]: d["status"] for d in ds}.get(
            held_pending) == "succeeded")
        ds = {d["invocation_id"]: d for d in ds}
        self.assertEqual(ds[lost_retry]["attempts"], 3)
        self.assertEqual(ds[held_pending]["attempts"], 1)
        self.assertEqual(ds[held_retry["invocation_id"]]["status"], "retrying")
        # Nothing is left live that no stage holds: only the long retry stays retrying.
        live = [d["invocation_id"] for d in ds.values() if d["status"] in ("pending", "retrying")]
        self.assertEqual(live, [held_retry["invocation_id"]])
        # A record ended as lost is sent again by the operator, as its error says.
        out, _ = p.check_hookctl("redeliver", lost_pending)
        reqs = p.wait_received(lambda r: r["h"].get("webhook-id") == lost_pending)
        self.assertEqual(reqs[0]["body"], body)
        p.wait_deliveries(lambda ds: {d["invocation_id"]: d["status"] for d in ds}.get(
            lost_pending) == "succeeded")
        p.stop()

    def test_deferred_first_attempt_shows_retrying(self):
        """A first attempt deferred behind its endpoint's cap waits at the scheduler: its record
        says retrying (the scheduler's), no attempt made, body kept; a scheduler restart keeps
        it (held), and it ends succeeded."""
        p = self.pipeline(
            sender_args=["--max-per-endpoint", "1", "--defer-after-ms", "200"],
            cfg=lambda port: config(port, webhooks=[webhook(
                "wh_slow", "http://127.0.0.1:%d/slow/1500/x" % port, ["opportunity.created"])]))
        p.publish([created("ev_df%d" % i, opp_id="opp_%d" % i) for i in range(3)])
        ds = p.wait_deliveries(lambda ds: any(d["status"] == "retrying" for d in ds))
        waiting = [d for d in ds if d["status"] == "retrying"]
        for d in waiting:
            self.assertEqual(d["attempts"], 0)
            self.assertIsNone(d["error"])
            self.assertIsNotNone(d["next_attempt_at"])
        p.restart("scheduler")
        log = open(os.path.join(p.logs, "scheduler.log")).read()
        self.assertRegex(log, r"retrying records checked: \d+ held, 0 scheduled again, 0 ended")
        self.assertNotIn("ended failed:", log)
        ds = p.wait_deliveries(lambda ds: len(ds) == 3 and all(
            d["status"] == "succeeded" for d in ds), timeout=30)
        self.assertEqual(sorted(d["attempts"] for d in ds), [1, 1, 1])
        p.stop()

    def test_redelivery_shows_retrying_then_the_outcome(self):
        p = self.pipeline(cfg=dlog_config)
        p.publish([created("ev_r1", opp_id="opp_1")])
        d = p.wait_deliveries(lambda ds: any(x["status"] == "succeeded" for x in ds))[0]
        # Stop the senders so the redelivery stays at the scheduler and its record can be seen.
        p.kill("sender", sig=15)
        out, _ = p.check_hookctl("redeliver", d["invocation_id"])
        self.assertIn("scheduled", out)
        r = p.wait_deliveries(lambda ds: ds[0]["status"] == "retrying")[0]
        self.assertEqual(r["attempts"], 1)  # every send counts, the first round's too
        self.assertIsNotNone(r["next_attempt_at"])
        # A scheduler restart holds it in its journal: left as it is.
        p.restart("scheduler")
        self.assertEqual(p.delivery(d["invocation_id"])["status"], "retrying")
        p.start_daemon("sender")
        p.wait_received(lambda x: x["h"].get("webhook-id") == d["invocation_id"], count=2)
        r = p.wait_deliveries(lambda ds: ds[0]["status"] == "succeeded")[0]
        self.assertEqual(r["attempts"], 2)
        p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
