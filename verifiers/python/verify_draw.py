#!/usr/bin/env python3
"""Independent verifier for tirage draws (format `tirage-draw-v1`).

This program re-computes a published draw from the bundle's inputs alone and
compares every published value with the recomputed one. It was written from
the draw specification only (docs/draw-spec.md), without looking at the
service's code, so that a bug in one implementation is caught by the other.

It uses the Python 3 standard library only (Python 3.9 or newer), including
its own ChaCha20. Every computation is exact integer arithmetic.

Usage:
    python3 verify_draw.py BUNDLE.json          # or "-" to read standard input
    python3 verify_draw.py --json BUNDLE.json   # machine-readable report
    python3 verify_draw.py --entry ENTRY_ID BUNDLE.json
    python3 verify_draw.py --proof PROOF.json [BUNDLE.json]
    python3 verify_draw.py --self-test

Exit status: 0 everything matches, 1 something differs, 2 the input is
unreadable or malformed (or the command line is wrong).
"""

import argparse
import hashlib
import json
import re
import struct
import sys
import unicodedata

FORMAT = "tirage-draw-v1"
MAX_WEIGHT = 1000000
U64 = 1 << 64

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_MALFORMED = 2


class Malformed(Exception):
    """The input cannot be read as a bundle (or proof) of this format."""


# --------------------------------------------------------------------------
# SHA-256 helpers
# --------------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------
# ChaCha20 (20 rounds), D. J. Bernstein's original layout:
#   words 0-3   the constants "expand 32-byte k"
#   words 4-11  the 32-byte key (little-endian words)
#   words 12-13 a 64-bit block counter, starting at 0 (low word first)
#   words 14-15 a 64-bit nonce, here 0
# The key stream is read 8 bytes at a time as little-endian u64.
# --------------------------------------------------------------------------

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
_M32 = 0xFFFFFFFF


def chacha20_block(key_words, counter, nonce=0):
    """One 64-byte ChaCha20 block as a list of 16 u32 words (already added
    to the input state, i.e. the key stream words, in little-endian order)."""
    s = [
        _SIGMA[0], _SIGMA[1], _SIGMA[2], _SIGMA[3],
        key_words[0], key_words[1], key_words[2], key_words[3],
        key_words[4], key_words[5], key_words[6], key_words[7],
        counter & _M32, (counter >> 32) & _M32,
        nonce & _M32, (nonce >> 32) & _M32,
    ]
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = s
    m = _M32
    for _ in range(10):  # 10 double rounds = 20 rounds
        # column rounds
        x0 = (x0 + x4) & m; x12 ^= x0; x12 = ((x12 << 16) | (x12 >> 16)) & m
        x8 = (x8 + x12) & m; x4 ^= x8; x4 = ((x4 << 12) | (x4 >> 20)) & m
        x0 = (x0 + x4) & m; x12 ^= x0; x12 = ((x12 << 8) | (x12 >> 24)) & m
        x8 = (x8 + x12) & m; x4 ^= x8; x4 = ((x4 << 7) | (x4 >> 25)) & m

        x1 = (x1 + x5) & m; x13 ^= x1; x13 = ((x13 << 16) | (x13 >> 16)) & m
        x9 = (x9 + x13) & m; x5 ^= x9; x5 = ((x5 << 12) | (x5 >> 20)) & m
        x1 = (x1 + x5) & m; x13 ^= x1; x13 = ((x13 << 8) | (x13 >> 24)) & m
        x9 = (x9 + x13) & m; x5 ^= x9; x5 = ((x5 << 7) | (x5 >> 25)) & m

        x2 = (x2 + x6) & m; x14 ^= x2; x14 = ((x14 << 16) | (x14 >> 16)) & m
        x10 = (x10 + x14) & m; x6 ^= x10; x6 = ((x6 << 12) | (x6 >> 20)) & m
        x2 = (x2 + x6) & m; x14 ^= x2; x14 = ((x14 << 8) | (x14 >> 24)) & m
        x10 = (x10 + x14) & m; x6 ^= x10; x6 = ((x6 << 7) | (x6 >> 25)) & m

        x3 = (x3 + x7) & m; x15 ^= x3; x15 = ((x15 << 16) | (x15 >> 16)) & m
        x11 = (x11 + x15) & m; x7 ^= x11; x7 = ((x7 << 12) | (x7 >> 20)) & m
        x3 = (x3 + x7) & m; x15 ^= x3; x15 = ((x15 << 8) | (x15 >> 24)) & m
        x11 = (x11 + x15) & m; x7 ^= x11; x7 = ((x7 << 7) | (x7 >> 25)) & m

        # diagonal rounds
        x0 = (x0 + x5) & m; x15 ^= x0; x15 = ((x15 << 16) | (x15 >> 16)) & m
        x10 = (x10 + x15) & m; x5 ^= x10; x5 = ((x5 << 12) | (x5 >> 20)) & m
        x0 = (x0 + x5) & m; x15 ^= x0; x15 = ((x15 << 8) | (x15 >> 24)) & m
        x10 = (x10 + x15) & m; x5 ^= x10; x5 = ((x5 << 7) | (x5 >> 25)) & m

        x1 = (x1 + x6) & m; x12 ^= x1; x12 = ((x12 << 16) | (x12 >> 16)) & m
        x11 = (x11 + x12) & m; x6 ^= x11; x6 = ((x6 << 12) | (x6 >> 20)) & m
        x1 = (x1 + x6) & m; x12 ^= x1; x12 = ((x12 << 8) | (x12 >> 24)) & m
        x11 = (x11 + x12) & m; x6 ^= x11; x6 = ((x6 << 7) | (x6 >> 25)) & m

        x2 = (x2 + x7) & m; x13 ^= x2; x13 = ((x13 << 16) | (x13 >> 16)) & m
        x8 = (x8 + x13) & m; x7 ^= x8; x7 = ((x7 << 12) | (x7 >> 20)) & m
        x2 = (x2 + x7) & m; x13 ^= x2; x13 = ((x13 << 8) | (x13 >> 24)) & m
        x8 = (x8 + x13) & m; x7 ^= x8; x7 = ((x7 << 7) | (x7 >> 25)) & m

        x3 = (x3 + x4) & m; x14 ^= x3; x14 = ((x14 << 16) | (x14 >> 16)) & m
        x9 = (x9 + x14) & m; x4 ^= x9; x4 = ((x4 << 12) | (x4 >> 20)) & m
        x3 = (x3 + x4) & m; x14 ^= x3; x14 = ((x14 << 8) | (x14 >> 24)) & m
        x9 = (x9 + x14) & m; x4 ^= x9; x4 = ((x4 << 7) | (x4 >> 25)) & m
    out = (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15)
    return [(out[i] + s[i]) & m for i in range(16)]


def chacha20_keystream(key, n_bytes, counter=0, nonce=0):
    """The first n_bytes of the key stream for a 32-byte key (for tests)."""
    key_words = struct.unpack("<8I", key)
    out = bytearray()
    while len(out) < n_bytes:
        out += struct.pack("<16I", *chacha20_block(key_words, counter, nonce))
        counter += 1
    return bytes(out[:n_bytes])


class RandomStream:
    """The draw's random stream: ChaCha20 keyed by the 32-byte seed."""

    def __init__(self, seed):
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise ValueError("the seed must be 32 bytes")
        self._key = struct.unpack("<8I", bytes(seed))
        self._counter = 0
        self._buf = []
        self._pos = 0
        self.consumed = 0  # number of u64 values read so far

    def next_u64(self):
        if self._pos >= len(self._buf):
            w = chacha20_block(self._key, self._counter)
            self._counter += 1
            self._buf = [w[i] | (w[i + 1] << 32) for i in range(0, 16, 2)]
            self._pos = 0
        r = self._buf[self._pos]
        self._pos += 1
        self.consumed += 1
        return r

    def uniform(self, m):
        """An integer in [0, m) without bias, by rejection (spec section 6)."""
        if m < 1:
            raise ValueError("uniform(m) needs m >= 1")
        zone = U64 - (U64 % m)
        while True:
            r = self.next_u64()
            if r < zone:
                return r % m


# --------------------------------------------------------------------------
# Merkle tree, RFC 6962 section 2.1 (RFC 9162 section 2.1.1)
# --------------------------------------------------------------------------

def entry_leaf(entry_id_hex, weight):
    """leaf(e) = H(0x00 || id as 16 bytes || weight as 4-byte big-endian)."""
    return sha256(b"\x00" + bytes.fromhex(entry_id_hex) + weight.to_bytes(4, "big"))


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def merkle_root(leaf_hashes):
    """MTH over already-hashed leaves. Built level by level: pairing
    neighbours and lifting an odd last node unchanged gives exactly the
    RFC 6962 tree (whose left subtrees are always complete)."""
    if not leaf_hashes:
        return sha256(b"")
    level = list(leaf_hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _largest_power_of_two_below(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root_recursive(leaf_hashes):
    """MTH exactly as written in RFC 6962 (slow; used to test merkle_root)."""
    n = len(leaf_hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hashes[0]
    k = _largest_power_of_two_below(n)
    return node_hash(merkle_root_recursive(leaf_hashes[:k]),
                     merkle_root_recursive(leaf_hashes[k:]))


def audit_path(index, leaf_hashes):
    """PATH(m, D[n]) of RFC 6962 section 2.1.1, as a list of 32-byte hashes."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError("leaf index out of range")
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if index < k:
        return audit_path(index, leaf_hashes[:k]) + [merkle_root(leaf_hashes[k:])]
    return audit_path(index - k, leaf_hashes[k:]) + [merkle_root(leaf_hashes[:k])]


def root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, path):
    """RFC 9162 section 2.1.3.2. Returns (root, None) or (None, reason)."""
    if leaf_index >= tree_size:
        return None, "leaf_index %d is not below tree_size %d" % (leaf_index, tree_size)
    fn = leaf_index
    sn = tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return None, "the audit path is longer than this tree size allows"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None, "the audit path is shorter than this tree size needs"
    return r, None


# --------------------------------------------------------------------------
# The draw (spec sections 1-9)
# --------------------------------------------------------------------------

def slot_key(slot):
    """Slot order: (starts_at, counter, id) ascending, compared as bytes."""
    return (slot["starts_at"].encode("utf-8"), slot["counter"].encode("utf-8"),
            slot["id"].encode("utf-8"))


def draw_order(weights, stream):
    """Spec section 7 with a Fenwick tree. Returns rank[i] (1-based) for every
    entry i in entry order."""
    n = len(weights)
    tree = [0] * (n + 1)
    for i, w in enumerate(weights, 1):  # O(n) construction
        tree[i] += w
        j = i + (i & -i)
        if j <= n:
            tree[j] += tree[i]
    w = list(weights)
    remaining = sum(weights)
    top = 1
    while top * 2 <= n:
        top *= 2
    rank = [0] * n
    for step in range(1, n + 1):
        t = stream.uniform(remaining)
        # smallest i with w[0] + ... + w[i] > t: walk down the tree to the
        # largest prefix whose sum is <= t; the entry just after it is i.
        pos = 0
        rest = t
        bit = top
        while bit:
            nxt = pos + bit
            if nxt <= n and tree[nxt] <= rest:
                pos = nxt
                rest -= tree[nxt]
            bit >>= 1
        i = pos  # 0-based entry index
        rank[i] = step
        wi = w[i]
        remaining -= wi
        w[i] = 0
        j = i + 1
        while j <= n:
            tree[j] -= wi
            j += j & -j
    return rank


def draw_order_linear(weights, stream):
    """Spec section 7 word for word (O(n^2)); used to test draw_order."""
    w = list(weights)
    remaining = sum(w)
    rank = [0] * len(w)
    for step in range(1, len(w) + 1):
        t = stream.uniform(remaining)
        acc = 0
        for i, wi in enumerate(w):
            acc += wi
            if acc > t:
                break
        rank[i] = step
        remaining -= w[i]
        w[i] = 0
    return rank


def compute_draw(window_id, beacon, beacon_value, seed_commitment, secret,
                 entries, slots):
    """Recompute every published value of a draw.

    entries: list of {"id": hex32, "weight": int}, in entry order.
    slots:   list of {"id", "starts_at", "counter"}, in slot order.
    secret, beacon_value: bytes. seed_commitment: the published text.
    Returns a dict with the recomputed values (hex strings, results list).
    """
    leaves = [entry_leaf(e["id"], e["weight"]) for e in entries]
    entries_root = merkle_root(leaves)

    slots_hash = sha256("".join(
        "%s\t%s\t%s\n" % (s["id"], s["starts_at"], s["counter"]) for s in slots
    ).encode("utf-8"))

    commitment = sha256((
        FORMAT + "\n" + window_id + "\n" + str(len(entries)) + "\n"
        + entries_root.hex() + "\n" + str(len(slots)) + "\n" + slots_hash.hex()
        + "\n" + seed_commitment + "\n" + beacon + "\n"
    ).encode("utf-8"))

    seed = sha256((
        "tirage-seed-v1\n" + commitment.hex() + "\n" + secret.hex() + "\n"
        + beacon_value.hex() + "\n"
    ).encode("utf-8"))

    weights = [e["weight"] for e in entries]
    rank = draw_order(weights, RandomStream(seed))

    n = len(entries)
    by_rank = [0] * n  # by_rank[r - 1] = entry index
    for i, r in enumerate(rank):
        by_rank[r - 1] = i
    s = min(len(slots), n)
    selected = sorted(by_rank[:s], key=lambda i: (-weights[i], rank[i]))
    slot_of = {}  # entry index -> index of its slot in slot order
    for j, i in enumerate(selected):
        slot_of[i] = j

    results = []
    lines = []
    for r, i in enumerate(by_rank, 1):
        j = slot_of.get(i)
        sid = None if j is None else slots[j]["id"]
        results.append({"rank": r, "id": entries[i]["id"], "slot": sid})
        lines.append("%d\t%s\t%s\n" % (r, entries[i]["id"], "-" if sid is None else sid))
    results_hash = sha256("".join(lines).encode("utf-8"))

    return {
        "seed_commitment": sha256(secret).hex(),
        "entries_root": entries_root.hex(),
        "slots_hash": slots_hash.hex(),
        "commitment": commitment.hex(),
        "seed": seed.hex(),
        "results": results,
        "results_hash": results_hash.hex(),
        "leaves": leaves,
        "rank": rank,
        "slot_of": slot_of,
    }


# --------------------------------------------------------------------------
# Reading and checking the input
# --------------------------------------------------------------------------

_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*\Z")
_HASH_RE = re.compile(r"[0-9a-f]{64}\Z")
_SLOT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_STARTS_AT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")

BUNDLE_FIELDS = ("format", "window_id", "beacon", "beacon_value", "seed_commitment",
                 "secret", "entries", "slots", "entries_root", "slots_hash",
                 "commitment", "seed", "results", "results_hash")


def _reject_constant(name):
    raise Malformed("%s is not allowed in JSON" % name)


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise Malformed("the key %s appears twice in one JSON object" % json.dumps(k))
        obj[k] = v
    return obj


def parse_json(data, what):
    """Parse bytes as strict JSON (UTF-8, no duplicate keys, no NaN)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed("%s is not valid UTF-8 (byte %d)" % (what, e.start))
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_reject_constant)
    except Malformed as e:
        raise Malformed("%s: %s" % (what, e))
    except json.JSONDecodeError as e:
        raise Malformed("%s is not JSON: %s (line %d, column %d)"
                        % (what, e.msg, e.lineno, e.colno))
    except (ValueError, RecursionError) as e:
        raise Malformed("%s is not usable JSON: %s" % (what, e))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _show(v):
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 80 else s[:77] + "..."


def _need(obj, key, where):
    if key not in obj:
        raise Malformed("%s: missing field %s" % (where, json.dumps(key)))
    return obj[key]


def _text(v, where):
    if not isinstance(v, str):
        raise Malformed("%s: must be a string, found %s" % (where, _show(v)))
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("%s: contains a lone surrogate, which is not valid UTF-8" % where)
    return v


def _hex_bytes(v, where, length=None):
    _text(v, where)
    if not _HEX_RE.match(v):
        raise Malformed("%s: must be lowercase hexadecimal (an even number of 0-9 a-f), "
                        "found %s"
                        % (where, _show(v)))
    b = bytes.fromhex(v)
    if length is not None and len(b) != length:
        raise Malformed("%s: must be %d hex characters, found %d"
                        % (where, 2 * length, len(v)))
    return b


def _entry_id(v, where):
    _text(v, where)
    if not _ID_RE.match(v):
        raise Malformed("%s: must be 32 lowercase hex characters, found %s" % (where, _show(v)))
    return v


def _weight(v, where):
    if not _is_int(v) or not 1 <= v <= MAX_WEIGHT:
        raise Malformed("%s: must be an integer from 1 to %d, found %s"
                        % (where, MAX_WEIGHT, _show(v)))
    return v


def _days_in_month(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _starts_at(v, where):
    """Exactly YYYY-MM-DDTHH:MM:SSZ naming a real UTC time. As in RFC 3339,
    the year may be 0000 (proleptic Gregorian calendar) and the second may be
    60 (a leap second)."""
    _text(v, where)
    ok = bool(_STARTS_AT_RE.match(v))
    if ok:
        year, month, day = int(v[0:4]), int(v[5:7]), int(v[8:10])
        hour, minute, second = int(v[11:13]), int(v[14:16]), int(v[17:19])
        ok = (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)
              and hour <= 23 and minute <= 59 and second <= 60)
    if not ok:
        raise Malformed("%s: must be a UTC time written exactly YYYY-MM-DDTHH:MM:SSZ, found %s"
                        % (where, _show(v)))
    return v


def _counter(v, where):
    _text(v, where)
    n = len(v)
    if not 1 <= n <= 64 or any(unicodedata.category(c) == "Cc" for c in v):
        raise Malformed("%s: must be 1 to 64 printable characters (no tab, newline or other "
                        "control character), found %s" % (where, _show(v)))
    return v


def _slot_id(v, where):
    _text(v, where)
    if not _SLOT_ID_RE.match(v):
        raise Malformed("%s: must be 1 to 64 characters of A-Z a-z 0-9 . _ -, found %s"
                        % (where, _show(v)))
    return v


def _object(v, where):
    if not isinstance(v, dict):
        raise Malformed("%s: must be a JSON object, found %s" % (where, _show(v)))
    return v


def _list(v, where):
    if not isinstance(v, list):
        raise Malformed("%s: must be a JSON array, found %s" % (where, _show(v)))
    return v


def parse_bundle(doc):
    """Check the bundle's shape and types; return the decoded inputs and the
    published values. Raises Malformed."""
    _object(doc, "bundle")
    for key in BUNDLE_FIELDS:
        _need(doc, key, "bundle")

    fmt = doc["format"]
    if fmt != FORMAT:
        raise Malformed("format: must be %s, found %s" % (json.dumps(FORMAT), _show(fmt)))

    # Tab and line breaks would blur the line-based hash inputs: refused in
    # window_id (spec section 4) and in beacon ("a one-line text", section 3).
    window_id = _text(doc["window_id"], "window_id")
    if any(c in window_id for c in "\t\n\r"):
        raise Malformed("window_id: must not contain a tab or a line break")
    beacon = _text(doc["beacon"], "beacon")
    if any(c in beacon for c in "\t\n\r"):
        raise Malformed("beacon: must be one line of text (no tab or line break)")
    beacon_value = _hex_bytes(doc["beacon_value"], "beacon_value")
    seed_commitment = _text(doc["seed_commitment"], "seed_commitment")
    if not _HASH_RE.match(seed_commitment):
        raise Malformed("seed_commitment: must be 64 lowercase hex characters, found %s"
                        % _show(seed_commitment))
    secret = _hex_bytes(doc["secret"], "secret")
    if len(secret) != 32:
        raise Malformed("secret: must be 64 lowercase hex characters (32 bytes), found %d "
                        "characters" % len(doc["secret"]))

    entries = []
    for k, e in enumerate(_list(doc["entries"], "entries")):
        where = "entries[%d]" % k
        _object(e, where)
        entries.append({
            "id": _entry_id(_need(e, "id", where), where + ".id"),
            "weight": _weight(_need(e, "weight", where), where + ".weight"),
        })

    slots = []
    for k, s in enumerate(_list(doc["slots"], "slots")):
        where = "slots[%d]" % k
        _object(s, where)
        slots.append({
            "id": _slot_id(_need(s, "id", where), where + ".id"),
            "starts_at": _starts_at(_need(s, "starts_at", where), where + ".starts_at"),
            "counter": _counter(_need(s, "counter", where), where + ".counter"),
        })

    published = {}
    for key in ("entries_root", "slots_hash", "commitment", "seed", "results_hash"):
        published[key] = _text(doc[key], key)
    published["seed_commitment"] = seed_commitment

    results = []
    for k, r in enumerate(_list(doc["results"], "results")):
        where = "results[%d]" % k
        _object(r, where)
        rank = _need(r, "rank", where)
        if not _is_int(rank) or not 0 <= rank < U64:
            raise Malformed("%s.rank: must be a non-negative integer, found %s"
                            % (where, _show(rank)))
        rid = _entry_id(_need(r, "id", where), where + ".id")
        slot = _need(r, "slot", where)
        if slot is not None:
            _text(slot, where + ".slot")
        results.append({"rank": rank, "id": rid, "slot": slot})
    published["results"] = results

    return {
        "window_id": window_id, "beacon": beacon, "beacon_value": beacon_value,
        "seed_commitment": seed_commitment, "secret": secret,
        "entries": entries, "slots": slots,
    }, published


def parse_proof(doc):
    """Check an inclusion proof object's shape. Raises Malformed."""
    _object(doc, "proof")
    for key in ("entry_id", "weight", "leaf_index", "tree_size", "audit_path", "entries_root"):
        _need(doc, key, "proof")
    entry_id = _entry_id(doc["entry_id"], "entry_id")
    weight = _weight(doc["weight"], "weight")
    for key in ("leaf_index", "tree_size"):
        v = doc[key]
        if not _is_int(v) or v < 0 or v >= U64:
            raise Malformed("%s: must be an integer from 0 to 2^64-1, found %s" % (key, _show(v)))
    path = []
    for k, p in enumerate(_list(doc["audit_path"], "audit_path")):
        where = "audit_path[%d]" % k
        _text(p, where)
        if not _HASH_RE.match(p):
            raise Malformed("%s: must be 64 hex characters, found %s" % (where, _show(p)))
        path.append(bytes.fromhex(p))
    root = _text(doc["entries_root"], "entries_root")
    if not _HASH_RE.match(root):
        raise Malformed("entries_root: must be 64 hex characters, found %s" % _show(root))
    return {"entry_id": entry_id, "weight": weight, "leaf_index": doc["leaf_index"],
            "tree_size": doc["tree_size"], "audit_path": path,
            "entries_root": root.lower()}


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------

def _check(name, ok, expected=None, found=None, first_rank=None, detail=None):
    return {"name": name, "ok": bool(ok), "expected": expected, "found": found,
            "first_rank": first_rank, "detail": detail}


def _first_unordered_entry(entries):
    for k in range(1, len(entries)):
        a, b = entries[k - 1]["id"], entries[k]["id"]
        if a >= b:
            return k, a, b
    return None


def _first_unordered_slot(slots):
    for k in range(1, len(slots)):
        if slot_key(slots[k - 1]) > slot_key(slots[k]):
            return k
    return None


def _first_duplicate_slot_id(slots):
    seen = {}
    for k, s in enumerate(slots):
        if s["id"] in seen:
            return seen[s["id"]], k
        seen[s["id"]] = k
    return None


def _result_text(item):
    if item is None:
        return "(end of list)"
    slot = item.get("slot")
    return "%s %s %s" % (item.get("rank"), item.get("id"), "-" if slot is None else slot)


def verify_bundle(inputs, published):
    """Recompute the draw and compare. Returns (checks, computed, sorted inputs)."""
    checks = []
    entries = inputs["entries"]
    slots = inputs["slots"]

    expected_sc = sha256(inputs["secret"]).hex()
    checks.append(_check("seed_commitment", expected_sc == published["seed_commitment"],
                         expected_sc, published["seed_commitment"]))

    if inputs["beacon"] == "none" and inputs["beacon_value"]:
        checks.append(_check(
            "beacon_value", False, "", inputs["beacon_value"].hex(),
            detail="the beacon is none, so beacon_value must be empty"))

    bad = _first_unordered_entry(entries)
    if bad is None:
        checks.append(_check("entries", True))
    else:
        k, a, b = bad
        what = "a duplicate id" if a == b else "ids out of order"
        checks.append(_check(
            "entries", False, "ids strictly ascending (entry order)",
            "entries[%d].id %s then entries[%d].id %s" % (k - 1, a, k, b),
            detail="%s; the rest is computed from the entries sorted by id" % what))
        entries = sorted(entries, key=lambda e: e["id"])

    bad = _first_unordered_slot(slots)
    dup = _first_duplicate_slot_id(slots)
    if bad is None and dup is None:
        checks.append(_check("slots", True))
    elif bad is None:
        # Results name slots by id alone, so two slots with one id would make
        # the published assignment ambiguous.
        checks.append(_check(
            "slots", False, "each slot id once",
            "slots[%d] and slots[%d] both have id %s" % (dup[0], dup[1], slots[dup[1]]["id"]),
            detail="a result naming this id could mean either slot"))
    else:
        k = bad
        checks.append(_check(
            "slots", False, "slots in slot order (starts_at, counter, id)",
            "slots[%d] (%s) comes before slots[%d] (%s)" % (
                k - 1, " ".join(slots[k - 1][f] for f in ("starts_at", "counter", "id")),
                k, " ".join(slots[k][f] for f in ("starts_at", "counter", "id"))),
            detail="the rest is computed from the slots sorted in slot order"))
        slots = sorted(slots, key=slot_key)

    computed = compute_draw(inputs["window_id"], inputs["beacon"], inputs["beacon_value"],
                            inputs["seed_commitment"], inputs["secret"], entries, slots)

    for name in ("entries_root", "slots_hash", "commitment", "seed"):
        checks.append(_check(name, computed[name] == published[name],
                             computed[name], published[name]))

    exp, got = computed["results"], published["results"]
    first = None
    for k in range(max(len(exp), len(got))):
        a = exp[k] if k < len(exp) else None
        b = got[k] if k < len(got) else None
        if a != b:
            first = k
            break
    if first is None:
        checks.append(_check("results", True))
    else:
        a = exp[first] if first < len(exp) else None
        b = got[first] if first < len(got) else None
        checks.append(_check("results", False, a, b, first_rank=first + 1))

    checks.append(_check("results_hash", computed["results_hash"] == published["results_hash"],
                         computed["results_hash"], published["results_hash"]))
    return checks, computed, entries, slots


def verify_proof(proof):
    leaf = entry_leaf(proof["entry_id"], proof["weight"])
    root, why = root_from_inclusion_proof(proof["leaf_index"], proof["tree_size"], leaf,
                                          proof["audit_path"])
    if root is None:
        return _check("proof", False, proof["entries_root"], None, detail=why)
    ok = root.hex() == proof["entries_root"]
    return _check("proof", ok, proof["entries_root"], root.hex(),
                  detail=None if ok else "the audit path leads to another root")


def entry_report(entry_id, entries, slots, computed):
    for i, e in enumerate(entries):
        if e["id"] == entry_id:
            break
    else:
        return None
    rank = computed["rank"][i]
    n = len(entries)
    s = min(len(slots), n)
    j = computed["slot_of"].get(i)
    slot = None if j is None else slots[j]
    return {"id": entry_id, "weight": e["weight"], "rank": rank, "of": n,
            "selected": rank <= s, "waiting_list_position": None if rank <= s else rank - s,
            "slot": slot["id"] if slot else None, "starts_at": slot["starts_at"] if slot else None,
            "counter": slot["counter"] if slot else None, "leaf_index": i}


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------

# Spec section 6: ChaCha20 keyed with 00 01 .. 1f, first two u64.
SPEC_CHACHA_SEED = bytes(range(32))
SPEC_CHACHA_FIRST = (0x6A19C5D97D2BFD39, 0x494ADCB87703BD8D)

# RFC 8439 appendix A.1, test vectors 1 and 2: all-zero key and nonce, block
# counter 0 and 1. With a zero nonce the IETF and the original layouts agree.
RFC8439_ZERO_KEY_STREAM = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f")

# RFC 6962 / transparency-dev merkle test data: leaf data, tree heads of
# every prefix (size 0..8) and four inclusion proofs (index, size, path).
RFC6962_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                  "606162636465666768696a6b6c6d6e6f"]
RFC6962_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
RFC6962_PATHS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def rfc6962_leaf(data):
    return sha256(b"\x00" + data)


def self_test():
    """Run the known answers. Returns a list of (name, ok) pairs."""
    out = []
    stream = RandomStream(SPEC_CHACHA_SEED)
    first = (stream.next_u64(), stream.next_u64())
    out.append(("chacha20: spec section 6 known answer (seed 00..1f)",
                first == SPEC_CHACHA_FIRST))
    out.append(("chacha20: RFC 8439 A.1 vectors 1-2 (zero key, blocks 0-1)",
                chacha20_keystream(bytes(32), 128) == RFC8439_ZERO_KEY_STREAM))
    z = RandomStream(bytes(32))
    out.append(("chacha20: key stream read as little-endian u64",
                z.next_u64() == struct.unpack("<Q", RFC8439_ZERO_KEY_STREAM[:8])[0]))

    leaves = [rfc6962_leaf(bytes.fromhex(d)) for d in RFC6962_LEAVES]
    roots_ok = all(merkle_root(leaves[:n]).hex() == RFC6962_ROOTS[n] for n in range(9))
    roots_ok = roots_ok and all(merkle_root_recursive(leaves[:n]).hex() == RFC6962_ROOTS[n]
                                for n in range(9))
    out.append(("merkle: RFC 6962 tree heads of sizes 0..8", roots_ok))
    paths_ok = True
    for index, size, path in RFC6962_PATHS:
        mine = [h.hex() for h in audit_path(index, leaves[:size])]
        root, _ = root_from_inclusion_proof(index, size, leaves[index],
                                            [bytes.fromhex(p) for p in path])
        paths_ok = paths_ok and mine == path and root is not None \
            and root.hex() == RFC6962_ROOTS[size]
    out.append(("merkle: RFC 6962 audit paths and RFC 9162 verification", paths_ok))
    bad_ok = True
    index, size, path = RFC6962_PATHS[0]
    p = [bytes.fromhex(x) for x in path]
    for li, ts, pp in ((index + 1, size, p), (index, size * 2, p), (index, size, p[:-1]),
                       (index, size, p + [p[0]]), (size, size, p)):
        root, _ = root_from_inclusion_proof(li, ts, leaves[index], pp)
        if root is not None and root.hex() == RFC6962_ROOTS[size]:
            bad_ok = False
    out.append(("merkle: corrupted proofs are refused", bad_ok))

    u = RandomStream(SPEC_CHACHA_SEED)
    out.append(("uniform(1) is 0 and uses one value", u.uniform(1) == 0 and u.consumed == 1))
    return out


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _read_input(path):
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Malformed("cannot read %s: %s" % (path, e.strerror or e))


def _print_checks(checks, out):
    for c in checks:
        if c["ok"]:
            out.write("OK    %s\n" % c["name"])
            continue
        if c["name"] == "results":
            out.write("FAIL  results: first difference at rank %d: expected %s, found %s\n"
                      % (c["first_rank"], _result_text(c["expected"]), _result_text(c["found"])))
        else:
            line = "FAIL  %s: expected %s, found %s" % (c["name"], c["expected"], c["found"])
            if c.get("detail"):
                line += " (%s)" % c["detail"]
            out.write(line + "\n")


def _json_checks(checks):
    return [{k: c[k] for k in ("name", "ok", "expected", "found", "first_rank", "detail")}
            for c in checks]


def _run_bundle(args, out):
    inputs, published = parse_bundle(parse_json(_read_input(args.bundle), "the bundle"))
    entry_id = None
    if args.entry is not None:
        entry_id = args.entry.strip().lower()
        if not _ID_RE.match(entry_id):
            raise Malformed("--entry: an entry id is 32 hex characters, found %s"
                            % _show(args.entry))
    checks, computed, entries, slots = verify_bundle(inputs, published)
    proof_checks = []
    if args.proof is not None:
        proof = parse_proof(parse_json(_read_input(args.proof), "the proof"))
        proof_checks.append(verify_proof(proof))
        proof_checks.append(_check(
            "proof_root",
            proof["entries_root"] == computed["entries_root"]
            and proof["tree_size"] == len(entries),
            "%s (%d entries)" % (computed["entries_root"], len(entries)),
            "%s (%d entries)" % (proof["entries_root"], proof["tree_size"])))
    report = None
    if entry_id is not None:
        report = entry_report(entry_id, entries, slots, computed)
        if report is None:
            checks.append(_check("entry", False, entry_id, None,
                                 detail="this entry id is not in the entries list"))
    all_checks = checks + proof_checks
    ok = all(c["ok"] for c in all_checks)

    if args.json:
        doc = {"ok": ok, "checks": _json_checks(all_checks),
               "entries": len(entries), "slots": len(slots),
               "beacon": inputs["beacon"]}
        if entry_id is not None:
            doc["entry"] = report
        out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK if ok else EXIT_MISMATCH

    for c in checks:
        if c["name"] == "entry":
            out.write("FAIL  entry: %s is not in the entries list\n" % entry_id)
        else:
            _print_checks([c], out)
    _print_checks(proof_checks, out)
    if report is not None:
        if report["selected"]:
            where = "slot %s (%s, %s)" % (report["slot"], report["starts_at"], report["counter"])
        else:
            where = "no slot, waiting list position %d" % report["waiting_list_position"]
        out.write("entry %s: rank %d of %d, %s, weight %d\n"
                  % (entry_id, report["rank"], report["of"], where, report["weight"]))
    out.write("%s: %d entries, %d slots, beacon %s\n" % (
        "all published values match" if ok else "MISMATCH: the bundle does not verify",
        len(entries), len(slots), inputs["beacon"]))
    if inputs["beacon"] == "none":
        out.write("note: the beacon is none, so the operator knew every input of the seed; "
                  "this draw is only as fair as the operator is honest.\n")
    else:
        out.write("note: not checked here: that beacon_value is really the value of %s.\n"
                  % inputs["beacon"])
    return EXIT_OK if ok else EXIT_MISMATCH


def _run_proof_only(args, out):
    proof = parse_proof(parse_json(_read_input(args.proof), "the proof"))
    check = verify_proof(proof)
    if args.json:
        out.write(json.dumps({"ok": check["ok"], "checks": _json_checks([check])},
                             indent=2) + "\n")
    elif check["ok"]:
        out.write("OK    proof: entry %s (weight %d) is leaf %d of %d under entries_root %s\n"
                  % (proof["entry_id"], proof["weight"], proof["leaf_index"],
                     proof["tree_size"], proof["entries_root"]))
    elif check["found"] is None:
        out.write("FAIL  proof: %s\n" % check["detail"])
    else:
        out.write("FAIL  proof: expected %s, found %s (%s)\n"
                  % (check["expected"], check["found"], check["detail"]))
    return EXIT_OK if check["ok"] else EXIT_MISMATCH


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("%s: error: %s\n" % (self.prog, message))
        sys.exit(EXIT_MALFORMED)


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = _Parser(
        prog="verify_draw.py",
        description="Re-compute a published tirage draw (format tirage-draw-v1) and "
                    "compare every published value. Exit 0: all match; 1: a mismatch; "
                    "2: unreadable or malformed input.")
    parser.add_argument("bundle", nargs="?", help="the bundle JSON file, or - for standard input")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument("--entry", metavar="ENTRY_ID",
                        help="also print this entry's rank, slot and weight")
    parser.add_argument("--proof", metavar="FILE",
                        help="check an inclusion proof (receipt); with a bundle, also check "
                             "that it proves inclusion in that bundle's entries")
    parser.add_argument("--self-test", action="store_true",
                        help="run the built-in known-answer tests")
    args = parser.parse_args(argv)

    try:
        if args.self_test:
            results = self_test()
            for name, ok in results:
                out.write("%s  %s\n" % ("OK  " if ok else "FAIL", name))
            return EXIT_OK if all(ok for _, ok in results) else EXIT_MISMATCH
        if args.bundle is None and args.proof is None:
            parser.error("give a bundle file (or - for standard input), --proof FILE "
                         "or --self-test")
        if args.bundle == "-" and args.proof == "-":
            parser.error("only one input can come from standard input")
        if args.bundle is None:
            if args.entry is not None:
                parser.error("--entry needs a bundle")
            return _run_proof_only(args, out)
        return _run_bundle(args, out)
    except Malformed as e:
        sys.stderr.write("verify_draw.py: malformed input: %s\n" % e)
        if args.json:
            out.write(json.dumps({"ok": False, "malformed": str(e), "checks": []},
                                 ensure_ascii=False) + "\n")
        return EXIT_MALFORMED
    except MemoryError:
        sys.stderr.write("verify_draw.py: the input is too large for this machine's memory\n")
        return EXIT_MALFORMED


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stderr.write("verify_draw.py: interrupted\n")
        code = 130
    except BrokenPipeError:
        # the reader went away (e.g. "| head"); stay quiet at exit
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_MISMATCH
    except Exception as e:  # never show a traceback to the person auditing
        sys.stderr.write("verify_draw.py: internal error: %s: %s\n" % (type(e).__name__, e))
        code = EXIT_MALFORMED
    sys.exit(code)
