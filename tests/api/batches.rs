//! Group commit: a batch of registrations stored with the set-based path gets exactly
//! the answers the savepoint path (one registration after the other) gives, leaves the
//! same rows behind, keeps the audit chain valid, and stores nothing of itself when it
//! has to fall back.

use std::sync::Arc;

use chrono::Duration;
use serde_json::Value;
use tirage::domain::codes::hash_access_code;
use tirage::domain::identity::DuplicateKeys;
use tirage::domain::registration::{Channel, Registration, RegistrationForm};
use tirage::jobs::mailer::{self, MailTransport};
use tirage::jobs::outbox::OutboxSender;
use tirage::store::direct::DirectWriter;
use tirage::store::entries::PendingRegistration;
use tirage::store::{
    Db, IdempotencyRequest, MAIL_LEASE, NewCode, NewEntry, NewMail, RegisterOutcome, StoreError,
};

use crate::helpers::{TestApp, applicant, t0};

/// One registration of a test batch, owning what [`PendingRegistration`] borrows.
struct Item {
    entry_id: String,
    window_id: String,
    registration: Registration,
    keys: DuplicateKeys,
    access_hash: Vec<u8>,
    code_hash: Vec<u8>,
    mail: NewMail,
    /// The idempotency key and the request's fingerprint.
    idempotency: Option<(String, String)>,
}

fn item(n: usize, window_id: &str, body: &Value, idempotency: Option<(&str, &str)>) -> Item {
    let form: RegistrationForm = serde_json::from_value(body.clone()).unwrap();
    let registration = form.parse(Channel::Online, t0().date_naive()).unwrap();
    let keys = DuplicateKeys::of(&registration.identity);
    Item {
        entry_id: format!("{n:032x}"),
        window_id: window_id.to_owned(),
        access_hash: hash_access_code(&format!("access-{n}")),
        code_hash: vec![u8::try_from(n).unwrap(); 32],
        mail: NewMail {
            kind: "verification_code".into(),
            recipient: registration
                .identity
                .email
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            subject: "code".into(),
            body: format!("code {n}"),
        },
        registration,
        keys,
        idempotency: idempotency.map(|(key, fingerprint)| (key.to_owned(), fingerprint.to_owned())),
    }
}

impl Item {
    /// The entry to store: online, weight 1.
    fn entry(&self) -> NewEntry<'_> {
        NewEntry {
            id: &self.entry_id,
            window_id: &self.window_id,
            channel: Channel::Online,
            access_code_hash: &self.access_hash,
            registration: &self.registration,
            keys: &self.keys,
            weight: 1,
            unsuccessful_draws: 0,
            registered_by: None,
        }
    }
}

/// Makes the insert of `item`'s mail fail with "no space left", as a full disk would.
async fn fail_the_mail_of(app: &TestApp, item: &Item) {
    let condition = format!("new.recipient = '{}'", item.mail.recipient);
    app.fail_inserts("outbox", &condition, "no space left")
        .await;
}

/// Which way a test stores its batch.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `register_set` alone: fails rather than falling back.
    SetBased,
    /// `register_set_at_once` (PostgreSQL): one statement committed on its own; fails
    /// when it could not store the batch that way.
    AtOnce,
    /// `register_set_in_transaction`: the set-based decisions in a write transaction.
    InTransaction,
    /// `register_batch_by_savepoints`: one registration after the other.
    Savepoints,
    /// `register_batch`: the set-based path, falling back to the savepoints.
    Batch,
    /// The registrar's own SQLite connection (`DirectWriter::register_batch`): the
    /// set-based decisions, one prepared statement per row; fails rather than
    /// falling back. SQLite files only.
    Direct,
}

/// The answers a store gives to `items`, as text (the errors are not comparable
/// values), with the given path.
async fn store_items(app: &TestApp, items: &[Item], path: Path) -> Vec<String> {
    try_store_items(app, items, path).await.unwrap()
}

async fn try_store_items(
    app: &TestApp,
    items: &[Item],
    path: Path,
) -> Result<Vec<String>, StoreError> {
    let requests: Vec<Option<IdempotencyRequest<'_>>> = items
        .iter()
        .map(|item| {
            item.idempotency
                .as_ref()
                .map(|(key, fingerprint)| IdempotencyRequest {
                    scope: format!("online:{}", item.window_id),
                    key,
                    fingerprint: fingerprint.clone(),
                    status: 201,
                    body: format!("receipt of {}", item.entry_id),
                    expires_at: t0() + Duration::hours(24),
                })
        })
        .collect();
    let batch: Vec<PendingRegistration<'_>> = items
        .iter()
        .zip(&requests)
        .map(|(item, request)| PendingRegistration {
            entry: item.entry(),
            code: Some(NewCode {
                code_hash: &item.code_hash,
                expires_at: t0() + Duration::minutes(30),
            }),
            mail: Some(&item.mail),
            idempotency: request.as_ref(),
            now: t0(),
        })
        .collect();
    let outcomes = match path {
        Path::SetBased => app.store().register_set(&batch).await?,
        Path::AtOnce => app
            .store()
            .register_set_at_once(&batch)
            .await?
            .ok_or(StoreError::Unplanned("the batch was not stored at once"))?,
        Path::InTransaction => app.store().register_set_in_transaction(&batch).await?,
        Path::Savepoints => app.store().register_batch_by_savepoints(&batch).await?,
        Path::Batch => app.store().register_batch(&batch).await?,
        Path::Direct => {
            let mut writer = app
                .store()
                .direct_writer()
                .expect("a SQLite file has a direct writer")?;
            writer.register_batch(&batch, &[])?
        }
    };
    Ok(outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(RegisterOutcome::Created { outbox_id }) => {
                format!("created, mail {}", outbox_id.is_some())
            }
            Ok(RegisterOutcome::Replayed { status, body }) => format!("replayed {status} {body}"),
            Err(StoreError::Duplicate(rule)) => format!("duplicate {}", rule.as_str()),
            Err(error) => format!("refused: {error}"),
        })
        .collect())
}

/// `items` as a batch of online registrations with a mail each, and neither a
/// verification code nor an idempotency key.
fn with_mails_only(items: &[Item]) -> Vec<PendingRegistration<'_>> {
    items
        .iter()
        .map(|item| PendingRegistration {
            entry: item.entry(),
            code: None,
            mail: Some(&item.mail),
            idempotency: None,
            now: t0(),
        })
        .collect()
}

/// `applicant(n)` with one field taken from `applicant(other)`.
fn sharing(n: u32, other: u32, field: &str) -> Value {
    let mut body = applicant(n);
    let source = applicant(other);
    match field {
        "person" => {
            body["family_name"] = source["family_name"].clone();
            body["given_names"] = source["given_names"].clone();
            body["birth_date"] = source["birth_date"].clone();
        }
        field => body[field] = source[field].clone(),
    }
    body
}

/// `applicant(n)` with the e-mail address and the phone number of `applicant(other)`.
fn sharing_two(n: u32, other: u32) -> Value {
    let mut body = sharing(n, other, "email");
    body["phone"] = applicant(other)["phone"].clone();
    body
}

/// What every table the registration writes holds, in a comparable form.
async fn stored(app: &TestApp) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "entries",
        "entries where code_hash is not null",
        "outbox",
        "idempotency_keys",
        "audit_events",
    ] {
        counts.push((table.to_owned(), app.count(table).await));
    }
    counts
}

/// A batch of every kind of answer, after a first batch stored entries and a key.
/// Returns the answers and the app.
async fn mixed_batch(path: Path) -> (Vec<String>, TestApp) {
    mixed_batch_of(path, true).await
}

/// [`mixed_batch`], with or without its duplicates of entries stored before it.
async fn mixed_batch_of(path: Path, stored_duplicate: bool) -> (Vec<String>, TestApp) {
    let app = TestApp::spawn().await;
    let open = app.open_window().await;
    let draft = app.create_window(&crate::helpers::window_body()).await;
    let before = [
        item(1, &open, &applicant(1), None),
        item(
            2,
            &open,
            &applicant(2),
            Some(("stored-key", "fingerprint-2")),
        ),
    ];
    // the entries stored before come from the same path in both runs
    let answers = store_items(&app, &before, Path::Savepoints).await;
    assert_eq!(answers, ["created, mail true", "created, mail true"]);

    let batch = [
        item(10, &open, &applicant(10), None),
        // in-batch duplicates of entry 10, one per rule
        item(11, &open, &sharing(11, 10, "document"), None),
        item(12, &open, &sharing(12, 10, "person"), None),
        item(13, &open, &sharing(13, 10, "email"), None),
        item(14, &open, &sharing(14, 10, "phone"), None),
        // a duplicate of an entry stored before the batch
        item(15, &open, &sharing(15, 1, "phone"), None),
        // a new key, its replay, and the same key with another request
        item(
            16,
            &open,
            &applicant(16),
            Some(("new-key", "fingerprint-16")),
        ),
        item(
            17,
            &open,
            &applicant(17),
            Some(("new-key", "fingerprint-16")),
        ),
        item(18, &open, &applicant(18), Some(("new-key", "another"))),
        // a replay of a key stored before the batch
        item(
            19,
            &open,
            &applicant(19),
            Some(("stored-key", "fingerprint-2")),
        ),
        // a closed window
        item(20, &draft, &applicant(20), None),
        // a refused registration's key is free again for the next one
        item(
            21,
            &open,
            &sharing(21, 2, "email"),
            Some(("refused-key", "f21")),
        ),
        item(22, &open, &applicant(22), Some(("refused-key", "f22"))),
        // no such window
        item(23, "no-such-window", &applicant(23), None),
        // two matching rules: the first in the documented order names the refusal
        item(24, &open, &sharing_two(24, 16), None),
    ];
    let batch: Vec<Item> = batch
        .into_iter()
        .filter(|item| {
            stored_duplicate
                || ![15, 21]
                    .map(|n| format!("{n:032x}"))
                    .contains(&item.entry_id)
        })
        .collect();
    let answers = store_items(&app, &batch, path).await;
    (answers, app)
}

#[tokio::test]
async fn a_mixed_batch_gets_the_answers_of_the_one_by_one_path() {
    let (set_based, set_app) = mixed_batch(Path::SetBased).await;
    let (one_by_one, one_app) = mixed_batch(Path::Savepoints).await;

    let first_receipt = format!("replayed 201 receipt of {:032x}", 16);
    let stored_receipt = format!("replayed 201 receipt of {:032x}", 2);
    let expected = [
        "created, mail true",
        "duplicate document",
        "duplicate person",
        "duplicate email",
        "duplicate phone",
        "duplicate phone",
        "created, mail true",
        first_receipt.as_str(),
        "refused: the idempotency key was used with a different request",
        stored_receipt.as_str(),
        "refused: the window is draft, not open for registration",
        "duplicate email",
        "created, mail true",
        "refused: not found",
        "duplicate email",
    ];
    assert_eq!(one_by_one, expected);
    assert_eq!(set_based, one_by_one);

    // The same rows, and a chain that verifies, on both paths.
    assert_eq!(stored(&set_app).await, stored(&one_app).await);
    assert_eq!(set_app.count("entries").await, 5);
    for app in [&set_app, &one_app] {
        let check = app.store().verify_audit_log().await.unwrap();
        assert!(check.problem.is_none(), "{:?}", check.problem);
        assert_eq!(check.checked, check.stored_head.count);
    }
}

/// The rows a mixed batch leaves, every column as SQLite quotes it (`'text'`,
/// `X'blob'`, `1`, `NULL`), so that the storage class and the exact bytes count; the
/// window ids, random, are named by their role. The audit events' chain hashes
/// differ between two databases (their earlier events do), so only their form counts.
async fn rows_of_mixed_batch(app: &TestApp, open: &str, draft: &str) -> Vec<String> {
    let quoted = |columns: &str| {
        columns
            .split(", ")
            .map(|column| format!("quote({column})"))
            .collect::<Vec<_>>()
            .join(" || ' | ' || ")
    };
    let entries = "id, window_id, status, channel, access_code_hash, family_name, \
        given_names, birth_date, nationality, document_kind, document_number, \
        document_country, email, phone, permit_expires_on, language, unsuccessful_draws, \
        weight, document_key, person_key, email_key, phone_key, registered_by, created_at, \
        verified_at, code_hash, code_expires_at, code_sends, code_sent_at";
    let queries = [
        format!("select {} from entries order by id", quoted(entries)),
        format!(
            "select {} from outbox order by id",
            quoted("id, kind, recipient, subject, body, created_at, next_attempt_at, sent_at")
        ),
        format!(
            "select {} from idempotency_keys order by scope, key",
            quoted("scope, key, fingerprint, status, response, created_at, expires_at")
        ),
        format!(
            "select {} from audit_events where action = 'entry.registered' order by seq",
            quoted(
                "at, actor, action, window_id, entry_id, detail, typeof(prev_hash), \
                 length(prev_hash), typeof(hash), length(hash)"
            )
        ),
        format!(
            "select {} from audit_head",
            quoted("typeof(count), typeof(hash), length(hash), typeof(at)")
        ),
    ];
    let mut rows = Vec::new();
    for sql in queries {
        let Db::Sqlite(pool) = app.store().db() else {
            unreachable!("a direct writer is SQLite's")
        };
        let table: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        rows.extend(
            table
                .into_iter()
                .map(|row| row.replace(open, "OPEN").replace(draft, "DRAFT")),
        );
    }
    rows
}

/// The ids of the open and the draft window of [`mixed_batch`].
async fn window_ids(app: &TestApp) -> (String, String) {
    let Db::Sqlite(pool) = app.store().db() else {
        unreachable!("a direct writer is SQLite's")
    };
    let ids: Vec<(String, String)> = sqlx::query_as("select id, state from windows")
        .fetch_all(pool)
        .await
        .unwrap();
    let id = |state: &str| ids.iter().find(|(_, s)| s == state).unwrap().0.clone();
    (id("open"), id("draft"))
}

#[tokio::test]
async fn the_direct_writer_gives_the_answers_and_the_rows_of_the_pool_path() {
    let (pooled, pool_app) = mixed_batch(Path::SetBased).await;
    if !pool_app.store().is_sqlite() {
        assert!(pool_app.store().direct_writer().is_none());
        return;
    }
    let (direct, direct_app) = mixed_batch(Path::Direct).await;
    assert_eq!(direct, pooled);
    assert_eq!(stored(&direct_app).await, stored(&pool_app).await);

    let (open, draft) = window_ids(&pool_app).await;
    let pool_rows = rows_of_mixed_batch(&pool_app, &open, &draft).await;
    let (open, draft) = window_ids(&direct_app).await;
    let direct_rows = rows_of_mixed_batch(&direct_app, &open, &draft).await;
    assert!(pool_rows.len() > 15, "{pool_rows:#?}");
    assert_eq!(direct_rows, pool_rows);
    // what the service reads back: the chain verifies, a mail can be claimed
    let check = direct_app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
    assert_eq!(check.checked, check.stored_head.count);
}

/// A new app, the registrar's own connection to its SQLite file, and an open window;
/// `None` on PostgreSQL, where the registrar has no such connection.
async fn direct_writer_on_open_window() -> Option<(TestApp, DirectWriter, String)> {
    let app = TestApp::spawn().await;
    let Some(writer) = app.store().direct_writer() else {
        assert!(!app.store().is_sqlite());
        return None;
    };
    let writer = writer.unwrap();
    let window = app.open_window().await;
    Some((app, writer, window))
}

#[tokio::test]
async fn a_failed_batch_of_the_direct_writer_stores_nothing_and_the_next_one_is_stored() {
    let Some((app, mut writer, window)) = direct_writer_on_open_window().await else {
        return;
    };
    // A registration stored before, whose mail is then recorded as sent with the batch.
    let earlier = [item(59, &window, &applicant(59), None)];
    let outcomes = writer
        .register_batch(&with_mails_only(&earlier), &[])
        .unwrap();
    let Ok(RegisterOutcome::Created {
        outbox_id: Some(mail),
    }) = outcomes[0]
    else {
        panic!("{outcomes:?}");
    };
    let sent = [(vec![mail], t0())];
    let recorded = format!("outbox where id = {mail} and sent_at is not null and recipient = ''");
    let items: Vec<Item> = (60..64)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    let requests = with_mails_only(&items);
    // The third mail cannot be stored (as with a full disk), after the entries were.
    fail_the_mail_of(&app, &items[2]).await;
    let rows_before = stored(&app).await;
    let error = writer.register_batch(&requests, &sent).unwrap_err();
    assert!(error.to_string().contains("no space left"), "{error}");
    assert_eq!(stored(&app).await, rows_before);
    assert_eq!(
        app.count(&recorded).await,
        0,
        "the mark went with the batch"
    );

    // The same connection, its failed transaction rolled back, stores the batch.
    app.heal_inserts("outbox").await;
    let outcomes = writer.register_batch(&requests, &sent).unwrap();
    assert_eq!(app.count(&recorded).await, 1);
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, Ok(RegisterOutcome::Created { outbox_id: Some(_) }))),
        "{outcomes:?}"
    );
    assert_eq!(app.count("entries").await, 5);
    assert_eq!(app.count("outbox").await, rows_before[2].1 + 4);
    let check = app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
}

/// The window's entry counts as the triggers keep them, and as counting the rows gives
/// them, by status; and the channel counts likewise.
async fn counts_kept_and_counted(app: &TestApp) -> [Vec<(String, i64)>; 4] {
    let rows = |sql: &'static str| async move {
        let rows: Vec<(String, i64)> = with_pool!(app, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .unwrap());
        rows
    };
    [
        rows(
            "select window_id || ' ' || status, n from window_entry_counts where n > 0 order by 1",
        )
        .await,
        rows("select window_id || ' ' || status, count(*) from entries group by 1 order by 1")
            .await,
        rows("select channel, n from entry_channel_counts where n > 0 order by 1").await,
        rows("select channel, count(*) from entries group by 1 order by 1").await,
    ]
}

#[tokio::test]
async fn a_failed_constraint_rolls_the_direct_writers_whole_batch_back() {
    // The registrar's own connection inserts entries "or rollback", without foreign-key
    // checks, so that SQLite keeps no statement journal: a constraint that fails must
    // still leave nothing of the batch, the connection must go on, and what the
    // foreign keys and the count triggers guard must hold after its batches.
    let Some((app, mut writer, window)) = direct_writer_on_open_window().await else {
        return;
    };
    let first: Vec<Item> = (1..4)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    writer
        .register_batch(&with_mails_only(&first), &[])
        .unwrap();
    let rows_before = stored(&app).await;
    let counts_before = counts_kept_and_counted(&app).await;

    let items: Vec<Item> = (4..8)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    let mut batch = with_mails_only(&items);
    // weight 0 breaks the table's check (1 to 1,000,000), after two entries were
    // inserted with their counts
    batch[2].entry.weight = 0;
    let error = writer.register_batch(&batch, &[]).unwrap_err();
    assert!(
        error.to_string().contains("CHECK constraint failed"),
        "{error}"
    );
    assert_eq!(stored(&app).await, rows_before);
    assert_eq!(counts_kept_and_counted(&app).await, counts_before);

    // The same connection stores the batch once the weight is right.
    batch[2].entry.weight = 1;
    let outcomes = writer.register_batch(&batch, &[]).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, Ok(RegisterOutcome::Created { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(app.count("entries").await, 7);
    let [kept, counted, channels_kept, channels_counted] = counts_kept_and_counted(&app).await;
    assert_eq!(kept, counted);
    assert_eq!(kept, [(format!("{window} pending_verification"), 7)]);
    assert_eq!(channels_kept, channels_counted);
    let broken: Vec<(String, i64, String, i64)> =
        with_pool!(app, |pool| sqlx::query_as("pragma foreign_key_check")
            .fetch_all(pool)
            .await
            .unwrap());
    assert!(broken.is_empty(), "{broken:?}");
    let check = app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
}

#[tokio::test]
async fn the_direct_writer_tells_the_logs_length_after_each_commit() {
    // What the registrar's checkpoints decide on while registrations stream in.
    let Some((app, mut writer, window)) = direct_writer_on_open_window().await else {
        return;
    };
    assert_eq!(writer.log_pages(), None, "before any commit");
    let batch = |from: u32| -> Vec<Item> {
        (from..from + 4)
            .map(|n| item(n as usize, &window, &applicant(n), None))
            .collect()
    };
    let after_first = committed(&mut writer, &batch(1));
    let second = batch(5);
    let after_second = committed(&mut writer, &second);
    assert!(
        after_second > after_first && after_first > 0,
        "{after_first} then {after_second} pages"
    );
    // A failed batch commits nothing: the length stays the last commit's.
    let mut failed = with_mails_only(&second);
    failed[0].entry.weight = 0;
    writer.register_batch(&failed, &[]).unwrap_err();
    assert_eq!(writer.log_pages(), Some(after_second));

    // Copied whole, the log starts again at the next commit, which says so.
    crate::log_sync::ran(|| tirage::jobs::registrar::copy_log(app.store(), 0)).await;
    let started_again = committed(&mut writer, &batch(9));
    assert!(
        started_again > 0 && started_again < after_second,
        "{started_again} pages after starting again, {after_second} before"
    );
    assert_eq!(app.count("entries").await, 12);
}

/// Stores `items` through the registrar's own connection; the log's length after.
fn committed(writer: &mut DirectWriter, items: &[Item]) -> i64 {
    writer.register_batch(&with_mails_only(items), &[]).unwrap();
    writer.log_pages().unwrap()
}

#[tokio::test]
async fn each_created_registration_gets_the_id_of_its_own_mail() {
    let app = TestApp::spawn().await;
    let window = app.open_window().await;
    let items: Vec<Item> = (30..40)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    let requests = with_mails_only(&items);
    let outcomes = app.store().register_batch(&requests).await.unwrap();
    for (item, outcome) in items.iter().zip(outcomes) {
        let Ok(RegisterOutcome::Created {
            outbox_id: Some(id),
        }) = outcome
        else {
            panic!("{outcome:?}");
        };
        // queued claimed for the instance that stored it, for the lease
        let claim = app.store().claim_mail(id, t0(), t0()).await.unwrap();
        assert!(claim.is_none(), "{claim:?}");
        let lease_ends = t0() + tirage::store::MAIL_LEASE;
        let mail = app
            .store()
            .claim_mail(id, lease_ends, lease_ends)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mail.body, item.mail.body);
        assert_eq!(mail.recipient, item.mail.recipient);
    }
}

#[tokio::test]
async fn a_batch_that_falls_back_stores_nothing_of_its_first_attempt() {
    let app = TestApp::spawn().await;
    let window = app.open_window().await;
    let items: Vec<Item> = (40..46)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    // The verification mail of one registration cannot be stored (as with a full
    // disk): the set-based insert of all mails fails after the entries were inserted,
    // so the batch is stored again with a savepoint each, where only that
    // registration fails.
    let failing = items[2].entry_id.clone();
    fail_the_mail_of(&app, &items[2]).await;
    // The set-based path alone fails as a whole and leaves nothing behind.
    let rows_before = stored(&app).await;
    let error = try_store_items(&app, &items, Path::SetBased)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no space left"), "{error}");
    assert_eq!(stored(&app).await, rows_before);
    assert_eq!(
        app.store().audit_head().await.unwrap().count,
        rows_before[4].1 as u64
    );
    let events_before = app.count("audit_events").await;
    let answers = store_items(&app, &items, Path::Batch).await;
    assert!(
        answers[2].starts_with("refused: database error"),
        "{answers:?}"
    );
    for (n, answer) in answers.iter().enumerate().filter(|(n, _)| *n != 2) {
        assert_eq!(answer, "created, mail true", "registration {n}");
    }
    // Five registrations, each with its entry, code, mail and event; none of the one
    // that failed, and no row twice.
    assert_eq!(app.count("entries").await, 5);
    assert_eq!(app.count("entries where code_hash is not null").await, 5);
    assert_eq!(app.count("outbox").await, 5);
    let failed_entry = format!("entries where id = '{failing}'");
    assert_eq!(app.count(&failed_entry).await, 0);
    assert_eq!(app.count("audit_events").await, events_before + 5);
    let check = app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);

    // Once the disk is healed, the same person can register.
    app.heal_inserts("outbox").await;
    let answers = store_items(&app, &items[2..3], Path::SetBased).await;
    assert_eq!(answers, ["created, mail true"]);
}

#[tokio::test]
async fn the_audit_head_moves_over_recorded_events_only() {
    let app = TestApp::spawn().await;
    let window = app.open_window().await;
    let items: Vec<Item> = (50..54)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    let before = app.store().audit_head().await.unwrap().count;
    store_items(&app, &items, Path::SetBased).await;
    let after = app.store().audit_head().await.unwrap().count;
    assert_eq!(after, before + 4);
    // A jump over events that do not exist is refused, even by several at once.
    let error = app
        .execute("update audit_head set count = count + 3")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("audit_head"), "{error}");
}

/// The answers and the rows of `batch`, stored after applicants 1 and 2, with `path`.
async fn after_two_stored(path: Path, batch: &[(usize, Value)]) -> (Vec<String>, TestApp) {
    let app = TestApp::spawn().await;
    let window = app.open_window().await;
    let before = [
        item(1, &window, &applicant(1), None),
        item(2, &window, &applicant(2), None),
    ];
    store_items(&app, &before, Path::Savepoints).await;
    let items: Vec<Item> = batch
        .iter()
        .map(|(n, body)| item(*n, &window, body, None))
        .collect();
    let answers = store_items(&app, &items, path).await;
    (answers, app)
}

/// The paths that store a batch with the set-based decisions on this database.
fn set_paths(app: &TestApp) -> Vec<Path> {
    let mut paths = vec![Path::SetBased, Path::InTransaction, Path::Batch];
    if app.store().direct_writer().is_some() {
        paths.push(Path::Direct);
    }
    paths
}

/// Stores `batch` after applicants 1 and 2 one by one, checks the answers are
/// `expected`, then with every set-based path: the same answers, the same rows, and a
/// chain that verifies.
async fn assert_set_paths_answer_as_one_by_one(batch: &[(usize, Value)], expected: &[&str]) {
    let (one_by_one, one_app) = after_two_stored(Path::Savepoints, batch).await;
    assert_eq!(one_by_one, expected);
    for path in set_paths(&one_app) {
        let (answers, app) = after_two_stored(path, batch).await;
        assert_eq!(answers, one_by_one);
        assert_eq!(stored(&app).await, stored(&one_app).await);
        assert_eq!(app.count("entries").await, 4);
        // a refused registration's mail is not queued
        assert_eq!(app.count("outbox").await, one_app.count("outbox").await);
        let check = app.store().verify_audit_log().await.unwrap();
        assert!(check.problem.is_none(), "{:?}", check.problem);
        assert_eq!(check.checked, check.stored_head.count);
    }
}

#[tokio::test]
async fn duplicates_of_stored_entries_are_refused_by_the_entries_insert() {
    // a batch whose duplicates of stored entries share no key with the rest
    let batch = [
        (30, applicant(30)),
        (31, sharing(31, 1, "person")),
        // the e-mail address and the phone of entry 2: e-mail comes first
        (32, sharing_two(32, 2)),
        (33, applicant(33)),
    ];
    let expected = [
        "created, mail true",
        "duplicate person",
        "duplicate email",
        "created, mail true",
    ];
    assert_set_paths_answer_as_one_by_one(&batch, &expected).await;
}

#[tokio::test]
async fn a_registration_after_a_refused_duplicate_that_shares_its_key_is_decided_again() {
    // 40 holds the document of stored entry 1 and is refused; 41 has the e-mail
    // address of 40, which no stored entry holds, so 41 is stored. Decided against
    // each other only, 41 looked like a duplicate of 40.
    let mut shares_with_40 = applicant(41);
    shares_with_40["email"] = applicant(40)["email"].clone();
    let batch = [
        (40, sharing(40, 1, "document")),
        (41, shares_with_40),
        (42, applicant(42)),
    ];
    let expected = [
        "duplicate document",
        "created, mail true",
        "created, mail true",
    ];
    assert_set_paths_answer_as_one_by_one(&batch, &expected).await;
}

#[tokio::test]
async fn a_registration_mail_is_queued_claimed_for_its_lease_on_every_path() {
    let probe = TestApp::spawn().await;
    let mut paths = vec![Path::Savepoints];
    paths.extend(set_paths(&probe));
    for path in paths {
        let name = format!("{path:?}");
        let batch = [(30, applicant(30)), (31, applicant(31))];
        let (answers, app) = after_two_stored(path, &batch).await;
        assert_eq!(answers, ["created, mail true", "created, mail true"]);
        // Stored without a request, so no instance holds them to send from memory:
        // another sender leaves them alone for the lease, then sends each once.
        let dir = tempfile::tempdir().unwrap();
        let files = mailer::build(
            &MailTransport::File(dir.path().to_owned()),
            "tirage <no-reply@example.org>",
        )
        .unwrap();
        let sender = OutboxSender::new(app.store().clone(), files, Arc::new(app.clock.clone()));
        assert_eq!(
            sender.deliver_due().await,
            0,
            "{name}: claimed for the lease"
        );
        app.clock.advance(MAIL_LEASE);
        assert_eq!(sender.deliver_due().await, 4, "{name}");
        assert_eq!(sender.deliver_due().await, 0, "{name}: nothing sent twice");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "{name}");
    }
}

/// PostgreSQL: the rows a batch leaves, each as the database writes a row as text, the
/// random window ids named by their role and the outbox's ids (a sequence's, in no
/// promised order within a batch) left out.
async fn pg_rows(app: &TestApp) -> Vec<String> {
    let Db::Postgres(pool) = app.store().db() else {
        unreachable!("PostgreSQL's rows")
    };
    let windows: Vec<(String, String)> = sqlx::query_as("select id, state from windows")
        .fetch_all(pool)
        .await
        .unwrap();
    let queries = [
        "select t::text from (select * from entries order by id) t",
        "select t::text from (select kind, recipient, subject, body, created_at,
             next_attempt_at, sent_at from outbox) t order by 1",
        "select t::text from (select scope, key, fingerprint, status, response, created_at,
             expires_at from idempotency_keys order by scope, key) t",
        "select t::text from (select at, actor, action, window_id, entry_id, detail,
             length(prev_hash), length(hash) from audit_events
             where action = 'entry.registered' order by seq) t",
    ];
    let mut rows = Vec::new();
    for sql in queries {
        let table: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
        rows.extend(table.into_iter().map(|row| {
            windows
                .iter()
                .fold(row, |row, (id, state)| row.replace(id.as_str(), state))
        }));
    }
    rows
}

#[tokio::test]
async fn a_batch_stored_at_once_gets_the_answers_and_the_rows_of_the_one_by_one_path() {
    let (at_once, app) = mixed_batch_of(Path::SetBased, false).await;
    if app.store().is_sqlite() {
        // nothing is stored at once on SQLite
        let window = app.open_window().await;
        let items = [item(90, &window, &applicant(90), None)];
        let error = try_store_items(&app, &items, Path::AtOnce)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not stored at once"), "{error}");
        return;
    }
    let (direct, direct_app) = mixed_batch_of(Path::AtOnce, false).await;
    let (one_by_one, one_app) = mixed_batch_of(Path::Savepoints, false).await;
    assert_eq!(one_by_one.len(), 13);
    assert_eq!(at_once, one_by_one);
    assert_eq!(direct, one_by_one);
    let one_rows = pg_rows(&one_app).await;
    assert!(one_rows.len() > 15, "{one_rows:#?}");
    for app in [&app, &direct_app] {
        assert_eq!(stored(app).await, stored(&one_app).await);
        assert_eq!(pg_rows(app).await, one_rows);
        let check = app.store().verify_audit_log().await.unwrap();
        assert!(check.problem.is_none(), "{:?}", check.problem);
        assert_eq!(check.checked, check.stored_head.count);
    }

    // A duplicate of an entry stored before the batch fails the statement whole: the
    // batch is not stored at once, nothing of it is, and the transaction answers it.
    let (_, app) = mixed_batch_of(Path::Savepoints, true).await;
    let window = app.open_window().await;
    let rows_before = stored(&app).await;
    let batch = [
        item(30, &window, &applicant(30), None),
        item(31, &window, &sharing(31, 30, "phone"), None),
    ];
    store_items(&app, &batch[..1], Path::AtOnce).await;
    let error = try_store_items(&app, &batch[1..], Path::AtOnce)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not stored at once"), "{error}");
    let mut expected = rows_before.clone();
    for (table, count) in &mut expected {
        // applicant 30 and his event
        if [
            "entries",
            "entries where code_hash is not null",
            "outbox",
            "audit_events",
        ]
        .contains(&table.as_str())
        {
            *count += 1;
        }
    }
    assert_eq!(stored(&app).await, expected);
    assert_eq!(
        store_items(&app, &batch[1..], Path::SetBased).await,
        ["duplicate phone"]
    );
}

#[tokio::test]
async fn a_batch_stored_at_once_fails_whole_when_the_audit_chain_moved_after_its_reads() {
    let app = Arc::new(TestApp::spawn().await);
    let Db::Postgres(pool) = app.store().db().clone() else {
        return; // nothing is stored at once on SQLite
    };
    let window = app.open_window().await;
    let head = app.store().audit_head().await.unwrap();
    let rows_before = stored(&app).await;

    // Another writer holds the write lock and has appended an event, not committed.
    let mut other = pool.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(tirage::store::WRITE_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    let event = tirage::attest::chain::chain_next(
        &head,
        t0(),
        "staff:concurrent",
        "window.edited",
        Some(window.as_str()),
        None,
        serde_json::json!({ "by": "another instance" }),
    )
    .unwrap();
    sqlx::query(
        "insert into audit_events
             (seq, at, actor, action, window_id, entry_id, detail, prev_hash, hash)
         values ($1, $2, $3, $4, $5, null, $6, $7, $8)",
    )
    .bind(event.seq as i64)
    .bind(event.at)
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&window)
    .bind(tirage::attest::canonical_json(&event.detail))
    .bind(&event.prev_hash)
    .bind(&event.hash)
    .execute(&mut *other)
    .await
    .unwrap();
    sqlx::query("update audit_head set count = $1, hash = $2, at = $3 where id = 1")
        .bind(event.seq as i64)
        .bind(&event.hash)
        .bind(event.at)
        .execute(&mut *other)
        .await
        .unwrap();

    // The batch reads the head before that event, decides, and waits for the lock.
    let writer = {
        let (app, window) = (Arc::clone(&app), window.clone());
        tokio::spawn(async move {
            let items: Vec<Item> = (80..84)
                .map(|n| item(n as usize, &window, &applicant(n), None))
                .collect();
            try_store_items(&app, &items, Path::AtOnce).await
        })
    };
    let mut waiting = 0;
    for _ in 0..200 {
        waiting = sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 1, "the batch did not wait for the write lock");
    other.commit().await.unwrap();

    // Its events would take the place of the one committed meanwhile: nothing stored.
    let error = writer.await.unwrap().unwrap_err();
    assert!(error.to_string().contains("not stored at once"), "{error}");
    let mut expected = rows_before.clone();
    expected[4].1 += 1; // the other writer's event
    assert_eq!(stored(&app).await, expected);
    // Stored again, in a transaction, after that event: the chain verifies.
    let items: Vec<Item> = (80..84)
        .map(|n| item(n as usize, &window, &applicant(n), None))
        .collect();
    let answers = store_items(&app, &items, Path::SetBased).await;
    assert_eq!(answers, vec!["created, mail true"; 4]);
    let check = app.store().verify_audit_log().await.unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
    assert_eq!(check.checked, head.count + 5);
}
