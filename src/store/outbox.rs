//! The outbox: mails written in the same transaction as what caused them.
//!
//! A mail is sent right after its transaction commits; if that fails (the SMTP relay
//! is down, the service stops), the background sender picks it up later. A mail is
//! claimed for a short lease before sending, so two senders do not send it twice. Once
//! sent, its recipient and body (which holds a one-time code) are erased.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, on_db};

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// What the mail is, such as `verification_code`.
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// A queued mail claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxMail {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

/// How long a claimed mail is reserved for the sender that claimed it. A
/// registration's mail is queued already claimed for this long by the instance that
/// stores it, which sends it from memory ([`MAIL_LEASE`] is then the delay after
/// which another sender may take it, if this one stopped first).
pub const MAIL_LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// Inside a write transaction: queues a mail and evaluates to its id. The mail is due
/// at once, or at `due` (a mail queued already claimed: `now` + [`MAIL_LEASE`]).
macro_rules! insert_mail {
    ($tx:expr, $mail:expr, $now:expr) => {
        insert_mail!($tx, $mail, $now, $now)
    };
    ($tx:expr, $mail:expr, $now:expr, $due:expr) => {{
        let id: i64 = sqlx::query_scalar(
            "insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at)
             values ($1, $2, $3, $4, $5, $6) returning id",
        )
        .bind(&$mail.kind)
        .bind(&$mail.recipient)
        .bind(&$mail.subject)
        .bind(&$mail.body)
        .bind($now)
        .bind($due)
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}
pub(crate) use insert_mail;

const CLAIM_COLUMNS: &str = "returning id, kind, recipient, subject, body, attempts";

/// Records sends on SQLite ([`Store::mails_sent`], and the registrar's own connection,
/// [`super::direct::DirectWriter::mails_sent`]): the mails' ids as a JSON array (`$1`)
/// and the time (`$2`); each mail's recipient and body are erased.
pub(super) const SQLITE_MAILS_SENT: &str =
    "update outbox set sent_at = $2, attempts = attempts + 1, recipient = '', body = '',
         last_error = null
     where id in (select value from json_each($1))";

/// Mails' ids as the JSON array [`SQLITE_MAILS_SENT`] takes.
pub(super) fn ids_as_json(ids: &[i64]) -> Result<String, StoreError> {
    serde_json::to_string(ids).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// The statement that claims due mails: `$1` now, `$2` the end of the lease, `$3` the
/// most mails to claim; on PostgreSQL if `postgres`, else on SQLite.
///
/// The conditions are repeated outside the subquery: on PostgreSQL, an instance that
/// waited for another's claim of the same row re-checks them on the claimed row and
/// skips it, so a mail is never sent twice by two instances.
///
/// On PostgreSQL the subquery also skips the rows another transaction holds
/// (`for update skip locked`): a row being marked sent, or claimed by another sender,
/// is not due for this claim anyway. Without it, a claim that waited for one such row
/// while holding rows that the waited-for statement wanted next was a deadlock, which
/// the server broke only after a second, failing one of the two (three in three runs
/// of `bench/registration-load.sh`, eighth round; a failed mark sends those mails
/// again when their lease ends).
///
/// On PostgreSQL the claimed ids then reach the update as one array
/// (`id = any(array(...))`), which it looks up in the primary key. With
/// `id in (select ...)` the planner joined the subquery's rows against a scan of the
/// whole outbox, which keeps a row for every mail ever sent: under a burst of
/// registrations each claim read the whole table, and the claims took most of the
/// server's time (`docs/benchmarks.md`, twelfth round).
pub fn claim_due_statement(postgres: bool) -> String {
    let (open, skip_locked, close) = if postgres {
        ("= any(array(", "for update skip locked", "))")
    } else {
        ("in (", "", ")")
    };
    format!(
        "update outbox set next_attempt_at = $2
         where id {open}select id from outbox
                    where sent_at is null and failed_at is null and next_attempt_at <= $1
                    order by next_attempt_at, id limit $3 {skip_locked}{close}
           and sent_at is null and failed_at is null and next_attempt_at <= $1
         {CLAIM_COLUMNS}"
    )
}

impl Store {
    /// Claims one due mail until `lease_until`, if it is still unsent.
    pub async fn claim_mail(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<OutboxMail>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "update outbox set next_attempt_at = $3
                 where id = $1 and sent_at is null and failed_at is null and next_attempt_at <= $2
                 {CLAIM_COLUMNS}"
            )))
            .bind(id)
            .bind(now)
            .bind(lease_until)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Claims up to `limit` due mails until `lease_until` (the statement is
    /// [`claim_due_statement`]).
    pub async fn claim_due_mails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxMail>, StoreError> {
        let _turn = self.write_turn().await;
        let statement = claim_due_statement(!self.is_sqlite());
        Ok(on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(statement.as_str()))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records a successful send and erases the recipient and body.
    pub async fn mail_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "update outbox set sent_at = $2, attempts = attempts + 1, recipient = '', body = '',
                     last_error = null
                 where id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records several successful sends with one statement (see [`Store::mail_sent`]):
    /// under load, one commit for a whole batch of mails instead of one per mail.
    ///
    /// The ids travel as one value (a JSON array on SQLite, an array on PostgreSQL),
    /// so the statement's text is the same whatever the batch's size and each
    /// connection prepares it once.
    pub async fn mails_sent(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        match &self.db {
            super::Db::Sqlite(pool) => {
                sqlx::query(SQLITE_MAILS_SENT)
                    .bind(ids_as_json(ids)?)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
            super::Db::Postgres(pool) => {
                sqlx::query(
                    "update outbox set sent_at = $2, attempts = attempts + 1, recipient = '', body = '',
                         last_error = null
                     where id = any($1)",
                )
                .bind(ids)
                .bind(now)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Records a failed send: retried at `retry_at`, or given up (and erased) when `None`.
    pub async fn mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            match retry_at {
                Some(retry_at) => sqlx::query(
                    "update outbox set attempts = attempts + 1, last_error = $2, next_attempt_at = $3
                     where id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(retry_at)
                .execute(pool)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "update outbox set attempts = attempts + 1, last_error = $2, failed_at = $3,
                         recipient = '', body = ''
                     where id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected(),
            }
        });
        Ok(())
    }

    /// How many mails wait to be sent.
    pub async fn pending_mails(&self) -> Result<i64, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "select cast(count(*) as bigint) from outbox where sent_at is null and failed_at is null",
            )
            .fetch_one(pool)
            .await?
        }))
    }
}
