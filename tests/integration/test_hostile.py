"""test_hostile.py - hostile endpoints against the real daemons: an endless body, slowloris,
oversized and malformed response heads, redirects to internal addresses, names that resolve to
loopback, resets in mid-answer, 2,000 endpoints at once, Retry-After, and the 410 opt-in. The
misbehaving server is tests/hostile_receiver.py (raw sockets); plain answers come from
tests/receiver.py."""

import json
import os
import resource
import subprocess
import threading
import time

from harness import (PYTHON, REPO, SCALE, Pipeline, PipelineTestCase, _die_with_parent, config,
                     created, deadline_after, webhook)

HOSTILE = os.path.join(REPO, "tests", "hostile_receiver.py")
BODY_CAP = 64 * 1024      # response body bytes kept in the delivery log
HEADERS_CAP = 16 * 1024   # response header bytes (names + values) kept in the delivery log


class Hostile:
    """Hostile runs tests/hostile_receiver.py in dir and reads what it logged."""

    def __init__(self, test, dir, extra_ports=0, refusing_ports=0):
        self.log = os.path.join(dir, "hostile.jsonl")
        port_file = os.path.join(dir, "hostile.ports")
        err = open(os.path.join(dir, "hostile.err"), "ab")
        self.proc = subprocess.Popen(
            [PYTHON, HOSTILE, "--port-file", port_file, "--log", self.log,
             "--extra-ports", str(extra_ports), "--refusing-ports", str(refusing_ports)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, close_fds=True,
            preexec_fn=_die_with_parent)
        err.close()
        test.addCleanup(self.stop)
        end = deadline_after(10)
        while not os.path.exists(port_file):
            test.assertIsNone(self.proc.poll(), "hostile receiver exited")
            test.assertLess(time.monotonic(), end, "hostile receiver wrote no port file")
            time.sleep(0.02)
        with open(port_file) as f:
            ports = json.load(f)
        self.ports, self.refusing = ports["listen"], ports["refuse"]
        self.port = self.ports[0]

    def url(self, path, port=None):
        return "http://127.0.0.1:%d/%s" % (port or self.port, path.lstrip("/"))

    def entries(self):
        """entries returns every logged line (requests and events), oldest first."""
        out = []
        try:
            with open(self.log, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def requests(self, prefix=""):
        return [e for e in self.entries() if "method" in e and e["path"].startswith(prefix)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class GuardedPipeline(Pipeline):
    """GuardedPipeline runs the sender without the harness's --allow-target 127.0.0.0/8, as in
    production: loopback and private targets are refused."""

    def daemon_argv(self, stage, instance="0"):
        argv = super().daemon_argv(stage, instance)
        if stage == "sender":
            i = argv.index("--allow-target")
            del argv[i:i + 2]
        return argv


def hooks_cfg(port, hooks):
    """hooks_cfg is the harness's config with only the given webhooks."""
    return config(port, webhooks=list(hooks))


def created_hook(id, url):
    return webhook(id, url, ["opportunity.created"])


def by_webhook(recs):
    return {d["webhook_id"]: d for d in recs}


def all_final(n):
    """all_final is a wait_deliveries predicate: n records, none pending or retrying."""
    return lambda ds: len(ds) == n and all(d["status"] in ("succeeded", "failed") for d in ds)


def sender_stats(p):
    rc, out, err = p.hookctl("status", "--json")
    if rc != 0:
        p.fail("hookctl status: exit %d: %s" % (rc, err))
    return json.loads(out)["stages"]["sender"][0]["stats"]


class TestHostile(PipelineTestCase):
    def hostile_pipeline(self, hooks, extra_ports=0, refusing_ports=0, cls=Pipeline, **kw):
        """hostile_pipeline starts a hostile receiver and a pipeline whose webhooks come from
        hooks(hostile) (a list); returns (pipeline, hostile)."""
        p = cls(name=self.id().split(".")[-1], **kw)
        self._pipelines.append(p)
        h = Hostile(self, p.tmp, extra_ports, refusing_ports)
        p.cfg = lambda port: hooks_cfg(port, hooks(h))
        p.start()
        return p, h

    def test_endless_body_is_capped_and_cut_off(self):
        p, h = self.hostile_pipeline(lambda h: [
            created_hook("wh_endless", h.url("/endless/a")),
            created_hook("wh_ok", h.url("/ok/b"))], sender_args=["--timeout-ms", "20000"])
        p.publish([created("evt_endless")])
        recs = by_webhook(p.wait_deliveries(all_final(2), timeout=20))
        d = recs["wh_endless"]
        self.assertEqual(d["status"], "succeeded")  # the 2xx head arrived complete
        self.assertIsNone(d["error"])
        self.assertEqual(d["attempts"], 1)
        self.assertEqual(d["response"]["status"], 200)
        self.assertIs(d["response"]["truncated"], True)
        self.assertEqual(len(d["response"]["body"]), BODY_CAP)
        self.assertEqual(set(d["response"]["body"]), {"y"})
        # Cut off well before the 20 s timeout, after reading at most its 1 MiB limit: the
        # server sees the connection go away.
        self.assertLess(d["duration_ms"], 10000)
        gone = p.wait_for(lambda: [e for e in h.entries() if e.get("event") == "gone"], 10,
                          "the endless answer was never cut off")
        self.assertGreaterEqual(gone[0]["sent"], 1 << 20)
        self.assertLess(gone[0]["sent"], 64 << 20)
        self.assertEqual(recs["wh_ok"]["status"], "succeeded")
        # The sender stays healthy: nothing left running, the next event goes through.
        self.assertEqual(sender_stats(p)["http_in_flight"], 0)
        p.publish([created("evt_after")])
        p.wait_deliveries(all_final(4))
        self.assertEqual(len(h.requests("/ok/b")), 2)
        p.stop()

    def test_slowloris_hits_the_total_timeout(self):
        p, h = self.hostile_pipeline(lambda h: [
            created_hook("wh_slow", h.url("/trickle/100/a")),
            created_hook("wh_ok", h.url("/ok/b"))],
            max_attempts=2, sender_args=["--timeout-ms", "1000"])
        t0 = time.monotonic()
        p.publish([created("evt_slow")])
        # The healthy endpoint is not held back by the trickling one.
        p.wait_deliveries(lambda ds: any(d["webhook_id"] == "wh_ok" and
                                         d["status"] == "succeeded" for d in ds), timeout=5)
        self.assertLess(time.monotonic() - t0, 1.0 * SCALE + 2)
        d = by_webhook(p.wait_deliveries(all_final(2), timeout=20))["wh_slow"]
        self.assertEqual(d["status"], "failed")
        self.assertEqual(d["attempts"], 2)
        self.assertEqual(d["error"], "timeout after 1000 ms")
        self.assertGreaterEqual(d["duration_ms"], 1000)
        self.assertLess(d["duration_ms"], 1000 + 2000 * SCALE)
        # Its status line came, its head never ended: the log says what arrived.
        self.assertEqual(d["response"]["status"], 200)
        self.assertEqual(len(h.requests("/trickle/")), 2)
        p.stop()

    def test_oversized_and_malformed_heads_fail_cleanly(self):
        p, h = self.hostile_pipeline(lambda h: [
            created_hook("wh_bighead", h.url("/bighead/1048576/a")),
            created_hook("wh_nocolon", h.url("/nocolon/b")),
            created_hook("wh_garbage", h.url("/garbage/c")),
            created_hook("wh_many", h.url("/manyheaders/2000/d")),
            created_hook("wh_flood", h.url("/manyheaders/20000/e"))], max_attempts=1)
        p.publish([created("evt_heads")])
        recs = by_webhook(p.wait_deliveries(all_final(5), timeout=20))
        self.assertEqual((recs["wh_bighead"]["status"], recs["wh_bighead"]["error"]),
                         ("failed", "response headers too large"))
        self.assertEqual((recs["wh_nocolon"]["status"], recs["wh_nocolon"]["error"]),
                         ("failed", "invalid HTTP response: Header without colon"))
        self.assertEqual((recs["wh_garbage"]["status"], recs["wh_garbage"]["error"]),
                         ("failed", "invalid HTTP response: no HTTP status line"))
        self.assertIsNone(recs["wh_garbage"]["response"])
        # Valid answers with many headers: delivered, and the log keeps a capped prefix; past
        # libcurl's own limit on a whole head (300 KiB) the answer is refused.
        self.assertEqual((recs["wh_many"]["status"], recs["wh_many"]["error"]),
                         ("succeeded", None))
        self.assertEqual((recs["wh_flood"]["status"], recs["wh_flood"]["error"]),
                         ("failed", "response headers too large"))
        for wh, n in (("wh_many", 2000), ("wh_flood", 20000)):
            d = recs[wh]
            hs = d["response"]["headers"]
            kept = sum(len(k) + len(v) for k, v in hs.items())
            self.assertLessEqual(kept, HEADERS_CAP, wh)
            self.assertGreater(len(hs), 100, wh)
            self.assertLess(len(hs), n, wh)
            self.assertEqual(hs["X-Filler-0"], "f" * 64)
        for d in recs.values():
            if d["response"]:
                kept = sum(len(k) + len(v) for k, v in d["response"]["headers"].items())
                self.assertLessEqual(kept, HEADERS_CAP, d["webhook_id"])
        # Nothing crashed: the sender still delivers.
        self.assertIsNone(p.daemons["sender.0"].proc.poll())
        p.stop()

    def test_redirect_to_internal_address_is_not_followed(self):
        p, h = self.hostile_pipeline(lambda h: [
            created_hook("wh_loop", h.url("/redirect/a?to=" + h.url("/ok/landed"))),
            created_hook("wh_meta", h.url(
                "/redirect/b?to=http://169.254.169.254/latest/meta-data/"))], max_attempts=1)
        p.publish([created("evt_redirect")])
        recs = by_webhook(p.wait_deliveries(all_final(2), timeout=20))
        for wh, loc in (("wh_loop", h.url("/ok/landed")),
                        ("wh_meta", "http://169.254.169.254/latest/meta-data/")):
            d = recs[wh]
            self.assertEqual(d["status"], "failed")
            self.assertEqual(d["error"], "HTTP status 302")
            self.assertEqual(d["response"]["status"], 302)
            self.assertEqual(d["response"]["headers"]["Location"], loc)
        self.assertEqual(h.requests("/ok/"), [])
        self.assertEqual(len(h.requests("/redirect/")), 2)
        p.stop()

    def test_names_resolving_to_loopback_are_refused(self):
        # localhost (libcurl resolves it itself), every loopback name in /etc/hosts (the
        # system resolver's), and numeric spellings of loopback addresses.
        names = {"localhost"}
        if os.path.exists("/etc/hosts"):
            with open("/etc/hosts") as f:
                for line in f:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2 and (fields[0].startswith("127.") or fields[0] == "::1"):
                        names.update(fields[1:])
        hosts = sorted(names) + ["127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]",
                                 "[::1]"]

        def hooks(h):
            return [created_hook("wh_%d" % i, "http://%s:%d/ok/%d" % (host, h.port, i))
                    for i, host in enumerate(hosts)]

        p, h = self.hostile_pipeline(hooks, cls=GuardedPipeline, max_attempts=1)
        self.assertNotIn("--allow-target", p.daemons["sender.0"].argv)
        p.publish([created("evt_guard")])
        recs = p.wait_deliveries(all_final(len(hosts)), timeout=20)
        for d in recs:
            url = d["request"]["url"]
            self.assertEqual((d["status"], d["error"]), ("failed", "target address not allowed"),
                             url)
            self.assertIsNone(d["response"], url)
        self.assertEqual(h.requests(), [])
        self.assertEqual(sender_stats(p)["refused_targets"], len(hosts))
        p.stop()

    def test_reset_in_mid_answer_is_retried(self):
        p, h = self.hostile_pipeline(lambda h: [created_hook("wh_reset", h.url("/reset/a"))],
                                     max_attempts=3)
        p.publish([created("evt_reset")])
        d = p.wait_deliveries(all_final(1), timeout=20)[0]
        self.assertEqual(d["status"], "failed")
        self.assertEqual(d["error"], "connection reset")
        self.assertEqual(d["attempts"], 3)
        reqs = h.requests("/reset/")
        self.assertEqual([r["h"]["x-webhook-attempt"] for r in reqs], ["1", "2", "3"])
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
        for gap, want in zip(gaps, [0.1, 0.2]):  # FAST_RETRY: 100 ms, then 200 ms
            self.assertGreaterEqual(gap, want * 0.95)
        p.stop()

    def test_two_thousand_endpoints_keep_file_descriptors_bounded(self):
        inflight, listening, total = 100, 50, 2000
        def hooks(h):
            out = [created_hook("wh_ok_%d" % i, h.url("/ok/%d" % i, port))
                   for i, port in enumerate(h.ports)]
            out += [created_hook("wh_no_%d" % i, "http://127.0.0.1:%d/x" % port)
                    for i, port in enumerate(h.refusing)]
            return out

        # The refusing ports are bound by the hostile receiver but never listen: nobody else
        # can take them, and connecting to them is refused at once.
        p, h = self.hostile_pipeline(hooks, extra_ports=listening - 1,
                                     refusing_ports=total - listening, max_attempts=1, senders=0,
                                     sender_args=["--max-inflight", str(inflight)])
        # Started under a soft open-file limit far below what 2,000 endpoints could take: the
        # sender raises it for its caps (100 transfers + 4,096 cached connections + 64 spare).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 128), hard))
        try:
            p.senders = ["0"]
            p.start_daemon("sender")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        p.wait_status()
        need = inflight + 4096 + 64
        with open("/proc/%d/limits" % p.daemons["sender.0"].proc.pid) as f:
            row = [l for l in f if l.startswith("Max open files")][0].split()
        self.assertEqual(int(row[3]), need if hard == resource.RLIM_INFINITY else min(need, hard))
        self.assertEqual((len(h.ports), len(h.refusing)), (listening, total - listening))
        pid = p.daemons["sender.0"].proc.pid
        fd_dir = "/proc/%d/fd" % pid
        base = len(os.listdir(fd_dir))
        peak = [base]
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], len(os.listdir(fd_dir)))
                except OSError:
                    return
                stop.wait(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            p.publish([created("evt_many")])
            recs = p.wait_deliveries(all_final(total), timeout=120)
        finally:
            stop.set()
            watcher.join()
        ok = [d for d in recs if d["webhook_id"].startswith("wh_ok_")]
        no = [d for d in recs if d["webhook_id"].startswith("wh_no_")]
        self.assertEqual(len(ok), listening)
        self.assertEqual({(d["status"], d["error"]) for d in ok}, {("succeeded", None)})
        self.assertEqual(len(no), total - listening)
        self.assertEqual({(d["status"], d["error"]) for d in no},
                         {("failed", "connection refused")})
        self.assertEqual(len(h.requests("/ok/")), listening)
        # Sockets: at most --max-inflight transfers plus the cached connections to the
        # listening ports, over what the sender held before.
        self.assertLessEqual(peak[0], base + inflight + listening + 16,
                             "peak %d fds, %d before" % (peak[0], base))
        self.assertGreater(peak[0], base)  # the watcher saw the work happen
        st = sender_stats(p)
        self.assertEqual((st["http_in_flight"], st["http_queued"]), (0, 0))
        p.stop()

    def test_retry_after_stretches_the_wait(self):
        p = self.pipeline(retry_base_ms=50, retry_factor=4, max_attempts=6,
                          cfg=lambda port: hooks_cfg(port, [
                              created_hook("wh_503", "http://127.0.0.1:%d/retry-after/503/2/1/a"
                                           % port),
                              created_hook("wh_429", "http://127.0.0.1:%d/retry-after/429/2/1/b"
                                           % port),
                              created_hook("wh_500", "http://127.0.0.1:%d/flaky/1/c" % port)]))
        p.publish([created("evt_ra")])
        recs = by_webhook(p.wait_deliveries(all_final(3), timeout=20))
        for wh, prefix in (("wh_503", "/retry-after/503/"), ("wh_429", "/retry-after/429/")):
            self.assertEqual((recs[wh]["status"], recs[wh]["attempts"]), ("succeeded", 2), wh)
            reqs = p.received(prefix)
            self.assertEqual([r["status"] for r in reqs], [int(prefix.split("/")[2]), 200])
            gap = reqs[1]["t"] - reqs[0]["t"]
            self.assertGreaterEqual(gap, 2.0, wh)
            self.assertLess(gap, 2.0 + 3 * SCALE, wh)
        # Without Retry-After the schedule's own 50 ms applies.
        reqs = p.received("/flaky/")
        self.assertEqual(len(reqs), 2)
        self.assertLess(reqs[1]["t"] - reqs[0]["t"], 1.5)
        p.stop()

    def test_retry_after_is_capped_by_the_schedule(self):
        # Base 100 ms, factor 2, 3 attempts: the longest wait the schedule has is 200 ms.
        p = self.pipeline(max_attempts=3, cfg=lambda port: hooks_cfg(port, [
            created_hook("wh_ra", "http://127.0.0.1:%d/retry-after/503/3600/1/a" % port)]))
        p.publish([created("evt_cap")])
        d = p.wait_deliveries(all_final(1), timeout=20)[0]
        self.assertEqual((d["status"], d["attempts"]), ("succeeded", 2))
        reqs = p.received("/retry-after/")
        gap = reqs[1]["t"] - reqs[0]["t"]
        self.assertGreaterEqual(gap, 0.19)
        self.assertLess(gap, 3.0)
        p.stop()

    def test_410_is_retried_by_default(self):
        p = self.pipeline(max_attempts=3, cfg=lambda port: hooks_cfg(port, [
            created_hook("wh_gone", "http://127.0.0.1:%d/status/410/a" % port)]))
        p.publish([created("evt_410")])
        d = p.wait_deliveries(all_final(1), timeout=20)[0]
        self.assertEqual((d["status"], d["attempts"], d["error"]), ("failed", 3, "HTTP status 410"))
        self.assertEqual(len(p.received("/status/410/")), 3)
        out, _ = p.check_hookctl("webhook", "list", "--json")
        self.assertIs(json.loads(out.splitlines()[0])["enabled"], True)
        p.stop()

    def test_410_disables_the_webhook_with_the_flag(self):
        p = self.pipeline(sender_args=["--disable-on-410"], cfg=lambda port: hooks_cfg(port, [
            created_hook("wh_gone", "http://127.0.0.1:%d/status/410/a" % port),
            created_hook("wh_ok", "http://127.0.0.1:%d/ok/b" % port)]))
        p.publish([created("evt_410")])
        recs = by_webhook(p.wait_deliveries(all_final(2), timeout=20))
        d = recs["wh_gone"]
        self.assertEqual(d["status"], "failed")
        self.assertEqual(d["attempts"], 1)
        self.assertEqual(d["error"], "410 Gone: webhook wh_gone disabled")
        self.assertEqual(d["response"]["status"], 410)
        self.assertIsNone(d["next_attempt_at"])
        self.assertEqual(recs["wh_ok"]["status"], "succeeded")
        shown = p.delivery(d["invocation_id"])
        self.assertEqual(shown["error"], "410 Gone: webhook wh_gone disabled")
        out, _ = p.check_hookctl("webhook", "list", "--json")
        enabled = {w["id"]: w["enabled"] for w in map(json.loads, out.splitlines())}
        self.assertEqual(enabled, {"wh_gone": False, "wh_ok": True})
        out, _ = p.check_hookctl("webhook", "list")
        row = [l for l in out.splitlines() if l.startswith("wh_gone ")][0]
        self.assertEqual(row.split()[2], "no")
        self.assertEqual(sender_stats(p)["webhooks_disabled"], 1)
        # No more retries, and new events no longer match it.
        p.wait_config_seen()
        p.publish([created("evt_410_next")])
        p.wait_deliveries(lambda ds: len(ds) == 3 and all(
            x["status"] == "succeeded" for x in ds if x["webhook_id"] == "wh_ok"))
        self.assertEqual(len(p.received("/status/410/")), 1)
        p.stop()
