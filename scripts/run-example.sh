#!/usr/bin/env bash
# run-example.sh - run hookline locally under s6 with the example configuration, a local
# recording receiver on 127.0.0.1:8099 and hook-api (the API and web console) on
# 127.0.0.1:8080. Build first with `make` (`make run` does both).
#
# usage: scripts/run-example.sh [start|stop|status]
# env:   ROUTERS=N, SENDERS=N   instances of hook-router / hook-sender (default 1 each; fewer
#                               than the last start stops the extra ones)
#        HOOKLINE_INGEST_ARGS, HOOKLINE_ROUTER_ARGS, HOOKLINE_SENDER_ARGS,
#        HOOKLINE_SCHEDULER_ARGS, HOOKLINE_API_ARGS  extra flags of each ("--retry-base-ms 2000")
#        API_LISTEN=HOST:PORT   hook-api's --listen (default 127.0.0.1:8080; port 0: any)
#        BIN=DIR                where the programs are (default <repo>/bin)
#        DATA=DIR               the data dir (default <repo>/var)
#        RECEIVER_PORT=N        the example receiver's port (default 8099, as in examples/)
# The example configuration is imported only into a data dir without a configuration: a
# second start keeps every webhook added since.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BINDIR=${BIN:-$REPO/bin}
case "$BINDIR" in /*) ;; *) BINDIR="$REPO/$BINDIR" ;; esac
VAR=${DATA:-$REPO/var} # the data dir (DATA=DIR: another one, e.g. for tests)
case "$VAR" in /*) ;; *) VAR="$REPO/$VAR" ;; esac
SCAN="$VAR/s6"
TEMPLATES="$REPO/contrib/s6"
ROUTERS=${ROUTERS:-1}
SENDERS=${SENDERS:-1}
case "$ROUTERS$SENDERS" in *[!0-9]*) echo "run-example: ROUTERS and SENDERS must be numbers" >&2; exit 2 ;; esac
[ "$ROUTERS" -ge 1 ] && [ "$SENDERS" -ge 1 ] || { echo "run-example: ROUTERS and SENDERS must be at least 1" >&2; exit 2; }
RECEIVER_PORT=${RECEIVER_PORT:-8099}
SVSCAN_PID="$VAR/s6-svscan.pid"
RECEIVER_PID="$VAR/receiver.pid"
PROGRAMS="hook-ingest hook-router hook-sender hook-scheduler hook-api hookctl"
API_LISTEN=${API_LISTEN:-127.0.0.1:8080}
CONSOLE_TOKEN_NAME=example-console # an admin token for the console link, kept in var/

say() { printf 'run-example: %s\n' "$*"; }
die() { printf 'run-example: error: %s\n' "$*" >&2; exit 1; }

# alive PIDFILE NAME: true when PIDFILE names a live process whose command line contains NAME.
alive() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# sed_escape TEXT: TEXT safe as the replacement of a sed s|||.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# render SRC DST INSTANCE ARGS: copies a service directory template, substituting the
# placeholders; files are replaced atomically so s6 never runs a half-written script. The
# supervise/ and event/ directories s6 keeps in DST are left alone.
render() {
    local src=$1 dst=$2 inst=$3 args f rel tmp
    args=$(sed_escape "$4")
    mkdir -p "$dst"
    while IFS= read -r -d '' f; do
        rel=${f#"$src"/}
        mkdir -p "$dst/$(dirname "$rel")"
        tmp="$dst/$rel.tmp.$$"
        sed -e "s|@BIN@|$BINDIR|g" -e "s|@DATA@|$VAR|g" -e "s|@INSTANCE@|$inst|g" \
            -e "s|@ARGS@|$args|g" "$f" >"$tmp"
        if [ -x "$f" ]; then chmod 755 "$tmp"; else chmod 644 "$tmp"; fi
        mv -f "$tmp" "$dst/$rel"
    done < <(find "$src" -type f -print0)
}

# stage_args SERVICE: the extra flags of a service's stage.
stage_args() {
    case "$1" in
        # The example receiver is on loopback, which the sender refuses unless allowed.
        hook-sender*) printf '%s' "--allow-target 127.0.0.0/8 ${HOOKLINE_SENDER_ARGS:-}" ;;
        hook-router*) printf '%s' "${HOOKLINE_ROUTER_ARGS:-}" ;;
        hook-ingest) printf '%s' "${HOOKLINE_INGEST_ARGS:-}" ;;
        hook-scheduler) printf '%s' "${HOOKLINE_SCHEDULER_ARGS:-}" ;;
        hook-api) printf '%s' "--listen $API_LISTEN ${HOOKLINE_API_ARGS:-}" ;;
    esac
}

# generate: builds the scan directory $SCAN from contrib/s6 (instance templates end in -0);
# instances beyond ROUTERS / SENDERS left by an earlier start are removed (s6-svscanctl -n then
# stops them).
generate() {
    local t name base i n d
    [ -d "$TEMPLATES" ] || die "missing $TEMPLATES"
    mkdir -p "$SCAN" "$VAR/log"
    for t in "$TEMPLATES"/*/; do
        t=${t%/}
        name=$(basename "$t")
        case "$name" in
            *-0)
                base=${name%-0}
                n=$ROUTERS
                [ "$base" = hook-sender ] && n=$SENDERS
                for ((i = 0; i < n; i++)); do
                    render "$t" "$SCAN/$base-$i" "$i" "$(stage_args "$base")"
                done
                for d in "$SCAN/$base"-*; do
                    [ -d "$d" ] || continue
                    i=${d##*-}
                    case "$i" in '' | *[!0-9]*) continue ;; esac
                    if [ "$i" -ge "$n" ]; then
                        rm -rf "$d"
                        say "removed $(basename "$d") (now $n instance(s) of $base)"
                    fi
                done
                ;;
            *) render "$t" "$SCAN/$name" "0" "$(stage_args "$name")" ;;
        esac
    done
}

start_svscan() {
    command -v s6-svscan >/dev/null 2>&1 || die "s6-svscan not found (run scripts/deps.sh as root)"
    if s6-svscanctl -an "$SCAN" 2>/dev/null; then
        say "s6-svscan already running on var/s6: rescanned (flags and instance counts applied)"
        local svc
        for svc in "$SCAN"/hook-*/; do # a running stage takes new flags only when restarted
            s6-svc -r "${svc%/}" 2>/dev/null || true
        done
        return
    fi
    setsid nohup s6-svscan "$SCAN" </dev/null >>"$VAR/s6-svscan.log" 2>&1 &
    echo $! >"$SVSCAN_PID"
    local end=$((SECONDS + 10))
    until s6-svscanctl -a "$SCAN" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || die "s6-svscan did not come up; see var/s6-svscan.log"
        alive "$SVSCAN_PID" s6-svscan || die "s6-svscan exited; see var/s6-svscan.log"
        sleep 0.1
    done
    say "started s6-svscan on var/s6 (pid $(cat "$SVSCAN_PID"))"
}

start_receiver() {
    if alive "$RECEIVER_PID" receiver.py; then
        say "receiver already running on 127.0.0.1:$(cat "$VAR/receiver.port" 2>/dev/null || echo "$RECEIVER_PORT")"
        return
    fi
    rm -f "$VAR/receiver.port"
    setsid nohup /usr/bin/python3 "$REPO/tests/receiver.py" --port "$RECEIVER_PORT" \
        --port-file "$VAR/receiver.port" --log "$VAR/receiver.log" \
        </dev/null >>"$VAR/receiver.stderr" 2>&1 &
    echo $! >"$RECEIVER_PID"
    local end=$((SECONDS + 10))
    until [ -f "$VAR/receiver.port" ]; do
        alive "$RECEIVER_PID" receiver.py ||
            die "receiver exited (port $RECEIVER_PORT busy?); see var/receiver.stderr"
        [ "$SECONDS" -lt "$end" ] || die "receiver did not start; see var/receiver.stderr"
        sleep 0.1
    done
    say "started receiver on 127.0.0.1:$RECEIVER_PORT (requests logged to var/receiver.log)"
}

wait_status() {
    local end=$((SECONDS + 30))
    until "$BINDIR/hookctl" --data-dir "$VAR" status >/dev/null 2>&1 </dev/null; do
        if [ "$SECONDS" -ge "$end" ]; then
            printf 'run-example: stages not up after 30 s; last log lines:\n' >&2
            local f
            for f in "$VAR"/log/*/current; do
                [ -f "$f" ] || continue
                printf '== %s\n' "${f#"$REPO"/}" >&2
                tail -n 5 "$f" >&2
            done
            die "hookctl status never exited 0 (see var/log/*/current)"
        fi
        sleep 0.2
    done
}

# wait_api: hook-api has written the address it bound (run/api.0.addr) and answers /healthz.
# Prints the address; warns and returns 1 when it does not come up in 15 s.
wait_api() {
    local end=$((SECONDS + 15)) addr=""
    while :; do
        addr=$(cat "$VAR/run/api.0.addr" 2>/dev/null || true)
        if [ -n "$addr" ] && curl -sf -o /dev/null --max-time 2 "$addr/healthz"; then
            printf '%s' "$addr"
            return 0
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            printf 'run-example: warning: hook-api not answering on %s after 15 s (port taken? set API_LISTEN); see var/log/hook-api/current\n' "$API_LISTEN" >&2
            tail -n 5 "$VAR/log/hook-api/current" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}

# console_token: the example's admin token for the console link, made once and kept in
# var/example-console.token (mode 0600; hookctl shows a token only when it makes it).
console_token() {
    local f="$VAR/$CONSOLE_TOKEN_NAME.token" t
    if [ -s "$f" ]; then
        cat "$f"
        return
    fi
    t=$("$BINDIR/hookctl" --data-dir "$VAR" token create --name "$CONSOLE_TOKEN_NAME" </dev/null) ||
        return 1
    (umask 077 && printf '%s\n' "$t" >"$f")
    printf '%s' "$t"
}

# has_config: the data dir holds a configuration (at least one project).
has_config() {
    "$BINDIR/hookctl" --data-dir "$VAR" export </dev/null 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["projects"] else 1)'
}

do_start() {
    local p
    for p in $PROGRAMS; do
        [ -x "$BINDIR/$p" ] || die "$BINDIR/$p missing: run make first"
    done
    mkdir -p "$VAR"
    generate
    start_receiver
    start_svscan
    say "waiting for every stage (hookctl status)..."
    wait_status
    "$BINDIR/hookctl" --data-dir "$VAR" status </dev/null || true
    if has_config; then
        say "var/ already holds a configuration: kept (examples/config.json not imported)"
    else
        "$BINDIR/hookctl" --data-dir "$VAR" import examples/config.json </dev/null ||
            die "importing examples/config.json failed"
        say "imported examples/config.json"
    fi
    local api="" console="" tok
    if api=$(wait_api); then
        if tok=$(console_token); then
            console="$api/#project=prj_1&token=$tok"
        else
            console="$api/ (no console token: hookctl token create --name NAME)"
        fi
        say "hook-api listening on $api"
    fi
    cat <<EOF

hookline is running under s6 (scan dir var/s6, logs in var/log/<service>/current).
From $REPO:

  publish the example events:  bin/hookctl --data-dir var publish examples/events.jsonl
  read the delivery log:       bin/hookctl --data-dir var deliveries
  what the receiver got:       tail -f var/receiver.log
  stage status:                bin/hookctl --data-dir var status
  the web console:             ${console:-hook-api is not up: see var/log/hook-api/current}
  the API (admin token):       curl -H "Authorization: Bearer \$(cat var/$CONSOLE_TOKEN_NAME.token)" ${api:-http://$API_LISTEN}/v1/projects
  stop everything:             scripts/run-example.sh stop   (or: make stop)
EOF
}

do_stop() {
    local end
    if s6-svscanctl -t "$SCAN" 2>/dev/null; then
        say "stopping s6-svscan and the stages..."
        end=$((SECONDS + 30))
        while alive "$SVSCAN_PID" s6-svscan; do
            [ "$SECONDS" -lt "$end" ] || die "s6-svscan still running after 30 s"
            sleep 0.2
        done
        say "s6-svscan stopped"
    else
        say "s6-svscan not running on var/s6"
    fi
    rm -f "$SVSCAN_PID"
    if alive "$RECEIVER_PID" receiver.py; then
        kill -TERM "$(cat "$RECEIVER_PID")"
        end=$((SECONDS + 10))
        while alive "$RECEIVER_PID" receiver.py; do
            [ "$SECONDS" -lt "$end" ] || die "receiver still running after 10 s"
            sleep 0.1
        done
        say "receiver stopped"
    fi
    rm -f "$RECEIVER_PID" "$VAR/receiver.port"
}

case "${1:-start}" in
    start) do_start ;;
    stop) do_stop ;;
    status) exec "$BINDIR/hookctl" --data-dir "$VAR" status ;;
    -h | --help | help) sed -n '2,8s/^# \{0,1\}//p' "$0" ;;
    *) die "unknown command '$1' (start, stop, status)" ;;
esac
