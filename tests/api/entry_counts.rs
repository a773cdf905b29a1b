//! The entry and slot counts of a window summary, kept by the database
//! (`window_entry_counts`, `window_slot_counts`) instead of counted at every request:
//! they must always equal a count of the rows, whoever changes them, and the migration
//! that introduced them must count the rows already stored.

use serde_json::{Value, json};
use tirage::store::{Db, Store};

use crate::helpers::*;

/// The counts as the summary shows them.
async fn shown(app: &TestApp, window_id: &str) -> Value {
    let summary = app.get(&format!("/api/v1/windows/{window_id}"), None).await;
    summary.assert_status(200)["entries"].clone()
}

/// The counts as a count of the entries gives them.
async fn counted(app: &TestApp, window_id: &str) -> Value {
    let rows: Vec<(String, i64)> = with_pool!(app, |pool| {
        sqlx::query_as(
        "select status, cast(count(*) as bigint) from entries where window_id = $1 group by status"
    )
    .bind(window_id)
    .fetch_all(pool)
    .await
    .unwrap()
    });
    let mut counts = json!({"pending_verification": 0, "eligible": 0, "withdrawn": 0});
    for (status, n) in rows {
        counts[status] = json!(n);
    }
    counts
}

async fn assert_counts(app: &TestApp, window_id: &str, expected: Value) {
    assert_eq!(counted(app, window_id).await, expected, "counted");
    assert_eq!(shown(app, window_id).await, expected, "shown");
}

#[tokio::test]
async fn the_summary_counts_follow_every_change_of_an_entry() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let other_window = app.open_window().await;
    assert_counts(
        &app,
        &window_id,
        json!({"pending_verification": 0, "eligible": 0, "withdrawn": 0}),
    )
    .await;

    let (first, _) = registered_and_verified(&app, &window_id, 1, 0).await;
    let (second, second_access) = registered_and_verified(&app, &window_id, 2, 1).await;
    for n in [3, 4] {
        app.register(&window_id, &applicant(n))
            .await
            .assert_status(201);
    }
    app.register(&other_window, &applicant(9))
        .await
        .assert_status(201);
    assert_counts(
        &app,
        &window_id,
        json!({"pending_verification": 2, "eligible": 2, "withdrawn": 0}),
    )
    .await;

    // A refused registration leaves no count behind.
    app.register(&window_id, &applicant(3))
        .await
        .assert_problem(409, "duplicate");
    // Counter registrations are eligible at once; withdrawals move an entry over.
    app.counter_entry(&window_id, &applicant(5)).await;
    app.post_empty(
        &format!("/api/v1/entries/{second}/withdraw"),
        Some(&second_access),
    )
    .await
    .assert_status(200);
    assert_counts(
        &app,
        &window_id,
        json!({"pending_verification": 2, "eligible": 2, "withdrawn": 1}),
    )
    .await;
    assert_counts(
        &app,
        &other_window,
        json!({"pending_verification": 1, "eligible": 0, "withdrawn": 0}),
    )
    .await;

    // The database keeps the counts, whoever writes: a change made around the service
    // is counted too.
    app.execute(&format!(
        "update entries set status = 'withdrawn' where id = '{first}'"
    ))
    .await
    .unwrap();
    assert_counts(
        &app,
        &window_id,
        json!({"pending_verification": 2, "eligible": 1, "withdrawn": 2}),
    )
    .await;
}

#[tokio::test]
async fn the_migration_counts_the_entries_stored_before_it() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    registered_and_verified(&app, &window_id, 1, 0).await;
    for n in [2, 3] {
        app.register(&window_id, &applicant(n))
            .await
            .assert_status(201);
    }
    let expected = json!({"pending_verification": 2, "eligible": 1, "withdrawn": 0});
    assert_counts(&app, &window_id, expected.clone()).await;

    // The database as it was before the counts existed: entries, no counts.
    let undo: &[&str] = match app.store().db() {
        Db::Sqlite(_) => &[
            "drop trigger entries_count_insert",
            "drop trigger entries_count_update",
            "drop trigger entries_count_delete",
            "drop table window_entry_counts",
            "drop trigger slots_count_insert",
            "drop trigger slots_count_delete",
            "drop table window_slot_counts",
        ],
        Db::Postgres(_) => &[
            "drop table window_entry_counts",
            "drop function tirage_count_entries_added() cascade",
            "drop function tirage_count_entries_removed() cascade",
            "drop function tirage_count_entries_changed() cascade",
            "drop table window_slot_counts",
            "drop function tirage_count_slots_added() cascade",
            "drop function tirage_count_slots_removed() cascade",
        ],
    };
    for statement in undo {
        app.execute(statement).await.unwrap();
    }
    let forgotten = app
        .execute("delete from _sqlx_migrations where description = 'window counts'")
        .await
        .unwrap();
    assert_eq!(forgotten, 1);

    // Starting again applies the migration, which counts what is there.
    let store = Store::connect(&app.url).await.unwrap();
    store.migrate().await.unwrap();
    let window = store.window(&window_id).await.unwrap();
    assert_eq!(
        (
            window.entries.pending_verification,
            window.entries.eligible,
            window.entries.withdrawn,
            window.slot_count
        ),
        (2, 1, 0, 1)
    );
    assert_counts(&app, &window_id, expected).await;
}

#[tokio::test]
async fn the_slot_count_follows_the_edits_of_a_draft() {
    let app = TestApp::spawn().await;
    let id = app.create_window(&window_body()).await;
    let other = app.create_window(&window_body()).await;
    let uri = format!("/api/v1/windows/{id}");
    let shown = |answer: &Answer| answer.json["slots"]["count"].clone();
    assert_eq!(shown(&app.get(&uri, Some(ADMIN_TOKEN)).await), 1);

    let three = json!({"slots": [
        {"starts_at": "2027-01-05T08:00:00Z", "counter": "A"},
        {"starts_at": "2027-01-05T08:00:00Z", "counter": "B"},
        {"starts_at": "2027-01-05T08:30:00Z", "counter": "A"}
    ]});
    app.patch(&uri, Some(ADMIN_TOKEN), &three)
        .await
        .assert_status(200);
    assert_eq!(shown(&app.get(&uri, Some(ADMIN_TOKEN)).await), 3);

    // An edit refused whole leaves the count as it was.
    let clash = json!({"slots": [
        {"starts_at": "2027-01-05T08:00:00Z", "counter": "A"},
        {"starts_at": "2027-01-05T08:00:00Z", "counter": "A"}
    ]});
    assert_eq!(app.patch(&uri, Some(ADMIN_TOKEN), &clash).await.status, 422);
    let edited = app.get(&uri, Some(ADMIN_TOKEN)).await;
    assert_eq!(shown(&edited), 3);
    assert_eq!(
        edited.json["slots"]["first_starts_at"],
        "2027-01-05T08:00:00Z"
    );

    let counted: i64 = with_pool!(app, |pool| sqlx::query_scalar(
        "select cast(count(*) as bigint) from slots where window_id = $1"
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(counted, 3);
    let other_view = app
        .get(&format!("/api/v1/windows/{other}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(shown(&other_view), 1);
}
