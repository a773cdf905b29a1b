//! One entry per person, per window: each duplicate rule, checked by the database.

use serde_json::{Value, json};

use crate::helpers::{TestApp, applicant, call, post_request, window_body};

/// Each case changes a distinct applicant so that it matches the first one on one
/// rule only (after folding).
fn cases() -> Vec<(&'static str, Value)> {
    let mut document = applicant(2);
    document["document"]["number"] = json!("75 0000 0001");

    let mut person = applicant(2);
    person["family_name"] = json!("  DIALLÓB ");
    person["given_names"] = json!("aminata");

    let mut email = applicant(2);
    email["email"] = json!("Aminata1+second@Example.org");

    let mut phone = applicant(2);
    phone["phone"] = json!("06 12 34 00 01");

    vec![
        ("document", document),
        ("person", person),
        ("email", email),
        ("phone", phone),
    ]
}

#[tokio::test]
async fn each_duplicate_rule_is_refused_without_saying_whose_entry_it_is() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    app.register(&window_id, &applicant(1))
        .await
        .assert_status(201);

    for (rule, body) in cases() {
        let answer = app.register(&window_id, &body).await;
        let problem = answer.assert_problem(409, "duplicate");
        assert_eq!(problem["rule"], rule, "{rule}: {}", answer.text);
        for secret in ["Diallob", "aminata1", "7500000001", "+33612340001", "1991"] {
            assert!(
                !answer.text.contains(secret),
                "{rule}: leaks {secret}: {}",
                answer.text
            );
        }
    }
    assert_eq!(app.count("entries").await, 1);
    // The distinct applicant these cases were made from is welcome.
    app.register(&window_id, &applicant(2))
        .await
        .assert_status(201);
}

#[tokio::test]
async fn the_same_person_may_register_in_another_window() {
    let app = TestApp::spawn().await;
    let first = app.open_window().await;
    let mut other = window_body();
    other["procedure"] = json!("first_permit");
    let second = app.create_window(&other).await;
    app.post_empty(
        &format!("/api/v1/windows/{second}/open"),
        Some(crate::helpers::ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    app.register(&first, &applicant(1)).await.assert_status(201);
    app.register(&second, &applicant(1))
        .await
        .assert_status(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_are_refused_by_the_database() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}/entries");
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            // Same document, otherwise distinct people.
            let mut body = applicant(100 + i);
            body["document"]["number"] = json!("7599999999");
            let request = post_request(&uri, &body);
            tokio::spawn(call(app.router.clone(), request))
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.json["rule"] == "document")
        .count();
    assert_eq!((created, refused), (1, 11), "{answers:#?}");
    assert_eq!(app.count("entries").await, 1);
}

/// A copy of `entry_id` under a new id, keeping the identity key of `kept` (or none)
/// and changing the other three.
fn copy_keeping(entry_id: &str, new_id: &str, kept: Option<&str>) -> String {
    let keys = ["document_key", "person_key", "email_key", "phone_key"].map(|key| {
        if Some(key) == kept {
            key.to_owned()
        } else {
            format!("{key} || 'x'")
        }
    });
    format!(
        "insert into entries (id, window_id, status, channel, access_code_hash, family_name,
             given_names, birth_date, nationality, document_kind, document_number,
             document_country, email, phone, permit_expires_on, language, unsuccessful_draws,
             weight, document_key, person_key, email_key, phone_key, created_at)
         select '{new_id}', window_id, status, channel, access_code_hash, family_name,
             given_names, birth_date, nationality, document_kind, document_number,
             document_country, email, phone, permit_expires_on, language, unsuccessful_draws,
             weight, {}, created_at
         from entries where id = '{entry_id}'",
        keys.join(", ")
    )
}

#[tokio::test]
async fn the_unique_indexes_refuse_a_duplicate_that_bypasses_the_service() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let first = app.register(&window_id, &applicant(1)).await;
    let entry_id = first.assert_status(201)["entry_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Written straight into the database, a copy matching one rule is refused by the
    // rule's own index, whatever the service checks or does not check before.
    for (n, key) in ["document_key", "person_key", "email_key", "phone_key"]
        .into_iter()
        .enumerate()
    {
        let copy = copy_keeping(&entry_id, &format!("{n:032x}"), Some(key));
        let error = app.execute(&copy).await.unwrap_err();
        let violation = error.as_database_error().unwrap();
        assert_eq!(
            violation.kind(),
            sqlx::error::ErrorKind::UniqueViolation,
            "{key}: {error}"
        );
        let named = violation
            .constraint()
            .map_or_else(|| violation.message().to_owned(), str::to_owned);
        assert!(named.contains(key), "{key}: {named}");
    }
    // The same statement with every key changed goes in: the refusals above were the
    // rules', not a broken statement.
    let copy = copy_keeping(&entry_id, &format!("{:032x}", 99), None);
    assert_eq!(app.execute(&copy).await.unwrap(), 1);
    assert_eq!(app.count("entries").await, 2);
}
