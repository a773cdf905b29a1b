//! Closing and drawing a window, and reading what was committed and drawn.
//!
//! Both transitions are one write transaction each, guarded by a conditional update of
//! the window's state: two concurrent calls (or two instances) produce one commitment
//! and one draw, and a crash in the middle leaves the window as it was. The numbers
//! themselves come from the pure draw core ([`crate::draw`]); this module only reads
//! its inputs and stores its outputs.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::QueryBuilder;

use super::audit::{Actor, record_event};
use super::{Store, StoreError, WritePool, on_db, parse_column};
use crate::domain::window::{WindowState, WrongState};
use crate::draw::bundle::{Committed, Outcome, commit};
use crate::draw::commit::sort_slots;
use crate::draw::stats::Statistics;
use crate::draw::{Entry, EntryId, Slot};

/// Rows per multi-row insert (3 parameters each).
const ROW_BATCH: usize = 1000;

/// What was published when registration closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentRecord {
    pub window_id: String,
    pub n_entries: i64,
    pub entries_root: String,
    pub n_slots: i64,
    pub slots_hash: String,
    pub seed_commitment: String,
    pub beacon: String,
    pub commitment: String,
    pub committed_at: DateTime<Utc>,
}

/// What the draw revealed and produced.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawRecord {
    pub window_id: String,
    pub beacon_value: String,
    pub seed: String,
    pub results_hash: String,
    pub n_selected: i64,
    pub statistics: serde_json::Value,
    pub drawn_at: DateTime<Utc>,
}

/// One line of a window's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    pub rank: i64,
    pub entry_id: String,
    pub slot_id: Option<String>,
}

/// A results line as read: rank, entry id, slot id.
type ResultRow = (i64, String, Option<String>);

impl From<ResultRow> for ResultLine {
    fn from((rank, entry_id, slot_id): ResultRow) -> Self {
        Self {
            rank,
            entry_id,
            slot_id,
        }
    }
}

/// An entry's place in its window's draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    pub window_id: String,
    /// Position of the entry's leaf in the committed Merkle tree.
    pub leaf_index: i64,
    /// The weight the draw used.
    pub weight: i64,
    pub n_entries: i64,
    pub n_slots: i64,
    pub entries_root: String,
    pub commitment: String,
    /// After the draw: the rank, and the slot the draw gave (if any).
    pub rank: Option<i64>,
    pub slot: Option<Slot>,
    /// How many entries the draw selected (`min(slots, entries)`).
    pub n_selected: Option<i64>,
}

/// A transition whose time has come, for the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueTransition {
    Close,
    Draw,
}

#[derive(sqlx::FromRow)]
struct CommitmentRow {
    window_id: String,
    n_entries: i64,
    entries_root: String,
    n_slots: i64,
    slots_hash: String,
    seed_commitment: String,
    beacon: String,
    commitment: String,
    committed_at: DateTime<Utc>,
}

impl From<CommitmentRow> for CommitmentRecord {
    fn from(row: CommitmentRow) -> Self {
        Self {
            window_id: row.window_id,
            n_entries: row.n_entries,
            entries_root: row.entries_root,
            n_slots: row.n_slots,
            slots_hash: row.slots_hash,
            seed_commitment: row.seed_commitment,
            beacon: row.beacon,
            commitment: row.commitment,
            committed_at: row.committed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DrawRow {
    window_id: String,
    beacon_value: String,
    seed: String,
    results_hash: String,
    n_selected: i64,
    statistics: String,
    drawn_at: DateTime<Utc>,
}

/// The inputs of a draw, as committed at close.
#[derive(Debug, Clone)]
pub struct DrawInputsRecord {
    pub commitment: CommitmentRecord,
    pub secret: [u8; 32],
    /// In entry order (leaf order).
    pub entries: Vec<Entry>,
    /// In slot order.
    pub slots: Vec<Slot>,
}

/// The draw's results and the bundle to publish, computed outside the database.
pub struct DrawOutput<'a> {
    pub beacon_value: &'a [u8],
    pub outcome: &'a Outcome,
    pub statistics: &'a Statistics,
    /// The bundle exactly as it will be served.
    pub bundle_json: &'a [u8],
}

/// Reads a window's state inside a transaction, or `NotFound`.
macro_rules! window_state {
    ($tx:expr, $id:expr) => {{
        let state: Option<String> = sqlx::query_scalar("select state from windows where id = $1")
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
        parse_column(
            "windows.state",
            &state.ok_or(StoreError::NotFound)?,
            WindowState::parse,
        )?
    }};
}

impl Store {
    /// Closes an open window whose registration period is over: freezes its eligible
    /// entries with their weights, computes `entries_root`, `slots_hash` and the
    /// commitment (DRAW-SPEC sections 1, 2 and 4) and publishes them, in one
    /// transaction. Entries still waiting for verification are left out.
    pub async fn close_window(
        &self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<CommitmentRecord, StoreError> {
        let closed = on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let state = window_state!(tx, id);
            state.close()?;
            let (closes_at, beacon, seed_commitment): (DateTime<Utc>, String, Option<String>) =
                sqlx::query_as(
                    "select registration_closes_at, beacon, seed_commitment from windows where id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if now < closes_at {
                return Err(StoreError::WindowNotReady {
                    state,
                    detail: "registration is still open: a window closes at the end of its published registration period",
                });
            }
            let seed_commitment = seed_commitment.ok_or_else(|| {
                StoreError::Corrupt(format!("open window {id} has no seed commitment"))
            })?;

            let rows: Vec<(String, i64)> = sqlx::query_as(
                "select id, weight from entries where window_id = $1 and status = 'eligible'",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut entries = rows
                .into_iter()
                .map(|(entry_id, weight)| entry_from_row(&entry_id, weight))
                .collect::<Result<Vec<_>, _>>()?;
            entries.sort_unstable_by_key(|e| e.id);
            let slot_rows: Vec<(String, String, String)> =
                sqlx::query_as("select id, starts_at, counter from slots where window_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut slots = slots_from_rows(slot_rows);
            sort_slots(&mut slots);
            let Committed {
                entries_root,
                slots_hash,
                commitment,
            } = commit(id, &beacon, &seed_commitment, &entries, &slots);
            let record = CommitmentRecord {
                window_id: id.to_owned(),
                n_entries: entries.len() as i64,
                entries_root: hex::encode(entries_root),
                n_slots: slots.len() as i64,
                slots_hash: hex::encode(slots_hash),
                seed_commitment,
                beacon,
                commitment: hex::encode(commitment),
                committed_at: now,
            };

            sqlx::query(
                "insert into commitments (window_id, n_entries, entries_root, n_slots, slots_hash,
                     seed_commitment, beacon, commitment, committed_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(record.n_entries)
            .bind(&record.entries_root)
            .bind(record.n_slots)
            .bind(&record.slots_hash)
            .bind(&record.seed_commitment)
            .bind(&record.beacon)
            .bind(&record.commitment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (chunk_index, chunk) in entries.chunks(ROW_BATCH).enumerate() {
                let mut insert = QueryBuilder::new(
                    "insert into draw_entries (window_id, leaf_index, entry_id, weight) ",
                );
                let first = chunk_index * ROW_BATCH;
                insert.push_values(chunk.iter().enumerate(), |mut row, (i, entry)| {
                    row.push_bind(id)
                        .push_bind((first + i) as i64)
                        .push_bind(entry.id.to_hex())
                        .push_bind(i64::from(entry.weight));
                });
                insert.build().execute(&mut *tx).await?;
            }
            sqlx::query(
                "update windows set state = 'closed', commitment = $2, closed_at = $3, updated_at = $3
                 where id = $1 and state = 'open'",
            )
            .bind(id)
            .bind(&record.commitment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let detail = json!({
                "from": "open", "to": "closed",
                "n_entries": record.n_entries, "n_slots": record.n_slots,
                "entries_root": record.entries_root, "slots_hash": record.slots_hash,
                "commitment": record.commitment,
            });
            record_event!(
                tx,
                now,
                actor,
                "window.closed",
                Some(id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
            Ok(record)
        });
        // registrations no longer see it open (see `Store::open_window_settings`)
        self.forget_open_window(id);
        closed
    }

    /// What a window committed to at close, if it is closed.
    pub async fn commitment(
        &self,
        window_id: &str,
    ) -> Result<Option<CommitmentRecord>, StoreError> {
        let row: Option<CommitmentRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select window_id, n_entries, entries_root, n_slots, slots_hash, seed_commitment,
                        beacon, commitment, committed_at
                 from commitments where window_id = $1",
            )
            .bind(window_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(Into::into))
    }

    /// The frozen entries of a closed window, in entry (leaf) order.
    pub async fn frozen_entries(&self, window_id: &str) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<(String, i64)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select entry_id, weight from draw_entries where window_id = $1 order by leaf_index",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(id, weight)| entry_from_row(&id, weight))
            .collect()
    }

    /// Everything a closed window's draw is computed from, as committed.
    pub async fn draw_inputs(&self, window_id: &str) -> Result<DrawInputsRecord, StoreError> {
        let commitment = self
            .commitment(window_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let secret = self.window_secret(window_id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("closed window {window_id} has no secret"))
        })?;
        let entries = self.frozen_entries(window_id).await?;
        let slot_rows: Vec<(String, String, String)> = on_db!(self, |pool| {
            sqlx::query_as("select id, starts_at, counter from slots where window_id = $1")
                .bind(window_id)
                .fetch_all(pool)
                .await?
        });
        let mut slots = slots_from_rows(slot_rows);
        sort_slots(&mut slots);
        if entries.len() as i64 != commitment.n_entries || slots.len() as i64 != commitment.n_slots
        {
            return Err(StoreError::Corrupt(format!(
                "window {window_id}: frozen entries or slots differ from the commitment"
            )));
        }
        Ok(DrawInputsRecord {
            commitment,
            secret,
            entries,
            slots,
        })
    }

    /// Records a draw computed from [`Store::draw_inputs`]: the window becomes `drawn`,
    /// its results and bundle are stored, in one transaction. A window drawn meanwhile
    /// (another request, another instance) makes this a [`StoreError::WrongState`] and
    /// changes nothing.
    pub async fn record_draw(
        &self,
        window_id: &str,
        inputs: &DrawInputsRecord,
        output: &DrawOutput<'_>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<DrawRecord, StoreError> {
        let n_selected = output
            .outcome
            .slot_of
            .iter()
            .filter(|s| s.is_some())
            .count() as i64;
        let statistics = serde_json::to_value(output.statistics).expect("statistics serialize");
        let record = DrawRecord {
            window_id: window_id.to_owned(),
            beacon_value: hex::encode(output.beacon_value),
            seed: hex::encode(output.outcome.seed),
            results_hash: hex::encode(output.outcome.results_hash),
            n_selected,
            statistics,
            drawn_at: now,
        };
        let bundle_sha256 = hex::encode(crate::draw::sha256(output.bundle_json));
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "update windows set state = 'drawn', drawn_at = $2, updated_at = $2
                 where id = $1 and state = 'closed'",
            )
            .bind(window_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let state = window_state!(tx, window_id);
                return Err(WrongState {
                    state,
                    action: "drawn",
                }
                .into());
            }
            sqlx::query(
                "insert into draws (window_id, beacon_value, seed, results_hash, n_selected,
                     statistics, drawn_at)
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(window_id)
            .bind(&record.beacon_value)
            .bind(&record.seed)
            .bind(&record.results_hash)
            .bind(n_selected)
            .bind(record.statistics.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let lines: Vec<(usize, &usize, &Option<usize>)> = output
                .outcome
                .order
                .iter()
                .zip(&output.outcome.slot_of)
                .enumerate()
                .map(|(position, (entry, slot))| (position, entry, slot))
                .collect();
            for chunk in lines.chunks(ROW_BATCH) {
                let mut insert = QueryBuilder::new(
                    "insert into draw_results (window_id, rank, entry_id, slot_id) ",
                );
                insert.push_values(chunk, |mut row, &(position, &entry, slot)| {
                    row.push_bind(window_id)
                        .push_bind(position as i64 + 1)
                        .push_bind(inputs.entries[entry].id.to_hex())
                        .push_bind(slot.map(|s| inputs.slots[s].id.clone()));
                });
                insert.build().execute(&mut *tx).await?;
            }
            sqlx::query("insert into bundles (window_id, sha256, body) values ($1, $2, $3)")
                .bind(window_id)
                .bind(&bundle_sha256)
                .bind(output.bundle_json)
                .execute(&mut *tx)
                .await?;
            let detail = json!({
                "from": "closed", "to": "drawn",
                "beacon_value": record.beacon_value, "seed": record.seed,
                "results_hash": record.results_hash, "n_selected": n_selected,
                "bundle_sha256": bundle_sha256,
            });
            record_event!(
                tx,
                now,
                actor,
                "window.drawn",
                Some(window_id),
                None::<&str>,
                detail
            );
            tx.commit().await?;
        });
        Ok(record)
    }

    /// The draw of a window, if it was drawn.
    pub async fn draw_record(&self, window_id: &str) -> Result<Option<DrawRecord>, StoreError> {
        let row: Option<DrawRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select window_id, beacon_value, seed, results_hash, n_selected, statistics, drawn_at
                 from draws where window_id = $1",
            )
            .bind(window_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|row| {
            Ok(DrawRecord {
                statistics: serde_json::from_str(&row.statistics).map_err(|_| {
                    StoreError::Corrupt(format!("draws.statistics of {}", row.window_id))
                })?,
                window_id: row.window_id,
                beacon_value: row.beacon_value,
                seed: row.seed,
                results_hash: row.results_hash,
                n_selected: row.n_selected,
                drawn_at: row.drawn_at,
            })
        })
        .transpose()
    }

    /// The published bundle of a drawn window: its SHA-256 (hex) and its bytes.
    pub async fn bundle(&self, window_id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as("select sha256, body from bundles where window_id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A drawn window's results in rank order.
    pub async fn results(&self, window_id: &str) -> Result<Vec<ResultLine>, StoreError> {
        let rows: Vec<ResultRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select rank, entry_id, slot_id from draw_results where window_id = $1 order by rank",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(ResultLine::from).collect())
    }

    /// The first `limit` lines of a window's results, by rank: what a page shows
    /// without reading a national window's million lines.
    pub async fn first_results(
        &self,
        window_id: &str,
        limit: usize,
    ) -> Result<Vec<ResultLine>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<ResultRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select rank, entry_id, slot_id from draw_results where window_id = $1
                 order by rank limit $2",
            )
            .bind(window_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(ResultLine::from).collect())
    }

    /// One entry's line in a window's results, if it took part in its draw.
    pub async fn result_of(
        &self,
        window_id: &str,
        entry_id: &str,
    ) -> Result<Option<ResultLine>, StoreError> {
        let row: Option<ResultRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select rank, entry_id, slot_id from draw_results
                 where window_id = $1 and entry_id = $2",
            )
            .bind(window_id)
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(ResultLine::from))
    }

    /// Where an entry stands in its window's draw: `None` when it was not frozen into
    /// the draw (window still open, entry withdrawn or never verified).
    pub async fn entry_outcome(&self, entry_id: &str) -> Result<Option<EntryOutcome>, StoreError> {
        type Row = (
            String,
            i64,
            i64,
            i64,
            i64,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = on_db!(self, |pool| {
            sqlx::query_as(
                "select d.window_id, d.leaf_index, d.weight, c.n_entries, c.n_slots,
                        c.entries_root, c.commitment, r.rank, r.slot_id, s.starts_at, s.counter,
                        w.n_selected
                 from draw_entries d
                 join commitments c on c.window_id = d.window_id
                 left join draw_results r on r.entry_id = d.entry_id
                 left join slots s on s.window_id = d.window_id and s.id = r.slot_id
                 left join draws w on w.window_id = d.window_id
                 where d.entry_id = $1",
            )
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(
                window_id,
                leaf_index,
                weight,
                n_entries,
                n_slots,
                entries_root,
                commitment,
                rank,
                slot_id,
                starts_at,
                counter,
                n_selected,
            )| EntryOutcome {
                window_id,
                leaf_index,
                weight,
                n_entries,
                n_slots,
                entries_root,
                commitment,
                rank,
                slot: match (slot_id, starts_at, counter) {
                    (Some(id), Some(starts_at), Some(counter)) => Some(Slot {
                        id,
                        starts_at,
                        counter,
                    }),
                    _ => None,
                },
                n_selected,
            },
        ))
    }

    /// Windows whose close or draw time has passed and that have not made that step:
    /// open windows past their registration period, and closed windows past their draw
    /// time whose beacon is `none` (a named beacon's value must be supplied by staff).
    pub async fn due_transitions(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DueTransition)>, StoreError> {
        let rows: Vec<(String, String)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select id, state from windows
                 where (state = 'open' and registration_closes_at <= $1)
                    or (state = 'closed' and draw_at <= $1 and beacon = 'none')
                 order by registration_closes_at, id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, state)| {
                let step = if state == "open" {
                    DueTransition::Close
                } else {
                    DueTransition::Draw
                };
                (id, step)
            })
            .collect())
    }
}

fn entry_from_row(id: &str, weight: i64) -> Result<Entry, StoreError> {
    let id_parsed =
        EntryId::parse_hex(id).map_err(|_| StoreError::Corrupt(format!("entry id {id:?}")))?;
    let weight =
        u32::try_from(weight).map_err(|_| StoreError::Corrupt(format!("weight of {id}")))?;
    Ok(Entry {
        id: id_parsed,
        weight,
    })
}

fn slots_from_rows(rows: Vec<(String, String, String)>) -> Vec<Slot> {
    rows.into_iter()
        .map(|(id, starts_at, counter)| Slot {
            id,
            starts_at,
            counter,
        })
        .collect()
}
