#!/usr/bin/env bash
# Cost of the per-client rate limit and of the metrics, measured with wrk against a
# release build: the same lookup of an entry with its access code (an unknown entry:
# one indexed read, a 404) with the status limit off, with a limit so high it never
# refuses (the limiter's bookkeeping only), and with the default limit (nearly every
# request refused with 429, before any database work). Then one scrape of /metrics.
#
#   bench/limits.sh            # TIRAGE_BIN (default target/release/tirage), DURATION (10s)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TIRAGE_BIN:-target/release/tirage}
DURATION=${DURATION:-10s}
[[ -x $BIN ]] || { echo "build it first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
WORK=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

run() { # $1 = the status budget; prints requests/s and the statuses seen
    local budget=$1 port=$((20000 + RANDOM % 20000))
    TIRAGE_RATE_STATUS=$budget "$BIN" serve --listen "127.0.0.1:$port" \
        --database "sqlite://$WORK/b-$port.db?mode=rwc" 2>"$WORK/log-$port" &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    cat >"$WORK/auth.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"
LUA
    local out
    out=$(wrk -t2 -c16 -d"$DURATION" -s "$WORK/auth.lua" \
        "http://127.0.0.1:$port/api/v1/entries/0123456789abcdef0123456789abcdef")
    local rps
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    echo "status budget $budget: $rps requests/s"
    awk '/Latency/ {print "  latency avg " $2 ", max " $4}' <<<"$out"
    local metrics
    metrics=$(curl -s -w '\n%{time_total}' "http://127.0.0.1:$port/metrics")
    echo "  answers: $(grep '^tirage_http_requests_total' <<<"$metrics" | grep entry_id | sed 's/.*status="\([0-9]*\)"} /\1=/' | tr '\n' ' ')"
    echo "  /metrics: $(grep -c '^tirage_' <<<"$metrics") samples, $(tail -1 <<<"$metrics") s"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

run off
run 1000000000/s
run 300/h
