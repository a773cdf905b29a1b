//! SQLite: the registrar commits through a connection that does not wait for the disk
//! and answers a batch only once the log has been synced after its commit. These tests
//! hold the sync back (or make it fail) and look at what the applicant would be told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use tirage::domain::codes::hash_access_code;
use tirage::domain::identity::DuplicateKeys;
use tirage::domain::registration::{Channel, RegistrationForm};
use tirage::jobs::registrar::{LogFile, LogSync, NewRegistration, Registrar, copy_log};
use tirage::store::{Db, RegisterOutcome, Store, StoreError};

use crate::helpers::{TestApp, applicant, t0};

/// A sync that waits until the test opens the gate, then syncs the real log.
struct Gate {
    log: LogFile,
    open: Mutex<bool>,
    opened: Condvar,
    calls: AtomicUsize,
}

impl Gate {
    fn new(log: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            log: LogFile::new(log),
            open: Mutex::new(false),
            opened: Condvar::new(),
            calls: AtomicUsize::new(0),
        })
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl LogSync for Gate {
    fn sync(&self) -> std::io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        self.log.sync()
    }
}

/// A sync that always fails, as a disk that reports an error would.
struct Broken;

impl LogSync for Broken {
    fn sync(&self) -> std::io::Result<()> {
        Err(std::io::Error::other("the disk reported an error"))
    }
}

/// The registration of `applicant(n)` in `window_id`, as the API hands it over.
fn registration(n: u32, window_id: &str) -> NewRegistration {
    let form: RegistrationForm = serde_json::from_value(applicant(n)).unwrap();
    let registration = form.parse(Channel::Online, t0().date_naive()).unwrap();
    NewRegistration {
        entry_id: format!("{n:032x}"),
        window_id: window_id.to_owned(),
        channel: Channel::Online,
        access_code_hash: hash_access_code(&format!("access-{n}")),
        keys: DuplicateKeys::of(&registration.identity),
        registration,
        weight: 1,
        unsuccessful_draws: 0,
        registered_by: None,
        code: Some((vec![7; 32], t0() + Duration::minutes(30))),
        mail: None,
        idempotency: None,
        now: t0(),
    }
}

/// The registrar's own store and log, on SQLite; `None` on PostgreSQL, whose commits
/// wait for the server's log themselves.
fn unsynced(app: &TestApp) -> Option<(Store, std::path::PathBuf)> {
    let found = app.store().unsynced_writer();
    if app.store().is_sqlite() {
        assert!(found.is_some(), "a SQLite file has an unsynced writer");
    } else {
        assert!(found.is_none(), "PostgreSQL has no unsynced writer");
    }
    found.map(|(store, log)| (store, log.to_owned()))
}

#[tokio::test]
async fn a_registration_is_answered_only_after_the_log_is_synced() {
    let app = TestApp::spawn().await;
    let Some((writer, log)) = unsynced(&app) else {
        return;
    };
    let window_id = app.open_window().await;
    let gate = Gate::new(&log);
    let registrar = Registrar::start_with_sync(app.store().clone(), writer, gate.clone());

    let entry_id = format!("{:032x}", 1);
    let answer = tokio::spawn({
        let registrar = registrar.clone();
        let registration = registration(1, &window_id);
        async move { registrar.register(registration).await }
    });

    // The batch is committed (another connection reads the entry) and its sync has
    // begun, but nobody has been told yet.
    let mut committed = false;
    for _ in 0..500 {
        if app.store().entry(&entry_id).await.is_ok() && gate.calls.load(Ordering::SeqCst) > 0 {
            committed = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(
        committed,
        "the registration was committed and its sync started"
    );
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        !answer.is_finished(),
        "no answer may leave before the log is synced"
    );

    gate.open();
    let outcome = tokio::time::timeout(StdDuration::from_secs(10), answer)
        .await
        .expect("answered once the log is synced")
        .unwrap();
    assert!(
        matches!(outcome, Ok(RegisterOutcome::Created { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_sync_answers_an_error_and_a_refusal_stays_a_refusal() {
    let app = TestApp::spawn().await;
    let Some((writer, _)) = unsynced(&app) else {
        return;
    };
    let window_id = app.open_window().await;
    let registrar = Registrar::start_with_sync(app.store().clone(), writer, Arc::new(Broken));

    let first = registrar.register(registration(1, &window_id)).await;
    match first {
        Err(StoreError::Database(sqlx::Error::Io(error))) => {
            assert!(
                error.to_string().contains("may not be on the disk"),
                "{error}"
            );
        }
        other => panic!("a registration whose sync failed got {other:?}"),
    }

    // The same person again: refused as a duplicate, an answer that wrote nothing and
    // so does not depend on the sync.
    let mut again = registration(1, &window_id);
    again.entry_id = format!("{:032x}", 2);
    let second = registrar.register(again).await;
    assert!(
        matches!(second, Err(StoreError::Duplicate(_))),
        "{second:?}"
    );
}

#[tokio::test]
async fn only_the_registrars_connection_commits_without_waiting_for_the_disk() {
    let app = TestApp::spawn().await;
    let Some((writer, log)) = unsynced(&app) else {
        return;
    };
    let pragma = |store: &Store, statement: &'static str| {
        let tirage::store::Db::Sqlite(pool) = store.db().clone() else {
            unreachable!("a SQLite store");
        };
        async move {
            sqlx::query_scalar::<_, i64>(statement)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let synchronous = |store| pragma(store, "pragma synchronous");
    assert_eq!(synchronous(app.store()).await, 2, "FULL everywhere else");
    assert_eq!(synchronous(&writer).await, 1, "NORMAL for the registrar");
    // The commits' own checkpoint is a safety net far past where the registrar's
    // checkpoints start the log again, on every connection.
    for store in [app.store(), &writer] {
        assert_eq!(
            pragma(store, "pragma wal_autocheckpoint").await,
            tirage::store::AUTOCHECKPOINT_PAGES
        );
        assert_eq!(pragma(store, "pragma foreign_keys").await, 1);
        assert_eq!(pragma(store, "pragma cache_size").await, -16384);
    }

    // The log is the database's, and the real sync succeeds on it and fails, rather
    // than pretend, when there is no such file.
    assert_eq!(log.file_name().unwrap(), "tirage.db-wal");
    assert!(log.with_file_name("tirage.db").is_file());
    LogFile::new(&log).sync().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(
        LogFile::new(&elsewhere.path().join("missing-wal"))
            .sync()
            .is_err()
    );

    // A database in memory has no log file: every connection keeps waiting.
    let memory = Store::connect("sqlite::memory:").await.unwrap();
    assert!(memory.unsynced_writer().is_none());
}

/// The log's length after a copy that ran: a pass answers -1 when another checkpoint
/// holds SQLite's checkpoint lock, such as the one the registrar asks for after each
/// batch (its batches also record the mails sent), so it is tried again.
pub(crate) async fn ran<F, Fut>(copy: F) -> i64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<i64, tirage::store::StoreError>>,
{
    for _ in 0..250 {
        let log = copy().await.unwrap();
        if log >= 0 {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("every copy of the log met another checkpoint");
}

#[tokio::test]
async fn a_long_log_is_copied_whole_and_started_again() {
    let app = TestApp::spawn().await;
    if unsynced(&app).is_none() {
        return;
    }
    let Db::Sqlite(pool) = app.store().db() else {
        return;
    };
    let window_id = app.open_window().await;
    // A reader in the middle of a read keeps the log from starting again: the
    // registrations pile up in it.
    let mut reader = pool.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("select count(*) from entries")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    app.register_applicants(&window_id, 30).await;
    // Their mails sent and marked: nothing else writes meanwhile.
    app.wait_for_rows("outbox where sent_at is not null", 30)
        .await;
    reader.rollback().await.unwrap();

    // Below the limit, one pass: the log keeps its length.
    let long = ran(|| copy_log(app.store(), i64::MAX)).await;
    assert!(long >= 30, "{long} pages for 30 registrations");
    assert_eq!(ran(|| app.store().checkpoint_wal()).await, long);

    // Past it, copied whole: the next registration starts the log again, and
    // nothing is lost.
    assert_eq!(ran(|| copy_log(app.store(), 0)).await, long);
    app.register(&window_id, &applicant(31))
        .await
        .assert_status(201);
    let started_again = ran(|| app.store().checkpoint_wal()).await;
    assert!(
        started_again < long / 2,
        "{started_again} pages after, {long} before"
    );
    assert_eq!(app.count("entries").await, 31);
}

#[tokio::test]
async fn the_log_is_copied_and_started_again_while_registrations_keep_coming() {
    let app = TestApp::spawn().await;
    if unsynced(&app).is_none() {
        return;
    }
    let window_id = app.open_window().await;
    let registrations = async {
        for n in 0..40 {
            app.register(&window_id, &applicant(n))
                .await
                .assert_status(201);
        }
    };
    // Past the limit from its first page: each call syncs and copies in rounds, then
    // takes the writers' turn, while the registrations keep adding to the log.
    let copies = async {
        let mut calls = 0;
        while app.count("entries").await < 40 {
            copy_log(app.store(), 0).await.unwrap();
            calls += 1;
        }
        calls
    };
    let ((), calls) = tokio::join!(registrations, copies);
    assert!(calls > 1, "{calls} copies beside 40 registrations");

    // Copied whole: the next registration starts the log again, nothing is lost.
    let long = ran(|| copy_log(app.store(), 0)).await;
    app.register(&window_id, &applicant(40))
        .await
        .assert_status(201);
    let started_again = ran(|| app.store().checkpoint_wal()).await;
    assert!(
        started_again < 40,
        "{started_again} pages after one registration, {long} before"
    );
    assert_eq!(app.count("entries").await, 41);
}

/// The log's length in pages, and how many of them are copied into the database, as
/// SQLite's shared index of the log (`<database>-shm`) says: its header's `mxFrame`
/// (bytes 16 to 19) and the checkpoint's `nBackfill` (bytes 96 to 99), in the
/// machine's byte order. Reading them copies nothing, unlike a checkpoint pass.
fn log_and_copied(log: &std::path::Path) -> (u32, u32) {
    let index = std::fs::read(
        log.with_file_name(
            log.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .replace("-wal", "-shm"),
        ),
    )
    .unwrap();
    let word = |at: usize| u32::from_ne_bytes(index[at..at + 4].try_into().unwrap());
    (word(16), word(96))
}

#[tokio::test]
async fn the_log_of_a_stream_is_copied_once_the_stream_ends() {
    // While registrations stream in, the registrar's checkpoints leave the log alone
    // until it must start again; the last batches of a stream need not look quiet, so
    // once no batch has come for a second, what was left is copied anyway.
    let app = TestApp::spawn().await;
    let Some((_, log)) = unsynced(&app) else {
        return;
    };
    let window_id = app.open_window().await;
    app.register_applicants_at_once(&window_id, 120).await;
    // Every registration answered is in the log; what comes later (the marks of
    // their mails, recorded as the outbox sends them) need not be copied yet.
    let (length, _) = log_and_copied(&log);
    assert!(length > 120, "{length} pages of log for 120 registrations");
    let mut copied = log_and_copied(&log).1;
    for _ in 0..100 {
        if copied >= length {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        copied = log_and_copied(&log).1;
    }
    assert!(
        copied >= length,
        "{copied} pages of the stream's {length} copied into the database"
    );
    assert_eq!(app.count("entries").await, 120);
}

/// Holds the database's writers until dropped: SQLite's write turn of this process,
/// PostgreSQL's write lock in a transaction of its own.
enum HeldWriters {
    Sqlite(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
    Postgres(#[allow(dead_code)] sqlx::Transaction<'static, sqlx::Postgres>),
}

async fn hold_writers(store: &Store) -> HeldWriters {
    match store.db() {
        Db::Sqlite(_) => HeldWriters::Sqlite(store.write_turn().await.unwrap()),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("select pg_advisory_xact_lock($1)")
                .bind(tirage::store::WRITE_LOCK)
                .execute(&mut *tx)
                .await
                .unwrap();
            HeldWriters::Postgres(tx)
        }
    }
}

#[tokio::test]
async fn closing_the_registrar_stores_what_it_was_handed_then_refuses_more() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let registrar = Registrar::start(app.store().clone());
    let register = |n| {
        let registrar = registrar.clone();
        let registration = registration(n, &window_id);
        tokio::spawn(async move { registrar.register(registration).await })
    };

    // The writer takes the first registrations and waits for the writers' turn; the
    // others queue behind it.
    let held = hold_writers(app.store()).await;
    let mut answers: Vec<_> = (1..=20).map(register).collect();
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    answers.extend((21..=40).map(register));
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    let closed = tokio::spawn({
        let registrar = registrar.clone();
        async move { registrar.close().await }
    });
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    assert!(!closed.is_finished(), "close waits for the writer");
    drop(held);

    tokio::time::timeout(StdDuration::from_secs(10), closed)
        .await
        .expect("closed once the queue is stored")
        .unwrap();
    // Everything handed over is stored by the time `close` returns.
    assert_eq!(app.count("entries").await, 40);
    for answer in answers {
        let outcome = answer.await.unwrap();
        assert!(
            matches!(outcome, Ok(RegisterOutcome::Created { .. })),
            "{outcome:?}"
        );
    }

    let late = registrar.register(registration(41, &window_id)).await;
    assert!(late.is_err(), "a closed registrar takes nothing: {late:?}");
    assert_eq!(app.count("entries").await, 40);
    assert!(app.store().entry(&format!("{:032x}", 41)).await.is_err());
}
