"""test_crash.py - crashes and hostile disks: a torn or corrupt ingest journal, a killed
scheduler with retries pending, a sender killed with requests in flight, a full disk under
ingest, SIGTERM under load, and several routers and senders sharing the work. Every test ends
with the same check: nothing ingest accepted is lost (docs/DURABILITY.md)."""

import glob
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import SCALE, PipelineTestCase, config, created, webhook

JOURNAL_HDR = b"HLJNL1\n\0"


def journal_records(path):
    """journal_records returns [(offset, payload length)] of the records of one segment file,
    walking the [u32 le length][u32 le crc32c][payload] layout of common/util/journal.h."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != JOURNAL_HDR:
        raise AssertionError("%s: no journal segment header" % path)
    out, off = [], 8
    while off + 8 <= len(data):
        n, _crc = struct.unpack_from("<II", data, off)
        if off + 8 + n > len(data):
            break
        out.append((off, n))
        off += 8 + n
    return out


def newest_segment(data_dir, name):
    segs = sorted(glob.glob(os.path.join(data_dir, "journal", name + "-*.jnl")))
    if not segs:
        raise AssertionError("no %s journal segment in %s/journal" % (name, data_dir))
    return segs[-1]


def log_text(p, key):
    with open(os.path.join(p.logs, key + ".log"), encoding="utf-8", errors="replace") as f:
        return f.read()


def status(p):
    """status returns `hookctl status --json` parsed (stages: {stage: [instance, ...]})."""
    rc, out, err = p.hookctl("status", "--json")
    if not out.strip():
        return {"stages": {}, "ok": False, "stderr": err}
    doc = json.loads(out)
    if err.strip():
        doc["stderr"] = err
    return doc


def stage_stats(p, stage):
    """stage_stats returns the stats of every live instance of stage, by instance name."""
    return {i.get("instance", "?"): i.get("stats", {}) for i in status(p)["stages"].get(stage, [])}


def succeeded_events(ds, webhook_id=None):
    return {d["event_id"] for d in ds if d["status"] == "succeeded" and
            (webhook_id is None or d["webhook_id"] == webhook_id)}


def one_hook(port, path, wid="wh_c", events=("opportunity.created",)):
    """one_hook is a configuration with a single webhook posting to the receiver at path."""
    return config(port, webhooks=[webhook(wid, "http://127.0.0.1:%d/%s" % (port, path.lstrip("/")),
                                          list(events))])


def mount_small_journal(test, p, size):
    """mount_small_journal mounts a tmpfs of size on p's journal directory (a disk that fills
    up), unmounted at the test's cleanup once the stages using it are stopped. Returns the
    directory."""
    jdir = os.path.join(p.data, "journal")
    os.makedirs(jdir, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                        jdir], capture_output=True, text=True)
    if r.returncode != 0:
        test.fail("cannot mount a %s tmpfs on %s (this test needs root and mount(2); it "
                  "must not be skipped): %s" % (size, jdir, r.stderr.strip()))

    def unmount():
        for d in p.daemons.values():  # their files live on it
            if d.running():
                d.proc.kill()
                d.proc.wait()
        if subprocess.run(["umount", jdir], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", jdir], capture_output=True)

    test.addCleanup(unmount)
    return jdir


class Producer(threading.Thread):
    """Producer speaks the raw JSON Lines protocol on run/ingest.sock (docs/PROTOCOL.md) from a
    thread: it writes the lines while reading the replies in order, so it knows exactly which
    events ingest accepted even when ingest goes away half way."""

    def __init__(self, data_dir, events):
        super().__init__(daemon=True)
        self.path = os.path.join(data_dir, "run", "ingest.sock")
        self.events = events
        self.accepted = set()
        self.replies = 0
        self.error = None

    def _write(self, sock):
        try:
            for i in range(0, len(self.events), 100):
                chunk = "".join(json.dumps(e) + "\n" for e in self.events[i:i + 100])
                sock.sendall(chunk.encode())
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # ingest stopped reading: the replies tell what it took

    def run(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
            w = threading.Thread(target=self._write, args=(sock,), daemon=True)
            w.start()
            buf = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for l in lines:
                    r = json.loads(l)
                    self.replies += 1
                    if r.get("ok"):
                        self.accepted.update(r["ids"])
            w.join(10)
        except OSError as e:
            self.error = e
        finally:
            sock.close()


class TestCrash(PipelineTestCase):
    # --- fresh journals ---

    def test_empty_journals_survive_the_compaction_pass(self):
        # ingest and scheduler run a compaction pass every second; with no segment yet (a fresh
        # data dir, nothing published, no retry) that pass must be a no-op, not a crash.
        p = self.pipeline()
        time.sleep(2.5)
        dead = {k: d.proc.returncode for k, d in p.daemons.items() if not d.running()}
        self.assertEqual(dead, {}, "stages died with an empty journal (exit status; -11 is "
                         "SIGSEGV)")
        p.wait_status(timeout=2)
        p.stop()

    # --- the ingest journal ---

    def _ingest_alone(self, n, prefix):
        """_ingest_alone starts the receiver and ingest only (no router: accepted events stay
        in the ingest journal), publishes n created events and SIGKILLs ingest. Returns the
        pipeline and the event ids in order."""
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        p.start_daemon("ingest")
        ids = ["%s%02d" % (prefix, i) for i in range(n)]
        p.publish([created(i) for i in ids])
        p.kill("ingest")
        return p, ids

    def _start_rest(self, p):
        p.start_daemon("scheduler")
        p.start_daemon("router")
        p.start_daemon("sender")
        p.wait_status()

    def test_torn_ingest_journal_tail(self):
        p, ids = self._ingest_alone(20, "evt_torn")
        seg = newest_segment(p.data, "ingest")
        recs = journal_records(seg)
        self.assertEqual(len(recs), 20, "one journal record per accepted event expected")
        off, n = recs[-1]
        cut = off + 8 + n // 2
        os.truncate(seg, cut)  # the last record's payload is half there: a torn write
        p.start_daemon("ingest")
        self.assertEqual(os.path.getsize(seg), off, "the torn tail is not cut off on disk")
        self._start_rest(p)
        recs_ = p.wait_deliveries(lambda ds: succeeded_events(ds, "wh_4") >= set(ids[:-1]))
        # The cut tail is named in the log with its file and offset.
        log = log_text(p, "ingest")
        line = [l for l in log.splitlines() if seg in l and "offset %d" % off in l]
        self.assertTrue(line, "ingest's log names neither %s nor offset %d:\n%s" % (seg, off, log))
        self.assertIn("short record payload", line[0])
        self.assertIn("truncating the %d bytes" % (cut - off), line[0])
        self.assertFalse([d for d in recs_ if d["status"] not in ("succeeded", "pending")])
        # ingest takes new events after the repair.
        p.publish([created("evt_torn_after")])
        p.wait_deliveries(lambda ds: "evt_torn_after" in succeeded_events(ds))
        p.stop()

    def test_corrupt_ingest_record_detected_by_crc(self):
        p, ids = self._ingest_alone(20, "evt_crc")
        seg = newest_segment(p.data, "ingest")
        recs = journal_records(seg)
        self.assertEqual(len(recs), 20)
        bad = 12
        off, n = recs[bad]
        with open(seg, "r+b") as f:  # flip one byte in the middle of the payload
            f.seek(off + 8 + n // 2)
            b = f.read(1)
            f.seek(off + 8 + n // 2)
            f.write(bytes([b[0] ^ 0x5a]))
        p.start_daemon("ingest")
        self._start_rest(p)
        p.wait_deliveries(lambda ds: succeeded_events(ds, "wh_4") >= set(ids[:bad]))
        log = log_text(p, "ingest")
        line = [l for l in log.splitlines() if seg in l and "offset %d" % off in l]
        self.assertTrue(line, "ingest's log does not name %s offset %d:\n%s" % (seg, off, log))
        self.assertIn("crc mismatch", line[0])
        self.assertIn("journal", log_text(p, "ingest"))
        p.publish([created("evt_crc_after")])
        p.wait_deliveries(lambda ds: "evt_crc_after" in succeeded_events(ds))
        p.stop()

    # --- the scheduler journal ---

    def test_scheduler_killed_with_retries_pending(self):
        # A long first wait so the retries are surely pending when the scheduler dies; the due
        # times are in its journal, so the restarted one keeps them, and its short base only
        # shortens the waits after that.
        base = int(2500 * SCALE)
        p = self.pipeline(retry_base_ms=base, retry_factor=2,
                          cfg=lambda port: one_hook(port, "/flaky/2/x"))
        ids = ["evt_sch%d" % i for i in range(5)]
        p.publish([created(i) for i in ids])
        p.wait_for(lambda: stage_stats(p, "scheduler").get("0", {}).get("pending") == 5, 5,
                   lambda: "scheduler never had 5 pending: %r" % stage_stats(p, "scheduler"))
        p.wait_deliveries(lambda ds: len(ds) == 5 and all(d["status"] == "retrying" for d in ds))
        p.kill("scheduler")
        t_kill = time.time()
        p.start_daemon("scheduler", args=["--retry-base-ms", "100"])
        st = stage_stats(p, "scheduler").get("0", {})
        if time.time() - t_kill < base / 1000.0 * 0.8:  # still before the first due time
            self.assertEqual(st.get("replayed"), 5, st)
        self.assertIn("5 pending retries rebuilt", log_text(p, "scheduler"))
        ds = p.wait_deliveries(lambda ds: len(ds) == 5 and
                               all(d["status"] == "succeeded" for d in ds), timeout=15)
        for d in ds:
            self.assertEqual(d["attempts"], 3, d)
        reqs = p.received("/flaky/")
        for inv in {r["h"]["webhook-id"] for r in reqs}:
            mine = [r for r in reqs if r["h"]["webhook-id"] == inv]
            self.assertEqual([r["h"]["x-webhook-attempt"] for r in mine], ["1", "2", "3"])
            self.assertEqual([r["status"] for r in mine], [500, 500, 200])
            # The rebuilt timer kept its due time: attempt 2 came no earlier than the base.
            self.assertGreaterEqual(mine[1]["t"] - mine[0]["t"], base / 1000.0 * 0.95)
        self.assertEqual(stage_stats(p, "scheduler").get("0", {}).get("pending"), 0)
        p.stop()

    # --- the sender ---

    def test_sender_killed_with_requests_in_flight(self):
        delay = int(1500 * SCALE)
        p = self.pipeline(cfg=lambda port: one_hook(port, "/slow/%d/x" % delay))
        ids = ["evt_slow%d" % i for i in range(10)]
        p.publish([created(i) for i in ids])
        p.wait_received("/slow/", count=10)  # all ten requests are now waiting for answers
        p.kill("sender")
        p.start_daemon("sender")
        ds = p.wait_deliveries(lambda ds: len(ds) == 10 and
                               all(d["status"] == "succeeded" for d in ds), timeout=15)
        for d in ds:
            self.assertEqual(d["attempts"], 1, "the kill counted as a failed attempt: %r" % d)
            self.assertIsNone(d["error"])
        self.assertEqual(succeeded_events(ds), set(ids))
        reqs = p.received("/slow/")
        self.assertGreaterEqual(len(reqs), 20)  # each one sent again after the restart
        self.assertEqual({r["h"]["x-webhook-attempt"] for r in reqs}, {"1"})
        sch = stage_stats(p, "scheduler")
        self.assertEqual(sch.get("0", {}).get("retries"), 0, status(p))
        p.stop()

    def test_failed_attempt_outlives_its_sender_while_no_scheduler_runs(self):
        """A failed attempt waits in its sender while no scheduler runs; the delivery log holds
        it as retrying from then on. The sender killed and restarted, the router hands it the
        job again: the restarted sender reads the failure back and hands it to the scheduler
        once one is up, instead of sending attempt 1 a second time."""
        p = self.pipeline(start=False, cfg=lambda port: one_hook(port, "/fail/x"))
        p.start_receiver()
        p.import_config(p.cfg(p.port), settle=False)
        for stage in ("ingest", "router", "sender"):
            p.start_daemon(stage)
        ids = ["evt_undecided%d" % i for i in range(10)]
        p.publish([created(i) for i in ids])
        p.wait_received("/fail/", count=10)
        ds = p.wait_deliveries(lambda ds: len(ds) == 10 and all(
            d["status"] == "retrying" and d["attempts"] == 1 for d in ds))
        for d in ds:
            self.assertIsNone(d["next_attempt_at"], "no scheduler decided yet: %r" % d)
            self.assertEqual(d["response"]["status"], 500, d)
        p.kill("sender")
        p.start_daemon("sender")
        p.wait_for(lambda: stage_stats(p, "sender").get("0", {}).get("deduped") == 10,
                   message=lambda: "the restarted sender did not take the 10 copies from the "
                   "log: %s" % status(p))
        self.assertEqual(len(p.received("/fail/")), 10, "attempt 1 sent again")
        p.start_daemon("scheduler")
        p.wait_received("/fail/", count=20)
        reqs = p.received("/fail/")
        per = {}
        for r in reqs:
            key = (r["h"]["webhook-id"], r["h"]["x-webhook-attempt"])
            per[key] = per.get(key, 0) + 1
        self.assertEqual(sorted(n for (inv, att), n in per.items() if att == "1"), [1] * 10,
                         "attempt 1 of some invocation reached the receiver twice")
        self.assertEqual(len([k for k in per if k[1] == "2"]), 10, per)
        ds = p.wait_deliveries(lambda ds: all(d["attempts"] >= 2 for d in ds))
        for d in ds:
            self.assertEqual(d["response"]["status"], 500, d)
        p.stop()

    # --- a full disk ---

    def _mount_small_journal(self, p, size):
        return mount_small_journal(self, p, size)

    def test_disk_full_refuses_clearly_loses_nothing(self):
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        jdir = self._mount_small_journal(p, "256k")
        p.start_daemon("ingest")
        accepted, rejected, reasons = [], [], []
        for batch in range(40):
            ids = ["evt_full%04d_%03d" % (batch, i) for i in range(100)]
            rc, out, err = p.publish([created(i, title="x" * 200) for i in ids], expect=None)
            bad = {}
            for m in re.finditer(r"^line (\d+): (.*)$", err, re.M):
                bad[int(m.group(1))] = m.group(2)
            self.assertEqual(rc, 2 if bad else 0, err)
            for n, i in enumerate(ids, 1):
                (rejected if n in bad else accepted).append(i)
            reasons += bad.values()
            if bad:
                break
        self.assertTrue(rejected, "ingest never refused an event on a 256k journal disk")
        self.assertTrue(accepted)
        for r in reasons:
            self.assertIn("No space left on device", r)
        self.assertIn("No space left on device", log_text(p, "ingest"))
        self.assertTrue(p.daemons["ingest"].running(), "ingest died on a full disk")
        # More room, same ingest: it accepts again.
        r = subprocess.run(["mount", "-o", "remount,size=8m", jdir], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        more = ["evt_full_more%02d" % i for i in range(20)]
        p.publish([created(i) for i in more])
        accepted += more
        # Everything accepted before, during and after is delivered.
        p.start_daemon("scheduler")
        p.start_daemon("router")
        p.start_daemon("sender")
        p.wait_deliveries(lambda ds: succeeded_events(ds, "wh_4") >= set(accepted), timeout=30)
        p.stop()

    # --- graceful stop ---

    def test_sigterm_under_load(self):
        # Small windows spread the work over every stage: when SIGTERM comes, the sender has
        # requests running, the router jobs out, ingest events out and more in its journal, and
        # a producer is still writing.
        p = self.pipeline(ingest_args=["--window", "64"], router_args=["--window", "64"])
        first = ["evt_load%05d" % i for i in range(2000)]
        p.publish([created(i) for i in first])
        prod = Producer(p.data, [created("evt_more%05d" % i) for i in range(2000)])
        prod.start()
        p.wait_received("/ok/wh_4", count=200)
        procs = {k: d for k, d in p.daemons.items()}
        for d in procs.values():
            d.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        limit = 5 * SCALE + 1.0
        for k, d in procs.items():
            try:
                rc = d.proc.wait(max(0.1, t0 + limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.fail("%s did not exit within %.1f s of SIGTERM" % (k, limit))
            self.assertEqual(rc, 0, "%s exited with %s after SIGTERM" % (k, rc))
            # It finished its in-flight work; the grace timer did not have to cut it short. Not
            # the router: a JOB it sent just as the sender began draining is never taken, and
            # the router then waits out its grace (ingest still holds those events).
            if not k.startswith("router"):
                self.assertNotIn("grace period", log_text(p, k), k)
        prod.join(10 * SCALE)
        self.assertFalse(prod.is_alive())
        accepted = set(first) | prod.accepted
        before = len(p.received("/ok/wh_4"))
        self.assertLess(before, len(accepted), "everything was delivered before the SIGTERM: "
                        "the test did not stop the stages under load")
        p.start_daemon("ingest")
        p.start_daemon("scheduler")
        p.start_daemon("router")
        p.start_daemon("sender")
        p.wait_deliveries(lambda ds: succeeded_events(ds, "wh_4") >= accepted, timeout=30)
        p.stop()

    # --- several routers and senders ---

    def test_two_routers_three_senders_share_the_work(self):
        p = self.pipeline(routers=2, senders=3)

        def wired():
            st = status(p)["stages"]
            return (len(st.get("router", [])) == 2 and len(st.get("sender", [])) == 3 and
                    all(i["stats"].get("routers") == 2 for i in st.get("ingest", [])) and
                    all(i["stats"].get("senders") == 3 for i in st["router"]))

        p.wait_for(wired, 10, lambda: "routers and senders never all connected: %r" % status(p))
        ids = ["evt_share%05d" % i for i in range(3000)]
        p.publish([created(i) for i in ids])
        p.wait_deliveries(lambda ds: succeeded_events(ds, "wh_4") >= set(ids), timeout=30)
        routers = stage_stats(p, "router")
        senders = stage_stats(p, "sender")
        self.assertEqual(sorted(routers), ["0", "1"])
        self.assertEqual(sorted(senders), ["0", "1", "2"])
        for name, st in routers.items():
            self.assertGreater(st.get("jobs", 0), 0, "router %s got no work: %r" % (name, routers))
        for name, st in senders.items():
            self.assertGreater(st.get("jobs", 0), 0, "sender %s got no work: %r" % (name, senders))
        self.assertGreaterEqual(sum(s["jobs"] for s in routers.values()), 3000)
        self.assertGreaterEqual(sum(s["succeeded"] for s in senders.values()), 3000)
        p.stop()
