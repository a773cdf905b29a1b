//! Named slots after the draw: who holds each slot, the check code on the convocation,
//! check-in and no-shows at the counter, staff corrections of a name, cancellations,
//! and offers of freed slots to the waiting list.
//!
//! The draw's own assignment stays in `draw_results`, as published (the selected ranks
//! are written by the draw, the waiting ranks right after it by
//! [`Store::fill_draw_results`]). Right after the draw, [`Store::record_slot_holders`]
//! completes those, then copies the assignment into `slot_assignments` in one
//! transaction marked in `draw_followups`, so that it happens exactly once, and
//! [`Store::queue_result_mails`] queues the result mails in chunks, each moving a cursor
//! in the same row. From then on `slot_assignments` says who holds each slot: a
//! cancellation closes a row, an accepted offer opens one. Partial unique indexes make
//! the database refuse a slot held twice or an entry holding two slots, and every
//! transition (cancel, accept, decline, expire) is one write transaction with
//! conditional updates, so concurrent requests cannot give one slot to two people.
//!
//! Mails are queued in the same transactions; their texts come from the caller
//! ([`SlotMails`]), so that this module holds SQL only.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::QueryBuilder;

use super::audit::{Actor, record_event};
use super::outbox::{NewMail, insert_mail};
use super::{Store, StoreError, WritePool, duplicate_rule, on_db, parse_column};
use crate::domain::checkcode::{CHECK_KEY_BYTES, CheckCode, check_code};
use crate::domain::identity::{PersonName, person_key};
use crate::domain::slots::TimeZone;
use crate::domain::waitlist::OfferPolicy;
use crate::draw::Slot;
use crate::lifecycle::EntryStanding;

/// Rows read or inserted at once when recording a draw's holders and mails.
const BATCH: i64 = 500;

/// Open offers expired per pass of [`Store::expire_offers`].
const EXPIRY_BATCH: i64 = 100;

/// Where an offer of a freed slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    /// Waiting for the entry's answer until `expires_at`.
    Open,
    Accepted,
    Declined,
    /// Not accepted in time; the slot went on to the next entry.
    Expired,
}

impl OfferState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Accepted, Self::Declined, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A slot an entry holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSlot {
    pub slot: Slot,
    /// `draw` (given by the draw) or `offer` (a freed slot, accepted from the waiting list).
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// An offer of a freed slot to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRecord {
    pub id: i64,
    pub window_id: String,
    pub slot: Slot,
    /// The entry's rank in the draw.
    pub rank: i64,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: OfferState,
    pub answered_at: Option<DateTime<Utc>>,
}

/// An entry's slot after the draw, cancellations and offers included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotHolding {
    /// Whether the window's holders were recorded after its draw; until then the draw's
    /// own results say everything.
    pub recorded: bool,
    /// The slot held now, if any.
    pub slot: Option<HeldSlot>,
    /// When the applicant gave up their slot or their place on the waiting list.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The latest offer made to the entry, if any.
    pub offer: Option<OfferRecord>,
}

impl SlotHolding {
    /// The standing of an entry, given its standing from the draw alone
    /// ([`crate::lifecycle::standing`]): a holder is `selected` (with the slot held now),
    /// whoever cancelled is `cancelled`, and a waiting entry that declined an offer or
    /// let it expire has left the waiting list (`not_selected`).
    pub fn standing(&self, drawn: EntryStanding) -> EntryStanding {
        if !self.recorded {
            return drawn;
        }
        if self.slot.is_some() {
            return EntryStanding::Selected;
        }
        if self.cancelled_at.is_some() {
            return EntryStanding::Cancelled;
        }
        match (drawn, self.offer.as_ref().map(|o| o.state)) {
            (EntryStanding::Waiting, Some(OfferState::Declined | OfferState::Expired)) => {
                EntryStanding::NotSelected
            }
            _ => drawn,
        }
    }

    /// The slot to show: the one held now once holders are recorded, else the draw's.
    pub fn current_slot(&self, drawn: Option<Slot>) -> Option<Slot> {
        if self.recorded {
            self.slot.as_ref().map(|held| held.slot.clone())
        } else {
            drawn
        }
    }
}

/// A window, in short, for mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    pub id: String,
    pub site: String,
    pub procedure: String,
}

/// Who a mail goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailTo<'a> {
    pub entry_id: &'a str,
    pub email: &'a str,
    /// `fr` or `en`, as stored with the entry.
    pub language: &'a str,
}

/// What the result mail after a draw says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultNotice<'a> {
    /// Drawn with this slot.
    Selected { slot: &'a Slot },
    /// Drawn without a slot: this many are before the entry on the waiting list, plus one.
    Waiting { position: i64 },
    /// Not in the draw: the e-mail address was not confirmed before registration closed.
    Excluded { closed_at: Option<DateTime<Utc>> },
}

/// The mails the slot transitions queue. The texts live with the jobs
/// (`jobs::offers::Mails`); the store only decides when a mail is due and to whom.
pub trait SlotMails: Send + Sync {
    /// The outcome of the draw, to each participant.
    fn result(&self, to: &MailTo<'_>, window: &WindowInfo, notice: &ResultNotice<'_>) -> NewMail;
    /// A freed slot offered, with the deadline to accept it.
    fn offer(
        &self,
        to: &MailTo<'_>,
        window: &WindowInfo,
        slot: &Slot,
        expires_at: DateTime<Utc>,
    ) -> NewMail;
    /// The confirmation of a cancellation: of `slot`, or of the place on the waiting list.
    fn cancelled(&self, to: &MailTo<'_>, window: &WindowInfo, slot: Option<&Slot>) -> NewMail;
}

/// A convocation: the slot an entry holds, named, with its check code.
#[derive(Debug, Clone)]
pub struct ConvocationRecord {
    pub entry_id: String,
    pub window: WindowInfo,
    pub family_name: String,
    pub given_names: String,
    pub slot: Slot,
    pub rank: i64,
    /// `draw` or `offer`.
    pub reason: String,
    pub since: DateTime<Utc>,
    pub check_code: CheckCode,
    pub checked_in_at: Option<DateTime<Utc>>,
}

/// The person a check code names, for staff to compare with the person present.
#[derive(Debug, Clone)]
pub struct CheckInRecord {
    pub entry_id: String,
    pub window: WindowInfo,
    pub family_name: String,
    pub given_names: String,
    pub birth_date: NaiveDate,
    pub nationality: String,
    pub document_kind: String,
    pub document_number: String,
    pub document_country: String,
    pub slot: Slot,
    pub rank: i64,
    pub checked_in_at: DateTime<Utc>,
}

/// What [`Store::check_in`] found.
#[derive(Debug, Clone)]
pub enum CheckInOutcome {
    CheckedIn(Box<CheckInRecord>),
    /// No live slot carries this code (never issued, cancelled, or before a correction).
    Unknown,
    /// The code was already used at this time.
    AlreadyCheckedIn {
        at: DateTime<Utc>,
    },
    /// The holder was recorded as not having come.
    NoShow {
        at: DateTime<Utc>,
    },
    /// The slot is on another day (local time of the site).
    OtherDay {
        starts_at: DateTime<Utc>,
    },
}

/// A recorded no-show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoShowRecord {
    pub window_id: String,
    pub slot_id: String,
    pub entry_id: String,
    pub rank: i64,
    pub recorded_at: DateTime<Utc>,
}

/// What [`Store::record_no_show`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoShowOutcome {
    Recorded(NoShowRecord),
    /// The slot has not started yet.
    TooEarly {
        starts_at: DateTime<Utc>,
    },
    /// Nobody holds the slot (never given, or given back and not taken).
    NoHolder,
    CheckedIn {
        at: DateTime<Utc>,
    },
    AlreadyRecorded {
        at: DateTime<Utc>,
    },
}

/// A staff correction of an applicant's name.
#[derive(Debug, Clone, Copy)]
pub struct NameCorrection<'a> {
    pub family_name: Option<&'a PersonName>,
    pub given_names: Option<&'a PersonName>,
    pub reason: &'a str,
}

/// A recorded correction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionRecord {
    pub id: i64,
    pub entry_id: String,
    pub window_id: String,
    /// `family_name`, `given_names`: what changed.
    pub fields: Vec<&'static str>,
    pub family_name: String,
    pub given_names: String,
    pub corrected_at: DateTime<Utc>,
    /// Whether the entry holds a slot, whose check code thus changed.
    pub check_code_changed: bool,
}

/// What [`Store::correct_entry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectionOutcome {
    Corrected(CorrectionRecord),
    /// The names given are the ones stored.
    Unchanged,
}

/// What [`Store::cancel_entry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The slot (or the place on the waiting list) was given up; these mails are queued.
    Cancelled {
        slot_id: Option<String>,
        outbox_ids: Vec<i64>,
    },
    AlreadyCancelled,
    /// The slot has started: too late to give it back.
    SlotStarted {
        starts_at: DateTime<Utc>,
    },
    CheckedIn {
        at: DateTime<Utc>,
    },
    /// The entry holds no slot and is not on the waiting list.
    NothingToCancel,
}

/// What [`Store::answer_offer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    Accepted {
        slot_id: String,
    },
    /// Declined; the slot went on (these mails are queued).
    Declined {
        outbox_ids: Vec<i64>,
    },
    /// The deadline had passed: the offer is recorded as expired and the slot went on.
    Expired {
        at: DateTime<Utc>,
        outbox_ids: Vec<i64>,
    },
    /// No open offer; the state of the latest one, if any.
    NoOpenOffer {
        last: Option<OfferState>,
    },
}

/// One offer in a reassignment chain, without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOffer {
    pub rank: i64,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: OfferState,
    pub answered_at: Option<DateTime<Utc>>,
}

/// A freed slot and what became of it, without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub slot_id: String,
    pub released_by_rank: i64,
    /// `cancelled`.
    pub reason: String,
    pub released_at: DateTime<Utc>,
    /// `accepted` or `unused`; `None` while offers run.
    pub outcome: Option<String>,
    /// `no_one_waiting` or `too_late`, for an unused slot.
    pub unused_reason: Option<String>,
    pub settled_at: Option<DateTime<Utc>>,
    pub offers: Vec<ChainOffer>,
}

/// A follow-up's cursors: the last rank mailed, the last entry left pending mailed
/// (its id, and its time of registration unless the follow-up pages by id alone),
/// when all mails were queued, how many.
type FollowupCursor = (
    i64,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i64,
);

#[derive(sqlx::FromRow)]
struct DrawnRow {
    rank: i64,
    entry_id: String,
    slot_id: Option<String>,
    starts_at: Option<String>,
    counter: Option<String>,
    email: Option<String>,
    language: String,
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    id: i64,
    window_id: String,
    slot_id: String,
    starts_at: String,
    counter: String,
    rank: i64,
    offered_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    state: String,
    answered_at: Option<DateTime<Utc>>,
}

impl TryFrom<OfferRow> for OfferRecord {
    type Error = StoreError;
    fn try_from(row: OfferRow) -> Result<Self, StoreError> {
        Ok(Self {
            state: parse_column("offers.state", &row.state, OfferState::parse)?,
            id: row.id,
            window_id: row.window_id,
            slot: Slot {
                id: row.slot_id,
                starts_at: row.starts_at,
                counter: row.counter,
            },
            rank: row.rank,
            offered_at: row.offered_at,
            expires_at: row.expires_at,
            answered_at: row.answered_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct HolderRow {
    assignment_id: i64,
    window_id: String,
    slot_id: String,
    entry_id: String,
    rank: i64,
    starts_at: String,
    counter: String,
    family_name: String,
    given_names: String,
    birth_date: NaiveDate,
    nationality: String,
    document_kind: String,
    document_number: String,
    document_country: String,
    site: String,
    procedure: String,
}

/// The best-ranked entry still on the waiting list of a window: drawn without a slot,
/// never given one since, never offered one (an entry that declined an offer or let it
/// expire has left the list; one with an open offer waits for its answer), not
/// cancelled, and not carried into a later window (it takes part in that draw, with
/// its bonus, instead: one person is never on two lists at once).
const NEXT_ON_WAITING_LIST: &str = "
    select r.rank, r.entry_id, e.email, e.language
    from draw_results r
    join entries e on e.id = r.entry_id
    where r.window_id = $1 and r.slot_id is null
      and not exists (select 1 from slot_assignments a where a.entry_id = r.entry_id)
      and not exists (select 1 from offers o where o.entry_id = r.entry_id)
      and not exists (select 1 from cancellations c where c.entry_id = r.entry_id)
      and not exists (select 1 from entries n where n.carried_from = r.entry_id)
    order by r.rank
    limit 1";

const SELECT_OFFER: &str = "
    select o.id, o.window_id, o.slot_id, s.starts_at, s.counter, o.rank, o.offered_at,
           o.expires_at, o.state, o.answered_at
    from offers o
    join slots s on s.window_id = o.window_id and s.id = o.slot_id";

/// A slot's start time, written `YYYY-MM-DDTHH:MM:SSZ`.
pub fn slot_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_column("slots.starts_at", text, |t| {
        DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
    })
}

fn key_bytes(key: Option<Vec<u8>>) -> Result<[u8; CHECK_KEY_BYTES], StoreError> {
    key.ok_or_else(|| {
        StoreError::Corrupt("no check-code key: the service creates it when it starts".into())
    })?
    .try_into()
    .map_err(|_| StoreError::Corrupt("check_code_key.key".into()))
}

/// Reads the check-code key inside a transaction.
macro_rules! check_key {
    ($tx:expr) => {{
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("select key from check_code_key where id = 1")
                .fetch_optional(&mut *$tx)
                .await?;
        key_bytes(key)?
    }};
}

/// Reads a window's site and procedure inside a transaction.
macro_rules! window_info {
    ($tx:expr, $window_id:expr) => {{
        let row: Option<(String, String)> =
            sqlx::query_as("select site, procedure from windows where id = $1")
                .bind($window_id)
                .fetch_optional(&mut *$tx)
                .await?;
        let (site, procedure) = row.ok_or(StoreError::NotFound)?;
        WindowInfo {
            id: ::std::string::ToString::to_string($window_id),
            site,
            procedure,
        }
    }};
}

/// Inside a transaction: queues mails in one multi-row insert; evaluates to how many.
macro_rules! insert_mails {
    ($tx:expr, $mails:expr, $now:expr) => {{
        let mails: &[NewMail] = $mails;
        if !mails.is_empty() {
            let mut insert = QueryBuilder::new(
                "insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at) ",
            );
            insert.push_values(mails, |mut b, mail| {
                b.push_bind(&mail.kind)
                    .push_bind(&mail.recipient)
                    .push_bind(&mail.subject)
                    .push_bind(&mail.body)
                    .push_bind($now)
                    .push_bind($now);
            });
            insert.build().execute(&mut *$tx).await?;
        }
        mails.len() as i64
    }};
}

/// Inside a write transaction: offers the slot of release `$release_id` to the next
/// entry on the waiting list, with its mail, or records it as unused when nobody is
/// left or it is too late. Evaluates to the id of the queued mail, if any.
macro_rules! offer_next {
    ($tx:expr, $mails:expr, $actor:expr, $release_id:expr, $now:expr) => {{
        let (window_id, slot_id, offer_hours, margin_hours): (String, String, i64, i64) =
            sqlx::query_as(
                "select window_id, slot_id, offer_hours, margin_hours from slot_releases
                 where id = $1",
            )
            .bind($release_id)
            .fetch_one(&mut *$tx)
            .await?;
        let (starts_at, counter): (String, String) =
            sqlx::query_as("select starts_at, counter from slots where window_id = $1 and id = $2")
                .bind(&window_id)
                .bind(&slot_id)
                .fetch_one(&mut *$tx)
                .await?;
        let policy = OfferPolicy {
            offer_hours,
            margin_hours,
        };
        let deadline = policy.deadline($now, slot_time(&starts_at)?);
        let next: Option<(i64, String, Option<String>, String)> = match deadline {
            Some(_) => {
                sqlx::query_as(NEXT_ON_WAITING_LIST)
                    .bind(&window_id)
                    .fetch_optional(&mut *$tx)
                    .await?
            }
            None => None,
        };
        match (deadline, next) {
            (Some(expires_at), Some((rank, entry_id, email, language))) => {
                sqlx::query(
                    "insert into offers (release_id, window_id, slot_id, entry_id, rank,
                         offered_at, expires_at, state)
                     values ($1, $2, $3, $4, $5, $6, $7, 'open')",
                )
                .bind($release_id)
                .bind(&window_id)
                .bind(&slot_id)
                .bind(&entry_id)
                .bind(rank)
                .bind($now)
                .bind(expires_at)
                .execute(&mut *$tx)
                .await?;
                let detail = json!({ "slot_id": slot_id, "rank": rank, "expires_at": expires_at });
                record_event!(
                    $tx,
                    $now,
                    $actor,
                    "offer.made",
                    Some(window_id.as_str()),
                    Some(entry_id.as_str()),
                    detail
                );
                match email {
                    Some(email) => {
                        let window = window_info!($tx, &window_id);
                        let slot = Slot {
                            id: slot_id.clone(),
                            starts_at,
                            counter,
                        };
                        let to = MailTo {
                            entry_id: &entry_id,
                            email: &email,
                            language: &language,
                        };
                        let mail = $mails.offer(&to, &window, &slot, expires_at);
                        Some(insert_mail!($tx, mail, $now))
                    }
                    None => None,
                }
            }
            (deadline, _) => {
                let reason = if deadline.is_none() {
                    "too_late"
                } else {
                    "no_one_waiting"
                };
                sqlx::query(
                    "update slot_releases set outcome = 'unused', unused_reason = $2, settled_at = $3
                     where id = $1 and outcome is null",
                )
                .bind($release_id)
                .bind(reason)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
                let detail = json!({ "slot_id": slot_id, "reason": reason });
                record_event!(
                    $tx,
                    $now,
                    $actor,
                    "slot.unused",
                    Some(window_id.as_str()),
                    None::<&str>,
                    detail
                );
                None
            }
        }
    }};
}

impl Store {
    /// The server's secret key (the check-code key), for keys derived from it.
    pub async fn check_code_key(&self) -> Result<[u8; CHECK_KEY_BYTES], StoreError> {
        let key: Option<Vec<u8>> = on_db!(self, |pool| {
            sqlx::query_scalar("select key from check_code_key where id = 1")
                .fetch_optional(pool)
                .await?
        });
        key_bytes(key)
    }

    /// Stores the check-code key if there is none yet (at the first start); returns
    /// whether this call stored it. Safe with several instances starting at once.
    pub async fn ensure_check_code_key(
        &self,
        key: &[u8; CHECK_KEY_BYTES],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = on_db!(self, |pool| {
            sqlx::query(
                "insert into check_code_key (id, key, created_at) values (1, $1, $2)
                 on conflict (id) do nothing",
            )
            .bind(&key[..])
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Drawn windows whose follow-up is not finished: holders not recorded, or result
    /// mails not all queued (the service stopped in between, or the window was drawn
    /// before this version).
    pub async fn unfinished_followups(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "select w.id from windows w
                 join draws d on d.window_id = w.id
                 left join draw_followups f on f.window_id = w.id
                 where w.state = 'drawn' and (f.window_id is null or f.mails_done_at is null)
                 order by w.id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Whether a drawn window's slot holders are recorded.
    pub async fn holders_recorded(&self, window_id: &str) -> Result<bool, StoreError> {
        let done: Option<i64> = on_db!(self, |pool| {
            sqlx::query_scalar("select assignments from draw_followups where window_id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(done.is_some())
    }

    /// After a draw, in one transaction: records who holds each slot the draw gave,
    /// with the digest of each check code. Returns how many, or `None` when the holders
    /// were recorded already.
    pub async fn record_slot_holders(
        &self,
        window_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        // The waiting list is read from `draw_results`: complete it first (it is, unless
        // this runs right after the draw, before the follow-up wrote the waiting ranks).
        self.finish_draw_results(window_id, now).await?;
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done: Option<i64> =
                sqlx::query_scalar("select assignments from draw_followups where window_id = $1")
                    .bind(window_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                return Ok(None);
            }
            let drawn: Option<i64> =
                sqlx::query_scalar("select n_selected from draws where window_id = $1")
                    .bind(window_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if drawn.is_none() {
                return Err(StoreError::NotFound);
            }
            let key = check_key!(tx);
            let mut assignments = 0_i64;
            let mut after_rank = 0_i64;
            loop {
                let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
                    "select r.rank, r.entry_id, r.slot_id, e.family_name, e.given_names
                     from draw_results r
                     join entries e on e.id = r.entry_id
                     where r.window_id = $1 and r.rank > $2 and r.slot_id is not null
                     order by r.rank
                     limit $3",
                )
                .bind(window_id)
                .bind(after_rank)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
                let Some(last) = rows.last() else { break };
                after_rank = last.0;
                let mut insert = QueryBuilder::new(
                    "insert into slot_assignments (window_id, slot_id, entry_id, rank, reason,
                         since, check_digest) ",
                );
                insert.push_values(&rows, |mut b, (rank, entry_id, slot_id, family, given)| {
                    let code = check_code(&key, entry_id, slot_id, family, given);
                    b.push_bind(window_id)
                        .push_bind(slot_id.as_str())
                        .push_bind(entry_id.as_str())
                        .push_bind(*rank)
                        .push_bind("draw")
                        .push_bind(now)
                        .push_bind(code.lookup_digest());
                });
                insert.build().execute(&mut *tx).await?;
                assignments += rows.len() as i64;
            }
            sqlx::query(
                "insert into draw_followups (window_id, assignments, recorded_at)
                 values ($1, $2, $3)",
            )
            .bind(window_id)
            .bind(assignments)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "assignments": assignments });
            record_event!(
                tx,
                now,
                Actor::System,
                "window.holders_recorded",
                Some(window_id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
            Ok(Some(assignments))
        })
    }

    /// Queues the next chunk of a drawn window's result mails (up to `limit` entries):
    /// first the drawn entries in rank order (selected: the slot; waiting: the place on
    /// the list), then the entries left out for want of verification. Each chunk is one
    /// transaction that also moves the cursor, so every participant with an e-mail
    /// address gets exactly one result mail, however often this is interrupted. Returns
    /// how many mails this chunk queued, or `None` once all are queued.
    pub async fn queue_result_mails(
        &self,
        window_id: &str,
        mails: &dyn SlotMails,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let cursor: Option<FollowupCursor> = sqlx::query_as(
                "select mailed_rank, mailed_excluded, mailed_excluded_at, mails_done_at, mails
                 from draw_followups where window_id = $1",
            )
            .bind(window_id)
            .fetch_optional(&mut *tx)
            .await?;
            // The holders are recorded first; their row carries the cursors.
            let (mailed_rank, mailed_excluded, mailed_excluded_at, done_at, total) =
                cursor.ok_or(StoreError::NotFound)?;
            if done_at.is_some() {
                return Ok(None);
            }
            let n_selected: i64 =
                sqlx::query_scalar("select n_selected from draws where window_id = $1")
                    .bind(window_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let window = window_info!(tx, window_id);

            let rows: Vec<DrawnRow> = sqlx::query_as(
                "select r.rank, r.entry_id, r.slot_id, s.starts_at, s.counter, e.email, e.language
                 from draw_results r
                 join entries e on e.id = r.entry_id
                 left join slots s on s.window_id = r.window_id and s.id = r.slot_id
                 where r.window_id = $1 and r.rank > $2
                 order by r.rank
                 limit $3",
            )
            .bind(window_id)
            .bind(mailed_rank)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            if let Some(last) = rows.last() {
                let mut new_mails = Vec::new();
                for row in &rows {
                    let Some(email) = &row.email else { continue };
                    let slot = match (&row.slot_id, &row.starts_at, &row.counter) {
                        (Some(id), Some(starts_at), Some(counter)) => Some(Slot {
                            id: id.clone(),
                            starts_at: starts_at.clone(),
                            counter: counter.clone(),
                        }),
                        (None, _, _) => None,
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "draw result {} of {window_id} names an unknown slot",
                                row.rank
                            )));
                        }
                    };
                    let to = MailTo {
                        entry_id: &row.entry_id,
                        email,
                        language: &row.language,
                    };
                    let notice = match &slot {
                        Some(slot) => ResultNotice::Selected { slot },
                        None => ResultNotice::Waiting {
                            position: row.rank - n_selected,
                        },
                    };
                    new_mails.push(mails.result(&to, &window, &notice));
                }
                let queued = insert_mails!(tx, &new_mails, now);
                sqlx::query(
                    "update draw_followups set mailed_rank = $2, mails = mails + $3
                     where window_id = $1",
                )
                .bind(window_id)
                .bind(last.rank)
                .bind(queued)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Some(queued));
            }

            // The entries left pending, in the order of `entries_by_window`: by time of
            // registration, then id, after the last one mailed. A follow-up begun by a
            // version that paged by id alone (its cursor has an id and no time) goes on
            // by id.
            let by_time = mailed_excluded_at.is_some() || mailed_excluded.is_empty();
            let excluded: Vec<(String, String, String, DateTime<Utc>)> =
                match (&mailed_excluded_at, mailed_excluded.is_empty()) {
                    (Some(at), _) => sqlx::query_as(
                        "select id, email, language, created_at from entries
                         where window_id = $1 and status = 'pending_verification'
                           and email is not null and (created_at, id) > ($2, $3)
                         order by created_at, id
                         limit $4",
                    )
                    .bind(window_id)
                    .bind(at)
                    .bind(&mailed_excluded),
                    (None, true) => sqlx::query_as(
                        "select id, email, language, created_at from entries
                         where window_id = $1 and status = 'pending_verification'
                           and email is not null
                         order by created_at, id
                         limit $2",
                    )
                    .bind(window_id),
                    (None, false) => sqlx::query_as(
                        "select id, email, language, created_at from entries
                         where window_id = $1 and status = 'pending_verification'
                           and email is not null and id > $2
                         order by id
                         limit $3",
                    )
                    .bind(window_id)
                    .bind(&mailed_excluded),
                }
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            if let Some(last) = excluded.last() {
                let closed_at: Option<DateTime<Utc>> =
                    sqlx::query_scalar("select closed_at from windows where id = $1")
                        .bind(window_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let new_mails: Vec<NewMail> = excluded
                    .iter()
                    .map(|(entry_id, email, language, _)| {
                        let to = MailTo {
                            entry_id,
                            email,
                            language,
                        };
                        mails.result(&to, &window, &ResultNotice::Excluded { closed_at })
                    })
                    .collect();
                let queued = insert_mails!(tx, &new_mails, now);
                // the time stays unset for a follow-up that pages by id
                let last_at = by_time.then_some(last.3);
                sqlx::query(
                    "update draw_followups
                     set mailed_excluded = $2, mailed_excluded_at = $3, mails = mails + $4
                     where window_id = $1",
                )
                .bind(window_id)
                .bind(&last.0)
                .bind(last_at)
                .bind(queued)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Some(queued));
            }

            sqlx::query("update draw_followups set mails_done_at = $2 where window_id = $1")
                .bind(window_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let detail = json!({ "mails": total });
            record_event!(
                tx,
                now,
                Actor::System,
                "window.results_mailed",
                Some(window_id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
            Ok(None)
        })
    }

    /// An entry's slot, cancellation and latest offer.
    pub async fn slot_holding(&self, entry_id: &str) -> Result<SlotHolding, StoreError> {
        on_db!(self, |pool| {
            let recorded: Option<String> = sqlx::query_scalar(
                "select f.window_id from draw_results r
                 join draw_followups f on f.window_id = r.window_id
                 where r.entry_id = $1",
            )
            .bind(entry_id)
            .fetch_optional(pool)
            .await?;
            if recorded.is_none() {
                return Ok(SlotHolding::default());
            }
            let held: Option<(String, String, String, String, DateTime<Utc>)> = sqlx::query_as(
                "select a.slot_id, s.starts_at, s.counter, a.reason, a.since
                 from slot_assignments a
                 join slots s on s.window_id = a.window_id and s.id = a.slot_id
                 where a.entry_id = $1 and a.released_at is null",
            )
            .bind(entry_id)
            .fetch_optional(pool)
            .await?;
            let cancelled_at: Option<DateTime<Utc>> =
                sqlx::query_scalar("select cancelled_at from cancellations where entry_id = $1")
                    .bind(entry_id)
                    .fetch_optional(pool)
                    .await?;
            let offer: Option<OfferRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_OFFER} where o.entry_id = $1 order by o.id desc limit 1"
            )))
            .bind(entry_id)
            .fetch_optional(pool)
            .await?;
            Ok(SlotHolding {
                recorded: true,
                slot: held.map(|(id, starts_at, counter, reason, since)| HeldSlot {
                    slot: Slot {
                        id,
                        starts_at,
                        counter,
                    },
                    reason,
                    since,
                }),
                cancelled_at,
                offer: offer.map(TryInto::try_into).transpose()?,
            })
        })
    }

    /// The convocation of the slot an entry holds now, with its check code; `None` when
    /// it holds none.
    pub async fn convocation(
        &self,
        entry_id: &str,
    ) -> Result<Option<ConvocationRecord>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            DateTime<Utc>,
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<DateTime<Utc>>,
        );
        on_db!(self, |pool| {
            let row: Option<Row> = sqlx::query_as(
                "select a.slot_id, s.starts_at, s.counter, a.reason, a.since, a.rank,
                        e.family_name, e.given_names, w.id, w.site, w.procedure, c.checked_in_at
                 from slot_assignments a
                 join slots s on s.window_id = a.window_id and s.id = a.slot_id
                 join entries e on e.id = a.entry_id
                 join windows w on w.id = a.window_id
                 left join checkins c on c.assignment_id = a.id
                 where a.entry_id = $1 and a.released_at is null",
            )
            .bind(entry_id)
            .fetch_optional(pool)
            .await?;
            let Some((
                slot_id,
                starts_at,
                counter,
                reason,
                since,
                rank,
                family_name,
                given_names,
                window_id,
                site,
                procedure,
                checked_in_at,
            )) = row
            else {
                return Ok(None);
            };
            let key: Option<Vec<u8>> =
                sqlx::query_scalar("select key from check_code_key where id = 1")
                    .fetch_optional(pool)
                    .await?;
            let check_code = check_code(
                &key_bytes(key)?,
                entry_id,
                &slot_id,
                &family_name,
                &given_names,
            );
            Ok(Some(ConvocationRecord {
                entry_id: entry_id.to_owned(),
                window: WindowInfo {
                    id: window_id,
                    site,
                    procedure,
                },
                family_name,
                given_names,
                slot: Slot {
                    id: slot_id,
                    starts_at,
                    counter,
                },
                rank,
                reason,
                since,
                check_code,
                checked_in_at,
            }))
        })
    }

    /// Checks a person in with the check code of their convocation: the code must name
    /// a slot held now, under the holder's current name, on today's date (local time of
    /// the site); the slot is then marked used, once.
    pub async fn check_in(
        &self,
        code: &CheckCode,
        staff_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CheckInOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<HolderRow> = sqlx::query_as(
                "select a.id as assignment_id, a.window_id, a.slot_id, a.entry_id, a.rank,
                        s.starts_at, s.counter, e.family_name, e.given_names, e.birth_date,
                        e.nationality, e.document_kind, e.document_number, e.document_country,
                        w.site, w.procedure
                 from slot_assignments a
                 join slots s on s.window_id = a.window_id and s.id = a.slot_id
                 join entries e on e.id = a.entry_id
                 join windows w on w.id = a.window_id
                 where a.check_digest = $1 and a.released_at is null
                   and e.anonymised_at is null",
            )
            .bind(code.lookup_digest())
            .fetch_all(&mut *tx)
            .await?;
            let key = check_key!(tx);
            // The stored digest finds the row; the code recomputed from the current name
            // decides. Two live slots with one code (a 50-bit collision) are told apart
            // by the slot nearest to now.
            let mut holder: Option<(HolderRow, DateTime<Utc>)> = None;
            for row in rows {
                let expected = check_code(
                    &key,
                    &row.entry_id,
                    &row.slot_id,
                    &row.family_name,
                    &row.given_names,
                );
                if !expected.matches(code) {
                    continue;
                }
                let starts_at = slot_time(&row.starts_at)?;
                let nearer = holder
                    .as_ref()
                    .is_none_or(|(_, best)| (starts_at - now).abs() < (*best - now).abs());
                if nearer {
                    holder = Some((row, starts_at));
                }
            }
            let Some((row, starts_at)) = holder else {
                return Ok(CheckInOutcome::Unknown);
            };
            let used: Option<DateTime<Utc>> = sqlx::query_scalar(
                "select checked_in_at from checkins where window_id = $1 and slot_id = $2",
            )
            .bind(&row.window_id)
            .bind(&row.slot_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(at) = used {
                return Ok(CheckInOutcome::AlreadyCheckedIn { at });
            }
            let no_show: Option<DateTime<Utc>> = sqlx::query_scalar(
                "select recorded_at from no_shows where window_id = $1 and slot_id = $2",
            )
            .bind(&row.window_id)
            .bind(&row.slot_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(at) = no_show {
                return Ok(CheckInOutcome::NoShow { at });
            }
            let zone = TimeZone::EuropeParis;
            if zone.to_local(starts_at).date_naive() != zone.to_local(now).date_naive() {
                return Ok(CheckInOutcome::OtherDay { starts_at });
            }
            sqlx::query(
                "insert into checkins (window_id, slot_id, entry_id, assignment_id, checked_in_at,
                     checked_in_by)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&row.window_id)
            .bind(&row.slot_id)
            .bind(&row.entry_id)
            .bind(row.assignment_id)
            .bind(now)
            .bind(staff_id)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "slot_id": row.slot_id, "rank": row.rank });
            record_event!(
                tx,
                now,
                Actor::Staff(staff_id.to_owned()),
                "slot.checked_in",
                Some(row.window_id.as_str()),
                Some(row.entry_id.as_str()),
                detail
            );
            tx.commit().await?;
            Ok(CheckInOutcome::CheckedIn(Box::new(CheckInRecord {
                entry_id: row.entry_id,
                window: WindowInfo {
                    id: row.window_id,
                    site: row.site,
                    procedure: row.procedure,
                },
                family_name: row.family_name,
                given_names: row.given_names,
                birth_date: row.birth_date,
                nationality: row.nationality,
                document_kind: row.document_kind,
                document_number: row.document_number,
                document_country: row.document_country,
                slot: Slot {
                    id: row.slot_id,
                    starts_at: row.starts_at,
                    counter: row.counter,
                },
                rank: row.rank,
                checked_in_at: now,
            })))
        })
    }

    /// Records that the holder of a slot did not come, once the slot has started.
    pub async fn record_no_show(
        &self,
        window_id: &str,
        slot_id: &str,
        staff_id: &str,
        now: DateTime<Utc>,
    ) -> Result<NoShowOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let starts_at: Option<String> =
                sqlx::query_scalar("select starts_at from slots where window_id = $1 and id = $2")
                    .bind(window_id)
                    .bind(slot_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let starts_at = slot_time(&starts_at.ok_or(StoreError::NotFound)?)?;
            if now < starts_at {
                return Ok(NoShowOutcome::TooEarly { starts_at });
            }
            let recorded: Option<DateTime<Utc>> = sqlx::query_scalar(
                "select recorded_at from no_shows where window_id = $1 and slot_id = $2",
            )
            .bind(window_id)
            .bind(slot_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(at) = recorded {
                return Ok(NoShowOutcome::AlreadyRecorded { at });
            }
            let checked_in: Option<DateTime<Utc>> = sqlx::query_scalar(
                "select checked_in_at from checkins where window_id = $1 and slot_id = $2",
            )
            .bind(window_id)
            .bind(slot_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(at) = checked_in {
                return Ok(NoShowOutcome::CheckedIn { at });
            }
            let holder: Option<(i64, String, i64)> = sqlx::query_as(
                "select id, entry_id, rank from slot_assignments
                 where window_id = $1 and slot_id = $2 and released_at is null",
            )
            .bind(window_id)
            .bind(slot_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((assignment_id, entry_id, rank)) = holder else {
                return Ok(NoShowOutcome::NoHolder);
            };
            sqlx::query(
                "insert into no_shows (window_id, slot_id, entry_id, assignment_id, recorded_at,
                     recorded_by)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(window_id)
            .bind(slot_id)
            .bind(&entry_id)
            .bind(assignment_id)
            .bind(now)
            .bind(staff_id)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "slot_id": slot_id, "rank": rank });
            record_event!(
                tx,
                now,
                Actor::Staff(staff_id.to_owned()),
                "slot.no_show",
                Some(window_id),
                Some(entry_id.as_str()),
                detail
            );
            tx.commit().await?;
            Ok(NoShowOutcome::Recorded(NoShowRecord {
                window_id: window_id.to_owned(),
                slot_id: slot_id.to_owned(),
                entry_id,
                rank,
                recorded_at: now,
            }))
        })
    }

    /// Corrects an applicant's names (staff, with a reason): the entry, its duplicate
    /// key and the check code of the slot it holds change together, the old and new
    /// names are kept in `entry_corrections`, and the audit trail records which fields
    /// changed (not the names).
    pub async fn correct_entry(
        &self,
        entry_id: &str,
        correction: &NameCorrection<'_>,
        staff_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CorrectionOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row: Option<(String, String, String, NaiveDate)> = sqlx::query_as(
                "select window_id, family_name, given_names, birth_date from entries
                 where id = $1 and anonymised_at is null",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (window_id, old_family, old_given, birth_date) = row.ok_or(StoreError::NotFound)?;
            let stored = |column: &str, value: &str| {
                PersonName::parse(value)
                    .map_err(|_| StoreError::Corrupt(format!("entries.{column} of {entry_id}")))
            };
            let family = match correction.family_name {
                Some(name) => name.clone(),
                None => stored("family_name", &old_family)?,
            };
            let given = match correction.given_names {
                Some(name) => name.clone(),
                None => stored("given_names", &old_given)?,
            };
            let mut fields = Vec::new();
            if family.as_str() != old_family {
                fields.push("family_name");
            }
            if given.as_str() != old_given {
                fields.push("given_names");
            }
            if fields.is_empty() {
                return Ok(CorrectionOutcome::Unchanged);
            }
            let updated = sqlx::query(
                "update entries set family_name = $2, given_names = $3, person_key = $4
                 where id = $1",
            )
            .bind(entry_id)
            .bind(family.as_str())
            .bind(given.as_str())
            .bind(person_key(&family, &given, birth_date))
            .execute(&mut *tx)
            .await;
            if let Err(error) = updated {
                return Err(match duplicate_rule(&error) {
                    Some(rule) => StoreError::Duplicate(rule),
                    None => error.into(),
                });
            }
            let id: i64 = sqlx::query_scalar(
                "insert into entry_corrections (entry_id, window_id, corrected_at, corrected_by,
                     reason, old_family_name, old_given_names, new_family_name, new_given_names)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 returning id",
            )
            .bind(entry_id)
            .bind(&window_id)
            .bind(now)
            .bind(staff_id)
            .bind(correction.reason)
            .bind(&old_family)
            .bind(&old_given)
            .bind(family.as_str())
            .bind(given.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let held: Option<(i64, String)> = sqlx::query_as(
                "select id, slot_id from slot_assignments where entry_id = $1 and released_at is null",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((assignment_id, slot_id)) = &held {
                let key = check_key!(tx);
                let code = check_code(&key, entry_id, slot_id, family.as_str(), given.as_str());
                sqlx::query("update slot_assignments set check_digest = $2 where id = $1")
                    .bind(assignment_id)
                    .bind(code.lookup_digest())
                    .execute(&mut *tx)
                    .await?;
            }
            let detail = json!({
                "correction": id, "fields": fields, "check_code_changed": held.is_some(),
            });
            record_event!(
                tx,
                now,
                Actor::Staff(staff_id.to_owned()),
                "entry.corrected",
                Some(window_id.as_str()),
                Some(entry_id),
                detail
            );
            tx.commit().await?;
            Ok(CorrectionOutcome::Corrected(CorrectionRecord {
                id,
                entry_id: entry_id.to_owned(),
                window_id,
                fields,
                family_name: family.as_str().to_owned(),
                given_names: given.as_str().to_owned(),
                corrected_at: now,
                check_code_changed: held.is_some(),
            }))
        })
    }

    /// The applicant gives up their slot, or their place on the waiting list. A freed
    /// slot is offered at once to the next entry on the waiting list (see
    /// [`OfferPolicy`]); an open offer the applicant held is declined and passed on.
    pub async fn cancel_entry(
        &self,
        entry_id: &str,
        policy: OfferPolicy,
        mails: &dyn SlotMails,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row: Option<(String, Option<String>, String)> =
                sqlx::query_as("select window_id, email, language from entries where id = $1")
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (window_id, email, language) = row.ok_or(StoreError::NotFound)?;
            let cancelled: Option<DateTime<Utc>> =
                sqlx::query_scalar("select cancelled_at from cancellations where entry_id = $1")
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if cancelled.is_some() {
                return Ok(CancelOutcome::AlreadyCancelled);
            }
            let recorded: Option<i64> =
                sqlx::query_scalar("select assignments from draw_followups where window_id = $1")
                    .bind(&window_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if recorded.is_none() {
                return Ok(CancelOutcome::NothingToCancel);
            }
            let mut outbox_ids = Vec::new();
            let held: Option<(i64, String, i64, String, String)> = sqlx::query_as(
                "select a.id, a.slot_id, a.rank, s.starts_at, s.counter
                 from slot_assignments a
                 join slots s on s.window_id = a.window_id and s.id = a.slot_id
                 where a.entry_id = $1 and a.released_at is null",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            let given_back = match held {
                Some((assignment_id, slot_id, rank, starts_at, counter)) => {
                    let starts = slot_time(&starts_at)?;
                    if now >= starts {
                        return Ok(CancelOutcome::SlotStarted { starts_at: starts });
                    }
                    let checked_in: Option<DateTime<Utc>> = sqlx::query_scalar(
                        "select checked_in_at from checkins where assignment_id = $1",
                    )
                    .bind(assignment_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(at) = checked_in {
                        return Ok(CancelOutcome::CheckedIn { at });
                    }
                    sqlx::query(
                        "update slot_assignments set released_at = $2
                         where id = $1 and released_at is null",
                    )
                    .bind(assignment_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let release_id: i64 = sqlx::query_scalar(
                        "insert into slot_releases (window_id, slot_id, released_by_rank, reason,
                             released_at, offer_hours, margin_hours)
                         values ($1, $2, $3, 'cancelled', $4, $5, $6)
                         returning id",
                    )
                    .bind(&window_id)
                    .bind(&slot_id)
                    .bind(rank)
                    .bind(now)
                    .bind(policy.offer_hours)
                    .bind(policy.margin_hours)
                    .fetch_one(&mut *tx)
                    .await?;
                    let detail = json!({ "slot_id": slot_id, "rank": rank, "release": release_id });
                    record_event!(
                        tx,
                        now,
                        Actor::Applicant,
                        "slot.cancelled",
                        Some(window_id.as_str()),
                        Some(entry_id),
                        detail
                    );
                    outbox_ids.extend(offer_next!(tx, mails, Actor::Applicant, release_id, now));
                    Some(Slot {
                        id: slot_id,
                        starts_at,
                        counter,
                    })
                }
                None => {
                    let waiting: Option<i64> = sqlx::query_scalar(
                        "select r.rank from draw_results r
                         where r.entry_id = $1 and r.slot_id is null
                           and not exists (select 1 from slot_assignments a where a.entry_id = r.entry_id)
                           and not exists (select 1 from offers o
                                           where o.entry_id = r.entry_id and o.state <> 'open')",
                    )
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let last_slot: Option<String> =
                        sqlx::query_scalar("select max(starts_at) from slots where window_id = $1")
                            .bind(&window_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    let list_active = match &last_slot {
                        Some(last) => now < slot_time(last)?,
                        None => false,
                    };
                    let Some(rank) = waiting.filter(|_| list_active) else {
                        return Ok(CancelOutcome::NothingToCancel);
                    };
                    let open: Option<(i64, i64)> = sqlx::query_as(
                        "select id, release_id from offers where entry_id = $1 and state = 'open'",
                    )
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((offer_id, release_id)) = open {
                        sqlx::query(
                            "update offers set state = 'declined', answered_at = $2
                             where id = $1 and state = 'open'",
                        )
                        .bind(offer_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        let detail = json!({ "offer": offer_id, "rank": rank });
                        record_event!(
                            tx,
                            now,
                            Actor::Applicant,
                            "offer.declined",
                            Some(window_id.as_str()),
                            Some(entry_id),
                            detail
                        );
                        outbox_ids.extend(offer_next!(
                            tx,
                            mails,
                            Actor::Applicant,
                            release_id,
                            now
                        ));
                    }
                    let detail = json!({ "rank": rank });
                    record_event!(
                        tx,
                        now,
                        Actor::Applicant,
                        "entry.left_waiting_list",
                        Some(window_id.as_str()),
                        Some(entry_id),
                        detail
                    );
                    None
                }
            };
            sqlx::query(
                "insert into cancellations (entry_id, window_id, slot_id, cancelled_at)
                 values ($1, $2, $3, $4)",
            )
            .bind(entry_id)
            .bind(&window_id)
            .bind(given_back.as_ref().map(|s| s.id.as_str()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(email) = &email {
                let window = window_info!(tx, &window_id);
                let to = MailTo {
                    entry_id,
                    email,
                    language: &language,
                };
                let mail = mails.cancelled(&to, &window, given_back.as_ref());
                outbox_ids.push(insert_mail!(tx, mail, now));
            }
            tx.commit().await?;
            Ok(CancelOutcome::Cancelled {
                slot_id: given_back.map(|s| s.id),
                outbox_ids,
            })
        })
    }

    /// Accepts or declines the open offer of an entry. Accepting names the slot for the
    /// entry (with its own check code); declining, or answering after the deadline,
    /// passes the slot to the next entry on the waiting list.
    pub async fn answer_offer(
        &self,
        entry_id: &str,
        accept: bool,
        mails: &dyn SlotMails,
        now: DateTime<Utc>,
    ) -> Result<AnswerOutcome, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let open: Option<(i64, i64, String, String, i64, DateTime<Utc>)> = sqlx::query_as(
                "select id, release_id, window_id, slot_id, rank, expires_at from offers
                 where entry_id = $1 and state = 'open'",
            )
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((offer_id, release_id, window_id, slot_id, rank, expires_at)) = open else {
                let last: Option<String> = sqlx::query_scalar(
                    "select state from offers where entry_id = $1 order by id desc limit 1",
                )
                .bind(entry_id)
                .fetch_optional(&mut *tx)
                .await?;
                let last = last
                    .map(|s| parse_column("offers.state", &s, OfferState::parse))
                    .transpose()?;
                return Ok(AnswerOutcome::NoOpenOffer { last });
            };
            if now >= expires_at {
                sqlx::query(
                    "update offers set state = 'expired', answered_at = expires_at
                     where id = $1 and state = 'open'",
                )
                .bind(offer_id)
                .execute(&mut *tx)
                .await?;
                let detail = json!({ "offer": offer_id, "slot_id": slot_id, "rank": rank });
                record_event!(
                    tx,
                    now,
                    Actor::System,
                    "offer.expired",
                    Some(window_id.as_str()),
                    Some(entry_id),
                    detail
                );
                let outbox_ids: Vec<i64> = offer_next!(tx, mails, Actor::System, release_id, now)
                    .into_iter()
                    .collect();
                tx.commit().await?;
                return Ok(AnswerOutcome::Expired {
                    at: expires_at,
                    outbox_ids,
                });
            }
            let state = if accept { "accepted" } else { "declined" };
            let answered = sqlx::query(
                "update offers set state = $2, answered_at = $3 where id = $1 and state = 'open'",
            )
            .bind(offer_id)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if answered != 1 {
                return Err(StoreError::Corrupt(format!(
                    "offer {offer_id} changed under a write lock"
                )));
            }
            let detail = json!({ "offer": offer_id, "slot_id": slot_id, "rank": rank });
            record_event!(
                tx,
                now,
                Actor::Applicant,
                if accept {
                    "offer.accepted"
                } else {
                    "offer.declined"
                },
                Some(window_id.as_str()),
                Some(entry_id),
                detail
            );
            if !accept {
                let outbox_ids: Vec<i64> =
                    offer_next!(tx, mails, Actor::Applicant, release_id, now)
                        .into_iter()
                        .collect();
                tx.commit().await?;
                return Ok(AnswerOutcome::Declined { outbox_ids });
            }
            let (family_name, given_names): (String, String) =
                sqlx::query_as("select family_name, given_names from entries where id = $1")
                    .bind(entry_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let key = check_key!(tx);
            let code = check_code(&key, entry_id, &slot_id, &family_name, &given_names);
            // The partial unique indexes refuse a slot with two holders: this insert
            // fails (and the whole answer with it) rather than give the slot twice.
            sqlx::query(
                "insert into slot_assignments (window_id, slot_id, entry_id, rank, reason, since,
                     check_digest)
                 values ($1, $2, $3, $4, 'offer', $5, $6)",
            )
            .bind(&window_id)
            .bind(&slot_id)
            .bind(entry_id)
            .bind(rank)
            .bind(now)
            .bind(code.lookup_digest())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "update slot_releases set outcome = 'accepted', settled_at = $2
                 where id = $1 and outcome is null",
            )
            .bind(release_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(AnswerOutcome::Accepted { slot_id })
        })
    }

    /// Expires the open offers whose deadline has passed and passes each slot to the
    /// next entry on the waiting list. Returns how many expired and the ids of the
    /// mails queued.
    pub async fn expire_offers(
        &self,
        mails: &dyn SlotMails,
        now: DateTime<Utc>,
    ) -> Result<(usize, Vec<i64>), StoreError> {
        let mut expired = 0;
        let mut outbox_ids = Vec::new();
        loop {
            let due: Vec<i64> = on_db!(self, |pool| {
                sqlx::query_scalar(
                    "select id from offers where state = 'open' and expires_at <= $1
                     order by expires_at, id limit $2",
                )
                .bind(now)
                .bind(EXPIRY_BATCH)
                .fetch_all(pool)
                .await?
            });
            if due.is_empty() {
                return Ok((expired, outbox_ids));
            }
            for offer_id in due {
                on_db!(self, |pool| {
                    let mut tx = pool.begin_write().await?;
                    let row: Option<(i64, String, String, String, i64)> = sqlx::query_as(
                        "update offers set state = 'expired', answered_at = expires_at
                         where id = $1 and state = 'open' and expires_at <= $2
                         returning release_id, window_id, slot_id, entry_id, rank",
                    )
                    .bind(offer_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    // Answered or expired meanwhile by another request or instance.
                    let Some((release_id, window_id, slot_id, entry_id, rank)) = row else {
                        continue;
                    };
                    let detail = json!({ "offer": offer_id, "slot_id": slot_id, "rank": rank });
                    record_event!(
                        tx,
                        now,
                        Actor::System,
                        "offer.expired",
                        Some(window_id.as_str()),
                        Some(entry_id.as_str()),
                        detail
                    );
                    outbox_ids.extend(offer_next!(tx, mails, Actor::System, release_id, now));
                    tx.commit().await?;
                    expired += 1;
                });
            }
        }
    }

    /// The chain of reassignments of a window: each freed slot, who (by rank) gave it
    /// back, to whom (by rank) it was offered, when, and what became of it.
    pub async fn reassignments(&self, window_id: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        type ReleaseRow = (
            i64,
            String,
            i64,
            String,
            DateTime<Utc>,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        type ChainRow = (
            i64,
            i64,
            DateTime<Utc>,
            DateTime<Utc>,
            String,
            Option<DateTime<Utc>>,
        );
        let (releases, offers): (Vec<ReleaseRow>, Vec<ChainRow>) = on_db!(self, |pool| {
            let releases = sqlx::query_as(
                "select id, slot_id, released_by_rank, reason, released_at, outcome,
                        unused_reason, settled_at
                 from slot_releases where window_id = $1 order by id",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?;
            let offers = sqlx::query_as(
                "select release_id, rank, offered_at, expires_at, state, answered_at
                 from offers where window_id = $1 order by id",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?;
            (releases, offers)
        });
        let mut chains = Vec::with_capacity(releases.len());
        for (
            id,
            slot_id,
            released_by_rank,
            reason,
            released_at,
            outcome,
            unused_reason,
            settled_at,
        ) in releases
        {
            let offers = offers
                .iter()
                .filter(|o| o.0 == id)
                .map(|(_, rank, offered_at, expires_at, state, answered_at)| {
                    Ok(ChainOffer {
                        rank: *rank,
                        offered_at: *offered_at,
                        expires_at: *expires_at,
                        state: parse_column("offers.state", state, OfferState::parse)?,
                        answered_at: *answered_at,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            chains.push(ReleaseRecord {
                slot_id,
                released_by_rank,
                reason,
                released_at,
                outcome,
                unused_reason,
                settled_at,
                offers,
            });
        }
        Ok(chains)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(state: OfferState) -> OfferRecord {
        OfferRecord {
            id: 1,
            window_id: "w".into(),
            slot: Slot {
                id: "s".into(),
                starts_at: "2027-01-04T08:30:00Z".into(),
                counter: "G1".into(),
            },
            rank: 4,
            offered_at: DateTime::UNIX_EPOCH,
            expires_at: DateTime::UNIX_EPOCH,
            state,
            answered_at: None,
        }
    }

    #[test]
    fn standing_follows_the_holding() {
        use EntryStanding::*;
        let unrecorded = SlotHolding::default();
        assert_eq!(unrecorded.standing(Selected), Selected);
        let recorded = SlotHolding {
            recorded: true,
            ..SlotHolding::default()
        };
        assert_eq!(recorded.standing(Waiting), Waiting);
        let holder = SlotHolding {
            slot: Some(HeldSlot {
                slot: offer(OfferState::Accepted).slot,
                reason: "offer".into(),
                since: DateTime::UNIX_EPOCH,
            }),
            offer: Some(offer(OfferState::Accepted)),
            ..recorded.clone()
        };
        assert_eq!(holder.standing(Waiting), Selected);
        assert_eq!(holder.current_slot(None).unwrap().id, "s");
        let cancelled = SlotHolding {
            cancelled_at: Some(DateTime::UNIX_EPOCH),
            ..recorded.clone()
        };
        assert_eq!(cancelled.standing(Selected), Cancelled);
        assert_eq!(
            cancelled.current_slot(Some(offer(OfferState::Open).slot)),
            None
        );
        for (state, expected) in [
            (OfferState::Open, Waiting),
            (OfferState::Declined, NotSelected),
            (OfferState::Expired, NotSelected),
        ] {
            let offered = SlotHolding {
                offer: Some(offer(state)),
                ..recorded.clone()
            };
            assert_eq!(offered.standing(Waiting), expected, "{state:?}");
        }
    }
}
