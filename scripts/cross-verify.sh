#!/usr/bin/env bash
# Both verifiers, the Rust `tirage verify` and the independent Python one, must agree:
# on a bundle of ENTRIES entries made by `tirage draw`, and on tampered copies of it.
#
#   scripts/cross-verify.sh [path/to/tirage] [ENTRIES] [SLOTS]
set -euo pipefail
cd "$(dirname "$0")/.."
tirage=${1:-target/debug/tirage}
entries=${2:-10000}
slots=${3:-500}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 bench/make_inputs.py "$entries" "$slots" "$work/inputs.json"
"$tirage" draw --input "$work/inputs.json" --out "$work/bundle.json"

# failed check names of one verifier's JSON report, one line
failed() { python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(sorted(c["name"] for c in r["checks"] if not c["ok"])) or "-")'; }

check() { # name, bundle file, expected exit code
  local name=$1 file=$2 want=$3 rust_code=0 py_code=0
  "$tirage" verify --json "$file" >"$work/rust.json" || rust_code=$?
  python3 verifiers/python/verify_draw.py --json "$file" >"$work/py.json" || py_code=$?
  local rust_failed py_failed
  rust_failed=$(failed <"$work/rust.json")
  py_failed=$(failed <"$work/py.json")
  if [[ $rust_code != "$want" || $py_code != "$want" || $rust_failed != "$py_failed" ]]; then
    echo "cross-verify: $name: rust exit $rust_code ($rust_failed), python exit $py_code ($py_failed), wanted exit $want" >&2
    exit 1
  fi
  echo "cross-verify: $name: both exit $rust_code, failed: $rust_failed"
}

check "bundle of $entries entries" "$work/bundle.json" 0

tamper() { # name, python expression over the bundle b
  python3 - "$work/bundle.json" "$work/tampered.json" "$2" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(b, open(sys.argv[2], "w"))
PY
  check "$1" "$work/tampered.json" 1
}
tamper "changed weight" 'b["entries"][17]["weight"] = b["entries"][17]["weight"] % 8 + 1'
tamper "changed secret" 'b["secret"] = "00" * 32'
tamper "changed slot time" 'b["slots"][3]["starts_at"] = "2030-01-01T00:00:00Z"'
tamper "swapped results" 'r = b["results"]; r[5]["id"], r[6]["id"] = r[6]["id"], r[5]["id"]'
tamper "changed beacon value" 'b["beacon_value"] = "ab"'
echo "cross-verify: the two verifiers agree"
