//! Windows and their slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::QueryBuilder;

use super::audit::{Actor, record_event};
use super::entries::EntryCounts;
use super::{Store, StoreError, WritePool, on_db, parse_column};
use crate::domain::weighting::WeightingPolicy;
use crate::domain::window::{SlotSpec, WindowSpec, WindowState, WrongState, sort_slots};

/// A window as stored, with its slot and entry counts. The secret is not part of it:
/// read it with [`Store::window_secret`] when the draw needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub id: String,
    pub site: String,
    pub procedure: String,
    pub state: WindowState,
    pub registration_opens_at: DateTime<Utc>,
    pub registration_closes_at: DateTime<Utc>,
    pub draw_at: DateTime<Utc>,
    pub beacon: String,
    pub policy: WeightingPolicy,
    /// Where the appointments take place, as printed on convocations.
    pub location: Option<String>,
    pub seed_commitment: Option<String>,
    pub commitment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub drawn_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub slot_count: i64,
    /// `YYYY-MM-DDTHH:MM:SSZ` of the first and last slots.
    pub first_slot_at: Option<String>,
    pub last_slot_at: Option<String>,
    pub entries: EntryCounts,
}

impl WindowRecord {
    /// The UTC date of the first slot, the reference date of urgency weighting.
    pub fn first_slot_date(&self) -> Option<NaiveDate> {
        self.first_slot_at
            .as_deref()
            .and_then(|t| NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok())
    }
}

/// Which windows to list; `None` matches every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowFilter {
    pub site: Option<String>,
    pub procedure: Option<String>,
    pub state: Option<WindowState>,
}

#[derive(sqlx::FromRow)]
struct WindowRow {
    id: String,
    site: String,
    procedure: String,
    state: String,
    registration_opens_at: DateTime<Utc>,
    registration_closes_at: DateTime<Utc>,
    draw_at: DateTime<Utc>,
    beacon: String,
    policy: String,
    location: Option<String>,
    seed_commitment: Option<String>,
    commitment: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    opened_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    drawn_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    slot_count: i64,
    first_slot_at: Option<String>,
    last_slot_at: Option<String>,
    pending_entries: i64,
    eligible_entries: i64,
    withdrawn_entries: i64,
}

impl TryFrom<WindowRow> for WindowRecord {
    type Error = StoreError;
    fn try_from(row: WindowRow) -> Result<Self, StoreError> {
        Ok(Self {
            state: parse_column("windows.state", &row.state, WindowState::parse)?,
            policy: parse_column("windows.policy", &row.policy, |p| {
                serde_json::from_str(p).ok()
            })?,
            id: row.id,
            site: row.site,
            procedure: row.procedure,
            registration_opens_at: row.registration_opens_at,
            registration_closes_at: row.registration_closes_at,
            draw_at: row.draw_at,
            beacon: row.beacon,
            location: row.location,
            seed_commitment: row.seed_commitment,
            commitment: row.commitment,
            created_at: row.created_at,
            updated_at: row.updated_at,
            opened_at: row.opened_at,
            closed_at: row.closed_at,
            drawn_at: row.drawn_at,
            cancelled_at: row.cancelled_at,
            slot_count: row.slot_count,
            first_slot_at: row.first_slot_at,
            last_slot_at: row.last_slot_at,
            entries: EntryCounts {
                pending_verification: row.pending_entries,
                eligible: row.eligible_entries,
                withdrawn: row.withdrawn_entries,
            },
        })
    }
}

const SELECT_WINDOW: &str = "
    select w.id, w.site, w.procedure, w.state, w.registration_opens_at,
           w.registration_closes_at, w.draw_at, w.beacon, w.policy, w.location, w.seed_commitment,
           w.commitment, w.created_at, w.updated_at, w.opened_at, w.closed_at, w.drawn_at,
           w.cancelled_at,
           coalesce((select c.n from window_slot_counts c where c.window_id = w.id), 0) as slot_count,
           (select min(s.starts_at) from slots s where s.window_id = w.id) as first_slot_at,
           (select max(s.starts_at) from slots s where s.window_id = w.id) as last_slot_at,
           coalesce((select c.n from window_entry_counts c
             where c.window_id = w.id and c.status = 'pending_verification'), 0) as pending_entries,
           coalesce((select c.n from window_entry_counts c
             where c.window_id = w.id and c.status = 'eligible'), 0) as eligible_entries,
           coalesce((select c.n from window_entry_counts c
             where c.window_id = w.id and c.status = 'withdrawn'), 0) as withdrawn_entries
    from windows w";

/// [`SELECT_WINDOW`] without the entry counts (three reads of `window_entry_counts`,
/// which the database keeps up to date): for the registration path, which does not
/// show them.
const SELECT_WINDOW_SETTINGS: &str = "
    select w.id, w.site, w.procedure, w.state, w.registration_opens_at,
           w.registration_closes_at, w.draw_at, w.beacon, w.policy, w.location, w.seed_commitment,
           w.commitment, w.created_at, w.updated_at, w.opened_at, w.closed_at, w.drawn_at,
           w.cancelled_at,
           coalesce((select c.n from window_slot_counts c where c.window_id = w.id), 0) as slot_count,
           (select min(s.starts_at) from slots s where s.window_id = w.id) as first_slot_at,
           (select max(s.starts_at) from slots s where s.window_id = w.id) as last_slot_at,
           cast(0 as bigint) as pending_entries,
           cast(0 as bigint) as eligible_entries,
           cast(0 as bigint) as withdrawn_entries
    from windows w";

/// How long [`Store::open_window_settings`] keeps a copy of an open window.
pub const OPEN_WINDOW_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Recent copies of open windows' settings, by id (see [`Store::open_window_settings`]).
#[derive(Debug, Default)]
pub(crate) struct OpenWindows(Mutex<HashMap<String, (Instant, Arc<WindowRecord>)>>);

/// More open windows than this at once is not expected; past it the copies are dropped.
const OPEN_WINDOWS_KEPT: usize = 256;

impl OpenWindows {
    fn get(&self, id: &str, ttl: std::time::Duration) -> Option<Arc<WindowRecord>> {
        let copies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        copies
            .get(id)
            .filter(|(read_at, _)| read_at.elapsed() < ttl)
            .map(|(_, window)| Arc::clone(window))
    }

    fn put(&self, id: &str, window: &Arc<WindowRecord>) {
        let mut copies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if copies.len() >= OPEN_WINDOWS_KEPT {
            copies.clear();
        }
        copies.insert(id.to_owned(), (Instant::now(), Arc::clone(window)));
    }

    fn forget(&self, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// Rows per multi-row insert: 4 parameters each stays far below every engine's limit.
const SLOT_BATCH: usize = 1000;

/// Inserts slots in batches inside a transaction: `insert_slots!(tx, window_id, slots)`.
macro_rules! insert_slots {
    ($tx:expr, $window_id:expr, $slots:expr) => {
        for chunk in $slots.chunks(SLOT_BATCH) {
            let mut insert =
                QueryBuilder::new("insert into slots (window_id, id, starts_at, counter) ");
            insert.push_values(chunk, |mut row, slot: &SlotSpec| {
                row.push_bind($window_id)
                    .push_bind(slot.id.as_str())
                    .push_bind(slot.starts_at_text())
                    .push_bind(slot.counter.as_str());
            });
            insert.build().execute(&mut *$tx).await?;
        }
    };
}

impl Store {
    /// Stores a new draft window and its slots.
    pub async fn create_window(
        &self,
        id: &str,
        spec: &WindowSpec,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<WindowRecord, StoreError> {
        let policy = serde_json::to_string(&spec.policy).expect("a policy serializes");
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "insert into windows (id, site, procedure, state, registration_opens_at,
                     registration_closes_at, draw_at, beacon, policy, created_at, updated_at,
                     location)
                 values ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $9, $10)",
            )
            .bind(id)
            .bind(&spec.site)
            .bind(&spec.procedure)
            .bind(spec.registration_opens_at)
            .bind(spec.registration_closes_at)
            .bind(spec.draw_at)
            .bind(&spec.beacon)
            .bind(&policy)
            .bind(now)
            .bind(spec.location.as_deref())
            .execute(&mut *tx)
            .await?;
            insert_slots!(tx, id, spec.slots);
            let detail = json!({ "slots": spec.slots.len() });
            record_event!(
                tx,
                now,
                actor,
                "window.created",
                Some(id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
        });
        self.window(id).await
    }

    /// Replaces a draft window's settings, and its slots when `replace_slots`.
    /// Refused with [`StoreError::WrongState`] once the window is no longer a draft.
    pub async fn update_window(
        &self,
        id: &str,
        spec: &WindowSpec,
        replace_slots: bool,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<WindowRecord, StoreError> {
        let policy = serde_json::to_string(&spec.policy).expect("a policy serializes");
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "update windows set site = $2, procedure = $3, registration_opens_at = $4,
                     registration_closes_at = $5, draw_at = $6, beacon = $7, policy = $8,
                     updated_at = $9, location = $10
                 where id = $1 and state = 'draft'",
            )
            .bind(id)
            .bind(&spec.site)
            .bind(&spec.procedure)
            .bind(spec.registration_opens_at)
            .bind(spec.registration_closes_at)
            .bind(spec.draw_at)
            .bind(&spec.beacon)
            .bind(&policy)
            .bind(now)
            .bind(spec.location.as_deref())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let state: Option<String> =
                    sqlx::query_scalar("select state from windows where id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let state = state.ok_or(StoreError::NotFound)?;
                let state = parse_column("windows.state", &state, WindowState::parse)?;
                return Err(WrongState {
                    state,
                    action: "edited",
                }
                .into());
            }
            if replace_slots {
                sqlx::query("delete from slots where window_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_slots!(tx, id, spec.slots);
            }
            let detail = json!({ "slots_replaced": replace_slots, "slots": spec.slots.len() });
            record_event!(
                tx,
                now,
                actor,
                "window.edited",
                Some(id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
        });
        self.window(id).await
    }

    /// Opens a draft window: stores its secret and publishes its seed commitment.
    pub async fn open_window(
        &self,
        id: &str,
        secret: &[u8; 32],
        seed_commitment: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<WindowRecord, StoreError> {
        self.change_state(
            id,
            WindowState::open,
            actor,
            now,
            Some((secret, seed_commitment)),
        )
        .await
    }

    /// Cancels a draft or open window.
    pub async fn cancel_window(
        &self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<WindowRecord, StoreError> {
        let cancelled = self
            .change_state(id, WindowState::cancel, actor, now, None)
            .await;
        // registrations no longer see it open (see `Store::open_window_settings`)
        self.forget_open_window(id);
        cancelled
    }

    async fn change_state(
        &self,
        id: &str,
        transition: fn(WindowState) -> Result<WindowState, WrongState>,
        actor: &Actor,
        now: DateTime<Utc>,
        open: Option<(&[u8; 32], &str)>,
    ) -> Result<WindowRecord, StoreError> {
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let state: Option<String> =
                sqlx::query_scalar("select state from windows where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let from = parse_column(
                "windows.state",
                &state.ok_or(StoreError::NotFound)?,
                WindowState::parse,
            )?;
            let to = transition(from)?;
            match (to, open) {
                (WindowState::Open, Some((secret, seed_commitment))) => {
                    sqlx::query(
                        "update windows set state = 'open', secret = $2, seed_commitment = $3,
                             opened_at = $4, updated_at = $4
                         where id = $1 and state = 'draft'",
                    )
                    .bind(id)
                    .bind(secret.as_slice())
                    .bind(seed_commitment)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                (WindowState::Cancelled, _) => {
                    sqlx::query(
                        "update windows set state = 'cancelled', cancelled_at = $2, updated_at = $2
                         where id = $1 and state = $3",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(from.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                (other, _) => {
                    return Err(StoreError::Corrupt(format!(
                        "no store transition to {other}"
                    )));
                }
            }
            let action = format!("window.{}", to.as_str());
            let detail = json!({ "from": from.as_str(), "to": to.as_str() });
            record_event!(tx, now, actor, action, Some(id), None::<&str>, detail);
            tx.commit().await?;
        });
        self.window(id).await
    }

    /// One window, or [`StoreError::NotFound`].
    pub async fn window(&self, id: &str) -> Result<WindowRecord, StoreError> {
        self.window_by(SELECT_WINDOW, id).await
    }

    /// A window without its entry counts (`entries` is left at zero): what a
    /// registration needs (state, period, policy, first slot). The counts once cost a
    /// scan of the window's entries at every registration (measured in
    /// `docs/benchmarks.md`); they are now kept in `window_entry_counts`, and this
    /// still saves their three reads on the busiest path.
    pub async fn window_settings(&self, id: &str) -> Result<WindowRecord, StoreError> {
        self.window_by(SELECT_WINDOW_SETTINGS, id).await
    }

    /// [`Store::window_settings`] of a window open for registration, read from the
    /// database at most once a second ([`OPEN_WINDOW_TTL`]): every registration reads
    /// its window, and under load that read costs as much as the rest of the request
    /// outside the writer. Only open windows are kept, and nothing of an open window
    /// can change but its state (edits are for drafts), which every registration
    /// checks again in its write transaction: a stale copy can only let a request go
    /// on to be refused by the store with the same answer. A close or a cancel made by
    /// this instance forgets the copy at once.
    pub async fn open_window_settings(&self, id: &str) -> Result<Arc<WindowRecord>, StoreError> {
        if let Some(window) = self.open_windows.get(id, OPEN_WINDOW_TTL) {
            return Ok(window);
        }
        let window = Arc::new(self.window_settings(id).await?);
        if window.state == WindowState::Open {
            self.open_windows.put(id, &window);
        }
        Ok(window)
    }

    /// Forgets the copy [`Store::open_window_settings`] keeps of a window.
    pub(crate) fn forget_open_window(&self, id: &str) {
        self.open_windows.forget(id);
    }

    /// The window `id`, read with `select` (one of the window selects above).
    async fn window_by(&self, select: &str, id: &str) -> Result<WindowRecord, StoreError> {
        let row: Option<WindowRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{select} where w.id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Windows matching `filter`, most recent registration period first; drafts only
    /// when `include_drafts`.
    pub async fn windows(
        &self,
        include_drafts: bool,
        filter: &WindowFilter,
    ) -> Result<Vec<WindowRecord>, StoreError> {
        let rows: Vec<WindowRow> = on_db!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_WINDOW}
                 where ($1 or w.state <> 'draft')
                   and ($2 is null or w.site = $2)
                   and ($3 is null or w.procedure = $3)
                   and ($4 is null or w.state = $4)
                 order by w.registration_opens_at desc, w.id"
            )))
            .bind(include_drafts)
            .bind(filter.site.as_deref())
            .bind(filter.procedure.as_deref())
            .bind(filter.state.map(WindowState::as_str))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// A window's settings and slots, as validated when they were stored.
    pub async fn window_spec(&self, id: &str) -> Result<(WindowRecord, WindowSpec), StoreError> {
        let record = self.window(id).await?;
        let slots = self.slots(id).await?;
        let spec = WindowSpec {
            site: record.site.clone(),
            procedure: record.procedure.clone(),
            registration_opens_at: record.registration_opens_at,
            registration_closes_at: record.registration_closes_at,
            draw_at: record.draw_at,
            beacon: record.beacon.clone(),
            policy: record.policy.clone(),
            slots,
            location: record.location.clone(),
        };
        Ok((record, spec))
    }

    /// A window's slots in DRAW-SPEC order (`starts_at`, `counter`, `id`, bytewise).
    pub async fn slots(&self, window_id: &str) -> Result<Vec<SlotSpec>, StoreError> {
        let rows: Vec<SlotRow> = on_db!(self, |pool| {
            sqlx::query_as("select id, starts_at, counter from slots where window_id = $1")
                .bind(window_id)
                .fetch_all(pool)
                .await?
        });
        let mut slots = slots_from_rows(rows)?;
        // Sorted here rather than in SQL: text collation differs between engines.
        sort_slots(&mut slots);
        Ok(slots)
    }

    /// The slots of a window with these ids (in no particular order): what a page
    /// showing a thousand results needs, rather than a national window's 50,000.
    pub async fn slots_named(
        &self,
        window_id: &str,
        ids: &[&str],
    ) -> Result<Vec<SlotSpec>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<SlotRow> = on_db!(self, |pool| {
            let mut query =
                QueryBuilder::new("select id, starts_at, counter from slots where window_id = ");
            query.push_bind(window_id).push(" and id in (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
            query.build_query_as().fetch_all(pool).await?
        });
        slots_from_rows(rows)
    }

    /// The 32-byte secret of an open (or later) window; `None` for a draft. Only the
    /// draw may use it; no API returns it before the draw.
    pub async fn window_secret(&self, id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let secret: Option<Option<Vec<u8>>> = on_db!(self, |pool| {
            sqlx::query_scalar("select secret from windows where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        match secret.ok_or(StoreError::NotFound)? {
            None => Ok(None),
            Some(bytes) => bytes
                .try_into()
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("windows.secret of {id}"))),
        }
    }
}

/// A slot as read: id, start time, counter.
type SlotRow = (String, String, String);

fn slots_from_rows(rows: Vec<SlotRow>) -> Result<Vec<SlotSpec>, StoreError> {
    rows.into_iter()
        .map(|(id, starts_at, counter)| {
            let starts_at = parse_column("slots.starts_at", &starts_at, |t| {
                DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })?;
            Ok(SlotSpec {
                id,
                starts_at,
                counter,
            })
        })
        .collect()
}
