#!/bin/sh
# sched_recovery.sh - scheduler restart with 100,000 pending retries: time to ready, time to a
# status answer showing them all, RSS before and after; median of 3 (see sched_recovery.py).
# usage: tests/bench/sched_recovery.sh   env: BIN, BENCH_INVOCATIONS, BENCH_RUNS
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../../bin}
export BIN
exec /usr/bin/python3 "$here/sched_recovery.py" "$@"
