//! SQLite: the log file's space made ready at start (`jobs::log_space`). The zeros go
//! past everything SQLite has written, under its write lock: nothing committed before,
//! during or after is lost, and a copy of the files taken as they are (a crash) opens
//! with all of it.

use std::time::Duration as StdDuration;

use sqlx::Connection;
use tirage::jobs::log_space::{PIECE, reserve};
use tokio::sync::watch;

use crate::helpers::TestApp;

/// The log's length made ready in these tests: a few pieces.
const LENGTH: u64 = 3 * PIECE + 4096;

#[tokio::test]
async fn the_logs_space_is_made_ready_while_registrations_go_on_and_loses_none() {
    let app = TestApp::spawn().await;
    let (_stop, stopped) = watch::channel(false);
    let Some((_, log)) = app.store().unsynced_writer() else {
        // PostgreSQL: no log file of ours to make ready
        assert_eq!(reserve(app.store().clone(), LENGTH, stopped).await, None);
        return;
    };
    let log = log.to_owned();
    let window_id = app.open_window().await;
    app.register_applicants_at_once(&window_id, 40).await;
    let before = std::fs::metadata(&log).unwrap().len();
    assert!(before < LENGTH, "a log of {before} bytes is already long");

    let reserving = tokio::spawn(reserve(app.store().clone(), LENGTH, stopped));
    // registrations during the reservation
    app.register_applicants_at_once_from(&window_id, 41, 60)
        .await;
    let reserved = tokio::time::timeout(StdDuration::from_secs(60), reserving)
        .await
        .expect("the space is ready within a minute")
        .unwrap();
    assert_eq!(reserved, Some(LENGTH));
    assert_eq!(std::fs::metadata(&log).unwrap().len(), LENGTH);
    // and after it: the log's frames go over the zeros
    app.register_applicants_at_once_from(&window_id, 101, 20)
        .await;
    assert_eq!(app.count("entries").await, 120);
    // Asked again, nothing more to do: the log keeps its length.
    let (_stop, stopped) = watch::channel(false);
    assert_eq!(
        reserve(app.store().clone(), LENGTH, stopped).await,
        Some(LENGTH)
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len(), LENGTH);

    // The files as they are on the disk, copied with the writers held (no commit,
    // and no start again of the log, meanwhile): what a crash would leave.
    let image = tempfile::tempdir().unwrap();
    let database = log.with_file_name(
        log.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches("-wal"),
    );
    {
        let _turn = app.store().write_turn().await;
        std::fs::copy(&database, image.path().join("copy.db")).unwrap();
        std::fs::copy(&log, image.path().join("copy.db-wal")).unwrap();
    }
    let url = format!("sqlite://{}", image.path().join("copy.db").display());
    let mut copy = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("pragma integrity_check")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let entries: i64 = sqlx::query_scalar("select count(*) from entries")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    assert_eq!(entries, 120, "every registration answered is in the copy");
}

#[tokio::test]
async fn making_the_logs_space_ready_stops_at_shutdown() {
    let app = TestApp::spawn().await;
    let Some((_, log)) = app.store().unsynced_writer() else {
        return;
    };
    let log = log.to_owned();
    let before = std::fs::metadata(&log).unwrap().len();
    let (stop, stopped) = watch::channel(false);
    stop.send_replace(true);
    assert_eq!(reserve(app.store().clone(), LENGTH, stopped).await, None);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), before);
}
