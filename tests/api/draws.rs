//! Close -> commitment -> draw -> bundle, through the API, the scheduler and a restart.
//! Every bundle the service publishes is checked by the draw core's verifier and by the
//! independent Python verifier.

use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::draw::merkle::{leaf_hash, verify_inclusion};
use tirage::draw::verify::check_bundle;
use tirage::draw::{Bundle, Digest, Entry, EntryId};
use tirage::jobs::clock::ManualClock;
use tirage::jobs::scheduler;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, applicant, at, registered_and_verified, t0};

/// A window with three slots on two counters.
fn three_slot_window(beacon: &str) -> Value {
    json!({
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": "2026-12-01T08:00:00Z",
        "registration_closes_at": "2026-12-15T18:00:00Z",
        "draw_at": "2026-12-16T10:00:00Z",
        "beacon": beacon,
        "slots": [
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G2"},
            {"starts_at": "2027-01-05T09:00:00Z", "counter": "G1"}
        ]
    })
}

const AFTER_CLOSE: &str = "2026-12-15T18:00:00Z";
const AFTER_DRAW_TIME: &str = "2026-12-16T10:00:00Z";

async fn open(app: &TestApp, body: &Value) -> String {
    let id = app.create_window(body).await;
    app.post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    id
}

/// Registers `n` people at the counter (verified in person); returns (id, access code).
async fn counter_entries(
    app: &TestApp,
    window_id: &str,
    first: u32,
    n: u32,
) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for i in first..first + n {
        let mut body = applicant(i);
        // different urgency tiers: expiring soon, in two months, no permit
        body["permit_expires_on"] = match i % 3 {
            0 => json!("2027-01-10"),
            1 => json!("2027-02-25"),
            _ => Value::Null,
        };
        entries.push(app.counter_entry(window_id, &body).await);
    }
    entries
}

/// A window of [`three_slot_window`] with `n` entries from the counter, closed, at its
/// draw time.
async fn closed_window(app: &TestApp, n: u32) -> String {
    let window_id = open(app, &three_slot_window("none")).await;
    counter_entries(app, &window_id, 1, n).await;
    app.clock.set(at(AFTER_DRAW_TIME));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    window_id
}

fn digest(value: &Value) -> Digest {
    hex::decode(value.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// Runs the independent Python verifier on a bundle; returns its exit code and output.
fn python_verify(bundle: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, bundle).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/verifiers/python/verify_draw.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn a_window_is_closed_committed_drawn_and_verifiable() {
    let app = TestApp::spawn().await;
    let mut body = three_slot_window("none");
    body["location"] =
        json!("Préfecture de l'Hérault, 34 place des Martyrs de la Résistance, Montpellier");
    let window_id = open(&app, &body).await;
    let page = app.get(&format!("/windows/{window_id}"), None).await;
    assert!(page.text.contains("34 place des Martyrs de la Résistance"));
    let counter = counter_entries(&app, &window_id, 10, 6).await;
    let (online, online_access) = registered_and_verified(&app, &window_id, 1, 0).await;
    let unverified = app.register(&window_id, &applicant(2)).await;
    let unverified = unverified.assert_status(201).clone();
    let withdrawn = &counter[5];
    app.post_empty(
        &format!("/api/v1/entries/{}/withdraw", withdrawn.0),
        Some(&withdrawn.1),
    )
    .await
    .assert_status(200);

    // Not before the end of the registration period, and not by an auditor.
    let close_uri = format!("/api/v1/windows/{window_id}/close");
    let early = app.post_empty(&close_uri, Some(ADMIN_TOKEN)).await;
    assert_eq!(early.assert_problem(409, "wrong-state")["state"], "open");
    app.get(&format!("/api/v1/windows/{window_id}/commitment"), None)
        .await
        .assert_problem(409, "wrong-state");
    app.clock.set(at(AFTER_CLOSE));
    let auditor = app.token("auditor").await;
    app.post_empty(&close_uri, Some(&auditor))
        .await
        .assert_problem(403, "forbidden");

    let closed = app.post_empty(&close_uri, Some(ADMIN_TOKEN)).await;
    let commitment = closed.assert_status(200).clone();
    assert_eq!(
        commitment["n_entries"], 6,
        "5 at the counter + 1 verified online"
    );
    assert_eq!(commitment["n_slots"], 3);
    let published = app
        .get(&format!("/api/v1/windows/{window_id}/commitment"), None)
        .await;
    assert_eq!(published.assert_status(200), &commitment);
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(window.json["state"], "closed");
    assert_eq!(window.json["commitment"], commitment["commitment"]);
    app.post_empty(&close_uri, Some(ADMIN_TOKEN))
        .await
        .assert_problem(409, "wrong-state");

    // After close: the unverified entry is excluded, the others carry a proof.
    let unverified_uri = format!(
        "/api/v1/entries/{}",
        unverified["entry_id"].as_str().unwrap()
    );
    let view = app
        .get(&unverified_uri, unverified["access_code"].as_str())
        .await;
    assert_eq!(view.assert_status(200)["status"], "excluded");
    assert_eq!(view.json["proof"], Value::Null);
    let view = app
        .get(&format!("/api/v1/entries/{online}"), Some(&online_access))
        .await;
    let view = view.assert_status(200).clone();
    assert_eq!(view["status"], "eligible");
    let proof = &view["proof"];
    let entry = Entry {
        id: EntryId::parse_hex(&online).unwrap(),
        weight: proof["weight"].as_u64().unwrap() as u32,
    };
    let path: Vec<Digest> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(digest)
        .collect();
    assert_eq!(proof["entries_root"], commitment["entries_root"]);
    assert!(verify_inclusion(
        &leaf_hash(&entry),
        proof["leaf_index"].as_u64().unwrap(),
        proof["tree_size"].as_u64().unwrap(),
        &path,
        &digest(&proof["entries_root"]),
    ));

    // The draw: not before its time, no beacon value for beacon none.
    let draw_uri = format!("/api/v1/windows/{window_id}/draw");
    app.post_empty(&draw_uri, Some(ADMIN_TOKEN))
        .await
        .assert_problem(409, "wrong-state");
    app.clock.set(at(AFTER_DRAW_TIME));
    let refused = app
        .post(
            &draw_uri,
            Some(ADMIN_TOKEN),
            &json!({"beacon_value": "abcd"}),
        )
        .await;
    assert_eq!(
        refused.assert_problem(422, "validation")["errors"][0]["field"],
        "beacon_value"
    );
    assert_eq!(app.count("draws").await, 0);
    let drawn = app.post_empty(&draw_uri, Some(ADMIN_TOKEN)).await;
    let drawn = drawn.assert_status(200).clone();
    assert_eq!(drawn["n_selected"], 3);
    app.post_empty(&draw_uri, Some(ADMIN_TOKEN))
        .await
        .assert_problem(409, "wrong-state");

    // The bundle: exactly what the spec describes, verified by both verifiers.
    let bundle_uri = format!("/api/v1/windows/{window_id}/bundle");
    let answer = app.get(&bundle_uri, None).await;
    answer.assert_status(200);
    assert_eq!(answer.content_type(), "application/json");
    let bundle: Bundle = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(bundle.window_id, window_id);
    assert_eq!(
        bundle.commitment,
        commitment["commitment"].as_str().unwrap()
    );
    assert_eq!(
        bundle.entries_root,
        commitment["entries_root"].as_str().unwrap()
    );
    assert_eq!(bundle.seed, drawn["seed"].as_str().unwrap());
    assert_eq!(bundle.results_hash, drawn["results_hash"].as_str().unwrap());
    assert_eq!(bundle.entries.len(), 6);
    let report = check_bundle(bundle.clone()).unwrap();
    assert!(report.is_ok(), "{:?}", report.checks);
    let (code, output) = python_verify(answer.text.as_bytes());
    assert_eq!(code, 0, "{output}");
    // the secret is revealed now, and it is the committed one
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(window.json["seed_commitment"], bundle.seed_commitment);
    assert_eq!(answer.json["statistics"]["selected"], 3);

    // A strong ETag: an unchanged copy is not sent again.
    let etag = answer.headers["etag"].to_str().unwrap().to_owned();
    let request = axum::http::Request::builder()
        .uri(&bundle_uri)
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let again: Answer = app.send_request(request).await;
    assert_eq!(again.status.as_u16(), 304);

    // Results: public, in rank order, the selected ones with their slot.
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    let results = results.assert_status(200).clone();
    let lines = results["results"].as_array().unwrap();
    assert_eq!(lines.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["rank"], i + 1);
        assert_eq!(line["entry_id"], bundle.results[i].id.to_hex());
        assert_eq!(line["slot"].is_null(), i >= 3);
    }

    // Each applicant sees their own outcome, consistent with the bundle.
    for (entry_id, access) in counter
        .iter()
        .take(5)
        .chain([(online.clone(), online_access.clone())].iter())
    {
        let view = app
            .get(&format!("/api/v1/entries/{entry_id}"), Some(access))
            .await;
        let view = view.assert_status(200);
        let row = bundle
            .results
            .iter()
            .find(|r| r.id.to_hex() == *entry_id)
            .unwrap();
        assert_eq!(view["draw"]["rank"], row.rank);
        match &row.slot {
            Some(slot) => {
                assert_eq!(view["status"], "selected");
                assert_eq!(view["draw"]["slot"]["id"], slot.as_str());
                assert_eq!(view["window"]["location"], body["location"]);
                let convocation = app
                    .get(
                        &format!("/api/v1/entries/{entry_id}/convocation"),
                        Some(access),
                    )
                    .await;
                assert_eq!(convocation.assert_status(200)["location"], body["location"]);
            }
            None => {
                assert_eq!(view["status"], "waiting");
                assert_eq!(view["draw"]["waiting_position"], row.rank - 3);
            }
        }
    }
}

#[tokio::test]
async fn an_rfc3797_beacon_takes_the_published_numbers() {
    let app = TestApp::spawn().await;
    let window_id = open(
        &app,
        &three_slot_window("rfc3797:national lottery of 2026-12-16"),
    )
    .await;
    counter_entries(&app, &window_id, 1, 4).await;
    app.clock.set(at(AFTER_DRAW_TIME));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    let draw_uri = format!("/api/v1/windows/{window_id}/draw");
    for (body, field) in [
        (json!({}), "rfc3797_values"),
        (json!({"rfc3797_values": "1 2 / x"}), "rfc3797_values"),
        (json!({"rfc3797_values": "1 2 / / 3"}), "rfc3797_values"),
        (json!({"beacon_value": "abcd"}), "beacon_value"),
    ] {
        let refused = app.post(&draw_uri, Some(ADMIN_TOKEN), &body).await;
        assert_eq!(
            refused.assert_problem(422, "validation")["errors"][0]["field"],
            field,
            "{body}"
        );
    }
    assert_eq!(app.count("draws").await, 0);
    let body = json!({"rfc3797_values": "9319 / 2 5 12 8 10 / 9 18 26 34 41 45"});
    let drawn = app.post(&draw_uri, Some(ADMIN_TOKEN), &body).await;
    let key = "9319./2.5.8.10.12./9.18.26.34.41.45./";
    assert_eq!(drawn.assert_status(200)["beacon_value"], hex::encode(key));
    let answer = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    assert_eq!(answer.json["beacon_evidence"]["key_string"], key);
    let bundle: Bundle = serde_json::from_str(&answer.text).unwrap();
    let report = check_bundle(bundle).unwrap();
    assert!(report.is_ok(), "{:?}", report.checks);
    assert!(report.checks.iter().any(|c| c.name == "beacon" && c.ok));
    let (code, output) = python_verify(answer.text.as_bytes());
    assert_eq!(code, 0, "{output}");
}

/// Quicknet round 1000 (published 2023-08-23T15:59:24Z) and its signature.
const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

fn drand_window(round: u64) -> Value {
    json!({
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": "2023-08-01T08:00:00Z",
        "registration_closes_at": "2023-08-23T15:30:00Z",
        "draw_at": "2023-08-24T10:00:00Z",
        "beacon": format!("drand:quicknet:round={round}"),
        "slots": [
            {"starts_at": "2023-09-04T08:30:00Z", "counter": "G1"},
            {"starts_at": "2023-09-04T08:30:00Z", "counter": "G2"}
        ]
    })
}

#[tokio::test]
async fn a_drand_beacon_is_verified_before_it_is_used() {
    let app = TestApp::spawn().await;
    app.clock.set(at("2023-08-02T09:00:00Z"));
    // a round published before the close, or after the draw time, is refused at opening
    for round in [1, 40_000] {
        let id = app.create_window(&drand_window(round)).await;
        let refused = app
            .post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(
            refused.assert_problem(422, "validation")["errors"][0]["field"],
            "beacon",
            "{round}"
        );
    }
    let malformed = app
        .post("/api/v1/windows", Some(ADMIN_TOKEN), &drand_window(1000))
        .await;
    malformed.assert_status(201);
    let mut body = drand_window(1000);
    body["beacon"] = json!("drand:quicknet:round=soon");
    let refused = app.post("/api/v1/windows", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(
        refused.assert_problem(422, "validation")["errors"][0]["field"],
        "beacon"
    );

    let window_id = open(&app, &drand_window(1000)).await;
    let view = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    let details = &view.json["beacon_details"];
    assert_eq!(details["kind"], "drand");
    assert_eq!(details["round"], 1000);
    assert_eq!(details["published_at"], "2023-08-23T15:59:24Z");
    assert!(
        details["check_url"]
            .as_str()
            .unwrap()
            .ends_with("/public/1000")
    );
    // the public page says the same, in the page's language
    let page = app.get(&format!("/windows/{window_id}"), None).await;
    assert!(page.text.contains("id=\"beacon-check\""), "{}", page.text);
    assert!(page.text.contains("/public/1000</code>"));
    assert!(page.text.contains("quicknet"));
    counter_entries(&app, &window_id, 1, 5).await;
    app.clock.set(at("2023-08-24T10:00:00Z"));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    let draw_uri = format!("/api/v1/windows/{window_id}/draw");
    let mut tampered = ROUND_1000.to_owned();
    tampered.replace_range(20..22, "00");
    for (body, field) in [
        (json!({}), "drand"),
        (json!({"beacon_value": "fe29"}), "beacon_value"),
        (
            json!({"drand": {"round": 1001, "signature": ROUND_1000}}),
            "drand.round",
        ),
        (
            json!({"drand": {"round": 1000, "signature": tampered}}),
            "drand.signature",
        ),
        (
            json!({"drand": {"round": 1000, "signature": "not hex"}}),
            "drand.signature",
        ),
    ] {
        let refused = app.post(&draw_uri, Some(ADMIN_TOKEN), &body).await;
        assert_eq!(
            refused.assert_problem(422, "validation")["errors"][0]["field"],
            field,
            "{body}"
        );
    }
    assert_eq!(
        app.count("draws").await,
        0,
        "a refused beacon changes nothing"
    );

    // Staff may also paste the round's JSON as a drand relay serves it (the form on the
    // staff pages does that): a wrong paste is refused the same way.
    let pasted =
        format!("{{\"round\": 1000, \"randomness\": \"ignored\", \"signature\": \"{tampered}\"}}");
    let refused = tirage::lifecycle::run_draw(
        app.store(),
        &window_id,
        Some(&pasted),
        &tirage::store::Actor::System,
        at("2023-08-24T10:00:00Z"),
    )
    .await;
    assert!(
        matches!(refused, Err(tirage::lifecycle::DrawError::Invalid(_))),
        "{refused:?}"
    );
    let refused = tirage::lifecycle::run_draw(
        app.store(),
        &window_id,
        Some("not json"),
        &tirage::store::Actor::System,
        at("2023-08-24T10:00:00Z"),
    )
    .await;
    assert!(matches!(
        refused,
        Err(tirage::lifecycle::DrawError::Invalid(_))
    ));
    assert_eq!(app.count("draws").await, 0);

    let body = json!({"drand": {"round": 1000, "signature": ROUND_1000}});
    let drawn = app.post(&draw_uri, Some(ADMIN_TOKEN), &body).await;
    assert_eq!(
        drawn.assert_status(200)["beacon_value"],
        "fe290beca10872ef2fb164d2aa4442de4566183ec51c56ff3cd603d930e54fdd"
    );
    let answer = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    let evidence = &answer.json["beacon_evidence"];
    assert_eq!(evidence["kind"], "drand");
    assert_eq!(evidence["round"], 1000);
    assert_eq!(evidence["signature"], ROUND_1000);
    let bundle: Bundle = serde_json::from_str(&answer.text).unwrap();
    let report = check_bundle(bundle).unwrap();
    assert!(
        report.checks.iter().any(|c| c.name == "beacon" && c.ok),
        "{:?}",
        report.checks
    );
    assert!(report.is_ok());

    // `tirage verify` re-checks the signature: a bundle with another one fails, naming it.
    let dir = tempfile::tempdir().unwrap();
    let mut changed: Value = answer.json.clone();
    changed["beacon_evidence"]["signature"] = json!(tampered);
    for (name, doc, code) in [("good.json", &answer.json, 0), ("bad.json", &changed, 1)] {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{stdout}");
        let line = stdout.lines().find(|l| l.contains("beacon ")).unwrap();
        assert!(
            line.starts_with(if code == 0 { "OK" } else { "FAIL" }),
            "{line}"
        );
    }
}

#[tokio::test]
async fn two_concurrent_draws_make_one_draw() {
    let app = TestApp::spawn().await;
    let window_id = closed_window(&app, 5).await;
    let uri = format!("/api/v1/windows/{window_id}/draw");
    let (a, b) = tokio::join!(
        app.post_empty(&uri, Some(ADMIN_TOKEN)),
        app.post_empty(&uri, Some(ADMIN_TOKEN))
    );
    let mut codes = [a.status.as_u16(), b.status.as_u16()];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{} / {}", a.text, b.text);
    assert_eq!(app.count("draws").await, 1);
    // One packed ranking, both ways (rank -> leaf, leaf -> rank), one row of packed
    // slots and one cursor.
    assert_eq!(app.count("draw_rank_chunks").await, 2);
    assert_eq!(app.count("draw_slot_chunks").await, 1);
    assert_eq!(app.count("draw_results_fill").await, 1);
    // Its row per entry, once the follow-up is done, written once.
    app.finish_draw_followup(&window_id).await;
    assert_eq!(app.count("draw_results").await, 5);
}

#[tokio::test]
async fn a_failed_close_changes_nothing_and_closes_again_with_the_same_commitment() {
    let app = TestApp::spawn().await;
    let window_id = open(&app, &three_slot_window("none")).await;
    counter_entries(&app, &window_id, 1, 5).await;
    app.clock.set(at(AFTER_DRAW_TIME));

    // The packed entries are written before the commitment they point to (its key is
    // checked at commit); the commitment's insert fails, as a crash would stop it.
    app.fail_inserts("commitments", "true", "disk gone").await;
    let uri = format!("/api/v1/windows/{window_id}/close");
    app.post_empty(&uri, Some(ADMIN_TOKEN))
        .await
        .assert_problem(500, "internal");
    assert_eq!(app.count("commitments").await, 0);
    assert_eq!(app.count("draw_entry_chunks").await, 0);
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(window.json["state"], "open");

    app.heal_inserts("commitments").await;
    let closed = app.post_empty(&uri, Some(ADMIN_TOKEN)).await;
    let closed = closed.assert_status(200).clone();
    assert_eq!(app.count("draw_entry_chunks").await, 1);
    let frozen = app.store().frozen_entries(&window_id).await.unwrap();
    let leaves: Vec<Digest> = frozen.iter().map(leaf_hash).collect();
    assert_eq!(closed["n_entries"], 5);
    assert_eq!(
        closed["entries_root"],
        hex::encode(tirage::draw::merkle::root(&leaves))
    );

    // Outside a close, a packed row must point to a commitment at once.
    let orphan = app
        .execute(
            "insert into draw_entry_chunks (window_id, first_leaf, first_id, n, payload)
             select 'nowindow', 0, first_id, n, payload from draw_entry_chunks",
        )
        .await;
    assert!(orphan.is_err());
    assert_eq!(app.count("draw_entry_chunks").await, 1);
}

#[tokio::test]
async fn a_failed_draw_changes_nothing_and_runs_again_with_the_same_result() {
    let app = TestApp::spawn().await;
    let window_id = closed_window(&app, 7).await;

    // The last write of the draw fails, as a crash would interrupt it.
    app.fail_inserts("draw_results_fill", "true", "disk gone")
        .await;
    let uri = format!("/api/v1/windows/{window_id}/draw");
    app.post_empty(&uri, Some(ADMIN_TOKEN))
        .await
        .assert_problem(500, "internal");
    assert_eq!(app.count("draws").await, 0);
    assert_eq!(app.count("draw_results").await, 0);
    assert_eq!(app.count("draw_rank_chunks").await, 0);
    assert_eq!(app.count("draw_slot_chunks").await, 0);
    assert_eq!(app.count("draw_results_fill").await, 0);
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(window.json["state"], "closed");

    app.heal_inserts("draw_results_fill").await;
    let drawn = app.post_empty(&uri, Some(ADMIN_TOKEN)).await;
    let drawn = drawn.assert_status(200).clone();
    // The same committed inputs give the same draw, whoever re-computes it.
    let bundle = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    let bundle: Bundle = serde_json::from_str(&bundle.text).unwrap();
    let again = tirage::draw::run_draw(bundle.raw_inputs().decode().unwrap()).unwrap();
    assert_eq!(again.results_hash, drawn["results_hash"].as_str().unwrap());
}

#[tokio::test]
async fn the_scheduler_closes_and_draws_after_a_restart_exactly_once() {
    let app = TestApp::spawn().await;
    let window_id = open(&app, &three_slot_window("none")).await;
    counter_entries(&app, &window_id, 1, 4).await;
    // Nothing is due during registration.
    assert_eq!(
        scheduler::tick(app.store(), &ManualClock::new(t0())).await,
        0
    );

    // The service stops; it starts again after both the close and the draw time.
    let url = app.url.clone();
    app.app.state().store.close().await;
    let later = ManualClock::new(at("2026-12-20T00:00:00Z"));
    let restarted = Application::build_with_clock(
        ServeArgs::new(url, "127.0.0.1:0".parse().unwrap()),
        Arc::new(later.clone()),
    )
    .await
    .unwrap();
    let store = &restarted.state().store;
    assert_eq!(scheduler::tick(store, &later).await, 1, "the close");
    assert_eq!(
        store.window(&window_id).await.unwrap().state.as_str(),
        "closed"
    );
    assert_eq!(scheduler::tick(store, &later).await, 1, "the draw");
    assert_eq!(
        store.window(&window_id).await.unwrap().state.as_str(),
        "drawn"
    );
    assert_eq!(scheduler::tick(store, &later).await, 0, "nothing twice");
    let window = store.window(&window_id).await.unwrap();
    let (_, bundle) = tirage::lifecycle::published_bundle(store, &window)
        .await
        .unwrap();
    let bundle: Bundle = serde_json::from_slice(&bundle).unwrap();
    assert!(check_bundle(bundle).unwrap().is_ok());
    let events = store.window_events(&window_id).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "window.closed").count(), 1);
    assert_eq!(actions.iter().filter(|a| **a == "window.drawn").count(), 1);
    assert!(
        events
            .iter()
            .any(|e| e.action == "window.drawn" && e.actor == "system")
    );
}

#[tokio::test]
async fn a_restart_between_close_and_draw_changes_nothing() {
    let app = TestApp::spawn().await;
    let window_id = closed_window(&app, 6).await;
    let commitment = app
        .get(&format!("/api/v1/windows/{window_id}/commitment"), None)
        .await
        .assert_status(200)
        .clone();

    // The service stops after the close and starts again for the draw.
    let url = app.url.clone();
    app.app.state().store.close().await;
    let clock = ManualClock::new(at(AFTER_DRAW_TIME));
    let mut config = ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    let restarted = Application::build_with_clock(config, Arc::new(clock))
        .await
        .unwrap();
    let router = restarted.router();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/windows/{window_id}/draw"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let drawn = crate::helpers::call(router.clone(), request).await;
    drawn.assert_status(200);
    let request = axum::http::Request::builder()
        .uri(format!("/api/v1/windows/{window_id}/bundle"))
        .body(axum::body::Body::empty())
        .unwrap();
    let bundle = crate::helpers::call(router, request).await;
    let bundle: Bundle = serde_json::from_str(&bundle.text).unwrap();
    assert_eq!(
        bundle.commitment,
        commitment["commitment"].as_str().unwrap()
    );
    assert_eq!(bundle.entries.len(), 6);
    assert!(check_bundle(bundle).unwrap().is_ok());
}

#[tokio::test]
async fn a_bundle_holds_no_personal_data() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 4).await;
    let bundle = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    for n in 1..5 {
        let person = applicant(n);
        for value in [
            person["family_name"].as_str().unwrap(),
            person["email"].as_str().unwrap(),
            person["document"]["number"].as_str().unwrap(),
            person["phone"].as_str().unwrap(),
            "1991-03-14",
        ] {
            assert!(!bundle.text.contains(value), "{value} in the bundle");
            assert!(!results.text.contains(value), "{value} in the results");
        }
    }
}

/// Polls `work` once, as a request does before its timeout fires or its client hangs
/// up, and gives up on it.
async fn give_up<F: std::future::Future>(work: F) {
    let started = tokio::time::timeout(std::time::Duration::ZERO, work).await;
    assert!(
        started.is_err(),
        "the work was not expected to finish in one poll"
    );
}

#[tokio::test]
async fn a_close_and_a_draw_given_up_by_their_caller_still_complete() {
    use tirage::lifecycle;
    use tirage::store::Actor;

    let app = TestApp::spawn().await;
    let window_id = open(&app, &three_slot_window("none")).await;
    counter_entries(&app, &window_id, 1, 5).await;
    app.clock.set(at(AFTER_DRAW_TIME));
    let now = at(AFTER_DRAW_TIME);

    give_up(lifecycle::close(
        app.store(),
        &window_id,
        &Actor::System,
        now,
    ))
    .await;
    app.wait_for_rows("commitments", 1).await;
    give_up(lifecycle::run_draw(
        app.store(),
        &window_id,
        None,
        &Actor::System,
        now,
    ))
    .await;
    app.wait_for_rows("draws", 1).await;
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(window.json["state"], "drawn");
}

#[tokio::test]
async fn the_public_page_reads_the_first_results_and_the_entry_asked_for() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 7).await;
    let all = app.store().results(&window_id).await.unwrap();
    assert_eq!(all.len(), 7);

    // what the page reads instead of every line
    let first = app.store().first_results(&window_id, 2).await.unwrap();
    assert_eq!(first, all[..2].to_vec());
    let last = &all[6];
    let found = app.store().result_of(&window_id, &last.entry_id).await;
    assert_eq!(found.unwrap().as_ref(), Some(last));
    let other_window = app.store().result_of("0000000000000000", &last.entry_id);
    assert_eq!(other_window.await.unwrap(), None);

    let page = app
        .get(
            &format!(
                "/windows/{window_id}?entry={}",
                last.entry_id.to_uppercase()
            ),
            None,
        )
        .await;
    page.assert_status(200);
    let check = &page.text[page.text.find("id=\"check-result\"").unwrap()..];
    assert!(
        page.text
            .contains(r#"class="notice done" id="check-result""#)
    );
    // (pages are in French unless asked otherwise)
    assert!(check.contains("Rang 7"), "{check}");
    for line in &all {
        assert!(page.text.contains(&line.entry_id), "{}", line.entry_id);
    }
    // a selected entry's line names its slot: only the slots shown are read
    let first_line = &all[0];
    let slot_id = first_line.slot_id.as_deref().unwrap();
    let named = app
        .store()
        .slots_named(&window_id, &[slot_id, "no-such-slot"])
        .await
        .unwrap();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].id, slot_id);
    assert!(
        app.store()
            .slots_named(&window_id, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let page = app
        .get(
            &format!("/windows/{window_id}?entry={}", first_line.entry_id),
            None,
        )
        .await;
    let check = &page.text[page.text.find("id=\"check-result\"").unwrap()..];
    let check = &check[..check.find("</p>").unwrap()];
    assert!(
        check.contains("Rang 1") && check.contains("rendez-vous le"),
        "{check}"
    );
    assert!(check.contains(&named[0].counter), "{check}");
    let unknown = "ffffffffffffffffffffffffffffffff";
    let page = app
        .get(&format!("/windows/{window_id}?entry={unknown}"), None)
        .await;
    let check = &page.text[page.text.find("id=\"check-result\"").unwrap()..];
    assert!(
        page.text
            .contains(r#"class="notice problem" id="check-result""#)
            && check.contains(&format!("Le numéro {unknown}")),
        "{check}"
    );
}

/// A window of [`closed_window`], drawn.
async fn drawn_window(app: &TestApp, n: u32) -> String {
    let window_id = closed_window(app, n).await;
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/draw"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    window_id
}

/// The bundle's SHA-256 as the draw's audit event published it.
async fn drawn_event_sha256(app: &TestApp, window_id: &str) -> String {
    let events = app.store().window_events(window_id).await.unwrap();
    let drawn = events.iter().find(|e| e.action == "window.drawn").unwrap();
    drawn.detail["bundle_sha256"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_bundle_is_rebuilt_to_the_bytes_hashed_at_the_draw() {
    use tirage::lifecycle;
    use tirage::store::Actor;

    let app = TestApp::spawn().await;
    let window_id = closed_window(&app, 9).await;
    // An instant with nanoseconds, as a real clock gives (PostgreSQL keeps microseconds).
    let now = at(AFTER_DRAW_TIME) + chrono::Duration::nanoseconds(123_456_789);
    lifecycle::run_draw(app.store(), &window_id, None, &Actor::System, now)
        .await
        .unwrap();
    // No bytes are stored: the draw recorded their hash.
    assert_eq!(app.count("bundles").await, 0);
    let published = drawn_event_sha256(&app, &window_id).await;

    let uri = format!("/api/v1/windows/{window_id}/bundle");
    let first = app.get(&uri, None).await;
    first.assert_status(200);
    assert_eq!(
        hex::encode(tirage::draw::sha256(first.text.as_bytes())),
        published
    );
    assert_eq!(first.headers["etag"], format!("\"{published}\""));
    assert_eq!(
        first.json["window"]["drawn_at"],
        "2026-12-16T10:00:00.123456Z"
    );
    let bundle: Bundle = serde_json::from_str(&first.text).unwrap();
    assert!(check_bundle(bundle).unwrap().is_ok());

    // Rebuilt again from the database alone, without any copy held in memory.
    let window = app.store().window(&window_id).await.unwrap();
    let (sha256, bytes) = lifecycle::published_bundle(app.store(), &window)
        .await
        .unwrap();
    assert_eq!(sha256, published);
    assert_eq!(bytes, first.text.as_bytes());
}

#[tokio::test]
async fn a_rebuilt_bundle_that_differs_from_the_draw_is_not_served() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 5).await;
    // Someone with access to the database changes what the bundle is built from.
    app.execute(&format!(
        "update windows set site = 'elsewhere' where id = '{window_id}'"
    ))
    .await
    .unwrap();
    let answer = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    answer.assert_problem(500, "internal");
    assert!(!answer.text.contains("elsewhere"));
}

#[tokio::test]
async fn a_bundle_stored_by_an_earlier_version_is_served_as_stored() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 5).await;
    let uri = format!("/api/v1/windows/{window_id}/bundle");
    let rebuilt = app.get(&uri, None).await;
    rebuilt.assert_status(200);
    // Before bundles were rebuilt, the draw stored their bytes: those are served as
    // they are (a restart empties the in-memory copy).
    let stored = rebuilt.text.replacen('{', "{\"stored\":true,", 1);
    let sha256 = hex::encode(tirage::draw::sha256(stored.as_bytes()));
    let body = match app.store().db() {
        tirage::store::Db::Sqlite(_) => format!("x'{}'", hex::encode(&stored)),
        tirage::store::Db::Postgres(_) => format!("'\\x{}'::bytea", hex::encode(&stored)),
    };
    app.execute(&format!(
        "insert into bundles (window_id, sha256, body) values ('{window_id}', '{sha256}', {body})"
    ))
    .await
    .unwrap();
    let window = app.store().window(&window_id).await.unwrap();
    let (served_sha, served) = tirage::lifecycle::published_bundle(app.store(), &window)
        .await
        .unwrap();
    assert_eq!(served_sha, sha256);
    assert_eq!(served, stored.as_bytes());
}

/// Migration 0024 drops the foreign keys of `draw_results` (on SQLite by rebuilding the
/// table): applied to a database holding a drawn window's rows, it keeps every row,
/// the append-only triggers, and leaves no foreign key behind.
#[tokio::test]
async fn dropping_the_result_rows_foreign_keys_keeps_every_row() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 6).await;
    app.finish_draw_followup(&window_id).await;
    let read = || async {
        let rows: Vec<(String, i64, String, Option<String>)> =
            with_pool!(app, |pool| sqlx::query_as(
                "select window_id, rank, entry_id, slot_id from draw_results order by rank"
            )
            .fetch_all(pool)
            .await
            .unwrap());
        rows
    };
    let before = read().await;
    assert_eq!(before.len(), 6);

    // The database as it was before the migration: on PostgreSQL the two keys put
    // back; SQLite's table is rebuilt whatever it holds, so it runs again as it is.
    if let tirage::store::Db::Postgres(_) = app.store().db() {
        for statement in [
            "alter table draw_results add constraint draw_results_entry_id_fkey
                 foreign key (entry_id) references entries (id)",
            "alter table draw_results add constraint draw_results_window_id_fkey
                 foreign key (window_id) references draws (window_id)",
        ] {
            app.execute(statement).await.unwrap();
        }
    }
    let forgotten = app
        .execute("delete from _sqlx_migrations where description = 'draw results unchecked'")
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    let store = tirage::store::Store::connect(&app.url).await.unwrap();
    store.migrate().await.unwrap();

    assert_eq!(read().await, before);
    let count_foreign_keys = match app.store().db() {
        tirage::store::Db::Sqlite(_) => {
            "select count(*) from pragma_foreign_key_list('draw_results')"
        }
        tirage::store::Db::Postgres(_) => {
            "select count(*) from pg_constraint
             where conrelid = 'draw_results'::regclass and contype = 'f'"
        }
    };
    let foreign_keys: i64 = with_pool!(app, |pool| sqlx::query_scalar(count_foreign_keys)
        .fetch_one(pool)
        .await
        .unwrap());
    assert_eq!(foreign_keys, 0);
    // still append-only
    assert!(
        app.execute("update draw_results set slot_id = null")
            .await
            .is_err()
    );
    assert!(app.execute("delete from draw_results").await.is_err());
    assert_eq!(read().await, before);
}

/// On PostgreSQL, autovacuum comes back to `entries` after 1% of its rows changed
/// (migration 0028), so that a close's index-only read of a national window finds the
/// table marked all-visible instead of visiting it for up to a fifth of the entries.
/// SQLite has no such setting (its close reads the index alone).
#[tokio::test]
async fn entries_are_vacuumed_often_enough_for_the_close_on_postgres() {
    let app = TestApp::spawn().await;
    let tirage::store::Db::Postgres(pool) = app.store().db() else {
        return;
    };
    let options: Vec<String> = sqlx::query_scalar(
        "select unnest(reloptions) from pg_class where oid = 'entries'::regclass",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for option in [
        "autovacuum_vacuum_insert_scale_factor=0.01",
        "autovacuum_vacuum_scale_factor=0.01",
        "autovacuum_analyze_scale_factor=0.02",
    ] {
        assert!(
            options.iter().any(|o| o == option),
            "{option} in {options:?}"
        );
    }
}
