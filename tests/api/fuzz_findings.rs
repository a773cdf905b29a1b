//! Regressions for what fuzzing the API with Schemathesis found (`scripts/schemathesis.sh`,
//! `docs/fuzzing.md`): each test pins one finding.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, window_body};

/// A weighting tier bound of `i64::MIN` has no absolute value: the range check used to
/// overflow, and the connection was dropped without an answer.
#[tokio::test]
async fn a_tier_bound_of_the_smallest_integer_is_refused_with_its_field() {
    let app = TestApp::spawn().await;
    let mut body = window_body();
    body["policy"] = json!({
        "tiers": [{"max_days_left": i64::MIN, "weight": 2}],
        "default_weight": 1, "carry_over_bonus": 0, "max_bonus": 0
    });

    let answer = app.post("/api/v1/windows", Some(ADMIN_TOKEN), &body).await;

    let errors = &answer.assert_problem(422, "validation")["errors"];
    assert_eq!(errors[0]["field"], "policy.tiers[0].max_days_left");
    assert_eq!(errors[0]["code"], "out_of_range");
    assert_eq!(app.count("windows").await, 0);
}

/// Bodies that are not JSON, or not sent as JSON, are refused before any handler runs;
/// those answers were missing from the OpenAPI description of most operations.
#[tokio::test]
async fn every_operation_with_a_body_documents_the_refusals_of_that_body() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let entry = app
        .post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(ADMIN_TOKEN),
            &applicant(1),
        )
        .await;
    let entry_id = entry.assert_status(201)["entry_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let spec = app.get("/api/openapi.json", None).await.json;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let documented = operation["responses"].as_object().unwrap();
            for status in ["400", "413", "415"] {
                assert!(
                    documented.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            let uri = path
                .replace("{id}", &window_id)
                .replace("{entry_id}", &entry_id)
                .replace("{slot_id}", "s1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Not JSON, then not sent as JSON.
            for content_type in [Some("application/json"), None] {
                let mut request = Request::builder()
                    .method(method.clone())
                    .uri(&uri)
                    .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"));
                if let Some(content_type) = content_type {
                    request = request.header(header::CONTENT_TYPE, content_type);
                }
                let answer = app
                    .send_request(request.body(Body::from("\u{0}{")).unwrap())
                    .await;
                let status = answer.status.as_str().to_owned();
                assert!(
                    documented.contains_key(&status),
                    "{method} {uri} ({content_type:?}) answered an undocumented {status}: {}",
                    answer.text
                );
                assert_eq!(answer.content_type(), "application/problem+json", "{uri}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} operations take a body");
}
