#!/usr/bin/env python3
"""Write the golden test vectors of the draw format to tests/vectors/.

The numbers are computed by verify_draw.py, the independent Python
implementation of the draw specification (docs/draw-spec.md). Everything here
is fixed (secrets, ids, slots), so running this twice writes the same bytes.

Usage: python3 make_vectors.py [--out DIR]     (default: <repo>/tests/vectors)
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import verify_draw as vd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "vectors"))

ABOUT_SUFFIX = (" Computed by verifiers/python/verify_draw.py, the independent Python "
                "implementation written from the draw specification (DRAW-SPEC.md, "
                "docs/draw-spec.md), not by the service. Every value is fixed, not random.")


def fixed_id(label, k):
    """A fixed, random-looking entry id: the first 16 bytes of
    SHA-256("tirage test entry <label> <k>")."""
    return vd.sha256(("tirage test entry %s %d" % (label, k)).encode("utf-8"))[:16].hex()


def make_bundle(window_id, beacon, beacon_value, secret, entries, slots, about):
    entries = sorted(entries, key=lambda e: e["id"])
    slots = sorted(slots, key=vd.slot_key)
    seed_commitment = vd.sha256(secret).hex()
    c = vd.compute_draw(window_id, beacon, beacon_value, seed_commitment, secret,
                        entries, slots)
    return {
        "format": vd.FORMAT,
        "window_id": window_id,
        "beacon": beacon,
        "beacon_value": beacon_value.hex(),
        "seed_commitment": seed_commitment,
        "secret": secret.hex(),
        "entries": [{"id": e["id"], "weight": e["weight"]} for e in entries],
        "slots": [{"id": s["id"], "starts_at": s["starts_at"], "counter": s["counter"]}
                  for s in slots],
        "entries_root": c["entries_root"],
        "slots_hash": c["slots_hash"],
        "commitment": c["commitment"],
        "seed": c["seed"],
        "results": c["results"],
        "results_hash": c["results_hash"],
        "about": about + ABOUT_SUFFIX,
    }


def slot(sid, starts_at, counter):
    return {"id": sid, "starts_at": starts_at, "counter": counter}


SECRET_0_31 = bytes(range(32))


def bundles():
    out = {}

    out["empty.json"] = make_bundle(
        "test-empty", "none", b"", SECRET_0_31, [],
        [slot("S1", "2027-01-04T08:30:00Z", "G1"), slot("S2", "2027-01-04T09:00:00Z", "G1")],
        "No entries and two slots: entries_root is H(\"\") (the empty Merkle tree), the "
        "order draws nothing from the random stream, results is empty, results_hash is "
        "H(\"\"). Secret: the bytes 00 01 .. 1f.")

    out["one-entry.json"] = make_bundle(
        "test-one-entry", "none", b"", SECRET_0_31,
        [{"id": "0123456789abcdef0123456789abcdef", "weight": 3}],
        [slot("S1", "2027-01-04T08:30:00Z", "G1")],
        "One entry (weight 3) and one slot: entries_root is the entry's leaf, the order "
        "draws uniform(3) once, the entry gets rank 1 and slot S1. Secret: the bytes "
        "00 01 .. 1f. docs/draw-spec.md walks through it value by value.")

    out["more-slots-than-entries.json"] = make_bundle(
        "test-more-slots-than-entries", "none", b"", SECRET_0_31,
        [{"id": fixed_id("more-slots", 1), "weight": 1},
         {"id": fixed_id("more-slots", 2), "weight": 2},
         {"id": fixed_id("more-slots", 3), "weight": 4}],
        [slot("S1", "2027-01-04T08:30:00Z", "G1"), slot("S2", "2027-01-04T08:30:00Z", "G2"),
         slot("S3", "2027-01-04T09:00:00Z", "G1"), slot("S4", "2027-01-04T09:00:00Z", "G2"),
         slot("S5", "2027-01-04T09:30:00Z", "G1")],
        "Three entries (weights 1, 2, 4) and five slots: everyone is selected; the "
        "selected take the slots by weight descending (so weight 4 gets S1, weight 2 S2, "
        "weight 1 S3) and S4, S5 stay free. Secret: the bytes 00 01 .. 1f.")

    out["equal-weights.json"] = make_bundle(
        "test-equal-weights", "none", b"", SECRET_0_31,
        [{"id": fixed_id("equal", k), "weight": 1} for k in range(1, 9)],
        [slot("S1", "2027-01-04T08:30:00Z", "G1"), slot("S2", "2027-01-04T09:00:00Z", "G1"),
         slot("S3", "2027-01-04T09:30:00Z", "G1")],
        "Eight entries, all weight 1, three slots: ranks 1-3 take S1-S3 in rank order "
        "(equal weights), ranks 4-8 form the waiting list. Secret: the bytes 00 01 .. 1f.")

    out["one-heavy.json"] = make_bundle(
        "test-one-heavy", "none", b"", SECRET_0_31,
        [{"id": fixed_id("heavy", k), "weight": 1000000 if k == 3 else 1}
         for k in range(1, 6)],
        [slot("S1", "2027-01-04T08:30:00Z", "G1"), slot("S2", "2027-01-04T09:00:00Z", "G1")],
        "Five entries, one of weight 1000000 (the maximum) and four of weight 1, two "
        "slots: the heavy entry is picked first with probability 1000000/1000004 (and "
        "here it is), and as the heaviest selected entry it takes S1. "
        "Secret: the bytes 00 01 .. 1f.")

    tier_weights = [1, 2, 4, 8, 1, 1, 2, 8, 4, 1, 2, 1, 4, 8, 1, 2, 1, 4, 1, 8]
    out["tiers.json"] = make_bundle(
        "34-renewal-2027-01-\u00e9", "drand:quicknet:round=12345678",
        vd.sha256(b"tirage test beacon drand:quicknet:round=12345678"),
        bytes(range(32, 64)),
        [{"id": fixed_id("tiers", k), "weight": w} for k, w in enumerate(tier_weights, 1)],
        [slot("A-0104-0830", "2027-01-04T08:30:00Z", "Guichet 1"),
         slot("B-0104-0830", "2027-01-04T08:30:00Z", "Guichet \u00e9"),
         slot("A-0104-0900", "2027-01-04T09:00:00Z", "Guichet 1"),
         slot("A-0105-0830", "2027-01-05T08:30:00Z", "Guichet 1"),
         slot("B-0105-0830-b", "2027-01-05T08:30:00Z", "Guichet \u00e9"),
         slot("B-0105-0830-a", "2027-01-05T08:30:00Z", "Guichet \u00e9")],
        "Twenty entries with urgency weights 1, 2, 4 and 8, six slots on two counters "
        "over two days. The window id and one counter contain a non-ASCII character "
        "(U+00E9, two bytes in UTF-8), which sorts after ASCII bytewise; two slots share "
        "starts_at and counter and are ordered by id. The beacon names a drand round; "
        "its beacon_value is a fixed stand-in (SHA-256 of \"tirage test beacon "
        "drand:quicknet:round=12345678\"), NOT the real drand value. Secret: the bytes "
        "20 21 .. 3f.")

    out["no-slots.json"] = make_bundle(
        "test-no-slots", "none", b"", SECRET_0_31,
        [{"id": fixed_id("no-slots", k), "weight": w} for k, w in enumerate([1, 2, 3, 4], 1)],
        [],
        "Four entries (weights 1-4) and no slots: slots_hash is H(\"\"), nobody is "
        "selected, every result has slot null and the whole ranking is the waiting list. "
        "Secret: the bytes 00 01 .. 1f.")
    return out


def rfc6962_vectors():
    leaves_hex = vd.RFC6962_LEAVES
    leaves = [vd.rfc6962_leaf(bytes.fromhex(d)) for d in leaves_hex]
    roots = [{"tree_size": n, "root": vd.merkle_root(leaves[:n]).hex()} for n in range(0, 9)]
    paths = []
    for n in range(1, 9):
        for i in range(n):
            paths.append({"leaf_index": i, "tree_size": n,
                          "audit_path": [h.hex() for h in vd.audit_path(i, leaves[:n])]})
    return {
        "about": "RFC 6962 Merkle tree test vectors (section 2.1): the tree head of every "
                 "prefix of the eight leaves below and the audit path (section 2.1.1) of "
                 "every leaf index in every tree size 1..8. For these generic vectors the "
                 "leaf hash is SHA-256(0x00 || data); tirage's entry leaves instead hash "
                 "0x00 || id (16 bytes) || weight (4 bytes, big-endian). Computed by "
                 "verifiers/python/verify_draw.py.",
        "source": "The leaves and the tree heads of sizes 0..8 are the published RFC 6962 "
                  "test data of google/certificate-transparency "
                  "(cpp/merkletree/merkle_tree_test.cc: kInputs, kSHA256EmptyTreeHash, "
                  "kSHA256Roots), carried over to transparency-dev/merkle "
                  "(proof/verify_test.go: leaves, roots). The audit paths of (leaf_index 0, "
                  "tree_size 8), (5, 8), (2, 3) and (1, 5) were checked against kSHA256Paths / "
                  "inclusionProofs in the same files (written there with 1-based leaf numbers "
                  "1, 6, 3, 2) and against transparency-dev/merkle "
                  "testdata/inclusion/3/happy-path.json. The other paths are computed here by "
                  "the RFC 6962 section 2.1.1 definition and verified with the RFC 9162 "
                  "section 2.1.3.2 algorithm.",
        "leaf_hash": "sha256(0x00 || data)",
        "node_hash": "sha256(0x01 || left || right)",
        "leaves": leaves_hex,
        "leaf_hashes": [h.hex() for h in leaves],
        "roots": roots,
        "inclusion": paths,
    }


def chacha20_vectors():
    seed = vd.SPEC_CHACHA_SEED
    s = vd.RandomStream(seed)
    first = ["%016x" % s.next_u64() for _ in range(8)]
    ms = [1, 2, 3, 10, 1000000, 2 ** 32, 2 ** 63, 2 ** 63 + 1, 2 ** 64 - 1]
    fresh = []
    for m in ms:
        st = vd.RandomStream(seed)
        r = st.uniform(m)
        fresh.append({"m": str(m), "result": str(r), "u64_read": st.consumed})
    seq = []
    st = vd.RandomStream(seed)
    for _ in range(8):
        before = st.consumed
        r = st.uniform(2 ** 63 + 1)
        seq.append({"m": str(2 ** 63 + 1), "result": str(r),
                    "u64_read": st.consumed - before})
    mixed = []
    st = vd.RandomStream(seed)
    for m in [3, 1, 10, 2 ** 63 + 1, 1000000, 7, 1, 2]:
        before = st.consumed
        r = st.uniform(m)
        mixed.append({"m": str(m), "result": str(r), "u64_read": st.consumed - before})
    return {
        "about": "The draw's random stream (spec section 6): ChaCha20, 20 rounds, original "
                 "layout (64-bit block counter from 0 in words 12-13, 64-bit nonce 0 in "
                 "words 14-15), keyed by the seed, read as little-endian u64; and "
                 "uniform(m): zone = 2^64 - (2^64 mod m), draw r until r < zone, return "
                 "r mod m. Integers m and results are decimal strings because some exceed "
                 "2^53.",
        "source": "The first two u64 values come from the draw specification (section 6). "
                  "The other six and every uniform outcome come from this independent "
                  "Python implementation (verifiers/python/verify_draw.py), whose ChaCha20 "
                  "also matches RFC 8439 appendix A.1 test vectors 1 and 2.",
        "seed": seed.hex(),
        "first_u64": first,
        "uniform_fresh_stream": fresh,
        "uniform_sequence_m_2_63_plus_1": seq,
        "uniform_sequence_mixed": mixed,
    }


def proof_example(bundle, index):
    entries = bundle["entries"]
    leaves = [vd.entry_leaf(e["id"], e["weight"]) for e in entries]
    return {
        "entry_id": entries[index]["id"],
        "weight": entries[index]["weight"],
        "leaf_index": index,
        "tree_size": len(entries),
        "audit_path": [h.hex() for h in vd.audit_path(index, leaves)],
        "entries_root": bundle["entries_root"],
    }


def dump(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    bs = bundles()
    for name, b in bs.items():
        files[name] = dump(b)
    files["tiers-proof.json"] = dump(proof_example(bs["tiers.json"], 6))
    files["rfc6962.json"] = dump(rfc6962_vectors())
    files["chacha20.json"] = dump(chacha20_vectors())
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return sorted(files)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    args = p.parse_args(argv)
    for name in write_all(args.out):
        print(os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
