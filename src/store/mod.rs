//! The database, behind one repository API. SQL lives only in this module.
//!
//! [`Store`] wraps a connection pool per engine ([`Db`]). Each repository function is
//! written once, inside `on_db!`, which expands its body for every engine, so the
//! same SQL text and the same Rust types run on each: `$1` placeholders, `bigint`,
//! `returning`, and times bound as `chrono` values. SQLite is the embedded default (one
//! file, created and migrated at start); PostgreSQL serves several instances of the
//! service at once. Each engine has its migration folder (`migrations/sqlite`,
//! `migrations/postgres`), kept equivalent: same tables, same columns, same rules.
//!
//! Rules that must hold under concurrency are enforced by the database itself: the
//! duplicate rules are unique indexes, window state changes are conditional updates,
//! and registration runs in one write transaction with its mail (outbox), its
//! idempotency record and its audit event. Write transactions are serialised the same
//! way on both engines (see [`WritePool`]): SQLite's write lock, and on PostgreSQL a
//! transaction-scoped advisory lock that every instance takes.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool, Transaction};

use crate::domain::identity::DuplicateRule;
use crate::domain::window::{RegistrationClosed, WindowState, WrongState};

pub mod accounts;
pub mod audit;
mod batch;
pub mod carry_over;
pub mod direct;
pub mod draws;
pub mod entries;
pub mod idempotency;
pub mod keys;
mod log_space;
pub mod metrics;
pub mod outbox;
pub mod packed;
pub mod retention;
pub mod slots;
pub mod staff;
pub mod windows;

pub use audit::{Actor, AuditCheck, AuditEvent, AuditProblem};
pub use entries::{
    EntryCounts, EntryRecord, EntryStatus, NewCode, NewEntry, RegisterOutcome, ResendOutcome,
    VerifyOutcome,
};
pub use idempotency::IdempotencyRequest;
pub use keys::SigningKeyError;
pub use outbox::{MAIL_LEASE, NewMail, OutboxMail};
pub use staff::{Role, StaffToken};
pub use windows::{WindowFilter, WindowRecord};

/// Expands `$body` once per database engine, with `$pool` bound to that engine's pool.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The connection pool of the configured engine.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// The engine's name, for logs and `/readyz`.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The log's length, in pages, past which SQLite copies it back into the database
/// inside the commit that finds it so long (`wal_autocheckpoint`, on every
/// connection). The registrar's checkpoints start the log again well before this
/// (`jobs::registrar::copy_log`), but under 256 connections the log goes on
/// growing while they copy and sync it, to 40,000 to 60,000 pages; with the safety
/// net at 16,000 or 65,536 pages, commits kept reaching it, and such a commit (or an
/// outbox write) held the writers 50 to 110 ms for the whole copy
/// (`docs/benchmarks.md`, eleventh round); the log now starts again past 262,144
/// pages when registrations come in slowly, and past 1,048,576 while they stream in
/// (twentieth round), when it reaches about 1.35 times that. At 4 KiB a page the
/// log's file can reach 8 GiB; SQLite reuses it from its beginning rather than
/// shrinking it.
pub const AUTOCHECKPOINT_PAGES: i64 = 2_097_152;

/// The part of the database file [`Store::write_back_database_file`] and
/// [`Store::sync_database_file`] write out at a time: about 3 ms of the disk's time
/// when all of it has changed.
const WRITE_BACK_SLICE: u64 = 1 << 20;

/// The settings of every connection to a SQLite file, beside its journal mode and
/// `synchronous`: the pool's (through sqlx) and the registrar's own
/// ([`direct::DirectWriter`]), so that both work alike.
fn sqlite_pragmas() -> [(&'static str, String); 4] {
    [
        ("foreign_keys", "on".to_owned()),
        // The statement journal, which lets a multi-row insert or a savepoint be
        // rolled back alone inside its transaction, in memory instead of a temporary
        // file: it is never needed after a crash (the log is what makes commits
        // durable), and under load it was a tenth of SQLite's writes.
        ("temp_store", "memory".to_owned()),
        // 16 MiB of page cache per connection instead of 2: the duplicate-key indexes
        // of a large window are read at random by every registration.
        ("cache_size", "-16384".to_owned()),
        // No memory map (`mmap_size`): measured, it did not speed registrations up
        // beyond the noise, and every connection's map counts in the process's
        // resident memory (a national draw went from 0.65 to 1.1 GiB at its peak).
        // Copying the log back into the database (a checkpoint) is done between
        // batches by [`Store::checkpoint_wal`] on another connection, and the
        // registrar lets the log start again from its beginning once it is past
        // 262,144 or 1,048,576 pages (`jobs::registrar::copy_log`); while
        // registrations stream in, it copies nothing before that. The committing
        // connection's own checkpoint, which SQLite runs inside a commit and which
        // held that commit 50 to 110 ms, is only a safety net (see
        // [`AUTOCHECKPOINT_PAGES`]).
        ("wal_autocheckpoint", AUTOCHECKPOINT_PAGES.to_string()),
    ]
}

/// How the service uses its database; `docs/configuration.md` explains each default.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool of this instance.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// PostgreSQL only: the server cancels a statement that runs longer (0: no limit).
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(300),
        }
    }
}

/// The application's database. Cheap to clone: it holds a pool.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Recent copies of open windows, for registrations (see
    /// [`Store::open_window_settings`]).
    open_windows: std::sync::Arc<windows::OpenWindows>,
    /// SQLite: the turn of this process's busiest writers (see [`Store::write_turn`]).
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Registrations this instance has stored (see [`Store::registrations_stored`]).
    registered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite, a database file: the registrar's own connection (see
    /// [`Store::unsynced_writer`]).
    unsynced: Option<UnsyncedWriter>,
}

/// A connection of its own for the registrar, which commits without waiting for the
/// disk (`synchronous=NORMAL`), and the log file to sync after its commits.
#[derive(Clone, Debug)]
struct UnsyncedWriter {
    pool: SqlitePool,
    log: std::path::PathBuf,
    /// The database file, for the registrar's [`direct::DirectWriter`].
    file: std::path::PathBuf,
    busy_timeout: std::time::Duration,
}

/// What can go wrong in a repository call. The first variants are refusals the caller
/// turns into answers (404, 409, 422); the last ones are failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    WrongState(#[from] WrongState),
    #[error(transparent)]
    RegistrationClosed(#[from] RegistrationClosed),
    #[error("duplicate entry ({})", .0.as_str())]
    Duplicate(DuplicateRule),
    #[error("window is {state}: {detail}")]
    WindowNotReady {
        state: WindowState,
        detail: &'static str,
    },
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("the entry is {0}")]
    EntryState(EntryStatus),
    #[error("the personal data of this entry was erased")]
    Erased,
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The set-based path of group commit cannot give a batch its exact answers (see
    /// `store::batch`); the batch is then stored one by one.
    #[error("{0}")]
    Unplanned(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Begins a transaction that holds the database's one write lock until it ends.
///
/// Write transactions are serialised on both engines, so that a read inside one sees
/// every write committed before it and nothing can change under it: the property the
/// repository functions are written for (a window's state checked, then entries
/// frozen; the best-ranked waiting entry found, then offered a slot).
///
/// SQLite has one writer: its default deferred transactions take the write lock at the
/// first write and fail at once with `SQLITE_BUSY` if another connection wrote in
/// between; `BEGIN IMMEDIATE` waits for the lock up to the busy timeout instead, so
/// concurrent registrations queue instead of failing.
///
/// PostgreSQL lets writers run side by side; every write transaction of every instance
/// first takes the same transaction-scoped advisory lock ([`WRITE_LOCK`]), released
/// at commit or rollback, even when the connection dies. Reads (public pages, the
/// bundle, status lookups) never take it. Unique indexes, conditional updates and row
/// locks stay the rules' real guards: the lock adds order, not correctness, to them.
pub(crate) trait WritePool {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
    /// [`WritePool::begin_write`], then the savepoint a registration batch goes back
    /// to if it has to decide again (see [`batch::PLANNED`]).
    fn begin_write_planned(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

/// The key of the PostgreSQL advisory lock that serialises write transactions (an
/// arbitrary constant: the bytes of "tirage!" read as a number).
pub const WRITE_LOCK: i64 = 0x0074_6972_6167_6521;

impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_write_planned(&self) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(batch::PLANNED).execute(&mut *tx).await?;
        Ok(tx)
    }
}

impl WritePool for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin_with(BEGIN_WRITE).await
    }

    async fn begin_write_planned(
        &self,
    ) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin_with(BEGIN_WRITE_PLANNED).await
    }
}

/// PostgreSQL: begins a write transaction and takes [`WRITE_LOCK`], in one round trip
/// (the server runs the two statements of one simple query one after the other; a
/// test checks the number is [`WRITE_LOCK`]).
const BEGIN_WRITE: &str = "begin; select pg_advisory_xact_lock(32767037279790369)";
/// [`BEGIN_WRITE`] and [`batch::PLANNED`], in one round trip.
const BEGIN_WRITE_PLANNED: &str =
    "begin; select pg_advisory_xact_lock(32767037279790369); savepoint planned";

/// The prepared statements the SQLite writer's connection keeps: eight texts for each
/// batch size up to [`crate::jobs::registrar::MAX_BATCH`] (see [`Store::connect_with`]).
const WRITER_STATEMENTS: usize = 8 * crate::jobs::registrar::MAX_BATCH;

/// PostgreSQL: the connections of the registrar's own pool ([`Store::writer_pool`]),
/// beside the instance's pool: one for its batches, one for the statistics it
/// refreshes now and then.
pub const WRITER_CONNECTIONS: u32 = 2;

/// The numbers of registrations stored by an instance after which it refreshes the
/// statistics of `entries` on PostgreSQL ([`Store::registrations_stored`]).
const ANALYZE_ENTRIES_AT: [u64; 2] = [1_000, 20_000];

impl Store {
    /// Connects with the default [`StoreOptions`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Connects to `url`: `sqlite://path?mode=rwc` (or a bare file path) for SQLite,
    /// `postgres://user:password@host:port/database?sslmode=...` for PostgreSQL.
    ///
    /// SQLite runs in WAL mode (readers never block the writer) with
    /// `synchronous=FULL`, so that a registration acknowledged to an applicant survives
    /// a power cut. PostgreSQL commits are durable with the server's defaults
    /// (`synchronous_commit=on`, `fsync=on`), which the service checks and logs at
    /// start; see `docs/configuration.md`.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::connect_postgres(url, options).await;
        }
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else if url.contains("://") {
            return Err(StoreError::UnsupportedUrl(format!(
                "{}: expected sqlite://PATH or postgres://HOST/DATABASE",
                url.split("://").next().unwrap_or_default()
            )));
        } else {
            format!("sqlite://{url}?mode=rwc")
        };
        let connect = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.acquire_timeout);
        let connect = sqlite_pragmas()
            .into_iter()
            .fold(connect, |connect, (name, value)| {
                connect.pragma(name, value)
            });
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        // The file behind the database: empty for a database in memory, which has no
        // log to sync and keeps every connection on `synchronous=FULL`.
        let file: String =
            sqlx::query_scalar("select file from pragma_database_list where name = 'main'")
                .fetch_one(&pool)
                .await?;
        let unsynced = if file.is_empty() {
            None
        } else {
            // Its batch statements have one text per batch size (a multi-row insert
            // per table), about eight texts a size: a cache of 100 prepared
            // statements (the driver's default) kept preparing them again, and the
            // batches' statements took a quarter longer (`docs/benchmarks.md`,
            // seventh round). A connection only this process's writers use needs no
            // check before each use: an error comes back from the statement itself.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(
                    connect
                        .synchronous(SqliteSynchronous::Normal)
                        .statement_cache_capacity(WRITER_STATEMENTS),
                )
                .await?;
            Some(UnsyncedWriter {
                pool: writer,
                log: std::path::PathBuf::from(format!("{file}-wal")),
                file: std::path::PathBuf::from(file),
                busy_timeout: options.acquire_timeout,
            })
        };
        Ok(Self {
            db: Db::Sqlite(pool),
            open_windows: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
            registered: std::sync::Arc::default(),
            unsynced,
        })
    }

    /// SQLite, a database file: the same store, but writing through a connection of
    /// its own whose commits do not wait for the disk (`synchronous=NORMAL`), and the
    /// path of the log (`<database>-wal`) that holds those commits. Nothing written
    /// through it may be acknowledged before the log has been synced after its commit
    /// (`jobs::registrar` does that, beside the next batch). Whatever else happens,
    /// the database stays consistent: a commit is in the log, whole or not at all,
    /// and SQLite syncs the log before any checkpoint copies it into the database.
    /// `None` on PostgreSQL and for a database in memory.
    pub fn unsynced_writer(&self) -> Option<(Store, &std::path::Path)> {
        let writer = self.unsynced.as_ref()?;
        // the same shared state (window copies, write turn, counts), another pool
        let store = Self {
            db: Db::Sqlite(writer.pool.clone()),
            unsynced: None,
            ..self.clone()
        };
        Some((store, &writer.log))
    }

    /// PostgreSQL: the same store with a pool of its own, of
    /// [`WRITER_CONNECTIONS`], for the registrar's writer. Its connections belong to
    /// the runtime that calls this: the writer's own, on a thread of its own, where
    /// the answer to each statement wakes the writer at once instead of waiting for a
    /// worker busy with requests to look at the sockets (`jobs::registrar`). `None`
    /// on SQLite.
    pub async fn writer_pool(&self) -> Option<Result<Store, StoreError>> {
        let Db::Postgres(pool) = &self.db else {
            return None;
        };
        let connected = PgPoolOptions::new()
            .max_connections(WRITER_CONNECTIONS)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_with((*pool.connect_options()).clone())
            .await;
        Some(match connected {
            Ok(pool) => Ok(Self {
                db: Db::Postgres(pool),
                ..self.clone()
            }),
            Err(error) => Err(error.into()),
        })
    }

    /// SQLite, a database file: a new connection of the registrar's own that stores a
    /// batch without passing each statement through sqlx ([`direct::DirectWriter`]);
    /// like [`Store::unsynced_writer`], its commits do not wait for the disk. `None`
    /// where there is no unsynced writer.
    pub fn direct_writer(&self) -> Option<Result<direct::DirectWriter, StoreError>> {
        let writer = self.unsynced.as_ref()?;
        Some(direct::DirectWriter::open(
            &writer.file,
            writer.busy_timeout,
        ))
    }

    async fn connect_postgres(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(url)?.application_name("tirage");
        // every session works in UTC; a statement that runs too long is cancelled by
        // the server rather than holding the write lock
        let millis = options.statement_timeout.as_millis().to_string();
        connect = connect.options([("timezone", "UTC"), ("statement_timeout", millis.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self {
            db: Db::Postgres(pool),
            open_windows: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
            registered: std::sync::Arc::default(),
            unsynced: None,
        })
    }

    /// SQLite, a database file: writes the database file's changed pages to the disk
    /// and syncs it. A checkpoint pass copies pages from the log into the file but
    /// syncs the file only when it has copied the whole log, so the pass that finally
    /// does (`jobs::registrar::copy_log`, in the writers' turn) used to flush every
    /// page the passes before it had copied, 8,000 or more. Syncing before that pass
    /// (in rounds, see `copy_log`) leaves it little to flush.
    ///
    /// The pages go out a slice at a time ([`WRITE_BACK_SLICE`], Linux's
    /// `sync_file_range`) without rests, then one `fdatasync` finds little left. At a
    /// national window's size a round has hundreds of MiB to write, and a single
    /// `fdatasync` of all of it queued every page at once in front of the log's syncs:
    /// in the seconds of those rounds the registrations' median latency was 66 to 101
    /// ms at 256 connections, against 22 to 33 ms written out in slices
    /// (`docs/benchmarks.md`, twenty-sixth round). Elsewhere than on Linux, a plain
    /// `fdatasync`. Nothing to do on PostgreSQL or in memory.
    pub async fn sync_database_file(&self) -> Result<(), StoreError> {
        self.on_database_file(|file| {
            tirage_log_vfs::write_back_in_slices(file, WRITE_BACK_SLICE)?;
            file.sync_data()
        })
        .await
    }

    /// SQLite, a database file: like [`Store::sync_database_file`], a slice at a time,
    /// but after each slice the thread rests twice as long as the slice took, so that
    /// the write-back has at most a third of the disk's time. For the first write-out
    /// after a pass has copied a long log (tens of thousands of pages, hundreds of
    /// MiB): a single `fdatasync` of it kept the disk busy for a second or more, and
    /// the log's syncs, which every registration waits for, waited behind it (up to
    /// 310 ms). Elsewhere than on Linux, a plain `fdatasync`.
    pub async fn write_back_database_file(&self) -> Result<(), StoreError> {
        self.on_database_file(|file| {
            tirage_log_vfs::write_back_gently(file, WRITE_BACK_SLICE)?;
            file.sync_data()
        })
        .await
    }

    /// SQLite, a database file: opens it and runs `work` on it on a thread where
    /// blocking is allowed. Nothing to do elsewhere.
    async fn on_database_file(
        &self,
        work: impl FnOnce(&std::fs::File) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        let Some(writer) = &self.unsynced else {
            return Ok(());
        };
        let file = writer.file.clone();
        tokio::task::spawn_blocking(move || work(&std::fs::File::open(&file)?))
            .await
            .map_err(std::io::Error::other)
            .and_then(|done| done)
            .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))
    }

    /// SQLite: copies what the log holds back into the database file, without waiting
    /// for (or blocking) the writer (`wal_checkpoint(PASSIVE)`), on a connection of
    /// the pool other than the writer's. Done between batches of registrations
    /// (`jobs::registrar`), it keeps the log short without the committing connection
    /// doing it inside its commit, which held up the next batch. Returns how many
    /// pages the log holds (all of them copied unless a writer added some meanwhile).
    /// Nothing to do on PostgreSQL, whose server checkpoints on its own: `0`.
    pub async fn checkpoint_wal(&self) -> Result<i64, StoreError> {
        if let Db::Sqlite(pool) = &self.db {
            let (_busy, log, _copied): (i64, i64, i64) =
                sqlx::query_as("pragma wal_checkpoint(PASSIVE)")
                    .fetch_one(pool)
                    .await?;
            return Ok(log);
        }
        Ok(0)
    }

    /// SQLite: waits for this process's turn to write, for the writers that run
    /// continuously under load (the registrar's batches, the outbox's claims and
    /// marks). When two connections of the pool want SQLite's one write lock at once,
    /// the one refused sleeps in SQLite's busy handler for 1, 2, 5, 10, 15, 20, 25 ms
    /// and so on between attempts, however soon the lock is free: the registrar then
    /// sat idle for up to 45 ms after a short outbox commit (measured: 36 ms at the
    /// 99th percentile of its `BEGIN`). Waiting here instead hands the lock over in
    /// arrival order as soon as it is released. Writers that do not take the turn
    /// still wait in the busy handler, as before. `None` on PostgreSQL, whose
    /// advisory lock already queues its waiters.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if self.is_sqlite() {
            Some(self.write_turn.clone().lock_owned().await)
        } else {
            None
        }
    }

    /// Whether the database is SQLite (whose log [`Store::checkpoint_wal`] keeps short).
    pub fn is_sqlite(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }

    /// Creates or upgrades the schema. Safe to run at every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// The durability settings in force, as `(setting, value, durable)`: whether an
    /// acknowledged commit survives a crash of the machine. The service logs them at
    /// start, with a warning for any that is not durable.
    ///
    /// SQLite: WAL journal with `synchronous=FULL` (2), set by [`Store::connect_with`],
    /// and on a database file the registrar's connection at `NORMAL` (1), whose log
    /// the registrar syncs before answering ([`Store::unsynced_writer`]).
    /// PostgreSQL: `fsync` and `synchronous_commit` are the server's; `off` for either
    /// can lose acknowledged registrations after a crash.
    pub async fn durability(&self) -> Result<Vec<(&'static str, String, bool)>, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let journal: String = sqlx::query_scalar("pragma journal_mode")
                    .fetch_one(&mut *conn)
                    .await?;
                let synchronous: i64 = sqlx::query_scalar("pragma synchronous")
                    .fetch_one(&mut *conn)
                    .await?;
                let mut settings = vec![
                    ("journal_mode", journal.clone(), journal == "wal"),
                    ("synchronous", synchronous.to_string(), synchronous >= 2),
                ];
                if let Some(writer) = &self.unsynced {
                    // NORMAL (1) is durable here only because the registrar syncs the
                    // log before it answers; OFF (0) would skip the checkpoints' syncs.
                    let level: i64 = sqlx::query_scalar("pragma synchronous")
                        .fetch_one(&writer.pool)
                        .await?;
                    settings.push((
                        "registrar_synchronous",
                        format!("{level} (the log is synced before each batch is answered)"),
                        level >= 1,
                    ));
                }
                settings
            }
            Db::Postgres(pool) => {
                let mut settings = Vec::new();
                for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                    let value: String =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("show {name}")))
                            .fetch_one(pool)
                            .await?;
                    let durable = value != "off";
                    settings.push((name, value, durable));
                }
                settings
            }
        })
    }

    /// Refreshes the query planner's statistics of the tables a close and a draw have
    /// just filled; the draw's follow-up calls it before the slot holders and the
    /// result mails ([`crate::jobs::offers::after_draw`]). PostgreSQL plans from
    /// statistics its autovacuum gathers some time after a bulk write; until then it
    /// may take a table of a million fresh rows for a small one and scan it whole for
    /// each chunk of result mails (measured: 32 s
    /// instead of well under one for 100,000 entries, `docs/benchmarks.md`). SQLite
    /// plans from its indexes and needs nothing.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("analyze entries, draw_results, draw_entry_chunks, draw_rank_chunks")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Counts `n` more registrations stored by this instance and, on PostgreSQL, when
    /// the count passes one of [`ANALYZE_ENTRIES_AT`], refreshes the planner's
    /// statistics of `entries` in the background.
    ///
    /// A connection keeps the plan it made for a prepared statement until something
    /// invalidates it, and the plans made while `entries` was empty (a new database,
    /// before autovacuum's first look at the table) look up a batch's duplicate keys by
    /// scanning the window in one index instead of descending each key's: measured, a
    /// run on a fresh database read 1.7 million index entries for 5,300
    /// registrations, and stored half as many per second as the same code on a
    /// database that had been analysed. `analyze` gives the planner the table's real
    /// size and makes every connection plan again. Nothing to do on SQLite, which
    /// plans each statement from its indexes when it prepares it.
    pub fn registrations_stored(&self, n: usize) {
        let Db::Postgres(pool) = &self.db else {
            return;
        };
        let n = n as u64;
        let before = self
            .registered
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if !ANALYZE_ENTRIES_AT
            .iter()
            .any(|at| before < *at && *at <= before + n)
        {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(error) = sqlx::query("analyze entries").execute(&pool).await {
                tracing::warn!(error = %error, "could not refresh the statistics of entries");
            }
        });
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("select 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
        if let Some(writer) = &self.unsynced {
            writer.pool.close().await;
        }
        on_db!(self, |pool| pool.close().await);
    }

    /// The pool, for code that has to reach the database directly (tests, tools).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The unique index or columns a unique violation names, if it is one.
///
/// PostgreSQL reports the index name (`entries_email_key`); SQLite reports the columns
/// (`UNIQUE constraint failed: entries.email_key, entries.window_id`). Both contain the
/// key column, which is what [`duplicate_rule`] looks for.
pub(crate) fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db_error = error.as_database_error()?;
    if db_error.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return None;
    }
    Some(
        db_error
            .constraint()
            .map_or_else(|| db_error.message().to_owned(), str::to_owned),
    )
}

/// The duplicate rule behind a unique violation on `entries`.
pub(crate) fn duplicate_rule(error: &sqlx::Error) -> Option<DuplicateRule> {
    let target = unique_violation(error)?;
    DuplicateRule::ALL
        .into_iter()
        .find(|rule| target.contains(rule.key_column()))
}

fn parse_column<T>(
    column: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("{column} = {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_write_transactions_begin_with_the_write_lock() {
        let lock = format!("begin; select pg_advisory_xact_lock({WRITE_LOCK})");
        assert_eq!(BEGIN_WRITE, lock);
        assert_eq!(BEGIN_WRITE_PLANNED, format!("{lock}; {}", batch::PLANNED));
    }
}
