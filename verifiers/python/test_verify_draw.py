"""Tests of the independent Python verifier (standard library unittest).

Run from the repository root:  python3 -m unittest discover -s verifiers/python
"""

import contextlib
import copy
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_vectors  # noqa: E402
import verify_draw as vd  # noqa: E402

SCRIPT = os.path.join(HERE, "verify_draw.py")
VECTORS = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "vectors"))
GOLDEN = ["empty.json", "one-entry.json", "more-slots-than-entries.json",
          "equal-weights.json", "one-heavy.json", "tiers.json", "no-slots.json"]


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)


def run_cli(args, stdin=None):
    """Run the verifier as a separate process: (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, SCRIPT] + args, input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def run_main(args, stdin_bytes=None):
    """Run main() in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = vd.main(args, out=out)
    return code, out.getvalue(), err.getvalue()


class TempFiles:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()

    def write(self, obj, name="bundle.json", raw=None):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            # ensure_ascii keeps lone surrogates writable (as \u escapes)
            f.write(raw if raw is not None else json.dumps(obj).encode("ascii"))
        return path

    def cleanup(self):
        self.dir.cleanup()


def flip(hex_text):
    """The same hex string with its first character changed."""
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def failed_names(stdout):
    return {line.split()[1].rstrip(":") for line in stdout.splitlines()
            if line.startswith("FAIL")}


class SelfTest(unittest.TestCase):
    def test_self_test_passes(self):
        code, out, err = run_cli(["--self-test"])
        self.assertEqual(code, 0, out + err)
        self.assertNotIn("FAIL", out)

    def test_spec_chacha_known_answer(self):
        s = vd.RandomStream(bytes(range(32)))
        self.assertEqual(s.next_u64(), 0x6A19C5D97D2BFD39)
        self.assertEqual(s.next_u64(), 0x494ADCB87703BD8D)

    def test_rfc8439_zero_key(self):
        self.assertEqual(vd.chacha20_keystream(bytes(32), 128), vd.RFC8439_ZERO_KEY_STREAM)

    def test_stream_crosses_blocks(self):
        s = vd.RandomStream(bytes(range(32)))
        values = [s.next_u64() for _ in range(24)]
        ks = vd.chacha20_keystream(bytes(range(32)), 24 * 8)
        self.assertEqual(values, [int.from_bytes(ks[8 * i:8 * i + 8], "little")
                                  for i in range(24)])

    def test_chacha20_vector_file(self):
        v = load("chacha20.json")
        self.assertEqual(v["seed"], bytes(range(32)).hex())
        self.assertEqual(v["first_u64"][:2], ["6a19c5d97d2bfd39", "494adcb87703bd8d"])
        s = vd.RandomStream(bytes.fromhex(v["seed"]))
        self.assertEqual(["%016x" % s.next_u64() for _ in range(8)], v["first_u64"])
        for case in v["uniform_fresh_stream"]:
            s = vd.RandomStream(bytes.fromhex(v["seed"]))
            self.assertEqual(str(s.uniform(int(case["m"]))), case["result"])
            self.assertEqual(s.consumed, case["u64_read"])
        ms = [int(c["m"]) for c in v["uniform_fresh_stream"]]
        self.assertIn(1, ms)
        self.assertIn(3, ms)
        self.assertIn(2 ** 63 + 1, ms)

    def test_uniform_rejection(self):
        # For m = 2^63 + 1 the zone is 2^63 + 1: values >= it are thrown away.
        m = 2 ** 63 + 1
        raw = vd.RandomStream(bytes(range(32)))
        values = [raw.next_u64() for _ in range(64)]
        s = vd.RandomStream(bytes(range(32)))
        got = [s.uniform(m) for _ in range(8)]
        want = [r % m for r in values if r < m][:8]
        self.assertEqual(got, want)
        self.assertTrue(any(r >= m for r in values[:s.consumed]), "no rejection exercised")
        self.assertEqual(vd.RandomStream(bytes(32)).uniform(1), 0)


class Merkle(unittest.TestCase):
    def setUp(self):
        self.leaves = [vd.rfc6962_leaf(bytes.fromhex(d)) for d in vd.RFC6962_LEAVES]

    def test_rfc6962_roots(self):
        for n in range(9):
            self.assertEqual(vd.merkle_root(self.leaves[:n]).hex(), vd.RFC6962_ROOTS[n])
        self.assertEqual(vd.merkle_root(self.leaves).hex(),
                         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")

    def test_rfc6962_vector_file(self):
        v = load("rfc6962.json")
        self.assertEqual(v["leaves"], vd.RFC6962_LEAVES)
        for r in v["roots"]:
            n = r["tree_size"]
            self.assertEqual(r["root"], vd.RFC6962_ROOTS[n])
        for p in v["inclusion"]:
            i, n = p["leaf_index"], p["tree_size"]
            path = [bytes.fromhex(h) for h in p["audit_path"]]
            self.assertEqual(path, vd.audit_path(i, self.leaves[:n]))
            root, why = vd.root_from_inclusion_proof(i, n, self.leaves[i], path)
            self.assertIsNotNone(root, why)
            self.assertEqual(root.hex(), vd.RFC6962_ROOTS[n])
        self.assertEqual(len(v["inclusion"]), sum(range(1, 9)))
        # the published transparency-dev paths appear in the file
        published = {(i, n): p for i, n, p in vd.RFC6962_PATHS}
        for p in v["inclusion"]:
            key = (p["leaf_index"], p["tree_size"])
            if key in published:
                self.assertEqual(p["audit_path"], published[key])

    def test_level_construction_equals_rfc_recursion(self):
        leaves = [vd.sha256(bytes([k])) for k in range(70)]
        for n in range(71):
            self.assertEqual(vd.merkle_root(leaves[:n]), vd.merkle_root_recursive(leaves[:n]))

    def test_every_path_verifies_and_corruptions_fail(self):
        leaves = [vd.sha256(bytes([k, 7])) for k in range(33)]
        for n in range(1, 34):
            root = vd.merkle_root(leaves[:n])
            for i in range(n):
                path = vd.audit_path(i, leaves[:n])
                got, why = vd.root_from_inclusion_proof(i, n, leaves[i], path)
                self.assertEqual(got, root, (i, n, why))
                # (A path does not always pin the tree size down: the leaf 0 path
                # of size 3 also "verifies" as size 4. The size is bound by the
                # commitment instead, so wrong sizes are not probed here.)
                probes = [(i + 1, n, path), (i, n, path + [root]), (i, n, [root] + path)]
                if i > 0:
                    probes.append((i - 1, n, path))
                if path:
                    probes.append((i, n, path[:-1]))
                    flipped = [bytes([path[0][0] ^ 8]) + path[0][1:]] + path[1:]
                    probes.append((i, n, flipped))
                for li, ts, pp in probes:
                    got, _ = vd.root_from_inclusion_proof(li, ts, leaves[i], pp)
                    self.assertNotEqual(got, root, (i, n, li, ts, len(pp)))

    def test_entry_leaf_layout(self):
        leaf = vd.entry_leaf("0123456789abcdef0123456789abcdef", 3)
        self.assertEqual(leaf, vd.sha256(bytes([0]) + bytes.fromhex(
            "0123456789abcdef0123456789abcdef") + bytes([0, 0, 0, 3])))


class Order(unittest.TestCase):
    def test_fenwick_equals_linear_scan(self):
        rng = random.Random(1)
        for trial in range(200):
            n = rng.randint(0, 40)
            weights = [rng.choice([1, 1, 2, 4, 8, 1000000, rng.randint(1, 1000000)])
                       for _ in range(n)]
            seed = bytes(rng.randrange(256) for _ in range(32))
            a = vd.draw_order(weights, vd.RandomStream(seed))
            b = vd.draw_order_linear(weights, vd.RandomStream(seed))
            self.assertEqual(a, b, (trial, weights))
            self.assertEqual(sorted(a), list(range(1, n + 1)))

    def test_weights_matter(self):
        # a weight-1000000 entry among weight-1 entries is nearly always first
        firsts = 0
        for k in range(50):
            rank = vd.draw_order([1, 1, 1000000, 1], vd.RandomStream(bytes([k]) * 32))
            firsts += rank[2] == 1
        self.assertGreaterEqual(firsts, 49)


class GoldenVectors(unittest.TestCase):
    def test_every_golden_vector_verifies(self):
        for name in GOLDEN:
            code, out, err = run_cli([os.path.join(VECTORS, name)])
            self.assertEqual(code, 0, name + "\n" + out + err)
            self.assertNotIn("FAIL", out)
            for check in ("seed_commitment", "entries_root", "slots_hash", "commitment",
                          "seed", "results", "results_hash"):
                self.assertIn("OK    %s\n" % check, out)

    def test_vectors_are_reproducible(self):
        with tempfile.TemporaryDirectory() as d:
            names = make_vectors.write_all(d)
            for name in names:
                with open(os.path.join(d, name), "rb") as f:
                    fresh = f.read()
                with open(os.path.join(VECTORS, name), "rb") as f:
                    committed = f.read()
                self.assertEqual(fresh, committed, "%s differs from make_vectors.py" % name)

    def test_vector_shapes(self):
        expect = {"empty.json": (0, 2), "one-entry.json": (1, 1),
                  "more-slots-than-entries.json": (3, 5), "equal-weights.json": (8, 3),
                  "one-heavy.json": (5, 2), "tiers.json": (20, 6), "no-slots.json": (4, 0)}
        keys = list(vd.BUNDLE_FIELDS) + ["about"]
        for name, (n, m) in expect.items():
            b = load(name)
            self.assertEqual(list(b), keys, name)
            self.assertEqual((len(b["entries"]), len(b["slots"])), (n, m), name)
            ids = [e["id"] for e in b["entries"]]
            self.assertEqual(ids, sorted(set(ids)), name)
            self.assertEqual(b["slots"], sorted(b["slots"], key=vd.slot_key), name)
        empty = load("empty.json")
        h_empty = vd.sha256(b"").hex()
        self.assertEqual(empty["entries_root"], h_empty)
        self.assertEqual(empty["results"], [])
        self.assertEqual(empty["results_hash"], h_empty)
        self.assertEqual(load("no-slots.json")["slots_hash"], h_empty)
        self.assertTrue(all(r["slot"] is None for r in load("no-slots.json")["results"]))
        more = load("more-slots-than-entries.json")
        used = {r["slot"] for r in more["results"]}
        self.assertEqual(used, {"S1", "S2", "S3"})
        heavy = load("one-heavy.json")
        w = {e["id"]: e["weight"] for e in heavy["entries"]}
        self.assertEqual(w[heavy["results"][0]["id"]], 1000000)
        tiers = load("tiers.json")
        self.assertTrue(any(ord(c) > 127 for c in tiers["window_id"]))
        self.assertTrue(any(ord(c) > 127 for s in tiers["slots"] for c in s["counter"]))
        self.assertEqual(len(bytes.fromhex(tiers["beacon_value"])), 32)
        self.assertEqual({e["weight"] for e in tiers["entries"]}, {1, 2, 4, 8})
        self.assertEqual(len({s["starts_at"][:10] for s in tiers["slots"]}), 2)
        self.assertEqual(len({s["counter"] for s in tiers["slots"]}), 2)

    def test_one_entry_by_hand(self):
        """Re-derive one-entry.json from the spec text with hashlib directly."""
        b = load("one-entry.json")
        H = vd.sha256
        secret = bytes(range(32))
        self.assertEqual(b["seed_commitment"], H(secret).hex())
        leaf = H(b"\x00" + bytes.fromhex(b["entries"][0]["id"]) + (3).to_bytes(4, "big"))
        self.assertEqual(b["entries_root"], leaf.hex())
        slots_hash = H(b"S1\t2027-01-04T08:30:00Z\tG1\n")
        self.assertEqual(b["slots_hash"], slots_hash.hex())
        commitment = H(("tirage-draw-v1\ntest-one-entry\n1\n%s\n1\n%s\n%s\nnone\n" % (
            leaf.hex(), slots_hash.hex(), H(secret).hex())).encode())
        self.assertEqual(b["commitment"], commitment.hex())
        seed = H(("tirage-seed-v1\n%s\n%s\n\n" % (commitment.hex(), secret.hex())).encode())
        self.assertEqual(b["seed"], seed.hex())
        self.assertEqual(b["results_hash"],
                         H(("1\t%s\tS1\n" % b["entries"][0]["id"]).encode()).hex())

    def test_stdin(self):
        with open(os.path.join(VECTORS, "tiers.json"), "rb") as f:
            code, out, err = run_cli(["-"], stdin=f.read())
        self.assertEqual(code, 0, out + err)

    def test_json_report(self):
        code, out, _ = run_main(["--json", os.path.join(VECTORS, "tiers.json")])
        self.assertEqual(code, 0)
        doc = json.loads(out)
        self.assertIs(doc["ok"], True)
        names = [c["name"] for c in doc["checks"]]
        for n in ("seed_commitment", "entries_root", "slots_hash", "commitment", "seed",
                  "results", "results_hash"):
            self.assertIn(n, names)
        for c in doc["checks"]:
            self.assertEqual(set(c) >= {"name", "ok", "expected", "found", "first_rank"}, True)

    def test_entry_option(self):
        b = load("tiers.json")
        path = os.path.join(VECTORS, "tiers.json")
        first = b["results"][0]
        code, out, _ = run_main(["--entry", first["id"], path])
        self.assertEqual(code, 0)
        self.assertIn("entry %s: rank 1 of 20, slot %s" % (first["id"], first["slot"]), out)
        last = b["results"][-1]
        code, out, _ = run_main(["--entry", last["id"].upper(), path])
        self.assertEqual(code, 0)
        self.assertIn("rank 20 of 20, no slot, waiting list position 14", out)
        code, out, _ = run_main(["--json", "--entry", last["id"], path])
        doc = json.loads(out)
        self.assertEqual(doc["entry"]["rank"], 20)
        self.assertIsNone(doc["entry"]["slot"])
        code, out, _ = run_main(["--entry", "0" * 32, path])
        self.assertEqual(code, 1)
        self.assertIn("FAIL  entry:", out)
        code, _, err = run_main(["--entry", "xyz", path])
        self.assertEqual(code, 2)
        self.assertIn("--entry", err)


class Tampering(unittest.TestCase):
    """Changing one published field gives exit 1 and names what differs."""

    def setUp(self):
        self.tmp = TempFiles()
        self.base = load("tiers.json")

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, mutate, must_fail, must_pass=()):
        b = copy.deepcopy(self.base)
        mutate(b)
        code, out, err = run_main([self.tmp.write(b)])
        self.assertEqual(code, 1, out + err)
        failed = failed_names(out)
        for name in must_fail:
            self.assertIn(name, failed, out)
        for name in must_pass:
            self.assertNotIn(name, failed, out)
        return out

    def test_entry_id(self):
        def f(b):
            e = b["entries"][3]
            e["id"] = e["id"][:-1] + ("0" if e["id"][-1] != "0" else "1")
        self.check(f, ["entries_root", "commitment"], ["seed_commitment", "slots_hash"])

    def test_weight(self):
        def f(b):
            b["entries"][5]["weight"] += 1
        self.check(f, ["entries_root", "commitment", "seed"], ["slots_hash"])

    def test_secret(self):
        def f(b):
            b["secret"] = flip(b["secret"])
        self.check(f, ["seed_commitment", "seed"], ["entries_root", "commitment"])

    def test_slot_starts_at(self):
        def f(b):
            b["slots"][-1]["starts_at"] = "2027-01-05T08:31:00Z"
        self.check(f, ["slots_hash", "commitment"], ["entries_root", "slots"])

    def test_slot_starts_at_out_of_order(self):
        def f(b):
            b["slots"][0]["starts_at"] = "2027-02-01T08:30:00Z"
        self.check(f, ["slots", "slots_hash"], ["entries_root"])

    def test_slot_id(self):
        def f(b):
            b["slots"][1]["id"] = "B-0104-0830-x"
        self.check(f, ["slots_hash", "commitment"], ["entries_root"])

    def test_result_rank(self):
        def f(b):
            b["results"][4]["rank"] = 6
        out = self.check(f, ["results"], ["results_hash", "commitment", "seed"])
        self.assertIn("first difference at rank 5", out)

    def test_result_slot(self):
        def f(b):
            b["results"][0]["slot"] = None
        out = self.check(f, ["results"], ["results_hash"])
        self.assertIn("first difference at rank 1", out)

    def test_result_swapped(self):
        def f(b):
            r = b["results"]
            r[8]["id"], r[9]["id"] = r[9]["id"], r[8]["id"]
        out = self.check(f, ["results"])
        self.assertIn("first difference at rank 9", out)

    def test_result_missing(self):
        def f(b):
            b["results"].pop()
        out = self.check(f, ["results"])
        self.assertIn("first difference at rank 20", out)
        self.assertIn("found (end of list)", out)

    def test_commitment(self):
        def f(b):
            b["commitment"] = flip(b["commitment"])
        self.check(f, ["commitment"], ["seed", "results", "results_hash", "entries_root"])

    def test_results_hash(self):
        def f(b):
            b["results_hash"] = "ab" * 32
        self.check(f, ["results_hash"], ["results", "commitment"])

    def test_window_id_and_beacon(self):
        def f(b):
            b["window_id"] = b["window_id"].replace("\u00e9", "e")
        self.check(f, ["commitment", "seed"], ["entries_root", "slots_hash"])

        def g(b):
            b["beacon_value"] = flip(b["beacon_value"])
        self.check(g, ["seed"], ["commitment"])

    def test_entries_out_of_order_is_a_named_fail(self):
        def f(b):
            e = b["entries"]
            e[0], e[1] = e[1], e[0]
        out = self.check(f, ["entries"], ["entries_root", "commitment", "seed", "results",
                                          "results_hash"])
        self.assertIn("FAIL  entries:", out)

    def test_duplicate_entry_is_a_named_fail(self):
        def f(b):
            b["entries"].insert(1, dict(b["entries"][0]))
        self.check(f, ["entries", "entries_root"])

    def test_slots_out_of_order_is_a_named_fail(self):
        def f(b):
            s = b["slots"]
            s[4], s[5] = s[5], s[4]
        self.check(f, ["slots"], ["slots_hash", "commitment", "results", "results_hash"])

    def test_duplicate_slot_id_is_a_named_fail(self):
        def f(b):
            b["slots"][1]["id"] = b["slots"][0]["id"]
        out = self.check(f, ["slots", "slots_hash"], ["entries_root"])
        self.assertIn("both have id", out)

    def test_beacon_none_with_value(self):
        b = copy.deepcopy(load("one-entry.json"))
        b["beacon_value"] = "00"
        code, out, _ = run_main([self.tmp.write(b)])
        self.assertEqual(code, 1)
        self.assertIn("beacon_value", failed_names(out))

    def test_json_report_on_mismatch(self):
        b = copy.deepcopy(self.base)
        b["results"][2]["slot"] = "A-0104-0830"
        code, out, _ = run_main(["--json", self.tmp.write(b)])
        self.assertEqual(code, 1)
        doc = json.loads(out)
        self.assertIs(doc["ok"], False)
        bad = [c for c in doc["checks"] if not c["ok"]]
        self.assertEqual([c["name"] for c in bad], ["results"])
        self.assertEqual(bad[0]["first_rank"], 3)
        self.assertEqual(bad[0]["found"]["slot"], "A-0104-0830")
        self.assertEqual(bad[0]["expected"], self.base["results"][2])

    def test_cli_exit_code_on_mismatch(self):
        b = copy.deepcopy(self.base)
        b["entries_root"] = "00" * 32
        code, out, err = run_cli([self.tmp.write(b)])
        self.assertEqual(code, 1)
        self.assertIn("FAIL  entries_root: expected %s, found %s"
                      % (self.base["entries_root"], "00" * 32), out)
        self.assertEqual(err, "")


class MalformedInput(unittest.TestCase):
    def setUp(self):
        self.tmp = TempFiles()
        self.base = load("tiers.json")

    def tearDown(self):
        self.tmp.cleanup()

    def assert_malformed(self, b=None, raw=None, label=""):
        path = self.tmp.write(b, raw=raw)
        code, out, err = run_main([path])
        self.assertEqual(code, 2, "%s: %s %s" % (label, out, err))
        self.assertIn("malformed", err, label)
        self.assertNotIn("Traceback", err, label)
        return err

    def mutated(self, f):
        b = copy.deepcopy(self.base)
        f(b)
        return b

    def test_not_json(self):
        self.assert_malformed(raw=b"this is not json", label="text")
        self.assert_malformed(raw=b"", label="empty")
        self.assert_malformed(raw=b"\xff\xfe{}", label="not utf-8")
        self.assert_malformed(raw=b"[1, 2]", label="array")
        self.assert_malformed(raw=b'{"format": NaN}', label="NaN")
        self.assert_malformed(raw=b"[" * 100000 + b"]" * 100000, label="deep")

    def test_duplicate_key(self):
        text = json.dumps(self.base, ensure_ascii=False)
        raw = text.replace('"format": "tirage-draw-v1"',
                           '"format": "tirage-draw-v1", "format": "tirage-draw-v1"', 1)
        self.assert_malformed(raw=raw.encode("utf-8"), label="duplicate key")

    def test_missing_fields(self):
        for key in vd.BUNDLE_FIELDS:
            b = copy.deepcopy(self.base)
            del b[key]
            err = self.assert_malformed(b, label=key)
            self.assertIn(key, err)
        for key in ("id", "weight"):
            self.assert_malformed(self.mutated(lambda b: b["entries"][0].pop(key)), label=key)
        for key in ("id", "starts_at", "counter"):
            self.assert_malformed(self.mutated(lambda b: b["slots"][0].pop(key)), label=key)
        for key in ("rank", "id", "slot"):
            self.assert_malformed(self.mutated(lambda b: b["results"][0].pop(key)), label=key)

    def test_wrong_types_and_values(self):
        cases = {
            "format": lambda b: b.update(format="tirage-draw-v2"),
            "format type": lambda b: b.update(format=1),
            "window_id tab": lambda b: b.update(window_id="a\tb"),
            "window_id newline": lambda b: b.update(window_id="a\nb"),
            "window_id type": lambda b: b.update(window_id=34),
            "window_id surrogate": lambda b: b.update(window_id="\ud800"),
            "beacon newline": lambda b: b.update(beacon="drand\nx"),
            "beacon_value odd": lambda b: b.update(beacon_value="abc"),
            "beacon_value not hex": lambda b: b.update(beacon_value="zz"),
            "secret short": lambda b: b.update(secret="00" * 31),
            "secret upper": lambda b: b.update(secret=b["secret"].upper()),
            "beacon_value upper": lambda b: b.update(beacon_value=b["beacon_value"].upper()),
            "seed_commitment upper": lambda b: b.update(
                seed_commitment=b["seed_commitment"].upper()),
            "seed_commitment short": lambda b: b.update(seed_commitment="abc"),
            "beacon tab": lambda b: b.update(beacon="drand\tx"),
            "beacon cr": lambda b: b.update(beacon="drand\rx"),
            "window_id cr": lambda b: b.update(window_id="a\rb"),
            "secret not hex": lambda b: b.update(secret="g" * 64),
            "secret type": lambda b: b.update(secret=None),
            "seed_commitment type": lambda b: b.update(seed_commitment=5),
            "entries type": lambda b: b.update(entries={}),
            "entry type": lambda b: b["entries"].__setitem__(0, "x"),
            "id upper": lambda b: b["entries"][0].update(id=b["entries"][0]["id"].upper()),
            "id short": lambda b: b["entries"][0].update(id="00" * 15),
            "id long": lambda b: b["entries"][0].update(id="00" * 17),
            "id type": lambda b: b["entries"][0].update(id=7),
            "weight 0": lambda b: b["entries"][0].update(weight=0),
            "weight big": lambda b: b["entries"][0].update(weight=1000001),
            "weight negative": lambda b: b["entries"][0].update(weight=-1),
            "weight bool": lambda b: b["entries"][0].update(weight=True),
            "weight float": lambda b: b["entries"][0].update(weight=2.0),
            "weight string": lambda b: b["entries"][0].update(weight="2"),
            "slot id empty": lambda b: b["slots"][0].update(id=""),
            "slot id space": lambda b: b["slots"][0].update(id="A 1"),
            "slot id long": lambda b: b["slots"][0].update(id="A" * 65),
            "slot id accent": lambda b: b["slots"][0].update(id="\u00e9"),
            "starts_at no Z": lambda b: b["slots"][0].update(starts_at="2027-01-04T08:30:00"),
            "starts_at offset": lambda b: b["slots"][0].update(
                starts_at="2027-01-04T08:30:00+00:00"),
            "starts_at fraction": lambda b: b["slots"][0].update(
                starts_at="2027-01-04T08:30:00.0Z"),
            "starts_at date": lambda b: b["slots"][0].update(starts_at="2027-02-30T08:30:00Z"),
            "starts_at hour": lambda b: b["slots"][0].update(starts_at="2027-01-04T24:00:00Z"),
            "starts_at 1900-02-29": lambda b: b["slots"][0].update(
                starts_at="1900-02-29T08:30:00Z"),
            "starts_at second 61": lambda b: b["slots"][0].update(
                starts_at="2027-01-04T08:30:61Z"),
            "starts_at month 13": lambda b: b["slots"][0].update(
                starts_at="2027-13-04T08:30:00Z"),
            "starts_at digits": lambda b: b["slots"][0].update(
                starts_at="\u0662027-01-04T08:30:00Z"),
            "counter empty": lambda b: b["slots"][0].update(counter=""),
            "counter long": lambda b: b["slots"][0].update(counter="G" * 65),
            "counter tab": lambda b: b["slots"][0].update(counter="G\t1"),
            "counter newline": lambda b: b["slots"][0].update(counter="G\n1"),
            "counter control": lambda b: b["slots"][0].update(counter="G\x7f"),
            "counter type": lambda b: b["slots"][0].update(counter=1),
            "results type": lambda b: b.update(results=None),
            "result rank bool": lambda b: b["results"][0].update(rank=True),
            "result rank string": lambda b: b["results"][0].update(rank="1"),
            "result slot type": lambda b: b["results"][0].update(slot=3),
            "result id type": lambda b: b["results"][0].update(id=None),
            "result id upper": lambda b: b["results"][0].update(id=b["results"][0]["id"].upper()),
            "result rank negative": lambda b: b["results"][0].update(rank=-1),
            "result rank float": lambda b: b["results"][0].update(rank=1.0),
            "result missing slot": lambda b: b["results"][0].pop("slot"),
            "entries_root type": lambda b: b.update(entries_root=None),
            "results_hash type": lambda b: b.update(results_hash=[]),
        }
        for label, f in cases.items():
            self.assert_malformed(self.mutated(f), label=label)

    def test_accepted_edge_values(self):
        """Values at the edge of what the format allows are not malformed."""
        ok = {
            "counter 64 non-ASCII": lambda b: b["slots"][0].update(counter="\u00e9" * 64),
            "counter space": lambda b: b["slots"][0].update(counter="Guichet 1"),
            "slot id 64": lambda b: b["slots"][0].update(id="a" * 64),
            "weight max": lambda b: b["entries"][0].update(weight=1000000),
            "unknown field": lambda b: b.update(signature="xyz", statistics={"n": 20}),
            "leap second": lambda b: b["slots"][-1].update(starts_at="2027-01-05T08:30:60Z"),
            "year 0000": lambda b: b["slots"][-1].update(starts_at="0000-02-29T08:30:00Z"),
            "2000-02-29": lambda b: b["slots"][-1].update(starts_at="2000-02-29T08:30:00Z"),
            "result rank 0": lambda b: b["results"][0].update(rank=0),
            "result slot not a slot id": lambda b: b["results"][0].update(slot="a b"),
        }
        for label, f in ok.items():
            path = self.tmp.write(self.mutated(f))
            code, out, err = run_main([path])
            self.assertIn(code, (0, 1), "%s: %s %s" % (label, out, err))
        # unknown fields alone change nothing
        code, _, _ = run_main([self.tmp.write(self.mutated(ok["unknown field"]))])
        self.assertEqual(code, 0)

    def test_unreadable_file(self):
        code, out, err = run_cli([os.path.join(self.tmp.dir.name, "missing.json")])
        self.assertEqual(code, 2)
        self.assertIn("cannot read", err)
        self.assertNotIn("Traceback", err)

    def test_cli_process_never_shows_traceback(self):
        for raw in (b"{", b"null", json.dumps({"format": "tirage-draw-v1"}).encode()):
            path = self.tmp.write(None, raw=raw)
            code, out, err = run_cli([path])
            self.assertEqual(code, 2)
            self.assertNotIn("Traceback", err)
            self.assertTrue(err.strip())
        code, out, err = run_cli(["--json", self.tmp.write(None, raw=b"{")])
        self.assertEqual(code, 2)
        self.assertIs(json.loads(out)["ok"], False)

    def test_bad_command_line(self):
        code, _, err = run_cli([])
        self.assertEqual(code, 2)
        code, _, err = run_cli(["--no-such-option", "x"])
        self.assertEqual(code, 2)


class Proofs(unittest.TestCase):
    def setUp(self):
        self.tmp = TempFiles()

    def tearDown(self):
        self.tmp.cleanup()

    def proof_for(self, bundle, i):
        return make_vectors.proof_example(bundle, i)

    def test_every_entry_of_every_golden_vector(self):
        for name in GOLDEN:
            b = load(name)
            for i in range(len(b["entries"])):
                proof = self.proof_for(b, i)
                code, out, err = run_main(["--proof", self.tmp.write(proof, "p.json")])
                self.assertEqual(code, 0, "%s %d: %s %s" % (name, i, out, err))
                self.assertIn("OK    proof", out)
                # together with the bundle: also proves inclusion in that bundle
                code, out, err = run_main(["--proof", self.tmp.write(proof, "p.json"),
                                           os.path.join(VECTORS, name)])
                self.assertEqual(code, 0, "%s %d: %s %s" % (name, i, out, err))
                self.assertIn("OK    proof_root", out)

    def test_example_proof_file(self):
        code, out, err = run_cli(["--proof", os.path.join(VECTORS, "tiers-proof.json")])
        self.assertEqual(code, 0, out + err)
        p = load("tiers-proof.json")
        self.assertEqual(list(p), ["entry_id", "weight", "leaf_index", "tree_size",
                                   "audit_path", "entries_root"])
        self.assertEqual(p["entries_root"], load("tiers.json")["entries_root"])

    def test_bad_proofs_fail(self):
        b = load("tiers.json")
        good = self.proof_for(b, 6)
        bad = {
            "weight": dict(good, weight=good["weight"] + 1),
            "entry_id": dict(good, entry_id=b["entries"][7]["id"]),
            "leaf_index": dict(good, leaf_index=7),
            "tree_size small": dict(good, tree_size=6),
            "tree_size double": dict(good, tree_size=40),
            "path short": dict(good, audit_path=good["audit_path"][:-1]),
            "path long": dict(good, audit_path=good["audit_path"] + [good["entries_root"]]),
            "path bit": dict(good, audit_path=["%02x" % (int(good["audit_path"][0][:2], 16) ^ 8)
                                               + good["audit_path"][0][2:]]
                             + good["audit_path"][1:]),
            "root": dict(good, entries_root="00" * 32),
            "index beyond size": dict(good, leaf_index=20),
            "empty tree": dict(good, leaf_index=0, tree_size=0, audit_path=[]),
        }
        for label, proof in bad.items():
            code, out, err = run_main(["--proof", self.tmp.write(proof, "p.json")])
            self.assertEqual(code, 1, "%s: %s %s" % (label, out, err))
            self.assertIn("FAIL  proof", out, label)
        # A path alone does not pin the tree size down (leaf 6 of 20 and of 21
        # share it); checked against the bundle, the wrong size is caught.
        code, out, _ = run_main(["--proof", self.tmp.write(dict(good, tree_size=21), "p.json"),
                                 os.path.join(VECTORS, "tiers.json")])
        self.assertEqual(code, 1)
        self.assertIn("FAIL  proof_root", out)
        # a valid proof for another bundle's root: proof OK, proof_root FAIL
        other = self.proof_for(load("equal-weights.json"), 2)
        code, out, _ = run_main(["--proof", self.tmp.write(other, "p.json"),
                                 os.path.join(VECTORS, "tiers.json")])
        self.assertEqual(code, 1)
        self.assertIn("OK    proof\n", out)
        self.assertIn("FAIL  proof_root", out)

    def test_malformed_proofs(self):
        b = load("tiers.json")
        good = self.proof_for(b, 6)
        cases = {
            "missing": {k: v for k, v in good.items() if k != "audit_path"},
            "weight bool": dict(good, weight=True),
            "index negative": dict(good, leaf_index=-1),
            "index string": dict(good, leaf_index="6"),
            "path type": dict(good, audit_path="abc"),
            "path element": dict(good, audit_path=["00" * 31]),
            "root": dict(good, entries_root="xyz"),
            "id": dict(good, entry_id="nothex"),
        }
        for label, proof in cases.items():
            code, out, err = run_main(["--proof", self.tmp.write(proof, "p.json")])
            self.assertEqual(code, 2, "%s: %s %s" % (label, out, err))
            self.assertNotIn("Traceback", err)


class Performance(unittest.TestCase):
    def test_ten_thousand_entries(self):
        n = 10000
        entries = [{"id": make_vectors.fixed_id("perf", k), "weight": [1, 2, 4, 8][k % 4]}
                   for k in range(n)]
        slots = [make_vectors.slot("S%04d" % k, "2027-01-%02dT08:%02d:00Z" % (4 + k // 60,
                                                                               k % 60), "G1")
                 for k in range(1000)]
        b = make_vectors.make_bundle("perf", "none", b"", bytes(32), entries, slots, "perf")
        tmp = TempFiles()
        try:
            path = tmp.write(b)
            start = time.time()
            code, out, err = run_cli([path])
            elapsed = time.time() - start
        finally:
            tmp.cleanup()
        self.assertEqual(code, 0, out + err)
        self.assertLess(elapsed, 30.0)


TIRAGE_BIN = os.environ.get("TIRAGE_BIN")


@unittest.skipUnless(TIRAGE_BIN, "set TIRAGE_BIN to a built tirage binary to compare with it")
class CrossImplementation(unittest.TestCase):
    """Compare with the service's own implementation (the Rust `tirage`
    binary), when one is given: TIRAGE_BIN=target/release/tirage."""

    def test_rust_verifies_the_golden_vectors(self):
        for name in GOLDEN:
            p = subprocess.run([TIRAGE_BIN, "verify", os.path.join(VECTORS, name)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(p.returncode, 0, name + p.stdout.decode() + p.stderr.decode())
        p = subprocess.run([TIRAGE_BIN, "verify", "--proof",
                            os.path.join(VECTORS, "tiers-proof.json")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_random_draws_agree(self):
        rng = random.Random(20270104)
        counters = ["G1", "Guichet \u00e9", "a b", "\u00e9" * 64, "G\u00a0N"]
        for trial in range(40):
            n = rng.choice([0, 1, 2, 7, rng.randint(0, 200)])
            ids = set()
            while len(ids) < n:
                ids.add(bytes(rng.randrange(256) for _ in range(16)).hex())
            secret = bytes(rng.randrange(256) for _ in range(32))
            beacon = rng.choice(["none", "drand:quicknet:round=%d" % rng.randint(1, 10 ** 8)])
            inputs = {
                "window_id": rng.choice(["w", "34-renewal-2027-01-\u00e9", ""]),
                "beacon": beacon,
                "beacon_value": "" if beacon == "none" else bytes(
                    rng.randrange(256) for _ in range(32)).hex(),
                "seed_commitment": vd.sha256(secret).hex(),
                "secret": secret.hex(),
                "entries": [{"id": i, "weight": rng.choice([1, 2, 4, 8, 1000000,
                                                            rng.randint(1, 1000000)])}
                            for i in ids],
                "slots": [{"id": "S%d" % k,
                           "starts_at": "2027-%02d-%02dT%02d:%02d:00Z" % (
                               rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                               rng.choice([0, 30])),
                           "counter": rng.choice(counters)}
                          for k in range(rng.randint(0, n + 5))],
            }
            p = subprocess.run([TIRAGE_BIN, "draw", "--input", "-"],
                               input=json.dumps(inputs).encode("utf-8"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            theirs = json.loads(p.stdout.decode("utf-8"))
            mine = make_vectors.make_bundle(
                inputs["window_id"], inputs["beacon"], bytes.fromhex(inputs["beacon_value"]),
                secret, inputs["entries"], inputs["slots"], "")
            for key in ("entries_root", "slots_hash", "commitment", "seed", "results",
                        "results_hash"):
                self.assertEqual(theirs[key], mine[key], "trial %d: %s" % (trial, key))


if __name__ == "__main__":
    unittest.main()
