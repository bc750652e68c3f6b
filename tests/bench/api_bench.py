#!/usr/bin/python3
"""api_bench.py - hook-api figures against the real daemons (make bench-api; a benchmark, not
part of the test suite):

1. GET /v1/projects/{p}/deliveries?limit=50 latency, p50/p99, with API_BENCH_RECORDS (default
   1,000,000) records in the delivery log, all of one project (the worst case for its index).
   The log is filled straight into the store by one SQL statement (not by delivering). Measured:
   the first page; pages deep in the log reached by following next_cursor; a filtered first page
   (webhook_id and status=failed: one where 1 record in 100 matches, one where none does, which
   walks the project's whole index). One keep-alive connection, sequential requests.
2. POST /v1/projects/{p}/events throughput with 16 concurrent clients: wrk (2 threads, 16
   connections, a Lua script giving each request a fresh event id) for API_BENCH_SECONDS
   (default 10), against a project with no webhooks (so what is measured is the API and ingest
   accepting durably, --fsync batch, without the sender competing for the 2 cores). Every 202
   answer is an event in ingest's journal.
"""

import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from apiclient import kill_apis, start_api  # noqa: E402
from harness import Pipeline, config  # noqa: E402

RECORDS = int(os.environ.get("API_BENCH_RECORDS") or 1000000)
SECONDS = int(os.environ.get("API_BENCH_SECONDS") or 10)
SAMPLES = int(os.environ.get("API_BENCH_SAMPLES") or 1000)

FILL = """
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < :n - 1)
INSERT INTO deliveries(invocation_id, webhook_id, project_id, event_id, event_type, status,
  attempts, next_attempt_at, created_at, updated_at, req_method, req_url, req_headers, req_body,
  resp_status, resp_headers, resp_body, resp_truncated, error, duration_ms)
SELECT printf('inv_%08d', i), 'wh_' || (1 + i % 4), 'prj_1', printf('evt_%08d', i),
  'opportunity.created', CASE WHEN i % 100 = 0 THEN 3 ELSE 2 END, 1, 0,
  1764000000000 + i * 3, 1764000000000 + i * 3 + 40, 'POST', 'https://hooks.example.com/x',
  '{"Content-Type":"application/json","Authorization":"***","webhook-id":"inv"}',
  '{"type":"opportunity.created","id":"' || printf('evt_%08d', i) ||
  '","project_id":"prj_1","opportunity":{"id":"opp_' || i || '","title":"Deal","value":1000}}',
  CASE WHEN i % 100 = 0 THEN 500 ELSE 200 END, '{"Content-Type":"text/plain"}',
  CASE WHEN i % 100 = 0 THEN 'error' ELSE 'ok' END, 0,
  CASE WHEN i % 100 = 0 THEN 'HTTP 500' ELSE NULL END, 12
FROM c;
"""

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local n = 0
local threads = 0
-- tid is a global of each thread's own Lua state, set before it runs (a fresh id per request)
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  n = n + 1
  local body = string.format('{"type":"opportunity.created","id":"b%%d_%%d",' ..
    '"opportunity":{"id":"opp_%%d","title":"Deal"}}', tid, n, n)
  return wrk.format(nil, "/v1/projects/prj_bench/events", nil, body)
end
"""


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100.0 * len(xs)))]


def timed_get(conn, path, tok):
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": "Bearer " + tok})
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise SystemExit("GET %s: %d %s" % (path, r.status, body[:300]))
    return dt, json.loads(body)


def figures(name, xs):
    ms = [x * 1000 for x in xs]
    print("  %-44s n=%-5d p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms"
          % (name, len(ms), statistics.median(ms), pct(ms, 99), max(ms)))


def main():
    def cfg(port):
        c = config(port)
        c["projects"].append({"id": "prj_bench", "name": "Bench", "opportunity_fields": [],
                              "contact_fields": [], "funnels": [], "webhooks": []})
        return c

    p = Pipeline(cfg=cfg, name="api-bench")
    try:
        p.start()
        # nothing is delivered meanwhile, so the fill is the only writer
        db = os.path.join(p.data, "hookline.db")
        t0 = time.monotonic()
        con = sqlite3.connect(db, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(FILL, {"n": RECORDS})
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = con.execute("SELECT count(*) FROM deliveries WHERE project_id = 'prj_1'").fetchone()[0]
        con.close()
        print("hook-api bench: %d records of prj_1 in the log (filled in %.1f s), db %.0f MB"
              % (n, time.monotonic() - t0, os.path.getsize(db) / 1e6))

        api = start_api(p)
        tok = api.token("bench")
        conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
        base = "/v1/projects/prj_1/deliveries"

        print("GET deliveries, limit 50, one keep-alive connection, sequential:")
        for _ in range(20):  # warm the page cache
            timed_get(conn, base + "?limit=50", tok)
        first = [timed_get(conn, base + "?limit=50", tok)[0] for _ in range(SAMPLES)]
        figures("first page", first)

        deep, cursor, pages = [], None, 0
        while pages < SAMPLES:
            dt, js = timed_get(conn, base + "?limit=50" + ("&cursor=" + cursor if cursor else ""),
                               tok)
            deep.append(dt)
            pages += 1
            cursor = js["next_cursor"]
            if cursor is None:
                break
        figures("following next_cursor (pages 1..%d)" % pages, deep)

        for name, q in (("webhook_id + status=failed (1 in 100 match)", "webhook_id=wh_1"),
                        ("webhook_id + status=failed (none match)", "webhook_id=wh_2")):
            filt = [timed_get(conn, base + "?limit=50&status=failed&" + q, tok)[0]
                    for _ in range(max(20, SAMPLES // 20))]
            figures(name, filt)
        conn.close()

        print("POST events, 16 concurrent clients (wrk -t2 -c16 -d%ds, Lua script), no webhooks:"
              % SECONDS)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(POST_LUA % tok)
            lua = f.name
        out = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % SECONDS, "--latency", "-s", lua,
                              "http://%s:%d" % (api.host, api.port)],
                             capture_output=True, text=True, timeout=SECONDS + 60)
        os.unlink(lua)
        print("\n".join("  " + line for line in out.stdout.splitlines()))
        if out.returncode != 0:
            print(out.stderr)
        rate = [line for line in out.stdout.splitlines() if line.startswith("Requests/sec")]
        non2xx = [line for line in out.stdout.splitlines() if "Non-2xx" in line]
        print("POST events: %s%s" % (rate[0].split(":")[1].strip() + " requests/s" if rate else "?",
                                     ("; " + non2xx[0].strip()) if non2xx else "; every answer 202"))
        # every answer was 202 only if ingest has them: check the count it reports
        rc, st, _ = p.hookctl("status", "--json")
        if st.strip():
            ing = json.loads(st)["stages"].get("ingest") or []
            if ing:
                stats = ing[0].get("stats", {})
                print("ingest stats: %s" % json.dumps({k: v for k, v in stats.items()
                                                       if "accept" in k or "reject" in k or "dup" in k}))
        api.stop()
        p.stop()
    finally:
        kill_apis(p)
        p.cleanup()


if __name__ == "__main__":
    main()
