"""test_delivery.py - every event type reaches the right webhooks with the exact body, the
configured fields only, won/lost derived, each auth mode, the signature, and the delivery log."""

import base64
import json
import time

from harness import (PipelineTestCase, TEST_SECRET, config, created, signature, transitioned,
                     webhook)


def by_path(reqs, prefix):
    return [r for r in reqs if r["path"].startswith(prefix)]


class TestDelivery(PipelineTestCase):
    def test_event_types_fields_and_derivation(self):
        p = self.pipeline()
        p.publish([
            created("evt_c1", "opp_1", title="Big deal", value=1200.5, secret_field="x",
                    contact={"id": "ct_3", "name": "Ana", "email": "ana@example.com",
                             "phone": "hidden"}),
            transitioned("evt_t1", "opp_1", "stg_new", "stg_won", title="Big deal"),
            transitioned("evt_t2", "opp_2", "stg_new", "stg_lost"),
            transitioned("evt_t3", "opp_3", None, "stg_new"),
        ])
        # wh_4 created; wh_3 transitioned x3; wh_1 won; wh_2 lost; wh_5 is disabled.
        p.wait_received(count=6)
        # Every invocation the router made has a delivery record; once all are settled, a wrong
        # extra request would show both there and at the receiver (exact counts below).
        recs = p.wait_deliveries(lambda ds: len(ds) >= 6 and
                                 all(d["status"] == "succeeded" for d in ds))
        self.assertEqual(len(recs), 6)
        reqs = p.received()
        self.assertEqual(len(by_path(reqs, "/ok/wh_4")), 1)
        self.assertEqual(len(by_path(reqs, "/ok/wh_3")), 3)
        self.assertEqual(len(by_path(reqs, "/ok/wh_1")), 1)
        self.assertEqual(len(by_path(reqs, "/ok/wh_2")), 1)
        self.assertEqual(len(by_path(reqs, "/ok/wh_5")), 0)

        c = json.loads(by_path(reqs, "/ok/wh_4")[0]["body"])
        self.assertEqual(c["id"], "evt_c1")
        self.assertEqual(c["type"], "opportunity.created")
        self.assertEqual(c["project_id"], "prj_1")
        self.assertEqual(c["webhook"], {"id": "wh_4", "name": "New deals"})
        self.assertEqual(c["data"]["opportunity"],
                         {"id": "opp_1", "title": "Big deal", "value": 1200.5, "owner": None})
        self.assertEqual(list(c["data"]["opportunity"].keys()), ["id", "title", "value", "owner"])
        self.assertEqual(c["data"]["contact"],
                         {"id": "ct_3", "name": "Ana", "email": "ana@example.com"})
        for k in ("funnel", "from_stage", "to_stage"):
            self.assertNotIn(k, c["data"])
        self.assertRegex(c["occurred_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

        won = json.loads(by_path(reqs, "/ok/wh_1")[0]["body"])
        self.assertEqual(won["id"], "evt_t1.won")
        self.assertEqual(won["type"], "opportunity.won")
        self.assertEqual(won["data"]["funnel"], {"id": "fun_1", "name": "Sales"})
        self.assertEqual(won["data"]["from_stage"], {"id": "stg_new", "name": "New"})
        self.assertEqual(won["data"]["to_stage"], {"id": "stg_won", "name": "Closed won"})
        self.assertIsNone(won["data"]["contact"])
        self.assertEqual(won["data"]["opportunity"],
                         {"id": "opp_1", "title": "Big deal", "value": None, "owner": None})

        lost = json.loads(by_path(reqs, "/ok/wh_2")[0]["body"])
        self.assertEqual(lost["id"], "evt_t2.lost")
        self.assertEqual(lost["type"], "opportunity.lost")

        moves = {json.loads(r["body"])["id"]: json.loads(r["body"])
                 for r in by_path(reqs, "/ok/wh_3")}
        self.assertEqual(set(moves), {"evt_t1", "evt_t2", "evt_t3"})
        self.assertEqual(moves["evt_t1"]["type"], "opportunity.transitioned")
        self.assertIsNone(moves["evt_t3"]["data"]["from_stage"])
        for r in reqs:
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["h"]["content-type"], "application/json")
            self.assertTrue(r["h"]["user-agent"].startswith("hookline/"))
            self.assertEqual(r["h"]["x-webhook-attempt"], "1")
            self.assertEqual(r["h"]["x-webhook-event"], json.loads(r["body"])["type"])
            self.assertRegex(r["h"]["webhook-id"], r"^inv_[0-9a-f]{32}$")
            self.assertLess(abs(int(r["h"]["webhook-timestamp"]) - time.time()), 60)
        p.stop()

    def test_auth_modes_and_signature(self):
        p = self.pipeline()
        p.publish([transitioned("evt_a", "opp_1", "stg_new", "stg_won"),
                   transitioned("evt_b", "opp_1", "stg_new", "stg_lost"),
                   created("evt_c")])
        reqs = p.wait_received(count=5)  # won + lost + 2 transitioned + created
        won = by_path(reqs, "/ok/wh_1")[0]
        self.assertEqual(won["h"]["authorization"], "Bearer tok_won_123")
        self.assertEqual(won["h"]["webhook-signature"],
                         signature(TEST_SECRET, won["h"]["webhook-id"],
                                   won["h"]["webhook-timestamp"], won["body"]))
        lost = by_path(reqs, "/ok/wh_2")[0]
        self.assertEqual(lost["h"]["authorization"],
                         "Basic " + base64.b64encode(b"user:pa55:word").decode())
        self.assertNotIn("webhook-signature", lost["h"])
        moved = by_path(reqs, "/ok/wh_3")[0]
        self.assertEqual(moved["h"]["x-api-key"], "key_abc")
        self.assertNotIn("authorization", moved["h"])
        new = by_path(reqs, "/ok/wh_4")[0]
        self.assertNotIn("authorization", new["h"])
        self.assertNotIn("x-api-key", new["h"])
        p.stop()

    def test_delivery_log_content_and_masking(self):
        p = self.pipeline()
        p.publish([transitioned("evt_m", "opp_1", "stg_new", "stg_won")])
        reqs = p.wait_received("/ok/wh_1")
        inv = reqs[0]["h"]["webhook-id"]
        recs = p.wait_deliveries(lambda ds: any(d["invocation_id"] == inv and
                                                d["status"] == "succeeded" for d in ds))
        d = p.delivery(inv)
        self.assertEqual(d["webhook_id"], "wh_1")
        self.assertEqual(d["event_id"], "evt_m.won")
        self.assertEqual(d["event_type"], "opportunity.won")
        self.assertEqual(d["status"], "succeeded")
        self.assertEqual(d["attempts"], 1)
        self.assertIsNone(d["next_attempt_at"])
        self.assertIsNone(d["error"])
        self.assertIsInstance(d["duration_ms"], int)
        self.assertRegex(d["created_at"], r"Z$")
        self.assertRegex(d["updated_at"], r"Z$")
        self.assertEqual(d["request"]["method"], "POST")
        self.assertEqual(d["request"]["url"], p.url("/ok/wh_1"))
        self.assertEqual(d["request"]["body"], reqs[0]["body"])
        hdrs = {k.lower(): v for k, v in d["request"]["headers"].items()}
        self.assertEqual(hdrs["authorization"], "***")
        self.assertEqual(hdrs["webhook-signature"], "***")
        self.assertEqual(hdrs["webhook-id"], inv)
        self.assertEqual(d["response"]["status"], 200)
        self.assertEqual(d["response"]["body"], "ok")
        self.assertFalse(d["response"]["truncated"])
        # No credential in any hookctl output or daemon log.
        outs = [p.check_hookctl("deliveries")[0], p.check_hookctl("delivery", inv)[0],
                json.dumps(recs), p.check_hookctl("export")[0]]
        for name in ("ingest", "router.0", "sender.0", "scheduler"):
            with open("%s/%s.log" % (p.logs, name), errors="replace") as f:
                outs.append(f.read())
        for secret in ("tok_won_123", "pa55:word", "key_abc", TEST_SECRET,
                       TEST_SECRET[len("whsec_"):]):
            for o in outs:
                self.assertNotIn(secret, o)
        p.stop()

    def test_unknown_project_is_accepted_and_unrouted(self):
        p = self.pipeline()
        rc, out, err = p.publish([created("evt_u", project_id="prj_unknown"), created("evt_k")])
        p.wait_received("/ok/wh_4")
        st = json.loads(p.check_hookctl("status", "--json")[0])
        ingest = st["stages"]["ingest"][0]["stats"]
        self.assertGreaterEqual(ingest["unrouted"], 1)
        p.stop()

    def test_msgpack_and_jsonl_on_the_socket(self):
        import socket
        p = self.pipeline()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(p.data + "/run/ingest.sock")
        s.sendall(b'{"type":"opportunity.created","id":"sock_1","project_id":"prj_1",'
                  b'"opportunity":{"id":"o"}}\nnot json\n')
        f = s.makefile("rb")
        r1 = json.loads(f.readline())
        r2 = json.loads(f.readline())
        self.assertEqual(r1, {"ok": True, "ids": ["sock_1"]})
        self.assertFalse(r2["ok"])
        self.assertIn("invalid JSON", r2["error"])
        s.close()
        p.wait_received(lambda r: json.loads(r["body"])["id"] == "sock_1")
        p.stop()
