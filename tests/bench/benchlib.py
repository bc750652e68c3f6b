"""benchlib.py - helpers the scheduler benchmarks share: /proc figures of a process and the
scheduler's status figures through hookctl."""

import json


def proc_kib(pid, field):
    """proc_kib returns a kB field of /proc/PID/status (VmRSS, VmHWM, ...), 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def sched_stats(p):
    """sched_stats returns the scheduler's figures from `hookctl status --json`, or None."""
    rc, out, err = p.hookctl("status", "--json")
    if not out.strip():
        return None
    st = json.loads(out)["stages"].get("scheduler") or []
    return st[0]["stats"] if st else None
