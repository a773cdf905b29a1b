//! The published bundle (DRAW-SPEC section 10) and the draw that produces it.
//!
//! The service runs the draw in two moments: [`commit`] when registration closes (the
//! commitment is published before any randomness is known), then [`draw`] once the
//! secret is revealed and the beacon value known. [`run_draw`] does both at once from
//! the inputs of section 10, which is what `tirage draw` and the verifier need.

use serde::{Deserialize, Serialize};

use super::FORMAT;
use super::assign::{assign, results_hash};
use super::commit::{CommitmentInput, commitment, seed, seed_commitment, slots_hash, sort_slots};
use super::merkle::{leaf_hashes, root};
use super::order::rank;
use super::stream::Stream;
use super::types::{
    Digest, Entry, EntryId, InputError, Slot, check_line, check_slot, check_weight,
    parse_lower_hex, parse_lower_hex_any,
};

/// What a draw is computed from, checked and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawInputs {
    pub window_id: String,
    pub beacon: String,
    pub beacon_value: Vec<u8>,
    /// As published before registration opened: `hex(H(secret))`.
    pub seed_commitment: String,
    pub secret: [u8; 32],
    pub entries: Vec<Entry>,
    pub slots: Vec<Slot>,
}

/// The inputs as written in JSON (an inputs file, or the first fields of a bundle).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawInputs {
    pub window_id: String,
    pub beacon: String,
    #[serde(default)]
    pub beacon_value: String,
    pub seed_commitment: String,
    pub secret: String,
    pub entries: Vec<Entry>,
    pub slots: Vec<Slot>,
}

impl RawInputs {
    /// Decodes and checks every field, naming the first bad one.
    pub fn decode(self) -> Result<DrawInputs, InputError> {
        let beacon_value = parse_lower_hex_any(&self.beacon_value)
            .ok_or_else(|| InputError::new("beacon_value", "must be lowercase hexadecimal"))?;
        let secret: [u8; 32] = parse_lower_hex(&self.secret, 32)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                InputError::new("secret", "must be 64 lowercase hexadecimal characters")
            })?;
        let inputs = DrawInputs {
            window_id: self.window_id,
            beacon: self.beacon,
            beacon_value,
            seed_commitment: self.seed_commitment,
            secret,
            entries: self.entries,
            slots: self.slots,
        };
        inputs.check()?;
        Ok(inputs)
    }
}

impl DrawInputs {
    /// Checks the texts, weights and slots, naming the first bad field.
    pub fn check(&self) -> Result<(), InputError> {
        check_line(&self.window_id, "window_id")?;
        check_line(&self.beacon, "beacon")?;
        if parse_lower_hex(&self.seed_commitment, 32).is_none() {
            return Err(InputError::new(
                "seed_commitment",
                "must be 64 lowercase hexadecimal characters",
            ));
        }
        for (i, entry) in self.entries.iter().enumerate() {
            check_weight(entry.weight, &format!("entries[{i}].weight"))?;
        }
        for (i, slot) in self.slots.iter().enumerate() {
            check_slot(slot, &format!("slots[{i}]"))?;
        }
        Ok(())
    }
}

/// One line of the results, in rank order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRow {
    pub rank: u64,
    pub id: EntryId,
    /// The assigned slot's id, `null` for the waiting list. The key must be present:
    /// a line without it is malformed, not silently "no slot".
    #[serde(deserialize_with = "Option::deserialize")]
    pub slot: Option<String>,
}

/// The published bundle, fields in the order of section 10. Readers ignore fields they
/// do not know, so later versions of the service may add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub window_id: String,
    pub beacon: String,
    pub beacon_value: String,
    pub seed_commitment: String,
    pub secret: String,
    pub entries: Vec<Entry>,
    pub slots: Vec<Slot>,
    pub entries_root: String,
    pub slots_hash: String,
    pub commitment: String,
    pub seed: String,
    pub results: Vec<ResultRow>,
    pub results_hash: String,
    /// How the beacon value was obtained (a drand round's signature, RFC 3797 sources),
    /// so that it can be checked too. Not part of DRAW-SPEC: absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon_evidence: Option<crate::beacon::BeaconEvidence>,
}

impl Bundle {
    /// The inputs part of the bundle, undecoded.
    pub fn raw_inputs(&self) -> RawInputs {
        RawInputs {
            window_id: self.window_id.clone(),
            beacon: self.beacon.clone(),
            beacon_value: self.beacon_value.clone(),
            seed_commitment: self.seed_commitment.clone(),
            secret: self.secret.clone(),
            entries: self.entries.clone(),
            slots: self.slots.clone(),
        }
    }
}

/// What is published when registration closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub entries_root: Digest,
    pub slots_hash: Digest,
    pub commitment: Digest,
}

/// Sections 1, 2 and 4. `entries` must be in entry order and `slots` in slot order.
pub fn commit(
    window_id: &str,
    beacon: &str,
    seed_commitment: &str,
    entries: &[Entry],
    slots: &[Slot],
) -> Committed {
    commit_leaves(
        window_id,
        beacon,
        seed_commitment,
        &leaf_hashes(entries),
        slots,
    )
}

/// [`commit`] from the entries' leaf hashes ([`crate::draw::merkle::leaf_hash`], in
/// entry order), for a caller that hashed the leaves as it read the entries.
pub fn commit_leaves(
    window_id: &str,
    beacon: &str,
    seed_commitment: &str,
    leaves: &[Digest],
    slots: &[Slot],
) -> Committed {
    let entries_root = root(leaves);
    let slots_hash = slots_hash(slots);
    let commitment = commitment(&CommitmentInput {
        window_id,
        n_entries: leaves.len() as u64,
        entries_root: &entries_root,
        n_slots: slots.len() as u64,
        slots_hash: &slots_hash,
        seed_commitment,
        beacon,
    });
    Committed {
        entries_root,
        slots_hash,
        commitment,
    }
}

/// The outcome of sections 5 to 9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub seed: Digest,
    /// Entry indices in rank order.
    pub order: Vec<usize>,
    /// For each rank position, the index of the slot it got.
    pub slot_of: Vec<Option<usize>>,
    pub results_hash: Digest,
}

impl Outcome {
    /// The results rows, in rank order.
    pub fn rows(&self, entries: &[Entry], slots: &[Slot]) -> Vec<ResultRow> {
        self.order
            .iter()
            .zip(&self.slot_of)
            .enumerate()
            .map(|(position, (&entry, slot))| ResultRow {
                rank: position as u64 + 1,
                id: entries[entry].id,
                slot: slot.map(|s| slots[s].id.clone()),
            })
            .collect()
    }
}

/// Sections 5 to 9: seed, ranking, assignment and results hash. `entries` must be in
/// entry order and `slots` in slot order, as committed.
pub fn draw(
    commitment: &Digest,
    secret: &[u8; 32],
    beacon_value: &[u8],
    entries: &[Entry],
    slots: &[Slot],
) -> Outcome {
    let (seed, order, slot_of) = rank_and_assign(commitment, secret, beacon_value, entries, slots);
    let results_hash = results_hash(order.iter().zip(&slot_of).enumerate().map(
        |(position, (&entry, slot))| {
            (
                position as u64 + 1,
                &entries[entry].id,
                slot.map(|s| slots[s].id.as_str()),
            )
        },
    ));
    Outcome {
        seed,
        order,
        slot_of,
        results_hash,
    }
}

/// Sections 5 to 8 of [`draw`]: the seed, the entry indices in rank order and the slot
/// of each rank position, without the results hash (section 9), which a caller may
/// compute from the results rows while it does other work
/// ([`crate::draw::assign::results_hash`]).
pub fn rank_and_assign(
    commitment: &Digest,
    secret: &[u8; 32],
    beacon_value: &[u8],
    entries: &[Entry],
    slots: &[Slot],
) -> (Digest, Vec<usize>, Vec<Option<usize>>) {
    let seed = seed(commitment, secret, beacon_value);
    let weights: Vec<u32> = entries.iter().map(|e| e.weight).collect();
    let order = rank(&weights, &mut Stream::new(&seed));
    let slot_of = assign(&order, &weights, slots.len());
    (seed, order, slot_of)
}

/// The whole draw from its inputs, in any order: entries are put in entry order and
/// slots in slot order first. Refuses duplicate entry or slot ids, a `seed_commitment`
/// that is not `hex(H(secret))`, and a beacon value when the beacon is `none`.
pub fn run_draw(mut inputs: DrawInputs) -> Result<Bundle, InputError> {
    inputs.check()?;
    if inputs.beacon == "none" && !inputs.beacon_value.is_empty() {
        return Err(InputError::new(
            "beacon_value",
            "must be empty when the beacon is none",
        ));
    }
    if seed_commitment(&inputs.secret) != inputs.seed_commitment {
        return Err(InputError::new(
            "seed_commitment",
            "is not hex(sha256(secret)): this secret is not the committed one",
        ));
    }
    inputs.entries.sort_unstable_by_key(|e| e.id);
    if let Some(pair) = inputs.entries.windows(2).find(|p| p[0].id == p[1].id) {
        return Err(InputError::new(
            "entries",
            format!("the id {} appears twice", pair[0].id),
        ));
    }
    sort_slots(&mut inputs.slots);
    let mut slot_ids: Vec<&str> = inputs.slots.iter().map(|s| s.id.as_str()).collect();
    slot_ids.sort_unstable();
    if let Some(pair) = slot_ids.windows(2).find(|p| p[0] == p[1]) {
        return Err(InputError::new(
            "slots",
            format!("the slot id {} appears twice", pair[0]),
        ));
    }

    let committed = commit(
        &inputs.window_id,
        &inputs.beacon,
        &inputs.seed_commitment,
        &inputs.entries,
        &inputs.slots,
    );
    let outcome = draw(
        &committed.commitment,
        &inputs.secret,
        &inputs.beacon_value,
        &inputs.entries,
        &inputs.slots,
    );
    Ok(assemble(inputs, &committed, &outcome))
}

/// Puts the inputs, the commitment and the outcome together as the published bundle.
pub fn assemble(inputs: DrawInputs, committed: &Committed, outcome: &Outcome) -> Bundle {
    let results = outcome.rows(&inputs.entries, &inputs.slots);
    Bundle {
        format: FORMAT.to_owned(),
        window_id: inputs.window_id,
        beacon: inputs.beacon,
        beacon_value: crate::draw::hex(&inputs.beacon_value),
        seed_commitment: inputs.seed_commitment,
        secret: crate::draw::hex(inputs.secret),
        entries: inputs.entries,
        slots: inputs.slots,
        entries_root: crate::draw::hex(committed.entries_root),
        slots_hash: crate::draw::hex(committed.slots_hash),
        commitment: crate::draw::hex(committed.commitment),
        seed: crate::draw::hex(outcome.seed),
        results,
        results_hash: crate::draw::hex(outcome.results_hash),
        beacon_evidence: None,
    }
}
