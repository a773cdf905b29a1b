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
/// already answered, `Err(IdempotencyKeyReused)` when the key came with another body.
macro_rules! check_idempotency {
    ($tx:expr, $request:expr, $now:expr) => {{
        sqlx::query("delete from idempotency_keys where scope = $1 and key = $2 and expires_at <= $3")
            .bind(&$request.scope)
            .bind($request.key)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        let found: Option<(String, i64, String)> = sqlx::query_as(
            "select fingerprint, status, response from idempotency_keys where scope = $1 and key = $2",
        )
        .bind(&$request.scope)
        .bind($request.key)
        .fetch_optional(&mut *$tx)
        .await?;
        match found {
            Some((fingerprint, status, body)) if fingerprint == $request.fingerprint => {
                let status = u16::try_from(status)
                    .map_err(|_| StoreError::Corrupt("idempotency_keys.status".into()))?;
                Some($crate::store::RegisterOutcome::Replayed { status, body })
            }
            Some(_) => return Err(StoreError::IdempotencyKeyReused),
            None => None,
        }
    }};
}
pub(crate) use check_idempotency;

/// Inside a write transaction: stores the answer to a request.
macro_rules! store_idempotency {
    ($tx:expr, $request:expr, $now:expr) => {
        sqlx::query(
            "insert into idempotency_keys (scope, key, fingerprint, status, response, created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&$request.scope)
        .bind($request.key)
        .bind(&$request.fingerprint)
        .bind(i64::from($request.status))
        .bind(&$request.body)
        .bind($now)
        .bind($request.expires_at)
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
