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
    let mut rank_text = [0u8; 20];
    // Lines are gathered in a buffer and hashed in large pieces: far faster than five
    // small updates a line, and the bytes hashed are the same.
    let mut buffer = Vec::with_capacity(1 << 16);
    for (rank, id, slot) in rows {
        buffer.extend_from_slice(write_decimal(&mut rank_text, rank));
        buffer.push(b'\t');
        buffer.extend_from_slice(&id.hex_bytes());
        buffer.push(b'\t');
        buffer.extend_from_slice(slot.unwrap_or("-").as_bytes());
        buffer.push(b'\n');
        if buffer.len() >= (1 << 16) - 256 {
            hasher.update(&buffer);
            buffer.clear();
        }
    }
    hasher.update(&buffer);
    hasher.finalize().into()
}

/// Writes `n` in base 10 at the end of `buf` and returns those digits.
fn write_decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
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
    fn decimals_are_written_without_leading_zeros() {
        let mut buf = [0u8; 20];
        assert_eq!(write_decimal(&mut buf, 0), b"0");
        assert_eq!(write_decimal(&mut buf, 10), b"10");
        assert_eq!(
            write_decimal(&mut buf, u64::MAX),
            u64::MAX.to_string().as_bytes()
        );
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
