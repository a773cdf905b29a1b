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
# two /healthz rates, and the CPU time spent for each good answer of either kind: by the
# server, by PostgreSQL, by wrk itself, and by the whole machine, whose cores bound the
# rate. CONNECTIONS="256" runs that count only.
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
source bench/serve.sh
start_for_registrations "$database"

# the whole machine's busy CPU time (clock ticks); the server's is server_ticks
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# the CPU time (clock ticks) of the PostgreSQL processes, those that ended included
# (counted in their parent's); 0 on SQLite, which runs inside the server
database_ticks() {
    [[ $database == postgres* ]] || { echo 0; return; }
    # a process may end between the list and its read: not a failure of the pipeline
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } \
        | awk '$2 == "(postgres)" { t += $14 + $15 + $16 + $17 } END { print t + 0 }'
}

# one wrk run; prints "created/s p50 p99 non-2xx errors" and then the CPU time spent
# for each good answer, in µs: by the server, by the database (PostgreSQL), by wrk
# itself (each with the kernel's work done on its behalf), and by the whole machine
load() {
    local connections=$1 script=$2 url=$3 run=${4:-0} s0 d0 m0 result
    s0=$(server_ticks) d0=$(database_ticks) m0=$(machine_ticks)
    result=$(/usr/bin/time -f "LOAD_CPU %U %S" \
        wrk -t "$threads" -c "$connections" -d "${seconds}s" --timeout 10s -s "$script" "$url" -- "$run" ${REGISTER_KEYS:+keys} 2>&1 \
        | sed -n 's/^RESULT //p; s/^LOAD_CPU \([^ ]*\) \([^ ]*\)$/load_user=\1 load_system=\2/p' | tr '\n' ' ')
    awk -v s="$(($(server_ticks) - s0))" -v d="$(($(database_ticks) - d0))" -v m="$(($(machine_ticks) - m0))" \
        -v hz="$(getconf CLK_TCK)" \
        '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           n = v["created"] > 0 ? v["created"] : 1
           load_us = 1e6 * (v["load_user"] + v["load_system"]) / n
           server_us = 1e6 * s / hz / n; database_us = 1e6 * d / hz / n; machine_us = 1e6 * m / hz / n
           print v["created_per_s"], v["p50_ms"], v["p99_ms"], v["other"], v["errors"],
                 server_us, database_us, load_us, machine_us }' <<<"$result"
}

echo "database: $(engine_of "$database"), ${seconds} s per run, $threads wrk threads, $(nproc) cores${REGISTER_KEYS:+, an Idempotency-Key on every registration}"
echo
echo "| connections | /healthz req/s | /healthz p50 / p99 ms | registrations 201/s | registration p50 / p99 ms | ratio to /healthz | non-201 | socket errors | CPU µs a /healthz: server / database / wrk, machine | CPU µs a registration: server / database / wrk, machine |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run=0
open_rows=""
for connections in ${CONNECTIONS:-64 256}; do
    read -r h1 h1p50 h1p99 _ _ hs hd hl hm < <(load "$connections" bench/get.lua "$base/healthz")
    read -r reg p50 p99 other errors rs rd rl rm < <(load "$connections" bench/register.lua "$base/api/v1/windows/$window/entries" "$run")
    read -r h2 h2p50 h2p99 _ _ _ _ _ _ < <(load "$connections" bench/get.lua "$base/healthz")
    run=$((run + 1))
    awk -v c="$connections" -v h1="$h1" -v h2="$h2" -v hp50="$h1p50" -v hp99="$h1p99" \
        -v r="$reg" -v p50="$p50" -v p99="$p99" -v o="$other" -v e="$errors" \
        -v hcpu="$hs $hd $hl $hm" -v rcpu="$rs $rd $rl $rm" \
        'function cpu(parts, p) { split(parts, p, " "); return sprintf("%.0f / %.0f / %.0f, %.0f", p[1], p[2], p[3], p[4]) }
         BEGIN { h = (h1 + h2) / 2; printf "| %d | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.0f%% | %d | %d | %s | %s |\n", c, h, hp50, hp99, r, p50, p99, 100 * r / h, o, e, cpu(hcpu), cpu(rcpu) }'
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
