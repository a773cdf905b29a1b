//! Entries: registration, verification of the contact, withdrawal.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{Actor, record_event};
use super::idempotency::{IdempotencyRequest, check_idempotency, store_idempotency};
use super::outbox::{MAIL_LEASE, NewMail, insert_mail};
use super::{Store, StoreError, WritePool, duplicate_rule, on_db, parse_column};
use crate::domain::codes::{MAX_CODE_ATTEMPTS, MAX_CODE_SENDS, verification_code_matches};
use crate::domain::identity::{DuplicateKeys, DuplicateRule};
use crate::domain::registration::{Channel, Registration};
use crate::domain::window::{WindowState, check_registration_period};

/// Where an entry stands before the draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum EntryStatus {
    /// Registered online; the contact has not been verified yet. Not drawn unless
    /// verified before registration closes.
    PendingVerification,
    /// Verified (by code, or in person at the counter): takes part in the draw.
    Eligible,
    /// Withdrawn by the applicant.
    Withdrawn,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingVerification => "pending_verification",
            Self::Eligible => "eligible",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::PendingVerification, Self::Eligible, Self::Withdrawn]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many entries of a window are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryCounts {
    pub pending_verification: i64,
    pub eligible: i64,
    pub withdrawn: i64,
}

/// An entry as stored, personal data included: for its owner and for staff only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub id: String,
    pub window_id: String,
    pub status: EntryStatus,
    pub channel: Channel,
    pub family_name: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub nationality: String,
    pub document_kind: String,
    pub document_number: String,
    pub document_country: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub permit_expires_on: Option<NaiveDate>,
    pub language: String,
    pub unsuccessful_draws: i64,
    pub weight: i64,
    pub created_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    window_id: String,
    status: String,
    channel: String,
    family_name: String,
    given_names: String,
    birth_date: NaiveDate,
    nationality: String,
    document_kind: String,
    document_number: String,
    document_country: String,
    email: Option<String>,
    phone: Option<String>,
    permit_expires_on: Option<NaiveDate>,
    language: String,
    unsuccessful_draws: i64,
    weight: i64,
    created_at: DateTime<Utc>,
    verified_at: Option<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
}

impl TryFrom<EntryRow> for EntryRecord {
    type Error = StoreError;
    fn try_from(row: EntryRow) -> Result<Self, StoreError> {
        Ok(Self {
            status: parse_column("entries.status", &row.status, EntryStatus::parse)?,
            channel: parse_column("entries.channel", &row.channel, Channel::parse)?,
            id: row.id,
            window_id: row.window_id,
            family_name: row.family_name,
            given_names: row.given_names,
            birth_date: row.birth_date,
            nationality: row.nationality,
            document_kind: row.document_kind,
            document_number: row.document_number,
            document_country: row.document_country,
            email: row.email,
            phone: row.phone,
            permit_expires_on: row.permit_expires_on,
            language: row.language,
            unsuccessful_draws: row.unsuccessful_draws,
            weight: row.weight,
            created_at: row.created_at,
            verified_at: row.verified_at,
            withdrawn_at: row.withdrawn_at,
        })
    }
}

/// A registration ready to store: everything is validated and derived by the caller.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub id: &'a str,
    pub window_id: &'a str,
    pub channel: Channel,
    pub access_code_hash: &'a [u8],
    pub registration: &'a Registration,
    pub keys: &'a DuplicateKeys,
    pub weight: u32,
    pub unsuccessful_draws: u32,
    /// The staff token that registered the entry at the counter.
    pub registered_by: Option<&'a str>,
}

/// A verification code to store (hashed) with its expiry.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub code_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// The verification code columns of a new entry (`code_hash`, `code_expires_at`,
/// `code_sends`, `code_sent_at`): the code, its expiry, one code sent and when; all
/// null but the count (zero) without a code.
pub(crate) struct CodeColumns<'a> {
    pub hash: Option<&'a [u8]>,
    pub expires_at: Option<DateTime<Utc>>,
    pub sends: i64,
    pub sent_at: Option<DateTime<Utc>>,
}

impl<'a> CodeColumns<'a> {
    pub fn of(code: Option<&NewCode<'a>>, now: DateTime<Utc>) -> Self {
        Self {
            hash: code.map(|code| code.code_hash),
            expires_at: code.map(|code| code.expires_at),
            sends: i64::from(code.is_some()),
            sent_at: code.map(|_| now),
        }
    }
}

/// What [`Store::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The entry was stored; its mail, if any, waits in the outbox under this id.
    Created { outbox_id: Option<i64> },
    /// The same request was already answered under its idempotency key: here is that
    /// answer again.
    Replayed { status: u16, body: String },
}

/// What [`Store::verify_entry`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    AlreadyVerified,
    /// The code was wrong; this many attempts are left.
    Incorrect {
        attempts_left: u32,
    },
    Expired,
    /// Too many wrong attempts: the code is dead; a new one may be asked for.
    Exhausted,
}

/// What [`Store::resend_code`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendOutcome {
    /// A new code replaced the old one; its mail waits in the outbox under this id.
    Sent { outbox_id: i64 },
    /// The last code was sent too recently; ask again after this many seconds.
    TooSoon { retry_after_secs: i64 },
    /// No more codes for this entry.
    TooMany,
}

const SELECT_ENTRY: &str = "
    select id, window_id, status, channel, family_name, given_names, birth_date, nationality,
           document_kind, document_number, document_country, email, phone, permit_expires_on,
           language, unsuccessful_draws, weight, created_at, verified_at, withdrawn_at
    from entries";

/// Reads the window's state and registration period inside a transaction and refuses
/// when registration is not open at `now`.
macro_rules! check_period {
    ($tx:expr, $window_id:expr, $now:expr) => {{
        let window: Option<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "select state, registration_opens_at, registration_closes_at from windows where id = $1",
        )
        .bind($window_id)
        .fetch_optional(&mut *$tx)
        .await?;
        let (state, opens_at, closes_at) = window.ok_or(StoreError::NotFound)?;
        let state = parse_column("windows.state", &state, WindowState::parse)?;
        check_registration_period(state, opens_at, closes_at, $now)?;
    }};
}

/// Reads an entry's window and status inside a transaction.
macro_rules! entry_status {
    ($tx:expr, $entry_id:expr) => {{
        let row: Option<(String, String)> =
            sqlx::query_as("select window_id, status from entries where id = $1")
                .bind($entry_id)
                .fetch_optional(&mut *$tx)
                .await?;
        let (window_id, status) = row.ok_or(StoreError::NotFound)?;
        (
            window_id,
            parse_column("entries.status", &status, EntryStatus::parse)?,
        )
    }};
}

/// One registration inside an open write transaction (or savepoint) `$tx`: the
/// idempotency check, the window's state and period, the duplicate rules, the entry,
/// its verification code, its mail, the idempotency record and the audit event.
/// Evaluates to `Result<RegisterOutcome, StoreError>`; every refusal comes before the
/// first write except the purge of an expired idempotency record.
macro_rules! register_in {
    ($tx:expr, $entry:expr, $code:expr, $mail:expr, $idempotency:expr, $now:expr) => {{
        let (entry, code, mail, idempotency, now): (
            &NewEntry<'_>,
            Option<&NewCode<'_>>,
            Option<&NewMail>,
            Option<&IdempotencyRequest<'_>>,
            DateTime<Utc>,
        ) = ($entry, $code, $mail, $idempotency, $now);
        let identity = &entry.registration.identity;
        let status = match entry.channel {
            Channel::Online => EntryStatus::PendingVerification,
            Channel::Counter => EntryStatus::Eligible,
        };
        let verified_at = (status == EntryStatus::Eligible).then_some(now);
        let outcome: Result<RegisterOutcome, StoreError> = async {
            if let Some(request) = idempotency
                && let Some(replay) = check_idempotency!($tx, request, now)
            {
                return Ok(replay);
            }
            check_period!($tx, entry.window_id, now);
            // One statement for the four rules, each an index lookup (a union: with
            // `or`, SQLite scans the window's entries), then the first rule in the
            // documented order names the refusal.
            let taken: Vec<String> = sqlx::query_scalar(
                "select 'document' from entries
                   where window_id = $1 and document_key = $2 and status <> 'withdrawn'
                 union all select 'person' from entries
                   where window_id = $1 and person_key = $3 and status <> 'withdrawn'
                 union all select 'email' from entries
                   where window_id = $1 and email_key = $4 and status <> 'withdrawn'
                 union all select 'phone' from entries
                   where window_id = $1 and phone_key = $5 and status <> 'withdrawn'",
            )
            .bind(entry.window_id)
            .bind(&entry.keys.document)
            .bind(&entry.keys.person)
            .bind(entry.keys.email.as_deref())
            .bind(entry.keys.phone.as_deref())
            .fetch_all(&mut *$tx)
            .await?;
            if let Some(rule) = DuplicateRule::ALL
                .into_iter()
                .find(|rule| taken.iter().any(|name| name == rule.as_str()))
            {
                return Err(StoreError::Duplicate(rule));
            }
            let code_columns = CodeColumns::of(code, now);
            let inserted = sqlx::query(
                "insert into entries (id, window_id, status, channel, access_code_hash,
                     family_name, given_names, birth_date, nationality, document_kind,
                     document_number, document_country, email, phone, permit_expires_on,
                     language, unsuccessful_draws, weight, document_key, person_key, email_key,
                     phone_key, registered_by, created_at, verified_at, code_hash,
                     code_expires_at, code_sends, code_sent_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)",
            )
            .bind(entry.id)
            .bind(entry.window_id)
            .bind(status.as_str())
            .bind(entry.channel.as_str())
            .bind(entry.access_code_hash)
            .bind(identity.family_name.as_str())
            .bind(identity.given_names.as_str())
            .bind(identity.birth_date)
            .bind(identity.nationality.as_str())
            .bind(identity.document.kind.as_str())
            .bind(identity.document.number.as_str())
            .bind(identity.document.country.as_str())
            .bind(identity.email.as_ref().map(|e| e.as_str()))
            .bind(identity.phone.as_ref().map(|p| p.as_str()))
            .bind(entry.registration.permit_expires_on)
            .bind(entry.registration.language.as_str())
            .bind(i64::from(entry.unsuccessful_draws))
            .bind(i64::from(entry.weight))
            .bind(&entry.keys.document)
            .bind(&entry.keys.person)
            .bind(entry.keys.email.as_deref())
            .bind(entry.keys.phone.as_deref())
            .bind(entry.registered_by)
            .bind(now)
            .bind(verified_at)
            .bind(code_columns.hash)
            .bind(code_columns.expires_at)
            .bind(code_columns.sends)
            .bind(code_columns.sent_at)
            .execute(&mut *$tx)
            .await;
            if let Err(error) = inserted {
                return Err(match duplicate_rule(&error) {
                    Some(rule) => StoreError::Duplicate(rule),
                    None => error.into(),
                });
            }
            let outbox_id = match mail {
                // queued claimed: the request's instance sends it from memory
                Some(mail) => Some(insert_mail!($tx, mail, now, now + MAIL_LEASE)),
                None => None,
            };
            if let Some(request) = idempotency {
                store_idempotency!($tx, request);
            }
            let actor = match entry.registered_by {
                Some(token_id) => Actor::Staff(token_id.to_owned()),
                None => Actor::Applicant,
            };
            let detail = json!({ "channel": entry.channel.as_str(), "weight": entry.weight });
            record_event!(
                $tx,
                now,
                actor,
                "entry.registered",
                Some(entry.window_id),
                Some(entry.id),
                detail
            );
            Ok(RegisterOutcome::Created { outbox_id })
        }
        .await;
        outcome
    }};
}

/// One registration of a batch given to [`Store::register_batch`].
#[derive(Debug, Clone)]
pub struct PendingRegistration<'a> {
    pub entry: NewEntry<'a>,
    pub code: Option<NewCode<'a>>,
    pub mail: Option<&'a NewMail>,
    pub idempotency: Option<&'a IdempotencyRequest<'a>>,
    pub now: DateTime<Utc>,
}

impl Store {
    /// Stores a registration, all or nothing: the idempotency check, the window's
    /// state and period, the duplicate rules, the entry, its verification code, its
    /// mail, the idempotency record and the audit event, in one write transaction.
    pub async fn register(
        &self,
        entry: &NewEntry<'_>,
        code: Option<&NewCode<'_>>,
        mail: Option<&NewMail>,
        idempotency: Option<&IdempotencyRequest<'_>>,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let outcome = register_in!(tx, entry, code, mail, idempotency, now)?;
            if let RegisterOutcome::Created { .. } = outcome {
                tx.commit().await?;
            }
            Ok(outcome)
        })
    }

    /// Stores several registrations in one write transaction (group commit): a refused
    /// one (a duplicate, a closed window) leaves no trace and does not affect the
    /// others, and all of the accepted ones become durable with one commit. Returns one
    /// outcome per registration, in order, only once the commit succeeded; if the
    /// batch as a whole fails, nothing of it is stored and the error is returned
    /// instead.
    ///
    /// The batch is first stored with a constant number of statements (the set-based
    /// path of [`super::batch`]); if that fails, nothing of it was stored, and it is
    /// stored again with [`Store::register_batch_by_savepoints`], which gives each
    /// registration its own exact answer whatever went wrong.
    pub async fn register_batch(
        &self,
        batch: &[PendingRegistration<'_>],
    ) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
        match self.register_set(batch).await {
            Ok(outcomes) => Ok(outcomes),
            Err(StoreError::Unplanned(why)) => {
                tracing::debug!(
                    batch.size = batch.len(),
                    why,
                    "storing a batch of registrations with a savepoint each"
                );
                self.register_batch_by_savepoints(batch).await
            }
            Err(error) => {
                tracing::warn!(batch.size = batch.len(), error = %error, "the set-based path failed for a batch of registrations; storing it with a savepoint each");
                self.register_batch_by_savepoints(batch).await
            }
        }
    }

    /// Stores several registrations in one write transaction, each in its own
    /// savepoint running the same statements as [`Store::register`]: the slower path
    /// that [`Store::register_batch`] falls back to.
    pub async fn register_batch_by_savepoints(
        &self,
        batch: &[PendingRegistration<'_>],
    ) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for item in batch {
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                let outcome = register_in!(
                    savepoint,
                    &item.entry,
                    item.code.as_ref(),
                    item.mail,
                    item.idempotency,
                    item.now
                );
                match outcome {
                    Ok(RegisterOutcome::Created { .. }) => savepoint.commit().await?,
                    _ => savepoint.rollback().await?,
                }
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }

    /// One entry, or [`StoreError::NotFound`], or [`StoreError::Erased`] once its
    /// personal data was erased by the retention task.
    pub async fn entry(&self, id: &str) -> Result<EntryRecord, StoreError> {
        let (row, exists): (Option<EntryRow>, bool) = on_db!(self, |pool| {
            let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_ENTRY} where id = $1 and anonymised_at is null"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let exists = row.is_some()
                || sqlx::query_scalar::<_, i64>(
                    "select cast(1 as bigint) from entries where id = $1",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?
                .is_some();
            (row, exists)
        });
        match row {
            Some(row) => row.try_into(),
            None if exists => Err(StoreError::Erased),
            None => Err(StoreError::NotFound),
        }
    }

    /// The stored hash of an entry's access code, if the entry exists.
    pub async fn entry_access_hash(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar("select access_code_hash from entries where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Checks a verification code. A wrong code is counted (and the count committed)
    /// before the answer; a right one makes the entry eligible and deletes the code.
    pub async fn verify_entry(
        &self,
        entry_id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifyOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let (window_id, status) = entry_status!(tx, entry_id);
            match status {
                EntryStatus::Eligible => return Ok(VerifyOutcome::AlreadyVerified),
                EntryStatus::Withdrawn => return Err(StoreError::EntryState(status)),
                EntryStatus::PendingVerification => {}
            }
            check_period!(tx, &window_id, now);
            let row: Option<(Vec<u8>, DateTime<Utc>, i64)> = sqlx::query_as(
                "select code_hash, code_expires_at, code_attempts from entries
                 where id = $1 and code_hash is not null",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((code_hash, expires_at, attempts)) = row else {
                return Ok(VerifyOutcome::Exhausted);
            };
            let max = i64::from(MAX_CODE_ATTEMPTS);
            if attempts >= max {
                return Ok(VerifyOutcome::Exhausted);
            }
            if now >= expires_at {
                return Ok(VerifyOutcome::Expired);
            }
            if !verification_code_matches(entry_id, code, &code_hash) {
                sqlx::query("update entries set code_attempts = code_attempts + 1 where id = $1")
                    .bind(entry_id)
                    .execute(&mut *tx)
                    .await?;
                let detail = json!({ "attempt": attempts + 1 });
                record_event!(
                    tx,
                    now,
                    Actor::Applicant,
                    "entry.verification_failed",
                    Some(&window_id),
                    Some(entry_id),
                    detail
                );
                tx.commit().await?;
                let left = u32::try_from(max - attempts - 1).unwrap_or(0);
                return Ok(if left == 0 {
                    VerifyOutcome::Exhausted
                } else {
                    VerifyOutcome::Incorrect {
                        attempts_left: left,
                    }
                });
            }
            sqlx::query(
                "update entries set status = 'eligible', verified_at = $2, code_hash = null,
                     code_expires_at = null, code_sent_at = null
                 where id = $1",
            )
            .bind(entry_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            record_event!(
                tx,
                now,
                Actor::Applicant,
                "entry.verified",
                Some(&window_id),
                Some(entry_id),
                json!({})
            );
            tx.commit().await?;
            Ok(VerifyOutcome::Verified)
        })
    }

    /// Replaces an entry's verification code with a new one and queues its mail, within
    /// the limits: at most [`MAX_CODE_SENDS`] codes, `min_interval` apart.
    pub async fn resend_code(
        &self,
        entry_id: &str,
        code: &NewCode<'_>,
        mail: &NewMail,
        min_interval: Duration,
        now: DateTime<Utc>,
    ) -> Result<ResendOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let (window_id, status) = entry_status!(tx, entry_id);
            if status != EntryStatus::PendingVerification {
                return Err(StoreError::EntryState(status));
            }
            check_period!(tx, &window_id, now);
            let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
                "select code_sends, code_sent_at from entries
                     where id = $1 and code_hash is not null",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            let sends = match row {
                Some((sends, _)) if sends >= i64::from(MAX_CODE_SENDS) => {
                    return Ok(ResendOutcome::TooMany);
                }
                Some((_, sent_at)) if now < sent_at + min_interval => {
                    let wait = (sent_at + min_interval - now).num_seconds().max(1);
                    return Ok(ResendOutcome::TooSoon {
                        retry_after_secs: wait,
                    });
                }
                Some((sends, _)) => sends,
                None => 0,
            };
            sqlx::query(
                "update entries set code_hash = $2, code_expires_at = $3, code_attempts = 0,
                     code_sends = $4, code_sent_at = $5
                 where id = $1",
            )
            .bind(entry_id)
            .bind(code.code_hash)
            .bind(code.expires_at)
            .bind(sends + 1)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let outbox_id = insert_mail!(tx, mail, now);
            let detail = json!({ "send": sends + 1 });
            record_event!(
                tx,
                now,
                Actor::Applicant,
                "entry.code_resent",
                Some(&window_id),
                Some(entry_id),
                detail
            );
            tx.commit().await?;
            Ok(ResendOutcome::Sent { outbox_id })
        })
    }

    /// Withdraws an entry while its window takes registrations. Withdrawing twice is
    /// harmless.
    pub async fn withdraw_entry(
        &self,
        entry_id: &str,
        now: DateTime<Utc>,
    ) -> Result<EntryRecord, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let (window_id, status) = entry_status!(tx, entry_id);
            if status != EntryStatus::Withdrawn {
                check_period!(tx, &window_id, now);
                sqlx::query(
                    "update entries set status = 'withdrawn', withdrawn_at = $2,
                         code_hash = null, code_expires_at = null, code_sent_at = null
                     where id = $1",
                )
                .bind(entry_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let detail = json!({ "from": status.as_str() });
                record_event!(
                    tx,
                    now,
                    Actor::Applicant,
                    "entry.withdrawn",
                    Some(&window_id),
                    Some(entry_id),
                    detail
                );
                tx.commit().await?;
            }
        });
        self.entry(entry_id).await
    }

    /// The eligible entries of a window as the draw takes them: (id, weight), by id.
    pub async fn eligible_entries(
        &self,
        window_id: &str,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let rows: Vec<(String, i64)> = on_db!(self, |pool| {
            // `order by id`: the order of the index of eligible entries, which holds
            // both columns; without it SQLite may take the index by window and status
            // and read every entry's row.
            sqlx::query_as(
                "select id, weight from entries where window_id = $1 and status = 'eligible'
                 order by id",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        let mut entries = rows
            .into_iter()
            .map(|(id, weight)| {
                let weight = u32::try_from(weight)
                    .map_err(|_| StoreError::Corrupt(format!("entries.weight of {id}")))?;
                Ok((id, weight))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Sorted here: hex ids sort bytewise, whatever the engine's collation.
        entries.sort_unstable();
        Ok(entries)
    }
}
