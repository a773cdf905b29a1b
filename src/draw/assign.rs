//! Who gets which slot, and the results hash (DRAW-SPEC sections 8 and 9).

use sha2::{Digest as _, Sha256};

use super::types::{Digest, EntryId};

/// For each rank position (0 = rank 1), the index of the slot it gets, if any.
///
/// `s = min(n_slots, n_entries)` entries are selected: ranks 1..s. They take the slots
/// in slot order, the heaviest weight first and, among equal weights, the best rank
/// first, so the most urgent selected applicants get the earliest appointments.
pub fn assign(order: &[usize], weights: &[u32], n_slots: usize) -> Vec<Option<usize>> {
    let selected = n_slots.min(order.len());
    let mut by_urgency: Vec<usize> = (0..selected).collect();
    // The sort is stable and positions start in rank order, so ties keep rank order.
    by_urgency.sort_by_key(|&position| std::cmp::Reverse(weights[order[position]]));
    let mut slot_of = vec![None; order.len()];
    for (slot, position) in by_urgency.into_iter().enumerate() {
        slot_of[position] = Some(slot);
    }
    slot_of
}

/// `H(for each entry in rank order: rank "\t" id "\t" slot_id_or_- "\n")`.
pub fn results_hash<'a>(
    rows: impl IntoIterator<Item = (u64, &'a EntryId, Option<&'a str>)>,
) -> Digest {
    let mut hasher = Sha256::new();
    let mut id_hex = [0u8; 32];
    for (rank, id, slot) in rows {
        hex::encode_to_slice(id.as_bytes(), &mut id_hex).expect("32 bytes hold 16 in hex");
        hasher.update(rank.to_string().as_bytes());
        hasher.update(b"\t");
        hasher.update(id_hex);
        hasher.update(b"\t");
        hasher.update(slot.unwrap_or("-").as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::types::sha256;

    #[test]
    fn heavier_selected_entries_take_earlier_slots() {
        // entries 0..4 with these weights, ranked 3, 0, 1, 4, 2
        let weights = [1, 8, 1, 8, 2];
        let order = [3, 0, 1, 4, 2];
        let slots = assign(&order, &weights, 3);
        // selected: ranks 1-3 = entries 3 (w8), 0 (w1), 1 (w8)
        // by (weight desc, rank asc): entry 3 (rank 1), entry 1 (rank 3), entry 0 (rank 2)
        assert_eq!(slots, vec![Some(0), Some(2), Some(1), None, None]);
    }

    #[test]
    fn more_slots_than_entries_leaves_slots_free() {
        let slots = assign(&[1, 0], &[5, 5], 4);
        assert_eq!(slots, vec![Some(0), Some(1)]);
    }

    #[test]
    fn results_hash_hashes_the_exact_lines() {
        let a = EntryId::from_bytes([0xab; 16]);
        let c = EntryId::from_bytes([0x0c; 16]);
        let got = results_hash([(1, &a, Some("S1")), (2, &c, None)]);
        let text = format!("1\t{}\tS1\n2\t{}\t-\n", "ab".repeat(16), "0c".repeat(16));
        assert_eq!(got, sha256(text.as_bytes()));
    }
}
