//! Staff tokens: who may configure windows, register at the counter, or read the audit
//! trail. Tokens are stored as hashes; the token itself is shown once, at creation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{Actor, record_event};
use super::{Store, StoreError, WritePool, on_db, parse_column};

/// What a staff token may do. Each role includes the ones after it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads drafts, entry counts and the audit trail.
    Auditor,
    /// Also creates, edits, opens and cancels windows, and registers at the counter.
    Staff,
    /// Also creates and revokes staff tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::Staff => "staff",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Auditor, Self::Staff, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    /// Whether this role may do what `needed` may.
    pub fn includes(self, needed: Self) -> bool {
        self >= needed
    }
}

/// A staff token as stored (without its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StaffToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct StaffTokenRow {
    id: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<StaffTokenRow> for StaffToken {
    type Error = StoreError;
    fn try_from(row: StaffTokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            role: parse_column("staff_tokens.role", &row.role, Role::parse)?,
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            created_by: row.created_by,
            revoked_at: row.revoked_at,
        })
    }
}

const SELECT_TOKEN: &str =
    "select id, name, role, created_at, created_by, revoked_at from staff_tokens";

/// The name given to the token seeded from the environment.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap admin";

impl Store {
    /// Makes sure the operator's bootstrap token exists as an admin token. Running it
    /// again with the same token changes nothing; a revoked token stays revoked.
    pub async fn seed_admin_token(
        &self,
        id: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "insert into staff_tokens (id, name, role, token_hash, created_at)
                 values ($1, $2, 'admin', $3, $4)
                 on conflict (token_hash) do nothing",
            )
            .bind(id)
            .bind(BOOTSTRAP_TOKEN_NAME)
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                record_event!(
                    tx,
                    now,
                    Actor::System,
                    "staff_token.seeded",
                    None::<&str>,
                    None::<&str>,
                    json!({ "token": id })
                );
            }
            tx.commit().await?;
            inserted
        });
        Ok(inserted)
    }

    pub async fn create_staff_token(
        &self,
        id: &str,
        name: &str,
        role: Role,
        token_hash: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffToken, StoreError> {
        let created_by = match actor {
            Actor::Staff(id) => Some(id.as_str()),
            Actor::Applicant | Actor::System => None,
        };
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "insert into staff_tokens (id, name, role, token_hash, created_at, created_by)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(now)
            .bind(created_by)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "token": id, "role": role.as_str() });
            record_event!(
                tx,
                now,
                actor,
                "staff_token.created",
                None::<&str>,
                None::<&str>,
                detail
            );
            tx.commit().await?;
        });
        self.staff_token(id).await
    }

    pub async fn staff_token(&self, id: &str) -> Result<StaffToken, StoreError> {
        let row: Option<StaffTokenRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_TOKEN} where id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The live (not revoked) token with this hash.
    pub async fn staff_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<StaffToken>, StoreError> {
        let row: Option<StaffTokenRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_TOKEN} where token_hash = $1 and revoked_at is null"
            )))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    pub async fn staff_tokens(&self) -> Result<Vec<StaffToken>, StoreError> {
        let rows: Vec<StaffTokenRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_TOKEN} order by created_at, id"
            )))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes a token; revoking twice keeps the first revocation time.
    pub async fn revoke_staff_token(
        &self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffToken, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "update staff_tokens set revoked_at = $2 where id = $1 and revoked_at is null",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                record_event!(
                    tx,
                    now,
                    actor,
                    "staff_token.revoked",
                    None::<&str>,
                    None::<&str>,
                    json!({ "token": id })
                );
            }
            tx.commit().await?;
        });
        self.staff_token(id).await
    }
}
