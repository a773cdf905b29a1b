//! Idempotency keys: answering a retried request with its first answer.
//!
//! A client that did not get the answer to a registration (a dropped connection, a
//! timeout) retries with the same `Idempotency-Key` header and the same body, and gets
//! the original receipt back, access code included, instead of a duplicate error. The
//! same key with another body is refused. Records expire after a day and are purged,
//! since they hold the receipt.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, on_db};

/// How to recognise and answer a request sent with an idempotency key.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest<'a> {
    /// The operation and its target, such as `register:<window id>`.
    pub scope: String,
    /// The client's key.
    pub key: &'a str,
    /// A digest of the request body in canonical form.
    pub fingerprint: String,
    /// The answer to store for a retry.
    pub status: u16,
    pub body: String,
    pub expires_at: DateTime<Utc>,
}

/// Inside a write transaction: `Some(RegisterOutcome::Replayed)` when the request was
/// already answered, `Err(IdempotencyKeyReused)` when the key came with another body,
/// `None` when this transaction now holds the key.
///
/// The key is claimed first, by inserting its row before anything else is done: the
/// primary key `(scope, key)` lets only one transaction hold it. A concurrent request
/// with the same key waits on that row (PostgreSQL) or on the write lock (SQLite) until
/// the first transaction ends, then finds its answer and replays it; if the first one
/// was refused and rolled back, its claim is gone and the retry proceeds. Replay thus
/// holds by construction, not by luck of timing. [`store_idempotency!`] fills in the
/// answer before commit, so the placeholder is never seen outside the transaction.
macro_rules! check_idempotency {
    ($tx:expr, $request:expr, $now:expr) => {{
        sqlx::query("delete from idempotency_keys where scope = $1 and key = $2 and expires_at <= $3")
            .bind(&$request.scope)
            .bind($request.key)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        let claimed = sqlx::query(
            "insert into idempotency_keys (scope, key, fingerprint, status, response, created_at, expires_at)
             values ($1, $2, $3, 0, '', $4, $5)
             on conflict (scope, key) do nothing",
        )
        .bind(&$request.scope)
        .bind($request.key)
        .bind(&$request.fingerprint)
        .bind($now)
        .bind($request.expires_at)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            None
        } else {
            let (fingerprint, status, body): (String, i64, String) = sqlx::query_as(
                "select fingerprint, status, response from idempotency_keys where scope = $1 and key = $2",
            )
            .bind(&$request.scope)
            .bind($request.key)
            .fetch_one(&mut *$tx)
            .await?;
            if fingerprint != $request.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            let status = u16::try_from(status)
                .ok()
                .filter(|status| *status != 0)
                .ok_or_else(|| StoreError::Corrupt("idempotency_keys.status".into()))?;
            Some($crate::store::RegisterOutcome::Replayed { status, body })
        }
    }};
}
pub(crate) use check_idempotency;

/// Inside the write transaction that claimed the key with [`check_idempotency!`]:
/// stores the answer to the request.
macro_rules! store_idempotency {
    ($tx:expr, $request:expr) => {
        sqlx::query(
            "update idempotency_keys set status = $3, response = $4 where scope = $1 and key = $2",
        )
        .bind(&$request.scope)
        .bind($request.key)
        .bind(i64::from($request.status))
        .bind(&$request.body)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use store_idempotency;

impl Store {
    /// Deletes expired idempotency records; returns how many.
    pub async fn purge_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query("delete from idempotency_keys where expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
