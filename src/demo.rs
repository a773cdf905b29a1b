//! `tirage demo`: a whole window, end to end, in a few seconds.
//!
//! Builds the real service on a fresh SQLite file, and drives it through its own HTTP
//! router (in process, no socket): creates a window, opens it, registers synthetic
//! applicants at the counter with varied permit expiry dates, closes, draws, and writes
//! the published bundle and a summary. Everything goes through the same code as the API;
//! only the clock is set by the demo, so that the registration period and the draw time
//! pass at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::app::Application;
use crate::config::ServeArgs;
use crate::draw::verify::check_bundle;
use crate::draw::{Bundle, sha256};
use crate::jobs::clock::ManualClock;

/// What the demo makes.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many synthetic applicants register.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub entries: u32,
    /// How many appointment slots the window has.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub slots: u32,
    /// Where to write `bundle.json`, `summary.txt` and the demo database (created if
    /// missing; an existing demo database there is replaced).
    #[arg(long, default_value = "tirage-demo", value_name = "DIR")]
    pub out: PathBuf,
}

/// What the demo produced.
#[derive(Debug)]
pub struct DemoOutcome {
    pub window_id: String,
    pub bundle_path: PathBuf,
    pub summary_path: PathBuf,
    pub summary: String,
}

/// Runs the demo; the error is a message for the person who ran it.
pub async fn run(args: &DemoArgs) -> Result<DemoOutcome, String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let db_path = args.out.join("tirage-demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db_path.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        }
    }
    let start = parse_time("2027-03-01T09:00:00Z");
    let clock = ManualClock::new(start);
    let token = crate::draw::hex(sha256(format!("demo {}", db_path.display()).as_bytes()));
    let mut config = ServeArgs::new(
        format!("sqlite://{}?mode=rwc", db_path.display()),
        "127.0.0.1:0".parse().expect("a loopback address"),
    );
    config.admin_token = Some(token.clone());
    // every synthetic applicant comes from the same (in-process) address
    config.set_rate_limits(crate::http::limits::RateLimits::OFF);
    let app = Application::build_with_clock(config, Arc::new(clock.clone()))
        .await
        .map_err(|e| format!("cannot start the service: {e}"))?;
    let router = app.router();
    let client = Client { router, token };

    let window = client
        .send(
            Method::POST,
            "/api/v1/windows",
            Some(window_body(args.slots, start)),
        )
        .await?;
    let window_id = window["id"].as_str().ok_or("no window id")?.to_owned();
    client
        .send(
            Method::POST,
            &format!("/api/v1/windows/{window_id}/open"),
            None,
        )
        .await?;
    for n in 0..args.entries {
        client
            .send(
                Method::POST,
                &format!("/api/v1/windows/{window_id}/counter-entries"),
                Some(applicant(n, start)),
            )
            .await?;
    }
    clock.set(start + Duration::days(7));
    let commitment = client
        .send(
            Method::POST,
            &format!("/api/v1/windows/{window_id}/close"),
            None,
        )
        .await?;
    clock.set(start + Duration::days(8));
    let drawn = client
        .send(
            Method::POST,
            &format!("/api/v1/windows/{window_id}/draw"),
            None,
        )
        .await?;
    let bundle_bytes = client
        .raw(Method::GET, &format!("/api/v1/windows/{window_id}/bundle"))
        .await?;
    app.state().registrar.close().await;
    app.state().store.close().await;

    let bundle: Bundle = serde_json::from_slice(&bundle_bytes)
        .map_err(|e| format!("the published bundle does not parse: {e}"))?;
    let report = check_bundle(bundle).map_err(|e| format!("the bundle is malformed: {e}"))?;
    let bundle_path = args.out.join("bundle.json");
    write(&bundle_path, &bundle_bytes)?;
    let summary = summary(&window_id, &commitment, &drawn, report.is_ok());
    let summary_path = args.out.join("summary.txt");
    write(&summary_path, summary.as_bytes())?;
    Ok(DemoOutcome {
        window_id,
        bundle_path,
        summary_path,
        summary,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a fixed, valid time")
        .with_timezone(&Utc)
}

/// Staff calls through the router, as an admin.
struct Client {
    router: Router,
    token: String,
}

impl Client {
    async fn raw_response(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let mut router = self.router.clone();
        let response = tower::Service::call(&mut router, request)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{uri}: {e}"))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }

    async fn raw(&self, method: Method, uri: &str) -> Result<Vec<u8>, String> {
        match self.raw_response(method, uri, None).await? {
            (200, bytes) => Ok(bytes),
            (status, bytes) => Err(format!(
                "{uri}: {status} {}",
                String::from_utf8_lossy(&bytes)
            )),
        }
    }

    async fn send(&self, method: Method, uri: &str, body: Option<Value>) -> Result<Value, String> {
        match self.raw_response(method, uri, body).await? {
            (200 | 201, bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{uri}: {e}")),
            (status, bytes) => Err(format!(
                "{uri}: {status} {}",
                String::from_utf8_lossy(&bytes)
            )),
        }
    }
}

/// A window for the Hérault préfecture's renewals, with `slots` slots of 15 minutes on
/// four counters from two weeks after registration closes.
fn window_body(slots: u32, start: DateTime<Utc>) -> Value {
    let first = start + Duration::days(14);
    let per_day = 4 * 28;
    let list: Vec<Value> = (0..slots)
        .map(|i| {
            let (day, rest) = (i / per_day, i % per_day);
            let (counter, k) = (rest / 28, rest % 28);
            let at = first + Duration::days(i64::from(day)) + Duration::minutes(i64::from(k) * 15);
            json!({
                "starts_at": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "counter": format!("Guichet {}", counter + 1),
            })
        })
        .collect();
    json!({
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": (start - Duration::hours(1)).to_rfc3339(),
        "registration_closes_at": (start + Duration::days(7)).to_rfc3339(),
        "draw_at": (start + Duration::days(8)).to_rfc3339(),
        "beacon": "none",
        "slots": list,
    })
}

const FAMILY_NAMES: [&str; 12] = [
    "Diallo", "Nguyen", "Benali", "Kouassi", "Popescu", "Haddad", "Silva", "Traoré", "Mendy",
    "Okafor", "Rahimi", "Cissé",
];
const GIVEN_NAMES: [&str; 10] = [
    "Aminata", "Linh", "Karim", "Ama", "Ioana", "Youssef", "Mariana", "Moussa", "Fatou", "Chinedu",
];

const NATIONALITIES: [&str; 6] = ["SEN", "VNM", "DZA", "CIV", "ROU", "TUN"];

/// A synthetic applicant; `n` makes identity and contact unique. Permit expiry dates
/// spread over the urgency tiers: expired, within 30, 60 and 90 days, later, none.
fn applicant(n: u32, start: DateTime<Utc>) -> Value {
    let first_slot = (start + Duration::days(14)).date_naive();
    let expiry = match n % 6 {
        0 => Some(first_slot - Duration::days(i64::from(n % 20))),
        1 => Some(first_slot + Duration::days(10 + i64::from(n % 20))),
        2 => Some(first_slot + Duration::days(40 + i64::from(n % 20))),
        3 => Some(first_slot + Duration::days(70 + i64::from(n % 20))),
        4 => Some(first_slot + Duration::days(200 + i64::from(n % 300))),
        _ => None,
    };
    json!({
        "family_name": format!("{} {}", FAMILY_NAMES[(n % 12) as usize], letters(n)),
        "given_names": GIVEN_NAMES[(n % 10) as usize],
        "birth_date": format!("19{:02}-{:02}-{:02}", 60 + n % 40, 1 + n % 12, 1 + n % 28),
        "nationality": NATIONALITIES[(n % 6) as usize],
        "document": {"kind": "foreigner_number", "number": format!("99{n:08}"), "country": "FRA"},
        "email": format!("demo{n}@example.org"),
        "permit_expires_on": expiry.map(|d| d.to_string()),
        "language": if n.is_multiple_of(3) { "en" } else { "fr" },
    })
}

/// Letters that differ for each `n` (names hold no digits): synthetic names for the
/// demo, and for the tests and benches that make applicants of their own.
pub fn letters(mut n: u32) -> String {
    let mut out = String::new();
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

fn summary(window_id: &str, commitment: &Value, drawn: &Value, verified: bool) -> String {
    let mut text = format!(
        "window {window_id}\n\
         entries: {}\nslots: {}\nselected: {}\n\
         commitment: {}\nseed: {}\nresults_hash: {}\n\n\
         weight  entries  selected  rate    expected\n",
        commitment["n_entries"],
        commitment["n_slots"],
        drawn["n_selected"],
        commitment["commitment"].as_str().unwrap_or_default(),
        drawn["seed"].as_str().unwrap_or_default(),
        drawn["results_hash"].as_str().unwrap_or_default(),
    );
    for tier in drawn["statistics"]["tiers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        text.push_str(&format!(
            "{:>6}  {:>7}  {:>8}  {:>6.1}%  {:>6.1}%\n",
            tier["weight"].as_u64().unwrap_or_default(),
            tier["entries"].as_u64().unwrap_or_default(),
            tier["selected"].as_u64().unwrap_or_default(),
            tier["selection_rate"].as_f64().unwrap_or_default() * 100.0,
            tier["expected_rate"].as_f64().unwrap_or_default() * 100.0,
        ));
    }
    text.push_str(if verified {
        "\nthe bundle re-computes exactly: tirage verify bundle.json\n"
    } else {
        "\nthe bundle does NOT re-compute: this is a bug, please report it\n"
    });
    text
}

/// `tirage demo` from the command line.
pub fn demo_main(args: DemoArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tirage demo: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(outcome) => {
            print!("{}", outcome.summary);
            println!(
                "\nwritten: {} and {}",
                outcome.bundle_path.display(),
                outcome.summary_path.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tirage demo: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
