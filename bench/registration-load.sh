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
# good answer of either kind. CONNECTIONS="256" runs that count only.
#
# Then, for each connection count, registrations in an open loop
# (examples/open_load.rs): offered at fixed shares of that /healthz rate (OPEN_SHARES,
# default "25 50" percent), due at fixed times whatever the server answers and timed
# from when they were due; a second table gives their p50, p90, p99 and p99.9. Each
# open-loop run starts once the server is idle again (after a stream, SQLite's log is
# copied into the database in the background). With TIMELINES=DIR, each open-loop run
# also writes its latencies second by second to DIR/open-CONNECTIONS-RATE.txt. Not run
# in CI: it takes about five minutes and its numbers depend on the machine. With
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
# the open-loop load (examples/open_load.rs), built before the server starts
cargo build --release --example open_load >&2
open_load=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/examples/open_load

source bench/serve.sh
start_server "$database"
wait_for_log_space "$database"

window=$(open_window)

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

# one open-loop run of registrations at a fixed rate; prints "ok/s p50 p90 p99 p999
# max late non-2xx errors"
open_loop() {
    local connections=$1 rate=$2 run=$3
    "$open_load" --url "$base/api/v1/windows/$window/entries" --rate "$rate" \
        --connections "$connections" --seconds "$seconds" --run "$run" \
        ${TIMELINES:+--timeline "$TIMELINES/open-$connections-$rate.txt"} \
        | sed -n 's/^RESULT //p' \
        | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                 print v["ok_per_s"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["p999_ms"], v["max_ms"],
                       v["late"], v["other"], v["errors"] }'
}

echo "database: ${database%%://*}, ${seconds} s per run, $threads wrk threads, $(nproc) cores${REGISTER_KEYS:+, an Idempotency-Key on every registration}"
echo
echo "| connections | /healthz req/s | /healthz p50 / p99 ms | registrations 201/s | registration p50 / p99 ms | ratio to /healthz | non-201 | socket errors | CPU µs a /healthz: server / machine | CPU µs a registration: server / machine |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run=0
open_rows=""
for connections in ${CONNECTIONS:-64 256}; do
    read -r h1 h1p50 h1p99 _ _ hs hm < <(load "$connections" bench/get.lua "$base/healthz")
    read -r reg p50 p99 other errors rs rm < <(load "$connections" bench/register.lua "$base/api/v1/windows/$window/entries" "$run")
    read -r h2 h2p50 h2p99 _ _ _ _ < <(load "$connections" bench/get.lua "$base/healthz")
    run=$((run + 1))
    awk -v c="$connections" -v h1="$h1" -v h2="$h2" -v hp50="$h1p50" -v hp99="$h1p99" \
        -v r="$reg" -v p50="$p50" -v p99="$p99" -v o="$other" -v e="$errors" \
        -v hs="$hs" -v hm="$hm" -v rs="$rs" -v rm="$rm" \
        'BEGIN { h = (h1 + h2) / 2; printf "| %d | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.0f%% | %d | %d | %.0f / %.0f | %.0f / %.0f |\n", c, h, hp50, hp99, r, p50, p99, 100 * r / h, o, e, hs, hm, rs, rm }'
    # the same connections, registrations offered at fixed shares of that /healthz rate
    for share in ${OPEN_SHARES:-25 50}; do
        rate=$(awk -v h1="$h1" -v h2="$h2" -v s="$share" 'BEGIN { printf "%.0f", (h1 + h2) / 2 * s / 100 }')
        wait_until_idle
        read -r ok p50 p90 p99 p999 max late other errors < <(open_loop "$connections" "$rate" "$run")
        run=$((run + 1))
        open_rows+=$(printf '| %d | %d (%d%%) | %.0f | %.1f / %.1f / %.1f / %.1f | %.1f | %d | %d | %d |' \
            "$connections" "$rate" "$share" "$ok" "$p50" "$p90" "$p99" "$p999" "$max" "$late" "$other" "$errors")$'\n'
    done
done

# Open loop: requests due at fixed times whatever the server answers, each timed
# from when it was due (examples/open_load.rs)
echo
echo "| connections | registrations offered/s (share of /healthz) | answered 2xx/s | p50 / p90 / p99 / p99.9 ms | max ms | sent late | non-2xx | errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$open_rows"
