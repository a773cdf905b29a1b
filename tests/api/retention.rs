//! Retention: the personal data of a window's entries is erased a configured time after
//! its last slot, once, and the published bundle still verifies.

use std::sync::Arc;

use chrono::Duration;
use serde_json::json;
use sqlx::Row;
use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::draw::Bundle;
use tirage::draw::verify::check_bundle;
use tirage::jobs::retention;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at, registered_and_verified};

/// The last (and only) slot of the standard window.
const LAST_SLOT: &str = "2027-01-04T08:30:00Z";

/// The personal columns of an entry, straight from the database: names, birth date,
/// nationality, document number, e-mail, phone, and the four identity keys. An erased
/// value reads as `None` (SQLite keeps an empty text where a column may not be null).
async fn stored_identity(app: &TestApp, entry_id: &str) -> Vec<Option<String>> {
    let sql = "select family_name, given_names, cast(birth_date as text), nationality,
                      document_number, email, phone, document_key, person_key, email_key,
                      phone_key
               from entries where id = $1";
    let row: Vec<Option<String>> = with_pool!(app, |pool| {
        let row = sqlx::query(sql)
            .bind(entry_id)
            .fetch_one(pool)
            .await
            .unwrap();
        (0..row.len()).map(|i| row.get(i)).collect()
    });
    row.into_iter()
        .map(|value| value.filter(|text| !text.is_empty()))
        .collect()
}

/// A drawn window with one online entry (verified), two at the counter, and a staff
/// correction of a name; returns (window id, [(entry id, access code)]).
async fn drawn_window(app: &TestApp) -> (String, Vec<(String, String)>) {
    let window_id = app.open_window().await;
    let mut entries = vec![registered_and_verified(app, &window_id, 1, 0).await];
    for n in 2..=3 {
        entries.push(app.counter_entry(&window_id, &applicant(n)).await);
    }
    let staff = app.token("staff").await;
    app.post(
        &format!("/api/v1/entries/{}/corrections", entries[1].0),
        Some(&staff),
        &json!({"family_name": "Correctedname", "reason": "as on the residence permit of Mr Correctedname"}),
    )
    .await
    .assert_status(201);
    app.clock.set(at("2026-12-16T10:00:00Z"));
    app.close_and_draw(&window_id).await;
    (window_id, entries)
}

#[tokio::test]
async fn personal_data_is_erased_once_after_the_retention_period_and_the_bundle_still_verifies() {
    let app = TestApp::spawn().await;
    let (window_id, entries) = drawn_window(&app).await;
    let bundle_uri = format!("/api/v1/windows/{window_id}/bundle");
    let bundle_before = app.get(&bundle_uri, None).await;
    bundle_before.assert_status(200);
    let results_before = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await
        .text;
    let retention_period = Duration::days(90);

    // One minute before the end of the retention period: nothing happens.
    let end = at(LAST_SLOT) + retention_period;
    let early = end - Duration::minutes(1);
    assert_eq!(
        retention::tick(app.store(), early, retention_period).await,
        0
    );
    let (entry_id, access) = &entries[0];
    let entry_uri = format!("/api/v1/entries/{entry_id}");
    let view = app.get(&entry_uri, Some(access)).await;
    assert_eq!(
        view.assert_status(200)["family_name"],
        applicant(1)["family_name"]
    );
    assert!(
        app.store()
            .personal_data_erased_at(&window_id)
            .await
            .unwrap()
            .is_none()
    );

    // At the end of the period, the window's personal data goes.
    app.clock.set(end);
    assert_eq!(retention::tick(app.store(), end, retention_period).await, 1);
    assert_eq!(
        app.store()
            .personal_data_erased_at(&window_id)
            .await
            .unwrap(),
        Some(end)
    );
    for (entry_id, _) in &entries {
        let identity = stored_identity(&app, entry_id).await;
        let erased_key = Some(format!("erased:{entry_id}"));
        assert_eq!(
            identity,
            vec![
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                erased_key.clone(),
                erased_key,
                None,
                None,
            ]
        );
    }
    let corrections: Vec<(String, String, String, String, String)> = with_pool!(app, |pool| {
        sqlx::query_as(
            "select reason, old_family_name, old_given_names, new_family_name, new_given_names
             from entry_corrections",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert_eq!(corrections.len(), 1, "the correction row stays");
    assert_eq!(corrections[0], Default::default());
    assert_eq!(app.count("entries where code_hash is not null").await, 0);

    // The applicant's own view says why it is gone.
    let gone = app.get(&entry_uri, Some(access)).await;
    let problem = gone.assert_problem(404, "not-found");
    assert!(problem["detail"].as_str().unwrap().contains("erased"));

    for document in ["/convocation", "/attestation"] {
        app.get(&format!("{entry_uri}{document}"), Some(access))
            .await
            .assert_problem(404, "not-found");
    }
    // Staff views of the window still work, without the names.
    for uri in [
        format!("/api/v1/windows/{window_id}/slots"),
        format!("/api/v1/windows/{window_id}/events"),
        format!("/api/v1/windows/{window_id}"),
    ] {
        let view = app.get(&uri, Some(ADMIN_TOKEN)).await;
        view.assert_status(200);
        for n in 1..=3 {
            let name = applicant(n)["family_name"].as_str().unwrap().to_owned();
            assert!(!view.text.contains(&name), "{uri} shows {name}");
        }
        assert!(!view.text.contains("Correctedname"), "{uri}");
    }

    // What verification needs is untouched: the same bundle, the same results, and
    // the bundle verifies.
    let bundle_after = app.get(&bundle_uri, None).await;
    assert_eq!(bundle_after.text, bundle_before.text);
    let bundle: Bundle = serde_json::from_str(&bundle_after.text).unwrap();
    assert_eq!(bundle.entries.len(), 3);
    assert!(check_bundle(bundle).unwrap().is_ok());
    let results_after = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await
        .text;
    assert_eq!(results_after, results_before);

    // Once only: again now, and again after a restart.
    assert_eq!(retention::tick(app.store(), end, retention_period).await, 0);
    let url = app.url.clone();
    app.app.state().store.close().await;
    let later = end + Duration::days(1);
    let restarted = Application::build_with_clock(
        ServeArgs::new(url, "127.0.0.1:0".parse().unwrap()),
        Arc::new(tirage::jobs::clock::ManualClock::new(later)),
    )
    .await
    .unwrap();
    let store = &restarted.state().store;
    assert_eq!(retention::tick(store, later, retention_period).await, 0);
    let events = store.window_events(&window_id).await.unwrap();
    let erasures: Vec<_> = events
        .iter()
        .filter(|e| e.action == "window.personal_data_erased")
        .collect();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].actor, "system");
    assert_eq!(erasures[0].detail, json!({"entries": 3, "corrections": 1}));
    // The audit log, which now records the erasure, still checks.
    let check = store.verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{check:?}");
    assert_eq!(check.computed_head, check.stored_head);
}

#[tokio::test]
async fn the_retention_period_is_counted_from_the_last_slot_and_only_after_registration() {
    let app = TestApp::spawn().await;
    let mut body = crate::helpers::window_body();
    body["slots"] = json!([
        {"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
        {"starts_at": "2027-03-01T08:30:00Z", "counter": "G1"}
    ]);
    let window_id = app.create_window(&body).await;
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/open"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    let (entry_id, _) = registered_and_verified(&app, &window_id, 4, 0).await;
    let period = Duration::days(30);
    // The first slot is long past, the last one is not: nothing is erased.
    let between = at("2027-03-15T00:00:00Z");
    assert_eq!(retention::tick(app.store(), between, period).await, 0);
    // Registration is still open (nobody closed it): a window is never erased while
    // it takes registrations, even long after its slots.
    let long_after = at("2027-06-01T00:00:00Z");
    assert_eq!(retention::tick(app.store(), long_after, period).await, 0);
    assert_eq!(
        stored_identity(&app, &entry_id).await[0].as_deref(),
        applicant(4)["family_name"].as_str()
    );
    app.clock.set(long_after);
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    assert_eq!(retention::tick(app.store(), long_after, period).await, 1);
    assert_eq!(stored_identity(&app, &entry_id).await[0], None);
}

#[tokio::test]
async fn corrections_stay_append_only_apart_from_the_erasure() {
    let app = TestApp::spawn().await;
    let (_, entries) = drawn_window(&app).await;
    for change in [
        "update entry_corrections set reason = 'rewritten'",
        "update entry_corrections set new_family_name = 'Other'",
        "update entry_corrections set reason = '', old_family_name = '', old_given_names = '',
             new_family_name = '', new_given_names = '', corrected_by = 'someone else'",
        "delete from entry_corrections",
    ] {
        let error = app.execute(change).await.expect_err(change).to_string();
        assert!(error.contains("append-only"), "{change}: {error}");
    }
    let kept: String = with_pool!(app, |pool| {
        sqlx::query_scalar("select new_family_name from entry_corrections where entry_id = $1")
            .bind(&entries[1].0)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(kept, "Correctedname");
}
