#!/usr/bin/env bash
# Registration under load, next to /healthz of the same server in the same run.
#
#   bench/registration-load.sh [DATABASE_URL] [SECONDS]
#
# DATABASE_URL defaults to a new temporary SQLite file (a postgres:// URL runs the same
# load on PostgreSQL); SECONDS (default 15) is the length of each wrk run. Builds the
# release binary unless TIRAGE_BIN names one. Needs wrk (`apt-get install -y wrk`).
#
# For 64 and then 256 connections it runs, against one server and one open window:
# /healthz, registrations (bench/register.lua: every request a new valid person), and
# /healthz again; and prints one table row per connection count with the registrations
# answered 201 per second, their p50 and p99 latency, and the ratio to the mean of the
# two /healthz rates, and the CPU time the server and the whole machine spent for each
# good answer of either kind. CONNECTIONS="256" runs that count only. Not run in CI:
# it takes about two minutes and its numbers depend on the machine. With
# REGISTER_KEYS=1, every registration carries its own Idempotency-Key header (as the
# public registration form sends one). On SQLite the server first makes 5 GiB of log
# file ready (TIRAGE_SQLITE_LOG_RESERVE_MIB, about half a minute) before any load.
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-}
seconds=${2:-15}
threads=${WRK_THREADS:-2}
# SQLite: the log file's space made ready at start, as in production
# (docs/configuration.md); TIRAGE_SQLITE_LOG_RESERVE_MIB=0 measures without it
export TIRAGE_SQLITE_LOG_RESERVE_MIB=${TIRAGE_SQLITE_LOG_RESERVE_MIB:-5120}
export RUST_LOG=${RUST_LOG:-warn,tirage::jobs::log_space=info}
source bench/serve.sh
start_server "$database"
wait_for_log_space "$database"

# a window open for registration now
window=$(python3 - "$base" "$token" <<'PY'
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
)

# CPU time (clock ticks) the server has used, and the whole machine's busy ticks
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# one wrk run; prints "created/s p50 p99 non-2xx errors server-µs machine-µs", the
# last two being the CPU time the server, and the whole machine (wrk and the kernel's
# writeback included), spent for each good answer
load() {
    local connections=$1 script=$2 url=$3 run=${4:-0} s0 m0 result
    s0=$(server_ticks) m0=$(machine_ticks)
    result=$(wrk -t "$threads" -c "$connections" -d "${seconds}s" --timeout 10s -s "$script" "$url" -- "$run" ${REGISTER_KEYS:+keys} \
        | sed -n 's/^RESULT //p')
    awk -v s="$(($(server_ticks) - s0))" -v m="$(($(machine_ticks) - m0))" -v hz="$(getconf CLK_TCK)" \
        '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           n = v["created"] > 0 ? v["created"] : 1
           print v["created_per_s"], v["p50_ms"], v["p99_ms"], v["other"], v["errors"],
                 1e6 * s / hz / n, 1e6 * m / hz / n }' <<<"$result"
}

echo "database: ${database%%://*}, ${seconds} s per run, $threads wrk threads, $(nproc) cores${REGISTER_KEYS:+, an Idempotency-Key on every registration}"
echo
echo "| connections | /healthz req/s | /healthz p50 / p99 ms | registrations 201/s | registration p50 / p99 ms | ratio to /healthz | non-201 | socket errors | CPU µs a /healthz: server / machine | CPU µs a registration: server / machine |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run=0
for connections in ${CONNECTIONS:-64 256}; do
    read -r h1 h1p50 h1p99 _ _ hs hm < <(load "$connections" bench/get.lua "$base/healthz")
    read -r reg p50 p99 other errors rs rm < <(load "$connections" bench/register.lua "$base/api/v1/windows/$window/entries" "$run")
    read -r h2 h2p50 h2p99 _ _ _ _ < <(load "$connections" bench/get.lua "$base/healthz")
    run=$((run + 1))
    awk -v c="$connections" -v h1="$h1" -v h2="$h2" -v hp50="$h1p50" -v hp99="$h1p99" \
        -v r="$reg" -v p50="$p50" -v p99="$p99" -v o="$other" -v e="$errors" \
        -v hs="$hs" -v hm="$hm" -v rs="$rs" -v rm="$rm" \
        'BEGIN { h = (h1 + h2) / 2; printf "| %d | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.0f%% | %d | %d | %.0f / %.0f | %.0f / %.0f |\n", c, h, hp50, hp99, r, p50, p99, 100 * r / h, o, e, hs, hm, rs, rm }'
done
