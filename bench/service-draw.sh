#!/usr/bin/env bash
# Close + draw + bundle of a window inside the real service (examples/service_draw.rs),
# on SQLite and on PostgreSQL, next to sha256sum and `tirage verify` of the same bundle
# file, with peak memory. Sizes 10k, 100k and 1M entries (slots: one per 20 entries).
# Also reported: the first download of the bundle, and the draw's follow-up (the
# waiting-list rows, slot holders and result mails written after the draw answered),
# timed from the draw's answer. Not run in CI: about fifteen minutes on two cores.
#
#   bench/service-draw.sh                      # SQLite, and PostgreSQL if one can be started
#   SIZES="1000000" bench/service-draw.sh      # only some sizes
#   ENGINES=sqlite bench/service-draw.sh       # only SQLite
#   TIRAGE_BENCH_POSTGRES_URL=postgres://user@host/postgres bench/service-draw.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh

cargo build --release --all-features --example service_draw --bin tirage >/dev/null
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
example=$target/release/examples/service_draw
tirage=$target/release/tirage
work=$(mktemp -d)
trap 'pg_stop; rm -rf "$work"' EXIT

engines=(sqlite)
pg_url=${TIRAGE_BENCH_POSTGRES_URL:-}
if [[ ${ENGINES:-sqlite postgres} != *postgres* ]]; then
    pg_url=""
elif [[ -z $pg_url ]]; then
    if PGPORT=${PGPORT:-55440} pg_start >/dev/null; then
        pg_url=$TIRAGE_TEST_POSTGRES_URL
    else
        echo "PostgreSQL skipped: $PG_WHY" >&2
    fi
fi
[[ -n $pg_url ]] && engines+=(postgres)

# wall seconds and peak resident MiB of a command, best of three
measure() {
    local best="" mem=""
    for _ in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
        read -r secs kb <"$work/time"
        if [[ -z $best ]] || awk -v a="$secs" -v b="$best" 'BEGIN{exit !(a<b)}'; then
            best=$secs
            mem=$((kb / 1024))
        fi
    done
    echo "$best $mem"
}

field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f", a/b; else printf "-" }'; }

printf '| engine | entries | slots | bundle MiB | sha256sum s | close s | draw s | close+draw s (x hash) | first GET bundle s | follow-up s | service peak MiB | verify s (x hash) | verify MiB |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
n_db=0
for engine in "${engines[@]}"; do
    for n in ${SIZES:-10000 100000 1000000}; do
        slots=$((n / 20))
        n_db=$((n_db + 1))
        if [[ $engine == sqlite ]]; then
            url="sqlite://$work/bench-$n_db.db?mode=rwc"
        else
            psql -q "$pg_url" -c "create database bench_$n_db" >/dev/null
            url="${pg_url%/*}/bench_$n_db"
        fi
        /usr/bin/time -f "%M" -o "$work/service-mem" \
            "$example" --database "$url" --entries "$n" --slots "$slots" --out "$work/bundle.json" \
            >"$work/result.json"
        close_s=$(field "$work/result.json" close_s)
        draw_s=$(field "$work/result.json" draw_s)
        get_s=$(field "$work/result.json" get_bundle_s)
        followup_s=$(field "$work/result.json" followup_s_after_draw)
        service_mb=$(( $(cat "$work/service-mem") / 1024 ))
        read -r hash_s _ < <(measure sha256sum "$work/bundle.json")
        read -r verify_s verify_mb < <(measure "$tirage" verify "$work/bundle.json")
        both=$(awk -v a="$close_s" -v b="$draw_s" 'BEGIN{printf "%.2f", a+b}')
        size_mb=$(( $(stat -c %s "$work/bundle.json") / 1048576 ))
        printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %s (%s) | %.2f | %.1f | %s | %s (%s) | %s |\n' \
            "$engine" "$n" "$slots" "$size_mb" "$hash_s" "$close_s" "$draw_s" "$both" \
            "$(ratio "$both" "$hash_s")" "$get_s" "$followup_s" "$service_mb" "$verify_s" \
            "$(ratio "$verify_s" "$hash_s")" "$verify_mb"
        rm -f "$work"/bench-*.db*
    done
done
