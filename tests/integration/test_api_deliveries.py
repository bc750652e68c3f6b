"""test_api_deliveries.py - hook-api's publishing and delivery log against the real daemons, a
real receiver and real HTTP: POST events -> the receiver gets it -> GET deliveries shows it, the
400/404/409/503 answers (503 with ingest stopped, then back once it restarts), keyset pages under
concurrent writes, redeliver, and a deleted webhook's records."""

import json
import threading
import time
import unittest

from apiclient import kill_apis, start_api
from harness import PipelineTestCase, config, created, transitioned, webhook

D = "/v1/projects/%s/deliveries"
E = "/v1/projects/%s/events"


def two_projects(port):
    """The harness's prj_1, and prj_2 with one webhook for created events."""
    cfg = config(port)
    cfg["projects"].append({
        "id": "prj_2", "name": "Other", "opportunity_fields": [], "contact_fields": [],
        "funnels": [],
        "webhooks": [webhook("wh_9", "http://127.0.0.1:%d/ok/wh_9" % port,
                             ["opportunity.created"])]})
    return cfg


class ApiDeliveriesTest(PipelineTestCase):
    def setUp(self):
        self.p = self.pipeline(cfg=two_projects)
        self.addCleanup(kill_apis, self.p)
        self.api = start_api(self.p)
        self.tok = self.api.token("admin")

    def call(self, method, path, body=None, raw=None, token=None):
        st, js, _ = self.api.call(method, path, body=body, raw=raw, token=token or self.tok)
        return st, js

    def finish(self):
        self.api.stop()
        self.p.stop()

    def wait_delivery(self, project, pred, query="", timeout=10):
        """wait_delivery polls GET deliveries until some record satisfies pred; returns it."""
        last = [None]

        def found():
            st, js = self.call("GET", D % project + query)
            last[0] = (st, js)
            if st != 200:
                return None
            hits = [d for d in js["data"] if pred(d)]
            return hits[0] if hits else None

        return self.p.wait_for(found, timeout, lambda: "no such delivery; last: %s"
                               % json.dumps(last[0])[:3000])

    def test_publish_then_deliver(self):
        ev = transitioned("evt_api_1", "opp_7", "stg_new", "stg_won")
        del ev["project_id"]  # left out: the path's project
        st, js = self.call("POST", E % "prj_1", ev)
        self.assertEqual(st, 202, js)
        self.assertEqual(js, {"ids": ["evt_api_1", "evt_api_1.won"], "duplicate": False})

        # the receiver got the won event for wh_1, with its bearer token
        got = self.p.wait_received("/ok/wh_1")[0]
        self.assertEqual(got["h"]["authorization"], "Bearer tok_won_123")
        inv = got["h"]["webhook-id"] if "webhook-id" in got["h"] else None

        d = self.wait_delivery("prj_1", lambda d: d["webhook_id"] == "wh_1"
                               and d["status"] == "succeeded", "?webhook_id=wh_1")
        if inv:
            self.assertEqual(d["invocation_id"], inv)
        self.assertEqual(d["event_id"], "evt_api_1.won")
        self.assertEqual(d["attempts"], 1)
        self.assertEqual(d["request"]["body"], got["body"])
        hdrs = {k.lower(): v for k, v in d["request"]["headers"].items()}
        self.assertEqual(hdrs["authorization"], "***")  # masked whole, as hookctl shows it
        self.assertNotIn("tok_won_123", json.dumps(d))
        self.assertEqual(d["response"]["status"], 200)
        # the same object hookctl prints, and GET of the one record
        self.assertEqual(d, self.p.delivery(d["invocation_id"]))
        st, one = self.call("GET", D % "prj_1" + "/" + d["invocation_id"])
        self.assertEqual((st, one), (200, d))

        # filters: by event, by status; the transitioned event went to wh_3
        st, js = self.call("GET", D % "prj_1" + "?event_id=evt_api_1&status=succeeded")
        self.assertEqual(st, 200)
        self.assertEqual(js["next_cursor"], None)
        self.assertEqual([x["webhook_id"] for x in js["data"]], ["wh_3"])

        # the same event again is a duplicate: accepted, not delivered twice
        st, js = self.call("POST", E % "prj_1", dict(ev, project_id="prj_1"))
        self.assertEqual((st, js), (202, {"ids": ["evt_api_1", "evt_api_1.won"],
                                          "duplicate": True}))
        # another project's deliveries do not show it
        st, js = self.call("GET", D % "prj_2")
        self.assertEqual((st, js), (200, {"data": [], "next_cursor": None}))
        st, js = self.call("GET", D % "prj_2" + "/" + d["invocation_id"])
        self.assertEqual(st, 404, js)
        self.assertIn(d["invocation_id"], js["error"])
        self.assertEqual(len(self.p.received("/ok/wh_1")), 1)
        self.finish()

    def test_errors(self):
        # unknown project: every route of this file
        for m, path in (("POST", E % "nope"), ("GET", D % "nope"), ("GET", D % "nope" + "/x"),
                        ("POST", D % "nope" + "/x/redeliver")):
            st, js = self.call(m, path, {"type": "opportunity.created"} if m == "POST" else None)
            self.assertEqual(st, 404, (m, path, js))
            self.assertIn("nope", js["error"])
        st, js = self.call("GET", D % "prj_1" + "/inv_unknown")
        self.assertEqual(st, 404)
        self.assertIn("inv_unknown", js["error"])
        st, js = self.call("POST", D % "prj_1" + "/inv_unknown/redeliver")
        self.assertEqual(st, 404)

        # project_id must be the path's
        st, js = self.call("POST", E % "prj_1", created("e_x", project_id="prj_2"))
        self.assertEqual(st, 400)
        self.assertIn("project_id", js["error"])
        st, js = self.call("POST", E % "prj_1", dict(created("e_x"), project_id=7))
        self.assertEqual(st, 400)
        self.assertIn("project_id", js["error"])
        # ingest's own reason for an invalid event
        ev = created("e_bad")
        del ev["opportunity"]
        st, js = self.call("POST", E % "prj_1", ev)
        self.assertEqual(st, 400, js)
        self.assertIn("opportunity", js["error"])
        st, js = self.call("POST", E % "prj_1", dict(created("e_bad2"), type="opportunity.won"))
        self.assertEqual(st, 400, js)
        self.assertIn("type", js["error"])
        # bad JSON, not an object
        st, js = self.call("POST", E % "prj_1", raw=b'{"type": ')
        self.assertEqual(st, 400)
        st, js = self.call("POST", E % "prj_1", raw=b'[1]')
        self.assertEqual(st, 400)

        # query arguments
        for q, word in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
                        ("limit=", "limit"), ("status=done", "status"),
                        ("cursor=%21%21", "cursor"), ("cursor=MTIz", "cursor")):
            st, js = self.call("GET", D % "prj_1" + "?" + q)
            self.assertEqual(st, 400, (q, js))
            self.assertIn(word, js["error"])
        st, js = self.call("GET", D % "prj_1" + "?limit=1000")
        self.assertEqual(st, 200)

        # ingest unreachable: 503; back once it is (the API dials again)
        st, js = self.call("POST", E % "prj_1", created("e_before"))
        self.assertEqual(st, 202, js)
        self.p.kill("ingest")
        st, js = self.call("POST", E % "prj_1", created("e_down"))
        self.assertEqual(st, 503, js)
        self.assertIn("ingest", js["error"])
        st, js = self.call("POST", E % "prj_1", created("e_down2"))
        self.assertEqual(st, 503, js)
        self.p.start_daemon("ingest")
        st, js = self.call("POST", E % "prj_1", created("e_down"))
        self.assertEqual((st, js), (202, {"ids": ["e_down"], "duplicate": False}))
        self.p.wait_received(lambda r: '"e_down"' in r["body"])
        self.finish()

    def test_pages_under_concurrent_writes(self):
        n0 = 60
        for i in range(n0):
            st, js = self.call("POST", E % "prj_2", created("c%03d" % i, "opp_%d" % i,
                                                            project_id="prj_2"))
            self.assertEqual(st, 202, js)
        self.p.wait_deliveries(lambda ds: len([d for d in ds if d["webhook_id"] == "wh_9"
                                               and d["status"] == "succeeded"]) >= n0, timeout=30)
        before = {d["invocation_id"] for d in self.p.deliveries("--webhook", "wh_9")}
        self.assertEqual(len(before), n0)

        stop = threading.Event()
        published = [0]
        errors = []

        def publish():
            i = 0
            while not stop.is_set():
                try:
                    st, js, _ = self.api.call("POST", E % "prj_2",
                                              body=created("n%04d" % i, "opp_n%d" % i,
                                                           project_id="prj_2"), token=self.tok)
                    if st != 202:
                        errors.append((st, js))
                except OSError as e:
                    errors.append(str(e))
                i += 1
                published[0] = i
                time.sleep(0.01)

        t = threading.Thread(target=publish)
        t.start()
        try:
            # wait until new records are landing while we page
            self.p.wait_for(lambda: published[0] >= 5, 10)
            seen, keys, cursor, pages = [], [], None, 0
            while True:
                q = "?limit=7" + ("&cursor=" + cursor if cursor else "")
                st, js = self.call("GET", D % "prj_2" + q)
                self.assertEqual(st, 200, js)
                self.assertLessEqual(len(js["data"]), 7)
                for d in js["data"]:
                    seen.append(d["invocation_id"])
                    keys.append((d["created_at"], d["invocation_id"]))
                pages += 1
                cursor = js["next_cursor"]
                if cursor is None:
                    break
                self.assertEqual(len(js["data"]), 7)
                self.assertRegex(cursor, r"^[A-Za-z0-9_-]+$")
                time.sleep(0.02)  # let the publisher write between pages
        finally:
            stop.set()
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(published[0], 5)
        self.assertEqual(len(seen), len(set(seen)), "a record came twice")
        self.assertEqual(keys, sorted(keys, reverse=True), "not newest first")
        missing = before - set(seen)
        self.assertEqual(missing, set(), "records older than the first page were skipped")
        self.assertGreaterEqual(pages, n0 // 7)
        self.finish()

    def test_redeliver_and_deleted_webhook(self):
        st, js = self.call("POST", E % "prj_1", created("r1", "opp_r"))
        self.assertEqual(st, 202, js)
        d = self.wait_delivery("prj_1", lambda d: d["status"] == "succeeded",
                               "?webhook_id=wh_4")
        self.assertEqual(d["attempts"], 1)
        inv = d["invocation_id"]
        st, js = self.call("POST", D % "prj_1" + "/" + inv + "/redeliver")
        self.assertEqual(st, 202, js)
        self.p.wait_received("/ok/wh_4", count=2)
        d2 = self.wait_delivery("prj_1", lambda x: x["invocation_id"] == inv
                                and x["attempts"] == 2 and x["status"] == "succeeded",
                                "?webhook_id=wh_4")
        self.assertEqual(d2["request"]["body"], d["request"]["body"])
        # another project's token path: 404, not its record
        st, js = self.call("POST", D % "prj_2" + "/" + inv + "/redeliver")
        self.assertEqual(st, 404, js)

        # the scheduler down: 503 naming it; nothing sent
        self.p.kill("scheduler")
        st, js = self.call("POST", D % "prj_1" + "/" + inv + "/redeliver")
        self.assertEqual(st, 503, js)
        self.assertIn("scheduler", js["error"])
        self.p.start_daemon("scheduler")

        # a deleted webhook's records still list under their project
        self.p.check_hookctl("webhook", "rm", "wh_4")
        st, js = self.call("GET", D % "prj_1" + "?webhook_id=wh_4")
        self.assertEqual(st, 200, js)
        self.assertEqual([x["invocation_id"] for x in js["data"]], [inv])
        st, js = self.call("GET", D % "prj_1" + "/" + inv)
        self.assertEqual((st, js["attempts"]), (200, 2))
        self.finish()


if __name__ == "__main__":
    unittest.main()
