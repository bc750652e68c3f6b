"""test_journal_crash.py - journals of many segments at every crash point: ingest killed with a
backlog on disk, during its replay, while routing and while compacting, with small segments and
with the default 64 MiB ones; the scheduler killed again and again with retries spread over many
segments; and a full disk under the scheduler's journal. Each test counts what ingest accepted
and what was delivered, prints both, and asserts that nothing was lost."""

import json
import os
import subprocess
import time

from harness import SCALE, PipelineTestCase, config, created, webhook
from test_crash import log_text, mount_small_journal, stage_stats, succeeded_events


def hook(port, path):
    return config(port, webhooks=[webhook("wh_j", "http://127.0.0.1:%d/%s" % (port, path),
                                          ["opportunity.created"])])


def event_ids(reqs):
    """event_ids: the event id in the body of each request answered 200."""
    return {json.loads(r["body"])["id"] for r in reqs if r["status"] == 200}


def segments(p, name):
    jdir = os.path.join(p.data, "journal")
    return sorted(f for f in os.listdir(jdir) if f.startswith(name + "-") and f.endswith(".jnl"))


class TestJournalCrash(PipelineTestCase):
    def _report(self, what, accepted, delivered, extra=""):
        lost = len(set(accepted) - set(delivered))
        print("\n%s: %d events accepted, %d delivered, %d lost%s" %
              (what, len(accepted), len(set(delivered) & set(accepted)), lost, extra))
        self.assertEqual(lost, 0)

    def _start_rest(self, p, routers=("0",)):
        p.start_daemon("scheduler")
        for r in routers:
            p.start_daemon("router", r)
        p.start_daemon("sender")
        p.wait_status()

    def test_ingest_small_segments_every_crash_point(self):
        p = self.pipeline(start=False, ingest_args=["--segment-bytes", "16384"])
        p.start_receiver()
        p.import_config(hook(p.port, "slow/15/x"), settle=False)
        p.start_daemon("ingest")
        ids = ["evt_ms%04d" % i for i in range(400)]
        p.publish([created(i, title="t" * 2000) for i in ids])
        # 1. killed with the whole backlog on disk, no router up: many segments
        p.kill("ingest")
        nseg = len(segments(p, "ingest"))
        self.assertGreater(nseg, 20, "the backlog should span many segments")
        # 2. killed again during its replay, before it says ready
        d = p.start_daemon("ingest", wait_ready=False)
        time.sleep(0.01)
        p.kill("ingest")
        p.start_daemon("ingest")
        self.assertNotIn("replay failed", log_text(p, "ingest"))
        # 3. killed while routing: some events acknowledged (segments freed), others not
        self._start_rest(p)
        p.wait_deliveries(lambda ds: len(succeeded_events(ds)) >= 60, timeout=30 * SCALE)
        p.kill("ingest")
        p.start_daemon("ingest")
        # 4. killed repeatedly while the old, now sparse segments are compacted and deleted
        for i in range(4):
            time.sleep(0.7)
            p.kill("ingest")
            p.start_daemon("ingest")
        ds = p.wait_deliveries(lambda ds: succeeded_events(ds) >= set(ids), timeout=60 * SCALE)
        log = log_text(p, "ingest")
        self.assertNotIn("replay failed", log)
        self.assertNotIn("Bad file descriptor", log)
        got = event_ids(p.received("/slow/"))
        self._report("ingest, 16 KiB segments (%d at the first kill), 7 SIGKILLs" % nseg, ids,
                     got & succeeded_events(ds))
        p.wait_for(lambda: len(segments(p, "ingest")) <= 2, 15 * SCALE,
                   lambda: "segments not deleted after the drain: %r" % segments(p, "ingest"))
        p.stop()

    def test_ingest_default_segments_backlog_past_one_segment(self):
        # The reported case: routers down, about 70 MiB of 64 KiB events (more than one default
        # 64 MiB segment), ingest SIGKILLed, restarted, SIGKILLed during its replay, restarted.
        n = 1100
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(hook(p.port, "ok/x"), settle=False)
        p.start_daemon("ingest")
        ids = ["evt_big%04d" % i for i in range(n)]
        for i in range(0, n, 100):
            p.publish([created(e, title="b" * 65536) for e in ids[i:i + 100]])
        self.assertGreaterEqual(len(segments(p, "ingest")), 2)
        p.kill("ingest")
        p.start_daemon("ingest")
        p.kill("ingest")
        p.start_daemon("ingest", wait_ready=False)
        time.sleep(0.05)
        p.kill("ingest")
        p.start_daemon("ingest")
        self.assertNotIn("replay failed", log_text(p, "ingest"))
        self._start_rest(p)

        def succeeded():  # the text listing: the JSON one would carry 70 MB of bodies a poll
            out, _ = p.check_hookctl("deliveries", "--status", "succeeded", "--limit", "1000000")
            return sum(1 for l in out.splitlines()[1:] if " succeeded " in l) >= n

        p.wait_for(succeeded, 120 * SCALE, "not every event was delivered", interval=1.0)
        ds = p.deliveries()
        got = event_ids(p.received("/ok/"))
        self._report("ingest, default 64 MiB segments, 1100 x 64 KiB events, 3 SIGKILLs", ids,
                     got & succeeded_events(ds))
        p.stop()

    def test_scheduler_small_segments_killed_again_and_again(self):
        n = 300
        p = self.pipeline(retry_base_ms=int(300 * SCALE), retry_factor=1.5, max_attempts=8,
                          scheduler_args=["--segment-bytes", "8192"],
                          cfg=lambda port: hook(port, "flaky/4/x"))
        ids = ["evt_sk%04d" % i for i in range(n)]
        p.publish([created(i, title="r" * 1000) for i in ids])
        p.wait_for(lambda: (stage_stats(p, "scheduler").get("0", {}).get("pending") or 0) > n // 2,
                   20 * SCALE, lambda: "retries never pending: %r" % stage_stats(p, "scheduler"))
        most = 0
        for i in range(8):
            most = max(most, len(segments(p, "scheduler")))
            p.kill("scheduler")
            p.start_daemon("scheduler")
            time.sleep(0.4)
        ds = p.wait_deliveries(lambda ds: len(ds) == n and
                               all(d["status"] == "succeeded" for d in ds), timeout=90 * SCALE)
        log = log_text(p, "scheduler")
        self.assertNotIn("unreadable", log)
        self.assertNotIn("replay failed", log)
        self.assertGreater(most, 4, "the retries should span many segments")
        got = event_ids(p.received("/flaky/"))
        self._report("scheduler, 8 KiB segments (up to %d), 8 SIGKILLs" % most, ids,
                     got & succeeded_events(ds))
        p.wait_for(lambda: stage_stats(p, "scheduler").get("0", {}).get("pending") == 0, 10)
        p.stop()

    def test_scheduler_journal_disk_full(self):
        # The scheduler's journal fills up while retries come in: the senders are not cut off
        # (no resend storm), the log says so at a bounded rate, and once space is back every
        # retry is journaled and made.
        p = self.pipeline(start=False, retry_base_ms=200, retry_factor=1, max_attempts=6)
        p.start_receiver()
        p.import_config(hook(p.port, "flaky/2/x"), settle=False)
        jdir = mount_small_journal(self, p, "2m")
        p.start_daemon("ingest")
        p.start_daemon("scheduler")
        ids = ["evt_full%03d" % i for i in range(40)]
        p.publish([created(i, title="f" * 500) for i in ids])  # accepted with room to spare
        filler = os.path.join(jdir, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        t_full = time.monotonic()
        p.start_daemon("router")
        p.start_daemon("sender")
        p.wait_received("/flaky/", count=len(ids), timeout=20 * SCALE)  # every attempt 1 failed
        time.sleep(3)
        reqs = p.received("/flaky/")
        self.assertEqual(len(reqs), len(ids), "retries were sent while the disk was full, or "
                         "attempts were repeated: %d requests" % len(reqs))
        failed_lines = [l for l in log_text(p, "scheduler").splitlines()
                        if "journal sync failed" in l]
        self.assertTrue(failed_lines, "the scheduler did not say its journal is full")
        self.assertIn("No space left on device", failed_lines[0])
        secs = time.monotonic() - t_full
        self.assertLessEqual(len(failed_lines), 2 + secs / 10 * 2, failed_lines)
        self.assertTrue(p.daemons["scheduler"].running())
        os.unlink(filler)
        ds = p.wait_deliveries(lambda ds: len(ds) == len(ids) and
                               all(d["status"] == "succeeded" for d in ds), timeout=40 * SCALE)
        for d in ds:
            self.assertEqual(d["attempts"], 3, d)
        got = event_ids(p.received("/flaky/"))
        self._report("scheduler journal on a full disk", ids, got & succeeded_events(ds),
                     ", %d 'journal sync failed' lines in %.1f s" % (len(failed_lines), secs))
        p.stop()
