//! The retention task: a configured time after the last slot of a window (90 days
//! unless `--retention-days` says otherwise), the personal data of its entries is
//! erased; see [`Store::erase_personal_data`] for what goes and what stays.
//!
//! Like the scheduler, it keeps no state: every tick asks the database which windows
//! are due, and each erasure is claimed by a conditional update, so it happens once per
//! window, after a restart too.

use chrono::{DateTime, Duration, Utc};

use crate::store::Store;

/// Erases the personal data of every window due at `now`. Returns how many windows were
/// erased by this call.
pub async fn tick(store: &Store, now: DateTime<Utc>, retention: Duration) -> usize {
    let due = match store.due_erasures(now, retention).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(error = %error, "cannot read windows due for erasure");
            return 0;
        }
    };
    let mut done = 0;
    for window_id in due {
        match store.erase_personal_data(&window_id, now).await {
            Ok(Some(erasure)) => {
                done += 1;
                tracing::info!(
                    window.id = %window_id,
                    entries = erasure.entries,
                    corrections = erasure.corrections,
                    "personal data erased at the end of the retention period"
                );
            }
            // another instance did it first
            Ok(None) => {}
            Err(error) => {
                tracing::error!(window.id = %window_id, error = %error, "erasure of personal data failed");
            }
        }
    }
    done
}
