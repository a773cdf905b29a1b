//! The one-time code: wrong codes, limits, expiry, new codes.

use chrono::Duration;
use serde_json::json;

use tirage::store::{Db, Store};

use crate::helpers::{TestApp, applicant, at};

struct Pending {
    entry_id: String,
    access: String,
}

async fn pending(app: &TestApp) -> Pending {
    let window_id = app.open_window().await;
    let receipt = app.register(&window_id, &applicant(1)).await.json;
    Pending {
        entry_id: receipt["entry_id"].as_str().unwrap().to_owned(),
        access: receipt["access_code"].as_str().unwrap().to_owned(),
    }
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// Tries a wrong code against `entry` and returns how many tries the answer says are
/// left.
async fn try_wrong(app: &TestApp, entry: &Pending, code: &str) -> serde_json::Value {
    let verify = format!("/api/v1/entries/{}/verify", entry.entry_id);
    let answer = app
        .post(
            &verify,
            Some(&entry.access),
            &json!({ "code": wrong(code) }),
        )
        .await;
    answer.assert_problem(422, "code-incorrect")["attempts_left"].clone()
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code_and_a_new_one_can_be_asked_for() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let code = app.code_from_mail(1).await;
    let verify = format!("/api/v1/entries/{}/verify", entry.entry_id);

    for left in (1..=4).rev() {
        assert_eq!(try_wrong(&app, &entry, &code).await, left);
    }
    app.post(
        &verify,
        Some(&entry.access),
        &json!({ "code": wrong(&code) }),
    )
    .await
    .assert_problem(422, "code-exhausted");
    // Even the right code is refused now.
    app.post(&verify, Some(&entry.access), &json!({ "code": code }))
        .await
        .assert_problem(422, "code-exhausted");

    // A new code, but not twice within a minute.
    let resend = format!("/api/v1/entries/{}/resend-code", entry.entry_id);
    let too_soon = app.post_empty(&resend, Some(&entry.access)).await;
    too_soon.assert_problem(429, "too-many-requests");
    assert!(too_soon.headers.contains_key("retry-after"));
    app.clock.advance(Duration::seconds(61));
    app.post_empty(&resend, Some(&entry.access))
        .await
        .assert_status(202);
    let new_code = app.code_from_mail(2).await;

    app.post(&verify, Some(&entry.access), &json!({ "code": code }))
        .await
        .assert_problem(422, "code-incorrect");
    let verified = app
        .post(&verify, Some(&entry.access), &json!({ "code": new_code }))
        .await;
    assert_eq!(verified.assert_status(200)["status"], "eligible");

    // Nothing more to send once verified.
    app.clock.advance(Duration::seconds(61));
    let done = app.post_empty(&resend, Some(&entry.access)).await;
    assert_eq!(
        done.assert_problem(409, "entry-state")["entry_status"],
        "eligible"
    );
}

#[tokio::test]
async fn codes_expire_after_thirty_minutes() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let code = app.code_from_mail(1).await;
    app.clock.advance(Duration::minutes(30));
    app.post(
        &format!("/api/v1/entries/{}/verify", entry.entry_id),
        Some(&entry.access),
        &json!({ "code": code }),
    )
    .await
    .assert_problem(422, "code-expired");
}

#[tokio::test]
async fn at_most_five_codes_per_entry() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let resend = format!("/api/v1/entries/{}/resend-code", entry.entry_id);
    for _ in 0..4 {
        app.clock.advance(Duration::seconds(61));
        app.post_empty(&resend, Some(&entry.access))
            .await
            .assert_status(202);
    }
    app.clock.advance(Duration::seconds(61));
    let answer = app.post_empty(&resend, Some(&entry.access)).await;
    answer.assert_problem(429, "too-many-requests");
    assert_eq!(app.mails(5).await.len(), 5);
}

#[tokio::test]
async fn no_verification_after_registration_closes() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let code = app.code_from_mail(1).await;
    app.clock.set(at("2026-12-15T18:00:00Z"));
    app.post(
        &format!("/api/v1/entries/{}/verify", entry.entry_id),
        Some(&entry.access),
        &json!({ "code": code }),
    )
    .await
    .assert_problem(409, "registration-closed");
}

#[tokio::test]
async fn verification_needs_the_access_code() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let code = app.code_from_mail(1).await;
    let verify = format!("/api/v1/entries/{}/verify", entry.entry_id);
    app.post(&verify, None, &json!({ "code": code }))
        .await
        .assert_problem(401, "unauthorized");
    app.post(&verify, Some("wrong"), &json!({ "code": code }))
        .await
        .assert_problem(404, "not-found");
    app.post(&verify, Some(&entry.access), &json!({ "code": "" }))
        .await
        .assert_problem(422, "validation");
    let status = app
        .get(
            &format!("/api/v1/entries/{}", entry.entry_id),
            Some(&entry.access),
        )
        .await;
    assert_eq!(status.json["status"], "pending_verification");
}

#[tokio::test]
async fn mails_are_erased_from_the_outbox_once_sent() {
    let app = TestApp::spawn().await;
    pending(&app).await;
    app.mails(1).await;
    for _ in 0..100 {
        let left: Vec<(String, String)> = with_pool!(app, |pool| sqlx::query_as(
            "select recipient, body from outbox"
        )
        .fetch_all(pool)
        .await
        .unwrap());
        if left
            .iter()
            .all(|(recipient, body)| recipient.is_empty() && body.is_empty())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the sent mail's address and body are still stored");
}

#[tokio::test]
async fn the_migration_keeps_the_codes_stored_before_it() {
    let app = TestApp::spawn().await;
    let entry = pending(&app).await;
    let code = app.code_from_mail(1).await;
    let verify = format!("/api/v1/entries/{}/verify", entry.entry_id);
    assert_eq!(try_wrong(&app, &entry, &code).await, 4);

    // The database as it was before the codes moved into the entries: a table of
    // their own.
    let (blob, time) = match app.store().db() {
        Db::Sqlite(_) => ("blob", "text"),
        Db::Postgres(_) => ("bytea", "timestamptz"),
    };
    app.execute(&format!(
        "create table verification_codes (
             entry_id text primary key references entries (id),
             code_hash {blob} not null,
             expires_at {time} not null,
             attempts bigint not null default 0,
             sends bigint not null default 1,
             sent_at {time} not null)"
    ))
    .await
    .unwrap();
    let moved = app
        .execute(
            "insert into verification_codes
             select id, code_hash, code_expires_at, code_attempts, code_sends, code_sent_at
             from entries where code_hash is not null",
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
    for column in [
        "code_hash",
        "code_expires_at",
        "code_attempts",
        "code_sends",
        "code_sent_at",
    ] {
        app.execute(&format!("alter table entries drop column {column}"))
            .await
            .unwrap();
    }
    let forgotten = app
        .execute("delete from _sqlx_migrations where description = 'codes in entries'")
        .await
        .unwrap();
    assert_eq!(forgotten, 1);

    // Starting again applies the migration: the code, its count of wrong tries and
    // its sends are the entry's again.
    let store = Store::connect(&app.url).await.unwrap();
    store.migrate().await.unwrap();
    assert!(
        app.execute("select 1 from verification_codes")
            .await
            .is_err()
    );
    assert_eq!(try_wrong(&app, &entry, &code).await, 3);
    let verified = app
        .post(&verify, Some(&entry.access), &json!({ "code": code }))
        .await;
    assert_eq!(verified.assert_status(200)["status"], "eligible");
    assert_eq!(app.count("entries where code_hash is not null").await, 0);
}
