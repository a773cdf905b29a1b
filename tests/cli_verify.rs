//! The auditor's commands as an auditor runs them: the real binary, its output and its
//! exit codes (0 match, 1 mismatch, 2 malformed).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn tirage(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tampered(name: &str, change: impl FnOnce(&mut Value)) -> tempfile::NamedTempFile {
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(vector(name)).unwrap()).unwrap();
    change(&mut bundle);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&serde_json::to_vec(&bundle).unwrap())
        .unwrap();
    file
}

#[test]
fn every_golden_bundle_verifies() {
    for name in [
        "empty",
        "one-entry",
        "more-slots-than-entries",
        "equal-weights",
        "one-heavy",
        "tiers",
        "no-slots",
    ] {
        let path = vector(&format!("{name}.json"));
        let out = tirage(&["verify", path.to_str().unwrap()], None);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("all 9 published values match"), "{stdout}");
        assert_eq!(stdout.matches("\nOK ").count(), 9, "{stdout}");
    }
}

#[test]
fn a_bundle_is_read_from_standard_input() {
    let data = std::fs::read(vector("tiers.json")).unwrap();
    let out = tirage(&["verify", "-"], Some(&data));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_changed_value_is_named_with_expected_and_found() {
    let file = tampered("tiers.json", |b| b["entries_root"] = "00".repeat(32).into());
    let out = tirage(&["verify", file.path().to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(line.contains("entries_root"), "{line}");
    assert!(
        line.contains(&format!("found {}", "00".repeat(32))),
        "{line}"
    );
    assert_eq!(stdout.matches("FAIL").count(), 1, "{stdout}");
}

#[test]
fn a_changed_result_names_the_first_rank_that_differs() {
    let file = tampered("tiers.json", |b| {
        let results = b["results"].as_array_mut().unwrap();
        results.swap(3, 4);
        results[3]["rank"] = 4.into();
        results[4]["rank"] = 5.into();
    });
    let out = tirage(&["verify", "--json", file.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["name"], "results");
    assert_eq!(failed[0]["first_rank"], 4);
}

#[test]
fn the_json_report_lists_every_check() {
    let out = tirage(
        &[
            "verify",
            "--json",
            vector("one-entry.json").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["window_id"], "test-one-entry");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "seed_commitment",
            "entries",
            "slots",
            "entries_root",
            "slots_hash",
            "commitment",
            "seed",
            "results",
            "results_hash"
        ]
    );
}

#[test]
fn entry_shows_weight_rank_and_slot() {
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(vector("tiers.json")).unwrap()).unwrap();
    let first = &bundle["results"][0];
    let id = first["id"].as_str().unwrap();
    let out = tirage(
        &[
            "verify",
            "--entry",
            id,
            vector("tiers.json").to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("entry ")).unwrap();
    assert!(line.contains("rank 1,"), "{line}");
    assert!(
        line.contains(&format!("slot {}", first["slot"].as_str().unwrap())),
        "{line}"
    );

    let last = bundle["results"].as_array().unwrap().last().unwrap();
    let out = tirage(
        &[
            "verify",
            "--json",
            "--entry",
            last["id"].as_str().unwrap(),
            vector("tiers.json").to_str().unwrap(),
        ],
        None,
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["entry"]["rank"], 20);
    assert_eq!(
        report["entry"]["waiting_position"], 14,
        "20 entries, 6 slots"
    );

    let out = tirage(
        &[
            "verify",
            "--entry",
            &"ab".repeat(16),
            vector("tiers.json").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("is not in this draw"));

    let out = tirage(
        &[
            "verify",
            "--entry",
            "nothex",
            vector("tiers.json").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn malformed_input_exits_2_with_a_message_and_no_panic() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{not json".to_vec(), "not a valid"),
        ("empty", Vec::new(), "not a valid"),
        ("an array", b"[]".to_vec(), "not a valid"),
        (
            "missing secret",
            tampered_bytes(|b| {
                b.as_object_mut().unwrap().remove("secret");
            }),
            "secret",
        ),
        (
            "weight 0",
            tampered_bytes(|b| b["entries"][0]["weight"] = 0.into()),
            "entries[0].weight",
        ),
        (
            "weight too big",
            tampered_bytes(|b| b["entries"][0]["weight"] = 1_000_001.into()),
            "entries[0].weight",
        ),
        (
            "weight float",
            tampered_bytes(|b| b["entries"][0]["weight"] = 2.5.into()),
            "not a valid",
        ),
        (
            "uppercase id",
            tampered_bytes(|b| b["entries"][0]["id"] = "ABCDEF0123456789ABCDEF0123456789".into()),
            "not a valid",
        ),
        (
            "short secret",
            tampered_bytes(|b| b["secret"] = "00".into()),
            "secret",
        ),
        (
            "bad format",
            tampered_bytes(|b| b["format"] = "tirage-draw-v2".into()),
            "format",
        ),
        (
            "bad slot time",
            tampered_bytes(|b| b["slots"][0]["starts_at"] = "2027-01-04 08:30".into()),
            "slots[0].starts_at",
        ),
        (
            "bad slot id",
            tampered_bytes(|b| b["slots"][0]["id"] = "S 1".into()),
            "slots[0].id",
        ),
        (
            "tab in window id",
            tampered_bytes(|b| b["window_id"] = "a\tb".into()),
            "window_id",
        ),
        (
            "odd beacon value",
            tampered_bytes(|b| b["beacon_value"] = "abc".into()),
            "beacon_value",
        ),
    ];
    for (what, data, needle) in cases {
        let out = tirage(&["verify", "-"], Some(&data));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(needle), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    let out = tirage(&["verify", "/nonexistent/bundle.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read"));
}

fn tampered_bytes(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut bundle: Value =
        serde_json::from_slice(&std::fs::read(vector("tiers.json")).unwrap()).unwrap();
    change(&mut bundle);
    serde_json::to_vec(&bundle).unwrap()
}

#[test]
fn unsorted_entries_are_a_mismatch_named_entries() {
    let file = tampered("tiers.json", |b| {
        b["entries"].as_array_mut().unwrap().swap(0, 1)
    });
    let out = tirage(&["verify", file.path().to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("entries "), "{stdout}");
}

#[test]
fn inclusion_proofs_from_receipts() {
    let proof = vector("tiers-proof.json");
    let out = tirage(&["verify", "--proof", proof.to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("OK"));

    let mut value: Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    value["weight"] = (value["weight"].as_u64().unwrap() + 1).into();
    let out = tirage(
        &["verify", "--proof", "-"],
        Some(&serde_json::to_vec(&value).unwrap()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("FAIL"));

    // with the bundle, the proof's root and size must be the bundle's
    let tiers = vector("tiers.json");
    let out = tirage(
        &[
            "verify",
            "--proof",
            proof.to_str().unwrap(),
            tiers.to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("OK    proof_root"), "{stdout}");
    let other = vector("equal-weights.json");
    let out = tirage(
        &[
            "verify",
            "--proof",
            proof.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  proof_root"), "{stdout}");

    value["audit_path"][0] = "xyz".into();
    let out = tirage(
        &["verify", "--proof", "-"],
        Some(&serde_json::to_vec(&value).unwrap()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("audit_path[0]"));
}

#[test]
fn the_offline_draw_writes_a_bundle_equal_to_the_golden_one() {
    let golden: Value =
        serde_json::from_slice(&std::fs::read(vector("tiers.json")).unwrap()).unwrap();
    let mut inputs = serde_json::Map::new();
    for key in [
        "window_id",
        "beacon",
        "beacon_value",
        "seed_commitment",
        "secret",
        "entries",
        "slots",
    ] {
        inputs.insert(key.into(), golden[key].clone());
    }
    inputs["entries"].as_array_mut().unwrap().reverse();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("inputs.json");
    let output = dir.path().join("bundle.json");
    std::fs::write(&input, serde_json::to_vec(&inputs).unwrap()).unwrap();
    let out = tirage(
        &[
            "draw",
            "--input",
            input.to_str().unwrap(),
            "--out",
            output.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut ours: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    let mut expected = golden.clone();
    expected.as_object_mut().unwrap().remove("about");
    ours.as_object_mut().unwrap().remove("about");
    assert_eq!(ours, expected);

    inputs.insert("secret".into(), "11".repeat(32).into());
    let out = tirage(
        &["draw", "--input", "-"],
        Some(&serde_json::to_vec(&inputs).unwrap()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("seed_commitment"));
}
