#!/usr/bin/env bash
# No acknowledged registration lost across hard kills (see scripts/durability.py).
#
#   scripts/durability.sh [DATABASE_URL] [ROUNDS]
#
# DATABASE_URL defaults to a new temporary SQLite file; give a postgres:// URL to run
# the same rounds on PostgreSQL. ROUNDS defaults to 20. Builds the release binary
# unless TIRAGE_BIN names one already built. Extra options for the client (clients,
# people, kill times, seed) go in DURABILITY_ARGS, e.g. DURABILITY_ARGS="--seed 7".
# Prints the counts of every round; exits non-zero if any acknowledged registration is
# missing after a restart or any duplicate got in.
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-}
rounds=${2:-20}

if [[ -z ${TIRAGE_BIN:-} ]]; then
    cargo build --release --bin tirage
    TIRAGE_BIN=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/tirage
fi

args=(--binary "$TIRAGE_BIN" --rounds "$rounds")
if [[ -n $database ]]; then
    args+=(--database "$database")
fi
# shellcheck disable=SC2086 # DURABILITY_ARGS is a list of options
exec python3 scripts/durability.py "${args[@]}" ${DURABILITY_ARGS:-}
