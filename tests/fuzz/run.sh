#!/usr/bin/env bash
# run.sh - run every libFuzzer target built in BINDIR for SECONDS each, from its seed corpus, and
# print a summary with each target's executions per second; --ci first replays every regression
# case in tests/fuzz/regressions/<target>/. Exit 0 only when no target crashed, leaked or hung.
#
# usage: tests/fuzz/run.sh [--ci] BINDIR SECONDS [TARGET...]
# Inputs libFuzzer finds go to BINDIR/../corpus/<target>/ (kept between runs, outside the tree);
# crashes to BINDIR/../artifacts/<target>/. Keep a fixed crash as a regression case by copying
# it into tests/fuzz/regressions/<target>/ (see tests/fuzz/README.md).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ="$REPO/tests/fuzz"
ci=0
if [ "${1:-}" = "--ci" ]; then
    ci=1
    shift
fi
[ "$#" -ge 2 ] || {
    echo "usage: $0 [--ci] BINDIR SECONDS [TARGET...]" >&2
    exit 2
}
BINDIR=$(cd "$1" && pwd) || exit 2
SECONDS_EACH=$2
shift 2
case "$SECONDS_EACH" in '' | *[!0-9]*) echo "run.sh: SECONDS must be a number" >&2 && exit 2 ;; esac
OUT=$(dirname "$BINDIR")

targets=()
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    for b in "$BINDIR"/fuzz_*; do
        [ -x "$b" ] && targets+=("$(basename "$b" | sed 's/^fuzz_//')")
    done
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "run.sh: no fuzz targets in $BINDIR" >&2
    exit 1
fi

failed=0
summary=()

# replay NAME BIN: runs each regression case once; a crash fails the target.
replay() {
    local name=$1 bin=$2 cases=() log
    shopt -s nullglob
    cases=("$FUZZ/regressions/$name"/*)
    shopt -u nullglob
    if [ "${#cases[@]}" -eq 0 ]; then
        echo "--- fuzz $name: no regression cases"
        return 0
    fi
    log="$OUT/logs/$name.regressions.log"
    echo "--- fuzz $name: replaying ${#cases[@]} regression cases"
    if ! "$bin" -timeout=10 -rss_limit_mb=2048 "${cases[@]}" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "FAIL fuzz $name: a regression case crashes again (log: $log)"
        return 1
    fi
    return 0
}

# fuzz NAME BIN: runs the fuzzer for SECONDS_EACH and records its summary line.
fuzz() {
    local name=$1 bin=$2 log rc dict=() eps runs cov ft corp
    local work="$OUT/corpus/$name" art="$OUT/artifacts/$name"
    log="$OUT/logs/$name.log"
    mkdir -p "$work" "$art"
    [ -f "$FUZZ/$name.dict" ] && dict=(-dict="$FUZZ/$name.dict")
    echo "--- fuzz $name: ${SECONDS_EACH} s"
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dict[@]}" "$work" "$FUZZ/corpus/$name" >"$log" 2>&1 </dev/null
    rc=$?
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR: |property broken|SUMMARY: |Test unit written|runtime error' "$log" | head -n 20
        echo "FAIL fuzz $name: exit $rc after ${runs:-?} runs (log: $log)"
        summary+=("$(printf '%-8s FAILED (exit %s)  %s exec/s  %s runs  artifacts: %s' \
            "$name" "$rc" "${eps:-?}" "${runs:-?}" "$art")")
        return 1
    fi
    summary+=("$(printf '%-8s ok  %8s exec/s  %10s runs  cov %5s  ft %6s  corpus %5s' \
        "$name" "${eps:-?}" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
    return 0
}

mkdir -p "$OUT/logs"
for name in "${targets[@]}"; do
    bin="$BINDIR/fuzz_$name"
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz $name: $bin not built"
        summary+=("$(printf '%-8s FAILED (not built)' "$name")")
        failed=$((failed + 1))
        continue
    fi
    if [ "$ci" -eq 1 ] && ! replay "$name" "$bin"; then
        summary+=("$(printf '%-8s FAILED (regression case)' "$name")")
        failed=$((failed + 1))
        continue
    fi
    fuzz "$name" "$bin" || failed=$((failed + 1))
done

echo
echo "fuzz summary (${SECONDS_EACH} s each$([ "$ci" -eq 1 ] && echo ', after the regression cases')):"
for line in "${summary[@]}"; do
    echo "  $line"
done
echo "${#targets[@]} targets, $failed failed"
[ "$failed" -eq 0 ]
