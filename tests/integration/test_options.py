"""test_options.py - the four daemons' command lines, read from their option tables: --help lists
every flag the contract names with its default, --version, and bad input exits 2 with a message
naming the flag and the value, before anything starts (no data dir is created)."""

import os
import re
import subprocess
import tempfile
import unittest

from harness import BIN, PROGRAMS, child_env

# (program, flag, default shown in --help or None): the contract's flags, the skeleton's common
# ones, and each stage's own.
EXPECTED = [
    ("scheduler", "--retry-base-ms N", "30000"),
    ("scheduler", "--retry-factor F", "4"),
    ("scheduler", "--retry-jitter FRACTION", "0.1"),
    ("scheduler", "--max-attempts N", "6"),
    ("scheduler", "--window N", "4096"),
    ("scheduler", "--log-max-age-days D", "30"),
    ("scheduler", "--log-keep N", "10000"),
    ("sender", "--connect-timeout-ms N", "5000"),
    ("sender", "--timeout-ms N", "15000"),
    ("sender", "--allow-target CIDR", None),
    ("sender", "--max-inflight N", "512"),
    ("sender", "--max-per-endpoint N", "16"),
    ("sender", "--ca-file PEM", None),
    ("sender", "--disable-on-410", None),
    ("sender", "--defer-after-ms N", "2000"),
    ("router", "--window N", "4096"),
    ("router", "--max-body-bytes N", "262144"),
    ("ingest", "--window N", "4096"),
] + [(stage, flag, default) for stage in PROGRAMS for flag, default in (
    ("--data-dir DIR", "$HOOKLINE_DATA, else ./var"), ("--instance NAME", "0"), ("--fsync always|batch|off", "batch"),
    ("--notify-fd N", None), ("--grace-ms N", "5000"), ("--peer-timeout-ms N", "5000"),
    ("--log-level LEVEL", "info"),
    ("--help", None), ("--version", None))] + [
    ("ingest", "--segment-bytes N", "67108864"),
    ("scheduler", "--segment-bytes N", "67108864"),
]

# (program, argv, what stderr must hold)
BAD = [
    ("scheduler", ["--retry-base-ms", "soon"], "--retry-base-ms: want a whole number from 0 to "
     "604800000, got 'soon'"),
    ("scheduler", ["--retry-factor", "0.5"], "--retry-factor: want a number from 1 to 100, got "
     "'0.5'"),
    ("scheduler", ["--retry-jitter", "2"], "--retry-jitter: want a number from 0 to 1, got '2'"),
    ("scheduler", ["--max-attempts", "0"], "--max-attempts: want a whole number from 1 to 100, "
     "got '0'"),
    ("scheduler", ["--max-attempts", "2.5"], "got '2.5'"),
    ("scheduler", ["--log-max-age-days", "-1"], "--log-max-age-days: want a number from 0 to "
     "36500, got '-1'"),
    ("sender", ["--timeout-ms", "0"], "--timeout-ms: want a whole number from 1 to 3600000, got "
     "'0'"),
    ("sender", ["--allow-target", "10.0.0.0/99"], "--allow-target: "),
    ("sender", ["--disable-on-410=yes"], "--disable-on-410=yes"),
    ("router", ["--max-body-bytes", "16777216"], "--max-body-bytes: want a whole number from 1 "
     "to 15728640, got '16777216'"),
    ("router", ["--segment-bytes", "8192"], "unknown option '--segment-bytes'"),
    ("sender", ["--peer-timeout-ms", "-1"], "--peer-timeout-ms: want a whole number from 0 to "
     "3600000, got '-1'"),
    ("ingest", ["--window", "0"], "--window: want a whole number from 1 to 1000000, got '0'"),
    ("ingest", ["--fsync", "sometimes"], "--fsync: want one of always|batch|off, got "
     "'sometimes'"),
    ("ingest", ["--no-such-flag"], "unknown option '--no-such-flag' (try --help)"),
    ("ingest", ["--window"], "--window needs a value"),
    ("ingest", ["stray"], "unexpected argument 'stray'"),
]


def run(stage, args, data):
    return subprocess.run([os.path.join(BIN, PROGRAMS[stage])] + args, capture_output=True,
                          text=True, timeout=30, env=child_env({"HOOKLINE_DATA": data}))


class TestOptions(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hookline-options-")
        self.data = os.path.join(self.tmp.name, "data")

    def tearDown(self):
        self.tmp.cleanup()

    def test_help_lists_every_flag_with_its_default(self):
        helps = {}
        for stage in PROGRAMS:
            r = run(stage, ["--help"], self.data)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith("usage: %s [OPTIONS]\n" % PROGRAMS[stage]))
            helps[stage] = r.stdout
        for stage, flag, default in EXPECTED:
            line = [l for l in helps[stage].splitlines() if re.match(r"\s+%s(\s|$)" %
                                                                      re.escape(flag), l)]
            self.assertEqual(len(line), 1, "%s --help: no line for %s:\n%s" %
                             (stage, flag, helps[stage]))
            if default is not None:
                self.assertIn("(default %s)" % default, line[0], stage)
            else:
                self.assertNotIn("(default", line[0], stage)
        self.assertNotIn("--segment-bytes", helps["router"])
        self.assertNotIn("--segment-bytes", helps["sender"])
        self.assertFalse(os.path.exists(self.data))

    def test_version(self):
        for stage in PROGRAMS:
            r = run(stage, ["--version"], self.data)
            self.assertEqual(r.returncode, 0)
            self.assertRegex(r.stdout, r"^hookline \d+\.\d+\.\d+\n$")

    def test_bad_values_exit_2_naming_flag_and_value(self):
        for stage, args, msg in BAD:
            r = run(stage, args, self.data)
            self.assertEqual(r.returncode, 2, "%s %s: %s" % (stage, args, r.stderr))
            self.assertIn("%s: " % PROGRAMS[stage], r.stderr)
            self.assertIn(msg, r.stderr, "%s %s" % (stage, args))
        self.assertFalse(os.path.exists(self.data))  # nothing started


if __name__ == "__main__":
    unittest.main()
