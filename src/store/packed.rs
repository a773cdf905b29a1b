//! The packed forms in which a close and a draw store a national window: a few hundred
//! rows of bytes instead of a row per entry (migration 0018).
//!
//! - Frozen entries ([`ENTRY_CHUNK`] per `draw_entry_chunks` row): for each entry, in
//!   leaf order, its 16-byte id then its weight as 4 bytes big-endian: exactly the
//!   payload of its Merkle leaf in the draw spec (section 1).
//! - The ranking (`draw_rank_chunks`): 4-byte big-endian numbers, the leaf at each
//!   rank (`by_rank`, [`RANK_ORDER_CHUNK`] a row) or the rank of each leaf (`by_leaf`,
//!   [`RANK_CHUNK`] a row).
//!
//! These functions only pack and unpack; [`super::draws`] reads and writes the rows.

use super::StoreError;
use crate::draw::{Entry, EntryId};

/// Entries per `draw_entry_chunks` row: 4,096 entries are 80 KiB, so finding one entry
/// reads one small row, and a million entries are 245 rows.
pub const ENTRY_CHUNK: usize = 4096;

/// Leaves per `by_leaf` row of `draw_rank_chunks` (16 KiB), and ranks per row of
/// `draw_slot_chunks`: one entry's rank or slot is one small read.
pub const RANK_CHUNK: usize = 4096;

/// Ranks per `by_rank` row of `draw_rank_chunks` (256 KiB): the ranking is only ever
/// read in long runs (the follow-up, the bundle), so a national draw writes 16 rows
/// of it instead of 245 (docs/benchmarks.md, ninth round).
pub const RANK_ORDER_CHUNK: usize = 65_536;

/// Bytes of one packed entry: id and weight.
const ENTRY_BYTES: usize = 20;

/// Packs entries (in leaf order) as their leaf payloads.
pub fn pack_entries(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for entry in entries {
        bytes.extend_from_slice(entry.id.as_bytes());
        bytes.extend_from_slice(&entry.weight.to_be_bytes());
    }
    bytes
}

/// Unpacks what [`pack_entries`] packed, appending to `into`.
pub fn unpack_entries(bytes: &[u8], into: &mut Vec<Entry>) -> Result<(), StoreError> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(StoreError::Corrupt(format!(
            "a packed entry chunk of {} bytes",
            bytes.len()
        )));
    }
    into.reserve(bytes.len() / ENTRY_BYTES);
    for record in bytes.chunks_exact(ENTRY_BYTES) {
        into.push(entry_at(record));
    }
    Ok(())
}

fn entry_at(record: &[u8]) -> Entry {
    let mut id = [0u8; 16];
    id.copy_from_slice(&record[..16]);
    let mut weight = [0u8; 4];
    weight.copy_from_slice(&record[16..ENTRY_BYTES]);
    Entry {
        id: EntryId::from_bytes(id),
        weight: u32::from_be_bytes(weight),
    }
}

/// Finds `id` in one packed chunk (sorted by id): its position in the chunk and its
/// weight, or `None` when the chunk does not hold it.
pub fn find_entry(bytes: &[u8], id: &EntryId) -> Option<(usize, u32)> {
    let n = bytes.len() / ENTRY_BYTES;
    let (mut low, mut high) = (0, n);
    while low < high {
        let middle = low + (high - low) / 2;
        let entry = entry_at(&bytes[middle * ENTRY_BYTES..(middle + 1) * ENTRY_BYTES]);
        match entry.id.cmp(id) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return Some((middle, entry.weight)),
        }
    }
    None
}

/// Packs numbers as 4 bytes big-endian each.
pub fn pack_numbers(numbers: impl IntoIterator<Item = u32>) -> Vec<u8> {
    numbers.into_iter().flat_map(u32::to_be_bytes).collect()
}

/// The `i`-th number of a chunk packed by [`pack_numbers`].
pub fn number_at(bytes: &[u8], i: usize) -> Option<u32> {
    let four = bytes.get(i * 4..i * 4 + 4)?;
    Some(u32::from_be_bytes(four.try_into().ok()?))
}

/// Unpacks every number of a chunk packed by [`pack_numbers`], appending to `into`.
pub fn unpack_numbers(bytes: &[u8], into: &mut Vec<u32>) -> Result<(), StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "a packed rank chunk of {} bytes",
            bytes.len()
        )));
    }
    into.extend(
        bytes
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    );
    Ok(())
}

/// A leaf index, rank or count as the 4-byte number the chunks hold. A window holds far
/// fewer than 2^32 entries; more would be refused rather than wrapped.
pub fn as_u32(n: usize) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} does not fit in 4 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8, weight: u32) -> Entry {
        Entry {
            id: EntryId::from_bytes([i; 16]),
            weight,
        }
    }

    #[test]
    fn entries_round_trip_as_leaf_payloads() {
        let entries = vec![entry(1, 1), entry(2, 1_000_000), entry(200, 7)];
        let packed = pack_entries(&entries);
        assert_eq!(packed.len(), 60);
        // the leaf payload of the spec: id, then the weight big-endian
        assert_eq!(&packed[20..36], &[2u8; 16]);
        assert_eq!(&packed[36..40], &1_000_000u32.to_be_bytes());
        let mut back = Vec::new();
        unpack_entries(&packed, &mut back).unwrap();
        assert_eq!(back, entries);
    }

    #[test]
    fn finds_first_last_and_missing_entries() {
        let entries: Vec<Entry> = (0..9).map(|i| entry(i * 2 + 1, u32::from(i) + 1)).collect();
        let packed = pack_entries(&entries);
        assert_eq!(find_entry(&packed, &entries[0].id), Some((0, 1)));
        assert_eq!(find_entry(&packed, &entries[8].id), Some((8, 9)));
        assert_eq!(find_entry(&packed, &entries[4].id), Some((4, 5)));
        for missing in [0u8, 2, 18, 255] {
            assert_eq!(
                find_entry(&packed, &EntryId::from_bytes([missing; 16])),
                None
            );
        }
        assert_eq!(find_entry(&[], &entries[0].id), None);
    }

    #[test]
    fn a_truncated_chunk_is_corrupt() {
        let mut back = Vec::new();
        assert!(unpack_entries(&[0u8; 21], &mut back).is_err());
        assert!(unpack_numbers(&[0u8; 5], &mut Vec::new()).is_err());
    }

    #[test]
    fn numbers_round_trip_big_endian() {
        let packed = pack_numbers([1, 256, u32::MAX]);
        assert_eq!(packed, [0, 0, 0, 1, 0, 0, 1, 0, 255, 255, 255, 255]);
        assert_eq!(number_at(&packed, 1), Some(256));
        assert_eq!(number_at(&packed, 3), None);
        let mut back = Vec::new();
        unpack_numbers(&packed, &mut back).unwrap();
        assert_eq!(back, [1, 256, u32::MAX]);
    }
}
