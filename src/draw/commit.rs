//! `slots_hash`, the commitment and the seed (DRAW-SPEC sections 2, 4 and 5).

use sha2::{Digest as _, Sha256};

use super::FORMAT;
use super::types::{Digest, Slot};

/// `H(for each slot in slot order: id "\t" starts_at "\t" counter "\n")`.
/// The slots must already be in slot order (see [`sort_slots`]).
pub fn slots_hash(slots: &[Slot]) -> Digest {
    let mut hasher = Sha256::new();
    for slot in slots {
        hasher.update(slot.id.as_bytes());
        hasher.update(b"\t");
        hasher.update(slot.starts_at.as_bytes());
        hasher.update(b"\t");
        hasher.update(slot.counter.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// Puts slots in slot order: (`starts_at`, `counter`, `id`), bytewise.
pub fn sort_slots(slots: &mut [Slot]) {
    slots.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
}

/// Everything the commitment covers, published when registration closes.
#[derive(Debug, Clone, Copy)]
pub struct CommitmentInput<'a> {
    pub window_id: &'a str,
    pub n_entries: u64,
    pub entries_root: &'a Digest,
    pub n_slots: u64,
    pub slots_hash: &'a Digest,
    /// As published: 64 lowercase hex characters.
    pub seed_commitment: &'a str,
    pub beacon: &'a str,
}

/// The commitment of section 4.
pub fn commitment(input: &CommitmentInput<'_>) -> Digest {
    let text = format!(
        "{FORMAT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        input.window_id,
        input.n_entries,
        crate::draw::hex(input.entries_root),
        input.n_slots,
        crate::draw::hex(input.slots_hash),
        input.seed_commitment,
        input.beacon,
    );
    Sha256::digest(text.as_bytes()).into()
}

/// `seed_commitment = hex(H(secret))`, published before registration opens.
pub fn seed_commitment(secret: &[u8; 32]) -> String {
    crate::draw::hex(Sha256::digest(secret))
}

/// The seed of section 5, from the commitment, the revealed secret and the beacon value.
pub fn seed(commitment: &Digest, secret: &[u8; 32], beacon_value: &[u8]) -> Digest {
    let text = format!(
        "tirage-seed-v1\n{}\n{}\n{}\n",
        crate::draw::hex(commitment),
        crate::draw::hex(secret),
        crate::draw::hex(beacon_value),
    );
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::types::sha256;

    #[test]
    fn slots_hash_hashes_the_exact_lines() {
        let slots = vec![
            Slot {
                id: "S1".into(),
                starts_at: "2027-01-04T08:30:00Z".into(),
                counter: "G1".into(),
            },
            Slot {
                id: "S2".into(),
                starts_at: "2027-01-04T08:30:00Z".into(),
                counter: "G2".into(),
            },
        ];
        let expected = sha256(b"S1\t2027-01-04T08:30:00Z\tG1\nS2\t2027-01-04T08:30:00Z\tG2\n");
        assert_eq!(slots_hash(&slots), expected);
        assert_eq!(slots_hash(&[]), sha256(b""));
    }

    #[test]
    fn slot_order_is_time_then_counter_then_id() {
        let slot = |id: &str, at: &str, counter: &str| Slot {
            id: id.into(),
            starts_at: at.into(),
            counter: counter.into(),
        };
        let mut slots = vec![
            slot("a", "2027-01-05T08:00:00Z", "A"),
            slot("c", "2027-01-04T09:00:00Z", "B"),
            slot("b", "2027-01-04T09:00:00Z", "B"),
            slot("d", "2027-01-04T09:00:00Z", "A"),
        ];
        sort_slots(&mut slots);
        let ids: Vec<_> = slots.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["d", "b", "c", "a"]);
    }

    #[test]
    fn commitment_and_seed_hash_the_documented_text() {
        let root = [0x11; 32];
        let sh = [0x22; 32];
        let c = commitment(&CommitmentInput {
            window_id: "w-1",
            n_entries: 3,
            entries_root: &root,
            n_slots: 2,
            slots_hash: &sh,
            seed_commitment: "ab",
            beacon: "none",
        });
        let text = format!(
            "tirage-draw-v1\nw-1\n3\n{}\n2\n{}\nab\nnone\n",
            "11".repeat(32),
            "22".repeat(32)
        );
        assert_eq!(c, sha256(text.as_bytes()));

        let secret = [0x33; 32];
        let s = seed(&c, &secret, &[0xde, 0xad]);
        let text = format!(
            "tirage-seed-v1\n{}\n{}\ndead\n",
            hex::encode(c),
            "33".repeat(32)
        );
        assert_eq!(s, sha256(text.as_bytes()));
        assert_eq!(seed_commitment(&secret), hex::encode(sha256(&secret)));
    }
}
