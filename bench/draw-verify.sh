#!/usr/bin/env bash
# `tirage draw` and `tirage verify` at 10k, 100k and 1M entries, next to sha256sum of
# the same bundle file, with peak memory. Not run in CI (it takes about a minute).
#
#   bench/draw-verify.sh [path/to/tirage]     (default: a fresh release build)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ge 1 ]]; then
  tirage=$1
else
  cargo build --release --no-default-features --bin tirage >/dev/null
  tirage=target/release/tirage
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# best of three runs: wall seconds and peak resident memory (MiB) of a command
measure() {
  local best="" mem=""
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r secs kb <"$work/time"
    if [[ -z $best ]] || awk -v a="$secs" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$secs; mem=$((kb / 1024)); fi
  done
  echo "$best $mem"
}

printf '| entries | slots | bundle MiB | sha256sum s | draw s (x hash) | draw MiB | verify s (x hash) | verify MiB |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for n in 10000 100000 1000000; do
  slots=$((n / 20))
  python3 bench/make_inputs.py "$n" "$slots" "$work/in.json"
  read -r draw_s draw_mb < <(measure "$tirage" draw --input "$work/in.json" --out "$work/bundle.json")
  read -r hash_s _ < <(measure sha256sum "$work/bundle.json")
  read -r verify_s verify_mb < <(measure "$tirage" verify "$work/bundle.json")
  size_mb=$(( $(stat -c %s "$work/bundle.json") / 1048576 ))
  ratio() { awk -v a="$1" -v b="$hash_s" 'BEGIN{ if (b > 0) printf "%.1f", a/b; else printf "-" }'; }
  printf '| %s | %s | %s | %s | %s (%s) | %s | %s (%s) | %s |\n' "$n" "$slots" "$size_mb" "$hash_s" \
    "$draw_s" "$(ratio "$draw_s")" "$draw_mb" "$verify_s" "$(ratio "$verify_s")" "$verify_mb"
done
