//! The database, behind one repository API. SQL lives only in this module.
//!
//! [`Store`] wraps a connection pool per engine ([`Db`]). Each repository function is
//! written once, inside `on_db!`, which expands its body for every engine, so the
//! same SQL text and the same Rust types run on each: `$1` placeholders, `bigint`,
//! `returning`, and times bound as `chrono` values. SQLite is the embedded default (one
//! file, created and migrated at start); PostgreSQL, for several instances, will be one
//! more arm in [`Db`] and in `on_db!` plus its migration folder, without any change to
//! the handlers.
//!
//! Rules that must hold under concurrency are enforced by the database itself: the
//! duplicate rules are unique indexes, window state changes are conditional updates,
//! and registration runs in one write transaction with its mail (outbox), its
//! idempotency record and its audit event.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};

use crate::domain::identity::DuplicateRule;
use crate::domain::window::{RegistrationClosed, WindowState, WrongState};

pub mod accounts;
pub mod audit;
pub mod carry_over;
pub mod draws;
pub mod entries;
pub mod idempotency;
pub mod keys;
pub mod outbox;
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
pub use outbox::{NewMail, OutboxMail};
pub use staff::{Role, StaffToken};
pub use windows::{WindowFilter, WindowRecord};

/// Expands `$body` once per database engine, with `$pool` bound to that engine's pool.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The connection pool of the configured engine.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
}

/// The application's database. Cheap to clone: it holds a pool.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
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
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Begins a transaction that takes the write lock at once.
///
/// SQLite's default deferred transactions take the write lock at the first write; if
/// another connection wrote in between, the upgrade fails at once with `SQLITE_BUSY`
/// instead of waiting. `BEGIN IMMEDIATE` waits for the lock up to the busy timeout, so
/// concurrent registrations queue instead of failing.
pub(crate) trait WritePool {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl Store {
    /// Connects to `url`: `sqlite://path?mode=rwc` (or a bare file path) for SQLite.
    ///
    /// SQLite runs in WAL mode (readers never block the writer) with
    /// `synchronous=FULL`, so that a registration acknowledged to an applicant survives
    /// a power cut; see `docs/configuration.md`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StoreError::UnsupportedUrl(
                "PostgreSQL is not supported by this version yet; use a sqlite:// URL".into(),
            ));
        }
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else if url.contains("://") {
            return Err(StoreError::UnsupportedUrl(format!(
                "{}: expected sqlite://PATH",
                url.split("://").next().unwrap_or_default()
            )));
        } else {
            format!("sqlite://{url}?mode=rwc")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self {
            db: Db::Sqlite(pool),
        })
    }

    /// Creates or upgrades the schema. Safe to run at every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_db!(self, |pool| sqlx::migrate!("./migrations/sqlite")
            .run(pool)
            .await?);
        Ok(())
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, |pool| sqlx::query("select 1").execute(pool).await?);
        Ok(())
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
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
/// (`UNIQUE constraint failed: entries.window_id, entries.email_key`). Both contain the
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
