# Sourced by the load scripts: starts a release `tirage serve` on a free loopback port
# with a fresh admin token, stopped (and its folder removed) when the script exits.
#
#   source bench/serve.sh
#   start_server "$database"      # empty: a SQLite file in a temporary folder
#   # then: $base (http://127.0.0.1:PORT), $token (admin), $work (temporary folder)
#   window=$(open_window)         # a window open for registration now
#   start_for_registrations "$database"   # the same, plus $window and the open-loop tool
#   build_open_load; open_loop CONNECTIONS RATE RUN   # registrations in an open loop
#   wait_until_idle               # until the server has done its background work
#
# All the load comes from one address, so the per-client rate budgets are turned off.
# The server's log goes to $work/server.log; with SERVER_ERR=FILE its standard error
# (where a build instrumented for profiling can write its timings) goes to FILE; with
# KEEP_SERVER_LOG=FILE the server's log is copied to FILE when the script exits.

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n ${KEEP_SERVER_LOG:-} && -f $work/server.log ]]; then
        cp "$work/server.log" "$KEEP_SERVER_LOG"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start_server() {
    if [[ -z ${TIRAGE_BIN:-} ]]; then
        cargo build --release --bin tirage >&2
        TIRAGE_BIN=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/tirage
    fi
    local database=${1:-sqlite://$work/tirage.db?mode=rwc} port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base=http://127.0.0.1:$port
    token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
    serve_tirage() {
        TIRAGE_DATABASE_URL=$database TIRAGE_LISTEN=127.0.0.1:$port TIRAGE_ADMIN_TOKEN=$token \
            TIRAGE_RATE_REGISTRATION=off TIRAGE_RATE_STATUS=off TIRAGE_RATE_CODE=off \
            TIRAGE_MAIL=log RUST_LOG=${RUST_LOG:-warn} exec "$TIRAGE_BIN" serve
    }
    if [[ -n ${SERVER_ERR:-} ]]; then
        serve_tirage >"$work/server.log" 2>"$SERVER_ERR" &
    else
        serve_tirage >"$work/server.log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 200); do
        curl -fs "$base/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the server did not start: $(tail -5 "$work/server.log")" >&2
    return 1
}

# SQLite: waits until the server has made its log file's space ready
# (TIRAGE_SQLITE_LOG_RESERVE_MIB, see docs/configuration.md), as a production server
# does in its first minute, before any window opens. Needs the server's info lines
# of tirage::jobs::log_space in its log. Nothing to wait for on PostgreSQL.
wait_for_log_space() {
    [[ ${TIRAGE_SQLITE_LOG_RESERVE_MIB:-0} != 0 && ${1:-sqlite} != postgres* ]] || return 0
    for _ in $(seq 1200); do
        if grep -q "the log's space is ready" "$work/server.log"; then
            echo "log space: $(grep -o "log_bytes=[0-9]*.*seconds=[0-9.]*" "$work/server.log")" >&2
            return 0
        fi
        sleep 0.5
    done
    echo "the server did not make its log's space ready: $(tail -5 "$work/server.log")" >&2
    return 1
}

# Creates a window open for registration now, and prints its id.
open_window() {
    python3 - "$base" "$token" <<'PY'
import json, sys, urllib.request
from datetime import datetime, timedelta, timezone
base, token = sys.argv[1:]
now = datetime.now(timezone.utc)
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
def call(path, body=None):
    req = urllib.request.Request(base + path, method="POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
window = call("/api/v1/windows", {
    "site": "34", "procedure": "renewal",
    "registration_opens_at": iso(now - timedelta(minutes=1)),
    "registration_closes_at": iso(now + timedelta(days=1)),
    "draw_at": iso(now + timedelta(days=2)), "beacon": "none",
    "slots": [{"starts_at": iso(now + timedelta(days=10)), "counter": "G1"}]})
call(f"/api/v1/windows/{window['id']}/open")
print(window["id"])
PY
}

# CPU time (clock ticks) the server has used
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }

# waits (up to two minutes) until the server has used under 5% of a core for a
# second: after a stream of registrations it copies its log into the database in the
# background (SQLite), which each open-loop run should not inherit from the run before
wait_until_idle() {
    local before hz SECONDS=0
    hz=$(getconf CLK_TCK)
    for _ in $(seq 120); do
        before=$(server_ticks)
        sleep 1
        if (($(server_ticks) - before < hz / 20)); then
            echo "idle after ${SECONDS}s" >&2
            return 0
        fi
    done
    echo "the server was still busy after two minutes" >&2
}

# Builds the open-loop load (examples/open_load.rs) and sets $open_load to it.
build_open_load() {
    cargo build --release --example open_load >&2
    open_load=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/examples/open_load
}

# One open-loop run of registrations on $window for $seconds at a fixed rate; prints
# "ok/s p50 p90 p99 p999 max late non-2xx errors". With TIMELINES=DIR it also writes
# the run's latencies second by second to DIR/open-CONNECTIONS-RATE[-TAG].txt.
open_loop() {
    local connections=$1 rate=$2 run=$3 tag=${4:+-$4}
    "$open_load" --url "$base/api/v1/windows/$window/entries" --rate "$rate" \
        --connections "$connections" --seconds "$seconds" --run "$run" \
        ${TIMELINES:+--timeline "$TIMELINES/open-$connections-$rate$tag.txt"} \
        | sed -n 's/^RESULT //p' \
        | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                 print v["ok_per_s"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["p999_ms"], v["max_ms"],
                       v["late"], v["other"], v["errors"] }'
}

# The engine of a database URL for the tables' headings: "postgres", or "sqlite"
# (also for the empty URL, a temporary SQLite file).
engine_of() {
    local engine=${1%%://*}
    echo "${engine:-sqlite}"
}

# For the registration loads: the open-loop tool built, the server started on
# $1 with the SQLite log's space made ready first, as in production
# (docs/configuration.md; TIRAGE_SQLITE_LOG_RESERVE_MIB=0 measures without it), and
# $window open for registration.
start_for_registrations() {
    export TIRAGE_SQLITE_LOG_RESERVE_MIB=${TIRAGE_SQLITE_LOG_RESERVE_MIB:-5120}
    export RUST_LOG=${RUST_LOG:-warn,tirage::jobs::log_space=info}
    build_open_load
    start_server "$1"
    wait_for_log_space "$1"
    window=$(open_window)
}
