//! `tirage serve --log-format json` (or `TIRAGE_LOG_FORMAT=json`) logs one JSON object per
//! line, requests with their route template, and nothing personal: the id and access
//! code sent in a request appear in no log line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The server, stopped when the test ends, even when it fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tirage serve` on a free port with JSON logs at `info` and the variables
/// `env`; the lines of its standard error arrive on the receiver.
fn serve(database: &str, env: &[(&str, &str)]) -> (Server, mpsc::Receiver<String>) {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_tirage"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .env("TIRAGE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = server.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    (server, lines)
}

#[test]
fn json_logs_are_one_object_per_line_without_personal_data() {
    // Arrange: the real binary, on a free port, with JSON logs chosen by the variable
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("logs.db").display());
    let (server, lines) = serve(&database, &[]);
    let next = || {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a log line");
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        (line, value)
    };
    let address = loop {
        let (_, value) = next();
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{value}"
        );
        if value["message"] == "listening" {
            break value["address"].as_str().unwrap().to_owned();
        }
    };

    // Act: an applicant's request, with an entry id and an access code
    let entry_id = "0123456789abcdef0123456789abcdef";
    let access = "SECR-ETAC-CESS-CODE-0000-1111";
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /api/v1/entries/{entry_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();

    // Assert: the request is logged, with its template, in JSON, and nothing private
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let request_line = loop {
        let (line, value) = next();
        assert!(!line.contains(entry_id) && !line.contains(access), "{line}");
        if line.contains("/api/v1/entries/{entry_id}") {
            break value;
        }
    };
    drop(server);
    let text = request_line.to_string();
    assert!(
        text.contains(r#""http.route":"/api/v1/entries/{entry_id}""#),
        "{text}"
    );
    assert!(text.contains("404"), "{text}");
}

#[test]
fn with_log_space_asked_for_the_sqlite_log_is_made_that_long_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("space.db");
    let database = format!("sqlite://{}?mode=rwc", file.display());
    let (server, lines) = serve(&database, &[("TIRAGE_SQLITE_LOG_RESERVE_MIB", "24")]);
    let ready = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a log line");
        let value: Value = serde_json::from_str(&line).unwrap();
        if value["message"] == "the log's space is ready" {
            break value;
        }
    };
    assert_eq!(ready["log_bytes"], 24 << 20, "{ready}");
    let log = dir.path().join("space.db-wal");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 24 << 20);
    drop(server);
}
