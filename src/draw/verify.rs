//! Re-computing a published bundle from its inputs alone and naming every published
//! value that differs (DRAW-SPEC section 10).
//!
//! [`check_bundle`] never panics on hostile input: what cannot be decoded is an
//! [`InputError`] naming the field, and every value that decodes but differs is a
//! failed [`Check`]. Digests are compared in constant time.

use subtle::ConstantTimeEq;

use super::FORMAT;
use super::bundle::{Bundle, DrawInputs, ResultRow, commit, draw};
use super::commit::{seed_commitment, sort_slots};
use super::types::{Entry, InputError, Slot};

/// Why a bundle does not verify: the first published value that differs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the bundle cannot be read: {0}")]
    Malformed(#[from] InputError),
    #[error("seed_commitment is not sha256(secret)")]
    SeedCommitmentMismatch,
    #[error("beacon_value is not empty although the beacon is none")]
    BeaconValueWithoutBeacon,
    #[error("the beacon's evidence does not check out")]
    BeaconEvidence,
    #[error("entries are not listed in ascending id order, or an id repeats")]
    EntriesOrder,
    #[error("slots are not listed in slot order, or a slot id repeats")]
    SlotsOrder,
    #[error("entries_root differs")]
    EntriesRootMismatch,
    #[error("slots_hash differs")]
    SlotsHashMismatch,
    #[error("commitment differs")]
    CommitmentMismatch,
    #[error("seed differs")]
    SeedMismatch,
    #[error("results differ from rank {first_rank}")]
    ResultsMismatch { first_rank: u64 },
    #[error("results_hash differs")]
    ResultsHashMismatch,
}

/// One published value and whether the re-computation agrees with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// The bundle field this is about.
    pub name: &'static str,
    pub ok: bool,
    /// The re-computed value (for `entries`/`slots`, the rule they must follow).
    pub expected: String,
    /// The published value.
    pub found: String,
    /// For `results`: the first rank whose line differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_rank: Option<u64>,
}

impl Check {
    fn digest(name: &'static str, expected: String, found: &str) -> Self {
        let ok = expected.as_bytes().ct_eq(found.as_bytes()).into();
        Self {
            name,
            ok,
            expected,
            found: found.to_owned(),
            first_rank: None,
        }
    }

    fn error(&self) -> VerifyError {
        match self.name {
            "seed_commitment" => VerifyError::SeedCommitmentMismatch,
            "beacon_value" => VerifyError::BeaconValueWithoutBeacon,
            "beacon" => VerifyError::BeaconEvidence,
            "entries" => VerifyError::EntriesOrder,
            "slots" => VerifyError::SlotsOrder,
            "entries_root" => VerifyError::EntriesRootMismatch,
            "slots_hash" => VerifyError::SlotsHashMismatch,
            "commitment" => VerifyError::CommitmentMismatch,
            "seed" => VerifyError::SeedMismatch,
            "results" => VerifyError::ResultsMismatch {
                first_rank: self.first_rank.unwrap_or(1),
            },
            _ => VerifyError::ResultsHashMismatch,
        }
    }
}

/// The outcome of re-computing a bundle.
#[derive(Debug, Clone)]
pub struct Report {
    pub window_id: String,
    /// One check per published value, in the order of the specification.
    pub checks: Vec<Check>,
    /// The entries in entry order, as re-computed.
    pub entries: Vec<Entry>,
    /// The slots in slot order.
    pub slots: Vec<Slot>,
    /// The re-computed results, in rank order.
    pub results: Vec<ResultRow>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The first failed check as an error, or nothing when all agree.
    pub fn first_error(&self) -> Option<VerifyError> {
        self.checks.iter().find(|c| !c.ok).map(Check::error)
    }
}

/// Re-computes everything from `window_id`, `beacon`, `beacon_value`,
/// `seed_commitment`, `secret`, `entries` and `slots`, and compares.
pub fn check_bundle(bundle: Bundle) -> Result<Report, InputError> {
    if bundle.format != FORMAT {
        return Err(InputError::new("format", format!("must be \"{FORMAT}\"")));
    }
    let Bundle {
        format: _,
        window_id,
        beacon,
        beacon_value,
        seed_commitment: published_seed_commitment,
        secret,
        entries,
        slots,
        entries_root,
        slots_hash,
        commitment,
        seed,
        results,
        results_hash,
        beacon_evidence,
    } = bundle;
    let raw = super::bundle::RawInputs {
        window_id,
        beacon,
        beacon_value,
        seed_commitment: published_seed_commitment,
        secret,
        entries,
        slots,
    };
    let mut inputs: DrawInputs = raw.decode()?;
    let mut checks = Vec::with_capacity(9);

    checks.push(Check::digest(
        "seed_commitment",
        seed_commitment(&inputs.secret),
        &inputs.seed_commitment,
    ));
    if inputs.beacon == "none" && !inputs.beacon_value.is_empty() {
        // Section 5: with no beacon there is no public value; a non-empty one would
        // change the seed without anything public to check it against.
        checks.push(Check {
            name: "beacon_value",
            ok: false,
            expected: String::new(),
            found: crate::draw::hex(&inputs.beacon_value),
            first_rank: None,
        });
    }
    if let Some(evidence) = &beacon_evidence {
        // Not part of DRAW-SPEC: the bundle says how its beacon value was obtained, so
        // that value is checked as well (a drand signature, an RFC 3797 key string).
        let beacon_value = crate::draw::hex(&inputs.beacon_value);
        let outcome = crate::beacon::check_evidence(&inputs.beacon, &beacon_value, evidence);
        checks.push(Check {
            name: "beacon",
            ok: outcome.is_ok(),
            expected: match &outcome {
                Ok(what) => what.clone(),
                Err(_) => format!("evidence for {}", inputs.beacon),
            },
            found: outcome.err().unwrap_or_default(),
            first_rank: None,
        });
    }
    let entries_out_of_order = inputs.entries.windows(2).position(|p| p[0].id >= p[1].id);
    checks.push(order_check(
        "entries",
        "ids strictly ascending",
        entries_out_of_order,
    ));
    if entries_out_of_order.is_some() {
        inputs.entries.sort_by_key(|e| e.id);
    }
    let slots_in_order = inputs
        .slots
        .windows(2)
        .position(|p| p[0].order_key() > p[1].order_key());
    let mut slot_ids: Vec<&str> = inputs.slots.iter().map(|s| s.id.as_str()).collect();
    slot_ids.sort_unstable();
    let repeated_slot_id = slot_ids.windows(2).any(|p| p[0] == p[1]);
    checks.push(order_check(
        "slots",
        "slot order (starts_at, counter, id), each id once",
        slots_in_order.or(repeated_slot_id.then_some(0)),
    ));
    if slots_in_order.is_some() {
        sort_slots(&mut inputs.slots);
    }

    let committed = commit(
        &inputs.window_id,
        &inputs.beacon,
        &inputs.seed_commitment,
        &inputs.entries,
        &inputs.slots,
    );
    checks.push(Check::digest(
        "entries_root",
        crate::draw::hex(committed.entries_root),
        &entries_root,
    ));
    checks.push(Check::digest(
        "slots_hash",
        crate::draw::hex(committed.slots_hash),
        &slots_hash,
    ));
    checks.push(Check::digest(
        "commitment",
        crate::draw::hex(committed.commitment),
        &commitment,
    ));

    let outcome = draw(
        &committed.commitment,
        &inputs.secret,
        &inputs.beacon_value,
        &inputs.entries,
        &inputs.slots,
    );
    checks.push(Check::digest("seed", crate::draw::hex(outcome.seed), &seed));
    let expected_results = outcome.rows(&inputs.entries, &inputs.slots);
    checks.push(results_check(&expected_results, &results));
    checks.push(Check::digest(
        "results_hash",
        crate::draw::hex(outcome.results_hash),
        &results_hash,
    ));

    Ok(Report {
        window_id: inputs.window_id,
        checks,
        entries: inputs.entries,
        slots: inputs.slots,
        results: expected_results,
    })
}

/// [`check_bundle`] as a `Result`: the first difference, if any, is the error.
pub fn verify(bundle: Bundle) -> Result<Report, VerifyError> {
    let report = check_bundle(bundle)?;
    match report.first_error() {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

fn order_check(name: &'static str, rule: &str, first_bad: Option<usize>) -> Check {
    Check {
        name,
        ok: first_bad.is_none(),
        expected: rule.to_owned(),
        found: match first_bad {
            None => rule.to_owned(),
            Some(i) => format!("{name}[{}] is not after {name}[{i}]", i + 1),
        },
        first_rank: None,
    }
}

fn results_check(expected: &[ResultRow], found: &[ResultRow]) -> Check {
    let first_difference = expected
        .iter()
        .zip(found)
        .position(|(e, f)| e != f)
        .or_else(|| (expected.len() != found.len()).then(|| expected.len().min(found.len())));
    let describe = |rows: &[ResultRow], i: usize| match rows.get(i) {
        None => format!("no line at position {}", i + 1),
        Some(row) => format!(
            "rank {} id {} slot {}",
            row.rank,
            row.id,
            row.slot.as_deref().unwrap_or("-")
        ),
    };
    match first_difference {
        None => Check {
            name: "results",
            ok: true,
            expected: format!("{} lines", expected.len()),
            found: format!("{} lines", found.len()),
            first_rank: None,
        },
        Some(i) => Check {
            name: "results",
            ok: false,
            expected: describe(expected, i),
            found: describe(found, i),
            first_rank: Some(i as u64 + 1),
        },
    }
}
