//! Every validation rule of a registration: 422 naming the field, nothing stored.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, applicant};

/// (what is wrong, the change to a valid body, the field and code expected)
fn cases() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let set = |path: &[&str], value: Value| {
        let mut body = applicant(1);
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body
    };
    let without = |key: &str| {
        let mut body = applicant(1);
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let without_in_document = |key: &str| {
        let mut body = applicant(1);
        body["document"].as_object_mut().unwrap().remove(key);
        body
    };
    vec![
        (
            "empty family name",
            set(&["family_name"], json!("  ")),
            "family_name",
            "required",
        ),
        (
            "missing given names",
            without("given_names"),
            "given_names",
            "required",
        ),
        (
            "over-long family name",
            set(&["family_name"], json!("a".repeat(101))),
            "family_name",
            "too_long",
        ),
        (
            "digits in a name",
            set(&["given_names"], json!("Amin4ta")),
            "given_names",
            "invalid_characters",
        ),
        (
            "name of the wrong type",
            set(&["family_name"], json!(42)),
            "family_name",
            "invalid_type",
        ),
        (
            "malformed birth date",
            set(&["birth_date"], json!("14/03/1991")),
            "birth_date",
            "invalid_date",
        ),
        (
            "impossible birth date",
            set(&["birth_date"], json!("1991-02-30")),
            "birth_date",
            "invalid_date",
        ),
        (
            "birth date in the future",
            set(&["birth_date"], json!("2026-12-06")),
            "birth_date",
            "in_future",
        ),
        (
            "birth over 120 years ago",
            set(&["birth_date"], json!("1906-12-04")),
            "birth_date",
            "too_old",
        ),
        (
            "missing birth date",
            without("birth_date"),
            "birth_date",
            "required",
        ),
        (
            "bad nationality",
            set(&["nationality"], json!("S3N")),
            "nationality",
            "invalid_country",
        ),
        (
            "over-long nationality",
            set(&["nationality"], json!("Senegal")),
            "nationality",
            "too_long",
        ),
        (
            "missing document",
            without("document"),
            "document",
            "required",
        ),
        (
            "unknown document kind",
            set(&["document", "kind"], json!("id_card")),
            "document.kind",
            "unknown_kind",
        ),
        (
            "missing document number",
            without_in_document("number"),
            "document.number",
            "required",
        ),
        (
            "malformed foreigner number",
            set(&["document", "number"], json!("12345")),
            "document.number",
            "invalid_format",
        ),
        (
            "over-long document number",
            set(&["document", "number"], json!("1".repeat(33))),
            "document.number",
            "too_long",
        ),
        (
            "bad document country",
            set(&["document", "country"], json!("F")),
            "document.country",
            "invalid_country",
        ),
        (
            "unknown document field",
            set(&["document", "expiry"], json!("2030-01-01")),
            "document.expiry",
            "unknown_field",
        ),
        (
            "invalid e-mail",
            set(&["email"], json!("aminata.example.org")),
            "email",
            "invalid_email",
        ),
        (
            "over-long e-mail",
            set(
                &["email"],
                json!(format!("{}@example.org", "a".repeat(250))),
            ),
            "email",
            "too_long",
        ),
        (
            "missing e-mail online",
            without("email"),
            "email",
            "required",
        ),
        (
            "invalid phone",
            set(&["phone"], json!("12")),
            "phone",
            "invalid_phone",
        ),
        (
            "over-long phone",
            set(&["phone"], json!("1".repeat(33))),
            "phone",
            "too_long",
        ),
        (
            "permit more than 10 years ahead",
            set(&["permit_expires_on"], json!("2036-12-06")),
            "permit_expires_on",
            "too_far_ahead",
        ),
        (
            "malformed permit expiry",
            set(&["permit_expires_on"], json!("soon")),
            "permit_expires_on",
            "invalid_date",
        ),
        (
            "unsupported language",
            set(&["language"], json!("de")),
            "language",
            "unsupported_language",
        ),
        (
            "unknown field",
            set(&["emial"], json!("x@example.org")),
            "emial",
            "unknown_field",
        ),
    ]
}

#[tokio::test]
async fn every_rule_names_its_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    for (what, body, field, code) in cases() {
        let answer = app.register(&window_id, &body).await;
        let problem = answer.assert_problem(422, "validation");
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["code"] == code && e["message"].is_string()),
            "{what}: expected {field}:{code}, got {}",
            answer.text
        );
        if !matches!(code, "invalid_type" | "unknown_field") {
            assert_eq!(
                errors.len(),
                1,
                "{what}: only the bad field is reported: {}",
                answer.text
            );
        }
        assert_eq!(app.count("entries").await, 0, "{what}: nothing stored");
        assert_eq!(app.count("outbox").await, 0, "{what}: no mail queued");
    }
}

#[tokio::test]
async fn all_bad_fields_are_reported_at_once() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let body = json!({
        "family_name": "",
        "given_names": "Aminata",
        "birth_date": "3000-01-01",
        "nationality": "SEN",
        "document": {"kind": "passport", "number": "#", "country": "SEN"},
        "email": "nope",
        "permit_expires_on": null
    });
    let answer = app.register(&window_id, &body).await;
    let problem = answer.assert_problem(422, "validation");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["family_name", "birth_date", "document.number", "email"]
    );
    assert!(problem["detail"].as_str().unwrap().contains("4 field(s)"));
}

#[tokio::test]
async fn an_unsupported_language_names_the_three_mail_languages() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut body = applicant(1);
    body["language"] = json!("de");
    let answer = app.register(&window_id, &body).await;
    let problem = answer.assert_problem(422, "validation");
    assert_eq!(problem["errors"][0]["field"], "language");
    assert_eq!(
        problem["errors"][0]["message"],
        "must be \"fr\", \"en\" or \"ar\""
    );
    for (n, language) in [(2, "fr"), (3, "en"), (4, "ar")] {
        let mut body = applicant(n);
        body["language"] = json!(language);
        app.register(&window_id, &body).await.assert_status(201);
    }
}

#[tokio::test]
async fn optional_fields_may_be_left_out() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut body = applicant(1);
    for key in ["phone", "permit_expires_on", "language"] {
        body.as_object_mut().unwrap().remove(key);
    }
    let receipt = app.register(&window_id, &body).await;
    // No permit: a first application weighs the default weight.
    assert_eq!(receipt.assert_status(201)["weight"]["value"], 1);
}

#[tokio::test]
async fn unparseable_json_is_400_and_a_missing_content_type_415() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");

    let broken = json_request(&uri, r#"{"family_name": "Diallo","#);
    app.send_request(broken)
        .await
        .assert_problem(400, "malformed-json");

    let untyped = Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .body(Body::from("{}"))
        .unwrap();
    app.send_request(untyped)
        .await
        .assert_problem(415, "unsupported-media-type");

    let form = Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("family_name=x"))
        .unwrap();
    app.send_request(form)
        .await
        .assert_problem(415, "unsupported-media-type");

    let not_an_object = app.register(&window_id, &json!([1, 2])).await;
    not_an_object.assert_problem(422, "validation");
    assert_eq!(app.count("entries").await, 0);
}

#[tokio::test]
async fn a_member_given_twice_names_its_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    // a valid registration, but the address given twice: neither is taken
    let text = applicant(1).to_string();
    let twice = text.replacen('{', r#"{"email": "other@example.org", "#, 1);
    let request = Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "twice-1")
        .body(Body::from(twice))
        .unwrap();
    let answer = app.send_request(request).await;
    let problem = answer.assert_problem(422, "validation");
    assert_eq!(problem["errors"][0]["code"], "duplicate_field", "{problem}");
    assert_eq!(
        problem["errors"][0]["message"], "duplicate field `email`",
        "{problem}"
    );
    assert_eq!(app.count("entries").await, 0);
    assert_eq!(app.count("idempotency_keys").await, 0);

    // a type error first and broken JSON after it: refused as not JSON
    let broken = json_request(&uri, r#"{"family_name": 5, "given_names": "#);
    app.send_request(broken)
        .await
        .assert_problem(400, "malformed-json");
    assert_eq!(app.count("entries").await, 0);
}

/// A POST of `text` to `uri`, sent as JSON whatever it holds.
fn json_request(uri: &str, text: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(text.to_owned()))
        .unwrap()
}
