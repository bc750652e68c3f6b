"""test_api_config.py - hook-api's project and webhook endpoints against the real daemons:
every route and error status of docs/openapi.yaml for them (each answer checked against the
file's schema, and every status the file lists for these routes seen), token scopes, validation
errors naming the field, "***" keeping stored credentials, changes in force when the request
returns (seen by a real receiver after `hookctl publish`), and recover through the scheduler."""

import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BIN, REPO, SCALE, PipelineTestCase, _die_with_parent, config, created,  # noqa
                     deadline_after, transitioned, webhook)

import yaml

OPENAPI = os.path.join(REPO, "docs", "openapi.yaml")
# The routes this file covers (h-config's); the other rows of openapi.yaml belong to others.
MY_PATHS = ("/v1/projects", "/v1/projects/{p}", "/v1/projects/{p}/webhooks",
            "/v1/projects/{p}/webhooks/{w}", "/v1/projects/{p}/webhooks/{w}/recover")


def rfc3339_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# --- the OpenAPI file: a small validator for the subset of JSON Schema it uses ---------------

class Spec:
    """Spec is docs/openapi.yaml: route templates, and schema checks of answers."""

    def __init__(self, path=OPENAPI):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.seen = set()  # (template, method, status)

    def template(self, path):
        """template: the paths key matching a concrete path ("/v1/projects/prj_1" ->
        "/v1/projects/{p}"), or None."""
        segs = path.split("?")[0].strip("/").split("/")
        for t in self.doc["paths"]:
            ts = t.strip("/").split("/")
            if len(ts) == len(segs) and all(a.startswith("{") or a == b for a, b in zip(ts, segs)):
                return t
        return None

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def response(self, template, method, status):
        op = self.doc["paths"][template].get(method.lower())
        if op is None:
            return None
        r = op["responses"].get(str(status))
        return self.resolve(r) if r is not None else None

    def check(self, schema, value, where="body"):
        """check returns a list of problems of value against schema."""
        s = self.resolve(schema)
        if value is None and s.get("nullable"):
            return []
        out = []
        for sub in s.get("allOf", []):
            out += self.check(sub, value, where)
        t = s.get("type")
        types = {"object": dict, "array": list, "string": str, "boolean": bool}
        if t == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                return out + ["%s: expected integer, got %r" % (where, value)]
        elif t in types and not isinstance(value, types[t]):
            return out + ["%s: expected %s, got %r" % (where, t, value)]
        if "enum" in s and value not in s["enum"]:
            out.append("%s: %r not in %r" % (where, value, s["enum"]))
        if "minimum" in s and value < s["minimum"]:
            out.append("%s: %r below %r" % (where, value, s["minimum"]))
        if t == "array":
            if len(value) < s.get("minItems", 0):
                out.append("%s: fewer than %d items" % (where, s["minItems"]))
            for i, v in enumerate(value):
                out += self.check(s.get("items", {}), v, "%s[%d]" % (where, i))
        if t == "object":
            props = s.get("properties", {})
            for k in s.get("required", []):
                if k not in value:
                    out.append("%s: missing %s" % (where, k))
            for k, v in value.items():
                if k in props:
                    out += self.check(props[k], v, "%s.%s" % (where, k))
                elif s.get("additionalProperties") is False:
                    out.append("%s: key %s not in the schema" % (where, k))
        return out


# --- hook-api, run beside the pipeline -------------------------------------------------------

class Api:
    """Api runs bin/hook-api on the pipeline's data dir (--listen 127.0.0.1:0, readiness on
    --notify-fd, the bound address read from run/api.0.addr) and makes requests to it, checking
    each answer against the OpenAPI file."""

    def __init__(self, test, p, spec):
        self.test, self.p, self.spec = test, p, spec
        self.log = os.path.join(p.logs, "api.log")
        argv = [os.path.join(BIN, "hook-api"), "--data-dir", p.data, "--listen", "127.0.0.1:0"]
        rfd, wfd = os.pipe()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv + ["--notify-fd", str(wfd)], pass_fds=(wfd,),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=p.env, close_fds=True, preexec_fn=_die_with_parent)
        os.close(wfd)
        test.addCleanup(self.kill)
        end = deadline_after(15)
        buf = b""
        while b"\n" not in buf:
            if time.monotonic() > end or self.proc.poll() is not None:
                test.fail("hook-api not ready (exit %s): %s" % (self.proc.poll(), self.tail()))
            import select
            r, _, _ = select.select([rfd], [], [], 0.2)
            if r:
                chunk = os.read(rfd, 64)
                if not chunk:
                    test.fail("hook-api closed its notification fd: %s" % self.tail())
                buf += chunk
        os.close(rfd)
        with open(os.path.join(p.data, "run", "api.0.addr")) as f:
            url = f.read().strip()
        self.host, self.port = url.split("//")[1].rsplit(":", 1)
        self.port = int(self.port)

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """stop: SIGTERM, and hook-api exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        self.test.assertEqual(self.proc.wait(15 * SCALE), 0, self.tail())

    def call(self, method, path, token=None, body=None, raw=None, expect=None):
        """call makes one request (body: JSON-encoded; raw: bytes as they are) and returns
        (status, parsed JSON or None). The answer must be what openapi.yaml says for the route
        and status; expect (a status) is asserted when given."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=30 * SCALE)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) before the whole body was taken: read that answer
        resp = c.getresponse()
        text = resp.read()
        c.close()
        status = resp.status
        doc = json.loads(text) if text else None
        what = "%s %s -> %d %s" % (method, path, status, text[:500])
        if expect is not None:
            self.test.assertEqual(status, expect, what)
        t = self.spec.template(path)
        self.test.assertIsNotNone(t, "no path in openapi.yaml for " + path)
        r = self.spec.response(t, method, status)
        self.test.assertIsNotNone(r, "openapi.yaml lists no %d for %s %s (%s)"
                                  % (status, method, t, what))
        schema = (r.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            self.test.assertEqual(text, b"", what + ": a body where the file says none")
        else:
            self.test.assertEqual(resp.getheader("Content-Type"), "application/json", what)
            problems = self.spec.check(schema, doc)
            self.test.assertEqual(problems, [], what)
        self.spec.seen.add((t, method.lower(), str(status)))
        return status, doc


def token(p, name, project=None):
    """token makes an API token with `hookctl token create` (printed once: hlt_...)."""
    args = ["token", "create", "--name", name] + (["--project", project] if project else [])
    out, _ = p.check_hookctl(*args)
    m = re.search(r"hlt_[A-Za-z0-9_-]{43}", out)
    if not m:
        raise AssertionError("hookctl token create printed no token: %r" % out)
    return m.group(0)


# One Spec for the module: each request adds what it saw; TestZOpenApiCoverage checks the sum.
SPEC = Spec()


class ApiConfigTestCase(PipelineTestCase):
    def start(self, **kw):
        p = self.pipeline(**kw)
        api = Api(self, p, SPEC)
        self.admin = token(p, "admin")
        self.t1 = token(p, "one", "prj_1")
        self.t2 = token(p, "two", "prj_2")
        return p, api

    def finish(self, p, api):
        api.stop()
        p.stop()


class TestProjects(ApiConfigTestCase):
    def test_projects(self):
        p, api = self.start()
        base = "http://127.0.0.1:%d" % p.port
        for path in ("/v1/projects", "/v1/projects/prj_1"):
            api.call("GET", path, expect=401)
            api.call("GET", path, token="hlt_" + "x" * 43, expect=401)
        _, doc = api.call("GET", "/v1/projects", token=self.admin, expect=200)
        self.assertEqual([x["id"] for x in doc["data"]], ["prj_1"])
        want = dict(config(p.port)["projects"][0])
        del want["webhooks"]
        self.assertEqual(doc["data"][0], want, "the import object without webhooks")
        _, doc = api.call("GET", "/v1/projects", token=self.t2, expect=200)
        self.assertEqual(doc["data"], [], "a project token sees its own project only")
        api.call("GET", "/v1/projects/prj_1", token=self.t2, expect=403)
        _, doc = api.call("GET", "/v1/projects/prj_1", token=self.t1, expect=200)
        self.assertEqual(doc, want)
        api.call("GET", "/v1/projects/prj_2", token=self.t2, expect=404)

        # create prj_2: admin only; the defaults filled in; the project token now sees it
        body = {"name": "Zeta", "opportunity_fields": ["amount"],
                "funnels": [{"id": "f2", "stages": [{"id": "a"}, {"id": "b", "name": "B"}],
                             "won_stage_id": "b"}]}
        _, doc = api.call("PUT", "/v1/projects/prj_2", token=self.t2, body=body, expect=403)
        self.assertIn("error", doc)
        _, doc = api.call("PUT", "/v1/projects/prj_2", token=self.admin, body=body, expect=200)
        self.assertEqual(doc, {"id": "prj_2", "name": "Zeta", "opportunity_fields": ["amount"],
                               "contact_fields": [],
                               "funnels": [{"id": "f2", "name": "f2",
                                            "stages": [{"id": "a", "name": "a"},
                                                       {"id": "b", "name": "B"}],
                                            "won_stage_id": "b"}]})
        _, got = api.call("GET", "/v1/projects", token=self.t2, expect=200)
        self.assertEqual(got["data"], [doc])
        _, got = api.call("GET", "/v1/projects", token=self.admin, expect=200)
        self.assertEqual([x["id"] for x in got["data"]], ["prj_1", "prj_2"])

        # bad input: 400 naming the field (the import file's validation); nothing changes
        v = p.config_version()
        for b, text in (
                ({"funnels": [{"id": "f", "stages": [], "won_stage_id": "x"}]},
                 'funnels[0].won_stage_id: "x" is not a stage of this funnel'),
                ({"name": 5}, "name: must be a string"),
                ({"id": "prj_other"}, 'id: must be "prj_2"'),
                ({"colour": "red"}, "colour: unknown key"),
                ({"contact_fields": ["a", "a"]}, 'contact_fields[1]: duplicate "a"'),
                ({"webhooks": []}, "webhooks: not part of a project's settings")):
            _, doc = api.call("PUT", "/v1/projects/prj_2", token=self.admin, body=b, expect=400)
            self.assertIn(text, doc["error"])
        _, doc = api.call("PUT", "/v1/projects/prj_2", token=self.admin, raw=b"{nope",
                          expect=400)
        _, doc = api.call("PUT", "/v1/projects/prj_2", token=self.admin, raw=b"[1]", expect=400)
        api.call("PUT", "/v1/projects/prj_2", token=self.admin,
                 raw=b'{"name": "' + b"x" * (1 << 20) + b'"}', expect=413)
        self.assertEqual(p.config_version(), v, "a refused PUT changed the configuration")

        # replace prj_1's settings: its webhooks stay, and the next event uses the new fields
        new = {"name": "Acme 2", "opportunity_fields": ["value"], "contact_fields": [],
               "funnels": want["funnels"]}
        _, doc = api.call("PUT", "/v1/projects/prj_1", token=self.admin, body=new, expect=200)
        self.assertEqual(doc["name"], "Acme 2")
        _, hooks = api.call("GET", "/v1/projects/prj_1/webhooks", token=self.t1, expect=200)
        self.assertEqual([w["id"] for w in hooks["data"]], ["wh_1", "wh_2", "wh_3", "wh_4",
                                                            "wh_5"])
        p.publish([created("ev_fields", title="T", value=3, owner="o")])
        r = p.wait_received("/ok/wh_4")[0]
        self.assertEqual(json.loads(r["body"])["data"]["opportunity"], {"id": "opp_1", "value": 3})

        # delete: admin only; its webhooks go too; then 404
        api.call("DELETE", "/v1/projects/prj_1", token=self.t1, expect=403)
        api.call("DELETE", "/v1/projects/prj_1", token=self.admin, expect=204)
        api.call("GET", "/v1/projects/prj_1", token=self.t1, expect=404)
        api.call("GET", "/v1/projects/prj_1/webhooks", token=self.t1, expect=404)
        api.call("DELETE", "/v1/projects/prj_1", token=self.admin, expect=404)
        out, _ = p.check_hookctl("webhook", "list", "--json")
        self.assertEqual(out, "", "the project's webhooks went with it")
        p.publish([created("ev_gone")])
        export = json.loads(p.check_hookctl("export")[0])
        self.assertEqual([x["id"] for x in export["projects"]], ["prj_2"])
        self.assertEqual(len(p.received("/ok/wh_4")), 1, "a removed project's webhook got news")
        self.finish(p, api)


class TestScopes(ApiConfigTestCase):
    def test_every_route_wants_a_token_of_its_project(self):
        """Every project and webhook route: no token or an unknown one 401, a token of another
        project 403, a revoked one 401 at once, and nothing changes."""
        p, api = self.start()
        v = p.config_version()
        routes = [(m, t.replace("{p}", "prj_1").replace("{w}", "wh_1"))
                  for t in MY_PATHS for m in SPEC.doc["paths"][t] if m != "parameters"]
        body = {"since": rfc3339_now()}
        for method, path in routes:
            m = method.upper()
            api.call(m, path, body=body, expect=401)
            api.call(m, path, token="hlt_" + "A" * 43, body=body, expect=401)
            if path != "/v1/projects":
                api.call(m, path, token=self.t2, body=body, expect=403)
        # a revoked token fails at once
        api.call("GET", "/v1/projects/prj_1", token=self.t1, expect=200)
        p.check_hookctl("token", "revoke", "one")
        api.call("GET", "/v1/projects/prj_1", token=self.t1, expect=401)
        api.call("PATCH", "/v1/projects/prj_1/webhooks/wh_1", token=self.t1,
                 body={"enabled": False}, expect=401)
        self.assertEqual(p.config_version(), v)
        self.finish(p, api)


class TestWebhooks(ApiConfigTestCase):
    def hook(self, p, id):
        """hook: the stored webhook with its secrets (hookctl export --with-secrets)."""
        doc = json.loads(p.check_hookctl("export", "--with-secrets")[0])
        for pr in doc["projects"]:
            for w in pr["webhooks"]:
                if w["id"] == id:
                    return w
        return None

    def test_webhooks(self):
        p, api = self.start()
        base = "http://127.0.0.1:%d" % p.port
        wh = "/v1/projects/prj_1/webhooks"
        api.call("GET", wh, expect=401)
        api.call("GET", wh, token=self.t2, expect=403)
        api.call("GET", "/v1/projects/prj_2/webhooks", token=self.t2, expect=404)
        _, doc = api.call("GET", wh, token=self.t1, expect=200)
        by = {w["id"]: w for w in doc["data"]}
        self.assertEqual(list(by), ["wh_1", "wh_2", "wh_3", "wh_4", "wh_5"])
        self.assertEqual(by["wh_1"]["auth"], {"type": "bearer", "token": "***"})
        self.assertEqual(by["wh_1"]["secret"], "***")
        self.assertEqual(by["wh_2"]["auth"], {"type": "basic", "username": "user",
                                              "password": "***"})
        self.assertEqual(by["wh_4"]["auth"], {"type": "none"})
        self.assertNotIn("tok_won_123", json.dumps(doc))
        _, one = api.call("GET", wh + "/wh_1", token=self.t1, expect=200)
        self.assertEqual(one, by["wh_1"])
        api.call("GET", wh + "/wh_nope", token=self.t1, expect=404)
        api.call("GET", wh + "/wh_1", token=self.t2, expect=403)

        # POST: id assigned when absent; in force when it returns (the next event gets it)
        body = {"url": base + "/ok/new", "events": ["opportunity.created"], "name": "New one",
                "auth": {"type": "api_key", "key": "k_new"}}
        _, doc = api.call("POST", wh, token=self.t1, body=body, expect=201)
        new_id = doc["id"]
        self.assertRegex(new_id, r"^wh_[0-9a-f-]{36}$")
        self.assertEqual(doc, {"id": new_id, "name": "New one", "url": base + "/ok/new",
                               "enabled": True, "events": ["opportunity.created"],
                               "auth": {"type": "api_key", "key": "***"}})
        p.publish([created("ev_new")])
        r = p.wait_received("/ok/new")[0]
        self.assertEqual(r["h"]["x-api-key"], "k_new")
        self.assertEqual(self.hook(p, new_id)["auth"]["key"], "k_new")
        _, doc = api.call("POST", wh, token=self.t1, expect=409,
                          body=dict(body, id="wh_1", project_id="prj_1"))
        self.assertIn('"wh_1"', doc["error"])
        api.call("POST", "/v1/projects/prj_9/webhooks", token=self.admin, body=body, expect=404)
        api.call("POST", wh, token=self.t2, body=body, expect=403)
        v = p.config_version()
        for b, text in (
                (dict(body, url="ftp://x/"), "url: not an absolute http(s) URL"),
                (dict(body, url="https://u:p@x.example/"), "url: must not carry credentials"),
                (dict(body, events=["opportunity.nope"]),
                 'events[0]: unknown event type "opportunity.nope"'),
                ({"url": base + "/ok/x"}, "events: missing"),
                (dict(body, auth={"type": "bearer"}), "auth.token: missing"),
                (dict(body, auth={"type": "bearer", "token": "***"}), "auth.token:"),
                (dict(body, secret="nope"), 'secret: must start with "whsec_"'),
                (dict(body, project_id="prj_2"), 'project_id: must be "prj_1"'),
                (dict(body, extra=1), "extra: unknown key")):
            _, doc = api.call("POST", wh, token=self.t1, body=b, expect=400)
            self.assertIn(text, doc["error"])
        api.call("POST", wh, token=self.t1, raw=b"not json", expect=400)
        api.call("POST", wh, token=self.t1, raw=b'"' + b"x" * (1 << 20) + b'"', expect=413)
        self.assertEqual(p.config_version(), v, "a refused POST changed the configuration")

        # PATCH: only the keys given; "***" keeps the stored token and secret
        _, doc = api.call("PATCH", wh + "/wh_1", token=self.t1, expect=200,
                          body={"url": base + "/ok/moved", "auth": {"type": "bearer",
                                                                    "token": "***"}})
        self.assertEqual(doc, dict(by["wh_1"], url=base + "/ok/moved"))
        stored = self.hook(p, "wh_1")
        self.assertEqual(stored["auth"]["token"], "tok_won_123")
        self.assertTrue(stored["secret"].startswith("whsec_"))
        p.publish([transitioned("ev_won")])
        r = p.wait_received("/ok/moved")[0]
        self.assertEqual(r["h"]["authorization"], "Bearer tok_won_123")
        self.assertIn("webhook-signature", r["h"])
        self.assertEqual(len(p.received("/ok/wh_1")), 0, "the old URL still got news")
        # disable: the next event does not reach it
        _, doc = api.call("PATCH", wh + "/wh_1", token=self.t1, body={"enabled": False},
                          expect=200)
        self.assertFalse(doc["enabled"])
        v = p.config_version()
        for b, text in (
                ({"id": "wh_other"}, 'id: must be "wh_1" (a webhook keeps its id)'),
                ({"project_id": "prj_2"}, "project_id: must be \"prj_1\""),
                ({"url": "nope"}, "url: not an absolute http(s) URL"),
                ({"events": []}, "events: must list at least one event type"),
                ({"auth": {"type": "basic", "username": "u", "password": "***"}},
                 "auth.password"),
                ({"color": 1}, "color: unknown key")):
            _, doc = api.call("PATCH", wh + "/wh_1", token=self.t1, body=b, expect=400)
            self.assertIn(text, doc["error"])
        api.call("PATCH", wh + "/wh_1", token=self.t1, raw=b"[]", expect=400)
        api.call("PATCH", wh + "/wh_1", token=self.t1, raw=b"{" + b" " * (1 << 20) + b"}",
                 expect=413)
        api.call("PATCH", wh + "/wh_nope", token=self.t1, body={"name": "x"}, expect=404)
        self.assertEqual(p.config_version(), v, "a refused PATCH changed the configuration")
        # a signing secret dropped with null: no signature any more
        api.call("PATCH", wh + "/wh_1", token=self.t1, expect=200,
                 body={"enabled": True, "secret": None})
        self.assertNotIn("secret", self.hook(p, "wh_1"))
        p.publish([transitioned("ev_won2", opp_id="opp_2")])
        rs = p.wait_received("/ok/moved", count=2)
        self.assertEqual([json.loads(x["body"])["id"] for x in rs], ["ev_won.won", "ev_won2.won"],
                         "the disabled webhook got nothing, the enabled one got the next")
        self.assertNotIn("webhook-signature", rs[1]["h"])

        # DELETE: in force when it returns
        api.call("DELETE", wh + "/" + new_id, token=self.t2, expect=403)
        api.call("DELETE", wh + "/" + new_id, token=self.t1, expect=204)
        api.call("DELETE", wh + "/" + new_id, token=self.t1, expect=404)
        api.call("GET", wh + "/" + new_id, token=self.t1, expect=404)
        p.publish([created("ev_after_delete", opp_id="opp_3")])
        p.wait_received(lambda r: r["path"] == "/ok/wh_4" and
                        json.loads(r["body"])["id"] == "ev_after_delete")
        self.assertEqual(len(p.received("/ok/new")), 1, "a removed webhook got news")
        self.finish(p, api)


class TestRecover(ApiConfigTestCase):
    def test_recover(self):
        """The endpoint fails the first two requests of each invocation and there are two
        attempts: everything ends failed. recover since T sends again exactly what failed at or
        after T (same invocation ids), and they succeed; with the scheduler down, 503."""
        cfg = lambda port: config(port, webhooks=[webhook(  # noqa: E731
            "wh_f", "http://127.0.0.1:%d/flaky/2/wh_f" % port, ["opportunity.created"])])
        p, api = self.start(cfg=cfg, max_attempts=2)
        rec = "/v1/projects/prj_1/webhooks/wh_f/recover"
        p.publish([created("evt_old")])
        p.wait_deliveries(lambda ds: [d["status"] for d in ds] == ["failed"])
        since = rfc3339_now()
        p.publish([created("evt_new1"), created("evt_new2")])
        ds = p.wait_deliveries(lambda ds: len(ds) == 3 and all(d["status"] == "failed"
                                                               for d in ds))
        inv = {d["event_id"]: d["invocation_id"] for d in ds}
        api.call("POST", rec, body={"since": since}, expect=401)
        api.call("POST", rec, token=self.t2, body={"since": since}, expect=403)
        api.call("POST", "/v1/projects/prj_1/webhooks/wh_nope/recover", token=self.t1,
                 body={"since": since}, expect=404)
        for b, text in (({}, "since: missing"), ({"since": "yesterday"}, "since: expected an RFC"),
                        ({"since": 5}, "since: expected"), ({"since": since, "x": 1}, "x:")):
            _, doc = api.call("POST", rec, token=self.t1, body=b, expect=400)
            self.assertIn(text, doc["error"])
        api.call("POST", rec, token=self.t1, raw=b"{", expect=400)
        api.call("POST", rec, token=self.t1, raw=b"{" + b" " * (1 << 20) + b"}", expect=413)

        _, doc = api.call("POST", rec, token=self.t1, body={"since": since}, expect=202)
        self.assertEqual(doc, {"count": 2})
        ds = p.wait_deliveries(lambda ds: sorted(d["status"] for d in ds) ==
                               ["failed", "succeeded", "succeeded"])
        by = {d["event_id"]: d for d in ds}
        self.assertEqual(by["evt_old"]["status"], "failed")
        for e in ("evt_new1", "evt_new2"):
            self.assertEqual(by[e]["invocation_id"], inv[e])
        ok = [r for r in p.received("/flaky/") if r["status"] == 200]
        self.assertEqual(sorted(json.loads(r["body"])["id"] for r in ok), ["evt_new1", "evt_new2"])
        self.assertEqual(sorted(r["h"]["webhook-id"] for r in ok),
                         sorted([inv["evt_new1"], inv["evt_new2"]]))
        _, doc = api.call("POST", rec, token=self.t1, body={"since": since}, expect=202)
        self.assertEqual(doc, {"count": 0})

        # everything since the start: only evt_old is failed now; scheduler down -> 503
        p.kill("scheduler")
        _, doc = api.call("POST", rec, token=self.admin, body={"since": "2000-01-01T00:00:00Z"},
                          expect=503)
        self.assertIn("cannot reach the scheduler", doc["error"])
        self.assertIn("0 of 1", doc["error"])
        p.start_daemon("scheduler")
        _, doc = api.call("POST", rec, token=self.admin, body={"since": "2000-01-01T00:00:00Z"},
                          expect=202)
        self.assertEqual(doc, {"count": 1})
        p.wait_deliveries(lambda ds: [d["status"] for d in ds] == ["succeeded"] * 3)

        api.call("PATCH", "/v1/projects/prj_1/webhooks/wh_f", token=self.t1,
                 body={"enabled": False}, expect=200)
        _, doc = api.call("POST", rec, token=self.t1, body={"since": since}, expect=409)
        self.assertIn("disabled", doc["error"])
        self.finish(p, api)


class TestZOpenApiCoverage(unittest.TestCase):
    def test_every_status_of_these_routes_was_seen(self):
        """Runs last (unittest orders classes by name): every (path, method, status) that
        openapi.yaml lists for the project and webhook routes was answered by the real server
        in the tests above, and they saw no other."""
        spec = SPEC
        if not spec.seen:
            self.fail("run with the other tests of this module (they fill in what was seen)")
        listed = set()
        for t in MY_PATHS:
            for method, op in spec.doc["paths"][t].items():
                if method == "parameters":
                    continue
                for status in op["responses"]:
                    listed.add((t, method, str(status)))
        self.assertEqual(sorted(listed - spec.seen), [], "listed but never answered")
        self.assertEqual(sorted(x for x in spec.seen - listed if x[0] in MY_PATHS), [])


if __name__ == "__main__":
    unittest.main()
