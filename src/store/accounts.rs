//! Staff accounts: a user name and a password hash, acting through a staff token row.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::{Actor, record_event};
use super::staff::{Role, StaffToken};
use super::{Store, StoreError, WritePool, on_db, unique_violation};

/// An account to create. `token_hash` is the hash of a random token nobody is given.
#[derive(Debug)]
pub struct NewStaffAccount<'a> {
    pub username: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    pub token_id: &'a str,
    pub token_hash: &'a str,
}

/// An account as listed: its user name and its token (name, role, revocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAccount {
    pub username: String,
    pub token: StaffToken,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Creates an account and its token in one transaction; `None` (and nothing
    /// stored) when the user name is taken.
    pub async fn create_staff_account(
        &self,
        account: &NewStaffAccount<'_>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Option<StaffAccount>, StoreError> {
        let created_by = match actor {
            Actor::Staff(id) => Some(id.as_str()),
            Actor::Applicant | Actor::System => None,
        };
        let created = on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "insert into staff_tokens (id, name, role, token_hash, created_at, created_by)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(account.token_id)
            .bind(account.name)
            .bind(account.role.as_str())
            .bind(account.token_hash)
            .bind(now)
            .bind(created_by)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "insert into staff_accounts (username, token_id, password_hash, created_at, updated_at)
                 values ($1, $2, $3, $4, $4)",
            )
            .bind(account.username)
            .bind(account.token_id)
            .bind(account.password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(error) if unique_violation(&error).is_some() => false,
                Err(error) => return Err(error.into()),
                Ok(_) => {
                    let detail =
                        json!({ "token": account.token_id, "role": account.role.as_str() });
                    record_event!(
                        tx,
                        now,
                        actor,
                        "staff_account.created",
                        None::<&str>,
                        None::<&str>,
                        detail
                    );
                    tx.commit().await?;
                    true
                }
            }
        });
        if !created {
            return Ok(None);
        }
        self.staff_account(account.username)
            .await
            .map(|found| found.map(|(account, _)| account))
    }

    /// The account with this user name and its password hash, revoked or not.
    pub async fn staff_account(
        &self,
        username: &str,
    ) -> Result<Option<(StaffAccount, String)>, StoreError> {
        let row: Option<(String, String, String, DateTime<Utc>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select username, token_id, password_hash, created_at
                 from staff_accounts where username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
        });
        let Some((username, token_id, hash, created_at)) = row else {
            return Ok(None);
        };
        let token = self.staff_token(&token_id).await?;
        Ok(Some((
            StaffAccount {
                username,
                token,
                created_at,
            },
            hash,
        )))
    }

    /// Every account, by user name.
    pub async fn staff_accounts(&self) -> Result<Vec<StaffAccount>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select username, token_id, created_at from staff_accounts order by username",
            )
            .fetch_all(pool)
            .await?
        });
        let mut accounts = Vec::with_capacity(rows.len());
        for (username, token_id, created_at) in rows {
            accounts.push(StaffAccount {
                username,
                token: self.staff_token(&token_id).await?,
                created_at,
            });
        }
        Ok(accounts)
    }
}
