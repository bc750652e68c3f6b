"""test_operations.py - what an operator does: bad input, publish and render, live
configuration changes, redelivery, the address guard, status."""

import json

from harness import PipelineTestCase, config, created, transitioned, webhook


class TestOperations(PipelineTestCase):
    def test_bad_lines_rejected_by_number_rest_delivered(self):
        p = self.pipeline()
        lines = [created("good_1"),
                 "{not json",
                 {"type": "opportunity.won", "project_id": "prj_1", "opportunity": {"id": "o"}},
                 created("good_2"),
                 {"type": "opportunity.created", "project_id": "prj_1"},
                 created("bad id with spaces"),
                 created("good_3")]
        rc, out, err = p.publish(lines, expect=2)
        for n in (2, 3, 5, 6):
            self.assertIn("line %d: " % n, err)
        for n in (1, 4, 7):
            self.assertNotIn("line %d: " % n, err)
        reqs = p.wait_received("/ok/wh_4", count=3)
        self.assertEqual(sorted(json.loads(r["body"])["id"] for r in reqs),
                         ["good_1", "good_2", "good_3"])
        p.stop()

    def test_publish_exit_codes(self):
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        rc, out, err = p.publish([created("x")], expect=None)
        self.assertEqual(rc, 1)  # ingest not running
        p.start()
        rc, out, err = p.publish([created("y")], expect=0)
        p.stop()

    def test_render(self):
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        text = json.dumps(transitioned("evt_r", "opp_1", "stg_new", "stg_won")) + "\n"
        rc, out, err = p.hookctl("render", "-", input=text)
        self.assertEqual(rc, 0, err)
        rows = [json.loads(l) for l in out.splitlines()]
        self.assertEqual(sorted((r["webhook_id"], r["event_type"]) for r in rows),
                         [("wh_1", "opportunity.won"), ("wh_3", "opportunity.transitioned")])
        won = [r for r in rows if r["webhook_id"] == "wh_1"][0]
        self.assertEqual(won["headers"]["Authorization"], "***")
        self.assertEqual(won["headers"]["webhook-signature"], "***")
        self.assertEqual(json.loads(won["body"])["id"], "evt_r.won")
        self.assertRegex(won["invocation_id"], r"^inv_[0-9a-f]{32}$")
        self.assertNotIn("tok_won_123", out)
        rc, out, err = p.hookctl("render", "-", input="{bad\n")
        self.assertEqual(rc, 2)
        self.assertIn("line 1:", err)

    def test_config_change_without_restart(self):
        p = self.pipeline()
        p.publish([created("before")])
        p.wait_received("/ok/wh_4")
        cfg = config(p.port)
        cfg["projects"][0]["webhooks"].append(
            webhook("wh_new", p.url("/ok/wh_new"), ["opportunity.created"]))
        cfg["projects"][0]["opportunity_fields"] = ["title"]
        p.import_config(cfg)
        p.publish([created("after", title="T", value=3)])
        reqs = p.wait_received("/ok/wh_new")
        body = json.loads(reqs[0]["body"])
        self.assertEqual(body["data"]["opportunity"], {"id": "opp_1", "title": "T"})
        # imperative disable takes effect too
        p.check_hookctl("webhook", "disable", "wh_new")
        p.wait_for(lambda: True, 0.1)
        p.import_config(json.loads(p.check_hookctl("export", "--with-secrets")[0]))
        p.publish([created("after_disable")])
        p.wait_received(lambda r: json.loads(r["body"])["id"] == "after_disable")
        self.assertFalse(any(json.loads(r["body"])["id"] == "after_disable"
                             for r in p.received("/ok/wh_new")))
        p.stop()

    def test_import_validates_and_changes_nothing(self):
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        before = p.check_hookctl("export", "--with-secrets")[0]
        bad = config(p.port)
        bad["projects"][0]["webhooks"][0]["url"] = "not a url"
        p.import_config(bad, settle=False, expect=2)
        bad = config(p.port)
        bad["projects"][0]["webhooks"][1]["events"] = ["opportunity.nope"]
        p.import_config(bad, settle=False, expect=2)
        self.assertEqual(p.check_hookctl("export", "--with-secrets")[0], before)
        masked = p.check_hookctl("export")[0]
        self.assertNotIn("tok_won_123", masked)
        self.assertIn("tok_won_123", before)

    def test_redeliver(self):
        p = self.pipeline()
        p.publish([created("evt_rd")])
        reqs = p.wait_received("/ok/wh_4")
        inv = reqs[0]["h"]["webhook-id"]
        p.wait_deliveries(lambda ds: any(d["invocation_id"] == inv and
                                         d["status"] == "succeeded" for d in ds))
        p.check_hookctl("redeliver", inv)
        reqs = p.wait_received("/ok/wh_4", count=2)
        self.assertEqual(reqs[1]["h"]["webhook-id"], inv)
        self.assertEqual(reqs[1]["body"], reqs[0]["body"])
        rc, out, err = p.hookctl("redeliver", "inv_unknown")
        self.assertNotEqual(rc, 0)
        p.stop()

    def test_address_guard(self):
        p = self.pipeline(max_attempts=1, start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        p.start_daemon("ingest")
        p.start_daemon("scheduler")
        p.start_daemon("router")
        # A sender without --allow-target: loopback is refused at connect time.
        argv = p.daemon_argv("sender")
        i = argv.index("--allow-target")
        del argv[i:i + 2]
        p.daemon_argv = lambda stage, instance="0", orig=p.daemon_argv: (
            argv if stage == "sender" else orig(stage, instance))
        p.start_daemon("sender")
        p.publish([created("evt_g")])
        recs = p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "failed")
        self.assertEqual(recs[0]["error"], "target address not allowed")
        self.assertEqual(p.received(), [])
        p.stop()

    def test_status(self):
        p = self.pipeline(routers=2)
        rc, out, err = p.hookctl("status", "--json")
        self.assertEqual(rc, 0)
        st = json.loads(out)
        self.assertEqual(len(st["stages"]["router"]), 2)
        for stage in ("ingest", "router", "sender", "scheduler"):
            self.assertTrue(st["stages"][stage])
        p.kill("scheduler")
        rc, out, err = p.hookctl("status")
        self.assertEqual(rc, 1)
        self.assertIn("scheduler", out + err)
        p.stop()


class TestProducerStreams(PipelineTestCase):
    def test_msgpack_stream_bad_frames(self):
        """A msgpack map declaring 2^32-1 pairs in five bytes is refused without allocating for
        them; an empty string and a NUL inside a string get clear answers; ingest lives on."""
        import socket
        import struct
        p = self.pipeline()

        def talk(data):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(p.data + "/run/ingest.sock")
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            s.close()
            return out

        def mp_str(v):
            b = v.encode()
            return bytes([0xd9, len(b)]) + b

        def mp_map(d):
            out = bytes([0x80 | len(d)])
            for k, v in d.items():
                out += mp_str(k) + (mp_map(v) if isinstance(v, dict) else mp_str(v))
            return out

        good = mp_map({"type": "opportunity.created", "id": "mp_ok", "project_id": "prj_1",
                       "opportunity": {"id": "o1", "title": ""}})
        nul = mp_map({"type": "opportunity.created", "id": "mp_nul", "project_id": "prj_1",
                      "opportunity": {"id": "o2", "title": "a\x00b"}})
        out = talk(good + nul + b"\xdf\xff\xff\xff\xff")
        self.assertIn(b"mp_ok", out)
        self.assertIn(b"strings must not contain U+0000", out)
        self.assertIn(b"frame exceeds 1048576 bytes", out)
        p.wait_received(lambda r: json.loads(r["body"])["id"] == "mp_ok")
        self.assertEqual(p.hookctl("status")[0], 0)
        p.stop()
