//! Closing and drawing a window, and reading what was committed and drawn.
//!
//! Both transitions are one write transaction each, guarded by a conditional update of
//! the window's state: two concurrent calls (or two instances) produce one commitment
//! and one draw, and a crash in the middle leaves the window as it was. The numbers
//! themselves come from the pure draw core ([`crate::draw`]); this module only reads
//! its inputs and stores its outputs.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::{Actor, record_event};
use super::packed::{
    ENTRY_CHUNK, RANK_CHUNK, RANK_ORDER_CHUNK, as_u32, find_entry, number_at, pack_entries,
    pack_numbers, unpack_entries, unpack_numbers,
};
use super::{Db, Store, StoreError, WritePool, on_db, parse_column};
use crate::domain::window::{WindowState, WrongState};
use crate::draw::bundle::{Committed, Outcome, commit_leaves};
use crate::draw::commit::sort_slots;
use crate::draw::merkle::leaf_hashes;
use crate::draw::stats::Statistics;
use crate::draw::{Digest, Entry, EntryId, Slot};

/// Eligible entries read per query at close.
const READ_BATCH: i64 = 65_536;

/// Result rows per set-based insert into `draw_results`.
pub const RESULT_BATCH: usize = 20_000;

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
    bundle_sha256: Option<String>,
    beacon_evidence: Option<String>,
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
    /// The SHA-256 (hex) of the bundle as it will be served: the bundle is rebuilt from
    /// what is stored when first asked for, and checked against it.
    pub bundle_sha256: &'a str,
    /// The bundle's `beacon_evidence` as JSON, if any.
    pub beacon_evidence: Option<&'a str>,
}

/// What a drawn window's bundle is rebuilt from, besides its inputs and ranking.
#[derive(Debug, Clone)]
pub struct BundleRecord {
    pub draw: DrawRecord,
    /// Recorded at the draw; `None` for a window drawn before its bundle was rebuilt
    /// (whose bytes are in `bundles`).
    pub bundle_sha256: Option<String>,
    pub beacon_evidence: Option<String>,
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

/// Inserts one `draw_rank_chunks` row inside a transaction.
macro_rules! insert_rank_chunk {
    ($tx:expr, $window_id:expr, $kind:expr, $first:expr, $numbers:expr) => {{
        let numbers: &[u32] = $numbers;
        sqlx::query(
            "insert into draw_rank_chunks (window_id, kind, first, n, payload)
             values ($1, $2, $3, $4, $5)",
        )
        .bind($window_id)
        .bind($kind)
        .bind($first as i64)
        .bind(numbers.len() as i64)
        .bind(pack_numbers(numbers.iter().copied()))
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The leaves at ranks `from..=to`, out of the `by_rank` rows of `draw_rank_chunks`
/// that hold them, as (first rank, payload) in rank order: each row must follow the
/// one before it, and together they must hold every rank asked for.
fn leaves_at_ranks(
    window_id: &str,
    chunks: &[(i64, Vec<u8>)],
    from: i64,
    to: i64,
) -> Result<Vec<u32>, StoreError> {
    let missing = || StoreError::Corrupt(format!("window {window_id}: ranking chunks missing"));
    let first = chunks.first().map_or(from, |c| c.0);
    let mut leaves = Vec::new();
    for (rank, payload) in chunks {
        if *rank != first + leaves.len() as i64 {
            return Err(missing());
        }
        unpack_numbers(payload, &mut leaves)?;
    }
    let skip = usize::try_from(from - first).map_err(|_| missing())?;
    let n = usize::try_from(to + 1 - from).map_err(|_| missing())?;
    leaves
        .get(skip..skip + n)
        .map(<[u32]>::to_vec)
        .ok_or_else(missing)
}

/// The `draw_slot_chunks` rows of a window that hold any of the ranks `$from..=$to`,
/// in rank order, as (first rank, ranks, JSON array of slot ids): read with
/// [`slot_ids`].
macro_rules! slot_chunks {
    ($executor:expr, $window_id:expr, $from:expr, $to:expr) => {{
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "select first, n, slot_ids from draw_slot_chunks
             where window_id = $1 and first + n > $2 and first <= $3
             order by first",
        )
        .bind($window_id)
        .bind(i64::from($from))
        .bind(i64::from($to))
        .fetch_all($executor)
        .await?;
        rows
    }};
}

/// The slot ids held by consecutive `draw_slot_chunks` rows ([`slot_chunks`]), one per
/// rank from the first chunk's rank on: (that rank, the ids). An empty list when there
/// are no rows, as for a window drawn before migration 0026, whose selected ranks
/// have their slots in `draw_results` from the draw on.
fn slot_ids(
    window_id: &str,
    chunks: &[(i64, i64, String)],
) -> Result<(i64, Vec<String>), StoreError> {
    let first = chunks.first().map_or(1, |c| c.0);
    let mut ids = Vec::new();
    for (rank, n, text) in chunks {
        let chunk: Vec<String> = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("slots of window {window_id}: {e}")))?;
        if *rank != first + ids.len() as i64 || chunk.len() as i64 != *n {
            return Err(StoreError::Corrupt(format!(
                "window {window_id}: packed slots at rank {rank} do not follow rank {}",
                first + ids.len() as i64 - 1
            )));
        }
        ids.extend(chunk);
    }
    Ok((first, ids))
}

/// Appends result rows to `draw_results` in one statement from a JSON array of
/// `[entry_id, slot_id or null]` pairs (`$3`), ranked from `$2 + 1` on: a set-based
/// insert, one statement for thousands of rows. The same parameters on both engines;
/// only the function that walks the array differs.
const INSERT_RESULTS_SQLITE: &str = "
    insert into draw_results (window_id, rank, entry_id, slot_id)
    select $1, $2 + j.key + 1, j.value ->> 0, j.value ->> 1 from json_each($3) j";
const INSERT_RESULTS_POSTGRES: &str = "
    insert into draw_results (window_id, rank, entry_id, slot_id)
    select $1, $2 + j.ord, j.value ->> 0, j.value ->> 1
    from json_array_elements(cast($3 as json)) with ordinality as j(value, ord)";

/// The ranking both ways: the leaf at each rank, and the rank (from 1) of each leaf.
fn ranking(order: &[usize]) -> Result<(Vec<u32>, Vec<u32>), StoreError> {
    let mut by_rank = Vec::with_capacity(order.len());
    let mut by_leaf = vec![0u32; order.len()];
    for (position, &leaf) in order.iter().enumerate() {
        by_rank.push(as_u32(leaf)?);
        *by_leaf
            .get_mut(leaf)
            .ok_or_else(|| StoreError::Corrupt(format!("leaf {leaf} out of the ranking")))? =
            as_u32(position + 1)?;
    }
    Ok((by_rank, by_leaf))
}

/// The JSON array [`INSERT_RESULTS_SQLITE`] reads.
fn result_rows_json<'a>(rows: impl Iterator<Item = (String, Option<&'a str>)>) -> String {
    serde_json::to_string(&rows.collect::<Vec<_>>()).expect("strings serialize")
}

/// The id of the slot given to rank `$2` of window `$1`, picked out of the
/// `draw_slot_chunks` row that holds the rank (JSON null if the row is short of it);
/// no row for a window drawn before migration 0026.
const SLOT_AT_RANK_SQLITE: &str = "
    select json_extract(slot_ids, '$[' || ($2 - first) || ']') from draw_slot_chunks
    where window_id = $1 and first <= $2 and first + n > $2";
const SLOT_AT_RANK_POSTGRES: &str = "
    select cast(slot_ids as json) ->> cast($2 - first as integer) from draw_slot_chunks
    where window_id = $1 and first <= $2 and first + n > $2";

/// A window's slots as one value, a JSON array of `[id, starts_at, counter]`: read a
/// row a slot, a national window's 50,000 slots cost the close and the draw 0.2 s each
/// in the driver (docs/benchmarks.md, fifth round).
const SLOTS_JSON_SQLITE: &str = "
    select coalesce(json_group_array(json_array(id, starts_at, counter)), '[]')
    from slots where window_id = $1";
const SLOTS_JSON_POSTGRES: &str = "
    select coalesce(json_agg(json_build_array(id, starts_at, counter)), '[]')::text
    from slots where window_id = $1";

/// The slots of what [`SLOTS_JSON_SQLITE`] or [`SLOTS_JSON_POSTGRES`] read, in slot
/// order (DRAW-SPEC: `starts_at`, `counter`, `id`, bytewise).
fn sorted_slots_from_json(window_id: &str, text: &str) -> Result<Vec<Slot>, StoreError> {
    let rows: Vec<(String, String, String)> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("slots of window {window_id}: {e}")))?;
    let mut slots = slots_from_rows(rows);
    sort_slots(&mut slots);
    Ok(slots)
}

impl Store {
    fn insert_results_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => INSERT_RESULTS_SQLITE,
            Db::Postgres(_) => INSERT_RESULTS_POSTGRES,
        }
    }

    fn slot_at_rank_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => SLOT_AT_RANK_SQLITE,
            Db::Postgres(_) => SLOT_AT_RANK_POSTGRES,
        }
    }

    fn slots_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => SLOTS_JSON_SQLITE,
            Db::Postgres(_) => SLOTS_JSON_POSTGRES,
        }
    }

    /// Writes the next ranks of a drawn window's `draw_results` (up to
    /// [`RESULT_BATCH`]), in one write transaction that also moves the cursor in
    /// `draw_results_fill`. `entries` are the window's frozen entries
    /// ([`Store::frozen_entries`]), read once by the caller. Returns whether ranks
    /// remain to be written.
    pub async fn fill_draw_results(
        &self,
        window_id: &str,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let insert_results = self.insert_results_sql();
        on_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let cursor: Option<(i64, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
                "select filled_rank, n_entries, done_at from draw_results_fill where window_id = $1",
            )
            .bind(window_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((filled, n, None)) = cursor else {
                return Ok(false);
            };
            let to = (filled + RESULT_BATCH as i64).min(n);
            let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "select first, payload from draw_rank_chunks
                 where window_id = $1 and kind = 'by_rank' and first + n > $2 and first <= $3
                 order by first",
            )
            .bind(window_id)
            .bind(filled + 1)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
            let wanted = leaves_at_ranks(window_id, &chunks, filled + 1, to)?;
            // The selected ranks take their slots from the packed slots of the draw.
            let n_selected: i64 =
                sqlx::query_scalar("select n_selected from draws where window_id = $1")
                    .bind(window_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let (first_slotted, slots) = if filled < n_selected {
                slot_ids(
                    window_id,
                    &slot_chunks!(&mut *tx, window_id, filled + 1, to.min(n_selected)),
                )?
            } else {
                (filled + 1, Vec::new())
            };
            let rows = wanted
                .iter()
                .zip(filled + 1..)
                .map(|(&leaf, rank)| {
                    let entry = entries.get(leaf as usize).ok_or_else(|| {
                        StoreError::Corrupt(format!("leaf {leaf} of {window_id}"))
                    })?;
                    let slot = if rank <= n_selected {
                        let slot = usize::try_from(rank - first_slotted)
                            .ok()
                            .and_then(|i| slots.get(i));
                        Some(slot.ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "window {window_id}: no packed slot for rank {rank}"
                            ))
                        })?)
                    } else {
                        None
                    };
                    Ok((entry.id.to_hex(), slot.map(String::as_str)))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            sqlx::query(insert_results)
                .bind(window_id)
                .bind(filled)
                .bind(result_rows_json(rows.into_iter()))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "update draw_results_fill set filled_rank = $2, done_at = $3
                 where window_id = $1 and filled_rank = $4",
            )
            .bind(window_id)
            .bind(to)
            .bind((to == n).then_some(now))
            .bind(filled)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(to < n)
        })
    }

    /// Writes every rank of a drawn window's `draw_results` not written yet, one
    /// transaction per [`RESULT_BATCH`] ranks. Returns how many transactions that took
    /// (0 when it was complete already, as for every window drawn before migration
    /// 0018).
    pub async fn finish_draw_results(
        &self,
        window_id: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let done: Option<Option<DateTime<Utc>>> = on_db!(self, |pool| {
            sqlx::query_scalar("select done_at from draw_results_fill where window_id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        });
        if !matches!(done, Some(None)) {
            return Ok(0);
        }
        let entries = self.frozen_entries(window_id).await?;
        let mut batches = 1;
        while self.fill_draw_results(window_id, &entries, now).await? {
            batches += 1;
        }
        Ok(batches)
    }

    /// Drawn windows whose `draw_results` are still being written.
    pub async fn unfinished_draw_results(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "select window_id from draw_results_fill where done_at is null order by window_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

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
        let slots_sql = self.slots_sql();
        let defer_chunk_key = match self.db {
            Db::Sqlite(_) => "pragma defer_foreign_keys = on",
            Db::Postgres(_) => "set constraints draw_entry_chunks_window_id_fkey deferred",
        };
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

            let started = std::time::Instant::now();
            let (entries, leaves) = ReadEligible::eligible_entries(&mut *tx, pool, id).await?;
            // the database's own count of the window's eligible entries (kept by its
            // triggers, migration 0021): a read that missed or doubled one is refused
            let counted: Option<i64> = sqlx::query_scalar(
                "select n from window_entry_counts where window_id = $1 and status = 'eligible'",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if counted.unwrap_or(0) != entries.len() as i64 {
                return Err(StoreError::Corrupt(format!(
                    "window {id}: {} eligible entries read, {} counted",
                    entries.len(),
                    counted.unwrap_or(0)
                )));
            }
            let read_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();
            let slots_json: String = sqlx::query_scalar(slots_sql)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let slots = sorted_slots_from_json(id, &slots_json)?;
            let n_slots = slots.len() as i64;
            // The upper levels of the tree and the commitment are computed on other
            // threads while this connection writes the packed entries: their key to
            // the commitment, not inserted yet, is checked when the transaction commits.
            let hashing = {
                let (id, beacon, seed) = (id.to_owned(), beacon.clone(), seed_commitment.clone());
                tokio::task::spawn_blocking(move || {
                    commit_leaves(&id, &beacon, &seed, &leaves, &slots)
                })
            };
            sqlx::query(defer_chunk_key).execute(&mut *tx).await?;
            for (chunk_index, chunk) in entries.chunks(ENTRY_CHUNK).enumerate() {
                sqlx::query(
                    "insert into draw_entry_chunks (window_id, first_leaf, first_id, n, payload)
                     values ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind((chunk_index * ENTRY_CHUNK) as i64)
                .bind(chunk[0].id.to_hex())
                .bind(chunk.len() as i64)
                .bind(pack_entries(chunk))
                .execute(&mut *tx)
                .await?;
            }
            let write_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();
            let Committed {
                entries_root,
                slots_hash,
                commitment,
            } = hashing
                .await
                .map_err(|e| StoreError::Corrupt(format!("hashing the entries of {id}: {e}")))?;
            let record = CommitmentRecord {
                window_id: id.to_owned(),
                n_entries: entries.len() as i64,
                entries_root: crate::draw::hex(entries_root),
                n_slots,
                slots_hash: crate::draw::hex(slots_hash),
                seed_commitment,
                beacon,
                commitment: crate::draw::hex(commitment),
                committed_at: now,
            };
            let hash_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();

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
            tracing::info!(
                window.id = %id,
                read_ms,
                write_ms,
                hash_ms,
                commit_ms = started.elapsed().as_millis() as u64,
                "entries frozen"
            );
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

    /// The frozen entries of a closed window, in entry (leaf) order: unpacked from its
    /// chunks, or read from the row per entry of a window closed before migration 0018.
    pub async fn frozen_entries(&self, window_id: &str) -> Result<Vec<Entry>, StoreError> {
        let chunks: Vec<(i64, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select first_leaf, payload from draw_entry_chunks
                 where window_id = $1 order by first_leaf",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        if !chunks.is_empty() {
            let mut entries = Vec::new();
            for (first_leaf, payload) in chunks {
                if first_leaf != entries.len() as i64 {
                    return Err(StoreError::Corrupt(format!(
                        "window {window_id}: entry chunk at leaf {first_leaf} after {} entries",
                        entries.len()
                    )));
                }
                unpack_entries(&payload, &mut entries)?;
            }
            return Ok(entries);
        }
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

    /// The leaf index and weight of one frozen entry of a closed window, reading one
    /// chunk (or the entry's row, for a window closed before migration 0018); `None`
    /// when the entry was not frozen into the draw.
    async fn frozen_leaf(
        &self,
        window_id: &str,
        entry_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let chunk: Option<(i64, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select first_leaf, payload from draw_entry_chunks
                 where window_id = $1 and first_id <= $2
                 order by first_id desc limit 1",
            )
            .bind(window_id)
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        });
        if let Some((first_leaf, payload)) = chunk {
            let Ok(id) = EntryId::parse_hex(entry_id) else {
                return Ok(None);
            };
            return Ok(find_entry(&payload, &id)
                .map(|(i, weight)| (first_leaf + i as i64, i64::from(weight))));
        }
        // No chunk starts at or before this id: a window closed by an earlier version
        // (or an id below the first frozen one, which the row query does not find).
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "select leaf_index, weight from draw_entries where window_id = $1 and entry_id = $2",
            )
            .bind(window_id)
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The rank of one leaf of a drawn window, reading one chunk (or the entry's row in
    /// `draw_results`, for a window drawn before migration 0018).
    async fn rank_of_leaf(
        &self,
        window_id: &str,
        entry_id: &str,
        leaf_index: i64,
    ) -> Result<Option<i64>, StoreError> {
        let chunk: Option<(i64, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select first, payload from draw_rank_chunks
                 where window_id = $1 and kind = 'by_leaf' and first <= $2
                 order by first desc limit 1",
            )
            .bind(window_id)
            .bind(leaf_index)
            .fetch_optional(pool)
            .await?
        });
        if let Some((first, payload)) = chunk {
            let rank = usize::try_from(leaf_index - first)
                .ok()
                .and_then(|i| number_at(&payload, i))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "window {window_id}: no rank for leaf {leaf_index}"
                    ))
                })?;
            return Ok(Some(i64::from(rank)));
        }
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "select rank from draw_results where window_id = $1 and entry_id = $2",
            )
            .bind(window_id)
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        }))
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
        let slots_sql = self.slots_sql();
        let slots_json: String = on_db!(self, |pool| {
            sqlx::query_scalar(slots_sql)
                .bind(window_id)
                .fetch_one(pool)
                .await?
        });
        let slots = sorted_slots_from_json(window_id, &slots_json)?;
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
            beacon_value: crate::draw::hex(output.beacon_value),
            seed: crate::draw::hex(output.outcome.seed),
            results_hash: crate::draw::hex(output.outcome.results_hash),
            n_selected,
            statistics,
            drawn_at: now,
        };
        let bundle_sha256 = output.bundle_sha256;
        let (by_rank, by_leaf) = ranking(&output.outcome.order)?;
        // The slots of the selected ranks are stored packed (what the entry view and the
        // results read until the follow-up has written `draw_results`, every rank of
        // it, after the draw: [`Store::fill_draw_results`]).
        let slot_of = &output.outcome.slot_of;
        let n_sel = n_selected as usize;
        if slot_of
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_some() != (i < n_sel))
        {
            return Err(StoreError::Corrupt(format!(
                "window {window_id}: the slots do not go to the first {n_sel} ranks"
            )));
        }
        let slot_chunks: Vec<String> = slot_of[..n_sel]
            .chunks(RANK_CHUNK)
            .map(|chunk| {
                let ids: Vec<&str> = chunk
                    .iter()
                    .flatten()
                    .map(|&slot| inputs.slots[slot].id.as_str())
                    .collect();
                serde_json::to_string(&ids).expect("strings serialize")
            })
            .collect();
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
                     statistics, drawn_at, bundle_sha256, beacon_evidence)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(window_id)
            .bind(&record.beacon_value)
            .bind(&record.seed)
            .bind(&record.results_hash)
            .bind(n_selected)
            .bind(record.statistics.to_string())
            .bind(now)
            .bind(bundle_sha256)
            .bind(output.beacon_evidence)
            .execute(&mut *tx)
            .await?;
            let started = std::time::Instant::now();
            for (i, chunk) in by_rank.chunks(RANK_ORDER_CHUNK).enumerate() {
                insert_rank_chunk!(tx, window_id, "by_rank", i * RANK_ORDER_CHUNK + 1, chunk);
            }
            for (i, chunk) in by_leaf.chunks(RANK_CHUNK).enumerate() {
                insert_rank_chunk!(tx, window_id, "by_leaf", i * RANK_CHUNK, chunk);
            }
            let ranks_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();
            for (i, ids) in slot_chunks.iter().enumerate() {
                let first = i * RANK_CHUNK;
                sqlx::query(
                    "insert into draw_slot_chunks (window_id, first, n, slot_ids)
                     values ($1, $2, $3, $4)",
                )
                .bind(window_id)
                .bind(first as i64 + 1)
                .bind((n_sel - first).min(RANK_CHUNK) as i64)
                .bind(ids)
                .execute(&mut *tx)
                .await?;
            }
            let n_entries = inputs.entries.len() as i64;
            sqlx::query(
                "insert into draw_results_fill (window_id, filled_rank, n_entries, done_at)
                 values ($1, $2, $3, $4)",
            )
            .bind(window_id)
            .bind(0_i64)
            .bind(n_entries)
            .bind((n_entries == 0).then_some(now))
            .execute(&mut *tx)
            .await?;
            let slots_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();
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
            let event_ms = started.elapsed().as_millis() as u64;
            let started = std::time::Instant::now();
            tx.commit().await?;
            tracing::info!(
                window.id = %window_id,
                ranks_ms,
                slots_ms,
                event_ms,
                commit_ms = started.elapsed().as_millis() as u64,
                "draw recorded"
            );
        });
        Ok(record)
    }

    /// The draw of a window, if it was drawn.
    pub async fn draw_record(&self, window_id: &str) -> Result<Option<DrawRecord>, StoreError> {
        Ok(self
            .bundle_record(window_id)
            .await?
            .map(|record| record.draw))
    }

    /// The draw of a window, if it was drawn, with what its bundle is rebuilt from
    /// besides its inputs and ranking ([`Store::draw_inputs`], [`Store::rank_order`]).
    pub async fn bundle_record(&self, window_id: &str) -> Result<Option<BundleRecord>, StoreError> {
        let row: Option<DrawRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "select window_id, beacon_value, seed, results_hash, n_selected, statistics,
                        drawn_at, bundle_sha256, beacon_evidence
                 from draws where window_id = $1",
            )
            .bind(window_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|row| {
            Ok(BundleRecord {
                draw: DrawRecord {
                    statistics: serde_json::from_str(&row.statistics).map_err(|_| {
                        StoreError::Corrupt(format!("draws.statistics of {}", row.window_id))
                    })?,
                    window_id: row.window_id,
                    beacon_value: row.beacon_value,
                    seed: row.seed,
                    results_hash: row.results_hash,
                    n_selected: row.n_selected,
                    drawn_at: row.drawn_at,
                },
                bundle_sha256: row.bundle_sha256,
                beacon_evidence: row.beacon_evidence,
            })
        })
        .transpose()
    }

    /// A drawn window's ranking from its packed chunks: the leaf index (entry order) of
    /// each rank, rank 1 first. Empty for a window drawn before the ranking was packed.
    pub async fn rank_order(&self, window_id: &str) -> Result<Vec<u32>, StoreError> {
        let chunks: Vec<(i64, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as(
                "select first, payload from draw_rank_chunks
                 where window_id = $1 and kind = 'by_rank' order by first",
            )
            .bind(window_id)
            .fetch_all(pool)
            .await?
        });
        let mut leaves = Vec::new();
        for (_, payload) in &chunks {
            unpack_numbers(payload, &mut leaves)?;
        }
        Ok(leaves)
    }

    /// The stored bytes of a drawn window's bundle and their SHA-256 (hex): only for
    /// windows drawn before bundles were rebuilt from the draw's records instead
    /// (`lifecycle::published_bundle` serves both).
    pub async fn stored_bundle(
        &self,
        window_id: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as("select sha256, body from bundles where window_id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A drawn window's results in rank order: from the packed ranking, the frozen
    /// entries and the packed slots (for a window drawn before migration 0026, the
    /// selected ranks' slots from `draw_results`), or, for a window drawn before
    /// migration 0018, from `draw_results` alone.
    pub async fn results(&self, window_id: &str) -> Result<Vec<ResultLine>, StoreError> {
        let leaves = self.rank_order(window_id).await?;
        if leaves.is_empty() {
            let rows: Vec<ResultRow> = on_db!(self, |pool| {
                sqlx::query_as(
                    "select rank, entry_id, slot_id from draw_results where window_id = $1 order by rank",
                )
                .bind(window_id)
                .fetch_all(pool)
                .await?
            });
            return Ok(rows.into_iter().map(ResultLine::from).collect());
        }
        let entries = self.frozen_entries(window_id).await?;
        let chunks = on_db!(self, |pool| slot_chunks!(pool, window_id, 1_i64, i64::MAX));
        let slots: Vec<(i64, String)> = if chunks.is_empty() {
            // Drawn before migration 0026: the selected ranks' slots are rows.
            on_db!(self, |pool| {
                sqlx::query_as(
                    "select rank, slot_id from draw_results
                     where window_id = $1 and slot_id is not null order by rank",
                )
                .bind(window_id)
                .fetch_all(pool)
                .await?
            })
        } else {
            let (first, ids) = slot_ids(window_id, &chunks)?;
            (first..).zip(ids).collect()
        };
        let mut slots = slots.into_iter().peekable();
        leaves
            .into_iter()
            .enumerate()
            .map(|(position, leaf)| {
                let rank = position as i64 + 1;
                let entry = entries
                    .get(leaf as usize)
                    .ok_or_else(|| StoreError::Corrupt(format!("leaf {leaf} of {window_id}")))?;
                let slot_id = slots.next_if(|(r, _)| *r == rank).map(|(_, id)| id);
                Ok(ResultLine {
                    rank,
                    entry_id: entry.id.to_hex(),
                    slot_id,
                })
            })
            .collect()
    }

    /// Whether a drawn window's `draw_results` hold every rank: always for a window
    /// drawn before migration 0018, and once the draw's follow-up wrote the waiting
    /// ranks for the others.
    async fn results_complete(&self, window_id: &str) -> Result<bool, StoreError> {
        let done: Option<Option<DateTime<Utc>>> = on_db!(self, |pool| {
            sqlx::query_scalar("select done_at from draw_results_fill where window_id = $1")
                .bind(window_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(!matches!(done, Some(None)))
    }

    /// The first `limit` lines of a window's results, by rank: what a page shows
    /// without reading a national window's million lines. Read from the packed
    /// ranking while the draw's follow-up is still writing the waiting ranks' rows.
    pub async fn first_results(
        &self,
        window_id: &str,
        limit: usize,
    ) -> Result<Vec<ResultLine>, StoreError> {
        if !self.results_complete(window_id).await? {
            let mut lines = self.results(window_id).await?;
            lines.truncate(limit);
            return Ok(lines);
        }
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

    /// One entry's line in a window's results, if it took part in its draw: its rank
    /// and slot as [`Store::entry_outcome`] reads them (a few small reads, right even
    /// while the draw's follow-up is still writing `draw_results`).
    pub async fn result_of(
        &self,
        window_id: &str,
        entry_id: &str,
    ) -> Result<Option<ResultLine>, StoreError> {
        let Some(outcome) = self.entry_outcome(entry_id).await? else {
            return Ok(None);
        };
        if outcome.window_id != window_id {
            return Ok(None);
        }
        Ok(outcome.rank.map(|rank| ResultLine {
            rank,
            entry_id: entry_id.to_owned(),
            slot_id: outcome.slot.map(|s| s.id),
        }))
    }

    /// Where an entry stands in its window's draw: `None` when it was not frozen into
    /// the draw (window still open, entry withdrawn or never verified).
    pub async fn entry_outcome(&self, entry_id: &str) -> Result<Option<EntryOutcome>, StoreError> {
        let slot_at_rank = self.slot_at_rank_sql();
        type Head = (String, i64, i64, String, String, Option<i64>);
        let head: Option<Head> = on_db!(self, |pool| {
            sqlx::query_as(
                "select c.window_id, c.n_entries, c.n_slots, c.entries_root, c.commitment,
                        w.n_selected
                 from entries e
                 join commitments c on c.window_id = e.window_id
                 left join draws w on w.window_id = e.window_id
                 where e.id = $1",
            )
            .bind(entry_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((window_id, n_entries, n_slots, entries_root, commitment, n_selected)) = head
        else {
            return Ok(None);
        };
        let Some((leaf_index, weight)) = self.frozen_leaf(&window_id, entry_id).await? else {
            return Ok(None);
        };
        let rank = match n_selected {
            Some(_) => self.rank_of_leaf(&window_id, entry_id, leaf_index).await?,
            None => None,
        };
        let slot = match (rank, n_selected) {
            (Some(rank), Some(selected)) if rank <= selected => {
                // The slot's id picked out of its packed row by the database, rather
                // than the row's 4,096 ids sent over and parsed for each entry view.
                let packed: Option<Option<String>> = on_db!(self, |pool| {
                    sqlx::query_scalar(slot_at_rank)
                        .bind(&window_id)
                        .bind(rank)
                        .fetch_optional(pool)
                        .await?
                });
                let row: Option<(String, String, String)> = on_db!(self, |pool| {
                    match packed {
                        Some(slot_id) => {
                            let slot_id = slot_id.ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "window {window_id}: no packed slot for rank {rank}"
                                ))
                            })?;
                            sqlx::query_as(
                                "select id, starts_at, counter from slots
                                 where window_id = $1 and id = $2",
                            )
                            .bind(&window_id)
                            .bind(slot_id)
                            .fetch_optional(pool)
                            .await?
                        }
                        // Drawn before migration 0026: the slot is in the rank's row.
                        None => {
                            sqlx::query_as(
                                "select s.id, s.starts_at, s.counter
                                 from draw_results r
                                 join slots s on s.window_id = r.window_id and s.id = r.slot_id
                                 where r.window_id = $1 and r.rank = $2",
                            )
                            .bind(&window_id)
                            .bind(rank)
                            .fetch_optional(pool)
                            .await?
                        }
                    }
                });
                row.map(|(id, starts_at, counter)| Slot {
                    id,
                    starts_at,
                    counter,
                })
            }
            _ => None,
        };
        Ok(Some(EntryOutcome {
            window_id,
            leaf_index,
            weight,
            n_entries,
            n_slots,
            entries_root,
            commitment,
            rank,
            slot,
            n_selected,
        }))
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

/// How a close reads a window's eligible entries with their weights, inside its
/// transaction. A row per entry costs a round trip per row through the driver (4 s for
/// a million on SQLite), so each engine moves them in bulk its own way.
trait ReadEligible {
    type Database: sqlx::Database;

    /// In entry order (ascending id), with their Merkle leaf hashes. `pool` is the
    /// pool this connection's transaction came from, for reading parts on other
    /// connections.
    async fn eligible_entries(
        &mut self,
        pool: &sqlx::Pool<Self::Database>,
        window_id: &str,
    ) -> Result<(Vec<Entry>, Vec<Digest>), StoreError>;
}

impl ReadEligible for sqlx::SqliteConnection {
    type Database = sqlx::Sqlite;

    /// The ids split in [`READ_PARTS`] ranges, each read on its own connection when
    /// the pool has one to spare (SQLite reads on a thread per connection, so the
    /// parts are read on both cores), the rest on this one. Every part sees what this
    /// transaction sees: it holds the write lock (`BEGIN IMMEDIATE`) and has written
    /// nothing yet, so no commit can come between its snapshot and theirs.
    async fn eligible_entries(
        &mut self,
        pool: &sqlx::SqlitePool,
        window_id: &str,
    ) -> Result<(Vec<Entry>, Vec<Digest>), StoreError> {
        let (helpers, own) = spawn_parts(pool, window_id, |mut connection, id, part| async move {
            let mut read = sqlx::Connection::begin(&mut *connection).await?;
            hashed(eligible_range(&mut read, &id, part).await?).await
        })
        .await;
        let mut parts = Vec::new();
        for (i, part) in own {
            parts.push((
                i,
                hashed(eligible_range(self, window_id, part).await?).await?,
            ));
        }
        join_parts(helpers, parts).await
    }
}

/// A part of the ids: those strictly between its two bounds.
type Part = [&'static str; 2];

/// The entries of one part and their leaf hashes: what a part's reader returns.
type HashedPart = (Vec<Entry>, Vec<Digest>);

/// A reading task and the index of its part.
type PartTask = (
    usize,
    tokio::task::JoinHandle<Result<HashedPart, StoreError>>,
);

/// Starts reading the parts of [`READ_PARTS`] after the first on connections the pool
/// can spare within a few milliseconds, each with `read`. Returns the reading tasks
/// and the parts left to the caller's own connection (the first, and those no
/// connection was spared for: a small pool, busy with registrations), with their index.
async fn spawn_parts<DB, Read, Reading>(
    pool: &sqlx::Pool<DB>,
    window_id: &str,
    read: Read,
) -> (Vec<PartTask>, Vec<(usize, Part)>)
where
    DB: sqlx::Database,
    Read: Fn(sqlx::pool::PoolConnection<DB>, String, Part) -> Reading,
    Reading: Future<Output = Result<HashedPart, StoreError>> + Send + 'static,
{
    let parts = READ_PARTS.windows(2).map(|bounds| [bounds[0], bounds[1]]);
    let mut helpers = Vec::new();
    let mut own = Vec::new();
    for (i, part) in parts.enumerate() {
        let spare = if i == 0 {
            None
        } else {
            tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        match spare {
            Some(connection) => helpers.push((
                i,
                tokio::spawn(read(connection, window_id.to_owned(), part)),
            )),
            None => own.push((i, part)),
        }
    }
    (helpers, own)
}

/// A part's entries sorted by id, with their leaf hashes, computed off the async
/// threads while the other parts are still being read.
async fn hashed(mut entries: Vec<Entry>) -> Result<HashedPart, StoreError> {
    tokio::task::spawn_blocking(move || {
        entries.sort_unstable_by_key(|e| e.id);
        let leaves = leaf_hashes(&entries);
        (entries, leaves)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("hashing eligible entries: {e}")))
}

/// Every part (those read by the caller, `own`, and the reading tasks'), joined in
/// part order: the parts are consecutive ranges of ids, so the entries come out in
/// entry order. Refuses an id that is not strictly after the one before it.
async fn join_parts(
    helpers: Vec<PartTask>,
    mut own: Vec<(usize, HashedPart)>,
) -> Result<HashedPart, StoreError> {
    for (i, helper) in helpers {
        let part = helper
            .await
            .map_err(|e| StoreError::Corrupt(format!("reading eligible entries: {e}")))??;
        own.push((i, part));
    }
    own.sort_unstable_by_key(|(i, _)| *i);
    let (mut entries, mut leaves) = (Vec::new(), Vec::new());
    for (_, (part_entries, part_leaves)) in own {
        entries.extend(part_entries);
        leaves.extend(part_leaves);
    }
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].id >= pair[1].id) {
        return Err(StoreError::Corrupt(format!(
            "eligible entries read out of order or twice: {} then {}",
            pair[0].id, pair[1].id
        )));
    }
    Ok((entries, leaves))
}

/// Where the parts of a close's read split the ids (both engines): part `k` holds the ids
/// strictly between `READ_PARTS[k]` and `READ_PARTS[k + 1]`. Ids are 32 lowercase hex
/// characters, so every id falls in one part; one that did not (not hex, or exactly a
/// bound) would be missed by every part, and the count check of the close refuses it.
const READ_PARTS: [&str; 5] = ["", "4", "8", "c", "\u{10FFFF}"];

/// The eligible entries of a window whose ids lie strictly between `after` and
/// `before`: one `id:weight` text per batch, joined by commas, read by key ranges of
/// the index on (window, status, id, weight).
async fn eligible_range(
    connection: &mut sqlx::SqliteConnection,
    window_id: &str,
    [after, before]: Part,
) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    let mut after = after.to_owned();
    loop {
        // The batch's text needs no order (the caller sorts): an ordered aggregate
        // would sort every batch again. `max(id)` is where the next batch starts.
        let (text, n, last): (Option<String>, i64, Option<String>) = sqlx::query_as(
            "select string_agg(id || ':' || cast(weight as text), ','), count(*), max(id)
             from (select id, weight from entries
                   where window_id = $1 and status = 'eligible' and id > $2 and id < $3
                   order by id limit $4) batch",
        )
        .bind(window_id)
        .bind(&after)
        .bind(before)
        .bind(READ_BATCH)
        .fetch_one(&mut *connection)
        .await?;
        let (Some(text), Some(last)) = (text, last) else {
            break;
        };
        for item in text.split(',') {
            let (entry_id, weight) = item
                .split_once(':')
                .ok_or_else(|| StoreError::Corrupt(format!("eligible entry {item:?}")))?;
            entries.push(parse_eligible(entry_id, weight)?);
        }
        after = last;
        if n < READ_BATCH {
            break;
        }
    }
    Ok(entries)
}

impl ReadEligible for sqlx::PgConnection {
    type Database = sqlx::Postgres;

    /// One `copy ... to stdout` in text format per part of [`READ_PARTS`]: a line
    /// `id<TAB>weight` per entry, streamed by a single statement. The batches of joined
    /// text took 2 s for a million entries (each aggregate sorted its batch again, and
    /// the server built and the client split 16 texts of 2 MB); one copy took a third
    /// of that (docs/benchmarks.md, fourth round). The parts read on other connections
    /// import this transaction's snapshot (`pg_export_snapshot`), so they see exactly
    /// the entries it sees; the write lock it holds keeps writers out meanwhile.
    async fn eligible_entries(
        &mut self,
        pool: &sqlx::PgPool,
        window_id: &str,
    ) -> Result<(Vec<Entry>, Vec<Digest>), StoreError> {
        // `copy` takes no parameters: the id goes into the statement's text, so only
        // the characters of the ids the service makes are let through.
        if window_id.is_empty() || !window_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::Corrupt(format!("window id {window_id:?}")));
        }
        let snapshot: String = sqlx::query_scalar("select pg_export_snapshot()")
            .fetch_one(&mut *self)
            .await?;
        // a snapshot's name is hexadecimal digits and dashes; it goes into a statement too
        if !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::Corrupt(format!("snapshot name {snapshot:?}")));
        }
        let (helpers, own) = spawn_parts(pool, window_id, |mut connection, id, part| {
            let snapshot = snapshot.clone();
            async move {
                let mut read = sqlx::Connection::begin_with(
                    &mut *connection,
                    "begin isolation level repeatable read read only",
                )
                .await?;
                // checked above: hexadecimal digits and dashes only
                let statement = format!("set transaction snapshot '{snapshot}'");
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *read)
                    .await?;
                hashed(eligible_copy(&mut read, &id, part).await?).await
            }
        })
        .await;
        let mut parts = Vec::new();
        for (i, part) in own {
            parts.push((
                i,
                hashed(eligible_copy(self, window_id, part).await?).await?,
            ));
        }
        join_parts(helpers, parts).await
    }
}

/// The eligible entries of a window whose ids lie strictly between the part's bounds,
/// by one `copy`. `window_id` has been checked to be alphanumeric; the bounds are
/// those of [`READ_PARTS`].
async fn eligible_copy(
    connection: &mut sqlx::PgConnection,
    window_id: &str,
    [after, before]: Part,
) -> Result<Vec<Entry>, StoreError> {
    let statement = format!(
        "copy (select id, weight from entries
               where window_id = '{window_id}' and status = 'eligible'
                 and id > '{after}' and id < '{before}')
         to stdout"
    );
    let mut stream = connection.copy_out_raw(&statement).await?;
    let mut entries = Vec::new();
    // a line may in principle be split across two messages of the protocol
    let mut pending: Vec<u8> = Vec::new();
    while let Some(data) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        pending.extend_from_slice(&data?);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            let (entry_id, weight) = std::str::from_utf8(line)
                .ok()
                .and_then(|line| line.split_once('\t'))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "eligible entry {:?}",
                        String::from_utf8_lossy(line)
                    ))
                })?;
            entries.push(parse_eligible(entry_id, weight)?);
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        return Err(StoreError::Corrupt(
            "eligible entries: an unfinished line".into(),
        ));
    }
    Ok(entries)
}

/// An eligible entry from its id (hex) and weight (decimal) as text.
fn parse_eligible(entry_id: &str, weight: &str) -> Result<Entry, StoreError> {
    let weight = weight
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("weight of {entry_id}")))?;
    entry_from_row(entry_id, weight)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first: i64, ids: &[&str]) -> (i64, i64, String) {
        (first, ids.len() as i64, serde_json::to_string(ids).unwrap())
    }

    #[test]
    fn ranks_are_read_across_rows_of_the_packed_ranking() {
        let rows = [
            (1, pack_numbers([10, 11, 12])),
            (4, pack_numbers([13, 14])),
            (6, pack_numbers([15])),
        ];
        assert_eq!(
            leaves_at_ranks("w", &rows, 1, 6).unwrap(),
            [10, 11, 12, 13, 14, 15]
        );
        assert_eq!(leaves_at_ranks("w", &rows, 3, 4).unwrap(), [12, 13]);
        assert_eq!(leaves_at_ranks("w", &rows[1..], 5, 6).unwrap(), [14, 15]);
        // Ranks past the rows, before them, or a gap between two rows.
        for (rows, from, to) in [
            (&rows[..], 5, 7),
            (&rows[1..], 3, 4),
            (&[rows[0].clone(), rows[2].clone()][..], 1, 6),
            (&[][..], 1, 1),
        ] {
            assert!(matches!(
                leaves_at_ranks("w", rows, from, to),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn packed_slots_read_back_in_rank_order() {
        let chunks = [chunk(1, &["a", "b"]), chunk(3, &["c"])];
        let (first, ids) = slot_ids("w", &chunks).unwrap();
        assert_eq!(first, 1);
        assert_eq!(ids, ["a", "b", "c"]);
        // A read that starts in a later row starts at its first rank.
        let (first, ids) = slot_ids("w", &chunks[1..]).unwrap();
        assert_eq!((first, ids.as_slice()), (3, ["c".to_owned()].as_slice()));
        assert_eq!(slot_ids("w", &[]).unwrap(), (1, Vec::new()));
    }

    #[test]
    fn packed_slots_with_a_gap_or_a_wrong_count_are_refused() {
        let gap = [chunk(1, &["a", "b"]), chunk(4, &["c"])];
        assert!(matches!(slot_ids("w", &gap), Err(StoreError::Corrupt(_))));
        let short = [(1, 3, serde_json::to_string(&["a", "b"]).unwrap())];
        assert!(matches!(slot_ids("w", &short), Err(StoreError::Corrupt(_))));
        let garbled = [(1, 1, "[1]".to_owned())];
        assert!(matches!(
            slot_ids("w", &garbled),
            Err(StoreError::Corrupt(_))
        ));
    }
}
