//! Mail delivery to a real SMTP server: Python's aiosmtpd, started by the test, storing
//! what it receives in a Maildir. The verification code travels through it and works.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tirage::jobs::mailer::MailTransport;

use crate::helpers::{TestApp, applicant, code_in};

/// Stops the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aiosmtpd_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success())
}

fn start_server(maildir: &Path) -> Option<(Server, u16)> {
    if !aiosmtpd_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "aiosmtpd is missing: .ci/run installs it with pip"
        );
        eprintln!("skipped: the Python package aiosmtpd is not installed (pip install aiosmtpd)");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((Server(child), port))
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the SMTP server did not start on port {port}");
}

/// The messages in a Maildir's `new` folder.
async fn delivered(maildir: &Path, n: usize) -> Vec<String> {
    for _ in 0..400 {
        let messages: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        if messages.len() >= n {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} message(s) in {}", maildir.display());
}

#[tokio::test]
async fn the_verification_code_arrives_through_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let Some((_server, port)) = start_server(&maildir) else {
        return;
    };
    wait_for_port(port).await;
    let app = TestApp::spawn_with(|config| {
        config.mail = MailTransport::Smtp(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let window_id = app.open_window().await;

    let mut body = applicant(7);
    body["language"] = json!("en");
    let receipt = app.register(&window_id, &body).await;
    let receipt = receipt.assert_status(201).clone();

    let messages = delivered(&maildir, 1).await;
    let mail = &messages[0];
    assert!(mail.contains("To: aminata7@example.org"), "{mail}");
    assert!(mail.contains("Subject: Your verification code"), "{mail}");
    let code = code_in(mail);
    let entry_id = receipt["entry_id"].as_str().unwrap();
    let verified = app
        .post(
            &format!("/api/v1/entries/{entry_id}/verify"),
            receipt["access_code"].as_str(),
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(verified.assert_status(200)["status"], "eligible");
    // sent, so the outbox holds nothing more to send (it marks the mail sent once the
    // server has accepted it, a moment after the server stored it)
    let mut pending = app.store().pending_mails().await.unwrap();
    for _ in 0..200 {
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        pending = app.store().pending_mails().await.unwrap();
    }
    assert_eq!(pending, 0);
}
