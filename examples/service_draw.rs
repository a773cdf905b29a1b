//! Close, draw and bundle of a national-size window inside the real service, on SQLite
//! or PostgreSQL: the same application, router, store and SQL as `tirage serve`, driven
//! in process with a clock the benchmark sets (so no scheduler races the calls).
//!
//! The entries are loaded straight into the database (as eligible, verified entries
//! with urgency weights) because registering a million people through the API is
//! what `bench/registration-load.sh` measures, not this. Then:
//!
//! 1. `POST /api/v1/windows/{id}/close`: freeze, Merkle root, commitment;
//! 2. `POST /api/v1/windows/{id}/draw`: seed, ranking, slots, bundle stored;
//! 3. `GET /api/v1/windows/{id}/bundle`: the published bytes, written to `--out`;
//! 4. waits for the draw's follow-up (waiting-list rows, slot holders, result mails),
//!    which runs on its own task after the draw answered.
//!
//! Prints one JSON object with the seconds of each step and the peak memory of the
//! process after each. `bench/service-draw.sh` runs it and compares with `sha256sum`
//! and `tirage verify` on the bundle.
//!
//! ```text
//! cargo run --release --example service_draw -- --entries 1000000 --slots 50000 \
//!     --database sqlite://bench.db?mode=rwc --out bundle.json
//! ```
//!
//! Loading a million entries takes a few minutes. To time close and draw again and
//! again on the same entries, load once with `--load-only` (prints the window's id and
//! stops), copy the database, and run each time on a fresh copy with `--window ID`,
//! which skips creating, opening and loading; `--skip-followup` does not wait for the
//! draw's follow-up.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::jobs::clock::{Clock, ManualClock};
use tirage::store::Db;
use tower::ServiceExt;

const ADMIN: &str = "benchmark-admin-token-0123456789abcdef-0123";

struct Args {
    database: String,
    entries: usize,
    slots: usize,
    out: std::path::PathBuf,
    load_only: bool,
    window: Option<String>,
    skip_followup: bool,
}

fn args() -> Args {
    let mut args = Args {
        database: "sqlite://service-draw.db?mode=rwc".into(),
        entries: 1_000_000,
        slots: 50_000,
        out: "bundle.json".into(),
        load_only: false,
        window: None,
        skip_followup: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--load-only" || flag == "--skip-followup" {
            args.load_only |= flag == "--load-only";
            args.skip_followup |= flag == "--skip-followup";
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--database" => args.database = value,
            "--entries" => args.entries = value.parse().expect("--entries: a number"),
            "--slots" => args.slots = value.parse().expect("--slots: a number"),
            "--out" => args.out = value.into(),
            "--window" => args.window = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// Peak resident memory of this process so far, in MiB.
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

async fn call(app: &Application, method: Method, uri: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap())),
        None => {
            request = request.header(header::CONTENT_LENGTH, "0");
            request.body(Body::empty())
        }
    }
    .unwrap();
    let response = app.router().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// 200 slots a day at 10 counters (20 each, 30 minutes apart from 08:00 to 18:00),
/// every day from March 2027: 50,000 slots fill 250 days.
fn slot_template(slots: usize) -> Value {
    let per_day = 200;
    let days = slots.div_ceil(per_day) as i64;
    let first = chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
    let last = first + Duration::days(days - 1);
    json!({
        "first_day": first.to_string(),
        "last_day": last.to_string(),
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "opening_hours": [{"from": "08:00", "to": "18:00"}],
        "counters": ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
        "minutes_per_appointment": 30
    })
}

/// Loads `n` eligible entries, in chunks, with weights 1 to 4 as the urgency policy
/// would give them.
async fn load_entries(app: &Application, window_id: &str, n: usize, now: DateTime<Utc>) {
    const CHUNK: usize = 1_000;
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        macro_rules! insert {
            ($pool:expr) => {{
                let mut query = sqlx::QueryBuilder::new(
                    "insert into entries (id, window_id, status, channel, access_code_hash,
                         family_name, given_names, birth_date, nationality, document_kind,
                         document_number, document_country, language, weight, document_key,
                         person_key, created_at, verified_at) ",
                );
                query.push_values(start..end, |mut row, i| {
                    let id = hex::encode(tirage::draw::sha256(format!("entry {i}").as_bytes()))
                        [..32]
                        .to_owned();
                    row.push_bind(id)
                        .push_bind(window_id)
                        .push_bind("eligible")
                        .push_bind("online")
                        .push_bind(vec![0u8; 32])
                        .push_bind("Benchmark")
                        .push_bind("Applicant")
                        .push_bind(chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap())
                        .push_bind("FRA")
                        .push_bind("passport")
                        .push_bind(format!("P{i:09}"))
                        .push_bind("FRA")
                        .push_bind("fr")
                        .push_bind(1 + (i % 4) as i64)
                        .push_bind(format!("document {i}"))
                        .push_bind(format!("person {i}"))
                        .push_bind(now)
                        .push_bind(now);
                });
                let mut tx = $pool.begin().await.unwrap();
                query.build().execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }};
        }
        match app.state().store.db() {
            Db::Sqlite(pool) => insert!(pool),
            Db::Postgres(pool) => insert!(pool),
        }
        start = end;
    }
    // A national window fills over weeks. Meanwhile, on PostgreSQL, autovacuum keeps
    // the table's visibility map up to date (migration 0028): a million rows loaded in
    // a minute and closed at once would send the close's index-only read to the table
    // for every row. On SQLite, the service's checkpoints copy the log into the
    // database: a million rows loaded in a minute leave 70 MB of log, which the draw's
    // commit would copy. Do what those weeks would have done (docs/benchmarks.md, ninth
    // round).
    match app.state().store.db() {
        Db::Postgres(pool) => {
            sqlx::query("vacuum (analyze) entries")
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Sqlite(pool) => {
            sqlx::query("pragma wal_checkpoint(truncate)")
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let clock = ManualClock::new(at("2027-01-10T09:00:00Z"));
    let mut config = ServeArgs::new(args.database.clone(), "127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(ADMIN.into());
    // a national close or draw takes longer than an ordinary request may
    config.request_timeout = 3600;
    let app = Application::build_with_clock(config, Arc::new(clock.clone()))
        .await
        .expect("the service starts");

    let (id, load_s, load_mib) = match &args.window {
        Some(id) => (id.clone(), 0.0, 0),
        None => create_and_load(&app, &clock, &args).await,
    };
    if args.load_only {
        println!("{}", json!({ "window_id": id, "load_s": load_s }));
        return;
    }

    clock.set(at("2027-01-31T18:00:01Z"));
    let started = Instant::now();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/windows/{id}/close"),
        None,
    )
    .await;
    let close_s = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let close_mib = peak_mib();

    clock.set(at("2027-02-01T10:00:01Z"));
    let started = Instant::now();
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/windows/{id}/draw"),
        None,
    )
    .await;
    let draw_s = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let draw_mib = peak_mib();
    let drawn = Instant::now();

    let started = Instant::now();
    let (status, bundle) = call(
        &app,
        Method::GET,
        &format!("/api/v1/windows/{id}/bundle"),
        None,
    )
    .await;
    let bundle_s = started.elapsed().as_secs_f64();
    assert_eq!(status, 200);
    std::fs::write(&args.out, &bundle).unwrap();

    // The follow-up of the draw (waiting list rows, slot holders, result mails) runs on
    // its own task after the draw answered: wait for it, to time it too.
    let store = &app.state().store;
    while !args.skip_followup && store.unfinished_followups().await.unwrap().contains(&id) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let followup_s = drawn.elapsed().as_secs_f64();
    let engine = app.state().store.db().engine();
    println!(
        "{}",
        json!({
            "engine": engine,
            "entries": args.entries,
            "slots": args.slots,
            "load_s": load_s, "load_peak_mib": load_mib,
            "close_s": close_s, "close_peak_mib": close_mib,
            "draw_s": draw_s, "draw_peak_mib": draw_mib,
            "get_bundle_s": bundle_s,
            "followup_s_after_draw": followup_s, "peak_mib": peak_mib(),
            "bundle_bytes": bundle.len(),
        })
    );
}

/// Creates and opens the window, and loads its entries: (window id, seconds, peak MiB).
async fn create_and_load(
    app: &Application,
    clock: &ManualClock,
    args: &Args,
) -> (String, f64, u64) {
    let window = json!({
        "site": "75", "procedure": "renewal",
        "registration_opens_at": "2027-01-10T08:00:00Z",
        "registration_closes_at": "2027-01-31T18:00:00Z",
        "draw_at": "2027-02-01T10:00:00Z",
        "beacon": "none",
        "slot_template": slot_template(args.slots),
    });
    let (status, body) = call(app, Method::POST, "/api/v1/windows", Some(window)).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created: Value = serde_json::from_slice(&body).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/windows/{id}/open"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let started = Instant::now();
    load_entries(app, &id, args.entries, clock.now()).await;
    let load_s = started.elapsed().as_secs_f64();
    (id, load_s, peak_mib())
}
