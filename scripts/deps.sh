#!/usr/bin/env bash
# deps.sh - install the Debian packages hookline needs to build, test and run (as root).
# Idempotent: checks each package with dpkg-query and runs apt-get only for what is missing.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config
    libcurl4-openssl-dev libmsgpack-dev libuv1-dev libbsd-dev
    libsqlite3-dev libjansson-dev libssl-dev libmicrohttpd-dev
    s6 supervisor python3 sqlite3 clang-format curl ca-certificates
    python3-prometheus-client
    clang libclang-rt-14-dev
    nginx-light wrk
    python3-yaml # tests/integration/test_api_config.py reads docs/openapi.yaml
    iproute2 util-linux coreutils
    chromium firefox-esr nodejs # the console's browser tests (tests/browser)
)

die() { echo "deps.sh: $*" >&2; exit 1; }

# browser_deps: the console's browser test (tests/browser) needs npm (Debian's npm package
# unless the installed nodejs brings its own) and puppeteer-core from package-lock.json; it
# drives Debian's chromium and firefox-esr, so puppeteer downloads no browser.
browser_deps() {
    if ! command -v npm >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || die "npm missing; must run as root to install it (try: sudo $0)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends npm </dev/null || die "apt-get install npm failed"
    fi
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
    if [ -f "$dir/node_modules/puppeteer-core/package.json" ] &&
        [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        echo "deps.sh: tests/browser node modules installed"
        return
    fi
    (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund </dev/null) \
        || die "npm ci in tests/browser failed"
    echo "deps.sh: tests/browser node modules installed (npm ci)"
}

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing+=("$p") ;;
    esac
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps.sh: all ${#PACKAGES[@]} packages installed"
    browser_deps
    exit 0
fi

echo "deps.sh: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    die "must run as root to install: ${missing[*]} (try: sudo $0)"
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null \
    || die "apt-get install failed for: ${missing[*]}"

# Verify: a package apt could not provide must not pass silently.
still=()
for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) still+=("$p") ;;
    esac
done
[ "${#still[@]}" -eq 0 ] || die "still missing after install: ${still[*]}"
echo "deps.sh: installed ${missing[*]}"
browser_deps
