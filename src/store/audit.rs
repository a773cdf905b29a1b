//! The audit trail: an append-only record of what staff and applicants did.
//!
//! Events carry ids, actions and states, never personal data. They are written in the
//! same transaction as the change they record; the table refuses updates and deletes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, on_db};

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
    pub id: i64,
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
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    window_id: Option<String>,
    entry_id: Option<String>,
    detail: String,
}

/// Appends an event inside a transaction: `record_event!(tx, now, &actor, "action",
/// window_id: Option<&str>, entry_id: Option<&str>, detail: serde_json::Value)`.
macro_rules! record_event {
    ($tx:expr, $now:expr, $actor:expr, $action:expr, $window:expr, $entry:expr, $detail:expr) => {
        sqlx::query(
            "insert into audit_events (at, actor, action, window_id, entry_id, detail)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind($now)
        .bind($actor.label())
        .bind($action)
        .bind($window)
        .bind($entry)
        .bind($detail.to_string())
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use record_event;

impl Store {
    /// A window's events, oldest first.
    pub async fn window_events(&self, window_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select id, at, actor, action, window_id, entry_id, detail
                 from audit_events where window_id = $1 order by id",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: row.id,
                    at: row.at,
                    actor: row.actor,
                    action: row.action,
                    window_id: row.window_id,
                    entry_id: row.entry_id,
                    detail: serde_json::from_str(&row.detail).map_err(|_| {
                        StoreError::Corrupt(format!("audit_events.detail of {}", row.id))
                    })?,
                })
            })
            .collect()
    }
}
