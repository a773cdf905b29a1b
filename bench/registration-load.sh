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
# two /healthz rates. Not run in CI: it takes about two minutes and its numbers depend
# on the machine. With REGISTER_KEYS=1, every registration carries its own
# Idempotency-Key header (as the public registration form sends one).
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-}
seconds=${2:-15}
threads=${WRK_THREADS:-2}
source bench/serve.sh
start_server "$database"

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

# one wrk run; prints "created/s p50 p99 non-2xx errors"
load() {
    local connections=$1 script=$2 url=$3 run=${4:-0}
    wrk -t "$threads" -c "$connections" -d "${seconds}s" --timeout 10s -s "$script" "$url" -- "$run" ${REGISTER_KEYS:+keys} \
        | sed -n 's/^RESULT //p' \
        | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                 print v["created_per_s"], v["p50_ms"], v["p99_ms"], v["other"], v["errors"] }'
}

echo "database: ${database%%://*}, ${seconds} s per run, $threads wrk threads, $(nproc) cores${REGISTER_KEYS:+, an Idempotency-Key on every registration}"
echo
echo "| connections | /healthz req/s | /healthz p50 / p99 ms | registrations 201/s | registration p50 / p99 ms | ratio to /healthz | non-201 | socket errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
run=0
for connections in 64 256; do
    read -r h1 h1p50 h1p99 _ _ < <(load "$connections" bench/get.lua "$base/healthz")
    read -r reg p50 p99 other errors < <(load "$connections" bench/register.lua "$base/api/v1/windows/$window/entries" "$run")
    read -r h2 h2p50 h2p99 _ _ < <(load "$connections" bench/get.lua "$base/healthz")
    run=$((run + 1))
    awk -v c="$connections" -v h1="$h1" -v h2="$h2" -v hp50="$h1p50" -v hp99="$h1p99" \
        -v r="$reg" -v p50="$p50" -v p99="$p99" -v o="$other" -v e="$errors" \
        'BEGIN { h = (h1 + h2) / 2; printf "| %d | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.0f%% | %d | %d |\n", c, h, hp50, hp99, r, p50, p99, 100 * r / h, o, e }'
done
