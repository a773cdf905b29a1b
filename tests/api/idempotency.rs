//! Retrying a registration with an Idempotency-Key returns the original receipt.

use axum::http::Method;
use serde_json::json;

use crate::helpers::{TestApp, applicant};

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_gets_the_first_receipt() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let key = [("idempotency-key", "retry-7f3a")];

    let first = app
        .send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await;
    first.assert_status(201);
    assert!(!first.headers.contains_key("idempotent-replayed"));

    // The same request again, even with its keys in another order.
    let mut reordered = serde_json::Map::new();
    let original = applicant(1);
    for (k, v) in original.as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), v.clone());
    }
    let retry = app
        .send(Method::POST, &uri, None, Some(&json!(reordered)), &key)
        .await;
    retry.assert_status(201);
    assert_eq!(
        retry.json, first.json,
        "the same receipt, access code included"
    );
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(app.count("entries").await, 1);
    assert_eq!(app.count("outbox").await, 1, "one mail only");

    // The access code of the replayed receipt works.
    let entry = format!(
        "/api/v1/entries/{}",
        retry.json["entry_id"].as_str().unwrap()
    );
    app.get(&entry, retry.json["access_code"].as_str())
        .await
        .assert_status(200);

    // Without the key, the same person is a duplicate.
    app.register(&window_id, &applicant(1))
        .await
        .assert_problem(409, "duplicate");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let key = [("idempotency-key", "k1")];
    app.send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await
        .assert_status(201);
    let other = app
        .send(Method::POST, &uri, None, Some(&applicant(2)), &key)
        .await;
    other.assert_problem(422, "idempotency-key-reused");
    assert_eq!(app.count("entries").await, 1);
}

#[tokio::test]
async fn a_refused_request_does_not_consume_its_key() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let key = [("idempotency-key", "k2")];
    let mut bad = applicant(1);
    bad["email"] = json!("nope");
    app.send(Method::POST, &uri, None, Some(&bad), &key)
        .await
        .assert_problem(422, "validation");
    app.send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await
        .assert_status(201);
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let long = "k".repeat(256);
    let answer = app
        .send(
            Method::POST,
            &uri,
            None,
            Some(&applicant(1)),
            &[("idempotency-key", &long)],
        )
        .await;
    answer.assert_problem(400, "bad-request");
    assert_eq!(app.count("entries").await, 0);
}

#[tokio::test]
async fn receipts_are_replayed_for_a_day() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let key = [("idempotency-key", "late-retry")];
    let first = app
        .send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await;
    first.assert_status(201);
    app.clock.set(crate::helpers::at("2026-12-06T09:59:59Z"));
    let retry = app
        .send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await;
    assert_eq!(retry.json, first.json);
    app.clock.set(crate::helpers::at("2026-12-06T10:00:00Z"));
    let expired = app
        .send(Method::POST, &uri, None, Some(&applicant(1)), &key)
        .await;
    expired.assert_problem(409, "duplicate");
}
