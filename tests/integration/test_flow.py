"""test_flow.py - flow control end to end (issue 8): a backlog waits on disk, not in memory.

With the routers SIGSTOPped, ingest keeps accepting into its journal and stays under 64 MiB,
also after a SIGKILL and a replay of that backlog; with the senders SIGSTOPped the router stays
under 96 MiB because it builds bodies only when a sender has room; after SIGCONT every
invocation reaches the receiver. A producer that does not read its replies is paused, and read
again once it does. The scales here are chosen so that holding the backlog in memory would
break the bounds (94 MiB of events, 100 MiB of bodies, each also queued for a socket); `make bench-flow` runs the full sizes.
"""

import json
import os
import select
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from harness import PipelineTestCase, created, deadline_after  # noqa: E402
import flow_memory as fm  # noqa: E402

MIB_KIB = 1024

# Under AddressSanitizer, freed memory sits in a quarantine (256 MiB by default) instead of being
# reused, and its allocator gives pages back only every few seconds: both would be measured as
# the stage's own, so turn them off and the bounds hold there too.
ASAN_NO_QUARANTINE = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0:" \
    "thread_local_quarantine_size_kb=0:allocator_release_to_os_interval_ms=0"


class TestFlow(PipelineTestCase):
    def flow_pipeline(self, **kw):
        """flow_pipeline starts a pipeline whose stages run without the ASan quarantine."""
        p = self.pipeline(start=False, **kw)
        if "quarantine" not in p.env.get("ASAN_OPTIONS", ""):
            p.env["ASAN_OPTIONS"] = ASAN_NO_QUARANTINE
        return p.start()

    def test_ingest_backlog_of_large_events_waits_on_disk(self):
        """1,500 events of 64 KiB (94 MiB) accepted while the router is stopped, ingest killed
        and replayed with them all waiting: ingest never passes 64 MiB; after SIGCONT each one is
        delivered, and ingest's memory comes back down."""
        n = 1500
        p = self.flow_pipeline()
        fm.stop(p, ["router.0"], signal.SIGSTOP)
        try:
            rc, out, err, _ = fm.publish_stream(p, fm.event_lines(n, "big", 64 * 1024), n)
            self.assertEqual(rc, 0, out + err[-2000:])
            self.assertIn("%d accepted" % n, err)  # the summary line
            st = fm.stats(p, "ingest")
            self.assertEqual(st["events"], n)
            self.assertEqual(st["producers_paused"], 0)
            hwm = fm.proc_kib(p.daemons["ingest"].proc.pid, "VmHWM")
            self.assertLessEqual(hwm, 64 * MIB_KIB, "ingest peak %d KiB with %d events of 64 KiB "
                                 "waiting for a stopped router" % (hwm, n))
            # A restart replays the whole backlog: positions, not copies.
            d = p.restart("ingest")
            p.wait_for(lambda: fm.stats(p, "ingest").get("replayed") == n, 30,
                       lambda: "ingest did not replay %d events: %r" % (n, fm.stats(p, "ingest")))
            hwm = fm.proc_kib(d.proc.pid, "VmHWM")
            self.assertLessEqual(hwm, 64 * MIB_KIB, "ingest peak %d KiB replaying %d events of "
                                 "64 KiB" % (hwm, n))
        finally:
            fm.stop(p, ["router.0"], signal.SIGCONT)
        state = {}
        p.wait_for(lambda: fm.count_lines(p.receiver_log, state) >= n, 120,
                   lambda: "receiver has %d of %d requests" % (state.get("n", 0), n),
                   interval=0.2)
        # Requests may repeat (the restart re-sent what the stopped router had): wait for every
        # distinct invocation, reading the log again only when it grew.
        seen = {"n": -1, "ids": set()}

        def distinct():
            if fm.count_lines(p.receiver_log, state) != seen["n"]:
                seen["n"] = state["n"]
                seen["ids"] = set(fm.invocation_ids(p.receiver_log))
            return len(seen["ids"]) >= n

        p.wait_for(distinct, 60, lambda: "receiver has %d of %d invocations"
                   % (len(seen["ids"]), n), interval=0.5)
        self.assertEqual(len(seen["ids"]), n)
        p.wait_for(lambda: (lambda s: s.get("queued") == 0 and s.get("in_flight") == 0)(
            fm.stats(p, "ingest")), 30, "ingest kept events after the drain")
        rss = fm.proc_kib(p.daemons["ingest"].proc.pid, "VmRSS")
        self.assertLessEqual(rss, 32 * MIB_KIB, "ingest RSS %d KiB after the drain" % rss)
        p.stop()

    def test_router_builds_bodies_only_when_a_sender_has_room(self):
        """400 events x 16 webhooks of 16 KiB bodies (100 MiB if all were built) with the sender
        stopped: the router stays under 96 MiB; after SIGCONT all 6,400 invocations arrive."""
        n, w = 400, 16
        p = self.flow_pipeline(cfg=lambda port: fm.router_config(port, w))
        fig = fm.router_scenario(p, n, w, 16 * 1024, timeout=120)
        peak = fig["stopped_hwm"]["router.0"]
        self.assertLessEqual(peak, 96 * MIB_KIB, "router peak %d KiB with the sender stopped"
                             % peak)
        self.assertLessEqual(fig["end_hwm"]["router.0"], 96 * MIB_KIB)
        held = fig["held"]
        self.assertGreater(held["waiting"], 0, "the router should hold unmatched events while "
                           "the sender is stopped: %r" % held)
        self.assertEqual(fig["distinct"], n * w)
        self.assertLessEqual(fig["drained_rss"]["router.0"], 32 * MIB_KIB)
        p.stop()

    def test_producer_that_does_not_read_replies_is_paused_then_resumed(self):
        """A producer that writes without reading its replies stops being read once about 1 MiB
        of replies waits for it; when it reads them, ingest reads it again, and every line is
        answered, in order."""
        n = 100000
        p = self.pipeline()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(p.data, "run", "ingest.sock"))
        s.setblocking(False)
        lines = [(json.dumps(created("pp-%d" % i, project_id="prj_none")) + "\n").encode()
                 for i in range(n)]
        data = b"".join(lines)
        sent = 0

        def write_some():
            nonlocal sent
            while sent < len(data):
                try:
                    sent += s.send(data[sent:sent + 65536])
                except BlockingIOError:
                    return

        def paused():
            write_some()
            return fm.stats(p, "ingest").get("producers_paused") == 1

        p.wait_for(paused, 30, lambda: "the producer was never paused: %r, %d of %d bytes sent"
                   % (fm.stats(p, "ingest"), sent, len(data)), interval=0.02)
        st = fm.stats(p, "ingest")
        self.assertLess(st["lines_accepted"], n, "ingest read everything before pausing")
        self.assertGreaterEqual(st["producer_pauses"], 1)
        # While it is paused and its replies are unread, nothing more is read.
        before = st["lines_accepted"]
        write_some()
        self.assertEqual(fm.stats(p, "ingest")["lines_accepted"], before)
        # Now read: the producer is resumed and the rest is accepted.
        buf = b""
        replies = 0
        end = deadline_after(120)
        while replies < n:
            if time.monotonic() > end:
                p.fail("only %d of %d replies read" % (replies, n))
            write_some()
            r, _, _ = select.select([s], [], [], 0.2)
            if not r:
                continue
            chunk = s.recv(1 << 20)
            if not chunk:
                p.fail("ingest closed the stream after %d replies" % replies)
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                rep = json.loads(line)
                self.assertTrue(rep["ok"], rep)
                self.assertEqual(rep["ids"], ["pp-%d" % replies])
                replies += 1
        s.close()
        st = fm.stats(p, "ingest")
        self.assertEqual((st["lines_accepted"], st["producers_paused"]), (n, 0))
        p.stop()


if __name__ == "__main__":
    unittest.main()
