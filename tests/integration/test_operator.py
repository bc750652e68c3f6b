"""test_operator.py - issue 9, operator safety: what hookctl and the stages do with an
operator's slips (a data dir without a store, an unreadable CA file)."""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, TEST_SECRET, PipelineTestCase, child_env, config, created, webhook


def run(argv, cwd, env=None, input=None):
    """run returns (exit status, stdout, stderr) of one program run in cwd."""
    r = subprocess.run(argv, cwd=cwd, env=env or child_env(), input=input, capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


class TestMissingStore(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="operator-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.env = child_env()
        self.env.pop("HOOKLINE_DATA", None)

    def hookctl(self, *args, input=None):
        return run([os.path.join(BIN, "hookctl")] + list(args), self.tmp, self.env, input)

    def test_every_reading_command_refuses_a_missing_store(self):
        """In a directory without var/, and with a --data-dir typo, each command but import and
        webhook add exits 1 naming the store it did not find, and creates nothing."""
        commands = [["deliveries"], ["delivery", "inv_x"], ["export"], ["status"],
                    ["publish", "-"], ["render", "-"], ["redeliver", "inv_x"], ["prune"],
                    ["webhook", "list"], ["webhook", "rm", "wh_x"], ["webhook", "disable", "wh_x"]]
        for data in (None, os.path.join(self.tmp, "typo")):
            for cmd in commands:
                args = (["--data-dir", data] if data else []) + cmd
                rc, out, err = self.hookctl(*args, input="")
                where = os.path.join(data or "./var", "hookline.db")
                self.assertEqual(rc, 1, "%s: exit %d: %s" % (args, rc, err))
                self.assertIn("no store at %s" % where, err, args)
                self.assertEqual(out, "", args)
                self.assertEqual(os.listdir(self.tmp), [], "%s created something" % args)

    def test_import_and_webhook_add_create_the_store(self):
        cfgfile = os.path.join(self.tmp, "c.json")
        with open(cfgfile, "w") as f:
            json.dump(config(9), f)
        rc, out, err = self.hookctl("import", cfgfile)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "var", "hookline.db")))
        rc, out, err = self.hookctl("deliveries")
        self.assertEqual(rc, 0, err)
        data = os.path.join(self.tmp, "other")
        rc, out, err = self.hookctl("--data-dir", data, "webhook", "add", "--project", "prj_1",
                                    "--id", "wh_new", "--url", "https://example.com/h",
                                    "--event", "opportunity.created")
        self.assertIn("unknown project \"prj_1\"", err)  # an empty store, but it exists now
        self.assertTrue(os.path.exists(os.path.join(data, "hookline.db")))


class TestMaskRoundTrip(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="operator-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.env = child_env()
        self.env["HOOKLINE_DATA"] = os.path.join(self.tmp, "var")

    def hookctl(self, *args, input=None):
        return run([os.path.join(BIN, "hookctl")] + list(args), self.tmp, self.env, input)

    def export(self, *args):
        rc, out, err = self.hookctl("export", *args)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def test_export_edit_import_keeps_every_credential(self):
        rc, out, err = self.hookctl("import", "-", input=json.dumps(config(9)))
        self.assertEqual(rc, 0, err)
        before = self.export("--with-secrets")
        masked = self.export()
        hooks = masked["projects"][0]["webhooks"]
        self.assertEqual(hooks[0]["auth"]["token"], "***")
        self.assertEqual(hooks[0]["secret"], "***")
        hooks[0]["name"] = "Won deals, renamed"
        hooks[2]["url"] = "https://hooks.example.com/moves"
        rc, out, err = self.hookctl("import", "-", input=json.dumps(masked))
        self.assertEqual(rc, 0, err)
        after = self.export("--with-secrets")
        self.assertNotIn("***", json.dumps(after))
        want = before["projects"][0]["webhooks"]
        got = after["projects"][0]["webhooks"]
        want[0]["name"] = "Won deals, renamed"
        want[2]["url"] = "https://hooks.example.com/moves"
        self.assertEqual(got, want)
        self.assertEqual(got[0]["auth"]["token"], "tok_won_123")
        self.assertEqual(got[0]["secret"], TEST_SECRET)
        self.assertEqual(got[1]["auth"]["password"], "pa55:word")
        self.assertEqual(got[2]["auth"]["key"], "key_abc")

    def test_mask_with_nothing_stored_is_an_error_naming_the_field(self):
        rc, out, err = self.hookctl("import", "-", input=json.dumps(config(9)))
        self.assertEqual(rc, 0, err)
        before = self.export("--with-secrets")
        cases = [
            # a new webhook: nothing stored at all
            (webhook("wh_new", "https://example.com/n", ["opportunity.created"],
                     auth={"type": "bearer", "token": "***"}),
             "projects[0].webhooks[5].auth.token"),
            # an auth type changed: the stored credential is of another kind
            (webhook("wh_1", "https://example.com/1", ["opportunity.won"],
                     auth={"type": "api_key", "key": "***"}),
             "projects[0].webhooks[0].auth.key"),
        ]
        for hook, field in cases:
            cfg = config(9)
            hooks = cfg["projects"][0]["webhooks"]
            if hook["id"] == "wh_1":
                hooks[0] = hook
            else:
                hooks.append(hook)
            rc, out, err = self.hookctl("import", "-", input=json.dumps(cfg))
            self.assertEqual(rc, 2, err)
            self.assertIn(field + ': "***" (the export mask) keeps the stored value', err)
            self.assertEqual(self.export("--with-secrets"), before, "an import changed things")
        rc, out, err = self.hookctl("webhook", "add", "--project", "prj_1", "--json", json.dumps(
            webhook("wh_new", "https://example.com/n", ["opportunity.created"],
                    secret="***")))
        self.assertEqual(rc, 2, err)
        self.assertIn('secret: "***" (the export mask) keeps a stored value', err)
        self.assertEqual(self.export("--with-secrets"), before)


class TestWebhookCommands(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="operator-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.env = child_env()
        self.env["HOOKLINE_DATA"] = os.path.join(self.tmp, "var")
        rc, out, err = self.hookctl("import", "-", input=json.dumps(config(9)))
        self.assertEqual(rc, 0, err)

    def hookctl(self, *args, input=None):
        return run([os.path.join(BIN, "hookctl")] + list(args), self.tmp, self.env, input)

    def file(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def hook(self, wid):
        rc, out, err = self.hookctl("export", "--with-secrets")
        self.assertEqual(rc, 0, err)
        for w in json.loads(out)["projects"][0]["webhooks"]:
            if w["id"] == wid:
                return w
        return None

    def test_credentials_from_a_file_or_standard_input(self):
        add = ["webhook", "add", "--project", "prj_1", "--url", "https://example.com/h",
               "--event", "opportunity.created"]
        rc, out, err = self.hookctl(*add, "--id", "wh_t", "--token-file",
                                    self.file("tok", "tok_from_file\n"), "--secret-file",
                                    self.file("sec", TEST_SECRET + "\n"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_t")["auth"], {"type": "bearer", "token": "tok_from_file"})
        self.assertEqual(self.hook("wh_t")["secret"], TEST_SECRET)
        rc, out, err = self.hookctl(*add, "--id", "wh_b", "--username", "u",
                                    "--password-file", "-", input="pw from stdin\r\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_b")["auth"],
                         {"type": "basic", "username": "u", "password": "pw from stdin"})
        rc, out, err = self.hookctl(*add, "--id", "wh_k", "--key-file", "-", input="k_1")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_k")["auth"], {"type": "api_key", "key": "k_1"})
        whole = {"id": "wh_j", "url": "https://example.com/j", "events": ["opportunity.won"],
                 "auth": {"type": "bearer", "token": "tok_json_file"}}
        rc, out, err = self.hookctl("webhook", "add", "--project", "prj_1", "--json",
                                    "@" + self.file("wh.json", json.dumps(whole)))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_j")["auth"]["token"], "tok_json_file")
        whole["id"] = "wh_j2"
        rc, out, err = self.hookctl("webhook", "add", "--project", "prj_1", "--json", "-",
                                    input=json.dumps(whole))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_j2")["auth"]["token"], "tok_json_file")
        rc, out, err = self.hookctl(*add, "--id", "wh_x", "--username", "u", "--password-file",
                                    "-", "--secret-file", "-", input="x")
        self.assertEqual(rc, 2, err)
        self.assertIn("--secret-file: standard input is already read by another flag", err)
        rc, out, err = self.hookctl(*add, "--id", "wh_x", "--token-file", "/nonexistent/tok")
        self.assertEqual(rc, 2, err)
        self.assertIn("/nonexistent/tok: No such file or directory", err)
        self.assertIsNone(self.hook("wh_x"))

    def test_update_changes_only_what_is_given(self):
        wh1 = self.hook("wh_1")
        rc, out, err = self.hookctl("webhook", "update", "wh_1", "--url", "https://n.example/1")
        self.assertEqual((rc, out), (0, "webhook wh_1 updated\n"), err)
        self.assertEqual(self.hook("wh_1"), dict(wh1, url="https://n.example/1"))
        rc, out, err = self.hookctl("webhook", "update", "wh_2", "--password-file", "-",
                                    input="new:pass\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_2")["auth"],
                         {"type": "basic", "username": "user", "password": "new:pass"})
        rc, out, err = self.hookctl("webhook", "update", "wh_3", "--auth", "bearer",
                                    "--token-file", self.file("t3", "tok_3"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_3")["auth"], {"type": "bearer", "token": "tok_3"})
        rc, out, err = self.hookctl("webhook", "update", "wh_1", "--json", json.dumps(
            {"name": "Renamed", "auth": {"type": "bearer", "token": "***"}, "secret": "***"}))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hook("wh_1"), dict(wh1, url="https://n.example/1", name="Renamed"))
        rc, out, err = self.hookctl("webhook", "update", "wh_1", "--event", "opportunity.lost",
                                    "--event", "opportunity.won", "--disabled")
        self.assertEqual(rc, 0, err)
        got = self.hook("wh_1")
        self.assertEqual(sorted(got["events"]), ["opportunity.lost", "opportunity.won"])
        self.assertFalse(got["enabled"])
        self.assertEqual(got["auth"], wh1["auth"])
        before = self.hook("wh_1")
        for args, code, text in (
                (["wh_nope", "--url", "https://x.example/"], 1, "no webhook wh_nope"),
                (["wh_1"], 2, "nothing to change"),
                (["wh_1", "--url", "ftp://x.example/"], 2, "url: not an absolute http(s) URL"),
                (["wh_1", "--json", '{"id": "wh_other"}'], 2, "a webhook keeps its id"),
                (["wh_4", "--json", '{"auth": {"type": "bearer", "token": "***"}}'], 2,
                 'webhook.auth.token: "***" (the export mask) keeps the stored value')):
            rc, out, err = self.hookctl("webhook", "update", *args)
            self.assertEqual(rc, code, "%s: %s" % (args, err))
            self.assertIn(text, err, args)
        self.assertEqual(self.hook("wh_1"), before, "a refused update changed something")


def rfc3339_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class TestRecover(PipelineTestCase):
    def test_recover_sends_again_what_failed_since(self):
        """Two attempts per invocation, an endpoint failing the first two requests of each:
        everything ends failed. recover --since T sends again exactly those that failed at or
        after T, with the same invocation ids; they succeed now."""
        cfg = lambda port: config(port, webhooks=[webhook(  # noqa: E731
            "wh_f", "http://127.0.0.1:%d/flaky/2/wh_f" % port, ["opportunity.created"])])
        p = self.pipeline(cfg=cfg, max_attempts=2)
        p.publish([created("evt_old")])
        p.wait_deliveries(lambda ds: [d["status"] for d in ds] == ["failed"])
        since = rfc3339_now()
        p.publish([created("evt_new1"), created("evt_new2")])
        ds = p.wait_deliveries(lambda ds: len(ds) == 3 and all(d["status"] == "failed"
                                                               for d in ds))
        inv = {d["event_id"]: d["invocation_id"] for d in ds}
        out, err = p.check_hookctl("recover", "--webhook", "wh_f", "--since", since)
        self.assertEqual(out, "2 failed invocations of webhook wh_f since %s sent again\n"
                         % out.split(" since ")[1].split(" sent")[0])
        ds = p.wait_deliveries(lambda ds: sorted(d["status"] for d in ds) ==
                               ["failed", "succeeded", "succeeded"])
        by = {d["event_id"]: d for d in ds}
        self.assertEqual(by["evt_old"]["status"], "failed")
        for e in ("evt_new1", "evt_new2"):
            self.assertEqual(by[e]["invocation_id"], inv[e])
            self.assertEqual(by[e]["attempts"], 3, "every send counts: 2 failed, then 1")
        ok = [r for r in p.received("/flaky/") if r["status"] == 200]
        self.assertEqual(sorted(json.loads(r["body"])["id"] for r in ok), ["evt_new1", "evt_new2"])
        out, err = p.check_hookctl("recover", "--webhook", "wh_f", "--since", since)
        self.assertTrue(out.startswith("0 failed invocations of webhook wh_f since "), out)
        for args, code, text in (
                (["--webhook", "wh_f", "--since", "yesterday"], 2, "--since: expected an RFC 3339"),
                (["--webhook", "wh_nope", "--since", since], 1, "no webhook wh_nope"),
                (["--since", since], 2, "--webhook and --since are required")):
            rc, out, err = p.hookctl("recover", *args)
            self.assertEqual(rc, code, err)
            self.assertIn(text, err)
        p.check_hookctl("webhook", "disable", "wh_f")
        rc, out, err = p.hookctl("recover", "--webhook", "wh_f", "--since", since)
        self.assertEqual(rc, 1, err)
        self.assertIn("webhook wh_f is disabled: enable it first", err)
        p.stop()


class TestSenderCaFile(unittest.TestCase):
    def test_unreadable_or_empty_ca_file_is_a_usage_error(self):
        tmp = tempfile.mkdtemp(prefix="operator-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        notpem = os.path.join(tmp, "not.pem")
        with open(notpem, "w") as f:
            f.write("hello\n")
        sender = os.path.join(BIN, "hook-sender")
        data = os.path.join(tmp, "data")
        for path, why in (("/nonexistent.pem", "No such file or directory"),
                          (notpem, "no PEM certificate")):
            rc, out, err = run([sender, "--data-dir", data, "--ca-file", path], tmp)
            self.assertEqual(rc, 2, err)
            self.assertIn("--ca-file: %s: %s" % (path, why), err)
            self.assertNotIn("ready", err)


if __name__ == "__main__":
    unittest.main()
