#!/usr/bin/env bash
# Property-based fuzzing of the JSON API with Schemathesis: starts a real `tirage serve`
# on a throwaway SQLite file with an admin token, lets Schemathesis generate requests
# (valid and invalid) for every operation of the OpenAPI description the service
# serves, and fails on any 5xx answer, and on any answer whose status, content type or
# body is not the one documented for it.
#
#   scripts/schemathesis.sh [path/to/tirage]
#
# Environment: SCHEMATHESIS (the command, default `python3 -m schemathesis.cli`, the
# version that .ci/run installs: schemathesis==4.32.5 from PyPI), ST_MAX_EXAMPLES
# (cases per operation and phase, default 20), ST_SEED (default 1, so a run can be
# replayed). The binary defaults to target/debug/tirage (or $CARGO_TARGET_DIR's).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
tirage=${1:-$target_dir/debug/tirage}
read -r -a schemathesis <<<"${SCHEMATHESIS:-python3 -m schemathesis.cli}"
max_examples=${ST_MAX_EXAMPLES:-20}
seed=${ST_SEED:-1}

work=$(mktemp -d)
server=
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

# Every request comes from one address: the per-address rate limits are turned off so
# that generated requests reach the handlers (the limits have their own tests).
TIRAGE_ADMIN_TOKEN=$token RUST_LOG=${RUST_LOG:-warn} "$tirage" serve \
    --listen "127.0.0.1:$port" \
    --rate-registration off --rate-code off --rate-status off \
    --database "sqlite://$work/tirage.db?mode=rwc" \
    --mail "file:$work/mail" >"$work/server.log" 2>&1 &
server=$!

for _ in $(seq 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
done

# A window and an entry for the operations whose path names one, so that generated
# requests reach the handlers instead of stopping at 404. Staff operations are fuzzed
# with the admin token (the token is sent as is, not generated).
window=$(curl -fsS -X POST "$base/api/v1/windows" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{
      "site": "34", "procedure": "renewal",
      "registration_opens_at": "2020-01-01T08:00:00Z",
      "registration_closes_at": "2099-12-15T18:00:00Z",
      "draw_at": "2099-12-16T10:00:00Z", "beacon": "none",
      "slots": [{"starts_at": "2100-01-04T08:30:00Z", "counter": "G1"}]}')
window_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$window")
curl -fsS -X POST "$base/api/v1/windows/$window_id/open" -H "Authorization: Bearer $token" >/dev/null
entry=$(curl -fsS -X POST "$base/api/v1/windows/$window_id/counter-entries" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{
      "family_name": "Fuzz", "given_names": "Schema", "birth_date": "1990-01-01",
      "nationality": "FRA",
      "document": {"kind": "foreigner_number", "number": "7500000001", "country": "FRA"}}')
entry_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["entry_id"])' <<<"$entry")
access=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_code"])' <<<"$entry")
# The applicant's operations get the entry's access code, the others the admin token.
cat >"$work/schemathesis.toml" <<TOML
headers = { Authorization = "Bearer $token" }

[parameters]
"path.id" = "$window_id"
"path.entry_id" = "$entry_id"

[[operations]]
include-path-regex = '^/api/v1/entries/[{]entry_id[}](?!/corrections)'
headers = { Authorization = "Bearer $access" }
TOML

status=0
"${schemathesis[@]}" --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 2 \
    --request-timeout 10 \
    --generation-with-security-parameters false \
    --no-color || status=$?

if ((status != 0)); then
    echo "--- server log (warnings and errors)"
    tail -n 50 "$work/server.log"
fi
exit "$status"
