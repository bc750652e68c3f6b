"""test_api_metrics.py - hook-api's GET /metrics and GET /readyz against the real daemons and a
real receiver with failing endpoints: the scraped counters equal what the receiver got and what
the delivery log says; a sender SIGKILLed mid-run and restarted, and hook-api itself killed and
restarted, never make a counter go down or count an attempt twice; /readyz names the stage
that is down. Also the text format itself (HELP/TYPE, label escaping, a histogram whose buckets
are cumulative)."""

import http.client
import os
import re
import select
import signal
import subprocess
import time

# The official client's parser checks the exposition independently of ours (scripts/deps.sh
# installs Debian's python3-prometheus-client).
from prometheus_client.parser import text_string_to_metric_families

from harness import (BIN, SCALE, PipelineTestCase, _die_with_parent, config, created,
                     transitioned, webhook)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """parse_metrics reads Prometheus text into {(name, ((label, value), ...)): float}, with
    the families' types in ["#types"]; any line that is neither a comment nor a valid sample
    raises."""
    out, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels, rest = [], m.group(2) or ""
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                raise AssertionError("bad labels in %r" % line)
            value = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                           lm.group(2))
            labels.append((lm.group(1), value))
            rest = rest[lm.end():]
        out[(m.group(1), tuple(sorted(labels)))] = float(m.group(3))
    out["#types"] = types
    return out


def series(ms, name, **labels):
    """series: the value of one sample (None when absent)."""
    return ms.get((name, tuple(sorted(labels.items()))))


class Api:
    """Api runs bin/hook-api on the pipeline's data dir with --listen 127.0.0.1:0 and finds its
    port in run/api.0.addr."""

    def __init__(self, test, p):
        self.test, self.p, self.proc = test, p, None
        self.log = os.path.join(p.logs, "api.log")
        test.addCleanup(self.kill)

    def start(self):
        addr = os.path.join(self.p.data, "run", "api.0.addr")
        if os.path.exists(addr):
            os.unlink(addr)
        rfd, wfd = os.pipe()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(BIN, "hook-api"), "--data-dir", self.p.data, "--listen",
                 "127.0.0.1:0", "--notify-fd", str(wfd)], pass_fds=(wfd,),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.p.env,
                close_fds=True, preexec_fn=_die_with_parent)
        os.close(wfd)
        try:
            end = time.monotonic() + 15 * SCALE
            buf = b""
            while b"\n" not in buf:
                if time.monotonic() > end or self.proc.poll() is not None:
                    self.test.fail("hook-api not ready (exit %s)" % self.proc.poll())
                r, _, _ = select.select([rfd], [], [], 0.2)
                if r:
                    chunk = os.read(rfd, 64)
                    if not chunk:
                        self.test.fail("hook-api closed its notify fd without a newline")
                    buf += chunk
        finally:
            os.close(rfd)
        with open(addr) as f:
            url = f.read().strip()
        self.host, self.port = url.split("//", 1)[1].rsplit(":", 1)
        self.port = int(self.port)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15 * SCALE)

    def get(self, path):
        """get returns (status, content type, body text)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=10 * SCALE)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode()
        finally:
            c.close()

    def metrics(self):
        st, ctype, body = self.get("/metrics")
        self.test.assertEqual(st, 200, body)
        self.test.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        ms = parse_metrics(body)
        official = {}
        for fam in text_string_to_metric_families(body):
            official[fam.name] = fam.type
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                self.test.assertEqual(ms.get(key), s.value, key)
        # the official parser names a counter family without its _total
        self.test.assertEqual(official.get("hookline_attempts"), "counter", official)
        self.test.assertEqual(official.get("hookline_attempt_duration_seconds"), "histogram")
        return ms


WEBHOOKS = ("wh_ok", "wh_fail", "wh_flaky", "wh_slow")


def hooks(port):
    base = "http://127.0.0.1:%d" % port
    slow = int(600 * SCALE)
    return config(port, webhooks=[
        webhook("wh_ok", base + "/ok/wh_ok", ["opportunity.created"]),
        webhook("wh_fail", base + "/fail/wh_fail", ["opportunity.created"]),
        webhook("wh_flaky", base + "/flaky/1/wh_flaky", ["opportunity.created"]),
        webhook("wh_slow", base + "/slow/%d/wh_slow" % slow, ["opportunity.transitioned"]),
    ])


class ApiMetricsTest(PipelineTestCase):

    def received_by(self, p):
        """received_by: {webhook: [success, failure]} as the receiver answered."""
        got = {w: [0, 0] for w in WEBHOOKS}
        for r in p.received():
            w = r["path"].rstrip("/").rsplit("/", 1)[-1]
            if w in got and r["status"] is not None:
                got[w][0 if 200 <= r["status"] < 300 else 1] += 1
        return got

    def logged_by(self, p):
        """logged_by: {webhook: (attempts, failed invocations)} as the delivery log says."""
        out = {w: [0, 0] for w in WEBHOOKS}
        for d in p.deliveries():
            if d["webhook_id"] in out:
                out[d["webhook_id"]][0] += d["attempts"]
                out[d["webhook_id"]][1] += d["status"] == "failed"
        return out

    def check_against_log(self, p, ms):
        """the counters equal the delivery log's figures, per webhook, and the histogram is
        consistent with the attempts."""
        log = self.logged_by(p)
        for w in WEBHOOKS:
            ok = series(ms, "hookline_attempts_total", webhook_id=w, result="success") or 0
            bad = series(ms, "hookline_attempts_total", webhook_id=w, result="failure") or 0
            self.assertEqual(ok + bad, log[w][0], "%s: attempts counted vs logged" % w)
            self.assertEqual(series(ms, "hookline_invocations_failed_total", webhook_id=w) or 0,
                             log[w][1], "%s: failed invocations counted vs logged" % w)
            if ok + bad == 0:
                continue
            count = series(ms, "hookline_attempt_duration_seconds_count", webhook_id=w)
            self.assertEqual(count, ok + bad, w)
            buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in ms.items()
                              if k != "#types" and k[0] ==
                              "hookline_attempt_duration_seconds_bucket" and
                              dict(k[1])["webhook_id"] == w))
            self.assertEqual(buckets[-1], (float("inf"), count), w)
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                             "%s: buckets not cumulative" % w)
        return log

    def test_metrics_follow_the_receiver_across_a_sender_kill(self):
        p = self.pipeline(cfg=hooks, max_attempts=3)
        api = Api(self, p).start()

        # /readyz: every stage up
        st, _, body = api.get("/readyz")
        self.assertEqual(st, 200, body)

        # phase 1: 10 events to three endpoints (one always failing, one failing once)
        p.publish([created("evt_a%d" % i) for i in range(10)])
        p.wait_deliveries(lambda ds: len(ds) == 30 and all(
            d["status"] in ("succeeded", "failed") for d in ds), timeout=30 * SCALE)
        ms = api.metrics()
        types = ms["#types"]
        for name, typ in (("hookline_events_accepted_total", "counter"),
                          ("hookline_events_rejected_total", "counter"),
                          ("hookline_attempts_total", "counter"),
                          ("hookline_invocations_failed_total", "counter"),
                          ("hookline_attempt_duration_seconds", "histogram"),
                          ("hookline_retries_pending", "gauge"),
                          ("hookline_stage_up", "gauge")):
            self.assertEqual(types.get(name), typ, name)
        got = self.received_by(p)
        self.assertEqual(got["wh_ok"], [10, 0])
        self.assertEqual(got["wh_fail"], [0, 30])  # 3 attempts each
        self.assertEqual(got["wh_flaky"], [10, 10])
        for w in ("wh_ok", "wh_fail", "wh_flaky"):
            self.assertEqual(series(ms, "hookline_attempts_total", webhook_id=w,
                                    result="success"), got[w][0], w)
            self.assertEqual(series(ms, "hookline_attempts_total", webhook_id=w,
                                    result="failure"), got[w][1], w)
        self.assertEqual(series(ms, "hookline_invocations_failed_total", webhook_id="wh_fail"),
                         10)
        self.assertEqual(series(ms, "hookline_invocations_failed_total", webhook_id="wh_ok"), 0)
        self.check_against_log(p, ms)
        self.assertEqual(series(ms, "hookline_events_accepted_total"), 10)
        self.assertEqual(series(ms, "hookline_retries_pending"), 0)
        for stage in ("ingest", "router", "sender", "scheduler"):
            self.assertEqual(series(ms, "hookline_stage_up", stage=stage, instance="0"), 1, stage)
        before = ms

        # phase 2: 4 more events to the first three, settled; then slow requests in flight
        # when the sender is SIGKILLed
        p.publish([created("evt_b%d" % i) for i in range(4)])
        p.wait_deliveries(lambda ds: len(ds) == 42 and all(
            d["status"] in ("succeeded", "failed") for d in ds), timeout=30 * SCALE)
        p.publish([transitioned("evt_w%d" % i) for i in range(6)])
        p.wait_received("/slow/", count=3, timeout=15 * SCALE)
        p.kill("sender")
        ms = api.metrics()  # the socket file stays behind a killed sender: it is down
        self.assertEqual(series(ms, "hookline_stage_up", stage="sender", instance="0"), 0)
        self.assertEqual(series(ms, "hookline_stage_instances_up", stage="sender"), 0)
        st, _, body = api.get("/readyz")
        self.assertEqual(st, 503, body)
        self.assertIn("sender", body)
        self.assertNotIn("router", body.split("missing", 1)[1].split("]")[0])
        self.assert_not_down(before, ms)
        p.start_daemon("sender")
        p.wait_deliveries(lambda ds: len(ds) == 48 and all(
            d["status"] in ("succeeded", "failed") for d in ds), timeout=30 * SCALE)

        # hook-api killed and restarted: the counters are the store's, not its memory
        api.kill()
        api.start()
        ms = api.metrics()
        self.assert_not_down(before, ms)
        log = self.check_against_log(p, ms)
        got = self.received_by(p)
        for w in WEBHOOKS:
            counted = sum(series(ms, "hookline_attempts_total", webhook_id=w, result=r) or 0
                          for r in ("success", "failure"))
            received = sum(got[w])
            # a request in flight when the sender died (its outcome not yet committed) is sent
            # again as the same attempt: the receiver may have it twice, the log and the
            # counters once; the other webhooks were settled before the kill
            self.assertLessEqual(counted, received, w)
            if w != "wh_slow":
                self.assertEqual(counted, received, w)
        self.assertEqual(log["wh_slow"], [6, 0])
        self.assertGreater(sum(got["wh_slow"]), 6)  # the kill did cut requests in flight
        self.assertEqual(series(ms, "hookline_invocations_failed_total", webhook_id="wh_fail"),
                         14)
        self.assertEqual(series(ms, "hookline_retries_pending"), 0)
        st, _, body = api.get("/readyz")
        self.assertEqual(st, 200, body)
        api.kill(signal.SIGTERM)
        self.assertEqual(api.proc.returncode, 0)
        p.stop()

    def assert_not_down(self, before, after):
        """no counter of before is missing or lower in after."""
        for k, v in before.items():
            if k == "#types" or not k[0].endswith(("_total", "_bucket", "_count", "_sum")):
                continue
            if k[0].startswith("hookline_events_"):
                continue  # ingest's own counts, reset by an ingest restart (not here)
            self.assertIn(k, after)
            self.assertGreaterEqual(after[k], v, k)

    def test_readyz_names_missing_stages_and_retries_pending_counts(self):
        p = self.pipeline(cfg=hooks, max_attempts=3, retry_base_ms=int(60000 * SCALE))
        api = Api(self, p).start()
        p.publish([created("evt_r%d" % i) for i in range(3)])
        # wh_fail's and wh_flaky's first attempts fail; their retries are a minute away
        p.wait_deliveries(lambda ds: sum(d["status"] == "retrying" and d["attempts"] == 1
                                         for d in ds) == 6, timeout=15 * SCALE)
        ms = api.metrics()
        self.assertEqual(series(ms, "hookline_retries_pending"), 6)
        self.assertEqual(series(ms, "hookline_attempts_total", webhook_id="wh_flaky",
                                result="failure"), 3)
        p.kill("scheduler")
        p.kill("router")
        st, _, body = api.get("/readyz")
        self.assertEqual(st, 503, body)
        self.assertIn("router, scheduler", body)
        ms = api.metrics()
        self.assertEqual(series(ms, "hookline_stage_up", stage="scheduler", instance="0"), 0)
        self.assertEqual(series(ms, "hookline_stage_up", stage="ingest", instance="0"), 1)
        self.assertEqual(series(ms, "hookline_retries_pending"), 6)  # from the store
        p.start_daemon("scheduler")
        p.start_daemon("router")
        p.wait_for(lambda: api.get("/readyz")[0] == 200, 15 * SCALE, "/readyz never 200 again")
        # a scheduler restart does not count the pending attempts again
        ms = api.metrics()
        self.assertEqual(series(ms, "hookline_attempts_total", webhook_id="wh_flaky",
                                result="failure"), 3)
        self.check_against_log(p, ms)
        p.stop()
