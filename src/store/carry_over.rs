//! Carry-over: entries drawn without a slot continue into the next window of the same
//! site and procedure, with one more unsuccessful draw counted for the bonus.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::audit::{Actor, record_event};
use super::entries::{CodeColumns, NewCode};
use super::outbox::{NewMail, insert_mail};
use super::{Store, StoreError, WritePool, on_db};

/// An entry that may be carried into a new window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CarryCandidate {
    /// The entry it continues.
    pub id: String,
    pub window_id: String,
    pub email: Option<String>,
    pub language: String,
    pub permit_expires_on: Option<NaiveDate>,
    pub unsuccessful_draws: i64,
}

/// A carried entry, ready to store.
#[derive(Debug, Clone)]
pub struct CarriedEntry {
    pub from: String,
    pub id: String,
    pub weight: u32,
    pub unsuccessful_draws: i64,
    /// Entries with an e-mail address confirm with a code; without one (registered at
    /// the counter) they are carried as eligible, since they cannot be asked.
    pub confirmation: Option<Confirmation>,
}

/// The code an applicant confirms a carried entry with, and its mail.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub code_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub mail: NewMail,
}

impl Store {
    /// Entries of earlier drawn windows of this site and procedure that the draw left
    /// without a slot, still eligible and still waiting: never given a slot from the
    /// waiting list, not cancelled, no offer open or declined, and not carried yet.
    pub async fn carry_over_candidates(
        &self,
        window_id: &str,
        site: &str,
        procedure: &str,
    ) -> Result<Vec<CarryCandidate>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "select e.id, e.window_id, e.email, e.language, e.permit_expires_on,
                        e.unsuccessful_draws
                 from entries e
                 join draw_results r on r.entry_id = e.id
                 join windows w on w.id = e.window_id
                 where w.site = $1 and w.procedure = $2 and w.state = 'drawn' and w.id <> $3
                   and r.slot_id is null and e.status = 'eligible'
                   and e.anonymised_at is null
                   and not exists (select 1 from entries c where c.carried_from = e.id)
                   and not exists (select 1 from slot_assignments a where a.entry_id = e.id)
                   and not exists (select 1 from cancellations x where x.entry_id = e.id)
                   and not exists (select 1 from offers o
                                   where o.entry_id = e.id and o.state in ('open', 'declined'))
                 order by e.window_id, r.rank",
            )
            .bind(site)
            .bind(procedure)
            .bind(window_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Stores carried entries in `window_id`, each with its confirmation code and mail,
    /// in one transaction. A person who already registered in the new window keeps
    /// that entry: the carried one is skipped (the duplicate rules decide). Returns the
    /// ids actually carried, with their outbox mail ids.
    pub async fn insert_carried(
        &self,
        window_id: &str,
        carried: &[CarriedEntry],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut done = Vec::new();
            for entry in carried {
                let (status, verified_at) = match entry.confirmation {
                    Some(_) => ("pending_verification", None),
                    None => ("eligible", Some(now)),
                };
                let code = entry.confirmation.as_ref().map(|confirmation| NewCode {
                    code_hash: &confirmation.code_hash,
                    expires_at: confirmation.expires_at,
                });
                let code_columns = CodeColumns::of(code.as_ref(), now);
                let inserted = sqlx::query(
                    "insert into entries (id, window_id, status, channel, access_code_hash,
                         family_name, given_names, birth_date, nationality, document_kind,
                         document_number, document_country, email, phone, permit_expires_on,
                         language, unsuccessful_draws, weight, document_key, person_key,
                         email_key, phone_key, registered_by, created_at, verified_at,
                         carried_from, code_hash, code_expires_at, code_sends, code_sent_at)
                     select $1, $2, $3, channel, access_code_hash,
                         family_name, given_names, birth_date, nationality, document_kind,
                         document_number, document_country, email, phone, permit_expires_on,
                         language, $4, $5, document_key, person_key,
                         email_key, phone_key, registered_by, $6, $7,
                         id, $9, $10, $11, $12
                     from entries where id = $8
                     on conflict do nothing",
                )
                .bind(&entry.id)
                .bind(window_id)
                .bind(status)
                .bind(entry.unsuccessful_draws)
                .bind(i64::from(entry.weight))
                .bind(now)
                .bind(verified_at)
                .bind(&entry.from)
                .bind(code_columns.hash)
                .bind(code_columns.expires_at)
                .bind(code_columns.sends)
                .bind(code_columns.sent_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    continue;
                }
                let outbox_id = match &entry.confirmation {
                    Some(confirmation) => Some(insert_mail!(tx, confirmation.mail, now)),
                    None => None,
                };
                let detail = json!({
                    "from_entry": entry.from,
                    "unsuccessful_draws": entry.unsuccessful_draws,
                    "weight": entry.weight,
                });
                record_event!(
                    tx,
                    now,
                    Actor::System,
                    "entry.carried_over",
                    Some(window_id),
                    Some(entry.id.as_str()),
                    detail
                );
                done.push((entry.id.clone(), outbox_id));
            }
            tx.commit().await?;
            Ok(done)
        })
    }
}
