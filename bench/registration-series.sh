#!/usr/bin/env bash
# Registrations at one fixed rate, run after run on one server, to see how often a run
# keeps its p99 within the goal and what the registrar did meanwhile.
#
#   bench/registration-series.sh [DATABASE_URL] RATE [RUNS] [SECONDS]
#
# DATABASE_URL defaults to a new temporary SQLite file (a postgres:// URL runs the same
# series on PostgreSQL). RATE is the registrations offered a second; RUNS (default 8,
# at most 10: the runs' people must stay apart on one window) runs of SECONDS each
# (default 15), 5 s apart and each once the server is idle, alternate between the
# connection counts of CONNECTIONS (default "256 64"). Every run is an open loop
# (examples/open_load.rs): registrations due at fixed times and timed from when they
# were due, each a new valid person. Builds the release binary unless TIRAGE_BIN names
# one; with TIMELINES=DIR, keeps each run's latencies second by second.
#
# Prints a row per run (p50, p90, p99, p99.9, longest), how many runs kept their p99
# within P99_GOAL_MS (default 50), and from the server's /metrics for the whole
# series: the registrar's batches (how many, their mean size and time, the share of
# the series' time spent storing them) and, on a SQLite file, the log's syncs (how
# many, their mean time, how many took over 100 ms). Not run in CI: the numbers
# depend on the machine, and its disk's sync stalls show in them
# (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-}
rate=${2:?usage: bench/registration-series.sh [DATABASE_URL] RATE [RUNS] [SECONDS]}
runs=${3:-8}
seconds=${4:-15}
goal=${P99_GOAL_MS:-50}
read -r -a cycle <<<"${CONNECTIONS:-256 64}"
if ((runs < 1 || runs > 10)); then
    echo "RUNS must be from 1 to 10" >&2
    exit 2
fi
source bench/serve.sh
start_for_registrations "$database"

echo "database: $(engine_of "$database"), $rate registrations a second offered, $runs runs of ${seconds} s, $(nproc) cores"
echo
echo "| run | connections | answered 2xx/s | p50 / p90 / p99 / p99.9 ms | longest ms | sent late | non-2xx | errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
within=0
started=$SECONDS
for ((run = 0; run < runs; run++)); do
    connections=${cycle[run % ${#cycle[@]}]}
    ((run == 0)) || sleep 5
    wait_until_idle
    read -r ok p50 p90 p99 p999 max late other errors < <(open_loop "$connections" "$rate" "$run" "run$run")
    awk -v p99="$p99" -v goal="$goal" 'BEGIN { exit !(p99 <= goal) }' && within=$((within + 1))
    printf '| %d | %d | %.0f | %.1f / %.1f / %.1f / %.1f | %.1f | %d | %d | %d |\n' \
        "$((run + 1))" "$connections" "$ok" "$p50" "$p90" "$p99" "$p999" "$max" "$late" "$other" "$errors"
done
elapsed=$((SECONDS - started))
echo
echo "runs with a p99 within $goal ms: $within of $runs"

# the registrar's histograms over the whole series (docs/operations.md)
curl -fs "$base/metrics" | awk -v elapsed="$elapsed" '
    / / { value[$1] = $2 }
    $1 ~ /^tirage_sqlite_log_sync_seconds_bucket\{le="0.1"\}$/ { syncs_fast = $2 }
    END {
        batches = value["tirage_registration_batch_size_count"]
        if (batches == 0) { print "no batch recorded"; exit }
        stored = value["tirage_registration_batch_size_sum"]
        busy = value["tirage_registration_batch_seconds_sum"]
        printf "registrar: %d batches of %.1f registrations on average, %.2f ms a batch, storing %.0f%% of the series'"'"' %d s (pauses included)\n",
            batches, stored / batches, 1000 * busy / batches, 100 * busy / elapsed, elapsed
        syncs = value["tirage_sqlite_log_sync_seconds_count"]
        if (syncs > 0)
            printf "log syncs: %d, %.2f ms each on average, %d over 100 ms\n",
                syncs, 1000 * value["tirage_sqlite_log_sync_seconds_sum"] / syncs, syncs - syncs_fast
    }'
