#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust test suites (with the
# server and without it), the API suite a second time on PostgreSQL, the web pages in
# headless Chromium, the API fuzzed against its OpenAPI description (Schemathesis), the
# independent Python verifier, and the cross-check of the two verifiers on a
# 10,000-entry draw.
#
# PostgreSQL: set TIRAGE_TEST_POSTGRES_URL (postgres://user@host:port/db, a role that
# may create databases) to use a server of yours; otherwise a throwaway server is
# started from the PostgreSQL binaries on this machine and stopped at the end. Only
# when none can be started are the PostgreSQL runs skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh

# where cargo builds (an absolute path, also when CARGO_TARGET_DIR is set)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "lints (server build, every target: lib, bin, tests, benches; the log VFS crate)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "lints (auditor build without the server stack)"
cargo clippy --no-default-features --lib --bins -- -D warnings

step "Rust tests (server build, SQLite; the log VFS crate)"
env -u TIRAGE_TEST_POSTGRES_URL cargo test --workspace --all-features

step "the API tests again, on PostgreSQL"
if [[ -n ${TIRAGE_TEST_POSTGRES_URL:-} ]]; then
    echo "using the PostgreSQL server of TIRAGE_TEST_POSTGRES_URL"
elif pg_start; then
    trap pg_stop EXIT
else
    echo "SKIPPED: no PostgreSQL server could be started here ($PG_WHY)"
fi
if [[ -n ${TIRAGE_TEST_POSTGRES_URL:-} ]]; then
    cargo test --all-features --test api
fi

# the criterion benches are run by hand (docs/benchmarks.md); CI only makes sure they
# still build, in the profile the tests already built (cargo bench --no-run would
# build everything again in release)
step "benches compile"
cargo build --all-features --benches

step "web pages in a real browser (Chromium, axe-core, 360 px screenshots in browser-tests/output)"
cargo build --all-features --bin tirage
TIRAGE_BIN="$target_dir/debug/tirage" browser-tests/run.sh

step "the API fuzzed by Schemathesis: no 5xx, every answer as documented (scripts/schemathesis.sh)"
scripts/schemathesis.sh "$target_dir/debug/tirage"

step "no acknowledged registration lost across hard kills (3 rounds; 20 with scripts/durability.sh)"
TIRAGE_BIN="$target_dir/debug/tirage" scripts/durability.sh "" 3
if [[ -n ${TIRAGE_TEST_POSTGRES_URL:-} ]]; then
    TIRAGE_BIN="$target_dir/debug/tirage" scripts/durability.sh "$TIRAGE_TEST_POSTGRES_URL" 3
fi

step "auditor build without the server stack, and its tests"
cargo test --no-default-features --test draw_vectors --test draw_properties --test cli_verify \
    --test cli_attestation --test cli_audit_log
cargo build --no-default-features --bin tirage
tirage=$target_dir/debug/tirage

step "independent Python verifier"
python3 -m unittest discover -s verifiers/python

step "both verifiers agree on a 10,000-entry draw made by tirage draw"
scripts/cross-verify.sh "$tirage" 10000 500

echo
echo "all tests passed"
