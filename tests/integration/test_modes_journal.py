"""test_modes_journal.py - the journal/ and run/ half of the modes test: directories left 0755 by an
earlier install are tightened to 0700 at start, and the stage logs each one."""

import os
import stat

from harness import PipelineTestCase
from test_modes import STAGES, crashed_pipeline, logged_tightening, mode


class TestModesJournal(PipelineTestCase):
    def test_modes_tightened_journal_and_run(self):
        p = crashed_pipeline(self)
        journal = os.path.join(p.data, "journal")
        run = os.path.join(p.data, "run")
        dirs = [root for root, _, _ in os.walk(journal)]
        self.assertIn(journal, dirs)
        for d in dirs + [run]:
            os.chmod(d, 0o755)
        # Each journaling stage tightens its own journal directories; any stage tightens run/.
        for stage, inst in STAGES:
            p.start_daemon(stage, inst)
        p.wait_status()
        logs = ""
        for stage, inst in STAGES:
            with open(p.daemons[p.key(stage, inst)].log_path) as f:
                logs += f.read()
        self.assertEqual(oct(mode(run)), oct(0o700), run)
        self.assertTrue(logged_tightening(logs, run, 0o755, 0o700),
                        "no stage logged the tightening of %s" % run)
        for d in dirs:
            self.assertEqual(oct(stat.S_IMODE(os.stat(d).st_mode)), oct(0o700), d)
            self.assertTrue(logged_tightening(logs, d, 0o755, 0o700),
                            "no stage logged the tightening of %s" % d)
        p.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
