//! Attestations and the signing keys: an attestation verifies with the key published at
//! `/api/v1/keys`, before and after the draw, as JSON and as a printed page; a changed
//! field or another key fails; keys survive restarts and rotate with a key file.

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use tirage::app::{Application, StartupError};
use tirage::attest::attestation::SignedAttestation;
use tirage::attest::keys::{KeyList, parse_public_key};
use tirage::config::ServeArgs;
use tirage::jobs::clock::{Clock as _, ManualClock};
use tirage::store::SigningKeyError;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at, registered_and_verified, t0};

/// RFC 8032 section 7.1, TEST 1: a key whose public half and id are known.
const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_KEY_ID: &str = "21fe31dfa154a261";

async fn attestation(app: &TestApp, entry: &str, access: &str) -> Value {
    app.get(
        &format!("/api/v1/entries/{entry}/attestation"),
        Some(access),
    )
    .await
    .assert_status(200)
    .clone()
}

async fn keys(app: &TestApp) -> KeyList {
    let answer = app.get("/api/v1/keys", None).await;
    serde_json::from_value(answer.assert_status(200).clone()).unwrap()
}

/// Checks with the service's published keys, as an outsider would.
async fn check(app: &TestApp, document: &Value) -> Result<(), String> {
    let signed: SignedAttestation =
        serde_json::from_value(document.clone()).map_err(|e| e.to_string())?;
    let list = keys(app).await;
    let key = list
        .find(&signed.attestation.key_id)
        .ok_or("key not published")?
        .verifying_key()
        .map_err(|e| e.to_string())?;
    signed.verify(&key).map_err(|e| e.to_string())
}

fn temp_json(value: &Value) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "{value}").unwrap();
    file
}

fn verify_attestation(document: &Value, keys: &Value) -> (Option<i32>, String) {
    let (document, keys) = (temp_json(document), temp_json(keys));
    let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("verify-attestation")
        .arg(document.path())
        .arg("--keys")
        .arg(keys.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn a_registered_entry_gets_an_attestation_that_verifies_with_the_published_key() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    app.clock.set(at("2026-12-06T08:00:00Z"));

    let document = attestation(&app, &entry, &access).await;
    let a = &document["attestation"];
    assert_eq!(a["format"], "tirage-attestation-v1");
    assert_eq!(a["window_id"], window_id.as_str());
    assert_eq!(
        (a["site"].as_str(), a["procedure"].as_str()),
        (Some("34"), Some("renewal"))
    );
    assert_eq!(a["entry_id"], entry.as_str());
    assert_eq!(a["registered_at"], t0().format("%Y-%m-%d").to_string());
    assert_eq!(a["holder"]["family_name"], applicant(1)["family_name"]);
    assert_eq!(a["holder"]["given_names"], "Aminata");
    assert!(a["commitment"].is_null());
    assert_eq!(
        a["outcome"],
        json!({"status": "eligible", "rank": null, "n_entries": null, "n_slots": null, "slot": null})
    );
    assert_eq!(a["issued_at"], "2026-12-06T08:00:00Z");
    assert_eq!(document["signature"].as_str().unwrap().len(), 128);

    let list = keys(&app).await;
    assert_eq!(list.keys.len(), 1);
    assert!(list.keys[0].current);
    assert_eq!(a["key_id"], list.keys[0].key_id.as_str());
    check(&app, &document).await.unwrap();

    let published = app.get("/api/v1/keys", None).await.json;
    let (code, text) = verify_attestation(&document, &published);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the attestation is authentic"), "{text}");
}

#[tokio::test]
async fn after_the_draw_the_outcome_is_attested() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    // An entry left unverified is not in the draw.
    let pending = app.register(&window_id, &applicant(2)).await;
    let pending = pending.assert_status(201).clone();
    app.clock.set(at("2026-12-16T10:00:00Z"));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);

    let closed = attestation(&app, &entry, &access).await;
    let window = app
        .get(&format!("/api/v1/windows/{window_id}"), None)
        .await
        .json;
    assert_eq!(closed["attestation"]["commitment"], window["commitment"]);
    assert_eq!(closed["attestation"]["outcome"]["status"], "eligible");
    assert_eq!(closed["attestation"]["outcome"]["n_entries"], 1);
    assert_eq!(closed["attestation"]["outcome"]["n_slots"], 1);
    check(&app, &closed).await.unwrap();

    app.post_empty(
        &format!("/api/v1/windows/{window_id}/draw"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    let drawn = attestation(&app, &entry, &access).await;
    let outcome = &drawn["attestation"]["outcome"];
    assert_eq!(outcome["status"], "selected");
    assert_eq!(outcome["rank"], 1);
    assert_eq!(outcome["slot"]["starts_at"], "2027-01-04T08:30:00Z");
    assert_eq!(outcome["slot"]["counter"], "G1");
    check(&app, &drawn).await.unwrap();

    // Giving the slot back is attested too: the slot is no longer theirs.
    app.post_empty(&format!("/api/v1/entries/{entry}/cancel"), Some(&access))
        .await
        .assert_status(200);
    let cancelled = attestation(&app, &entry, &access).await;
    let outcome = &cancelled["attestation"]["outcome"];
    assert_eq!(outcome["status"], "cancelled");
    assert_eq!(outcome["rank"], 1);
    assert!(outcome["slot"].is_null());
    check(&app, &cancelled).await.unwrap();

    let excluded = attestation(
        &app,
        pending["entry_id"].as_str().unwrap(),
        pending["access_code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(excluded["attestation"]["outcome"]["status"], "excluded");
    assert!(excluded["attestation"]["outcome"]["rank"].is_null());
    assert_eq!(excluded["attestation"]["commitment"], window["commitment"]);
    check(&app, &excluded).await.unwrap();
}

#[tokio::test]
async fn a_changed_field_or_another_key_fails() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    let document = attestation(&app, &entry, &access).await;
    let published = app.get("/api/v1/keys", None).await.json;

    for (path, value) in [
        ("/attestation/holder/family_name", json!("Someone Else")),
        ("/attestation/outcome/status", json!("selected")),
        ("/attestation/registered_at", json!("2026-11-01")),
        ("/attestation/outcome/rank", json!(1)),
    ] {
        let mut forged = document.clone();
        *forged.pointer_mut(path).unwrap() = value;
        assert!(check(&app, &forged).await.is_err(), "{path}");
        let (code, text) = verify_attestation(&forged, &published);
        assert_eq!(code, Some(1), "{path}: {text}");
        assert!(text.contains("NOT authentic"), "{text}");
    }

    // Another service's attestation, checked against this service's keys.
    let other = TestApp::spawn().await;
    let other_window = other.open_window().await;
    let (other_entry, other_access) = registered_and_verified(&other, &other_window, 1, 0).await;
    let foreign = attestation(&other, &other_entry, &other_access).await;
    assert_ne!(
        foreign["attestation"]["key_id"],
        document["attestation"]["key_id"]
    );
    let (code, text) = verify_attestation(&foreign, &published);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not in"), "{text}");
    // ... even when it claims this service's key id.
    let mut claimed = foreign.clone();
    claimed["attestation"]["key_id"] = document["attestation"]["key_id"].clone();
    let (code, text) = verify_attestation(&claimed, &published);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("signature does not match"), "{text}");
}

#[tokio::test]
async fn only_the_access_code_opens_an_attestation() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    let (other, _) = registered_and_verified(&app, &window_id, 2, 1).await;
    for suffix in ["attestation", "attestation.html"] {
        let uri = format!("/api/v1/entries/{entry}/{suffix}");
        app.get(&uri, None)
            .await
            .assert_problem(401, "unauthorized");
        app.get(&uri, Some("WRONG-CODE"))
            .await
            .assert_problem(404, "not-found");
        app.get(&uri, Some(ADMIN_TOKEN))
            .await
            .assert_problem(404, "not-found");
        let theirs = format!("/api/v1/entries/{other}/{suffix}");
        app.get(&theirs, Some(&access))
            .await
            .assert_problem(404, "not-found");
        let unknown = format!("/api/v1/entries/not-an-id/{suffix}");
        app.get(&unknown, Some(&access))
            .await
            .assert_problem(404, "not-found");
        let answer = app.get(&uri, Some(&access)).await;
        answer.assert_status(200);
        assert_eq!(answer.headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn the_printable_attestation_holds_the_signed_fields_in_french_and_english() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut person = applicant(1);
    person["family_name"] = json!("O'Neil-Diallo");
    let receipt = app
        .post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(ADMIN_TOKEN),
            &person,
        )
        .await;
    let receipt = receipt.assert_status(201);
    let (entry, access) = (
        receipt["entry_id"].as_str().unwrap(),
        receipt["access_code"].as_str().unwrap(),
    );
    let page = app
        .get(
            &format!("/api/v1/entries/{entry}/attestation.html"),
            Some(access),
        )
        .await;
    page.assert_status(200);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = &page.text;
    for text in [
        "Attestation de participation au tirage au sort",
        "Certificate of participation in the appointment lottery",
        "O&#39;Neil-Diallo",
        "Aminata",
        entry,
        window_id.as_str(),
        "Inscription valide : participe au tirage",
        "Valid registration: takes part in the draw",
        "tirage verify-attestation",
        "holder.family_name=O&#39;Neil-Diallo",
    ] {
        assert!(html.contains(text), "{text} missing from\n{html}");
    }
    assert!(!html.contains("O'Neil"), "unescaped name");
    // The page shows the signature of the same signed text as the JSON form.
    let document = attestation(&app, entry, access).await;
    let signature = document["signature"].as_str().unwrap();
    assert!(
        html.contains(signature),
        "the page is signed like the JSON form"
    );
}

#[tokio::test]
async fn the_published_keys_hold_no_secret() {
    let app = TestApp::spawn().await;
    let answer = app.get("/api/v1/keys", None).await;
    let key = &answer.assert_status(200)["keys"][0];
    let public = parse_public_key(key["public_key_hex"].as_str().unwrap()).unwrap();
    assert_eq!(
        parse_public_key(key["public_key_base64"].as_str().unwrap()).unwrap(),
        public
    );
    assert_eq!(key["algorithm"], "ed25519");
    assert_eq!(key["current"], true);
    assert!(key["retired_at"].is_null());
    let fields: Vec<&String> = key.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "algorithm",
            "created_at",
            "current",
            "key_id",
            "public_key_base64",
            "public_key_hex",
            "retired_at"
        ]
    );
}

/// The settings of `app`'s database, with `key_file` as signing key file.
fn same_database(app: &TestApp, key_file: Option<&std::path::Path>) -> ServeArgs {
    let url = app.url.clone();
    let mut config = ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.signing_key_file = key_file.map(Into::into);
    config
}

async fn restart(
    app: &TestApp,
    key_file: Option<&std::path::Path>,
) -> Result<Application, StartupError> {
    let clock = ManualClock::new(app.clock.now());
    Application::build_with_clock(same_database(app, key_file), Arc::new(clock)).await
}

#[tokio::test]
async fn the_generated_key_survives_a_restart() {
    let app = TestApp::spawn().await;
    let before = keys(&app).await;
    let again = restart(&app, None).await.unwrap();
    let after = again.state().store.signing_keys().await.unwrap();
    assert_eq!(after, before.keys);
}

#[tokio::test]
async fn a_key_file_rotates_the_key_and_old_attestations_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let rfc_file = dir.path().join("rfc.key");
    std::fs::write(&rfc_file, format!("{RFC_SECRET}\n")).unwrap();
    let new_file = dir.path().join("new.key");
    std::fs::write(&new_file, "42".repeat(32)).unwrap();

    let app = TestApp::spawn_with(|config| config.signing_key_file = Some(rfc_file.clone())).await;
    let window_id = app.open_window().await;
    let (entry, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    let old = attestation(&app, &entry, &access).await;
    assert_eq!(old["attestation"]["key_id"], RFC_KEY_ID);
    let list = keys(&app).await;
    assert_eq!(list.keys.len(), 1, "the file key is the only key");

    // Without the key file, the service refuses to start rather than sign with
    // another key.
    let error = restart(&app, None).await.err().unwrap();
    assert!(
        matches!(
            error,
            StartupError::SigningKey(SigningKeyError::FileKeyMissing { .. })
        ),
        "{error}"
    );

    app.clock.set(at("2026-12-07T09:00:00Z"));
    let rotated = restart(&app, Some(&new_file)).await.unwrap();
    let list = rotated.state().store.signing_keys().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0].current && list[0].key_id != RFC_KEY_ID);
    assert_eq!(list[1].key_id, RFC_KEY_ID);
    assert_eq!(list[1].retired_at, Some(at("2026-12-07T09:00:00Z")));
    let published = serde_json::to_value(KeyList { keys: list }).unwrap();
    let (code, text) = verify_attestation(&old, &published);
    assert_eq!(
        code,
        Some(0),
        "an attestation from before the rotation: {text}"
    );

    // An attestation dated after its key was retired is refused.
    let mut late = old.clone();
    late["attestation"]["issued_at"] = json!("2026-12-08T00:00:00Z");
    let (code, text) = verify_attestation(&late, &published);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("after key 21fe31dfa154a261 was retired"),
        "{text}"
    );

    // A retired key is not taken back.
    let error = restart(&app, Some(&rfc_file)).await.err().unwrap();
    assert!(
        matches!(
            error,
            StartupError::SigningKey(SigningKeyError::Retired { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_key_file_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.key");
    std::fs::write(&file, "not a key").unwrap();
    let app = TestApp::spawn().await;
    let error = restart(&app, Some(&file)).await.err().unwrap();
    let message = error.to_string();
    assert!(
        message.contains("signing key file") && message.contains("64 hex"),
        "{message}"
    );
    let missing = dir.path().join("missing.key");
    let error = restart(&app, Some(&missing)).await.err().unwrap();
    assert!(error.to_string().contains("missing.key"), "{error}");
}
