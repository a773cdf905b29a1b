//! Retention: erasing the personal data of a window's entries once its slots are long
//! past.
//!
//! What is erased: names, birth date, nationality, document number and country, e-mail
//! address, phone, permit expiry, the four identity keys (plain digests of folded
//! identity values, which anyone could recompute from a guess), the live verification
//! codes, the names and reasons of staff corrections, and the window's idempotency
//! records. What stays: the entry rows themselves (ids, statuses, weights, counts), the
//! commitment, the draw tables, the bundle and the audit log, which hold no personal
//! data and are all that `tirage verify` needs. The outbox already erases a mail's
//! recipient and body as soon as it is sent or given up.
//!
//! The erasure of a window happens once: it starts with a conditional update of
//! `windows.personal_data_erased_at`, in the same transaction as the erasure and its
//! audit event, so concurrent instances or a restart halfway cannot do it twice.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgPool, SqlitePool};

use super::audit::{Actor, record_event};
use super::{Store, StoreError, WritePool, on_db};

/// What one erasure changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// Entries whose personal data was blanked.
    pub entries: u64,
    /// Staff name corrections whose names and reason were blanked.
    pub corrections: u64,
}

/// What an erased birth date is stored as on each engine: SQLite's column is `text not
/// null`, so an empty text; PostgreSQL's is a `date`, made nullable by migration 0017,
/// so null. (Readers never decode it: they refuse erased entries first.)
trait ErasedBirthDate {
    type Value;
    fn erased_birth_date(&self) -> Self::Value;
}

impl ErasedBirthDate for SqlitePool {
    type Value = &'static str;
    fn erased_birth_date(&self) -> &'static str {
        ""
    }
}

impl ErasedBirthDate for PgPool {
    type Value = Option<NaiveDate>;
    fn erased_birth_date(&self) -> Option<NaiveDate> {
        None
    }
}

/// Slot times are stored as `YYYY-MM-DDTHH:MM:SSZ` text, so the cutoff is compared in
/// that form.
fn slot_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    /// Windows whose personal data is due for erasure at `now`: past registration
    /// (closed, drawn or cancelled), not erased yet, with every slot at least
    /// `retention` in the past.
    pub async fn due_erasures(
        &self,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let cutoff = slot_time(now - retention);
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "select w.id from windows w
                 where w.personal_data_erased_at is null
                   and w.state in ('closed', 'drawn', 'cancelled')
                   and exists (select 1 from slots s where s.window_id = w.id)
                   and not exists (select 1 from slots s where s.window_id = w.id and s.starts_at > $1)
                 order by w.id",
            )
            .bind(cutoff)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Erases the personal data of a window's entries, once. Returns `None` when it was
    /// already done (by this instance before a restart, or by another one).
    pub async fn erase_personal_data(
        &self,
        window_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Erasure>, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query(
                "update windows set personal_data_erased_at = $2
                 where id = $1 and personal_data_erased_at is null
                   and state in ('closed', 'drawn', 'cancelled')",
            )
            .bind(window_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                return Ok(None);
            }
            // The identity keys get a value unique to the entry, so that the partial
            // unique indexes on them still hold.
            let entries = sqlx::query(
                "update entries set
                     family_name = '', given_names = '', birth_date = $3, nationality = '',
                     document_number = '', document_country = '', email = null, phone = null,
                     permit_expires_on = null,
                     document_key = 'erased:' || id, person_key = 'erased:' || id,
                     email_key = null, phone_key = null, code_hash = null,
                     code_expires_at = null, code_sent_at = null, anonymised_at = $2
                 where window_id = $1 and anonymised_at is null",
            )
            .bind(window_id)
            .bind(now)
            .bind(pool.erased_birth_date())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let corrections = sqlx::query(
                "update entry_corrections set reason = '', old_family_name = '',
                     old_given_names = '', new_family_name = '', new_given_names = ''
                 where window_id = $1",
            )
            .bind(window_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "delete from idempotency_keys
                 where scope = 'online:' || $1 or scope like 'counter:' || $1 || ':%'",
            )
            .bind(window_id)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "entries": entries, "corrections": corrections });
            record_event!(
                tx,
                now,
                Actor::System,
                "window.personal_data_erased",
                Some(window_id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
            Ok(Some(Erasure {
                entries,
                corrections,
            }))
        })
    }

    /// When the window's personal data was erased, if it was.
    pub async fn personal_data_erased_at(
        &self,
        window_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<Option<DateTime<Utc>>> = on_db!(self, |pool| {
            sqlx::query_scalar("select personal_data_erased_at from windows where id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)
    }
}
