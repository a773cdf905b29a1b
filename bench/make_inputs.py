#!/usr/bin/env python3
"""Write synthetic draw inputs (DRAW-SPEC section 10) for benchmarks and CI.

    python3 bench/make_inputs.py ENTRIES SLOTS OUT.json

Ids are SHA-256 based and deterministic; weights follow the default urgency tiers
(1, 2, 4, 8); slots are spread over days and four counters, 15 minutes apart.
"""
import datetime
import hashlib
import json
import sys


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    n, n_slots, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    secret = hashlib.sha256(b"benchmark secret").hexdigest()
    entries = []
    for i in range(n):
        d = hashlib.sha256(i.to_bytes(8, "little")).digest()
        entries.append({"id": d[:16].hex(), "weight": 1 << (d[16] % 4)})
    slots = []
    per_day = 4 * 32  # four counters, 32 appointments each from 08:00
    for s in range(n_slots):
        day, rest = divmod(s, per_day)
        counter, k = divmod(rest, 32)
        at = datetime.datetime(2027, 1, 4, 8, 0) + datetime.timedelta(days=day, minutes=15 * k)
        slots.append({
            "id": f"S{s:06d}",
            "starts_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "counter": f"G{counter + 1}",
        })
    inputs = {
        "window_id": f"bench-{n}",
        "beacon": "none",
        "beacon_value": "",
        "seed_commitment": hashlib.sha256(bytes.fromhex(secret)).hexdigest(),
        "secret": secret,
        "entries": entries,
        "slots": slots,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(inputs, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
