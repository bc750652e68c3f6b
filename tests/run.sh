#!/usr/bin/env bash
# run.sh - run every unit test binary ($BUILD/tests/test_*) and every integration test module
# (tests/integration/test_*.py), count what passed and failed, list each failure, and end with
# the one line CI reads: "N passed, N failed". Exit 0 only when nothing failed and something ran.
#
# usage: tests/run.sh [FILTER...]   run only the items whose name contains one of the FILTERs
# env:   BUILD (default build), BIN (default bin), UNIT_TIMEOUT (120 s), INTEGRATION_TIMEOUT (1200 s: the two chaos runs under ASan take about 9 min on a quiet 2-core machine)
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
BIN=${BIN:-bin}
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
export BIN BUILD
export PYTHONDONTWRITEBYTECODE=1
PYTHON=/usr/bin/python3
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
INTEGRATION_TIMEOUT=${INTEGRATION_TIMEOUT:-1200}

passed=0
failed=0
failures=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/hookline-run.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# selected NAME: true when no filter was given or NAME contains one of the filters.
selected() {
    [ "$#" -gt 0 ] || return 1
    local name=$1
    shift
    [ "$#" -eq 0 ] && return 0
    local f
    for f in "$@"; do
        case "$name" in *"$f"*) return 0 ;; esac
    done
    return 1
}

# run_unit BINARY: runs one unit binary; adds its checks to the counts.
run_unit() {
    local bin=$1 name log rc p f got=0
    name=$(basename "$bin")
    log="$logdir/$name.log"
    echo "--- unit $name"
    # Through a pipe, not straight into the file: tests that lower RLIMIT_FSIZE (journal
    # write failures) must not cut their own output short.
    timeout "$UNIT_TIMEOUT" "$bin" </dev/null 2>&1 | cat >"$log"
    rc=${PIPESTATUS[0]}
    cat "$log"
    # "unit X: N passed, N failed" (one or more lines)
    while read -r p f; do
        passed=$((passed + p))
        failed=$((failed + f))
        got=1
    done < <(sed -n 's/^unit [^:]*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$log")
    while IFS= read -r line; do
        failures+=("unit $name: $line")
    done < <(grep -E 'CHECK[A-Z_]* failed' "$log")
    if [ "$got" -eq 0 ]; then
        failed=$((failed + 1))
        failures+=("unit $name: no summary line (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))")
    elif [ "$rc" -ne 0 ] && ! grep -qE 'CHECK[A-Z_]* failed' "$log"; then
        # crashed or a sanitizer report after the summary: that is a failure of its own
        failed=$((failed + 1))
        failures+=("unit $name: exit $rc$([ "$rc" -eq 124 ] && echo ', timed out')")
    fi
}

# run_integration MODULE_FILE: runs one unittest module verbosely; adds its tests to the counts.
run_integration() {
    local file=$1 mod log rc ran nfail nerr nskip nunexp
    mod=$(basename "$file" .py)
    log="$logdir/$mod.log"
    echo "--- integration $mod"
    (cd "$REPO/tests/integration" &&
        timeout "$INTEGRATION_TIMEOUT" "$PYTHON" -m unittest -v "$mod" </dev/null 2>&1) | tee "$log"
    rc=${PIPESTATUS[0]}
    ran=$(sed -n 's/^Ran \([0-9][0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n 1)
    if [ -z "$ran" ]; then
        failed=$((failed + 1))
        failures+=("integration $mod: did not finish (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out after '"$INTEGRATION_TIMEOUT"' s'))")
        return
    fi
    nfail=$(sed -n 's/^FAILED (.*failures=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    nerr=$(sed -n 's/^FAILED (.*errors=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    nunexp=$(sed -n 's/^FAILED (.*unexpected successes=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    nskip=$(sed -n 's/^\(OK\|FAILED\) (.*skipped=\([0-9][0-9]*\).*/\2/p' "$log" | tail -n 1)
    nfail=${nfail:-0} nerr=${nerr:-0} nunexp=${nunexp:-0} nskip=${nskip:-0}
    local bad=$((nfail + nerr + nunexp))
    failed=$((failed + bad))
    passed=$((passed + ran - bad - nskip))
    while IFS= read -r line; do
        failures+=("integration $line")
    done < <(grep -E '^(FAIL|ERROR|UNEXPECTED SUCCESS): ' "$log")
    if [ "$bad" -eq 0 ] && [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        failures+=("integration $mod: exit $rc$([ "$rc" -eq 124 ] && echo ', timed out')")
    fi
}

shopt -s nullglob
for bin in "$BUILD"/tests/test_*; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
    selected "$(basename "$bin")" "$@" || continue
    run_unit "$bin"
done
for file in "$REPO"/tests/integration/test_*.py; do
    selected "$(basename "$file" .py)" "$@" || continue
    run_integration "$file"
done

echo
if [ "${#failures[@]}" -gt 0 ]; then
    echo "failures:"
    for f in "${failures[@]}"; do
        echo "  $f"
    done
fi
if [ $((passed + failed)) -eq 0 ]; then
    echo "no tests ran (BUILD=$BUILD${*:+, filter: $*})" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
