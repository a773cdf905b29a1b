#!/usr/bin/env bash
# The public reads refreshed by many on draw day, under load: a window's summary, its
# commitment and its bundle, each sent in full, compressed (gzip) and as 304 to a
# client that holds the current copy (If-None-Match), next to /healthz.
#
#   bench/public-reads.sh [DATABASE_URL] [ENTRIES] [SECONDS]
#
# Defaults: a temporary SQLite file, 2000 entries (registered at the counter), 5 s
# per wrk run at 64 connections. Above 20000 entries the window is made the way
# bench/service-draw.sh makes it (examples/service_draw: entries loaded straight into
# the database, then closed and drawn), since registering a national window through
# the API would take hours; `bench/public-reads.sh "" 1000000` measures the reads of a
# national window. Builds the release binary unless TIRAGE_BIN names one. Needs wrk.
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-}
entries=${2:-2000}
seconds=${3:-5}
source bench/serve.sh

if (( entries > 20000 )); then
    cargo build --release --all-features --example service_draw >&2
    database=${database:-sqlite://$work/tirage.db?mode=rwc}
    echo "loading, closing and drawing $entries entries..." >&2
    "$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/examples/service_draw" \
        --database "$database" --entries "$entries" --slots $((entries / 20)) \
        --out "$work/bundle.json" >/dev/null
    start_server "$database"
    window=$(curl -fs "$base/api/v1/windows" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["windows"][0]["id"])')
else
    start_server "$database"

# a window that closes shortly after its entries are in; the scheduler closes and
# draws it (beacon none)
echo "registering $entries entries and waiting for the draw..." >&2
window=$(python3 - "$base" "$token" "$entries" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
base, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
def call(path, body=None, method="POST"):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
def letters(k):
    out = ""
    while True:
        out += chr(97 + k % 26); k //= 26
        if k == 0: return out
now = datetime.now(timezone.utc)
closes = now + timedelta(seconds=20 + n // 200)
window = call("/api/v1/windows", {
    "site": "34", "procedure": "renewal",
    "registration_opens_at": iso(now - timedelta(minutes=1)),
    "registration_closes_at": iso(closes), "draw_at": iso(closes + timedelta(seconds=2)),
    "beacon": "none",
    "slots": [{"starts_at": iso(now + timedelta(days=10, minutes=15 * i)), "counter": "G1"}
              for i in range(max(1, n // 20))]})
wid = window["id"]
call(f"/api/v1/windows/{wid}/open")
def register(k):
    call(f"/api/v1/windows/{wid}/counter-entries", {
        "family_name": "Lecture" + letters(k), "given_names": "Awa", "birth_date": "1990-05-17",
        "nationality": "SEN",
        "document": {"kind": "foreigner_number", "number": f"{k:010d}", "country": "FRA"},
        "email": f"lecture{k}@example.org", "language": "fr"})
with ThreadPoolExecutor(16) as pool:
    list(pool.map(register, range(n)))
while call(f"/api/v1/windows/{wid}", method="GET")["state"] != "drawn":
    time.sleep(0.5)
print(wid)
PY
)
fi

# one wrk run; prints "good/s p50 p99 MB/s"
load() {
    local url=$1; shift
    wrk -t 2 -c 64 -d "${seconds}s" --timeout 10s -s bench/get.lua "$@" "$url" \
        | sed -n 's/^RESULT //p' \
        | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                 printf "%.0f | %.1f / %.1f | %.1f\n", v["created_per_s"], v["p50_ms"], v["p99_ms"], v["bytes_per_s"] / 1048576 }'
}
etag() { curl -s -o /dev/null -D - "$@" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }

echo "database: $(engine_of "$database"), $entries entries, ${seconds} s per run at 64 connections, $(nproc) cores"
echo
echo "| read | bytes sent | req/s | p50 / p99 ms | MiB/s |"
echo "|---|---:|---:|---:|---:|"
size() { curl -s -o /dev/null -w '%{size_download}' "$@"; }
echo "| /healthz | $(size "$base/healthz") | $(load "$base/healthz") |"
for path in "" /commitment /bundle; do
    url=$base/api/v1/windows/$window$path
    name=${path:-/ (summary)}
    tag=$(etag "$url")
    gz_tag=$(etag -H 'Accept-Encoding: gzip' "$url")
    echo "| $name | $(size "$url") | $(load "$url") |"
    echo "| $name, gzip | $(size -H 'Accept-Encoding: gzip' "$url") | $(load "$url" -H 'Accept-Encoding: gzip') |"
    echo "| $name, If-None-Match (304) | 0 | $(load "$url" -H "If-None-Match: $tag") |"
    echo "| $name, gzip, If-None-Match (304) | 0 | $(load "$url" -H 'Accept-Encoding: gzip' -H "If-None-Match: $gz_tag") |"
done
