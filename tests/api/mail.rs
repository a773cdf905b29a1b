//! Mail transports and the outbox: SMTP delivery, and nothing lost when sending fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tirage::jobs::clock::Clock;
use tirage::jobs::mailer::{self, MailTransport};
use tirage::jobs::outbox::OutboxSender;
use tirage::store::Db;
use tirage::store::outbox::claim_due_statement;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, applicant, code_in};

/// A minimal SMTP server that accepts everything and keeps each message's data.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&messages);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            store.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 OK queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 end with .\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, messages)
}

#[tokio::test]
async fn codes_are_sent_over_smtp() {
    let (port, messages) = smtp_sink().await;
    let app = TestApp::spawn_with(|config| {
        config.mail = MailTransport::Smtp(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let window_id = app.open_window().await;
    let receipt = app.register(&window_id, &applicant(1)).await.json;

    let mut message = None;
    for _ in 0..250 {
        if let Some(m) = messages.lock().unwrap().first() {
            message = Some(m.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message = message.expect("the SMTP server received the mail");
    assert!(message.contains("To: aminata1@example.org"), "{message}");
    let code = code_in(&message);
    let entry = format!(
        "/api/v1/entries/{}/verify",
        receipt["entry_id"].as_str().unwrap()
    );
    let verified = app
        .post(
            &entry,
            receipt["access_code"].as_str(),
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(verified.assert_status(200)["status"], "eligible");
}

#[tokio::test]
async fn a_mail_that_fails_is_kept_and_sent_later() {
    // An SMTP port where nothing listens.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|config| {
        config.mail = MailTransport::Smtp(format!("smtp://127.0.0.1:{closed}"));
    })
    .await;
    let window_id = app.open_window().await;
    let receipt = app.register(&window_id, &applicant(1)).await;
    let receipt = receipt.assert_status(201).clone();

    // The registration is acknowledged; its mail waits in the outbox with the error.
    let mut failed = false;
    for _ in 0..250 {
        let row: (i64, Option<String>, Option<chrono::DateTime<chrono::Utc>>) =
            with_pool!(app, |pool| {
                sqlx::query_as("select attempts, last_error, sent_at from outbox")
                    .fetch_one(pool)
                    .await
                    .unwrap()
            });
        if row.0 == 1 {
            assert!(row.1.is_some() && row.2.is_none(), "{row:?}");
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failed, "the first attempt was recorded as failed");
    assert_eq!(app.store().pending_mails().await.unwrap(), 1);

    // Later, with a working transport, the outbox delivers it.
    let dir = tempfile::tempdir().unwrap();
    let working = mailer::build(
        &MailTransport::File(dir.path().to_owned()),
        "tirage <no-reply@example.org>",
    )
    .unwrap();
    let sender = OutboxSender::new(app.store().clone(), working, Arc::new(app.clock.clone()));
    assert_eq!(sender.deliver_due().await, 0, "not before its retry time");
    app.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(sender.deliver_due().await, 1);
    assert_eq!(app.store().pending_mails().await.unwrap(), 0);

    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let code = code_in(&std::fs::read_to_string(file).unwrap());
    let entry = format!(
        "/api/v1/entries/{}/verify",
        receipt["entry_id"].as_str().unwrap()
    );
    let verified = app
        .post(
            &entry,
            receipt["access_code"].as_str(),
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(verified.assert_status(200)["status"], "eligible");
}

/// A mailer that records the id of every mail it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<i64>>);

impl mailer::Mailer for Recorder {
    fn send<'a>(&'a self, mail: &'a tirage::store::OutboxMail) -> mailer::SendFuture<'a> {
        self.0.lock().unwrap().push(mail.id);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_registrations_sends_each_mail_exactly_once() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;

    // Registrations arriving together: the outbox is drained in batches while more
    // mails keep being queued.
    let n: u32 = 120;
    app.register_applicants_at_once(&window_id, n).await;

    // Each mail is recorded as sent once: a second sending would count a second
    // attempt.
    let mails = app.mails(n as usize).await;
    let mut recipients: Vec<&str> = mails
        .iter()
        .map(|mail| {
            mail.lines()
                .find_map(|line| line.strip_prefix("To: "))
                .expect("a recipient")
        })
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(recipients.len(), n as usize, "each applicant got a mail");
    for _ in 0..250 {
        if app.store().pending_mails().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.store().pending_mails().await.unwrap(), 0);
    assert_eq!(
        app.count(
            "outbox where sent_at is not null and attempts = 1 and recipient = '' and body = ''"
        )
        .await,
        i64::from(n),
        "every mail sent once, recorded as sent and erased"
    );
}

#[tokio::test]
async fn mails_claimed_by_a_sender_that_died_are_sent_after_its_lease() {
    // Mails that could not be sent at once (the relay is down), then claimed by a
    // sender that stopped before recording anything: the state a crash leaves.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|config| {
        config.mail = MailTransport::Smtp(format!("smtp://127.0.0.1:{closed}"));
    })
    .await;
    let window_id = app.open_window().await;
    let n: u32 = 60;
    app.register_applicants(&window_id, n).await;
    app.wait_for_rows("outbox where attempts = 1", i64::from(n))
        .await;
    app.clock.advance(chrono::Duration::minutes(2));
    let now = app.clock.now();
    let claimed = app
        .store()
        .claim_due_mails(now, now + chrono::Duration::minutes(2), 500)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n as usize, "one claim takes them all");

    // After a restart, a new sender leaves them alone during the lease, then sends
    // each once.
    let recorder = Arc::new(Recorder::default());
    let sender = OutboxSender::new(
        app.store().clone(),
        recorder.clone(),
        Arc::new(app.clock.clone()),
    );
    assert_eq!(
        sender.deliver_due().await,
        0,
        "still leased to the dead sender"
    );
    app.clock.advance(chrono::Duration::minutes(3));
    assert_eq!(sender.deliver_due().await, n as usize);
    assert_eq!(sender.deliver_due().await, 0, "nothing sent twice");
    assert_eq!(app.store().pending_mails().await.unwrap(), 0);
    let mut sent = recorder.0.lock().unwrap().clone();
    let mut expected: Vec<i64> = claimed.iter().map(|mail| mail.id).collect();
    sent.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sent, expected, "every claimed mail sent, each once");
}

#[tokio::test]
async fn a_claim_passes_over_mails_another_transaction_holds() {
    let app = TestApp::spawn().await;
    let tirage::store::Db::Postgres(pool) = app.store().db() else {
        // SQLite has no row locks: its writers take turns.
        return;
    };
    let window_id = app.open_window().await;
    app.register_applicants(&window_id, 3).await;
    app.wait_for_rows("outbox where sent_at is not null", 3)
        .await;
    // Unsent again, due in a minute (as after a relay failure): only this test's
    // claims, made a minute later, find them due.
    let now = app.clock.now() + chrono::Duration::minutes(1);
    let unsent = sqlx::query("update outbox set sent_at = null, next_attempt_at = $1")
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(unsent.rows_affected(), 3);
    let held: i64 = sqlx::query_scalar("select min(id) from outbox")
        .fetch_one(pool)
        .await
        .unwrap();
    // Another transaction (a mark in progress) holds the first mail's row.
    let mut other = pool.begin().await.unwrap();
    sqlx::query("update outbox set attempts = attempts where id = $1")
        .bind(held)
        .execute(&mut *other)
        .await
        .unwrap();

    let claimed = tokio::time::timeout(
        Duration::from_secs(10),
        app.store()
            .claim_due_mails(now, now + chrono::Duration::minutes(2), 500),
    )
    .await
    .expect("the claim does not wait for the held row")
    .unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|mail| mail.id).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&held));

    // Once the other transaction ends, the held mail is claimed by the next claim.
    other.rollback().await.unwrap();
    let next = app
        .store()
        .claim_due_mails(now, now + chrono::Duration::minutes(2), 500)
        .await
        .unwrap();
    assert_eq!(next.iter().map(|mail| mail.id).collect::<Vec<_>>(), [held]);
}

#[tokio::test]
async fn a_claim_looks_up_the_mails_it_takes_instead_of_reading_the_whole_outbox() {
    let app = TestApp::spawn().await;
    // Due a minute from now (as after a relay failure): only this test's claims, made
    // a minute later, find them due.
    let now = app.clock.now() + chrono::Duration::minutes(1);
    let lease_until = now + chrono::Duration::minutes(2);
    let statement = claim_due_statement(matches!(app.store().db(), Db::Postgres(_)));
    // The plan of the claim over 20,000 due mails, one line per step.
    let plan: Vec<String> = match app.store().db() {
        Db::Postgres(pool) => {
            sqlx::query(
                "insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at)
                 select 'verification_code', 'a@example.org', 'Code', repeat('x', 300), $1, $1
                 from generate_series(1, 20000)",
            )
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("analyze outbox").execute(pool).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "explain (costs off) {statement}"
            )))
            .bind(now)
            .bind(lease_until)
            .bind(500_i64)
            .fetch_all(pool)
            .await
            .unwrap()
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000)
                 insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at)
                 select 'verification_code', 'a@example.org', 'Code', printf('%300s', ''), $1, $1
                 from n",
            )
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("analyze").execute(pool).await.unwrap();
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "explain query plan {statement}"
            )))
            .bind(now)
            .bind(lease_until)
            .bind(500_i64)
            .fetch_all(pool)
            .await
            .unwrap();
            rows.into_iter().map(|(_, _, _, detail)| detail).collect()
        }
    };
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan on outbox") && !plan.contains("SCAN outbox"),
        "a claim must not read the whole outbox:\n{plan}"
    );
    assert!(
        plan.contains("Index Scan using outbox_pkey on outbox")
            || plan.contains("SEARCH outbox USING INTEGER PRIMARY KEY"),
        "the claimed mails are looked up by id:\n{plan}"
    );
    assert!(
        !plan.contains("Sort") && !plan.contains("TEMP B-TREE"),
        "the due mails are read in the claim's order, not all read and sorted:\n{plan}"
    );

    // And the claim takes what it should: 500 due mails, then 500 others.
    let first = app
        .store()
        .claim_due_mails(now, lease_until, 500)
        .await
        .unwrap();
    let second = app
        .store()
        .claim_due_mails(now, lease_until, 500)
        .await
        .unwrap();
    let mut ids: Vec<i64> = first.iter().chain(&second).map(|mail| mail.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((first.len(), second.len(), ids.len()), (500, 500, 1000));
}
