//! Criterion bench for the SQLite writer of registrations: one batch of 64 new
//! applicants stored by the registrar's own connection ([`DirectWriter`]), in a window
//! that already holds `TIRAGE_BENCH_PREFILL` entries (default 100,000). What it times
//! is the writer's work alone: the decisions, the rows, the indexes and the commit's
//! log, without HTTP and without the log's sync (the registrar syncs beside the
//! writer). Run with `cargo bench --bench registration`; results are recorded in
//! `docs/benchmarks.md`.
//!
//! With `TIRAGE_BENCH_BATCHES=N`, it stores N batches after the prefill, without
//! criterion, and prints the time they took. Under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_batches*'`
//! that counts the instructions those batches cost: a number the machine's other work
//! does not move, so two builds can be compared on a noisy day.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group};
use serde_json::json;
use tirage::demo::letters;
use tirage::domain::codes::hash_access_code;
use tirage::domain::identity::DuplicateKeys;
use tirage::domain::registration::{Channel, Registration, RegistrationForm};
use tirage::domain::window::{WindowForm, WindowSpec};
use tirage::store::direct::DirectWriter;
use tirage::store::entries::PendingRegistration;
use tirage::store::{Actor, NewCode, NewEntry, NewMail, RegisterOutcome, Store};

/// Registrations in one measured batch: about what 64 connections keep waiting.
const BATCH: usize = 64;

/// The database, its window and its writer, with the next applicant's number.
struct Bench {
    runtime: tokio::runtime::Runtime,
    store: Store,
    writer: DirectWriter,
    window_id: String,
    next: u64,
    _folder: tempfile::TempDir,
}

/// One registration, owning what [`PendingRegistration`] borrows.
struct Item {
    entry_id: String,
    window_id: String,
    registration: Registration,
    keys: DuplicateKeys,
    access_hash: Vec<u8>,
    code_hash: Vec<u8>,
    mail: NewMail,
    now: DateTime<Utc>,
}

impl Item {
    fn new(n: u64, window_id: &str, now: DateTime<Utc>) -> Self {
        let form: RegistrationForm = serde_json::from_value(json!({
            "family_name": format!("Diallo{}", letters(u32::try_from(n).expect("fewer than 4 billion applicants"))),
            "given_names": "Aminata",
            "birth_date": "1991-03-14",
            "nationality": "SEN",
            "document": {"kind": "foreigner_number", "number": format!("{n:010}"), "country": "FRA"},
            "email": format!("aminata{n}@example.org"),
            "phone": format!("+336{n:08}"),
            "permit_expires_on": "2027-01-20",
            "language": "fr"
        }))
        .expect("a registration form");
        let registration = form
            .parse(Channel::Online, now.date_naive())
            .expect("a valid registration");
        let keys = DuplicateKeys::of(&registration.identity);
        let digest = tirage::draw::sha256(&n.to_le_bytes());
        Self {
            entry_id: hex::encode(&digest[..16]),
            window_id: window_id.to_owned(),
            keys,
            access_hash: digest[16..].to_vec(),
            code_hash: hash_access_code(&format!("code-{n}")),
            mail: NewMail {
                kind: "verification_code".into(),
                recipient: format!("aminata{n}@example.org"),
                subject: "Votre code".into(),
                body: format!("Code: {n:06}"),
            },
            registration,
            now,
        }
    }

    fn pending(&self) -> PendingRegistration<'_> {
        PendingRegistration {
            entry: NewEntry {
                id: &self.entry_id,
                window_id: &self.window_id,
                channel: Channel::Online,
                access_code_hash: &self.access_hash,
                registration: &self.registration,
                keys: &self.keys,
                weight: 1,
                unsuccessful_draws: 0,
                registered_by: None,
            },
            code: Some(NewCode {
                code_hash: &self.code_hash,
                expires_at: self.now + chrono::Duration::minutes(30),
            }),
            mail: Some(&self.mail),
            idempotency: None,
            now: self.now,
        }
    }
}

impl Bench {
    /// A new SQLite file with an open window holding `prefill` entries.
    fn new(prefill: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = format!(
            "sqlite://{}?mode=rwc",
            folder.path().join("bench.db").display()
        );
        let (store, window_id) = runtime.block_on(async {
            let store = Store::connect(&url).await.expect("the database");
            store.migrate().await.expect("the migrations");
            let now = Utc::now();
            let at = |days: i64| {
                (now + chrono::Duration::days(days))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            let form: WindowForm = serde_json::from_value(json!({
                "site": "34", "procedure": "renewal",
                "registration_opens_at": at(-1), "registration_closes_at": at(30),
                "draw_at": at(31), "beacon": "none",
                "slots": [{"starts_at": at(40), "counter": "G1"}]
            }))
            .expect("a window form");
            let spec = WindowSpec::from_form(&form).expect("a valid window");
            let window_id = "bench-window".to_owned();
            store
                .create_window(&window_id, &spec, &Actor::System, now)
                .await
                .expect("the window");
            let secret = [7u8; 32];
            let commitment = hex::encode(tirage::draw::sha256(&secret));
            store
                .open_window(&window_id, &secret, &commitment, &Actor::System, now)
                .await
                .expect("the window opened");
            (store, window_id)
        });
        let writer = store
            .direct_writer()
            .expect("a SQLite store has a direct writer")
            .expect("the writer's connection");
        let mut bench = Self {
            runtime,
            store,
            writer,
            window_id,
            next: 0,
            _folder: folder,
        };
        while bench.next < prefill {
            let items = bench.items(256.min((prefill - bench.next) as usize));
            bench.store_all(&items);
            bench.checkpoint();
        }
        bench
    }

    /// The next `n` applicants, each new.
    fn items(&mut self, n: usize) -> Vec<Item> {
        let now = Utc::now();
        let items = (self.next..self.next + n as u64)
            .map(|k| Item::new(k, &self.window_id, now))
            .collect();
        self.next += n as u64;
        items
    }

    /// Stores `items` as one batch; every one must be created.
    fn store_all(&mut self, items: &[Item]) {
        let batch: Vec<PendingRegistration<'_>> = items.iter().map(Item::pending).collect();
        let outcomes = self
            .writer
            .register_batch(&batch, &[])
            .expect("the batch is stored");
        for outcome in outcomes {
            assert!(
                matches!(outcome, Ok(RegisterOutcome::Created { .. })),
                "every applicant of the bench is new: {outcome:?}"
            );
        }
    }

    /// Copies the log into the database, as the registrar's checkpoints do beside the
    /// writer, so that the log does not grow without end.
    fn checkpoint(&self) {
        self.runtime
            .block_on(self.store.checkpoint_wal())
            .expect("a checkpoint");
    }
}

fn prefill() -> u64 {
    std::env::var("TIRAGE_BENCH_PREFILL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

fn batches(c: &mut Criterion) {
    let mut bench = Bench::new(prefill());
    let mut group = c.benchmark_group("sqlite_writer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(10));
    let mut stored = 0u64;
    group.bench_function("batch_of_64", |b| {
        // only the batch's storing is timed, not making its applicants nor the
        // checkpoints between batches
        b.iter_custom(|iterations| {
            let mut took = Duration::ZERO;
            for _ in 0..iterations {
                stored += 1;
                if stored.is_multiple_of(16) {
                    bench.checkpoint();
                }
                let items = bench.items(BATCH);
                let started = Instant::now();
                bench.store_all(black_box(&items));
                took += started.elapsed();
            }
            took
        });
    });
    group.finish();
}

/// `TIRAGE_BENCH_BATCHES` batches after the prefill, outside criterion (see the top).
#[inline(never)]
fn measured_batches(bench: &mut Bench, batches: &[Vec<Item>]) {
    for items in batches {
        bench.store_all(items);
    }
}

fn fixed(count: usize) {
    let prefill = prefill();
    let mut bench = Bench::new(prefill);
    let batches: Vec<Vec<Item>> = (0..count).map(|_| bench.items(BATCH)).collect();
    let started = Instant::now();
    measured_batches(&mut bench, &batches);
    let took = started.elapsed();
    println!(
        "{count} batches of {BATCH} after {prefill} entries: {:.1} µs a registration",
        took.as_secs_f64() * 1e6 / (count * BATCH) as f64
    );
}

criterion_group!(benches, batches);

fn main() {
    match std::env::var("TIRAGE_BENCH_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(count) => fixed(count),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
