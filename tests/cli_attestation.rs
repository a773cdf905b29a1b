//! `tirage verify-attestation` as an applicant's lawyer runs it: the real binary, its
//! output and its exit codes (0 authentic, 1 not authentic, 2 unreadable input).
//! The attestations are made with the library and the RFC 8032 test key.

use std::io::Write as _;
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tirage::attest::attestation::{Attestation, AttestedSlot, FORMAT, Holder, Outcome};
use tirage::attest::keys::{KeyList, PublishedKey, ServiceKey, parse_signing_key};

/// RFC 8032 section 7.1, TEST 1.
const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC_PUBLIC_BASE64: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().into()
}

fn rfc_key() -> ServiceKey {
    ServiceKey::new(parse_signing_key(RFC_SECRET).unwrap())
}

fn attestation() -> Attestation {
    Attestation {
        format: FORMAT.into(),
        window_id: "a1b2c3d4e5f60718".into(),
        site: "34".into(),
        procedure: "renewal".into(),
        entry_id: "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910".into(),
        registered_at: "2026-12-05".into(),
        holder: Holder {
            family_name: "El Amrani".into(),
            given_names: "Fatima Zahra".into(),
        },
        commitment: Some("ab".repeat(32)),
        outcome: Outcome {
            status: "waiting".into(),
            rank: Some(57),
            n_entries: Some(120),
            n_slots: Some(40),
            slot: None,
        },
        issued_at: "2026-12-20T09:15:00Z".into(),
        key_id: String::new(),
    }
}

fn signed(key: &ServiceKey) -> Value {
    serde_json::to_value(attestation().sign(key).unwrap()).unwrap()
}

/// The key list as `GET /api/v1/keys` gives it.
fn key_list(keys: &[(&ServiceKey, &str, Option<&str>)]) -> Value {
    let keys = keys
        .iter()
        .map(|(key, created, retired)| {
            PublishedKey::new(&key.public_key(), at(created), retired.map(at))
        })
        .collect();
    serde_json::to_value(KeyList { keys }).unwrap()
}

fn file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file
}

fn run(document: &str, args: &[&str]) -> (Option<i32>, String) {
    let document = file(document);
    let out: Output = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("verify-attestation")
        .arg(document.path())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_valid_attestation_verifies_with_the_key_in_hex_base64_or_a_key_list() {
    let document = signed(&rfc_key()).to_string();
    let keys = file(&key_list(&[(&rfc_key(), "2026-12-01T00:00:00Z", None)]).to_string());
    for args in [
        vec!["--key", RFC_PUBLIC],
        vec!["--key", RFC_PUBLIC_BASE64],
        vec!["--keys", keys.path().to_str().unwrap()],
    ] {
        let (code, text) = run(&document, &args);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        assert!(
            text.starts_with("OK    signature by key 21fe31dfa154a261"),
            "{text}"
        );
        assert!(
            text.contains("waiting: rank 57 of 120 entries for 40 slots"),
            "{text}"
        );
        assert!(text.contains("El Amrani, Fatima Zahra"), "{text}");
    }
}

#[test]
fn a_changed_field_fails_with_exit_1() {
    let document = signed(&rfc_key());
    for (path, value) in [
        ("/attestation/outcome/status", json!("selected")),
        ("/attestation/outcome/rank", json!(3)),
        ("/attestation/holder/given_names", json!("Fatima")),
        ("/attestation/commitment", Value::Null),
        (
            "/attestation/outcome/slot",
            serde_json::to_value(AttestedSlot {
                id: "S1".into(),
                starts_at: "2027-01-04T08:30:00Z".into(),
                counter: "G1".into(),
            })
            .unwrap(),
        ),
    ] {
        let mut forged = document.clone();
        *forged.pointer_mut(path).unwrap() = value;
        let (code, text) = run(&forged.to_string(), &["--key", RFC_PUBLIC]);
        assert_eq!(code, Some(1), "{path}: {text}");
        assert!(
            text.starts_with("FAIL  the signature does not match"),
            "{text}"
        );
        assert!(text.contains("NOT authentic"), "{text}");
    }
}

#[test]
fn a_signature_from_another_key_fails_with_exit_1() {
    let other = ServiceKey::new(parse_signing_key(&"07".repeat(32)).unwrap());
    let document = signed(&other);
    let (code, text) = run(&document.to_string(), &["--key", RFC_PUBLIC]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("not the given key 21fe31dfa154a261"),
        "{text}"
    );

    let keys = file(&key_list(&[(&rfc_key(), "2026-12-01T00:00:00Z", None)]).to_string());
    let keys = keys.path().to_str().unwrap();
    let (code, text) = run(&document.to_string(), &["--keys", keys]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("names key {}, which is not in", other.id())),
        "{text}"
    );

    // Claiming the listed key's id does not help.
    let mut claimed = document;
    claimed["attestation"]["key_id"] = json!("21fe31dfa154a261");
    let (code, text) = run(&claimed.to_string(), &["--keys", keys]);
    assert_eq!(code, Some(1), "{text}");
}

#[test]
fn the_key_must_have_been_in_use_when_the_attestation_was_issued() {
    let document = signed(&rfc_key()).to_string();
    for (created, retired, why) in [
        (
            "2026-12-21T00:00:00Z",
            None,
            "before key 21fe31dfa154a261 was created",
        ),
        (
            "2026-12-01T00:00:00Z",
            Some("2026-12-10T00:00:00Z"),
            "after key 21fe31dfa154a261 was retired",
        ),
    ] {
        let keys = file(&key_list(&[(&rfc_key(), created, retired)]).to_string());
        let (code, text) = run(&document, &["--keys", keys.path().to_str().unwrap()]);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn unreadable_input_exits_with_2_naming_the_problem() {
    let document = signed(&rfc_key());
    let mut extra = document.clone();
    extra["attestation"]["note"] = json!("selected elsewhere too");
    let mut bad_signature = document.clone();
    bad_signature["signature"] = json!("abcd");
    let mut newline = document.clone();
    newline["attestation"]["site"] = json!("34\nsite=75");
    let good_keys = key_list(&[(&rfc_key(), "2026-12-01T00:00:00Z", None)]);
    let mut wrong_id = good_keys.clone();
    let other = ServiceKey::new(parse_signing_key(&"07".repeat(32)).unwrap());
    wrong_id["keys"][0]["public_key_hex"] = json!(hex::encode(other.public_key()));
    wrong_id["keys"][0]["public_key_base64"] = json!("");
    let wrong_id = file(&wrong_id.to_string());
    for (doc, args, why) in [
        (
            "{".to_owned(),
            vec!["--key", RFC_PUBLIC],
            "is not a tirage attestation",
        ),
        (
            extra.to_string(),
            vec!["--key", RFC_PUBLIC],
            "unknown field `note`",
        ),
        (
            bad_signature.to_string(),
            vec!["--key", RFC_PUBLIC],
            "signature: must be 128 hex",
        ),
        (
            newline.to_string(),
            vec!["--key", RFC_PUBLIC],
            "attestation.site: holds a line feed",
        ),
        (
            document.to_string(),
            vec!["--key", "abc"],
            "--key: must be 32 bytes",
        ),
        (
            document.to_string(),
            vec!["--keys", "/nonexistent/keys.json"],
            "cannot read",
        ),
        (
            document.to_string(),
            vec!["--keys", wrong_id.path().to_str().unwrap()],
            "key_id: does not match the public key",
        ),
    ] {
        let (code, text) = run(&doc, &args);
        assert_eq!(code, Some(2), "{why}: {text}");
        assert!(text.contains(why), "{why}: {text}");
    }
    let (code, text) = run(&document.to_string(), &[]);
    assert_eq!(code, Some(2), "a key is required: {text}");
}

#[test]
fn a_json_report_for_scripts() {
    let document = signed(&rfc_key()).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .args(["verify-attestation", "-", "--key", RFC_PUBLIC, "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(document.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["checked_with"], "21fe31dfa154a261");
    assert_eq!(report["attestation"]["outcome"]["rank"], 57);
}
