//! Concurrent retries: many copies of one registration arriving at once, through one
//! router, as a phone on a bad connection or an impatient double tap would send them.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::helpers::{Answer, TestApp, applicant, call};

const COPIES: usize = 50;

/// A registration request, with an idempotency key if given.
fn registration(window_id: &str, body: &Value, key: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/windows/{window_id}/entries"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Sends every request at once, each in its own task; returns the answers.
async fn all_at_once(app: &TestApp, requests: Vec<Request<Body>>) -> Vec<Answer> {
    let mut tasks = JoinSet::new();
    for request in requests {
        tasks.spawn(call(app.router.clone(), request));
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_retries_with_one_key_make_one_entry_and_one_receipt() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let body = applicant(1);
    let requests = (0..COPIES)
        .map(|_| registration(&window_id, &body, Some("tap-tap-9c41")))
        .collect();

    let answers = all_at_once(&app, requests).await;

    assert_eq!(answers.len(), COPIES);
    for answer in &answers {
        answer.assert_status(201);
    }
    let first = &answers[0].json;
    assert!(first["entry_id"].is_string() && first["access_code"].is_string());
    assert!(
        answers.iter().all(|answer| answer.json == *first),
        "every copy gets the same receipt, access code included"
    );
    let replayed = answers
        .iter()
        .filter(|answer| answer.headers.contains_key("idempotent-replayed"))
        .count();
    assert_eq!(replayed, COPIES - 1, "one original, the rest replays");
    assert_eq!(app.count("entries").await, 1);
    assert_eq!(app.count("outbox").await, 1, "one confirmation mail");
    assert_eq!(app.count("idempotency_keys").await, 1);
    // The receipt's access code opens the one entry.
    let entry = format!("/api/v1/entries/{}", first["entry_id"].as_str().unwrap());
    app.get(&entry, first["access_code"].as_str())
        .await
        .assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_registrations_of_one_person_with_different_keys_make_one_entry() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let body = applicant(2);
    let requests = (0..COPIES)
        .map(|n| registration(&window_id, &body, Some(&format!("device-{n}"))))
        .collect();

    let answers = all_at_once(&app, requests).await;

    let created: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status.as_u16() == 201)
        .collect();
    assert_eq!(created.len(), 1, "exactly one registration succeeds");
    for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
        answer.assert_problem(409, "duplicate");
    }
    assert_eq!(answers.len(), COPIES);
    assert_eq!(app.count("entries").await, 1);
    assert_eq!(app.count("outbox").await, 1);
    // Refused requests leave no idempotency record behind: only the winner's key is kept.
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_registrations_of_one_person_without_keys_make_one_entry() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let body = applicant(3);
    let requests = (0..COPIES)
        .map(|_| registration(&window_id, &body, None))
        .collect();

    let answers = all_at_once(&app, requests).await;

    let created = answers.iter().filter(|a| a.status.as_u16() == 201).count();
    assert_eq!(created, 1);
    for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
        answer.assert_problem(409, "duplicate");
    }
    assert_eq!(app.count("entries").await, 1);
}

/// Many people at once, each sent twice: the registrar's batches follow one another
/// closely, and a copy often lands in the batch after its original's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_people_sent_twice_at_once_are_each_stored_once_and_the_chain_holds() {
    const PEOPLE: u32 = 150;
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let head = app.store().audit_head().await.unwrap();
    let requests = (0..PEOPLE)
        .flat_map(|n| [n, n])
        .map(|n| registration(&window_id, &applicant(100 + n), None))
        .collect();

    let answers = all_at_once(&app, requests).await;

    let created: Vec<&str> = answers
        .iter()
        .filter(|a| a.status.as_u16() == 201)
        .map(|a| a.json["entry_id"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), PEOPLE as usize);
    for answer in answers.iter().filter(|a| a.status.as_u16() != 201) {
        answer.assert_problem(409, "duplicate");
    }
    assert_eq!(app.count("entries").await, i64::from(PEOPLE));
    // every receipt names a stored entry
    let ids: Vec<String> = created.iter().map(|id| format!("'{id}'")).collect();
    let named = format!("entries where id in ({})", ids.join(", "));
    assert_eq!(app.count(&named).await, i64::from(PEOPLE));
    let check = app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
    assert_eq!(check.checked, head.count + u64::from(PEOPLE));
    assert_eq!(check.stored_head.count, check.checked);
}
