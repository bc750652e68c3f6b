"""test_dedupe.py - idempotent ingest: an event whose (project_id, id) was accepted within the
dedupe window is answered as accepted with "duplicate": true (JSON Lines and msgpack replies),
is not delivered again (nor its derived won/lost), also across a SIGKILL of ingest; hookctl
publish counts duplicates and exits 0; --dedupe-window 0 delivers twice; a copy that arrives
while the first one's sync is under way waits for it; Ctrl-C during publish prints the summary
so far and exits 130; a copy of an event whose journal sync failed (a full disk) is refused
too, never answered as a duplicate, and its retry is new."""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

from harness import BIN, PipelineTestCase, config, created, deadline_after, transitioned
from test_crash import mount_small_journal


def stats(p, stage="ingest"):
    rc, out, _ = p.hookctl("status", "--json")
    st = json.loads(out)["stages"].get(stage) or [] if out.strip() else []
    return st[0]["stats"] if st else {}


def body_ids(reqs):
    return sorted(json.loads(r["body"])["id"] for r in reqs)


def mp(v):
    """mp encodes the msgpack values an event needs: str, dict, None."""
    if isinstance(v, dict):
        out = bytes([0x80 | len(v)])
        for k, x in v.items():
            out += mp(k) + mp(x)
        return out
    if isinstance(v, str):
        b = v.encode()
        return bytes([0xd9, len(b)]) + b
    if v is None:
        return b"\xc0"
    raise TypeError(v)


def mp_read(b, i=0):
    """mp_read decodes one msgpack value of a reply (maps, arrays, str, bool, uint) at i."""
    t = b[i]
    if 0x80 <= t <= 0x8f:
        d, i = {}, i + 1
        for _ in range(t & 0x0f):
            k, i = mp_read(b, i)
            d[k], i = mp_read(b, i)
        return d, i
    if 0x90 <= t <= 0x9f:
        a, i = [], i + 1
        for _ in range(t & 0x0f):
            x, i = mp_read(b, i)
            a.append(x)
        return a, i
    if 0xa0 <= t <= 0xbf:
        n = t & 0x1f
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if t == 0xd9:
        n = b[i + 1]
        return b[i + 2:i + 2 + n].decode(), i + 2 + n
    if t in (0xc2, 0xc3):
        return t == 0xc3, i + 1
    if t < 0x80:
        return t, i + 1
    if t == 0xcf:
        return struct.unpack(">Q", b[i + 1:i + 9])[0], i + 9
    raise ValueError("unexpected msgpack byte 0x%02x" % t)


class Producer:
    """Producer speaks the socket protocol directly (JSON Lines or msgpack)."""

    def __init__(self, p):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(os.path.join(p.data, "run", "ingest.sock"))
        self.buf = b""

    def close(self):
        self.s.close()

    def json_replies(self, events):
        self.s.sendall(b"".join(json.dumps(e).encode() + b"\n" for e in events))
        while self.buf.count(b"\n") < len(events):
            self.buf += self.s.recv(65536)
        lines = self.buf.split(b"\n")
        self.buf = b"\n".join(lines[len(events):])
        return [json.loads(l) for l in lines[:len(events)]]

    def msgpack_replies(self, events):
        self.s.sendall(b"".join(mp(e) for e in events))
        out = []
        while len(out) < len(events):
            try:
                v, n = mp_read(self.buf)
                out.append(v)
                self.buf = self.buf[n:]
            except IndexError:
                self.buf += self.s.recv(65536)
        return out


EVENTS = [created("dd_c1", "opp_1", title="A"),
          created("dd_c2", "opp_2", title="B"),
          transitioned("dd_t1", "opp_1", "stg_new", "stg_won")]
# wh_4 gets created (2), wh_3 transitioned (1), wh_1 the derived won (1)
EXPECTED = ["dd_c1", "dd_c2", "dd_t1", "dd_t1.won"]


class TestDedupe(PipelineTestCase):
    def assert_delivered_once(self, p):
        p.wait_received(count=len(EXPECTED))
        recs = p.wait_deliveries(lambda ds: len(ds) >= 4 and
                                 all(d["status"] == "succeeded" for d in ds))
        self.assertEqual(len(recs), 4)
        self.assertEqual(body_ids(p.received()), EXPECTED)

    def test_publish_twice_delivers_once(self):
        p = self.pipeline()
        rc, _, err = p.publish(EVENTS)
        self.assertIn("published 3 lines: 3 accepted (4 events), 0 duplicates, 0 rejected", err)
        self.assert_delivered_once(p)
        rc, _, err = p.publish(EVENTS)
        self.assertEqual(rc, 0, err)
        self.assertIn("published 3 lines: 0 accepted (0 events), 3 duplicates, 0 rejected", err)
        # a mix: one new, one duplicate, one rejected
        rc, _, err = p.publish([created("dd_c3", "opp_3"), EVENTS[0], {"type": "nope"}],
                               expect=2)
        self.assertIn("published 3 lines: 1 accepted (1 event), 1 duplicate, 1 rejected", err)
        p.wait_received(count=5)
        time.sleep(0.5)  # a wrong second delivery would be under way by now: check none came
        self.assertEqual(body_ids(p.received()), sorted(EXPECTED + ["dd_c3"]))
        st = stats(p)
        self.assertEqual(st["duplicates"], 4)
        self.assertEqual(st["dedupe_window"], 86400)
        self.assertGreaterEqual(st["dedupe_keys"], 4)

        # the socket replies: same ids, "duplicate": true; JSON Lines and msgpack alike
        pr = Producer(p)
        self.assertEqual(pr.json_replies([EVENTS[2]]),
                         [{"ok": True, "ids": ["dd_t1", "dd_t1.won"], "duplicate": True}])
        pr.close()
        pr = Producer(p)
        got = pr.msgpack_replies([EVENTS[0], created("dd_mp1", "opp_9")])
        self.assertEqual(got, [{"ok": True, "ids": ["dd_c1"], "duplicate": True},
                               {"ok": True, "ids": ["dd_mp1"]}])
        got = pr.msgpack_replies([created("dd_mp1", "opp_9")])
        self.assertEqual(got, [{"ok": True, "ids": ["dd_mp1"], "duplicate": True}])
        pr.close()
        p.wait_received(count=6)
        time.sleep(0.3)
        self.assertEqual(body_ids(p.received()), sorted(EXPECTED + ["dd_c3", "dd_mp1"]))
        p.stop()

    def test_duplicate_across_sigkill_of_ingest(self):
        p = self.pipeline()
        p.publish(EVENTS)
        self.assert_delivered_once(p)
        p.restart("ingest")  # SIGKILL, then start again
        p.wait_status()
        rc, _, err = p.publish(EVENTS)
        self.assertEqual(rc, 0, err)
        self.assertIn("0 accepted (0 events), 3 duplicates, 0 rejected", err)
        # and once more right after a SIGKILL that follows a publish at once (the index batch
        # may not be written yet: the journal puts the keys back)
        p.publish([created("dd_k1", "opp_5")])
        p.restart("ingest")
        p.wait_status()
        rc, _, err = p.publish([created("dd_k1", "opp_5")])
        self.assertIn("0 accepted (0 events), 1 duplicate, 0 rejected", err)
        p.wait_received(count=5)
        time.sleep(0.5)
        self.assertEqual(body_ids(p.received()), sorted(EXPECTED + ["dd_k1"]))
        p.stop()

    def test_window_zero_delivers_twice(self):
        p = self.pipeline(ingest_args=["--dedupe-window", "0"])
        p.publish(EVENTS)
        p.wait_received(count=4)
        rc, _, err = p.publish(EVENTS)
        self.assertIn("3 accepted (4 events), 0 duplicates, 0 rejected", err)
        p.wait_received(count=8)
        self.assertEqual(body_ids(p.received()), sorted(EXPECTED * 2))
        self.assertFalse(os.path.exists(os.path.join(p.data, "dedupe")))
        p.stop()

    def test_copy_during_first_sync(self):
        # --fsync always: both lines arrive in one read, so the second copy is looked up while
        # the first one's sync is under way (it waits for it, then says duplicate)
        p = self.pipeline(fsync="always")
        pr = Producer(p)
        ev = created("dd_s1", "opp_1")
        got = pr.json_replies([ev, ev, created("dd_s2", "opp_2"), ev])
        self.assertEqual(got, [{"ok": True, "ids": ["dd_s1"]},
                               {"ok": True, "ids": ["dd_s1"], "duplicate": True},
                               {"ok": True, "ids": ["dd_s2"]},
                               {"ok": True, "ids": ["dd_s1"], "duplicate": True}])
        pr.close()
        pr = Producer(p)  # the first byte of a connection sets its encoding
        tr = transitioned("dd_s3", "opp_3", "stg_new", "stg_lost")
        got = pr.msgpack_replies([tr, tr])
        self.assertEqual(got, [{"ok": True, "ids": ["dd_s3", "dd_s3.lost"]},
                               {"ok": True, "ids": ["dd_s3", "dd_s3.lost"], "duplicate": True}])
        pr.close()
        p.wait_received(count=4)  # dd_s1, dd_s2 (wh_4); dd_s3 (wh_3); dd_s3.lost (wh_2)
        time.sleep(0.5)
        self.assertEqual(body_ids(p.received()), ["dd_s1", "dd_s2", "dd_s3", "dd_s3.lost"])
        p.stop()

    def test_publish_sigint_prints_summary(self):
        p = self.pipeline()
        ctl = subprocess.Popen([os.path.join(BIN, "hookctl"), "--data-dir", p.data, "publish",
                                "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=p.env)
        p.publish([EVENTS[0]])
        lines = [EVENTS[0], EVENTS[1], {"type": "nope"}]
        ctl.stdin.write(b"".join(json.dumps(e).encode() + b"\n" for e in lines))
        ctl.stdin.flush()
        # replies come in order: once line 3's error is printed, all three were read
        os.set_blocking(ctl.stderr.fileno(), False)
        seen = b""
        end = deadline_after(10)
        while b"line 3: " not in seen:
            if time.monotonic() > end:
                self.fail("hookctl printed no error for line 3: %r" % seen)
            select.select([ctl.stderr], [], [], 0.1)
            seen += ctl.stderr.read() or b""
        ctl.send_signal(signal.SIGINT)
        os.set_blocking(ctl.stderr.fileno(), True)
        out, err = ctl.communicate(timeout=5)
        err = seen + err
        self.assertEqual(ctl.returncode, 130, err)
        self.assertIn(b"line 3: ", err)
        self.assertIn(b"interrupted: 3 lines read, 1 accepted (1 event), 1 duplicate, "
                      b"1 rejected; 0 lines sent without a reply yet", err)
        p.stop()

    def test_refused_copy_is_not_a_duplicate(self):
        # Every event twice in a row, onto a journal disk that fills up: a copy may say
        # "duplicate" only when its first copy was accepted; a refused event's retry is new.
        p = self.pipeline(start=False)
        p.start_receiver()
        p.import_config(config(p.port), settle=False)
        jdir = mount_small_journal(self, p, "256k")
        p.start_daemon("ingest")
        accepted, refused, dups = set(), set(), []
        for batch in range(60):
            evs = []
            for i in range(50):
                e = created("dd_full%03d_%02d" % (batch, i), title="x" * 200)
                evs += [e, e]
            pr = Producer(p)
            replies = pr.json_replies(evs)
            pr.close()
            for e, r in zip(evs, replies):
                if not r["ok"]:
                    self.assertIn("No space left on device", r["error"])
                    refused.add(e["id"])
                elif r.get("duplicate"):
                    dups.append(e["id"])
                else:
                    self.assertNotIn(e["id"], accepted, "accepted twice")
                    accepted.add(e["id"])
            if refused:
                break
        self.assertTrue(refused, "ingest never refused an event on a 256k journal disk")
        self.assertTrue(dups)
        for i in dups:
            self.assertIn(i, accepted, "a copy of an event that was not accepted said duplicate")
        r = subprocess.run(["mount", "-o", "remount,size=8m", jdir], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        retry = sorted(refused - accepted)
        self.assertTrue(retry)
        pr = Producer(p)
        replies = pr.json_replies([created(i, title="x" * 200) for i in retry])
        pr.close()
        self.assertEqual(replies, [{"ok": True, "ids": [i]} for i in retry])
        p.start_daemon("scheduler")
        p.start_daemon("router")
        p.start_daemon("sender")
        want = accepted | set(retry)
        p.wait_received(count=len(want), timeout=30)
        time.sleep(0.5)
        self.assertEqual(body_ids(p.received()), sorted(want))
        p.stop()
