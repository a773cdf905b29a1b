//! Mail transports and the outbox: SMTP delivery, and nothing lost when sending fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tirage::jobs::mailer::{self, MailTransport};
use tirage::jobs::outbox::OutboxSender;
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
