//! Operations: `/metrics` in the Prometheus text format, `/readyz`, and the request body
//! limit's problem document.

use axum::http::Method;
use serde_json::json;
use tirage::config::ServeArgs;
use tirage::jobs::clock::Clock;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at, registered_and_verified};

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef-0123456789";

/// The value of the one sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_the_database_totals() {
    // Arrange: a window with one online registration, read once by its owner
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let (entry_id, access) = registered_and_verified(&app, &window_id, 1, 0).await;
    app.get(&format!("/api/v1/entries/{entry_id}"), Some(&access))
        .await
        .assert_status(200);
    app.get("/api/v1/nothing-here", None)
        .await
        .assert_status(404);

    // Act
    let answer = app.get("/metrics", None).await;

    // Assert
    answer.assert_status(200);
    assert!(
        answer
            .content_type()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        answer.content_type()
    );
    let text = &answer.text;
    let requests = "tirage_http_requests_total";
    assert_eq!(
        sample(
            text,
            requests,
            &[
                r#"method="POST""#,
                r#"route="/api/v1/windows/{id}/entries""#,
                r#"status="201""#
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            requests,
            &[
                r#"method="GET""#,
                r#"route="/api/v1/entries/{entry_id}""#,
                r#"status="200""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(text, requests, &[r#"route="unmatched""#, r#"status="404""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            text,
            "tirage_http_request_duration_seconds_count",
            &[r#"route="/api/v1/entries/{entry_id}""#]
        ),
        Some(1.0)
    );
    assert!(
        text.contains(r#"tirage_http_request_duration_seconds_bucket{method="GET",route="/api/v1/entries/{entry_id}",le="0.1"}"#),
        "{text}"
    );
    assert_eq!(
        sample(text, "tirage_registrations_total", &[r#"channel="online""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(text, "tirage_windows", &[r#"state="open""#]),
        Some(1.0)
    );
    assert_eq!(sample(text, "tirage_draws_total", &[]), Some(0.0));
    assert!(
        sample(text, "tirage_outbox_pending", &[]).is_some(),
        "{text}"
    );
    assert!(text.contains("# TYPE tirage_http_request_duration_seconds histogram"));
    // no id, code or personal value in any label
    for private in [entry_id.as_str(), access.as_str(), "aminata1", "Diallo"] {
        assert!(!text.contains(private), "{private} in the metrics");
    }
}

#[tokio::test]
async fn metrics_time_the_registrars_batches_and_the_logs_syncs() {
    // Arrange: nothing registered yet
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let before = app.get("/metrics", None).await;
    before.assert_status(200);
    assert_eq!(
        sample(&before.text, "tirage_registration_batch_size_count", &[]),
        Some(0.0),
        "{}",
        before.text
    );

    // Act: twelve registrations at once, then one refused as already registered
    app.register_applicants_at_once(&window_id, 12).await;
    app.register(&window_id, &applicant(3))
        .await
        .assert_status(409);
    let text = app.get("/metrics", None).await.text;

    // Assert: every registration handed to the writer was in exactly one batch
    let value = |name: &str| sample(&text, name, &[]).unwrap_or_else(|| panic!("{name}: {text}"));
    assert_eq!(value("tirage_registration_batch_size_sum"), 13.0);
    let batches = value("tirage_registration_batch_size_count");
    assert!((2.0..=13.0).contains(&batches), "{batches} batches");
    assert_eq!(value("tirage_registration_batch_seconds_count"), batches);
    assert!(value("tirage_registration_batch_seconds_sum") > 0.0);
    assert!(
        text.contains(r#"tirage_registration_batch_seconds_bucket{le="0.00025"}"#),
        "{text}"
    );
    assert!(text.contains("# TYPE tirage_registration_batch_size histogram"));
    // on a SQLite file every batch is answered after a sync of the log, which may
    // cover several; PostgreSQL's commits wait for its own log
    let syncs = sample(&text, "tirage_sqlite_log_sync_seconds_count", &[]).unwrap_or(0.0);
    if app.store().is_sqlite() {
        assert!(
            (1.0..=batches).contains(&syncs),
            "{syncs} syncs, {batches} batches"
        );
    } else {
        assert_eq!(syncs, 0.0);
    }
}

#[tokio::test]
async fn metrics_count_draws_and_counter_registrations() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    app.post(
        &format!("/api/v1/windows/{window_id}/counter-entries"),
        Some(ADMIN_TOKEN),
        &applicant(1),
    )
    .await
    .assert_status(201);
    app.clock.set(at("2026-12-16T11:00:00Z"));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/close"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/draw"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);

    let text = app.get("/metrics", None).await.text;

    assert_eq!(
        sample(&text, "tirage_draws_total", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tirage_windows", &[r#"state="drawn""#]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "tirage_windows", &[r#"state="open""#]), None);
    assert_eq!(
        sample(
            &text,
            "tirage_registrations_total",
            &[r#"channel="counter""#]
        ),
        Some(1.0)
    );
}

/// What the database holds, counted row by row: registrations by channel, and the
/// mails waiting and given up.
async fn counted_totals(app: &TestApp) -> (Vec<(String, i64)>, i64, i64) {
    with_pool!(app, |pool| {
        let channels = sqlx::query_as(
            "select channel, cast(count(*) as bigint) from entries group by channel order by channel",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let (pending, failed) = sqlx::query_as(
            "select
                 cast(coalesce(sum(case when sent_at is null and failed_at is null then 1 else 0 end), 0) as bigint),
                 cast(coalesce(sum(case when failed_at is not null then 1 else 0 end), 0) as bigint)
             from outbox",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (channels, pending, failed)
    })
}

/// A window open with `online` registrations made online and one at the counter.
async fn registered_through_both_channels(app: &TestApp, online: u32) -> String {
    let window_id = app.open_window().await;
    app.register_applicants(&window_id, online).await;
    app.post(
        &format!("/api/v1/windows/{window_id}/counter-entries"),
        Some(ADMIN_TOKEN),
        &applicant(10),
    )
    .await
    .assert_status(201);
    window_id
}

#[tokio::test]
async fn metrics_report_what_a_count_of_the_rows_gives() {
    let app = TestApp::spawn().await;
    registered_through_both_channels(&app, 4).await;
    // Every mail was queued with its registration; wait until all are sent.
    app.wait_for_rows("outbox where sent_at is null", 0).await;
    // The outbox as a relay failure leaves it: two mails waiting (due in a day, so
    // that the sender leaves them), one given up.
    let ids: Vec<i64> = with_pool!(app, |pool| sqlx::query_scalar(
        "select id from outbox order by id"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    let waiting = "update outbox set sent_at = null, next_attempt_at = $2 where id = $1";
    let given_up = "update outbox set sent_at = null, failed_at = $2 where id = $1";
    let (now, later) = (app.clock.now(), app.clock.now() + chrono::Duration::days(1));
    for (id, statement, at) in [
        (ids[0], waiting, later),
        (ids[1], waiting, later),
        (ids[2], given_up, now),
    ] {
        let changed = with_pool!(app, |pool| sqlx::query(statement)
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .unwrap());
        assert_eq!(changed, 1);
    }

    let text = app.get("/metrics", None).await.text;

    let (channels, pending, failed) = counted_totals(&app).await;
    assert_eq!(
        channels,
        [("counter".to_owned(), 1), ("online".to_owned(), 4)]
    );
    assert_eq!((pending, failed), (2, 1));
    for (channel, n) in &channels {
        let label = format!(r#"channel="{channel}""#);
        assert_eq!(
            sample(&text, "tirage_registrations_total", &[label.as_str()]),
            Some(*n as f64),
            "{text}"
        );
    }
    assert_eq!(
        sample(&text, "tirage_outbox_pending", &[]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tirage_outbox_failed_total", &[]),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn the_migration_counts_the_registrations_stored_before_it() {
    let app = TestApp::spawn().await;
    let window_id = registered_through_both_channels(&app, 3).await;

    // The database as it was before the counts existed: entries, no counts.
    let undo: &[&str] = match app.store().db() {
        tirage::store::Db::Sqlite(_) => &[
            "drop trigger entries_count_channel",
            "drop table entry_channel_counts",
            "drop index outbox_failed",
        ],
        tirage::store::Db::Postgres(_) => &[
            "drop table entry_channel_counts",
            "drop function tirage_count_channels_added() cascade",
            "drop index outbox_failed",
        ],
    };
    for statement in undo {
        app.execute(statement).await.unwrap();
    }
    let forgotten = app
        .execute("delete from _sqlx_migrations where description = 'operational counts'")
        .await
        .unwrap();
    assert_eq!(forgotten, 1);

    // Starting again applies the migration, which counts what is there, and the
    // counts go on from there.
    let store = tirage::store::Store::connect(&app.url).await.unwrap();
    store.migrate().await.unwrap();
    app.register(&window_id, &applicant(4))
        .await
        .assert_status(201);
    let counts = store.operational_counts().await.unwrap();
    assert_eq!(
        counts.registrations,
        [("counter".to_owned(), 1), ("online".to_owned(), 4)]
    );
    assert_eq!(counts.registrations, counted_totals(&app).await.0);
}

#[tokio::test]
async fn a_configured_metrics_token_is_required() {
    let app =
        TestApp::spawn_with(|c: &mut ServeArgs| c.metrics_token = Some(METRICS_TOKEN.into())).await;

    app.get("/metrics", None)
        .await
        .assert_problem(401, "unauthorized");
    app.get(
        "/metrics",
        Some("metrics-token-0123456789abcdef-wrong-wrong"),
    )
    .await
    .assert_problem(401, "unauthorized");
    app.get("/metrics", Some(ADMIN_TOKEN))
        .await
        .assert_problem(401, "unauthorized");
    let answer = app.get("/metrics", Some(METRICS_TOKEN)).await;
    answer.assert_status(200);
    assert!(
        answer.text.contains("tirage_http_requests_total"),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn a_short_metrics_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let mut config = ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.metrics_token = Some("short".into());
    let error = tirage::app::Application::build(config).await.err().unwrap();
    assert!(error.to_string().contains("metrics token"), "{error}");
}

#[tokio::test]
async fn readyz_follows_the_database() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/readyz", None).await.assert_status(200)["status"],
        "ready"
    );

    app.store().close().await;

    app.get("/readyz", None)
        .await
        .assert_problem(503, "unavailable");
}

#[tokio::test]
async fn an_oversized_window_body_is_a_413_problem_and_changes_nothing() {
    let app = TestApp::spawn().await;
    // over the 8 MiB allowed for windows (long slot lists)
    let slots: Vec<_> = (0..170_000)
        .map(|i| json!({"starts_at": "2027-01-04T08:30:00Z", "counter": format!("G{i}")}))
        .collect();
    let mut body = crate::helpers::window_body();
    body["slots"] = json!(slots);
    assert!(serde_json::to_vec(&body).unwrap().len() > tirage::http::WINDOW_BODY_LIMIT);

    app.send(
        Method::POST,
        "/api/v1/windows",
        Some(ADMIN_TOKEN),
        Some(&body),
        &[],
    )
    .await
    .assert_problem(413, "payload-too-large");

    assert_eq!(app.count("windows").await, 0);
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_503_problem() {
    use std::io::{Read, Write};
    // a service that gives requests one second, on a real port
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let mut config = ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.request_timeout = 1;
    let app = tirage::app::Application::build(config).await.unwrap();
    let address = app.local_addr();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());

    // a client that announces a body and never sends it
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "POST /api/v1/windows/0123/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .unwrap();
        let mut answer = vec![0; 4096];
        let n = stream.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();

    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("/problems/unavailable"), "{answer}");
    stop.shutdown();
    server.await.unwrap().unwrap();
}
