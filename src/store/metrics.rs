//! Counts for the operations dashboard (`/metrics`): read from the database at each
//! scrape, so every instance reports the same totals and a restart loses nothing.

use super::{Store, StoreError, on_db};

/// What `/metrics` reports from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationalCounts {
    /// Entries ever registered, by channel (`online`, `counter`), withdrawn ones included.
    pub registrations: Vec<(String, i64)>,
    /// Windows by state (`draft`, `open`, `closed`, `drawn`, `cancelled`).
    pub windows: Vec<(String, i64)>,
    /// Draws made (one per drawn window).
    pub draws: i64,
    /// Mails waiting to be sent (new, or to be retried).
    pub outbox_pending: i64,
    /// Mails given up after every attempt failed.
    pub outbox_failed: i64,
}

impl Store {
    /// The counts of [`OperationalCounts`], in one read.
    pub async fn operational_counts(&self) -> Result<OperationalCounts, StoreError> {
        Ok(on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Kept by the database (migration 0030): reading every entry at each
            // scrape cost 0.4 s with a national window's million entries.
            let registrations: Vec<(String, i64)> = sqlx::query_as(
                "select channel, n from entry_channel_counts where n > 0 order by channel",
            )
            .fetch_all(&mut *tx)
            .await?;
            let windows: Vec<(String, i64)> =
                sqlx::query_as("select state, count(*) from windows group by state order by state")
                    .fetch_all(&mut *tx)
                    .await?;
            let draws: i64 = sqlx::query_scalar("select count(*) from draws")
                .fetch_one(&mut *tx)
                .await?;
            // Each count reads an index holding just those mails (outbox_due,
            // outbox_failed), not the outbox, which keeps a row for every mail sent.
            let (outbox_pending, outbox_failed): (i64, i64) = sqlx::query_as(
                "select
                     (select count(*) from outbox where sent_at is null and failed_at is null),
                     (select count(*) from outbox where failed_at is not null)",
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            OperationalCounts {
                registrations,
                windows,
                draws,
                outbox_pending,
                outbox_failed,
            }
        }))
    }
}
