//! SQLite: the registrar's own connection, driven by the thread that stores a batch.
//!
//! Through sqlx, each statement of a batch is a message to the thread that runs the
//! SQLite connection, and its answer a message back to the writer task, which then
//! waits for a request thread to run it again. A batch has about nine statements, so
//! under load the writer spent about a third of each batch passing messages, with the
//! write lock held (`docs/benchmarks.md`, tenth round). [`DirectWriter`] holds a
//! connection of its own to the same file and runs a whole batch on the calling
//! thread (the registrar calls it on a blocking thread, once a batch), one prepared
//! statement per row, with the same decisions and the same rows as the sqlx path: it
//! implements [`SetStatements`] (made of [`SeparateStatements`]), and
//! [`decide_and_write`] drives it.
//!
//! Values are written as sqlx writes them on SQLite (times as RFC 3339 text with
//! `+00:00`, dates as `YYYY-MM-DD`), so that every other query reads these rows as
//! its own; a test compares the rows of both paths column by column.

use std::borrow::Cow;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, named_params, params};

use super::StoreError;
use super::batch::{
    ClaimRow, ENTRY_COLUMNS, INSERT_ENTRIES_OR_ROLLBACK, MailId, SeparateStatements, SetStatements,
    WindowRow, decide_and_write, placeholders, set_statements_from_separate,
};
use super::entries::{CodeColumns, PendingRegistration, RegisterOutcome};
use super::idempotency::IdempotencyRequest;
use super::outbox::{MAIL_LEASE, NewMail, SQLITE_MAILS_SENT, ids_as_json};
use crate::attest::chain::ChainEvent;
use crate::domain::identity::DuplicateRule;

/// The registrar's own SQLite connection (see the module's documentation). It commits
/// with `synchronous=NORMAL`, like the sqlx connection it stands beside: nothing it
/// stores may be acknowledged before the log has been synced after its commit.
pub struct DirectWriter {
    connection: Connection,
    /// The log's length in frames after this connection's last commit, if known.
    log_pages: Option<i64>,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("path", &self.connection.path())
            .finish()
    }
}

/// The prepared statements the connection keeps: a dozen texts, all of fixed form.
const STATEMENTS: usize = 32;

impl DirectWriter {
    /// Opens the database file at `path`, which [`super::Store::connect_with`] has
    /// already created and put in WAL mode, with the settings of the store's own
    /// connections but `synchronous=NORMAL`.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let vfs = tirage_log_vfs::register().map_err(|code| {
            StoreError::Corrupt(format!(
                "could not register the log's file layer: SQLite error {code}"
            ))
        })?;
        let connection = Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            vfs,
        )
        .map_err(direct)?;
        connection.busy_timeout(busy_timeout).map_err(direct)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(direct)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "the database file stays in journal mode {mode}, not wal"
            )));
        }
        connection
            .pragma_update(None, "synchronous", "normal")
            .map_err(direct)?;
        for (name, value) in super::sqlite_pragmas() {
            connection
                .pragma_update(None, name, value)
                .map_err(direct)?;
        }
        // No foreign-key checks on this connection: an immediate check that may fail
        // makes SQLite keep a statement journal for every insert into entries (see
        // `insert_entries`). What the checks guard holds by construction here: every
        // row this connection writes names a window that the same write transaction
        // has just read (a registration to any other is refused before the insert),
        // or an entry it has just inserted, and windows are never deleted. A test
        // runs SQLite's `foreign_key_check` after batches of this connection.
        connection
            .pragma_update(None, "foreign_keys", "off")
            .map_err(direct)?;
        // After the pragmas, which set SQLite's own hook (its checkpoint at
        // `wal_autocheckpoint` pages): this one replaces it, and keeps it.
        connection.wal_hook(Some(note_log_length));
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(Self {
            connection,
            log_pages: None,
        })
    }

    /// The log's length (frames of a page each) after this connection's last commit;
    /// `None` before its first. The registrar's checkpoints leave a log shorter than
    /// their limit alone while registrations stream in (see
    /// `jobs::registrar::Ask::pass_now`).
    pub fn log_pages(&self) -> Option<i64> {
        self.log_pages
    }

    /// Stores a batch in one write transaction, with the decisions of the set-based
    /// path ([`super::Store::register_set`]): one outcome per registration, in order,
    /// once committed. On `Err`, nothing of the batch was stored. Runs on the calling
    /// thread until the commit has returned: call it where blocking is allowed.
    ///
    /// `sent` records mails sent in the same transaction ([`DirectWriter::mails_sent`]).
    pub fn register_batch(
        &mut self,
        batch: &[PendingRegistration<'_>],
        sent: &[SentMails],
    ) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
        self.in_transaction(|writer| {
            let outcomes = ready(decide_and_write(writer, batch))?;
            writer.record_sent(sent)?;
            Ok(outcomes)
        })
    }

    /// Records mails sent, as [`super::Store::mails_sent`] does, through this
    /// connection: in SQLite's WAL mode a commit from any other connection makes this
    /// one empty its whole page cache before its next transaction, and read again
    /// every page it then needs. The outbox recorded the registrations' mails through
    /// another connection several times a second under load; through this one, the
    /// cache stays (`docs/benchmarks.md`, seventeenth round).
    pub fn mails_sent(&mut self, sent: &[SentMails]) -> Result<(), StoreError> {
        self.in_transaction(|writer| writer.record_sent(sent))
    }

    fn record_sent(&mut self, sent: &[SentMails]) -> Result<(), StoreError> {
        let mut update = self
            .connection
            .prepare_cached(SQLITE_MAILS_SENT)
            .map_err(direct)?;
        for (ids, at) in sent.iter().filter(|(ids, _)| !ids.is_empty()) {
            update
                .execute(named_params! { "$1": ids_as_json(ids)?, "$2": time_text(*at) })
                .map_err(direct)?;
        }
        Ok(())
    }

    /// Runs `write` in a write transaction and commits; on `Err`, nothing of it stays.
    fn in_transaction<T>(
        &mut self,
        write: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.connection
            .execute_batch("begin immediate")
            .map_err(direct)?;
        let done = write(self).and_then(|value| {
            LOG_PAGES.set(None);
            self.connection.execute_batch("commit").map_err(direct)?;
            self.log_pages = LOG_PAGES.take();
            Ok(value)
        });
        if done.is_err() && !self.connection.is_autocommit() {
            // The error is the one to report; a failed rollback leaves the connection
            // in its transaction, which the next `begin` then refuses.
            let _ = self.connection.execute_batch("rollback");
        }
        done
    }
}

thread_local! {
    /// The log's length that [`note_log_length`] saw at the last commit on this thread.
    static LOG_PAGES: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// SQLite's log hook on [`DirectWriter`]'s connection, called on the committing thread
/// after each commit with the log's length in frames: notes it for
/// [`DirectWriter::log_pages`], and past [`super::AUTOCHECKPOINT_PAGES`] does what
/// the hook it replaces did (SQLite's `wal_autocheckpoint`): a passive checkpoint
/// within the commit, whose failure (another checkpoint running) is not the commit's.
fn note_log_length(wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    let pages = i64::from(pages);
    LOG_PAGES.set(Some(pages));
    if pages >= super::AUTOCHECKPOINT_PAGES {
        let _ = wal.checkpoint();
    }
    // An error here would fail a statement whose commit has happened.
    Ok(())
}

/// Mails recorded as sent: their ids, and when.
pub type SentMails = (Vec<i64>, DateTime<Utc>);

/// Runs a future that never waits: [`DirectWriter`]'s statements are `async` only to
/// share [`decide_and_write`] with the sqlx path, and each completes when first
/// polled, so the whole batch does.
fn ready<T>(future: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Database(sqlx::Error::Protocol(
            "a statement of the direct writer waited".to_owned(),
        ))),
    }
}

/// A time as sqlx writes it on SQLite.
fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A date as sqlx writes it on SQLite.
fn date_text(date: NaiveDate) -> String {
    date.format("%F").to_string()
}

/// A time read back: RFC 3339 as written above, or SQLite's own `YYYY-MM-DD HH:MM:SS`.
fn parse_time(text: &str) -> Result<DateTime<Utc>, rusqlite::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%F %T%.f").map(|at| at.and_utc()))
        .map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })
}

impl SetStatements for DirectWriter {
    set_statements_from_separate!();

    /// The transaction begun again rather than a savepoint: while a savepoint is
    /// open, SQLite copies each page the batch changes to a journal of its own
    /// first, which cost about a quarter of the registrations a second (docs/benchmarks.md,
    /// fourteenth round), for a rollback that few batches need.
    async fn undo_writes(&mut self) -> Result<(), sqlx::Error> {
        self.connection
            .execute_batch("rollback; begin immediate")
            .map_err(direct)
    }

    async fn taken_keys(
        &mut self,
        window_id: &str,
        keys: &[Vec<&str>; 4],
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let mut taken = Vec::new();
        for (rule, rule_keys) in DuplicateRule::ALL.into_iter().zip(keys) {
            if rule_keys.is_empty() {
                continue;
            }
            // one key in the rule's unique index
            let sql = format!(
                "select 1 from entries
                 where window_id = ?1 and status <> 'withdrawn' and {} = ?2",
                rule.key_column()
            );
            let mut lookup = self.connection.prepare_cached(&sql).map_err(direct)?;
            for key in rule_keys {
                if lookup.exists(params![window_id, key]).map_err(direct)? {
                    taken.push((rule.as_str().to_owned(), (*key).to_owned()));
                }
            }
        }
        Ok(taken)
    }

    async fn claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<Vec<ClaimRow>, sqlx::Error> {
        let mut select = self
            .connection
            .prepare_cached(
                "select scope, key, fingerprint, status, response, expires_at
                 from idempotency_keys where scope = ? and key = ?",
            )
            .map_err(direct)?;
        let mut rows = Vec::new();
        for request in requests {
            let row = select
                .query_row(params![request.scope, request.key], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        parse_time(&row.get::<_, String>(5)?)?,
                    ))
                })
                .optional()
                .map_err(direct)?;
            rows.extend(row);
        }
        Ok(rows)
    }

    async fn purge_claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<(), sqlx::Error> {
        let mut delete = self
            .connection
            .prepare_cached("delete from idempotency_keys where scope = ? and key = ?")
            .map_err(direct)?;
        for request in requests {
            delete
                .execute(params![request.scope, request.key])
                .map_err(direct)?;
        }
        Ok(())
    }

    async fn insert_claims(
        &mut self,
        claimed: &[(&PendingRegistration<'_>, &IdempotencyRequest<'_>)],
    ) -> Result<(), sqlx::Error> {
        let mut insert = self
            .connection
            .prepare_cached(
                "insert into idempotency_keys
                     (scope, key, fingerprint, status, response, created_at, expires_at)
                 values (?, ?, ?, ?, ?, ?, ?)",
            )
            .map_err(direct)?;
        for (item, request) in claimed {
            insert
                .execute(params![
                    request.scope,
                    request.key,
                    request.fingerprint,
                    i64::from(request.status),
                    request.body,
                    time_text(item.now),
                    time_text(request.expires_at),
                ])
                .map_err(direct)?;
        }
        Ok(())
    }
}

impl SeparateStatements for DirectWriter {
    async fn insert_entries(
        &mut self,
        accepted: &[&PendingRegistration<'_>],
    ) -> Result<Vec<bool>, sqlx::Error> {
        // The row count says whether the entry was stored: `returning` is not needed.
        //
        // "or rollback": a NOT NULL or CHECK constraint that fails (none should: the
        // values are validated) rolls the whole batch back, and the registrar stores
        // it again one by one, each registration with its own answer. With the abort
        // policy instead, SQLite would keep a statement journal for every insert, a
        // copy of each page it first changes, to undo that insert alone: the entry
        // has triggers (the counts, which migration 0033 writes without an upsert for
        // this), so each insert writes several rows. That copy was about a sixth of
        // this connection's work under load (docs/benchmarks.md, twentieth round).
        let sql = format!(
            "{INSERT_ENTRIES_OR_ROLLBACK} values {} on conflict do nothing",
            placeholders(1, ENTRY_COLUMNS, 1, true)
        );
        let mut insert = self.connection.prepare_cached(&sql).map_err(direct)?;
        let mut stored = Vec::with_capacity(accepted.len());
        for item in accepted {
            let entry = &item.entry;
            let identity = &entry.registration.identity;
            let (status, verified_at) = super::batch::initial_status(item);
            let code = CodeColumns::of(item.code.as_ref(), item.now);
            let rows = insert
                .execute(params![
                    entry.id,
                    entry.window_id,
                    status.as_str(),
                    entry.channel.as_str(),
                    entry.access_code_hash,
                    identity.family_name.as_str(),
                    identity.given_names.as_str(),
                    date_text(identity.birth_date),
                    identity.nationality.as_str(),
                    identity.document.kind.as_str(),
                    identity.document.number.as_str(),
                    identity.document.country.as_str(),
                    identity.email.as_ref().map(|e| e.as_str()),
                    identity.phone.as_ref().map(|p| p.as_str()),
                    entry.registration.permit_expires_on.map(date_text),
                    entry.registration.language.as_str(),
                    i64::from(entry.unsuccessful_draws),
                    i64::from(entry.weight),
                    entry.keys.document,
                    entry.keys.person,
                    entry.keys.email,
                    entry.keys.phone,
                    entry.registered_by,
                    time_text(item.now),
                    verified_at.map(time_text),
                    code.hash,
                    code.expires_at.map(time_text),
                    code.sends,
                    code.sent_at.map(time_text),
                ])
                .map_err(direct)?;
            stored.push(rows == 1);
        }
        Ok(stored)
    }

    async fn insert_mails(
        &mut self,
        mails: &[(&PendingRegistration<'_>, &NewMail)],
    ) -> Result<Vec<MailId>, sqlx::Error> {
        // The id is the row's rowid (`integer primary key`), which SQLite gives back
        // without `returning`: SQLite runs `returning` as a trigger, and a statement
        // with a trigger that may abort keeps a statement journal (a copy of every
        // page it first changes), as for the entries (docs/benchmarks.md, twentieth
        // round).
        let mut insert = self
            .connection
            .prepare_cached(
                "insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at)
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(direct)?;
        let mut rows = Vec::with_capacity(mails.len());
        for (item, mail) in mails {
            let id = insert
                .insert(params![
                    mail.kind,
                    mail.recipient,
                    mail.subject,
                    mail.body,
                    time_text(item.now),
                    time_text(item.now + MAIL_LEASE)
                ])
                .map_err(direct)?;
            rows.push((item.entry.id.to_owned(), id));
        }
        Ok(rows)
    }

    async fn insert_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error> {
        let mut insert = self
            .connection
            .prepare_cached(
                "insert into audit_events
                     (seq, at, actor, action, window_id, entry_id, detail, prev_hash, hash)
                 values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .map_err(direct)?;
        for (seq, event) in events {
            insert
                .execute(params![
                    seq,
                    time_text(event.at),
                    event.actor,
                    event.action,
                    event.window_id,
                    event.entry_id,
                    crate::attest::canonical_json(&event.detail),
                    event.prev_hash,
                    event.hash,
                ])
                .map_err(direct)?;
        }
        Ok(())
    }

    async fn windows(&mut self, ids: &[&str]) -> Result<Vec<WindowRow>, sqlx::Error> {
        let mut select = self
            .connection
            .prepare_cached(
                "select id, state, registration_opens_at, registration_closes_at from windows
                 where id = ?",
            )
            .map_err(direct)?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let row = select
                .query_row([id], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        parse_time(&row.get::<_, String>(2)?)?,
                        parse_time(&row.get::<_, String>(3)?)?,
                    ))
                })
                .optional()
                .map_err(direct)?;
            rows.extend(row);
        }
        Ok(rows)
    }

    async fn audit_head(&mut self) -> Result<(i64, String), sqlx::Error> {
        self.connection
            .prepare_cached("select count, hash from audit_head where id = 1")
            .and_then(|mut select| select.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(direct)
    }

    async fn set_audit_head(
        &mut self,
        count: i64,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        self.connection
            .prepare_cached("update audit_head set count = ?, hash = ?, at = ? where id = 1")
            .and_then(|mut update| update.execute(params![count, hash, time_text(at)]))
            .map_err(direct)?;
        Ok(())
    }
}

/// An error of the direct connection, as the sqlx error the rest of the store handles
/// (a unique violation stays one, for instance).
fn direct(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(DirectError {
        message: error.to_string(),
        error,
    }))
}

#[derive(Debug)]
struct DirectError {
    message: String,
    error: rusqlite::Error,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.error
            .sqlite_error()
            .map(|error| Cow::Owned(error.extended_code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.error.sqlite_error().map(|error| error.extended_code) {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
