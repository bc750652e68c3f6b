"""test_security.py - signing-secret rotation (several signatures, an expired secret stops
signing), input limits through `hookctl publish` (each bad line named, every valid one
delivered), the router's body cap (a failed record with the reason, never sent), and secrets that
never show up anywhere but the receiver: logs, journals, the delivery log, hookctl output; plus
the data dir's permissions."""

import base64
import json
import os
import sqlite3
import stat
import subprocess

from harness import (BIN, PipelineTestCase, config, created, signature, transitioned, webhook)


def new_secret():
    """new_secret returns a fresh random Standard Webhooks secret (so no test data can hold it
    by accident)."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def random_word(prefix):
    return prefix + base64.b32encode(os.urandom(10)).decode().rstrip("=").lower()


def signatures(header):
    """signatures splits a webhook-signature header into its "v1,<sig>" entries."""
    return [s for s in (header or "").split(" ") if s]


def verify(req, secret):
    """verify checks req's signature list holds the signature of secret, computed the way the
    Standard Webhooks specification says (harness.signature), over the exact body received."""
    h = req["h"]
    want = signature(secret, h["webhook-id"], h["webhook-timestamp"], req["body"])
    return want in signatures(h.get("webhook-signature"))


def body_of(req):
    return json.loads(req["body"])


class TestRotation(PipelineTestCase):
    def test_every_current_secret_signs_and_an_expired_one_stops(self):
        a, b, c = new_secret(), new_secret(), new_secret()

        def cfg(port, b_expires=None):
            doc = config(port)
            wh = doc["projects"][0]["webhooks"][0]  # wh_1: won, bearer
            wh["secret"] = a
            entry = {"secret": b}
            if b_expires:
                entry["expires_at"] = b_expires
            wh["secrets"] = [entry, {"secret": c, "expires_at": "2999-01-01T00:00:00Z"}]
            return doc

        p = self.pipeline(cfg=cfg)
        p.publish([transitioned("rot_1", "opp_1", "stg_new", "stg_won")])
        req = p.wait_received(lambda r: r["path"].startswith("/ok/wh_1"))[0]
        sigs = signatures(req["h"].get("webhook-signature"))
        self.assertEqual(len(sigs), 3, req["h"])
        for s in (a, b, c):
            self.assertTrue(verify(req, s), "no valid signature for one of the three secrets")
        self.assertTrue(all(s.startswith("v1,") for s in sigs))

        # b expired an hour ago: from now on only a and c sign.
        p.import_config(cfg(p.port, b_expires="2020-01-01T00:00:00+01:00"))
        p.publish([transitioned("rot_2", "opp_2", "stg_new", "stg_won")])
        req = p.wait_received(lambda r: body_of(r)["id"] == "rot_2.won")[0]
        sigs = signatures(req["h"].get("webhook-signature"))
        self.assertEqual(len(sigs), 2, req["h"])
        self.assertTrue(verify(req, a))
        self.assertTrue(verify(req, c))
        self.assertFalse(verify(req, b))

        # Only an expired list and no "secret": the request goes out unsigned.
        doc = cfg(p.port, b_expires="2020-01-01T00:00:00Z")
        wh = doc["projects"][0]["webhooks"][0]
        del wh["secret"]
        wh["secrets"] = [{"secret": b, "expires_at": "2020-01-01T00:00:00Z"}]
        p.import_config(doc)
        p.publish([transitioned("rot_3", "opp_3", "stg_new", "stg_won")])
        req = p.wait_received(lambda r: body_of(r)["id"] == "rot_3.won")[0]
        self.assertNotIn("webhook-signature", req["h"])

        # Export masks every secret of the list and keeps the expiry; the delivery log masks
        # the header.
        exp = json.loads(p.check_hookctl("export")[0])
        wh = exp["projects"][0]["webhooks"][0]
        self.assertEqual(wh["secrets"], [{"secret": "***", "expires_at": "2020-01-01T00:00:00Z"}])
        d = p.delivery(p.received("/ok/wh_1")[0]["h"]["webhook-id"])
        self.assertEqual(d["request"]["headers"]["webhook-signature"], "***")
        p.stop()

    def test_bad_secrets_list_changes_nothing(self):
        p = self.pipeline()
        before = p.check_hookctl("export", "--with-secrets")[0]
        a = new_secret()
        for secrets, why in (
                ([{"secret": a}, {"secret": a}], "secrets[1].secret: duplicate signing secret"),
                ([{"secret": a, "expires_at": "next week"}],
                 "secrets[0].expires_at: must be an RFC 3339 date-time"),
                ([{"secret": "whsec_not base64"}], "secrets[0].secret: must be \"whsec_\"")):
            doc = config(p.port)
            doc["projects"][0]["webhooks"][0]["secrets"] = secrets
            _, err = p.import_config(doc, expect=2)
            self.assertIn("projects[0].webhooks[0]." + why, err)
            self.assertNotIn(a[len("whsec_"):], err)
        self.assertEqual(p.check_hookctl("export", "--with-secrets")[0], before)
        p.stop()


class TestInputLimits(PipelineTestCase):
    def test_each_bad_line_is_named_and_the_valid_ones_delivered(self):
        p = self.pipeline()

        def ev(id, **fields):
            return json.dumps(created(id, **fields)).encode()

        deep = b"[" * 64 + b"]" * 64  # with the event object itself: 65 levels
        lines = [
            ev("lim_ok1", title="first"),                                                   # 1
            ev("lim_big", title="x" * (1 << 20)),                                           # 2
            ev("lim_ok2", title="second"),                                                  # 3
            ev("lim_deep").replace(b'"id": "opp_1"', b'"id": "opp_1", "tags": ' + deep),   # 4
            ev("lim_utf8").replace(b'"opp_1"', b'"opp_1", "title": "caf\xc3"'),            # 5
            ev("lim_dup").replace(b'"id": "opp_1"', b'"id": "opp_1", "id": "opp_2"'),      # 6
            ev("lim_int").replace(b'"id": "opp_1"', b'"id": "opp_1", "value": 9223372036854775808'),
            ev("lim_inf").replace(b'"id": "opp_1"', b'"id": "opp_1", "value": 1e999'),     # 8
            ev("bad id with spaces"),                                                       # 9
            ev("x" * 129),                                                                  # 10
            ev("lim_ok3", title="third", value=-9223372036854775808),                      # 11
        ]
        proc = subprocess.run([os.path.join(BIN, "hookctl"), "--data-dir", p.data, "publish", "-"],
                              input=b"\n".join(lines) + b"\n", capture_output=True, env=p.env,
                              timeout=60)
        err = proc.stderr.decode("utf-8", errors="replace")
        self.assertEqual(proc.returncode, 2, err)
        got = {}
        for line in err.splitlines():
            if line.startswith("line "):
                n, _, reason = line[len("line "):].partition(": ")
                got[int(n)] = reason
        self.assertEqual(sorted(got), [2, 4, 5, 6, 7, 8, 9, 10], err)
        self.assertIn("exceeds 1048576 bytes", got[2])
        self.assertEqual(got[4], "event nests deeper than 64 levels")
        self.assertRegex(got[5], r"^opportunity\.title \(column \d+\): invalid UTF-8 ")
        self.assertRegex(got[6], r"^opportunity\.id \(column \d+\): duplicate key$")
        self.assertRegex(got[7], r"^opportunity\.value \(column \d+\): integer 9223372036854775808"
                                 r" is out of range \(-9223372036854775808\.\.9223372036854775807\)$")
        self.assertRegex(got[8], r"^opportunity\.value \(column \d+\): number 1e999 is out of "
                                 r"range \(overflows a double\)$")
        self.assertEqual(got[9], "id: must be 1..128 characters of [A-Za-z0-9._:-]")
        self.assertEqual(got[10], got[9])
        self.assertIn("11 lines: 3 accepted", err)

        reqs = p.wait_received("/ok/wh_4", count=3)
        ids = sorted(body_of(r)["id"] for r in reqs)
        self.assertEqual(ids, ["lim_ok1", "lim_ok2", "lim_ok3"])
        third = [body_of(r) for r in reqs if body_of(r)["id"] == "lim_ok3"][0]
        self.assertEqual(third["data"]["opportunity"]["value"], -9223372036854775808)
        p.stop()


class TestBodyCap(PipelineTestCase):
    def test_oversized_body_is_failed_at_the_router_and_never_sent(self):
        cap = 4096
        p = self.pipeline(router_args=["--max-body-bytes", str(cap)])
        at = "2026-11-26T12:00:00Z"  # fixed, so render's body is byte for byte the router's
        big = created("cap_big", "opp_big", occurred_at=at, title="y" * 300000)
        small = created("cap_small", "opp_small", occurred_at=at, title="fits")
        # The exact body the router builds, from render (the same code), to check the figure.
        rendered = [json.loads(l) for l in
                    p.check_hookctl("render", "-", input=json.dumps(big) + "\n")[0].splitlines()]
        self.assertEqual(len(rendered), 1)
        size = len(rendered[0]["body"].encode())
        self.assertGreater(size, 300000)
        p.publish([big, small])
        inv = rendered[0]["invocation_id"]
        recs = p.wait_deliveries(lambda ds: any(d["invocation_id"] == inv for d in ds) and
                                 any(d["event_id"] == "cap_small" and d["status"] == "succeeded"
                                     for d in ds))
        d = [r for r in recs if r["invocation_id"] == inv][0]
        self.assertEqual(d["status"], "failed")
        self.assertEqual(d["attempts"], 0)
        self.assertEqual(d["webhook_id"], "wh_4")
        self.assertEqual(d["event_id"], "cap_big")
        self.assertEqual(d["event_type"], "opportunity.created")
        self.assertEqual(d["error"], "body of %d bytes exceeds the %d-byte limit" % (size, cap))
        self.assertEqual(d["request"]["method"], "POST")
        self.assertEqual(d["request"]["url"], p.url("/ok/wh_4"))
        self.assertIsNone(d["request"]["body"])
        self.assertIsNone(d["response"])
        self.assertIsNone(d["next_attempt_at"])
        # Both events are fully handed on (acknowledged to ingest); the small one reached the
        # receiver on the same webhook, the big one never did.
        def router_stats():
            st = json.loads(p.check_hookctl("status", "--json")[0])
            return st["stages"]["router"][0]["stats"]
        p.wait_for(lambda: router_stats()["events_done"] >= 2, 10, "router did not finish")
        self.assertEqual(router_stats()["oversized"], 1)
        ids = [body_of(r)["id"] for r in p.received()]
        self.assertEqual(ids, ["cap_small"])
        with open(os.path.join(p.logs, "router.0.log"), errors="replace") as f:
            self.assertIn("body of %d bytes exceeds the %d-byte limit" % (size, cap), f.read())
        # Redelivery cannot push it past the cap through the scheduler: there is no body.
        rc, _, err = p.hookctl("redeliver", inv)
        self.assertEqual(rc, 1, err)
        self.assertEqual([body_of(r)["id"] for r in p.received()], ["cap_small"])
        p.stop()

    def test_bad_flag_is_a_usage_error(self):
        for bad in ("0", "-1", "abc", "16777216"):
            proc = subprocess.run([os.path.join(BIN, "hook-router"), "--max-body-bytes", bad],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn("--max-body-bytes", proc.stderr)


class TestSecretsNeverLeak(PipelineTestCase):
    def test_no_credential_outside_the_receiver(self):
        token, password, user, key = (random_word("tok"), random_word("pw"), random_word("u"),
                                      random_word("key"))
        fail_token = random_word("ftok")
        s_won, s_old, s_new, s_expired, s_fail = (new_secret() for _ in range(5))

        def cfg(port):
            base = "http://127.0.0.1:%d" % port
            doc = config(port)
            doc["projects"][0]["webhooks"] = [
                dict(webhook("wh_1", base + "/ok/wh_1", ["opportunity.won"],
                             auth={"type": "bearer", "token": token}, secret=s_won),
                     secrets=[{"secret": s_old, "expires_at": "2999-01-01T00:00:00Z"},
                              {"secret": s_expired, "expires_at": "2001-01-01T00:00:00Z"}]),
                dict(webhook("wh_2", base + "/ok/wh_2", ["opportunity.lost"],
                             auth={"type": "basic", "username": user, "password": password}),
                     secrets=[{"secret": s_new}]),
                webhook("wh_3", base + "/ok/wh_3", ["opportunity.transitioned"],
                        auth={"type": "api_key", "key": key}),
                webhook("wh_4", base + "/ok/wh_4", ["opportunity.created"]),
                webhook("wh_f", base + "/fail/wh_f", ["opportunity.created"],
                        auth={"type": "bearer", "token": fail_token}, secret=s_fail),
            ]
            return doc

        debug = ["--log-level", "debug"]
        p = self.pipeline(cfg=cfg, max_attempts=2, ingest_args=debug, router_args=debug,
                          sender_args=debug, scheduler_args=debug)
        p.publish([transitioned("sec_1", "opp_1", "stg_new", "stg_won"),
                   transitioned("sec_2", "opp_2", "stg_new", "stg_lost"),
                   created("sec_3", "opp_3")])
        # won (wh_1) + transitioned x2 (wh_3) + lost (wh_2) + created (wh_4) + wh_f twice.
        p.wait_received(lambda r: r["path"].startswith("/ok/"), count=5)
        recs = p.wait_deliveries(lambda ds: any(d["webhook_id"] == "wh_f" and
                                                d["status"] == "failed" for d in ds))
        won = p.received("/ok/wh_1")[0]
        self.assertTrue(verify(won, s_won) and verify(won, s_old))
        self.assertFalse(verify(won, s_expired))
        self.assertEqual(won["h"]["authorization"], "Bearer " + token)
        self.assertTrue(verify(p.received("/ok/wh_2")[0], s_new))

        # Redelivery of a success, then an export/import round trip, then one more event.
        inv = won["h"]["webhook-id"]
        p.check_hookctl("redeliver", inv)
        p.wait_received(lambda r: r["h"].get("webhook-id") == inv, count=2)
        full = p.check_hookctl("export", "--with-secrets")[0]
        for s in (token, password, key, s_won, s_old, s_new, s_expired, s_fail):
            self.assertIn(s, full)
        p.import_config(json.loads(full))
        p.publish([transitioned("sec_4", "opp_4", "stg_new", "stg_won")])
        again = p.wait_received(lambda r: body_of(r)["id"] == "sec_4.won")[0]
        self.assertTrue(verify(again, s_won) and verify(again, s_old))
        p.wait_deliveries(lambda ds: any(d["event_id"] == "sec_4.won" and
                                         d["status"] == "succeeded" for d in ds))

        # Everything an operator or a log reader can see.
        seen = {}
        for args in (("deliveries",), ("deliveries", "--json"), ("export",), ("status",),
                     ("status", "--json"), ("webhook", "list"), ("webhook", "list", "--json")):
            out, err = p.check_hookctl(*args)
            seen["hookctl " + " ".join(args)] = out + err
        for d in p.deliveries():
            for fmt in ((), ("--json",)):
                out, err = p.check_hookctl("delivery", d["invocation_id"], *fmt)
                seen["hookctl delivery %s %s" % (d["invocation_id"], " ".join(fmt))] = out + err
        events = "".join(json.dumps(e) + "\n" for e in (
            transitioned("r_1", "opp_1", "stg_new", "stg_won"),
            transitioned("r_2", "opp_2", "stg_new", "stg_lost"), created("r_3")))
        out, err = p.check_hookctl("render", "-", input=events)
        self.assertEqual(len(out.splitlines()), 6)  # won, lost, 2 x transitioned, 2 x created
        seen["hookctl render"] = out + err
        p.stop()  # logs complete, databases checkpointed
        for name in sorted(os.listdir(p.logs)):
            if name != "receiver.log":  # the receiver legitimately sees every credential
                with open(os.path.join(p.logs, name), errors="replace") as f:
                    seen["log " + name] = f.read()
        self.assertEqual(sorted(k for k in seen if k.startswith("log ")),
                         ["log ingest.log", "log router.0.log", "log scheduler.log",
                          "log sender.0.log"])
        jdir = os.path.join(p.data, "journal")
        for name in sorted(os.listdir(jdir)) if os.path.isdir(jdir) else []:
            with open(os.path.join(jdir, name), "rb") as f:
                seen["journal " + name] = f.read().decode("latin-1")
        db = sqlite3.connect(os.path.join(p.data, "hookline.db"))
        try:
            rows = db.execute("SELECT * FROM deliveries").fetchall()
        finally:
            db.close()
        self.assertGreaterEqual(len(rows), 7)
        seen["deliveries table"] = "\n".join(repr(r) for r in rows)

        basic = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        needles = {"bearer token": token, "failing webhook's token": fail_token,
                   "password": password, "api key": key, "basic credentials": basic}
        for n, s in (("won secret", s_won), ("rotated secret", s_old), ("new secret", s_new),
                     ("expired secret", s_expired), ("failing webhook's secret", s_fail)):
            needles[n] = s
            needles[n + " key"] = s[len("whsec_"):]
        # The needles are what went over the wire: the receiver saw each credential.
        wire = json.dumps(p.received())
        for what in ("bearer token", "failing webhook's token", "api key", "basic credentials"):
            self.assertIn(needles[what], wire, what)
        self.assertGreater(len(seen["log sender.0.log"]), 0)
        leaks = ["%s found in %s" % (what, where) for where, text in seen.items()
                 for what, s in needles.items() if s in text]
        # The signatures themselves are masked too (the receiver got them).
        leaks += ["a signature found in %s" % where for r in p.received("/ok/wh_1")
                  for sig in signatures(r["h"]["webhook-signature"])
                  for where, text in seen.items() if sig[3:] in text]
        self.assertEqual(leaks, [])

    def test_data_dir_permissions(self):
        p = self.pipeline()
        p.publish([created("perm_1")])
        p.wait_received("/ok/wh_4")
        mode = lambda path: stat.S_IMODE(os.stat(os.path.join(p.data, path)).st_mode)  # noqa
        self.assertEqual(oct(mode("hookline.db")), oct(0o600))
        self.assertEqual(oct(mode("run")), oct(0o700))
        for extra in ("hookline.db-wal", "hookline.db-shm"):
            if os.path.exists(os.path.join(p.data, extra)):
                self.assertEqual(oct(mode(extra)), oct(0o600), extra)
        socks = [n for n in os.listdir(os.path.join(p.data, "run")) if n.endswith(".sock")]
        self.assertIn("ingest.sock", socks)
        for n in socks:
            self.assertEqual(oct(mode(os.path.join("run", n))), oct(0o600), n)
        # Journals hold customer data: directories 0700, files 0600.
        files = 0
        for root, dirs, names in os.walk(os.path.join(p.data, "journal")):
            self.assertEqual(oct(stat.S_IMODE(os.stat(root).st_mode)), oct(0o700), root)
            for n in names:
                files += 1
                self.assertEqual(oct(stat.S_IMODE(os.stat(os.path.join(root, n)).st_mode)),
                                 oct(0o600), os.path.join(root, n))
        self.assertGreater(files, 0)
        p.stop()
