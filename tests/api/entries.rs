//! Registration, status and withdrawal; registrations outside the open period.

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, applicant, at, code_in, decoded_mail, registered_and_verified,
    window_body,
};

#[tokio::test]
async fn register_verify_and_read_status() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;

    // Register: a receipt with the public id and the private access code.
    let answer = app.register(&window_id, &applicant(1)).await;
    let receipt = answer.assert_status(201).clone();
    assert_eq!(answer.content_type(), "application/json");
    let entry_id = receipt["entry_id"].as_str().unwrap();
    assert_eq!(entry_id.len(), 32);
    assert!(
        entry_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let access = receipt["access_code"].as_str().unwrap();
    assert_eq!(access.len(), 29);
    assert_eq!(receipt["status"], "pending_verification");
    assert_eq!(receipt["window_id"], window_id.as_str());
    // The permit expires 16 days after the first slot: top tier.
    assert_eq!(
        receipt["weight"],
        json!({"value": 8, "days_left": 16, "tier_max_days_left": 30, "tier_weight": 8, "bonus": 0})
    );

    // The code arrives by mail, in French by default.
    let mails = app.mails(1).await;
    assert!(
        mails[0].contains("To: aminata1@example.org"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("Subject: Votre code de "), "{}", mails[0]);
    let code = crate::helpers::code_in(&mails[0]);

    // The entry is pending until verified.
    let uri = format!("/api/v1/entries/{entry_id}");
    let status = app.get(&uri, Some(access)).await;
    assert_eq!(status.assert_status(200)["status"], "pending_verification");

    let verified = app
        .post(
            &format!("{uri}/verify"),
            Some(access),
            &json!({ "code": code }),
        )
        .await;
    let verified = verified.assert_status(200);
    assert_eq!(verified["status"], "eligible");
    assert!(verified["verified_at"].is_string());

    let status = app.get(&uri, Some(access)).await;
    let status = status.assert_status(200);
    assert_eq!(status["status"], "eligible");
    assert_eq!(status["weight"]["value"], 8);
    assert_eq!(status["family_name"], "Diallob");
    assert_eq!(status["window"]["state"], "open");

    // Verifying again is harmless; the window counts the entry.
    app.post(
        &format!("{uri}/verify"),
        Some(access),
        &json!({ "code": code }),
    )
    .await
    .assert_status(200);
    let window = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    assert_eq!(
        window.json["entries"],
        json!({"pending_verification": 0, "eligible": 1, "withdrawn": 0})
    );

    let stored = app.store().eligible_entries(&window_id).await.unwrap();
    assert_eq!(stored, vec![(entry_id.to_owned(), 8)]);
}

#[tokio::test]
async fn english_mails_for_english_speakers() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut body = applicant(1);
    body["language"] = json!("en");
    app.register(&window_id, &body).await.assert_status(201);
    let mail = &app.mails(1).await[0];
    assert!(mail.contains("Subject: Your verification code"), "{mail}");
    assert!(mail.contains("site 34, procedure renewal"), "{mail}");
}

#[tokio::test]
async fn arabic_mails_for_arabic_speakers() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut body = applicant(1);
    body["language"] = json!("ar");
    let receipt = app.register(&window_id, &body).await;
    let receipt = receipt.assert_status(201);
    let mail = &app.mails(1).await[0];
    let code = code_in(mail);
    let (subject, text) = decoded_mail(mail);
    assert_eq!(subject, "رمز التأكيد الخاص بك");
    assert!(text.starts_with("مرحبًا،\n"), "{text}");
    assert!(text.contains("\nالموقع: 34\nالإجراء: renewal\n"), "{text}");
    assert!(text.contains(&format!("\n    {code}\n")), "{text}");
    assert!(text.contains("30 دقيقة"), "{text}");
    assert!(
        !text.contains("Bonjour") && !text.contains("Hello"),
        "{text}"
    );
    // The language is stored with the entry: a new code comes in Arabic too.
    app.clock.advance(chrono::Duration::seconds(61));
    let resend = format!(
        "/api/v1/entries/{}/resend-code",
        receipt["entry_id"].as_str().unwrap()
    );
    app.post_empty(&resend, receipt["access_code"].as_str())
        .await
        .assert_status(202);
    let (subject, text) = decoded_mail(&app.mails(2).await[1]);
    assert_eq!(subject, "رمز التأكيد الخاص بك");
    assert!(text.contains("30 دقيقة"), "{text}");
}

#[tokio::test]
async fn an_entry_is_only_visible_with_its_own_access_code() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let first = app.register(&window_id, &applicant(1)).await.json;
    let second = app.register(&window_id, &applicant(2)).await.json;
    let uri = format!("/api/v1/entries/{}", first["entry_id"].as_str().unwrap());

    let missing = app.get(&uri, None).await;
    missing.assert_problem(401, "unauthorized");

    // Someone else's code, a wrong code, an unknown id, a malformed id: one same answer.
    let answers = [
        app.get(&uri, second["access_code"].as_str()).await,
        app.get(&uri, Some("0000-0000-0000-0000-0000-0000")).await,
        app.get(
            "/api/v1/entries/00000000000000000000000000000000",
            first["access_code"].as_str(),
        )
        .await,
        app.get("/api/v1/entries/not-an-id", first["access_code"].as_str())
            .await,
    ];
    for answer in &answers {
        answer.assert_problem(404, "not-found");
        assert_eq!(answer.text, answers[0].text);
        assert!(!answer.text.contains("Diallo"));
    }
    // The code is forgiving about case and separators.
    let typed = first["access_code"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .replace('-', " ");
    app.get(&uri, Some(&typed)).await.assert_status(200);
}

#[tokio::test]
async fn counter_registrations_are_eligible_at_once() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let staff = app.token("staff").await;
    let mut body = applicant(1);
    body.as_object_mut().unwrap().remove("email");
    let answer = app
        .post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(&staff),
            &body,
        )
        .await;
    let receipt = answer.assert_status(201);
    assert_eq!(receipt["status"], "eligible");
    assert_eq!(receipt["channel"], "counter");
    assert_eq!(receipt["code_expires_at"], Value::Null);
    assert_eq!(app.count("outbox").await, 0, "no mail without an address");

    // The person can then follow the entry with the access code on the receipt.
    let uri = format!("/api/v1/entries/{}", receipt["entry_id"].as_str().unwrap());
    let status = app.get(&uri, receipt["access_code"].as_str()).await;
    assert_eq!(status.assert_status(200)["channel"], "counter");

    // The duplicate rules apply to the counter too.
    let again = app
        .post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(&staff),
            &body,
        )
        .await;
    assert_eq!(again.assert_problem(409, "duplicate")["rule"], "document");
}

#[tokio::test]
async fn applicants_can_withdraw_before_close() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry_id, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    let uri = format!("/api/v1/entries/{entry_id}/withdraw");

    app.post_empty(&uri, None)
        .await
        .assert_problem(401, "unauthorized");
    let withdrawn = app.post_empty(&uri, Some(&access)).await;
    assert_eq!(withdrawn.assert_status(200)["status"], "withdrawn");
    assert_eq!(
        app.post_empty(&uri, Some(&access)).await.assert_status(200)["status"],
        "withdrawn"
    );
    assert!(
        app.store()
            .eligible_entries(&window_id)
            .await
            .unwrap()
            .is_empty()
    );

    // A withdrawn entry no longer blocks its owner.
    app.register(&window_id, &applicant(1))
        .await
        .assert_status(201);

    // After the close, nothing can be withdrawn.
    let (other_id, other_access) = registered_and_verified(&app, &window_id, 2, 2).await;
    app.clock.set(at("2026-12-15T18:00:00Z"));
    let late = app
        .post_empty(
            &format!("/api/v1/entries/{other_id}/withdraw"),
            Some(&other_access),
        )
        .await;
    assert_eq!(
        late.assert_problem(409, "registration-closed")["state"],
        "open"
    );
}

#[tokio::test]
async fn registration_outside_the_open_period_is_refused() {
    let app = TestApp::spawn().await;

    // A draft.
    let draft = app.create_window(&window_body()).await;
    let answer = app.register(&draft, &applicant(1)).await;
    assert_eq!(
        answer.assert_problem(409, "registration-closed")["state"],
        "draft"
    );

    // An open window, before its period and at its end.
    let open = app.open_window().await;
    app.clock.set(at("2026-12-01T07:59:59Z"));
    let early = app.register(&open, &applicant(1)).await;
    let early = early.assert_problem(409, "registration-closed");
    assert_eq!(
        (
            early["state"].as_str(),
            early["registration_opens_at"].as_str()
        ),
        (Some("open"), Some("2026-12-01T08:00:00Z"))
    );
    app.clock.set(at("2026-12-15T18:00:00Z"));
    let late = app.register(&open, &applicant(1)).await;
    assert_eq!(
        late.assert_problem(409, "registration-closed")["registration_closes_at"],
        "2026-12-15T18:00:00Z"
    );

    // A cancelled window.
    app.clock.set(at("2026-12-05T10:00:00Z"));
    app.post_empty(&format!("/api/v1/windows/{open}/cancel"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    let cancelled = app.register(&open, &applicant(1)).await;
    assert_eq!(
        cancelled.assert_problem(409, "registration-closed")["state"],
        "cancelled"
    );

    // An unknown window.
    app.register("ffffffffffffffff", &applicant(1))
        .await
        .assert_problem(404, "not-found");

    assert_eq!(app.count("entries").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut body = applicant(1);
    body["family_name"] = json!("a".repeat(70 * 1024));
    app.register(&window_id, &body)
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(app.count("entries").await, 0);
}
