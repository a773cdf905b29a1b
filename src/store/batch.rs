//! The set-based path of group commit: a batch of registrations stored with a constant
//! number of statements, whatever its size.
//!
//! Storing registrations one by one costs about fifteen statements each (savepoint,
//! idempotency claim, window check, duplicate check, five inserts, audit head read and
//! write, release). Each statement is a round trip: to the worker thread that runs a
//! SQLite connection, or over the network to PostgreSQL while the write lock is held.
//! Here a batch instead:
//!
//! 1. reads what the decisions depend on, once for the whole batch: the windows and
//!    the idempotency records of the batch's keys;
//! 2. decides in memory, in arrival order, exactly as storing them one by one would
//!    ([`plan`]): a repeated idempotency key replays the answer of the first request
//!    that claimed it, a registration whose key an earlier one of the batch took is a
//!    duplicate, and a refused registration leaves no trace for the ones after it;
//! 3. writes the accepted ones with one multi-row insert per table, and chains their
//!    audit events in memory from the head read once. The entries' insert goes first
//!    and skips an entry whose key a live stored entry holds (`on conflict do
//!    nothing`, the partial unique indexes deciding): such a registration is then
//!    looked up and refused by the first rule whose key is taken, as the one-by-one
//!    path would. The stored entries' keys are thus read only for the few
//!    registrations they refuse, not for every one before the insert (which cost a
//!    lookup per key and registration). If a later registration of the batch shares
//!    a key with a refused one, it was decided as if that one were stored: the writes
//!    are undone ([`SetStatements::undo_writes`]) and the batch is decided again,
//!    this time after reading every key of the batch that stored entries hold. On
//!    PostgreSQL every statement of the batch passes each column as one array
//!    (`unnest`, `= any`), so its text does not depend on the batch's size and each
//!    is prepared once per connection (see [`SetStatements`]). PostgreSQL, where each
//!    statement is a round trip over the network under the write lock, merges them
//!    further: the windows are read with the audit head, the mails inserted with the
//!    entries (only those of the entries stored), and the events with the head's
//!    update, so that a batch takes five round trips including `begin` and `commit`.
//!
//! On PostgreSQL a batch is first tried **at once**, in two round trips and without a
//! transaction block ([`Store::register_set_at_once`]): the reads above without a
//! lock, the decisions, then a single statement, committed on its own, that takes the
//! write lock and writes everything, its audit events in the places after the head
//! read. Every change a decision depends on appends an audit event, so if anything
//! changed since the reads, an event already holds one of those places and the
//! statement fails whole; it fails too when a stored entry holds a key of the batch.
//! Nothing of it is then stored, and the batch goes through the write transaction.
//!
//! Everything runs in one write transaction. If anything in it fails (a unique
//! violation the reads did not foresee, say, because a row was written by something
//! that does not take the write lock), the transaction is dropped, so nothing of it is
//! stored, and the caller falls back to the savepoint path, which gives each
//! registration its own exact answer.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::{Actor, next_event};
use super::entries::{CodeColumns, EntryStatus, PendingRegistration, RegisterOutcome};
use super::idempotency::IdempotencyRequest;
use super::outbox::{MAIL_LEASE, NewMail};
use super::{Db, Store, StoreError, WRITE_LOCK, WritePool, on_db, parse_column};
use crate::attest::chain::ChainEvent;
use crate::domain::identity::{DuplicateKeys, DuplicateRule, Identity};
use crate::domain::registration::Channel;
use crate::domain::window::{WindowState, check_registration_period};

/// A window's state and registration period, as read at the start of the batch.
type WindowPeriod = (String, DateTime<Utc>, DateTime<Utc>);

/// An idempotency record: stored before the batch, or claimed by an earlier
/// registration of the batch.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub fingerprint: String,
    pub status: i64,
    pub body: String,
    /// `None` for a claim of this batch (it cannot have expired yet).
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the in-memory pass decided for one registration.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Answered without writing: an idempotent replay, or a refusal.
    Answer(Result<RegisterOutcome, StoreError>),
    /// To store. `purge_claim` when an expired idempotency record holds its key and
    /// must be deleted first.
    Accept { purge_claim: bool },
}

/// The duplicate keys already taken in one window, one set per rule (in the order of
/// [`DuplicateRule::ALL`]).
pub(crate) type Taken = [HashSet<String>; 4];

/// A registration's key for `rule`, if it has one (no e-mail, no phone: no key).
fn key_of(keys: &DuplicateKeys, rule: DuplicateRule) -> Option<&str> {
    match rule {
        DuplicateRule::Document => Some(&keys.document),
        DuplicateRule::Person => Some(&keys.person),
        DuplicateRule::Email => keys.email.as_deref(),
        DuplicateRule::Phone => keys.phone.as_deref(),
    }
}

/// The first rule, in the documented order, whose key of `keys` is among `taken`.
fn first_taken_rule(keys: &DuplicateKeys, taken: &Taken) -> Option<DuplicateRule> {
    DuplicateRule::ALL
        .into_iter()
        .find(|rule| key_of(keys, *rule).is_some_and(|key| taken[rule_index(*rule)].contains(key)))
}

fn rule_index(rule: DuplicateRule) -> usize {
    DuplicateRule::ALL
        .iter()
        .position(|r| *r == rule)
        .unwrap_or_default()
}

/// Decides, for each registration in arrival order, what storing them one by one
/// would have answered, given what was stored before the batch: its `windows`, the
/// idempotency `claims` of its keys (by `(scope, key)`) and the duplicate keys
/// `taken` in each window. `claims` and `taken` are updated with what the accepted
/// registrations take, so that later ones of the batch see them.
///
/// The checks come in the order of the one-by-one path: the idempotency key (a
/// replay, or the key reused with another body), then the window's state and period,
/// then the four duplicate rules, the first matching rule in their documented order
/// naming the refusal.
pub(crate) fn plan(
    batch: &[PendingRegistration<'_>],
    windows: &HashMap<String, WindowPeriod>,
    claims: &mut HashMap<(String, String), Claim>,
    taken: &mut HashMap<String, Taken>,
) -> Vec<Decision> {
    batch
        .iter()
        .map(|item| {
            let mut purge_claim = false;
            if let Some(request) = item.idempotency {
                let claim_key = (request.scope.clone(), request.key.to_owned());
                match claims.get(&claim_key) {
                    // An expired record counts as absent; it is purged if this
                    // registration is stored.
                    Some(claim) if claim.expires_at.is_some_and(|at| at <= item.now) => {
                        purge_claim = true;
                    }
                    Some(claim) => {
                        return Decision::Answer(replay(claim, &request.fingerprint));
                    }
                    None => {}
                }
            }
            let entry = &item.entry;
            let Some((state, opens_at, closes_at)) = windows.get(entry.window_id) else {
                return Decision::Answer(Err(StoreError::NotFound));
            };
            let period =
                parse_column("windows.state", state, WindowState::parse).and_then(|state| {
                    check_registration_period(state, *opens_at, *closes_at, item.now)
                        .map_err(StoreError::from)
                });
            if let Err(refusal) = period {
                return Decision::Answer(Err(refusal));
            }
            let window_taken = taken.entry(entry.window_id.to_owned()).or_default();
            if let Some(rule) = first_taken_rule(entry.keys, window_taken) {
                return Decision::Answer(Err(StoreError::Duplicate(rule)));
            }
            for rule in DuplicateRule::ALL {
                if let Some(key) = key_of(entry.keys, rule) {
                    window_taken[rule_index(rule)].insert(key.to_owned());
                }
            }
            if let Some(request) = item.idempotency {
                claims.insert(
                    (request.scope.clone(), request.key.to_owned()),
                    Claim {
                        fingerprint: request.fingerprint.clone(),
                        status: i64::from(request.status),
                        body: request.body.clone(),
                        expires_at: None,
                    },
                );
            }
            Decision::Accept { purge_claim }
        })
        .collect()
}

/// The answer to a request whose idempotency key is already held, as
/// `check_idempotency!` gives it.
fn replay(claim: &Claim, fingerprint: &str) -> Result<RegisterOutcome, StoreError> {
    if claim.fingerprint != fingerprint {
        return Err(StoreError::IdempotencyKeyReused);
    }
    let status = u16::try_from(claim.status)
        .ok()
        .filter(|status| *status != 0)
        .ok_or_else(|| StoreError::Corrupt("idempotency_keys.status".into()))?;
    Ok(RegisterOutcome::Replayed {
        status,
        body: claim.body.clone(),
    })
}

/// `($1, $2), ($3, $4)`: `rows` groups of `columns` numbered placeholders, from
/// `$first` on, for PostgreSQL; `(?, ?), (?, ?)` (`first` = 1) for SQLite, which binds
/// them in the order they appear. SQLite could take the numbered ones too, but the
/// driver looks each number up among the statement's names, a cost that grows with
/// the square of their count: a few percent of the registration's time for the 1,600
/// parameters of a batch's entries (measured with `perf`).
pub(super) fn placeholders(rows: usize, columns: usize, first: usize, anonymous: bool) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            if anonymous {
                out.push('?');
            } else {
                let _ = write!(out, "${}", first + row * columns + column);
            }
        }
        out.push(')');
    }
    out
}

/// A placeholder: `$n` for PostgreSQL, `?` for SQLite (see [`placeholders`]). Every
/// statement here binds its values in the order its placeholders appear.
fn mark(n: usize, anonymous: bool) -> String {
    if anonymous {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

/// `(scope = $1 and key = $2) or (...)`, for `rows` pairs from `$first` on.
fn pairs_condition(
    first_column: &str,
    second_column: &str,
    rows: usize,
    first: usize,
    anonymous: bool,
) -> String {
    (0..rows)
        .map(|row| {
            let n = first + 2 * row;
            format!(
                "({first_column} = {} and {second_column} = {})",
                mark(n, anonymous),
                mark(n + 1, anonymous)
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The statement that finds which of a window's candidate keys are taken: for each
/// rule with keys, the rule's name and the key, from its unique index. `counts` says
/// how many keys each rule has; the values are bound rule after rule, each time the
/// window id and then the rule's keys.
fn taken_query(counts: [usize; 4], anonymous: bool) -> String {
    let mut parts = Vec::new();
    let mut next = 1;
    for (rule, count) in DuplicateRule::ALL.into_iter().zip(counts) {
        if count == 0 {
            continue;
        }
        let column = rule.key_column();
        let window = mark(next, anonymous);
        let list = (next + 1..next + 1 + count)
            .map(|n| mark(n, anonymous))
            .collect::<Vec<_>>()
            .join(", ");
        next += 1 + count;
        parts.push(format!(
            "select '{name}', {column} from entries
               where window_id = {window} and status <> 'withdrawn' and {column} in ({list})",
            name = rule.as_str()
        ));
    }
    parts.join(" union all ")
}

/// The columns of one entry row, in the order of [`INSERT_ENTRIES`].
pub(super) const ENTRY_COLUMNS: usize = 29;

/// The entries' table and the columns an insert gives, as one literal text.
macro_rules! entries_and_columns {
    () => {
        "entries (id, window_id, status, channel,
    access_code_hash, family_name, given_names, birth_date, nationality, document_kind,
    document_number, document_country, email, phone, permit_expires_on, language,
    unsuccessful_draws, weight, document_key, person_key, email_key, phone_key,
    registered_by, created_at, verified_at, code_hash, code_expires_at, code_sends,
    code_sent_at) "
    };
}

pub(super) const INSERT_ENTRIES: &str = concat!("insert into ", entries_and_columns!());

/// [`INSERT_ENTRIES`] where a failed constraint rolls the whole transaction back
/// instead of the statement alone, so that SQLite keeps no statement journal for it
/// (see [`super::direct`]).
pub(super) const INSERT_ENTRIES_OR_ROLLBACK: &str =
    concat!("insert or rollback into ", entries_and_columns!());

/// The savepoint a batch's transaction sets before its first write (see
/// [`decide_and_write`]), and the way back to it.
pub(super) const PLANNED: &str = "savepoint planned";
const ROLLBACK_TO_PLANNED: &str = "rollback to savepoint planned";

/// Ends [`INSERT_ENTRIES`]: an entry whose key a live entry of its window already
/// holds (one of the partial unique indexes) is skipped instead of failing the
/// statement, and the ids of the stored ones come back.
pub(super) const ON_TAKEN_KEY: &str = "on conflict do nothing returning id";

/// Whether each of `accepted` is among the `stored` ids.
fn stored_flags(accepted: &[&PendingRegistration<'_>], stored: Vec<String>) -> Vec<bool> {
    if stored.len() == accepted.len() {
        return vec![true; accepted.len()];
    }
    let stored: HashSet<String> = stored.into_iter().collect();
    accepted
        .iter()
        .map(|item| stored.contains(item.entry.id))
        .collect()
}

/// One column of `rows` as an array, for the PostgreSQL statements that insert a
/// batch as one array per column (`unnest`).
fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

/// An entry's status when stored, and when it counts as verified.
pub(super) fn initial_status(
    item: &PendingRegistration<'_>,
) -> (EntryStatus, Option<DateTime<Utc>>) {
    let status = match item.entry.channel {
        Channel::Online => EntryStatus::PendingVerification,
        Channel::Counter => EntryStatus::Eligible,
    };
    (
        status,
        (status == EntryStatus::Eligible).then_some(item.now),
    )
}

/// A queued mail: the id of the entry it is for, and the id of its outbox row.
pub(super) type MailId = (String, i64);

/// The rows of a multi-row insert of `mails` (id, kind, recipient, subject, body),
/// which come back in no promised order, paired with the entries of the mails: each
/// row goes to a mail with its content (identical mails are interchangeable).
fn mail_ids_by_content(
    mails: &[(&PendingRegistration<'_>, &NewMail)],
    rows: Vec<(i64, String, String, String, String)>,
) -> Vec<MailId> {
    let mut unclaimed: Vec<Option<&(&PendingRegistration<'_>, &NewMail)>> =
        mails.iter().map(Some).collect();
    let mut ids = Vec::with_capacity(rows.len());
    for (id, kind, recipient, subject, body) in rows {
        let found = unclaimed.iter_mut().find(|slot| {
            slot.is_some_and(|(_, m)| {
                m.recipient == recipient && m.kind == kind && m.subject == subject && m.body == body
            })
        });
        if let Some((item, _)) = found.and_then(Option::take) {
            ids.push((item.entry.id.to_owned(), id));
        }
    }
    ids
}

/// The statements of a batch whose form differs between the engines: the duplicate
/// keys already taken, and the multi-row inserts.
///
/// On SQLite each row gets its own placeholders: a statement is prepared in process,
/// in microseconds. On PostgreSQL each column travels as one array, and `unnest`
/// turns the arrays back into rows: the text of the statement is then the same
/// whatever the batch's size, so each connection prepares it once. With a row of
/// placeholders each, the text changed with almost every batch, and the driver, which
/// keeps prepared statements by their text, prepared each again (one more round trip
/// under the write lock) and evicted the others.
pub(super) trait SetStatements {
    /// For each rule with keys (`keys`, in the order of [`DuplicateRule::ALL`]), the
    /// rule's name and those of its keys that a live entry of the window holds.
    async fn taken_keys(
        &mut self,
        window_id: &str,
        keys: &[Vec<&str>; 4],
    ) -> Result<Vec<(String, String)>, sqlx::Error>;
    /// Undoes what the batch wrote: back to the savepoint [`PLANNED`], which the
    /// caller set when it began the transaction, or the transaction begun again. What
    /// was read before is read again after it.
    async fn undo_writes(&mut self) -> Result<(), sqlx::Error>;
    /// The state and registration period of each of these windows that exists, and
    /// the audit chain's head (count and hash of the last event), taking its row lock
    /// on PostgreSQL as every append does. The write lock is held, so the head read
    /// here is still the head when the batch's events are chained.
    async fn windows_and_audit_head(
        &mut self,
        ids: &[&str],
    ) -> Result<(Vec<WindowRow>, (i64, String)), sqlx::Error>;
    /// Inserts the entries, skipping any whose key a live entry of its window already
    /// holds (`on conflict do nothing`), and the mails of those stored (a refused
    /// registration's mail is never queued): whether each entry was stored, and the
    /// new mail rows, in no promised order.
    async fn insert_entries_and_mails(
        &mut self,
        accepted: &[&PendingRegistration<'_>],
    ) -> Result<(Vec<bool>, Vec<MailId>), sqlx::Error>;
    /// Inserts the events, already chained, and moves the head to the last of them.
    async fn append_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error>;
    /// The stored idempotency records of these requests' `(scope, key)`.
    async fn claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<Vec<ClaimRow>, sqlx::Error>;
    /// Deletes the (expired) idempotency records of these requests' `(scope, key)`.
    async fn purge_claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<(), sqlx::Error>;
    async fn insert_claims(
        &mut self,
        claimed: &[(&PendingRegistration<'_>, &IdempotencyRequest<'_>)],
    ) -> Result<(), sqlx::Error>;
}

/// The writes of [`SetStatements`] one table at a time, as the two SQLite connections
/// (sqlx's and the [direct writer](super::direct)) make them: a statement there is a
/// call into the library on the same thread, not a round trip, so there is nothing to
/// gain by merging them as PostgreSQL does. [`set_statements_from_separate`] builds
/// the merged operations from these.
pub(super) trait SeparateStatements {
    /// The state and registration period of each of these windows that exists.
    async fn windows(&mut self, ids: &[&str]) -> Result<Vec<WindowRow>, sqlx::Error>;
    /// The audit chain's head: count and hash of the last event.
    async fn audit_head(&mut self) -> Result<(i64, String), sqlx::Error>;
    async fn set_audit_head(
        &mut self,
        count: i64,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
    /// Inserts the entries, skipping any whose key a live entry of its window already
    /// holds (`on conflict do nothing`), and says of each whether it was stored.
    async fn insert_entries(
        &mut self,
        accepted: &[&PendingRegistration<'_>],
    ) -> Result<Vec<bool>, sqlx::Error>;
    /// Returns the new rows, in no promised order.
    async fn insert_mails(
        &mut self,
        mails: &[(&PendingRegistration<'_>, &NewMail)],
    ) -> Result<Vec<MailId>, sqlx::Error>;
    async fn insert_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error>;
}

/// [`SetStatements::windows_and_audit_head`],
/// [`SetStatements::insert_entries_and_mails`] and [`SetStatements::append_events`]
/// made of [`SeparateStatements`], which must be in scope.
macro_rules! set_statements_from_separate {
    () => {
        async fn windows_and_audit_head(
            &mut self,
            ids: &[&str],
        ) -> Result<(Vec<WindowRow>, (i64, String)), sqlx::Error> {
            let windows = self.windows(ids).await?;
            Ok((windows, self.audit_head().await?))
        }

        async fn insert_entries_and_mails(
            &mut self,
            accepted: &[&PendingRegistration<'_>],
        ) -> Result<(Vec<bool>, Vec<MailId>), sqlx::Error> {
            let stored = self.insert_entries(accepted).await?;
            let mails: Vec<_> = accepted
                .iter()
                .zip(&stored)
                .filter(|(_, stored)| **stored)
                .filter_map(|(item, _)| item.mail.map(|mail| (*item, mail)))
                .collect();
            let rows = if mails.is_empty() {
                Vec::new()
            } else {
                self.insert_mails(&mails).await?
            };
            Ok((stored, rows))
        }

        async fn append_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error> {
            let Some((count, last)) = events.last() else {
                return Ok(());
            };
            self.insert_events(events).await?;
            self.set_audit_head(*count, &last.hash, last.at).await
        }
    };
}
pub(super) use set_statements_from_separate;

/// [`SetStatements::undo_writes`] through sqlx, whose text both engines take.
macro_rules! sqlx_undo_writes {
    () => {
        async fn undo_writes(&mut self) -> Result<(), sqlx::Error> {
            sqlx::query(ROLLBACK_TO_PLANNED).execute(self).await?;
            Ok(())
        }
    };
}

/// Binds the events' columns, one array each (nine parameters), on PostgreSQL.
macro_rules! bind_events {
    ($query:expr, $events:expr) => {{
        let events: &[(i64, ChainEvent)] = $events;
        $query
            .bind(column(events, |(seq, _)| *seq))
            .bind(column(events, |(_, e)| e.at))
            .bind(column(events, |(_, e)| e.actor.as_str()))
            .bind(column(events, |(_, e)| e.action.as_str()))
            .bind(column(events, |(_, e)| e.window_id.clone()))
            .bind(column(events, |(_, e)| e.entry_id.clone()))
            .bind(column(events, |(_, e)| {
                crate::attest::canonical_json(&e.detail)
            }))
            .bind(column(events, |(_, e)| e.prev_hash.as_str()))
            .bind(column(events, |(_, e)| e.hash.as_str()))
    }};
}

/// Binds the idempotency records' columns, one array each (seven parameters, in the
/// order of [`insert_claims_sql`]), on PostgreSQL.
macro_rules! bind_claims {
    ($query:expr, $claimed:expr) => {{
        let claimed: &[(&PendingRegistration<'_>, &IdempotencyRequest<'_>)] = $claimed;
        $query
            .bind(column(claimed, |(_, r)| r.scope.as_str()))
            .bind(column(claimed, |(_, r)| r.key))
            .bind(column(claimed, |(_, r)| r.fingerprint.as_str()))
            .bind(column(claimed, |(_, r)| i64::from(r.status)))
            .bind(column(claimed, |(_, r)| r.body.as_str()))
            .bind(column(claimed, |(i, _)| i.now))
            .bind(column(claimed, |(_, r)| r.expires_at))
    }};
}

/// A window as [`SeparateStatements::windows`] reads it: id, state, registration
/// period.
pub(super) type WindowRow = (String, String, DateTime<Utc>, DateTime<Utc>);
/// An idempotency record as [`SetStatements::claims`] reads it: scope, key,
/// fingerprint, status, response, expiry.
pub(super) type ClaimRow = (String, String, String, i64, String, DateTime<Utc>);

impl SetStatements for sqlx::SqliteConnection {
    sqlx_undo_writes!();
    set_statements_from_separate!();

    async fn taken_keys(
        &mut self,
        window_id: &str,
        keys: &[Vec<&str>; 4],
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let sql = taken_query(keys.each_ref().map(Vec::len), true);
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for rule_keys in keys.iter().filter(|rule_keys| !rule_keys.is_empty()) {
            query = query.bind(window_id);
            for key in rule_keys {
                query = query.bind(*key);
            }
        }
        query.fetch_all(self).await
    }

    async fn claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<Vec<ClaimRow>, sqlx::Error> {
        let sql = format!(
            "select scope, key, fingerprint, status, response, expires_at
             from idempotency_keys where {}",
            pairs_condition("scope", "key", requests.len(), 1, true)
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for request in requests {
            query = query.bind(&request.scope).bind(request.key);
        }
        query.fetch_all(self).await
    }

    async fn purge_claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "delete from idempotency_keys where {}",
            pairs_condition("scope", "key", requests.len(), 1, true)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for request in requests {
            query = query.bind(&request.scope).bind(request.key);
        }
        query.execute(self).await?;
        Ok(())
    }

    async fn insert_claims(
        &mut self,
        claimed: &[(&PendingRegistration<'_>, &IdempotencyRequest<'_>)],
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "insert into idempotency_keys
                 (scope, key, fingerprint, status, response, created_at, expires_at)
             values {}",
            placeholders(claimed.len(), 7, 1, true)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (item, request) in claimed {
            query = query
                .bind(&request.scope)
                .bind(request.key)
                .bind(&request.fingerprint)
                .bind(i64::from(request.status))
                .bind(&request.body)
                .bind(item.now)
                .bind(request.expires_at);
        }
        query.execute(self).await?;
        Ok(())
    }
}

impl SeparateStatements for sqlx::SqliteConnection {
    async fn audit_head(&mut self) -> Result<(i64, String), sqlx::Error> {
        sqlx::query_as("select count, hash from audit_head where id = 1")
            .fetch_one(self)
            .await
    }

    async fn set_audit_head(
        &mut self,
        count: i64,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("update audit_head set count = $1, hash = $2, at = $3 where id = 1")
            .bind(count)
            .bind(hash)
            .bind(at)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn windows(&mut self, ids: &[&str]) -> Result<Vec<WindowRow>, sqlx::Error> {
        let sql = format!(
            "select id, state, registration_opens_at, registration_closes_at from windows
             where id in ({})",
            vec!["?"; ids.len()].join(", ")
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(self).await
    }

    async fn insert_entries(
        &mut self,
        accepted: &[&PendingRegistration<'_>],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let sql = format!(
            "{INSERT_ENTRIES} values {} {ON_TAKEN_KEY}",
            placeholders(accepted.len(), ENTRY_COLUMNS, 1, true)
        );
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        for item in accepted {
            let entry = &item.entry;
            let identity = &entry.registration.identity;
            let (status, verified_at) = initial_status(item);
            let code = CodeColumns::of(item.code.as_ref(), item.now);
            query = query
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
                .bind(item.now)
                .bind(verified_at)
                .bind(code.hash)
                .bind(code.expires_at)
                .bind(code.sends)
                .bind(code.sent_at);
        }
        let stored: Vec<String> = query.fetch_all(self).await?;
        Ok(stored_flags(accepted, stored))
    }

    async fn insert_mails(
        &mut self,
        mails: &[(&PendingRegistration<'_>, &NewMail)],
    ) -> Result<Vec<MailId>, sqlx::Error> {
        let sql = format!(
            "insert into outbox (kind, recipient, subject, body, created_at, next_attempt_at)
             values {} returning id, kind, recipient, subject, body",
            placeholders(mails.len(), 6, 1, true)
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for (item, mail) in mails {
            query = query
                .bind(&mail.kind)
                .bind(&mail.recipient)
                .bind(&mail.subject)
                .bind(&mail.body)
                .bind(item.now)
                .bind(item.now + MAIL_LEASE);
        }
        let rows: Vec<(i64, String, String, String, String)> = query.fetch_all(self).await?;
        Ok(mail_ids_by_content(mails, rows))
    }

    async fn insert_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error> {
        let sql = format!(
            "insert into audit_events
                 (seq, at, actor, action, window_id, entry_id, detail, prev_hash, hash)
             values {}",
            placeholders(events.len(), 9, 1, true)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, event) in events {
            query = query
                .bind(*seq)
                .bind(event.at)
                .bind(&event.actor)
                .bind(&event.action)
                .bind(&event.window_id)
                .bind(&event.entry_id)
                .bind(crate::attest::canonical_json(&event.detail))
                .bind(&event.prev_hash)
                .bind(&event.hash);
        }
        query.execute(self).await?;
        Ok(())
    }
}

impl SetStatements for sqlx::PgConnection {
    sqlx_undo_writes!();

    async fn taken_keys(
        &mut self,
        window_id: &str,
        keys: &[Vec<&str>; 4],
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        // Every rule, with an empty array for a rule without keys: one text for all.
        let sql = DuplicateRule::ALL
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                format!(
                    "select '{name}', {column} from entries
                       where window_id = $1 and status <> 'withdrawn'
                         and {column} = any(${n}::text[])",
                    name = rule.as_str(),
                    column = rule.key_column(),
                    n = i + 2
                )
            })
            .collect::<Vec<_>>()
            .join(" union all ");
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(window_id);
        for rule_keys in keys {
            query = query.bind(rule_keys);
        }
        query.fetch_all(self).await
    }

    /// One statement: the mails' insert takes the entries' insert's ids (a `with`
    /// query), so a mail is queued only if its entry was stored.
    async fn insert_entries_and_mails(
        &mut self,
        accepted: &[&PendingRegistration<'_>],
    ) -> Result<(Vec<bool>, Vec<MailId>), sqlx::Error> {
        pg_insert_entries_and_mails(self, accepted).await
    }

    /// One statement: the head's no-op update, which takes its row lock, joined to the
    /// windows.
    async fn windows_and_audit_head(
        &mut self,
        ids: &[&str],
    ) -> Result<(Vec<WindowRow>, (i64, String)), sqlx::Error> {
        pg_windows_and_head(self, HEAD_LOCKED, ids).await
    }

    /// One statement: the head's update reads the count from the events' insert (a
    /// `with` query), so it runs once they are all inserted, and the head's trigger,
    /// which counts the events it moves over, sees them.
    async fn append_events(&mut self, events: &[(i64, ChainEvent)]) -> Result<(), sqlx::Error> {
        let Some((count, last)) = events.last() else {
            return Ok(());
        };
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "with added as ({} returning seq)
                 update audit_head set count = (select max(seq) from added), hash = $10, at = $11
                 where id = 1 and (select max(seq) from added) = $12",
                insert_events_sql(1)
            )
        });
        let moved = bind_events!(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), events)
            .bind(last.hash.as_str())
            .bind(last.at)
            .bind(*count)
            .execute(self)
            .await?;
        if moved.rows_affected() == 1 {
            Ok(())
        } else {
            Err(sqlx::Error::Protocol(
                "the audit head did not move to the last event appended".into(),
            ))
        }
    }

    async fn claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<Vec<ClaimRow>, sqlx::Error> {
        sqlx::query_as(
            "select i.scope, i.key, i.fingerprint, i.status, i.response, i.expires_at
             from unnest($1::text[], $2::text[]) as r (scope, key)
             join idempotency_keys i on i.scope = r.scope and i.key = r.key",
        )
        .bind(column(requests, |r| r.scope.as_str()))
        .bind(column(requests, |r| r.key))
        .fetch_all(self)
        .await
    }

    async fn purge_claims(
        &mut self,
        requests: &[&IdempotencyRequest<'_>],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "delete from idempotency_keys i using unnest($1::text[], $2::text[]) as r (scope, key)
             where i.scope = r.scope and i.key = r.key",
        )
        .bind(column(requests, |r| r.scope.as_str()))
        .bind(column(requests, |r| r.key))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_claims(
        &mut self,
        claimed: &[(&PendingRegistration<'_>, &IdempotencyRequest<'_>)],
    ) -> Result<(), sqlx::Error> {
        static SQL: LazyLock<String> = LazyLock::new(|| insert_claims_sql(1));
        bind_claims!(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), claimed)
            .execute(self)
            .await?;
        Ok(())
    }
}

/// The audit events' insert on PostgreSQL, its columns `$1` to `$9` counted from
/// `first` (see [`bind_events`]).
fn insert_events_sql(first: usize) -> String {
    format!(
        "insert into audit_events
             (seq, at, actor, action, window_id, entry_id, detail, prev_hash, hash)
         select u.* from {} as u",
        unnest_arrays(first, &EVENT_TYPES)
    )
}

/// The idempotency records' insert on PostgreSQL, its columns `$1` to `$7` counted
/// from `first` (see [`bind_claims`]).
fn insert_claims_sql(first: usize) -> String {
    format!(
        "insert into idempotency_keys
             (scope, key, fingerprint, status, response, created_at, expires_at)
         select u.* from {} as u",
        unnest_arrays(first, &CLAIM_TYPES)
    )
}

/// `unnest($first::type[], ...)`: one array parameter of each type, numbered from
/// `first`.
fn unnest_arrays(first: usize, types: &[&str]) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, kind)| format!("${}::{kind}[]", first + i))
        .collect();
    format!("unnest({})", arrays.join(", "))
}

/// The types of the entries' columns, in the order of [`INSERT_ENTRIES`].
#[rustfmt::skip]
const ENTRY_TYPES: [&str; ENTRY_COLUMNS] = [
    "text", "text", "text", "text", "bytea", "text", "text", "date", "text", "text", "text",
    "text", "text", "text", "date", "text", "int8", "int8", "text", "text", "text", "text",
    "text", "timestamptz", "timestamptz", "bytea", "timestamptz", "int8", "timestamptz",
];

/// The types of the audit events' columns, in the order of [`insert_events_sql`].
#[rustfmt::skip]
const EVENT_TYPES: [&str; 9] =
    ["int8", "timestamptz", "text", "text", "text", "text", "text", "text", "text"];

/// The types of the idempotency records' columns: scope, key, fingerprint, status,
/// response, creation, expiry.
const CLAIM_TYPES: [&str; 7] = [
    "text",
    "text",
    "text",
    "int8",
    "text",
    "timestamptz",
    "timestamptz",
];

/// The mails' insert on PostgreSQL, its columns `$30` to `$36` (see
/// [`entries_and_mails_query`]), joined to the entries the query `e` inserted: two
/// queries of a `with`, `mail_ids`, which draws each mail's id from the outbox's
/// sequence beside the id of its entry (read once, as it is materialized), and
/// `m`, which inserts them. The rows an insert returns come in no promised order and
/// can only name the inserted row's own columns, so the pairs come from `mail_ids`
/// rather than from the mails' contents.
const INSERT_MAILS_OF_E: &str = "mail_ids as materialized (
         select m.entry_id, nextval('outbox_id_seq') as id, m.kind, m.recipient, m.subject,
             m.body, m.at, m.due
         from unnest($30::text[], $31::text[], $32::text[], $33::text[], $34::text[],
             $35::timestamptz[], $36::timestamptz[])
             as m (entry_id, kind, recipient, subject, body, at, due)
         join e on e.id = m.entry_id),
     m as (insert into outbox
               (id, kind, recipient, subject, body, created_at, next_attempt_at)
           select id, kind, recipient, subject, body, at, due from mail_ids)";

/// A statement returning [`EntryOrMailRow`]s, its entries' columns bound as
/// `$1` to `$29` and the mails' as `$30` to `$36`.
fn entries_and_mails_query<'q>(
    sql: &'static str,
    accepted: &'q [&'q PendingRegistration<'q>],
    mails: &'q [(&'q PendingRegistration<'q>, &'q NewMail)],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, EntryOrMailRow, sqlx::postgres::PgArguments> {
    fn identity<'a>(item: &'a PendingRegistration<'_>) -> &'a Identity {
        &item.entry.registration.identity
    }
    let codes: Vec<CodeColumns<'_>> = accepted
        .iter()
        .map(|i| CodeColumns::of(i.code.as_ref(), i.now))
        .collect();
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(column(accepted, |i| i.entry.id))
        .bind(column(accepted, |i| i.entry.window_id))
        .bind(column(accepted, |i| initial_status(i).0.as_str()))
        .bind(column(accepted, |i| i.entry.channel.as_str()))
        .bind(column(accepted, |i| i.entry.access_code_hash.to_vec()))
        .bind(column(accepted, |i| identity(i).family_name.as_str()))
        .bind(column(accepted, |i| identity(i).given_names.as_str()))
        .bind(column(accepted, |i| identity(i).birth_date))
        .bind(column(accepted, |i| identity(i).nationality.as_str()))
        .bind(column(accepted, |i| identity(i).document.kind.as_str()))
        .bind(column(accepted, |i| identity(i).document.number.as_str()))
        .bind(column(accepted, |i| identity(i).document.country.as_str()))
        .bind(column(accepted, |i| {
            identity(i).email.as_ref().map(|e| e.as_str())
        }))
        .bind(column(accepted, |i| {
            identity(i).phone.as_ref().map(|p| p.as_str())
        }))
        .bind(column(accepted, |i| i.entry.registration.permit_expires_on))
        .bind(column(accepted, |i| i.entry.registration.language.as_str()))
        .bind(column(accepted, |i| i64::from(i.entry.unsuccessful_draws)))
        .bind(column(accepted, |i| i64::from(i.entry.weight)))
        .bind(column(accepted, |i| i.entry.keys.document.as_str()))
        .bind(column(accepted, |i| i.entry.keys.person.as_str()))
        .bind(column(accepted, |i| i.entry.keys.email.as_deref()))
        .bind(column(accepted, |i| i.entry.keys.phone.as_deref()))
        .bind(column(accepted, |i| i.entry.registered_by))
        .bind(column(accepted, |i| i.now))
        .bind(column(accepted, |i| initial_status(i).1))
        .bind(column(&codes, |c| c.hash.map(<[u8]>::to_vec)))
        .bind(column(&codes, |c| c.expires_at))
        .bind(column(&codes, |c| c.sends))
        .bind(column(&codes, |c| c.sent_at))
        .bind(column(mails, |(i, _)| i.entry.id))
        .bind(column(mails, |(_, m)| m.kind.as_str()))
        .bind(column(mails, |(_, m)| m.recipient.as_str()))
        .bind(column(mails, |(_, m)| m.subject.as_str()))
        .bind(column(mails, |(_, m)| m.body.as_str()))
        .bind(column(mails, |(i, _)| i.now))
        .bind(column(mails, |(i, _)| i.now + MAIL_LEASE))
}

/// The mails of the registrations that have one.
fn mails_of<'a>(
    accepted: &[&'a PendingRegistration<'a>],
) -> Vec<(&'a PendingRegistration<'a>, &'a NewMail)> {
    accepted
        .iter()
        .filter_map(|item| item.mail.map(|mail| (*item, mail)))
        .collect()
}

/// What the statements of [`entries_and_mails_query`] return, sorted out: the ids of
/// the entries stored, the mail rows, and the audit head's new count if a row gave it.
type SplitRows = (Vec<String>, Vec<MailId>, Option<i64>);

/// Sorts out [`EntryOrMailRow`]s (see [`SplitRows`]).
fn split_rows(rows: Vec<EntryOrMailRow>) -> Result<SplitRows, sqlx::Error> {
    let (mut stored, mut mails, mut head) = (Vec::new(), Vec::new(), None);
    for row in rows {
        match row {
            (kind, Some(entry_id), None) if kind == "entry" => stored.push(entry_id),
            (kind, Some(entry_id), Some(id)) if kind == "mail" => mails.push((entry_id, id)),
            (kind, None, Some(count)) if kind == "head" => head = Some(count),
            _ => {
                return Err(sqlx::Error::Protocol(
                    "a row neither an entry, a mail nor the audit head".into(),
                ));
            }
        }
    }
    Ok((stored, mails, head))
}

/// PostgreSQL: inserts the entries and the mails of those stored in the same statement
/// (see [`SetStatements::insert_entries_and_mails`]).
async fn pg_insert_entries_and_mails(
    connection: &mut sqlx::PgConnection,
    accepted: &[&PendingRegistration<'_>],
) -> Result<(Vec<bool>, Vec<MailId>), sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "with e as ({INSERT_ENTRIES} select * from {} {ON_TAKEN_KEY}),
             {INSERT_MAILS_OF_E}
             select 'entry', e.id, null::int8 from e
             union all select 'mail', entry_id, id from mail_ids",
            unnest_arrays(1, &ENTRY_TYPES)
        )
    });
    let mails = mails_of(accepted);
    let rows = entries_and_mails_query(SQL.as_str(), accepted, &mails)
        .fetch_all(connection)
        .await?;
    let (stored, mail_rows, _) = split_rows(rows)?;
    Ok((stored_flags(accepted, stored), mail_rows))
}

/// A row of [`entries_and_mails_query`]'s statements: `entry` and a stored entry's id,
/// `mail`, the id of its entry and its own, or `head` and the audit head's new count.
type EntryOrMailRow = (String, Option<String>, Option<i64>);

/// PostgreSQL: tries to store a batch with two round trips and no transaction block
/// (see the module's documentation): `None` if it could not, and nothing of it was
/// stored, for the caller to store it in a write transaction instead.
///
/// The windows, the audit head and the idempotency records are read without a lock,
/// the head first (one statement with the windows). Every change a decision depends
/// on (a window closed, an entry or an idempotency record stored) appends an audit
/// event in its transaction, so the head read is the version of all of it. The
/// decisions are made on that view, the audit events chained from that head, and one
/// statement, committed on its own, then takes the write lock and writes it all. Its
/// events take the places after the head read, and the head moves over them only
/// from the count read: if anything was appended since, one of its events holds the
/// first of those places (a unique violation) or the head is elsewhere (the new count
/// comes out null, which the column refuses), and the statement fails whole. An entry
/// whose key a live entry holds fails it too (no `on conflict` here), as does a batch
/// that would have to delete an expired idempotency record first (not tried at all):
/// those go through the transaction, which answers them one by one.
async fn pg_write_at_once(
    connection: &mut sqlx::PgConnection,
    batch: &[PendingRegistration<'_>],
) -> Result<Option<Vec<Result<RegisterOutcome, StoreError>>>, StoreError> {
    let (rows, head) =
        pg_windows_and_head(connection, HEAD_UNLOCKED, &window_ids_of(batch)).await?;
    let windows = window_periods(rows);
    let mut claims = claims_of(connection, batch).await?;
    let decisions = plan(batch, &windows, &mut claims, &mut HashMap::new());
    if decisions
        .iter()
        .any(|decision| matches!(decision, Decision::Accept { purge_claim: true }))
    {
        return Ok(None);
    }
    let accepted: Vec<&PendingRegistration<'_>> = accepted_positions(&decisions)
        .into_iter()
        .map(|i| &batch[i])
        .collect();
    if accepted.is_empty() {
        return Ok(Some(answers(batch, decisions, Vec::new())));
    }
    let head_count = head.0;
    let events = chain_events(head, &accepted)?;
    let claimed: Vec<_> = accepted
        .iter()
        .filter_map(|item| item.idempotency.map(|request| (*item, request)))
        .collect();
    let Some((last_seq, last)) = events.last() else {
        return Ok(None);
    };
    let mails = mails_of(&accepted);
    let query = entries_and_mails_query(AT_ONCE.as_str(), &accepted, &mails);
    let query = bind_claims!(bind_events!(query, &events), &claimed)
        .bind(head_count)
        .bind(last.hash.as_str())
        .bind(last.at);
    let rows = match query.fetch_all(&mut *connection).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(error)) => {
            tracing::debug!(error = %error, "a batch could not be stored at once; storing it in a transaction");
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    // Committed: what it says must be what was planned.
    let (stored, mail_rows, moved_to) = split_rows(rows)?;
    if stored.len() != accepted.len() || moved_to != Some(*last_seq) {
        return Err(StoreError::Unplanned(
            "a batch stored at once did not store what was planned",
        ));
    }
    Ok(Some(answers(batch, decisions, mail_rows)))
}

/// The statement of [`pg_write_at_once`]: the lock, the entries (`$1` to `$29`), their
/// mails (`$30` to `$36`), the events (`$37` to `$45`), the idempotency records (`$46`
/// to `$52`), and the head moved from the count read (`$53`) to the last event (`$54`,
/// `$55`). Its text never changes, so it is made once.
static AT_ONCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with held as materialized (select 1 as held from pg_advisory_xact_lock({WRITE_LOCK})),
         e as ({INSERT_ENTRIES} select u.* from {entries} as u cross join held returning id),
         {INSERT_MAILS_OF_E},
         added as ({events} cross join held returning seq),
         c as ({claims} cross join held),
         head as (update audit_head
                  set count = case when count = $53 then (select max(seq) from added) end,
                      hash = $54, at = $55
                  where id = 1 returning count)
         select 'entry', e.id, null::int8 from e
         union all select 'mail', entry_id, id from mail_ids
         union all select 'head', null, count from head",
        entries = unnest_arrays(1, &ENTRY_TYPES),
        events = insert_events_sql(37),
        claims = insert_claims_sql(46),
    )
});

/// The audit head as [`pg_write_at_once`] reads it, without its row lock.
const HEAD_UNLOCKED: &str = "select count, hash from audit_head where id = 1";
/// The audit head as a write transaction reads it: the no-op update takes its row lock.
const HEAD_LOCKED: &str = "update audit_head set count = count where id = 1 returning count, hash";

/// PostgreSQL: the audit head (read with `head`, one of the two above) joined to the
/// windows, in one statement, so that there is always a row.
async fn pg_windows_and_head(
    connection: &mut sqlx::PgConnection,
    head: &str,
    ids: &[&str],
) -> Result<(Vec<WindowRow>, (i64, String)), sqlx::Error> {
    type Row = (
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "with head as ({head})
         select head.count, head.hash, w.id, w.state, w.registration_opens_at,
             w.registration_closes_at
         from head left join windows w on w.id = any($1)"
    )))
    .bind(ids)
    .fetch_all(connection)
    .await?;
    let head = match rows.first() {
        Some((count, hash, ..)) => (*count, hash.clone()),
        None => return Err(sqlx::Error::RowNotFound),
    };
    let windows = rows
        .into_iter()
        .filter_map(|(_, _, id, state, opens_at, closes_at)| {
            Some((id?, state?, opens_at?, closes_at?))
        })
        .collect();
    Ok((windows, head))
}

impl Store {
    /// Stores a batch with the set-based path (see the module's documentation): one
    /// outcome per registration, in order, once committed. On `Err`, nothing of the
    /// batch was stored. [`Store::register_batch`] calls it, and falls back to the
    /// savepoint path when it fails.
    pub async fn register_set(
        &self,
        batch: &[PendingRegistration<'_>],
    ) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
        if let Some(outcomes) = self.register_set_at_once(batch).await? {
            return Ok(outcomes);
        }
        self.register_set_in_transaction(batch).await
    }

    /// PostgreSQL: the batch stored by one statement committed on its own, after
    /// reading what the decisions depend on without a lock (see `pg_write_at_once`);
    /// `None`, with nothing of it stored, when that could not be done (and always on
    /// SQLite, whose writer is not reached over a network).
    pub async fn register_set_at_once(
        &self,
        batch: &[PendingRegistration<'_>],
    ) -> Result<Option<Vec<Result<RegisterOutcome, StoreError>>>, StoreError> {
        match &self.db {
            Db::Postgres(pool) => pg_write_at_once(&mut *pool.acquire().await?, batch).await,
            Db::Sqlite(_) => Ok(None),
        }
    }

    /// The batch decided and written in one write transaction, which holds the write
    /// lock from its start.
    pub async fn register_set_in_transaction(
        &self,
        batch: &[PendingRegistration<'_>],
    ) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write_planned().await?;
            let outcomes = decide_and_write(&mut *tx, batch).await?;
            tx.commit().await?;
            Ok(outcomes)
        })
    }
}

/// The positions of the registrations decided to be stored.
fn accepted_positions(decisions: &[Decision]) -> Vec<usize> {
    decisions
        .iter()
        .enumerate()
        .filter(|(_, decision)| matches!(decision, Decision::Accept { .. }))
        .map(|(i, _)| i)
        .collect()
}

/// Whether `later`'s decision could have depended on `earlier` being stored: they share
/// a duplicate key in one window, or an idempotency key.
fn depends_on(later: &PendingRegistration<'_>, earlier: &PendingRegistration<'_>) -> bool {
    let same_key = later.entry.window_id == earlier.entry.window_id
        && DuplicateRule::ALL.into_iter().any(|rule| {
            key_of(later.entry.keys, rule)
                .is_some_and(|key| key_of(earlier.entry.keys, rule) == Some(key))
        });
    let same_request = match (later.idempotency, earlier.idempotency) {
        (Some(a), Some(b)) => a.scope == b.scope && a.key == b.key,
        _ => false,
    };
    same_key || same_request
}

/// The duplicate keys of `items` that live entries of their windows hold, by window
/// and rule: one lookup per window.
async fn taken_keys_of<C: SetStatements>(
    tx: &mut C,
    items: &[&PendingRegistration<'_>],
) -> Result<HashMap<String, Taken>, StoreError> {
    let mut window_ids: Vec<&str> = items.iter().map(|item| item.entry.window_id).collect();
    window_ids.sort_unstable();
    window_ids.dedup();
    let mut taken: HashMap<String, Taken> = HashMap::new();
    for window_id in window_ids {
        let keys: [Vec<&str>; 4] = DuplicateRule::ALL.map(|rule| {
            items
                .iter()
                .filter(|item| item.entry.window_id == window_id)
                .filter_map(|item| key_of(item.entry.keys, rule))
                .collect()
        });
        let window_taken = taken.entry(window_id.to_owned()).or_default();
        for (rule, key) in tx.taken_keys(window_id, &keys).await? {
            if let Some(rule) = DuplicateRule::ALL.into_iter().find(|r| r.as_str() == rule) {
                window_taken[rule_index(rule)].insert(key);
            }
        }
    }
    Ok(taken)
}

/// Refuses the registrations at `skipped`, which the entries' insert skipped because
/// a live entry stored before the batch holds one of their keys, as storing them one
/// by one would: a duplicate by the first rule, in the documented order, whose key is
/// taken. The registrations the batch stored share no key with them (the plan refuses
/// a registration whose key an earlier one of the batch took), so what the lookup
/// finds was stored before the batch.
async fn refuse_taken<C: SetStatements>(
    tx: &mut C,
    batch: &[PendingRegistration<'_>],
    decisions: &mut [Decision],
    skipped: &[usize],
) -> Result<(), StoreError> {
    let items: Vec<&PendingRegistration<'_>> = skipped.iter().map(|&i| &batch[i]).collect();
    let taken = taken_keys_of(tx, &items).await?;
    for &i in skipped {
        let rule = taken
            .get(batch[i].entry.window_id)
            .and_then(|window_taken| first_taken_rule(batch[i].entry.keys, window_taken))
            .ok_or(StoreError::Unplanned(
                "the database skipped a registration none of whose keys is taken",
            ))?;
        decisions[i] = Decision::Answer(Err(StoreError::Duplicate(rule)));
    }
    Ok(())
}

/// Inserts the entries `decisions` accept, and the mails of those stored; returns the
/// positions of those the insert skipped (a stored entry holds one of their keys) and
/// the mail rows.
async fn insert_planned<C: SetStatements>(
    tx: &mut C,
    batch: &[PendingRegistration<'_>],
    decisions: &[Decision],
) -> Result<(Vec<usize>, Vec<MailId>), StoreError> {
    let planned = accepted_positions(decisions);
    if planned.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let entries: Vec<&PendingRegistration<'_>> = planned.iter().map(|&i| &batch[i]).collect();
    let (stored, mails) = tx.insert_entries_and_mails(&entries).await?;
    let skipped = planned
        .into_iter()
        .zip(stored)
        .filter(|(_, stored)| !stored)
        .map(|(i, _)| i)
        .collect();
    Ok((skipped, mails))
}

/// The windows of a batch's registrations, each once.
fn window_ids_of<'a>(batch: &[PendingRegistration<'a>]) -> Vec<&'a str> {
    let mut window_ids: Vec<&str> = Vec::new();
    for item in batch {
        if !window_ids.contains(&item.entry.window_id) {
            window_ids.push(item.entry.window_id);
        }
    }
    window_ids
}

/// The windows read, by id.
fn window_periods(rows: Vec<WindowRow>) -> HashMap<String, WindowPeriod> {
    rows.into_iter()
        .map(|(id, state, opens_at, closes_at)| (id, (state, opens_at, closes_at)))
        .collect()
}

/// The stored idempotency records of the batch's requests, by `(scope, key)`.
async fn claims_of<C: SetStatements>(
    tx: &mut C,
    batch: &[PendingRegistration<'_>],
) -> Result<HashMap<(String, String), Claim>, StoreError> {
    let requests: Vec<_> = batch.iter().filter_map(|item| item.idempotency).collect();
    let mut claims: HashMap<(String, String), Claim> = HashMap::new();
    if !requests.is_empty() {
        let rows = tx.claims(&requests).await?;
        for (scope, key, fingerprint, status, body, expires_at) in rows {
            let claim = Claim {
                fingerprint,
                status,
                body,
                expires_at: Some(expires_at),
            };
            claims.insert((scope, key), claim);
        }
    }
    Ok(claims)
}

/// Steps 1 and 2 of [`decide_and_write`]: reads what the decisions depend on and
/// decides, in arrival order. The keys that entries stored before the batch hold are
/// read only `with_stored_keys`; otherwise they are left to the entries' insert.
async fn decide<C: SetStatements>(
    tx: &mut C,
    batch: &[PendingRegistration<'_>],
    with_stored_keys: bool,
) -> Result<(Vec<Decision>, (i64, String)), StoreError> {
    // 1. What the decisions depend on.
    let (rows, head) = tx.windows_and_audit_head(&window_ids_of(batch)).await?;
    let windows = window_periods(rows);
    let mut claims = claims_of(tx, batch).await?;

    let mut taken = HashMap::new();
    if with_stored_keys {
        // a window that does not exist refuses its registrations anyway
        let items: Vec<&PendingRegistration<'_>> = batch
            .iter()
            .filter(|item| windows.contains_key(item.entry.window_id))
            .collect();
        taken = taken_keys_of(tx, &items).await?;
    }

    // 2. The decisions, in arrival order.
    Ok((plan(batch, &windows, &mut claims, &mut taken), head))
}

/// Decides and writes a batch (steps 1 to 3 of the module's documentation) inside a
/// write transaction that the caller has begun on `tx` and then commits, or rolls
/// back on `Err`: one outcome per registration, in order, true once committed.
pub(super) async fn decide_and_write<C: SetStatements>(
    tx: &mut C,
    batch: &[PendingRegistration<'_>],
) -> Result<Vec<Result<RegisterOutcome, StoreError>>, StoreError> {
    // 1 and 2. The decisions, against each other only: the keys that entries
    // stored before the batch hold are left to the entries' insert.
    let (mut decisions, head) = decide(tx, batch, false).await?;

    // 3. The writes, one statement per table, the entries first: the insert skips an
    // entry whose key a stored entry holds, and that registration is refused (its
    // mail is not queued).
    let (skipped, mut mails) = insert_planned(tx, batch, &decisions).await?;
    let depended_on = skipped.iter().any(|&i| {
        batch[i + 1..]
            .iter()
            .any(|later| depends_on(later, &batch[i]))
    });
    if depended_on {
        // A later registration was decided as if a skipped one were stored (it shares
        // a key with it): the writes undone, the decisions again, this time knowing
        // every key the stored entries hold.
        tx.undo_writes().await?;
        decisions = decide(tx, batch, true).await?.0;
        let skipped;
        (skipped, mails) = insert_planned(tx, batch, &decisions).await?;
        if !skipped.is_empty() {
            return Err(StoreError::Unplanned(
                "the database skipped a registration whose keys were free a moment before",
            ));
        }
    } else if !skipped.is_empty() {
        refuse_taken(tx, batch, &mut decisions, &skipped).await?;
    }
    let accepted: Vec<&PendingRegistration<'_>> = accepted_positions(&decisions)
        .into_iter()
        .map(|i| &batch[i])
        .collect();
    if !accepted.is_empty() {
        let purged: Vec<_> = batch
            .iter()
            .zip(&decisions)
            .filter(|(_, decision)| matches!(decision, Decision::Accept { purge_claim: true }))
            .filter_map(|(item, _)| item.idempotency)
            .collect();
        if !purged.is_empty() {
            tx.purge_claims(&purged).await?;
        }

        let claimed: Vec<_> = accepted
            .iter()
            .filter_map(|item| item.idempotency.map(|request| (*item, request)))
            .collect();
        if !claimed.is_empty() {
            tx.insert_claims(&claimed).await?;
        }

        // The audit events, chained from the head read with the windows.
        tx.append_events(&chain_events(head, &accepted)?).await?;
    }
    Ok(answers(batch, decisions, mails))
}

/// The audit events of the `accepted` registrations, chained from `head`, with their
/// places in the chain.
fn chain_events(
    head: (i64, String),
    accepted: &[&PendingRegistration<'_>],
) -> Result<Vec<(i64, ChainEvent)>, StoreError> {
    let (mut seq, mut prev_hash) = head;
    let mut events = Vec::with_capacity(accepted.len());
    for item in accepted {
        let entry = &item.entry;
        let actor = match entry.registered_by {
            Some(token_id) => Actor::Staff(token_id.to_owned()),
            None => Actor::Applicant,
        };
        let detail = json!({ "channel": entry.channel.as_str(), "weight": entry.weight });
        let event = next_event(
            (seq + 1, prev_hash),
            item.now,
            &actor.label(),
            "entry.registered",
            Some(entry.window_id),
            Some(entry.id),
            &detail,
        )?;
        seq += 1;
        prev_hash = event.hash.clone();
        events.push((seq, event));
    }
    Ok(events)
}

/// The answers, valid once the accepted registrations are committed, each accepted
/// registration with the id of its mail.
fn answers(
    batch: &[PendingRegistration<'_>],
    decisions: Vec<Decision>,
    mails: Vec<MailId>,
) -> Vec<Result<RegisterOutcome, StoreError>> {
    let mut outbox_ids: HashMap<String, i64> = mails.into_iter().collect();
    batch
        .iter()
        .zip(decisions)
        .map(|(item, decision)| match decision {
            Decision::Answer(answer) => answer,
            Decision::Accept { .. } => Ok(RegisterOutcome::Created {
                outbox_id: item.mail.and_then(|_| outbox_ids.remove(item.entry.id)),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_one_after_the_other() {
        assert_eq!(placeholders(2, 3, 1, false), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 2, 5, false), "($5, $6)");
        assert_eq!(placeholders(2, 2, 1, true), "(?, ?), (?, ?)");
    }

    #[test]
    fn the_taken_query_skips_rules_without_keys() {
        let sql = taken_query([2, 1, 0, 1], false);
        assert!(sql.contains("window_id = $1 and"), "{sql}");
        assert!(sql.contains("document_key in ($2, $3)"), "{sql}");
        assert!(sql.contains("window_id = $4 and"), "{sql}");
        assert!(sql.contains("person_key in ($5)"), "{sql}");
        assert!(!sql.contains("email_key"), "{sql}");
        assert!(sql.contains("phone_key in ($7)"), "{sql}");
        assert_eq!(sql.matches("union all").count(), 2, "{sql}");
        let sql = taken_query([2, 1, 0, 1], true);
        assert_eq!(sql.matches('?').count(), 7, "{sql}");
    }

    #[test]
    fn pairs_conditions_bind_two_values_per_row() {
        assert_eq!(
            pairs_condition("scope", "key", 2, 1, false),
            "(scope = $1 and key = $2) or (scope = $3 and key = $4)"
        );
    }
}
