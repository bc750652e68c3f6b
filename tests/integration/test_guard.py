"""test_guard.py - the sender's address guard against the host's own addresses, end to end.

The module moves itself (and so every daemon and receiver it starts) into a network namespace
of its own, where lo also carries 11.22.33.44 and 2a00:5:6:7::44: addresses that no
special-purpose range holds, so only the host-address check can refuse them. Receivers bound to
such an address, or to 0.0.0.0 and reached through it, must get nothing while the delivery log
says `target address not allowed`; `--allow-target` for the address lets it through. An address
added while the sender runs is refused from then on."""

import ctypes
import os
import shutil
import subprocess
import time

from harness import (PYTHON, RECEIVER, PipelineTestCase, _die_with_parent, config, created,
                     deadline_after, webhook)

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
OWN4 = "11.22.33.44"      # DoD space: globally reachable as far as the registries go
OWN6 = "2a00:5:6:7::44"
LATE4 = "11.22.33.45"     # added while the sender runs
REFUSED = "target address not allowed"


def _ip(*args):
    """_ip runs iproute2's ip with args in this namespace; raises with its stderr on failure."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    r = subprocess.run([ip] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("ip %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))


def _enter_netns():
    """_enter_netns moves this process into a new network namespace (as root, or through a
    user namespace), with lo up and carrying OWN4 and OWN6."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        e1 = ctypes.get_errno()
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            raise RuntimeError("cannot make a network namespace: unshare(CLONE_NEWNET): %s; "
                               "with CLONE_NEWUSER: %s"
                               % (os.strerror(e1), os.strerror(ctypes.get_errno())))
        for path, text in (("/proc/self/setgroups", "deny"),
                           ("/proc/self/uid_map", "0 %d 1" % uid),
                           ("/proc/self/gid_map", "0 %d 1" % gid)):
            with open(path, "w") as f:
                f.write(text)
    _ip("link", "set", "lo", "up")
    _ip("addr", "add", OWN4 + "/32", "dev", "lo")
    _ip("-6", "addr", "add", OWN6 + "/128", "dev", "lo", "nodad")


def setUpModule():
    _enter_netns()


class Receiver:
    """Receiver runs tests/receiver.py bound to host in dir; requests() reads what it got."""

    def __init__(self, test, dir, name, host):
        self.log = os.path.join(dir, name + ".jsonl")
        port_file = os.path.join(dir, name + ".port")
        err = open(os.path.join(dir, name + ".err"), "ab")
        self.proc = subprocess.Popen(
            [PYTHON, RECEIVER, "--host", host, "--port-file", port_file, "--log", self.log],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, close_fds=True,
            preexec_fn=_die_with_parent)
        err.close()
        test.addCleanup(self.stop)
        end = deadline_after(10)
        while not os.path.exists(port_file):
            test.assertIsNone(self.proc.poll(), "receiver on %s exited" % host)
            test.assertLess(time.monotonic(), end, "receiver on %s wrote no port file" % host)
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read().strip())

    def requests(self):
        try:
            with open(self.log, encoding="utf-8") as f:
                return [line for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def final(ids):
    """final is a wait_deliveries predicate: a record for each webhook id, none still going."""
    def ok(ds):
        got = {d["webhook_id"]: d for d in ds}
        return set(ids) <= set(got) and all(got[i]["status"] in ("succeeded", "failed")
                                            for i in ids)
    return ok


class TestOwnAddresses(PipelineTestCase):
    def test_own_addresses_are_refused_unless_allowed(self):
        p = self.pipeline(start=False, max_attempts=1)
        bound = Receiver(self, p.tmp, "bound", OWN4)    # the host's own address
        anyaddr = Receiver(self, p.tmp, "any", "0.0.0.0")  # every address, reached through it
        hooks = {
            "wh_bound": "http://%s:%d/ok/bound" % (OWN4, bound.port),
            "wh_any": "http://%s:%d/ok/any" % (OWN4, anyaddr.port),
            "wh_mapped": "http://[::ffff:%s]:%d/ok/mapped" % (OWN4, bound.port),
            "wh_v6": "http://[%s]:%d/ok/v6" % (OWN6, anyaddr.port),
            "wh_late": "http://%s:%d/ok/late" % (LATE4, anyaddr.port),
        }

        def cfg(port):
            # wh_loop goes to the harness's receiver on 127.0.0.1 (allowed by the harness's
            # --allow-target 127.0.0.0/8): the sender does deliver.
            whs = [webhook(i, u, ["opportunity.created"]) for i, u in sorted(hooks.items())]
            whs.append(webhook("wh_loop", "http://127.0.0.1:%d/ok/loop" % port,
                               ["opportunity.created"]))
            return config(port, webhooks=whs)

        p.cfg = cfg
        p.start()
        self.assertEqual(p.daemons["sender.0"].argv.count("--allow-target"), 1)
        # An address that appears while the sender runs is refused as well.
        _ip("addr", "add", LATE4 + "/32", "dev", "lo")
        self.addCleanup(_ip, "addr", "del", LATE4 + "/32", "dev", "lo")

        p.publish([created("evt_own")])
        ids = sorted(hooks) + ["wh_loop"]
        recs = {d["webhook_id"]: d for d in p.wait_deliveries(final(ids), timeout=20)}
        for wid in sorted(hooks):
            d = recs[wid]
            self.assertEqual((d["status"], d["attempts"], d["error"]), ("failed", 1, REFUSED),
                             "%s %s" % (wid, d["request"]["url"]))
            self.assertIsNone(d["response"], wid)
        self.assertEqual(recs["wh_loop"]["status"], "succeeded")
        self.assertEqual(len(p.received("/ok/loop")), 1)
        self.assertEqual(bound.requests(), [])
        self.assertEqual(anyaddr.requests(), [])

        # --allow-target for the address lets it through (and only it: LATE4 stays refused).
        p.kill("sender")
        p.start_daemon("sender", args=["--allow-target", OWN4 + "/32"])
        for wid in ("wh_bound", "wh_any", "wh_late"):
            p.check_hookctl("redeliver", recs[wid]["invocation_id"])

        def redone(ds):
            # a redelivery starts again at attempt 1: its record is the one updated since
            got = {d["webhook_id"]: d for d in ds}
            return all(got[w]["updated_at"] > recs[w]["updated_at"] and
                       got[w]["status"] in ("succeeded", "failed")
                       for w in ("wh_bound", "wh_any", "wh_late"))

        again = {d["webhook_id"]: d for d in p.wait_deliveries(redone, timeout=20)}
        self.assertEqual((again["wh_bound"]["status"], again["wh_bound"]["error"]),
                         ("succeeded", None))
        self.assertEqual(again["wh_bound"]["response"]["status"], 200)
        self.assertEqual((again["wh_any"]["status"], again["wh_any"]["error"]),
                         ("succeeded", None))
        self.assertEqual((again["wh_late"]["status"], again["wh_late"]["error"]),
                         ("failed", REFUSED))
        self.assertEqual(len(bound.requests()), 1)
        self.assertEqual(len(anyaddr.requests()), 1)  # wh_any; wh_late never reached it
        p.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
