//! The life of a window after registration: close (commitment) and draw (results and
//! bundle), shared by the API, the pages and the scheduler.
//!
//! The store reads the inputs and records the outputs in single transactions; the
//! numbers come from the pure draw core. The draw is deterministic: run again on the
//! same committed inputs (after a crash, or by a second instance) it gives the same
//! bytes, and the store lets only one run be recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer as _};

use crate::beacon::BeaconEvidence;
use crate::domain::validation::{Issue, ValidationErrors};
use crate::domain::weighting::WeightingPolicy;
use crate::domain::window::WindowState;
use crate::draw::assign::{assign, results_hash};
use crate::draw::bundle::{DrawInputs, Outcome, assemble, rank_and_assign};
use crate::draw::merkle::{MerkleTree, leaf_hashes};
use crate::draw::stats::{Statistics, statistics};
use crate::draw::{Bundle, Digest, ResultRow};
use crate::store::draws::{
    BundleRecord, CommitmentRecord, DrawInputsRecord, DrawOutput, DrawRecord,
};
use crate::store::{Actor, Store, StoreError, WindowRecord};

/// Why a draw was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid beacon value")]
    Invalid(ValidationErrors),
    #[error("the operating system's randomness failed: {0}")]
    Randomness(String),
}

fn random_bytes<const N: usize>() -> Result<[u8; N], DrawError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| DrawError::Randomness(e.to_string()))?;
    Ok(bytes)
}

/// Opens a draft window: draws its secret from the operating system, publishes the
/// seed commitment, then carries in the entries that earlier draws of the same site and
/// procedure left without a slot. Returns the window and the outbox ids of the mails
/// that ask carried applicants to confirm.
pub async fn open(
    store: &Store,
    window_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(WindowRecord, Vec<i64>), DrawError> {
    let window = store.window(window_id).await?;
    window.state.open().map_err(StoreError::from)?;
    if window.registration_closes_at <= now {
        return Err(StoreError::WindowNotReady {
            state: window.state,
            detail: "the registration period is already over; edit the dates before opening",
        }
        .into());
    }
    check_beacon_timing(&window).map_err(DrawError::Invalid)?;
    let secret = random_bytes::<32>()?;
    let seed_commitment = crate::draw::commit::seed_commitment(&secret);
    let window = store
        .open_window(window_id, &secret, &seed_commitment, actor, now)
        .await?;
    tracing::info!(window.id = %window_id, "window opened");
    let mails = carry_over(store, &window, now).await?;
    Ok((store.window(window_id).await?, mails))
}

/// A drand round must be published after registration closes (nobody can know it
/// when the entries are committed) and by the draw time (so the draw can take place).
fn check_beacon_timing(window: &WindowRecord) -> Result<(), ValidationErrors> {
    use crate::beacon::{Beacon, quicknet};
    if let Ok(Beacon::DrandQuicknet { round }) = Beacon::parse(&window.beacon) {
        let at = quicknet::round_time(round);
        let closes = window.registration_closes_at.timestamp();
        let draw = window.draw_at.timestamp();
        let when =
            DateTime::from_timestamp(at, 0).map_or_else(|| at.to_string(), |t| t.to_rfc3339());
        if at <= closes {
            return Err(invalid(
                "beacon",
                "beacon_too_early",
                format!(
                    "quicknet round {round} is published at {when}, not after registration closes: pick a later round"
                ),
            ));
        }
        if at > draw {
            return Err(invalid(
                "beacon",
                "beacon_too_late",
                format!(
                    "quicknet round {round} is published at {when}, after the draw time: pick an earlier round or a later draw time"
                ),
            ));
        }
    }
    Ok(())
}

/// Carries the unsuccessful entries of earlier draws into `window` (just opened).
async fn carry_over(
    store: &Store,
    window: &WindowRecord,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DrawError> {
    use crate::domain::codes::{hash_verification_code, verification_code};
    use crate::domain::identity::Language;
    use crate::store::NewMail;
    use crate::store::carry_over::{CarriedEntry, Confirmation};

    // Candidates are read from `draw_results`: finish any still being written by the
    // follow-up of a recent draw.
    for drawn in store.unfinished_draw_results().await? {
        store.finish_draw_results(&drawn, now).await?;
    }
    let candidates = store
        .carry_over_candidates(&window.id, &window.site, &window.procedure)
        .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let first_slot = window
        .first_slot_date()
        .unwrap_or_else(|| window.draw_at.date_naive());
    let mut carried = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let id = crate::draw::EntryId::from_bytes(random_bytes::<16>()?).to_hex();
        let unsuccessful_draws = candidate.unsuccessful_draws + 1;
        let weight = window.policy.weight(
            candidate.permit_expires_on,
            first_slot,
            u32::try_from(unsuccessful_draws).unwrap_or(u32::MAX),
        );
        let confirmation = match &candidate.email {
            None => None,
            Some(email) => {
                let code = loop {
                    if let Some(code) = verification_code(u32::from_le_bytes(random_bytes::<4>()?))
                    {
                        break code;
                    }
                };
                let language = Language::parse(&candidate.language).unwrap_or_default();
                let (subject, body) = crate::jobs::messages::carry_over(
                    language,
                    &code,
                    &id,
                    &window.site,
                    &window.procedure,
                    window.registration_closes_at,
                    unsuccessful_draws,
                );
                Some(Confirmation {
                    code_hash: hash_verification_code(&id, &code),
                    expires_at: window.registration_closes_at,
                    mail: NewMail {
                        kind: "carry_over".to_owned(),
                        recipient: email.clone(),
                        subject,
                        body,
                    },
                })
            }
        };
        carried.push(CarriedEntry {
            from: candidate.id,
            id,
            weight,
            unsuccessful_draws,
            confirmation,
        });
    }
    let done = store.insert_carried(&window.id, &carried, now).await?;
    tracing::info!(window.id = %window.id, carried = done.len(), "entries carried over");
    Ok(done.into_iter().filter_map(|(_, mail)| mail).collect())
}

/// The bundle's `window` field: what helps people read the bundle (verifiers ignore
/// fields they do not know), after the DRAW-SPEC section 10 fields and the statistics.
#[derive(Serialize)]
struct PublishedWindow<'a> {
    site: &'a str,
    procedure: &'a str,
    registration_opens_at: DateTime<Utc>,
    registration_closes_at: DateTime<Utc>,
    draw_at: DateTime<Utc>,
    committed_at: DateTime<Utc>,
    drawn_at: DateTime<Utc>,
    policy: &'a WeightingPolicy,
}

/// Runs `work` on its own task, to its end, even if the caller stops waiting: the
/// close or the draw of a national window can outlast an HTTP request (its timeout,
/// or a client that hangs up), and stopping it half way would roll it back for
/// nothing. Whoever asked again meanwhile gets the state's answer (`409` while it is
/// not done, the result once it is).
async fn to_the_end<T, E>(work: impl Future<Output = Result<T, E>> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<StoreError>,
{
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("the task stopped: {e}")).into()))
}

/// Closes an open window whose registration period is over and publishes its
/// commitment. Runs to its end even if the request that asked for it is given up.
pub async fn close(
    store: &Store,
    window_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<CommitmentRecord, StoreError> {
    let (store, window_id, actor) = (store.clone(), window_id.to_owned(), actor.clone());
    to_the_end(async move { close_now(&store, &window_id, &actor, now).await }).await
}

async fn close_now(
    store: &Store,
    window_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<CommitmentRecord, StoreError> {
    let started = std::time::Instant::now();
    let record = store.close_window(window_id, actor, now).await?;
    let close_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        window.id = %window_id,
        entries = record.n_entries,
        close_ms,
        commitment = %record.commitment,
        "window closed"
    );
    Ok(record)
}

/// What staff give at the draw, according to the window's beacon.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeaconInput {
    /// For a beacon named by free text: its value, lowercase hex.
    pub beacon_value: Option<String>,
    /// For `drand:quicknet:round=N`: the round as drand publishes it.
    pub drand: Option<DrandRound>,
    /// For `rfc3797:...`: the published numbers, sources separated by `/`, such as
    /// `9319 / 2 5 12 8 10 / 9 18 26 34 41 45`.
    pub rfc3797_values: Option<String>,
}

/// A drand round: what `GET <drand>/<chain hash>/public/<round>` answers, in part.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct DrandRound {
    pub round: u64,
    /// hex
    pub signature: String,
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> ValidationErrors {
    ValidationErrors::single(field, Issue::new(code, message))
}

/// Works out the beacon value of a draw from what staff gave, checking it against the
/// window's beacon: nothing for `none`; a drand round whose BLS signature verifies; the
/// RFC 3797 key string of the published numbers; or, for another named beacon, its
/// value in hex. Also returns the evidence published in the bundle.
pub fn resolve_beacon(
    window: &WindowRecord,
    input: &BeaconInput,
) -> Result<(Vec<u8>, Option<crate::beacon::BeaconEvidence>), ValidationErrors> {
    use crate::beacon::{
        Beacon, BeaconEvidence, parse_rfc3797_values, quicknet, rfc3797_key_string, verify_quicknet,
    };
    let beacon = Beacon::parse(&window.beacon)
        .map_err(|e| invalid("beacon", "invalid_beacon", e.to_string()))?;
    let hex_value = input
        .beacon_value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let unexpected = |field: &str, what: &str| {
        invalid(
            field,
            "not_expected",
            format!("this window's beacon is {what}: see its documentation for what to send"),
        )
    };
    match beacon {
        Beacon::None => {
            if hex_value.is_some() {
                return Err(unexpected("beacon_value", "none"));
            }
            if input.drand.is_some() {
                return Err(unexpected("drand", "none"));
            }
            if input.rfc3797_values.is_some() {
                return Err(unexpected("rfc3797_values", "none"));
            }
            Ok((Vec::new(), None))
        }
        Beacon::DrandQuicknet { round } => {
            if hex_value.is_some() {
                return Err(invalid(
                    "beacon_value",
                    "not_expected",
                    "send the drand round (round and signature), which is checked, not a value",
                ));
            }
            let given = input.drand.as_ref().ok_or_else(|| {
                invalid(
                    "drand",
                    "required",
                    format!("the drand quicknet round {round} is required: {{\"round\": {round}, \"signature\": \"...\"}}"),
                )
            })?;
            let field = match given.round == round {
                true => "drand.signature",
                false => "drand.round",
            };
            let value = verify_quicknet(round, given.round, &given.signature)
                .map_err(|e| invalid(field, "invalid_beacon", e.to_string()))?;
            let evidence = BeaconEvidence::Drand {
                network: "quicknet".to_owned(),
                chain_hash: quicknet::CHAIN_HASH.to_owned(),
                public_key: quicknet::PUBLIC_KEY.to_owned(),
                round,
                signature: given.signature.trim().to_ascii_lowercase(),
            };
            Ok((value.to_vec(), Some(evidence)))
        }
        Beacon::Rfc3797 { .. } => {
            if hex_value.is_some() {
                return Err(invalid(
                    "beacon_value",
                    "not_expected",
                    "send the published numbers as rfc3797_values; the value is built from them",
                ));
            }
            let text = input.rfc3797_values.as_deref().ok_or_else(|| {
                invalid(
                    "rfc3797_values",
                    "required",
                    "the published numbers of the sources are required",
                )
            })?;
            let sources = parse_rfc3797_values(text)
                .map_err(|e| invalid("rfc3797_values", "invalid_values", e.to_string()))?;
            let key_string = rfc3797_key_string(&sources);
            let value = key_string.as_bytes().to_vec();
            Ok((
                value,
                Some(BeaconEvidence::Rfc3797 {
                    sources,
                    key_string,
                }),
            ))
        }
        Beacon::Named(name) => {
            let text = hex_value.ok_or_else(|| {
                invalid(
                    "beacon_value",
                    "required",
                    format!("the value of the beacon \"{name}\" is required, in hexadecimal"),
                )
            })?;
            match hex::decode(text) {
                Ok(bytes)
                    if !text.bytes().any(|b| b.is_ascii_uppercase()) && bytes.len() <= 1024 =>
                {
                    Ok((bytes, None))
                }
                _ => Err(invalid(
                    "beacon_value",
                    "invalid_hex",
                    "must be lowercase hexadecimal, at most 1024 bytes",
                )),
            }
        }
    }
}

/// Runs the draw of a closed window whose draw time has come, and publishes results,
/// statistics and bundle. `beacon_text` is what staff pasted for the window's beacon
/// (nothing for `none`), read as [`BeaconInput::from_text`] says.
pub async fn run_draw(
    store: &Store,
    window_id: &str,
    beacon_text: Option<&str>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<DrawRecord, DrawError> {
    let (store, window_id, actor) = (store.clone(), window_id.to_owned(), actor.clone());
    let beacon_text = beacon_text.map(str::to_owned);
    to_the_end(async move {
        let window = store.window(&window_id).await?;
        let input = BeaconInput::from_text(&window.beacon, beacon_text.as_deref())
            .map_err(DrawError::Invalid)?;
        draw_now(&store, &window_id, &input, &actor, now).await
    })
    .await
}

impl BeaconInput {
    /// Reads one pasted text according to the window's beacon: for
    /// `drand:quicknet:round=N` the round's JSON as drand serves it (`round` and
    /// `signature`; other fields such as `randomness` are ignored, the value is
    /// re-derived from the signature), for `rfc3797:...` the published numbers, for any
    /// other named beacon its value in hex.
    pub fn from_text(beacon: &str, text: Option<&str>) -> Result<Self, ValidationErrors> {
        use crate::beacon::Beacon;
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        let Some(text) = text else {
            return Ok(Self::default());
        };
        Ok(match Beacon::parse(beacon) {
            Ok(Beacon::DrandQuicknet { .. }) => {
                let round: DrandRound = serde_json::from_str(text).map_err(|e| {
                    invalid(
                        "drand",
                        "invalid_json",
                        format!("paste the round's JSON, with round and signature: {e}"),
                    )
                })?;
                Self {
                    drand: Some(round),
                    ..Self::default()
                }
            }
            Ok(Beacon::Rfc3797 { .. }) => Self {
                rfc3797_values: Some(text.to_owned()),
                ..Self::default()
            },
            _ => Self {
                beacon_value: Some(text.to_owned()),
                ..Self::default()
            },
        })
    }
}

/// [`run_draw`] with whatever the window's beacon needs: a drand round, RFC 3797
/// numbers, or a value. Runs to its end even if the request that asked for it is given
/// up.
pub async fn run_draw_with(
    store: &Store,
    window_id: &str,
    beacon: &BeaconInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<DrawRecord, DrawError> {
    let (store, window_id) = (store.clone(), window_id.to_owned());
    let (beacon, actor) = (beacon.clone(), actor.clone());
    to_the_end(async move { draw_now(&store, &window_id, &beacon, &actor, now).await }).await
}

async fn draw_now(
    store: &Store,
    window_id: &str,
    beacon: &BeaconInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<DrawRecord, DrawError> {
    let window = store.window(window_id).await?;
    window.state.record_draw().map_err(StoreError::from)?;
    if now < window.draw_at {
        return Err(StoreError::WindowNotReady {
            state: window.state,
            detail: "the draw time has not come yet",
        }
        .into());
    }
    let (beacon_value, evidence) = resolve_beacon(&window, beacon).map_err(DrawError::Invalid)?;
    // The bundle is rebuilt later from what is recorded now (`published_bundle`): its
    // evidence and its time go in as they will read back (JSON; the microseconds
    // PostgreSQL keeps), so that the rebuilt bytes are the ones hashed now.
    let evidence_json = evidence
        .as_ref()
        .map(|e| serde_json::to_string(e).expect("beacon evidence serializes"));
    let evidence: Option<BeaconEvidence> = evidence_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("beacon evidence: {e}")))?;
    let now = now.trunc_subsecs(6);
    let started = std::time::Instant::now();
    let inputs = store.draw_inputs(window_id).await?;
    let read_ms = started.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    let computed = {
        let inputs = inputs.clone();
        let beacon_value = beacon_value.clone();
        let window = window.clone();
        tokio::task::spawn_blocking(move || compute(&window, inputs, beacon_value, evidence, now))
            .await
            .map_err(|e| StoreError::Corrupt(format!("the draw computation failed: {e}")))??
    };
    let (outcome, stats, bundle_sha256) = computed;
    let compute_ms = started.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    let output = DrawOutput {
        beacon_value: &beacon_value,
        outcome: &outcome,
        statistics: &stats,
        bundle_sha256: &bundle_sha256,
        beacon_evidence: evidence_json.as_deref(),
    };
    let record = store
        .record_draw(window_id, &inputs, &output, actor, now)
        .await?;
    tracing::info!(
        window.id = %window_id,
        results_hash = %record.results_hash,
        selected = record.n_selected,
        read_ms,
        compute_ms,
        record_ms = started.elapsed().as_millis() as u64,
        "window drawn"
    );
    // The rest (waiting ranks of `draw_results`, slot holders, result mails) runs on
    // its own task: the draw is published and every entry's outcome readable already
    // (see `Store::entry_outcome`). It happens once, and a stop in the middle is
    // resumed by the scheduler's next tick (`jobs::offers::tick`).
    let (store, window_id) = (store.clone(), window_id.to_owned());
    tokio::spawn(async move { crate::jobs::offers::after_draw(&store, &window_id, now).await });
    Ok(record)
}

type Computed = (Outcome, Statistics, String);

/// The draw itself, outside the database: the outcome, the statistics, and the SHA-256
/// of the bundle as [`published_bundle`] will serve it. The bundle's bytes are only
/// hashed here, as they are written, never held whole: they are rebuilt from what the
/// draw records when first asked for. Its first part (the inputs: half the bytes, and
/// known before the draw) is serialised on a second thread while this one ranks.
fn compute(
    window: &WindowRecord,
    inputs: DrawInputsRecord,
    beacon_value: Vec<u8>,
    evidence: Option<BeaconEvidence>,
    now: DateTime<Utc>,
) -> Result<Computed, StoreError> {
    let commitment = parse_digest(&inputs.commitment.commitment, "commitment")?;
    let corrupt =
        |e: serde_json::Error| StoreError::Corrupt(format!("bundle of {}: {e}", window.id));
    let mut serializer = serde_json::Serializer::new(std::io::BufWriter::with_capacity(
        1 << 16,
        HashingWriter::default(),
    ));
    let ((seed, order, slot_of), head) = std::thread::scope(|scope| {
        let head = scope.spawn(|| {
            let mut map = (&mut serializer).serialize_map(None)?;
            write_head(
                &mut map,
                &Head::of_inputs(&window.id, &inputs, &beacon_value),
            )
        });
        let ranked = rank_and_assign(
            &commitment,
            &inputs.secret,
            &beacon_value,
            &inputs.entries,
            &inputs.slots,
        );
        (ranked, head.join())
    });
    head.map_err(|_| StoreError::Corrupt(format!("bundle of {}: a thread panicked", window.id)))?
        .map_err(corrupt)?;
    let mut writer = serializer.into_inner();
    let committed_at = inputs.commitment.committed_at;
    // The results hash (section 9) is filled in below, once computed from the rows.
    let mut outcome = Outcome {
        seed,
        order,
        slot_of,
        results_hash: [0; 32],
    };
    let (mut bundle, stats) = published_parts(window, inputs, beacon_value, evidence, &outcome)?;
    // Section 9 on one core while the results are written on the others: the hash
    // goes into the bundle right after the results.
    let (results_hash, written) = std::thread::scope(|scope| {
        let hash = scope.spawn(|| {
            results_hash(
                bundle
                    .results
                    .iter()
                    .map(|row| (row.rank, &row.id, row.slot.as_deref())),
            )
        });
        let written = write_tail_results(&mut writer, &bundle);
        (hash.join(), written)
    });
    written.map_err(corrupt)?;
    outcome.results_hash = results_hash
        .map_err(|_| StoreError::Corrupt(format!("bundle of {}: a thread panicked", window.id)))?;
    bundle.results_hash = crate::draw::hex(outcome.results_hash);
    write_tail_rest(&mut writer, window, &bundle, &stats, committed_at, now).map_err(corrupt)?;
    let hashing = writer
        .into_inner()
        .map_err(|e| StoreError::Corrupt(format!("bundle of {}: {e}", window.id)))?;
    Ok((outcome, stats, crate::draw::hex(hashing.finish())))
}

/// The bundle (DRAW-SPEC section 10) and its statistics from the committed inputs and
/// the outcome: the same function at the draw and when the bundle is rebuilt.
fn published_parts(
    window: &WindowRecord,
    inputs: DrawInputsRecord,
    beacon_value: Vec<u8>,
    evidence: Option<BeaconEvidence>,
    outcome: &Outcome,
) -> Result<(Bundle, Statistics), StoreError> {
    let committed = crate::draw::bundle::Committed {
        entries_root: parse_digest(&inputs.commitment.entries_root, "entries_root")?,
        slots_hash: parse_digest(&inputs.commitment.slots_hash, "slots_hash")?,
        commitment: parse_digest(&inputs.commitment.commitment, "commitment")?,
    };
    let draw_inputs = DrawInputs {
        window_id: window.id.clone(),
        beacon: inputs.commitment.beacon,
        beacon_value,
        seed_commitment: inputs.commitment.seed_commitment,
        secret: inputs.secret,
        entries: inputs.entries,
        slots: inputs.slots,
    };
    let mut bundle = assemble(draw_inputs, &committed, outcome);
    bundle.beacon_evidence = evidence;
    let stats = statistics(&bundle.entries, &bundle.results, bundle.slots.len());
    Ok((bundle, stats))
}

/// The published bundle's JSON object as it is being written.
type BundleMap<'a, W> = serde_json::ser::Compound<'a, W, serde_json::ser::CompactFormatter>;

/// Writes the published bundle: the section 10 fields, the statistics, the window.
fn write_published(
    writer: impl std::io::Write,
    window: &WindowRecord,
    bundle: &Bundle,
    statistics: &Statistics,
    committed_at: DateTime<Utc>,
    drawn_at: DateTime<Utc>,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::new(writer);
    let mut map = (&mut serializer).serialize_map(None)?;
    write_head(&mut map, &Head::of_bundle(bundle))?;
    let mut writer = serializer.into_inner();
    write_tail_results(&mut writer, bundle)?;
    write_tail_rest(
        &mut writer,
        window,
        bundle,
        statistics,
        committed_at,
        drawn_at,
    )
}

/// The bundle's first fields, its inputs (DRAW-SPEC section 10, in its order), known
/// before the draw.
struct Head<'a> {
    window_id: &'a str,
    beacon: &'a str,
    beacon_value: String,
    seed_commitment: &'a str,
    secret: String,
    entries: &'a [crate::draw::Entry],
    slots: &'a [crate::draw::Slot],
}

impl<'a> Head<'a> {
    fn of_inputs(window_id: &'a str, inputs: &'a DrawInputsRecord, beacon_value: &[u8]) -> Self {
        Self {
            window_id,
            beacon: &inputs.commitment.beacon,
            beacon_value: crate::draw::hex(beacon_value),
            seed_commitment: &inputs.commitment.seed_commitment,
            secret: crate::draw::hex(inputs.secret),
            entries: &inputs.entries,
            slots: &inputs.slots,
        }
    }

    fn of_bundle(bundle: &'a Bundle) -> Self {
        Self {
            window_id: &bundle.window_id,
            beacon: &bundle.beacon,
            beacon_value: bundle.beacon_value.clone(),
            seed_commitment: &bundle.seed_commitment,
            secret: bundle.secret.clone(),
            entries: &bundle.entries,
            slots: &bundle.slots,
        }
    }
}

fn write_head<W: std::io::Write>(
    map: &mut BundleMap<'_, W>,
    head: &Head<'_>,
) -> serde_json::Result<()> {
    map.serialize_entry("format", crate::draw::FORMAT)?;
    map.serialize_entry("window_id", head.window_id)?;
    map.serialize_entry("beacon", head.beacon)?;
    map.serialize_entry("beacon_value", &head.beacon_value)?;
    map.serialize_entry("seed_commitment", head.seed_commitment)?;
    map.serialize_entry("secret", &head.secret)?;
    map.serialize_entry("entries", head.entries)?;
    map.serialize_entry("slots", head.slots)
}

/// The rest of the bundle's object after its head ([`write_head`], whose map is left
/// open), as bytes: each field exactly as serde_json's compact map writes it (a comma,
/// the key, a colon, the value), so the bundle reads as one object written by serde.
/// Written by hand so that the results can be written on two cores.
///
/// This part: the commitment's values, the seed and the results.
fn write_tail_results(writer: &mut impl std::io::Write, bundle: &Bundle) -> serde_json::Result<()> {
    write_field(writer, "entries_root", &bundle.entries_root)?;
    write_field(writer, "slots_hash", &bundle.slots_hash)?;
    write_field(writer, "commitment", &bundle.commitment)?;
    write_field(writer, "seed", &bundle.seed)?;
    writer
        .write_all(b",\"results\":")
        .map_err(serde_json::Error::io)?;
    write_results(writer, &bundle.results)
}

/// The fields after the results, and the end of the object.
fn write_tail_rest(
    writer: &mut impl std::io::Write,
    window: &WindowRecord,
    bundle: &Bundle,
    statistics: &Statistics,
    committed_at: DateTime<Utc>,
    drawn_at: DateTime<Utc>,
) -> serde_json::Result<()> {
    write_field(writer, "results_hash", &bundle.results_hash)?;
    if let Some(evidence) = &bundle.beacon_evidence {
        write_field(writer, "beacon_evidence", evidence)?;
    }
    write_field(writer, "statistics", statistics)?;
    write_field(
        writer,
        "window",
        &PublishedWindow {
            site: &window.site,
            procedure: &window.procedure,
            registration_opens_at: window.registration_opens_at,
            registration_closes_at: window.registration_closes_at,
            draw_at: window.draw_at,
            committed_at,
            drawn_at,
            policy: &window.policy,
        },
    )?;
    writer.write_all(b"}").map_err(serde_json::Error::io)
}

/// One more field of an open JSON object, as serde_json's compact map writes it.
fn write_field(
    writer: &mut impl std::io::Write,
    key: &str,
    value: &impl Serialize,
) -> serde_json::Result<()> {
    writer.write_all(b",").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *writer, key)?;
    writer.write_all(b":").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *writer, value)
}

/// The results rows as the JSON array serde_json writes for them, the second half
/// serialised on another core while this one writes the first (a national window has a
/// million rows, about 70 MB).
fn write_results(writer: &mut impl std::io::Write, rows: &[ResultRow]) -> serde_json::Result<()> {
    fn elements(rows: &[ResultRow], into: &mut impl std::io::Write) -> serde_json::Result<()> {
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                into.write_all(b",").map_err(serde_json::Error::io)?;
            }
            serde_json::to_writer(&mut *into, row)?;
        }
        Ok(())
    }
    let (first, second) = rows.split_at(rows.len() / 2);
    writer.write_all(b"[").map_err(serde_json::Error::io)?;
    let second_text = std::thread::scope(|scope| {
        let second_text = scope.spawn(|| {
            let mut text = Vec::with_capacity(second.len() * 72);
            elements(second, &mut text).map(|()| text)
        });
        elements(first, writer)?;
        second_text
            .join()
            .expect("serialising results rows does not panic")
    })?;
    if !first.is_empty() && !second.is_empty() {
        writer.write_all(b",").map_err(serde_json::Error::io)?;
    }
    writer
        .write_all(&second_text)
        .map_err(serde_json::Error::io)?;
    writer.write_all(b"]").map_err(serde_json::Error::io)
}

/// SHA-256 of whatever is written to it.
#[derive(Default)]
struct HashingWriter(sha2::Sha256);

impl HashingWriter {
    fn finish(self) -> Digest {
        sha2::Digest::finalize(self.0).into()
    }
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The published bundle of a drawn window: its SHA-256 (hex) and its bytes.
///
/// A draw records its ingredients (the packed entries and slots from the close, the
/// packed ranking, the beacon value, seed and results hash) and the SHA-256 of the
/// bundle, not the bundle's bytes: they are rebuilt here, by the same code that hashed
/// them at the draw, and served only if they hash to what was recorded (and published
/// in the draw's audit event). A window drawn before this keeps its stored bytes.
pub async fn published_bundle(
    store: &Store,
    window: &WindowRecord,
) -> Result<(String, Vec<u8>), StoreError> {
    if let Some(stored) = store.stored_bundle(&window.id).await? {
        return Ok(stored);
    }
    let record = store
        .bundle_record(&window.id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let inputs = store.draw_inputs(&window.id).await?;
    let order = store.rank_order(&window.id).await?;
    let window = window.clone();
    tokio::task::spawn_blocking(move || rebuild_bundle(&window, record, inputs, order))
        .await
        .map_err(|e| StoreError::Corrupt(format!("rebuilding a bundle failed: {e}")))?
}

fn rebuild_bundle(
    window: &WindowRecord,
    record: BundleRecord,
    inputs: DrawInputsRecord,
    order: Vec<u32>,
) -> Result<(String, Vec<u8>), StoreError> {
    let id = &window.id;
    let expected = record.bundle_sha256.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "drawn window {id} has neither a stored bundle nor its hash"
        ))
    })?;
    if order.len() != inputs.entries.len() {
        return Err(StoreError::Corrupt(format!(
            "window {id}: {} ranks for {} entries",
            order.len(),
            inputs.entries.len()
        )));
    }
    let order: Vec<usize> = order.into_iter().map(|leaf| leaf as usize).collect();
    let weights: Vec<u32> = inputs.entries.iter().map(|e| e.weight).collect();
    let outcome = Outcome {
        seed: parse_digest(&record.draw.seed, "seed")?,
        slot_of: assign(&order, &weights, inputs.slots.len()),
        order,
        results_hash: parse_digest(&record.draw.results_hash, "results_hash")?,
    };
    let beacon_value = hex::decode(&record.draw.beacon_value)
        .map_err(|_| StoreError::Corrupt(format!("beacon value of {id}")))?;
    let evidence = record
        .beacon_evidence
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("beacon evidence of {id}: {e}")))?;
    let committed_at = inputs.commitment.committed_at;
    let (bundle, stats) = published_parts(window, inputs, beacon_value, evidence, &outcome)?;
    let mut bytes = Vec::new();
    write_published(
        &mut bytes,
        window,
        &bundle,
        &stats,
        committed_at,
        record.draw.drawn_at,
    )
    .map_err(|e| StoreError::Corrupt(format!("bundle of {id}: {e}")))?;
    let sha256 = crate::draw::hex(crate::draw::sha256(&bytes));
    if sha256 != expected {
        return Err(StoreError::Corrupt(format!(
            "the bundle of {id} rebuilt from the database hashes to {sha256}, not to the \
             {expected} recorded at the draw: it is not served"
        )));
    }
    Ok((sha256, bytes))
}

fn parse_digest(text: &str, what: &str) -> Result<Digest, StoreError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?}")))
}

/// Merkle trees of closed windows, kept so that each applicant's inclusion proof is read
/// off in `O(log n)` instead of rehashing every entry. A few windows at most.
#[derive(Clone, Default)]
pub struct ProofCache {
    trees: Arc<Mutex<HashMap<String, Arc<MerkleTree>>>>,
}

/// Windows whose trees are kept at once.
const CACHED_TREES: usize = 4;

impl ProofCache {
    /// The audit path of leaf `leaf_index` in the committed tree of `window_id`.
    pub async fn audit_path(
        &self,
        store: &Store,
        window_id: &str,
        leaf_index: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        let cached = self
            .trees
            .lock()
            .expect("proof cache lock")
            .get(window_id)
            .cloned();
        let tree = match cached {
            Some(tree) => tree,
            None => {
                let entries = store.frozen_entries(window_id).await?;
                let tree = tokio::task::spawn_blocking(move || {
                    Arc::new(MerkleTree::new(leaf_hashes(&entries)))
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("merkle tree: {e}")))?;
                let mut trees = self.trees.lock().expect("proof cache lock");
                if trees.len() >= CACHED_TREES {
                    trees.clear();
                }
                trees.insert(window_id.to_owned(), Arc::clone(&tree));
                tree
            }
        };
        tree.audit_path(leaf_index)
            .ok_or_else(|| StoreError::Corrupt(format!("leaf {leaf_index} of {window_id}")))
    }
}

/// Whether the window's waiting list is still in use: until its last slot starts.
pub fn waiting_list_active(window: &WindowRecord, now: DateTime<Utc>) -> bool {
    window.state == WindowState::Drawn
        && window
            .last_slot_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|last| now < last)
}

/// Where an entry stands, as its owner is told: its registration status before the
/// close, then its part in the draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStanding {
    /// Registered online; the e-mail address is not verified yet.
    PendingVerification,
    /// Verified; takes part in the draw (frozen into it once registration closed).
    Eligible,
    /// Withdrawn by the applicant.
    Withdrawn,
    /// Not in the draw: the e-mail address was not verified before registration closed.
    Excluded,
    /// Drawn with a slot.
    Selected,
    /// Drawn without a slot, on the waiting list: offered a cancelled slot in rank order.
    Waiting,
    /// Drawn without a slot, and no longer on the waiting list: the window's last slot
    /// has passed, or an offered slot was declined or not accepted in time.
    NotSelected,
    /// Gave up their slot, or their place on the waiting list.
    Cancelled,
}

/// The standing of an entry from its stored status, its window and its draw outcome.
pub fn standing(
    stored: crate::store::EntryStatus,
    window: &WindowRecord,
    outcome: Option<&crate::store::draws::EntryOutcome>,
    now: DateTime<Utc>,
) -> EntryStanding {
    use crate::store::EntryStatus;
    match (stored, outcome) {
        (EntryStatus::Withdrawn, _) => EntryStanding::Withdrawn,
        (_, Some(outcome)) => match (outcome.rank, outcome.n_selected) {
            (Some(rank), Some(selected)) if rank <= selected => EntryStanding::Selected,
            (Some(_), _) if waiting_list_active(window, now) => EntryStanding::Waiting,
            (Some(_), _) => EntryStanding::NotSelected,
            (None, _) => EntryStanding::Eligible,
        },
        (EntryStatus::PendingVerification, None)
            if matches!(window.state, WindowState::Closed | WindowState::Drawn) =>
        {
            EntryStanding::Excluded
        }
        (EntryStatus::PendingVerification, None) => EntryStanding::PendingVerification,
        (EntryStatus::Eligible, None) => EntryStanding::Eligible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::EntryId;

    #[test]
    fn results_written_in_halves_are_serde_json_s_array() {
        for n in [0usize, 1, 2, 3, 10, 1001] {
            let rows: Vec<ResultRow> = (0..n)
                .map(|i| ResultRow {
                    rank: i as u64 + 1,
                    id: EntryId::from_bytes([i as u8; 16]),
                    slot: (i % 3 == 0).then(|| format!("slot \"{i}\"\n")),
                })
                .collect();
            let mut halves = Vec::new();
            write_results(&mut halves, &rows).unwrap();
            let serde = serde_json::to_string(&rows).unwrap();
            assert_eq!(String::from_utf8(halves).unwrap(), serde, "n = {n}");
        }
    }
}
