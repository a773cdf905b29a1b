//! The audit trail: an append-only, hash-chained record of what staff, applicants and
//! the service did.
//!
//! Events carry ids, actions and states, never personal data. They are written in the
//! same transaction as the change they record, with `record_event!`, which chains them
//! (format `tirage-audit-v1`, see [`crate::attest::chain`]): each event gets the next
//! `seq`, the hash of the event before it and its own hash. The one-row `audit_head`
//! table holds the end of the chain; every append updates it first, which takes the
//! write lock (SQLite) or the row lock (PostgreSQL), so concurrent appends queue and the
//! chain never forks. A batch of registrations (`store::batch`) reads the head once,
//! inserts its chained events together, then moves the head over all of them with one
//! update, which its trigger allows only over recorded events. The tables refuse
//! updates and deletes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, WritePool, on_db};
use crate::attest::chain::{self, AuditHead, ChainEvent, ChainVerifier};

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A staff member, by token id.
    Staff(String),
    /// An applicant acting on their own entry (with its access code).
    Applicant,
    /// The service itself (start-up, background jobs).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Self::Staff(id) => format!("staff:{id}"),
            Self::Applicant => "applicant".to_owned(),
            Self::System => "system".to_owned(),
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// The row id (internal; `seq` is the event's place in the chain).
    pub id: i64,
    /// The event's place in the chain: 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// UTC, to the microsecond, written `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the form hashed).
    #[serde(with = "chain::time_format")]
    #[schema(value_type = String, format = DateTime, example = "2026-12-05T10:00:00.000000Z")]
    pub at: DateTime<Utc>,
    /// `staff:<token id>`, `applicant` or `system`.
    pub actor: String,
    /// Such as `window.created`, `window.opened`, `entry.registered`, `entry.verified`.
    pub action: String,
    pub window_id: Option<String>,
    pub entry_id: Option<String>,
    /// A JSON object with details that are not personal data.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The hash of the event before (64 zeros for the first event).
    pub prev_hash: String,
    /// SHA-256 over this event and `prev_hash` (`tirage-audit-v1`), hex.
    pub hash: String,
}

impl AuditEvent {
    /// The event as the chain checks it.
    pub fn chain_event(&self) -> ChainEvent {
        ChainEvent {
            seq: u64::try_from(self.seq).unwrap_or_default(),
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            window_id: self.window_id.clone(),
            entry_id: self.entry_id.clone(),
            detail: self.detail.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    seq: Option<i64>,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    window_id: Option<String>,
    entry_id: Option<String>,
    detail: String,
    prev_hash: Option<String>,
    hash: Option<String>,
}

impl AuditRow {
    fn detail(&self) -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&self.detail)
            .map_err(|_| StoreError::Corrupt(format!("audit_events.detail of {}", self.id)))
    }
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let detail = row.detail()?;
        let (Some(seq), Some(prev_hash), Some(hash)) = (row.seq, row.prev_hash, row.hash) else {
            return Err(StoreError::Corrupt(format!(
                "audit event {} is not chained",
                row.id
            )));
        };
        Ok(Self {
            id: row.id,
            seq,
            at: chain::event_time(row.at),
            actor: row.actor,
            action: row.action,
            window_id: row.window_id,
            entry_id: row.entry_id,
            detail,
            prev_hash,
            hash,
        })
    }
}

const SELECT_EVENT: &str = "select id, seq, at, actor, action, window_id, entry_id, detail,
    prev_hash, hash from audit_events";

/// The event at place `seq` that follows the one with hash `prev_hash`: `(seq,
/// prev_hash)` is what the update of `audit_head` returns.
pub(crate) fn next_event(
    (seq, prev_hash): (i64, String),
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    window_id: Option<impl AsRef<str>>,
    entry_id: Option<impl AsRef<str>>,
    detail: &serde_json::Value,
) -> Result<ChainEvent, StoreError> {
    let prev = AuditHead {
        count: u64::try_from(seq - 1)
            .map_err(|_| StoreError::Corrupt(format!("audit_head.count = {}", seq - 1)))?,
        hash: prev_hash,
        at: None,
    };
    chain::chain_next(
        &prev,
        at,
        actor,
        action,
        window_id.as_ref().map(AsRef::as_ref),
        entry_id.as_ref().map(AsRef::as_ref),
        detail.clone(),
    )
    .map_err(|e| StoreError::Corrupt(format!("audit event cannot be chained: {e}")))
}

/// Appends an event inside a write transaction: `record_event!(tx, now, &actor,
/// "action", window_id: Option<&str>, entry_id: Option<&str>, detail: serde_json::Value)`.
///
/// The update of `audit_head` comes first: it takes the lock that serialises appends,
/// and gives the event's `seq` (the new count) and the hash it chains from.
macro_rules! record_event {
    ($tx:expr, $now:expr, $actor:expr, $action:expr, $window:expr, $entry:expr, $detail:expr) => {{
        let head: (i64, String) = sqlx::query_as(
            "update audit_head set count = count + 1 where id = 1 returning count, hash",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let head_seq = head.0;
        let event = $crate::store::audit::next_event(
            head,
            $now,
            &$actor.label(),
            ::std::convert::AsRef::<str>::as_ref(&$action),
            $window,
            $entry,
            &$detail,
        )?;
        sqlx::query(
            "insert into audit_events
                 (seq, at, actor, action, window_id, entry_id, detail, prev_hash, hash)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(head_seq)
        .bind(event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.window_id)
        .bind(&event.entry_id)
        .bind($crate::attest::canonical_json(&event.detail))
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("update audit_head set hash = $1, at = $2 where id = 1")
            .bind(&event.hash)
            .bind(event.at)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use record_event;

/// How many events a page of the chain check reads at once.
const VERIFY_PAGE: u32 = 10_000;

/// The result of re-checking the stored chain ([`Store::verify_audit_log`]).
#[derive(Debug, Clone)]
pub struct AuditCheck {
    /// The head as stored in `audit_head` when the check began.
    pub stored_head: AuditHead,
    /// Events checked and found in order.
    pub checked: u64,
    /// The head recomputed from the events checked.
    pub computed_head: AuditHead,
    /// The first problem found, if any.
    pub problem: Option<AuditProblem>,
}

/// What is wrong with the stored chain, and from which event on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditProblem {
    pub seq: Option<u64>,
    /// `missing`, `out_of_order`, `broken_link`, `edited`, `head_mismatch`, `truncated`,
    /// `unhashable` or `unchained`.
    pub kind: String,
    pub message: String,
}

impl Store {
    /// A window's events, oldest first.
    pub async fn window_events(&self, window_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENT} where window_id = $1 order by seq"
            )))
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Where the chain ends: the number of events and the last hash.
    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let (count, hash, at): (i64, String, Option<DateTime<Utc>>) = on_db!(self, |pool| {
            sqlx::query_as("select count, hash, at from audit_head where id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(AuditHead {
            count: u64::try_from(count)
                .map_err(|_| StoreError::Corrupt(format!("audit_head.count = {count}")))?,
            hash,
            at: at.map(chain::event_time),
        })
    }

    /// Up to `limit` events after place `after`, in chain order.
    pub async fn audit_events(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows: Vec<AuditRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENT} where seq > $1 order by seq limit $2"
            )))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Re-checks the whole stored chain, page by page: every event in place, linked to
    /// the one before and hashing to its recorded hash, and the chain ending at the
    /// stored head. Reports the first problem.
    pub async fn verify_audit_log(&self) -> Result<AuditCheck, StoreError> {
        let stored_head = self.audit_head().await?;
        let mut verifier = ChainVerifier::new();
        let check = |verifier: &ChainVerifier, problem: Option<AuditProblem>| AuditCheck {
            stored_head: stored_head.clone(),
            checked: verifier.count(),
            computed_head: verifier.head(),
            problem,
        };
        let chain_problem = |error: chain::ChainError| {
            let kind = serde_json::to_value(&error)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Some(AuditProblem {
                seq: Some(error.seq()),
                kind,
                message: error.to_string(),
            })
        };
        if let Err(error) = verifier.expect_head(&stored_head) {
            return Ok(check(&verifier, chain_problem(error)));
        }
        let unchained: i64 = on_db!(self, |pool| {
            sqlx::query_scalar(
                "select count(*) from audit_events where seq is null or hash is null",
            )
            .fetch_one(pool)
            .await?
        });
        if unchained > 0 {
            return Ok(check(
                &verifier,
                Some(AuditProblem {
                    seq: None,
                    kind: "unchained".into(),
                    message: format!("{unchained} events have no place in the chain"),
                }),
            ));
        }
        let mut after = 0;
        loop {
            let page = self.audit_events(after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = u64::try_from(last.seq).unwrap_or(u64::MAX);
            for event in &page {
                if let Err(error) = verifier.push(&event.chain_event()) {
                    return Ok(check(&verifier, chain_problem(error)));
                }
            }
        }
        Ok(match verifier.clone().finish() {
            Ok(_) => check(&verifier, None),
            Err(error) => check(&verifier, chain_problem(error)),
        })
    }

    /// Chains the events recorded before the audit log was chained (they have no hash
    /// yet), in the order they were recorded. Returns how many were chained; safe to run
    /// at every start.
    pub async fn seal_audit_log(&self) -> Result<u64, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENT} where hash is null order by id"
            )))
            .fetch_all(&mut *tx)
            .await?;
            let sealed = rows.len() as u64;
            for row in rows {
                let detail = row.detail()?;
                let head: (i64, String) = sqlx::query_as(
                    "update audit_head set count = count + 1 where id = 1 returning count, hash",
                )
                .fetch_one(&mut *tx)
                .await?;
                let seq = head.0;
                let event = next_event(
                    head,
                    row.at,
                    &row.actor,
                    &row.action,
                    row.window_id.as_deref(),
                    row.entry_id.as_deref(),
                    &detail,
                )?;
                sqlx::query(
                    "update audit_events set seq = $1, prev_hash = $2, hash = $3 where id = $4",
                )
                .bind(seq)
                .bind(&event.prev_hash)
                .bind(&event.hash)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("update audit_head set hash = $1, at = $2 where id = 1")
                    .bind(&event.hash)
                    .bind(event.at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(sealed)
        })
    }
}
