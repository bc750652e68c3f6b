"""test_frames.py - internal frames with bad fields, sent straight to the scheduler's socket as a
confused or hostile local client would: a REDELIVER without a webhook id is refused with the
field named (no delivery-log row with an empty webhook id), a RETRY with an attempt number past
the schedule or missing job fields is cut off with the reason (the key) logged, and the scheduler goes on
serving."""

import os
import socket
import struct

from harness import PipelineTestCase
from test_crash import log_text


def mp(v):
    """mp encodes the few msgpack values these frames need: str, int >= 0, dict."""
    if isinstance(v, dict):
        out = bytes([0x80 | len(v)])
        for k, x in v.items():
            out += mp(k) + mp(x)
        return out
    if isinstance(v, str):
        b = v.encode()
        return bytes([0xd9, len(b)]) + b if len(b) < 256 else bytes([0xda]) + struct.pack(">H", len(b)) + b
    if isinstance(v, int) and v >= 0:
        return bytes([0xcf]) + struct.pack(">Q", v)
    raise TypeError(v)


def frame(d):
    body = mp(d)
    return struct.pack(">I", len(body)) + body


class Peer:
    """Peer is a raw connection to a stage socket that has said HELLO."""

    def __init__(self, path, stage="hookctl"):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.s.sendall(frame({"t": 1, "v": 2, "stage": stage, "inst": "t", "pid": os.getpid()}))
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, d):
        self.s.sendall(frame(d))

    def frames(self, until):
        """frames reads frames until one contains until (bytes); returns the raw bodies, or the
        bodies read when the peer closed first."""
        out = []
        while True:
            while len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) < 4 + n:
                    break
                out.append(self.buf[4:4 + n])
                self.buf = self.buf[4 + n:]
                if until in out[-1]:
                    return out
            chunk = self.s.recv(65536)
            if not chunk:
                return out
            self.buf += chunk


class TestFrames(PipelineTestCase):
    def test_redeliver_without_webhook_is_refused(self):
        p = self.pipeline()
        c = Peer(os.path.join(p.data, "run", "scheduler.sock"))
        inv = "inv_" + "0" * 32
        c.send({"t": 10, "inv": inv, "wh": "", "ev": "evt_x", "et": "opportunity.created",
                "body": "{}", "ca": 0})
        got = c.frames(b"missing or empty")
        c.close()
        self.assertTrue(any(b"wh missing or empty" in f for f in got), got)
        rc, out, err = p.hookctl("delivery", inv, "--json")
        self.assertNotEqual(rc, 0, "a row was created for a refused redelivery: %s" % out)
        self.assertEqual(p.hookctl("status")[0], 0)
        p.stop()

    def test_retry_with_absurd_fields_is_cut_off(self):
        p = self.pipeline()
        path = os.path.join(p.data, "run", "scheduler.sock")
        job = {"inv": "inv_" + "1" * 32, "wh": "wh_4", "ev": "evt_y", "et": "opportunity.created",
               "body": "{}", "ca": 0, "seq": 1}
        nobody = {k: v for k, v in job.items() if k != "body"}
        for bad, why in ((dict(job, t=6, att=99), "attempt 99 outside 1..6"),
                         (dict(job, t=6, att=2, wh=""), "wh missing or empty"),
                         (dict(nobody, t=6, att=2), 'malformed RETRY frame: key "body" missing'),
                         (dict(job, t=6, att=2, ra="soon"), 'key "ra" not an integer')):
            c = Peer(path, stage="sender")
            c.send(bad)
            c.frames(b"\xff\xfe never")  # read until the scheduler closes the connection
            c.close()
            p.wait_for(lambda: why in log_text(p, "scheduler"), 5,
                       lambda: "the scheduler did not log %r" % why)
        st = p.wait_for(lambda: p.hookctl("status", "--json")[0] == 0, 5)
        self.assertTrue(st)
        rc, out, _ = p.hookctl("status", "--json")
        self.assertIn('"pending":0', out.replace(" ", ""))
        p.stop()
