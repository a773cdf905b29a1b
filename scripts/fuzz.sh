#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a short time (libFuzzer, with
# AddressSanitizer and debug assertions, a dictionary of JSON boundary values in
# fuzz/json.dict), starting from seeds made of the project's own files:
#
#   scripts/fuzz.sh [SECONDS]        # per target, default 60
#
# - bundle_verify: `tirage verify` on arbitrary bytes, seeded with the published draw
#   vectors (tests/vectors/*.json).
# - registration: the registration form and each field validator on arbitrary bytes,
#   seeded with a valid registration.
# - window: window creation and editing (slots, slot templates, weighting policy) on
#   arbitrary bytes, seeded with a slot list and a slot template.
#
# cargo-fuzz needs unstable compiler flags (-Zsanitizer); on a stable toolchain,
# RUSTC_BOOTSTRAP=1 allows them. Needs `cargo install cargo-fuzz --locked` once. A crash
# stops the run and leaves its input in fuzz/artifacts/<target>/; replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`.
# What the runs found so far: docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
}
export RUSTC_BOOTSTRAP=1

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/bundle_verify" "$corpus/registration" "$corpus/window"
cp ../tests/vectors/*.json "$corpus/bundle_verify/"
cat >"$corpus/registration/applicant.json" <<'JSON'
{"family_name": "Diallo-N'Diaye", "given_names": "Aminata Fatou", "birth_date": "1991-03-14",
 "nationality": "SEN", "document": {"kind": "foreigner_number", "number": "7500000001",
 "country": "FRA"}, "email": "aminata.diallo+rdv@example.org", "phone": "+33 6 12 34 00 01",
 "permit_expires_on": "2027-01-20", "language": "fr"}
JSON
printf '%s' 'Élise-Marie O’Brien' >"$corpus/registration/name.txt"
cat >"$corpus/window/slots.json" <<'JSON'
{"site": "34", "procedure": "renewal", "registration_opens_at": "2026-12-01T08:00:00Z",
 "registration_closes_at": "2026-12-15T18:00:00Z", "draw_at": "2026-12-16T10:00:00Z",
 "beacon": "none", "location": "Préfecture de l'Hérault",
 "policy": {"tiers": [{"max_days_left": 30, "weight": 8}, {"max_days_left": 60, "weight": 4}],
            "default_weight": 1, "carry_over_bonus": 1, "max_bonus": 4},
 "slots": [{"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
           {"id": "B", "starts_at": "2027-01-04T08:30:00+01:00", "counter": "G2"}]}
JSON
cat >"$corpus/window/template.json" <<'JSON'
{"site": "974", "procedure": "first-permit", "registration_opens_at": "2026-12-01T08:00:00Z",
 "registration_closes_at": "2026-12-15T18:00:00Z", "draw_at": "2026-12-16T10:00:00Z",
 "beacon": "drand:quicknet:round=12345678",
 "slot_template": {"first_day": "2027-01-04", "last_day": "2027-01-10",
   "closed_days": ["2027-01-06"], "time_zone": "Indian/Reunion",
   "opening_hours": [{"from": "08:30", "to": "12:00"}, {"from": "13:30", "to": "16:00"}],
   "counters": ["G1", "G2"], "minutes_per_appointment": 30}}
JSON

for target in bundle_verify registration window; do
    echo "== $target, ${seconds}s"
    log=$corpus/$target.log
    # debug assertions on, so that an integer overflow is a crash, not a silent wrap
    if ! cargo fuzz run --debug-assertions "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -dict=json.dict -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "$target found a failing input: see fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb))' "$log"
done
