//! Known-answer tests: the draw core against values it did not compute itself.
//!
//! - `tests/vectors/rfc6962.json`: the RFC 6962 Merkle test data (transparency-dev).
//! - `tests/vectors/chacha20.json`: the two stream values of DRAW-SPEC section 6 and
//!   more values from the independent Python verifier.
//! - the golden bundles (`empty.json`, `one-entry.json`, ...): computed by the
//!   independent Python implementation in `verifiers/python`, written from the spec.
//!   Every hash in them is asserted here, and the smallest ones by hand as well.

use std::path::PathBuf;

use serde_json::Value;
use tirage::draw::merkle::{MerkleTree, data_leaf_hash, leaf_hash, root, verify_inclusion};
use tirage::draw::stream::Stream;
use tirage::draw::verify::check_bundle;
use tirage::draw::{Bundle, Digest, Entry, EntryId, run_draw, sha256};

const GOLDEN: [&str; 7] = [
    "empty",
    "one-entry",
    "more-slots-than-entries",
    "equal-weights",
    "one-heavy",
    "tiers",
    "no-slots",
];

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(vector_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn golden(name: &str) -> Bundle {
    let text = std::fs::read_to_string(vector_path(&format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn digest(v: &Value) -> Digest {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn rfc6962_roots_of_every_prefix() {
    let v = load("rfc6962.json");
    let leaves: Vec<Digest> = v["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| data_leaf_hash(&hex::decode(d.as_str().unwrap()).unwrap()))
        .collect();
    for (leaf, expected) in leaves.iter().zip(v["leaf_hashes"].as_array().unwrap()) {
        assert_eq!(leaf, &digest(expected));
    }
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 9);
    for r in roots {
        let size = r["tree_size"].as_u64().unwrap() as usize;
        assert_eq!(root(&leaves[..size]), digest(&r["root"]), "size {size}");
        assert_eq!(
            MerkleTree::new(leaves[..size].to_vec()).root(),
            digest(&r["root"])
        );
    }
    // the published root of all eight leaves, as quoted in the issue
    assert_eq!(
        hex::encode(root(&leaves)),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
}

#[test]
fn rfc6962_audit_paths_of_every_leaf() {
    let v = load("rfc6962.json");
    let leaves: Vec<Digest> = v["leaf_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(digest)
        .collect();
    let cases = v["inclusion"].as_array().unwrap();
    assert_eq!(cases.len(), 36, "every leaf of every size 1..8");
    for case in cases {
        let index = case["leaf_index"].as_u64().unwrap();
        let size = case["tree_size"].as_u64().unwrap();
        let expected: Vec<Digest> = case["audit_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(digest)
            .collect();
        let tree = MerkleTree::new(leaves[..size as usize].to_vec());
        assert_eq!(
            tree.audit_path(index as usize).unwrap(),
            expected,
            "leaf {index} of {size}"
        );
        assert!(verify_inclusion(
            &leaves[index as usize],
            index,
            size,
            &expected,
            &tree.root()
        ));
    }
}

#[test]
fn chacha20_stream_and_uniform() {
    let v = load("chacha20.json");
    let seed = digest(&v["seed"]);
    let mut stream = Stream::new(&seed);
    let first: Vec<String> = (0..8)
        .map(|_| format!("{:016x}", stream.next_u64()))
        .collect();
    let expected: Vec<&str> = v["first_u64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(first, expected);
    assert_eq!(&first[..2], ["6a19c5d97d2bfd39", "494adcb87703bd8d"]);

    let num = |x: &Value| x.as_str().unwrap().parse::<u64>().unwrap();
    for case in v["uniform_fresh_stream"].as_array().unwrap() {
        let mut stream = Stream::new(&seed);
        assert_eq!(
            stream.uniform(num(&case["m"])),
            num(&case["result"]),
            "{case}"
        );
    }
    for sequence in ["uniform_sequence_m_2_63_plus_1", "uniform_sequence_mixed"] {
        let mut stream = Stream::new(&seed);
        for case in v[sequence].as_array().unwrap() {
            assert_eq!(
                stream.uniform(num(&case["m"])),
                num(&case["result"]),
                "{sequence} {case}"
            );
        }
    }
}

/// Re-running each golden draw from its inputs gives every published value.
#[test]
fn golden_bundles_recompute_exactly() {
    for name in GOLDEN {
        let published = golden(name);
        let mut inputs = published.raw_inputs().decode().unwrap();
        inputs.entries.reverse(); // input order must not matter
        let ours = run_draw(inputs).unwrap();
        assert_eq!(
            ours.entries_root, published.entries_root,
            "{name}: entries_root"
        );
        assert_eq!(ours.slots_hash, published.slots_hash, "{name}: slots_hash");
        assert_eq!(ours.commitment, published.commitment, "{name}: commitment");
        assert_eq!(ours.seed, published.seed, "{name}: seed");
        assert_eq!(ours.results, published.results, "{name}: results");
        assert_eq!(
            ours.results_hash, published.results_hash,
            "{name}: results_hash"
        );
        assert_eq!(ours, published, "{name}: whole bundle");

        let report = check_bundle(published).unwrap();
        assert!(report.is_ok(), "{name}: {:?}", report.checks);
    }
}

/// The smallest vectors, checked from the definitions by hand.
#[test]
fn small_vectors_by_hand() {
    let empty = golden("empty");
    let h_empty = hex::encode(sha256(b""));
    assert_eq!(empty.entries_root, h_empty);
    assert_eq!(empty.results_hash, h_empty);
    assert!(empty.results.is_empty());

    let one = golden("one-entry");
    let entry = Entry {
        id: EntryId::parse_hex("0123456789abcdef0123456789abcdef").unwrap(),
        weight: 3,
    };
    assert_eq!(one.entries, [entry]);
    let mut leaf = vec![0u8];
    leaf.extend_from_slice(entry.id.as_bytes());
    leaf.extend_from_slice(&[0, 0, 0, 3]);
    assert_eq!(one.entries_root, hex::encode(sha256(&leaf)));
    assert_eq!(leaf_hash(&entry), sha256(&leaf));
    assert_eq!(
        one.slots_hash,
        hex::encode(sha256(b"S1\t2027-01-04T08:30:00Z\tG1\n"))
    );
    let secret: Vec<u8> = (0u8..32).collect();
    assert_eq!(one.secret, hex::encode(&secret));
    assert_eq!(one.seed_commitment, hex::encode(sha256(&secret)));
    let commitment_text = format!(
        "tirage-draw-v1\ntest-one-entry\n1\n{}\n1\n{}\n{}\nnone\n",
        one.entries_root, one.slots_hash, one.seed_commitment
    );
    assert_eq!(
        one.commitment,
        hex::encode(sha256(commitment_text.as_bytes()))
    );
    let seed_text = format!("tirage-seed-v1\n{}\n{}\n\n", one.commitment, one.secret);
    assert_eq!(one.seed, hex::encode(sha256(seed_text.as_bytes())));
    let results_text = "1\t0123456789abcdef0123456789abcdef\tS1\n";
    assert_eq!(
        one.results_hash,
        hex::encode(sha256(results_text.as_bytes()))
    );

    // leftover slots stay free; the heaviest selected take the first slots
    let more = golden("more-slots-than-entries");
    assert_eq!(more.slots.len(), 5);
    assert_eq!(more.results.iter().filter(|r| r.slot.is_some()).count(), 3);
    let no_slots = golden("no-slots");
    assert!(no_slots.results.iter().all(|r| r.slot.is_none()));
}

/// An applicant's proof from a receipt (made by the Python verifier) checks out.
#[test]
fn golden_inclusion_proof() {
    let v = load("tiers-proof.json");
    let entry = Entry {
        id: EntryId::parse_hex(v["entry_id"].as_str().unwrap()).unwrap(),
        weight: v["weight"].as_u64().unwrap() as u32,
    };
    let path: Vec<Digest> = v["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(digest)
        .collect();
    let index = v["leaf_index"].as_u64().unwrap();
    let size = v["tree_size"].as_u64().unwrap();
    let root = digest(&v["entries_root"]);
    assert!(verify_inclusion(
        &leaf_hash(&entry),
        index,
        size,
        &path,
        &root
    ));
    let heavier = Entry {
        weight: entry.weight + 1,
        ..entry
    };
    assert!(!verify_inclusion(
        &leaf_hash(&heavier),
        index,
        size,
        &path,
        &root
    ));

    let tiers = golden("tiers");
    assert_eq!(tiers.entries_root, v["entries_root"].as_str().unwrap());
    let tree = MerkleTree::new(tiers.entries.iter().map(leaf_hash).collect());
    assert_eq!(tree.audit_path(index as usize).unwrap(), path);
}
