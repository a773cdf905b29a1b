//! A fresh application per test: a fresh database migrated by the production code,
//! mails written as files, and a clock the test sets.
//!
//! The database is a temporary SQLite file, or, when `TIRAGE_TEST_POSTGRES_URL` names a
//! PostgreSQL server (`postgres://user@host:port/postgres`), a new database created on
//! that server for the test. `scripts/test.sh` runs this suite once for each engine.

use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::http::limits::RateLimits;
use tirage::jobs::clock::ManualClock;
use tirage::jobs::mailer::MailTransport;
use tirage::store::{Db, Store};
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef-0123456789";

/// The time every test starts at: inside the registration period of [`window_body`].
pub fn t0() -> DateTime<Utc> {
    at("2026-12-05T10:00:00Z")
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

static TRACING: Once = Once::new();

/// Logs only when `TEST_LOG` is set.
fn init_logs() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
                ))
                .with_test_writer()
                .try_init();
        }
    });
}

pub struct TestApp {
    pub app: Application,
    pub router: Router,
    pub clock: ManualClock,
    pub mail_dir: PathBuf,
    /// Holds the mail folder (and the SQLite file): deleted when the test ends.
    #[expect(dead_code, reason = "kept for its drop, which deletes the folder")]
    pub dir: TempDir,
    /// The database URL, to start the service again on the same data.
    pub url: String,
}

/// The PostgreSQL server the suite runs against, if one is configured.
pub fn postgres_server() -> Option<String> {
    std::env::var("TIRAGE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A new, empty database for one test: a SQLite file in `dir`, or a database created on
/// the configured PostgreSQL server.
pub async fn new_database_url(dir: &std::path::Path) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    let Some(server) = postgres_server() else {
        return format!("sqlite://{}?mode=rwc", dir.join("tirage.db").display());
    };
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("tirage_test_{}_{n}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, query) = server.split_once('?').unwrap_or((server.as_str(), ""));
    let base = base.rsplit_once('/').map_or(base, |(host, _)| host);
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

/// Runs `$body` with `$pool` bound to the test database's pool, whatever its engine.
macro_rules! with_pool {
    ($app:expr, |$pool:ident| $body:expr) => {
        match $app.store().db() {
            tirage::store::Db::Sqlite($pool) => $body,
            tirage::store::Db::Postgres($pool) => $body,
        }
    };
}

/// An answer, with its body parsed as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
    /// The body's bytes as received (compressed ones are not text).
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a problem document of this status and type.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, kind: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(
            self.json["type"],
            format!("/problems/{kind}"),
            "{}",
            self.text
        );
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string() && self.json["detail"].is_string());
        &self.json
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.json
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Builds an app after letting the test adjust its settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeArgs)) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let url = new_database_url(dir.path()).await;
        let mut config = ServeArgs::new(url.clone(), "127.0.0.1:0".parse().unwrap());
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.mail = MailTransport::File(mail_dir.clone());
        // tests make many requests from one in-process address; the rate limit tests
        // set their own budgets
        config.set_rate_limits(RateLimits::OFF);
        adjust(&mut config);
        let clock = ManualClock::new(t0());
        let app = Application::build_with_clock(config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let router = app.router();
        Self {
            app,
            router,
            clock,
            mail_dir,
            dir,
            url,
        }
    }

    pub fn store(&self) -> &Store {
        &self.app.state().store
    }

    /// Sends a request through the real router, in process.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        self.send_request(request).await
    }

    pub async fn send_request(&self, request: Request<Body>) -> Answer {
        call(self.router.clone(), request).await
    }

    pub async fn get(&self, uri: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::GET, uri, bearer, None, &[]).await
    }

    pub async fn post(&self, uri: &str, bearer: Option<&str>, body: &Value) -> Answer {
        self.send(Method::POST, uri, bearer, Some(body), &[]).await
    }

    pub async fn post_empty(&self, uri: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::POST, uri, bearer, None, &[]).await
    }

    pub async fn patch(&self, uri: &str, bearer: Option<&str>, body: &Value) -> Answer {
        self.send(Method::PATCH, uri, bearer, Some(body), &[]).await
    }

    /// Creates a draft window as admin; returns its id.
    pub async fn create_window(&self, body: &Value) -> String {
        let answer = self.post("/api/v1/windows", Some(ADMIN_TOKEN), body).await;
        answer.assert_status(201)["id"].as_str().unwrap().to_owned()
    }

    /// Creates and opens the standard window; returns its id.
    pub async fn open_window(&self) -> String {
        self.open_window_with(&window_body()).await
    }

    /// Creates the window `body` describes and opens it; returns its id.
    pub async fn open_window_with(&self, body: &Value) -> String {
        let id = self.create_window(body).await;
        self.post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
            .await
            .assert_status(200);
        id
    }

    pub async fn register(&self, window_id: &str, body: &Value) -> Answer {
        self.post(&format!("/api/v1/windows/{window_id}/entries"), None, body)
            .await
    }

    /// Registers applicants 1 to `n` ([`applicant`]) online, each answered `201`.
    pub async fn register_applicants(&self, window_id: &str, n: u32) {
        for i in 1..=n {
            self.register(window_id, &applicant(i))
                .await
                .assert_status(201);
        }
    }

    /// Registers applicants 1 to `n` online all at once, each request a task of its
    /// own (so that the registrar gathers them in batches), each answered `201`.
    pub async fn register_applicants_at_once(&self, window_id: &str, n: u32) {
        self.register_applicants_at_once_from(window_id, 1, n).await;
    }

    /// [`TestApp::register_applicants_at_once`] for `applicant(first)` and the `n - 1`
    /// after it.
    pub async fn register_applicants_at_once_from(&self, window_id: &str, first: u32, n: u32) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in first..first + n {
            let request = post_request(
                &format!("/api/v1/windows/{window_id}/entries"),
                &applicant(i),
            );
            tasks.spawn(call(self.router.clone(), request));
        }
        while let Some(answer) = tasks.join_next().await {
            answer.unwrap().assert_status(201);
        }
    }

    /// Registers `body` at the counter (as admin); returns (entry id, access code).
    pub async fn counter_entry(&self, window_id: &str, body: &Value) -> (String, String) {
        let answer = self
            .post(
                &format!("/api/v1/windows/{window_id}/counter-entries"),
                Some(ADMIN_TOKEN),
                body,
            )
            .await;
        let receipt = answer.assert_status(201);
        (
            receipt["entry_id"].as_str().unwrap().to_owned(),
            receipt["access_code"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a staff token with this role; returns the token.
    pub async fn token(&self, role: &str) -> String {
        let body = json!({ "name": format!("test {role}"), "role": role });
        let answer = self
            .post("/api/v1/staff-tokens", Some(ADMIN_TOKEN), &body)
            .await;
        answer.assert_status(201)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Closes and then draws a window (as an administrator), both answered `200`.
    pub async fn close_and_draw(&self, window_id: &str) {
        for step in ["close", "draw"] {
            self.post_empty(
                &format!("/api/v1/windows/{window_id}/{step}"),
                Some(ADMIN_TOKEN),
            )
            .await
            .assert_status(200);
        }
    }

    /// Finishes the follow-up of a window's draw (waiting-list rows, slot holders,
    /// result mails) before returning. The draw starts it on its own task and answers
    /// without waiting; running it here as well is safe (each step moves a cursor in
    /// its own transaction, so it happens once) and makes a test wait for its end
    /// deterministically instead of sleeping.
    pub async fn finish_draw_followup(&self, window_id: &str) {
        let now = tirage::jobs::clock::Clock::now(&self.clock);
        tirage::jobs::offers::after_draw(self.store(), window_id, now).await;
    }

    /// Rows in a table, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("select count(*) from {table}");
        with_pool!(self, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap())
    }

    /// Waits (up to five seconds) until `table` has `n` rows, for work that goes on
    /// in the background.
    pub async fn wait_for_rows(&self, table: &str, n: i64) {
        for _ in 0..250 {
            if self.count(table).await == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{table} never had {n} row(s)");
    }

    /// Runs raw SQL on the database, around the service (as an intruder, or a broken
    /// disk, would).
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sql.to_owned();
        with_pool!(self, |pool| sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
    }

    /// Makes every insert into `table` whose new row matches `condition` (SQL over the
    /// row's columns prefixed with `new.`) fail with `message`, as a full disk would;
    /// [`TestApp::heal_inserts`] undoes it.
    pub async fn fail_inserts(&self, table: &str, condition: &str, message: &str) {
        let sql = match self.store().db() {
            Db::Sqlite(_) => vec![format!(
                "create trigger fail_{table} before insert on {table} when {condition}
                 begin select raise(abort, '{message}'); end"
            )],
            Db::Postgres(_) => vec![
                format!(
                    "create function fail_{table}() returns trigger language plpgsql as $$
                     begin
                         if {condition} then raise exception '{message}'; end if;
                         return new;
                     end $$"
                ),
                format!(
                    "create trigger fail_{table} before insert on {table}
                     for each row execute function fail_{table}()"
                ),
            ],
        };
        for statement in sql {
            self.execute(&statement).await.unwrap();
        }
    }

    /// Drops a trigger of `table`, as someone with direct access to the database could.
    pub async fn drop_trigger(&self, table: &str, trigger: &str) {
        let sql = match self.store().db() {
            Db::Sqlite(_) => format!("drop trigger {trigger}"),
            Db::Postgres(_) => format!("drop trigger {trigger} on {table}"),
        };
        self.execute(&sql).await.unwrap();
    }

    /// Undoes [`TestApp::fail_inserts`].
    pub async fn heal_inserts(&self, table: &str) {
        match self.store().db() {
            Db::Sqlite(_) => self.execute(&format!("drop trigger fail_{table}")).await,
            Db::Postgres(_) => {
                self.execute(&format!("drop function fail_{table}() cascade"))
                    .await
            }
        }
        .unwrap();
    }

    /// Waits until at least `n` mails were written; returns them all, oldest first.
    pub async fn mails(&self, n: usize) -> Vec<String> {
        for _ in 0..250 {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mail_dir)
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                        .collect()
                })
                .unwrap_or_default();
            if names.len() >= n {
                names.sort();
                return names
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} mail(s) in {}", self.mail_dir.display());
    }

    /// The verification code in the latest of `n` mails.
    pub async fn code_from_mail(&self, n: usize) -> String {
        let mails = self.mails(n).await;
        code_in(mails.last().unwrap())
    }
}

/// Sends a request through a router, in process.
pub async fn call(router: Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
        bytes: bytes.to_vec(),
    }
}

/// A JSON POST request.
pub fn post_request(uri: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Decodes a quoted-printable mail body.
pub fn quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let mut bytes = Vec::new();
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'='
            && i + 2 < raw.len()
            && let Ok(byte) =
                u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            bytes.push(byte);
            i += 3;
            continue;
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8(bytes).unwrap()
}

/// The subject and the body of a mail written by the `file:` mailer, decoded: the
/// subject from its RFC 2047 words, the body from quoted-printable.
pub fn decoded_mail(mail: &str) -> (String, String) {
    use base64::Engine;
    let (headers, body) = mail.split_once("\r\n\r\n").unwrap();
    let mut subject = String::new();
    let mut in_subject = false;
    for line in headers.split("\r\n") {
        if let Some(rest) = line.strip_prefix("Subject: ") {
            in_subject = true;
            subject.push_str(rest);
        } else if in_subject && line.starts_with([' ', '\t']) {
            subject.push_str(line);
        } else {
            in_subject = false;
        }
    }
    let mut text = Vec::new();
    for word in subject.split_whitespace() {
        match word
            .strip_prefix("=?utf-8?b?")
            .and_then(|w| w.strip_suffix("?="))
        {
            Some(encoded) => text.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap(),
            ),
            None => {
                if !text.is_empty() {
                    text.push(b' ');
                }
                text.extend(word.as_bytes());
            }
        }
    }
    (
        String::from_utf8(text).unwrap(),
        quoted_printable(body).replace("\r\n", "\n"),
    )
}

/// The six-digit code standing alone on a line of a mail.
pub fn code_in(mail: &str) -> String {
    mail.lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in mail:\n{mail}"))
        .to_owned()
}

/// The minimal window of the issue, in the registration period at [`t0`].
pub fn window_body() -> Value {
    json!({
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": "2026-12-01T08:00:00Z",
        "registration_closes_at": "2026-12-15T18:00:00Z",
        "draw_at": "2026-12-16T10:00:00Z",
        "beacon": "none",
        "slots": [{"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"}]
    })
}

/// A valid registration; `n` makes the identity and contact distinct.
pub fn applicant(n: u32) -> Value {
    json!({
        "family_name": format!("Diallo{}", letters(n)),
        "given_names": "Aminata",
        "birth_date": "1991-03-14",
        "nationality": "SEN",
        "document": {"kind": "foreigner_number", "number": format!("75{:08}", n), "country": "FRA"},
        "email": format!("aminata{n}@example.org"),
        "phone": format!("+3361234{:04}", n),
        "permit_expires_on": "2027-01-20",
        "language": "fr"
    })
}

/// A few letters that differ for each `n` (names may not hold digits).
pub use tirage::demo::letters;

/// Registers and verifies an applicant; returns (entry id, access code).
pub async fn registered_and_verified(
    app: &TestApp,
    window_id: &str,
    n: u32,
    mails_so_far: usize,
) -> (String, String) {
    let receipt = app.register(window_id, &applicant(n)).await;
    let receipt = receipt.assert_status(201);
    let entry_id = receipt["entry_id"].as_str().unwrap().to_owned();
    let access = receipt["access_code"].as_str().unwrap().to_owned();
    let code = app.code_from_mail(mails_so_far + 1).await;
    app.post(
        &format!("/api/v1/entries/{entry_id}/verify"),
        Some(&access),
        &json!({ "code": code }),
    )
    .await
    .assert_status(200);
    (entry_id, access)
}
