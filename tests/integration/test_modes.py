"""test_modes.py - private files left with looser modes are tightened at start: hookline.db and
its -wal and -shm (0644 after a crash, by hand or by an older version) are 0600 once a stage or
hookctl has opened the store, and each change is logged with the path and the old mode."""

import os
import signal
import stat

from harness import PipelineTestCase, created

DB_FILES = ("hookline.db", "hookline.db-wal", "hookline.db-shm")
STAGES = (("ingest", "0"), ("scheduler", "0"), ("router", "0"), ("sender", "0"))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def crashed_pipeline(test):
    """crashed_pipeline runs a pipeline until one event is delivered, then SIGKILLs every stage,
    which leaves hookline.db's -wal and -shm behind as a crash does. Returns the pipeline."""
    p = test.pipeline()
    p.publish([created("evt_modes")])
    p.wait_received("/ok/wh_4")
    p.wait_deliveries(lambda ds: ds and ds[0]["status"] == "succeeded")
    for stage, inst in STAGES:
        p.kill(stage, inst, signal.SIGKILL)
    for n in DB_FILES:
        test.assertTrue(os.path.exists(os.path.join(p.data, n)), n + " not left by the crash")
    return p


def loosen(p, names, to):
    """loosen chmods each DATA/name to mode to and checks it took."""
    for n in names:
        path = os.path.join(p.data, n)
        os.chmod(path, to)
        assert mode(path) == to, path


def logged_tightening(text, path, old, new):
    """logged_tightening: does text hold the line saying path went from old to new?"""
    return "%s: mode was %04o, tightened to %04o" % (path, old, new) in text


class TestModes(PipelineTestCase):
    def test_modes_tightened_db(self):
        p = crashed_pipeline(self)
        loosen(p, DB_FILES, 0o644)
        # A stage opening the store tightens all three and says so in its log.
        p.start_daemon("scheduler")
        for n in DB_FILES:
            self.assertEqual(oct(mode(os.path.join(p.data, n))), oct(0o600), n)
        with open(p.daemons["scheduler"].log_path) as f:
            log = f.read()
        for n in DB_FILES:
            self.assertTrue(logged_tightening(log, os.path.join(p.data, n), 0o644, 0o600),
                            "no line about %s in the scheduler's log" % n)
        # The next start has nothing to tighten and logs nothing about it.
        p.kill("scheduler", sig=signal.SIGKILL)
        p.start_daemon("scheduler")
        with open(p.daemons["scheduler"].log_path) as f:
            after = f.read()[len(log):]
        self.assertNotIn(": mode was ", after)
        p.kill("scheduler", sig=signal.SIGKILL)

        # hookctl opens the store too: the database (and what is left beside it) becomes 0600.
        loosen(p, DB_FILES, 0o664)
        rc, out, err = p.hookctl("deliveries", "--json")
        self.assertEqual(rc, 0, err)
        self.assertIn("evt_modes", out)
        for n in DB_FILES:
            path = os.path.join(p.data, n)
            if n == "hookline.db" or os.path.exists(path):  # hookctl's close may remove them
                self.assertEqual(oct(mode(path)), oct(0o600), n)
        self.assertTrue(logged_tightening(err, os.path.join(p.data, "hookline.db"), 0o664,
                                          0o600), err)

        # Everything still works on the tightened files.
        for stage, inst in STAGES:
            p.start_daemon(stage, inst)
        p.wait_status()
        p.publish([created("evt_modes_2")])
        p.wait_received("/ok/wh_4", count=2)
        p.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
