"""test_api_openapi.py - docs/openapi.yaml against the real hook-api: every (path, method,
status) in the file is provoked on the running server (real daemons, real receiver, real HTTP),
the status must be the one the file names, and the body must match the file's schema for it.
A status in the file that this test cannot provoke fails the test: the table below must grow
with the file."""

import json
import os
import unittest

import yaml

from apiclient import kill_apis, start_api
from harness import REPO, PipelineTestCase, config, created, webhook

SPEC = os.path.join(REPO, "docs", "openapi.yaml")
BIG = b'{"x": "' + b"x" * (1 << 20) + b'"}'


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def validate(spec, schema, value, where="body"):
    """validate checks value against the subset of OpenAPI 3.0 schema the file uses; returns a
    list of problems (empty when it matches)."""
    schema = resolve(spec, schema)
    errs = []
    if value is None:
        return [] if schema.get("nullable") else ["%s: null where not nullable" % where]
    for sub in schema.get("allOf", []):
        errs += validate(spec, sub, value, where)
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return ["%s: expected an integer, got %r" % (where, value)]
    elif t in types and not isinstance(value, types[t]):
        return ["%s: expected %s, got %r" % (where, t, value)]
    if "enum" in schema and value not in schema["enum"]:
        errs.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if "minimum" in schema and value < schema["minimum"]:
        errs.append("%s: %r below %r" % (where, value, schema["minimum"]))
    if "maximum" in schema and value > schema["maximum"]:
        errs.append("%s: %r above %r" % (where, value, schema["maximum"]))
    if t == "array":
        if len(value) < schema.get("minItems", 0):
            errs.append("%s: fewer than %d items" % (where, schema["minItems"]))
        for i, v in enumerate(value):
            errs += validate(spec, schema.get("items", {}), v, "%s[%d]" % (where, i))
    if t == "object":
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                errs.append("%s: %s missing" % (where, k))
        for k, v in value.items():
            if k in props:
                errs += validate(spec, props[k], v, "%s.%s" % (where, k))
            elif schema.get("additionalProperties") is False:
                errs.append("%s: %s not in the schema" % (where, k))
    return errs


def cfg(port):
    c = config(port)
    c["projects"][0]["webhooks"].append(
        webhook("wh_fail", "http://127.0.0.1:%d/fail/x" % port, ["opportunity.created"]))
    c["projects"].append({
        "id": "prj_2", "name": "Other", "opportunity_fields": [], "contact_fields": [],
        "funnels": [], "webhooks": []})
    return c


class ApiOpenApiTest(PipelineTestCase):
    def test_every_path_and_status(self):
        with open(SPEC) as f:
            spec = yaml.safe_load(f)
        self.assertTrue(spec["openapi"].startswith("3."))
        p = self.pipeline(cfg=cfg, max_attempts=1, router_args=["--max-body-bytes", "4096"])
        self.addCleanup(kill_apis, p)
        api = start_api(p)
        admin = api.token("admin")
        other = api.token("other", project="prj_2")  # 403 on prj_1
        mine = api.token("mine", project="prj_1")  # 403 on admin-only routes

        # records to act on: one succeeded (wh_4), one failed (wh_fail), one never sent
        # (payload over --max-body-bytes: the router records it failed with no request body)
        st, js, _ = api.call("POST", "/v1/projects/prj_1/events", body=created("seed", "opp_s"),
                             token=admin)
        self.assertEqual(st, 202, js)
        st, js, _ = api.call("POST", "/v1/projects/prj_1/events",
                             body=created("huge", "opp_h", title="t" * 8000), token=admin)
        self.assertEqual(st, 202, js)

        def records():
            ds = p.deliveries()
            ok = [d for d in ds if d["webhook_id"] == "wh_4" and d["event_id"] == "seed"
                  and d["status"] == "succeeded"]
            bad = [d for d in ds if d["webhook_id"] == "wh_fail" and d["event_id"] == "seed"
                   and d["status"] == "failed"]
            unsent = [d for d in ds if d["event_id"] == "huge" and d["status"] == "failed"
                      and (d["request"] is None or d["request"].get("body") in (None, ""))]
            return (ok[0], bad[0], unsent[0]) if ok and bad and unsent else None

        ok, bad, unsent = p.wait_for(records, 20, "seed records never appeared")
        inv, unsent_inv = ok["invocation_id"], unsent["invocation_id"]
        ev = created("e_ok", "opp_e")
        ev_fresh = [0]

        def fresh_event():
            ev_fresh[0] += 1
            return created("e_%d" % ev_fresh[0], "opp_e")

        wh_new = {"id": "wh_new", "url": p.url("/ok/new"), "events": ["opportunity.created"]}

        def stopped(stage, then):
            def run():
                p.kill(stage)
                try:
                    return then()
                finally:
                    p.start_daemon(stage)
                    p.wait_status()
            return run

        P1, W1 = "/v1/projects/prj_1", "/v1/projects/prj_1/webhooks"
        # (path template, method, status) -> a call answering (status, JSON, raw body); the
        # generic 401/403/404/413/400 rows are made for every route and used where listed
        R = {}

        def case(tpl, m, status, path, body=None, token=admin, raw=None, run=None):
            R[(tpl, m, status)] = run or (lambda: api.call(m.upper(), path, body=body, raw=raw,
                                                          token=token))

        for tpl, m, path, body in (
                ("/v1/projects", "get", "/v1/projects", None),
                ("/v1/projects/{p}", "get", P1, None),
                ("/v1/projects/{p}", "put", "/v1/projects/prj_9", {"name": "Nine"}),
                ("/v1/projects/{p}", "delete", "/v1/projects/prj_9", None),
                ("/v1/projects/{p}/webhooks", "get", W1, None),
                ("/v1/projects/{p}/webhooks", "post", W1, wh_new),
                ("/v1/projects/{p}/webhooks/{w}", "get", W1 + "/wh_1", None),
                ("/v1/projects/{p}/webhooks/{w}", "patch", W1 + "/wh_new", {"name": "New"}),
                ("/v1/projects/{p}/webhooks/{w}", "delete", W1 + "/wh_new", None),
                ("/v1/projects/{p}/webhooks/{w}/recover", "post", W1 + "/wh_fail/recover",
                 {"since": "2020-01-01T00:00:00Z"}),
                ("/v1/projects/{p}/events", "post", P1 + "/events", ev),
                ("/v1/projects/{p}/deliveries", "get", P1 + "/deliveries?limit=2", None),
                ("/v1/projects/{p}/deliveries/{id}", "get", P1 + "/deliveries/" + inv, None),
                ("/v1/projects/{p}/deliveries/{id}/redeliver", "post",
                 P1 + "/deliveries/" + inv + "/redeliver", None)):
            good = {"get": 200, "put": 200, "patch": 200, "delete": 204, "post": 202}[m]
            if tpl.endswith("/webhooks") and m == "post":
                good = 201
            case(tpl, m, good, path, body)
            # no token: 401; another project's token: 403 (a project token on admin routes)
            case(tpl, m, 401, path, body, token=None)
            admin_only = tpl == "/v1/projects/{p}" and m in ("put", "delete")
            case(tpl, m, 403, path.replace("prj_9", "prj_1"), body,
                 token=mine if admin_only else other)
            nope = path.replace("prj_1", "nope").replace("prj_9", "nope")
            if tpl.endswith("{w}") or tpl.endswith("{w}/recover"):
                nope = path.replace("/wh_1", "/wh_nope").replace("/wh_new", "/wh_nope") \
                           .replace("/wh_fail", "/wh_nope")
            if tpl.endswith("{id}") or tpl.endswith("{id}/redeliver"):
                nope = path.replace(inv, "inv_nope")
            case(tpl, m, 404, nope, body)
            if m in ("put", "post", "patch"):
                case(tpl, m, 413, path, raw=BIG)
            if m in ("put", "post", "patch") and not tpl.endswith("redeliver"):
                case(tpl, m, 400, path, raw=b'{"unclosed": ')

        case("/v1/projects/{p}", "put", 400, "/v1/projects/prj_9", {"webhooks": []})
        case("/v1/projects/{p}/webhooks", "post", 409, W1, dict(wh_new, id="wh_1"))
        case("/v1/projects/{p}/webhooks/{w}", "patch", 400, W1 + "/wh_1", {"url": "ftp://x"})
        case("/v1/projects/{p}/webhooks/{w}/recover", "post", 400, W1 + "/wh_fail/recover",
             {"since": "yesterday"})
        case("/v1/projects/{p}/webhooks/{w}/recover", "post", 409, W1 + "/wh_5/recover",
             {"since": "2020-01-01T00:00:00Z"})
        case("/v1/projects/{p}/webhooks/{w}/recover", "post", 503, None,
             run=stopped("scheduler", lambda: api.call(
                 "POST", W1 + "/wh_fail/recover", body={"since": "2020-01-01T00:00:00Z"},
                 token=admin)))
        case("/v1/projects/{p}/events", "post", 400, P1 + "/events",
             dict(ev, project_id="prj_2"))
        case("/v1/projects/{p}/events", "post", 503, None,
             run=stopped("ingest", lambda: api.call("POST", P1 + "/events", body=fresh_event(),
                                                    token=admin)))
        case("/v1/projects/{p}/deliveries", "get", 400, P1 + "/deliveries?limit=0")
        case("/v1/projects/{p}/deliveries/{id}/redeliver", "post", 409,
             P1 + "/deliveries/" + unsent_inv + "/redeliver")
        case("/v1/projects/{p}/deliveries/{id}/redeliver", "post", 503, None,
             run=stopped("scheduler", lambda: api.call(
                 "POST", P1 + "/deliveries/" + inv + "/redeliver", token=admin)))

        # what the file lists, in the file's order (PUT before DELETE, POST before PATCH)
        listed = []
        for tpl, item in spec["paths"].items():
            for m, op in item.items():
                if m == "parameters":
                    continue
                for status in op["responses"]:
                    listed.append((tpl, m, int(status), op["responses"][status]))
        order = {"get": 0, "put": 1, "post": 2, "patch": 3, "delete": 4}
        listed.sort(key=lambda x: (order[x[1]], x[2] == 503))
        keys = {(t, m, s) for t, m, s, _ in listed}
        self.assertEqual(sorted(keys - set(R)), [], "statuses in the file with no provoker")

        problems = []
        for tpl, m, status, resp in listed:
            got, js, raw = R[(tpl, m, status)]()
            if got != status:
                problems.append("%s %s: expected %d, got %d %s" % (m.upper(), tpl, status, got,
                                                                     raw[:300]))
                continue
            resp = resolve(spec, resp)
            content = (resp.get("content") or {}).get("application/json")
            if content is None:
                if raw:
                    problems.append("%s %s %d: a body where the file has none: %r"
                                    % (m.upper(), tpl, status, raw[:200]))
                continue
            errs = validate(spec, content["schema"], js)
            problems += ["%s %s %d: %s" % (m.upper(), tpl, status, e) for e in errs]
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertGreaterEqual(len(listed), 60)
        api.stop()
        p.stop()


if __name__ == "__main__":
    unittest.main()
