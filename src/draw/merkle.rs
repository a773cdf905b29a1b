//! Entry leaves and the RFC 6962 Merkle tree over them (DRAW-SPEC section 1).
//!
//! The RFC defines the tree recursively: split `n` leaves at `k`, the largest power of
//! two below `n`. The same tree is built level by level by hashing neighbours in pairs
//! and carrying a lone last node up unchanged, which is what [`MerkleTree`] does: it
//! keeps every level so that any audit path is read off in `O(log n)`.

use sha2::{Digest as _, Sha256};

use super::types::{Digest, Entry, sha256};

/// `H(0x00 || id (16 bytes) || weight (4 bytes, big-endian))`.
pub fn leaf_hash(entry: &Entry) -> Digest {
    let mut data = [0u8; 21];
    data[1..17].copy_from_slice(entry.id.as_bytes());
    data[17..].copy_from_slice(&entry.weight.to_be_bytes());
    sha256(&data)
}

/// The leaf hash of every entry, in entry order. Large inputs are hashed in parts on
/// the machine's cores (the result does not depend on how many).
pub fn leaf_hashes(entries: &[Entry]) -> Vec<Digest> {
    in_parts(entries, 1, |part| part.iter().map(leaf_hash).collect())
}

/// Below this many items a level is hashed on one thread.
const PARALLEL_FROM: usize = 1 << 15;

/// `work` applied to consecutive parts of `items` (each a multiple of `align` long,
/// but the last) on scoped threads, the outputs concatenated in order.
fn in_parts<T: Sync>(
    items: &[T],
    align: usize,
    work: impl Fn(&[T]) -> Vec<Digest> + Sync,
) -> Vec<Digest> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < PARALLEL_FROM {
        return work(items);
    }
    let part = items.len().div_ceil(threads).next_multiple_of(align);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(part)
            .map(|chunk| scope.spawn(|| work(chunk)))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            out.extend(handle.join().expect("a hashing thread panicked"));
        }
        out
    })
}

/// The hash of an RFC 6962 leaf over arbitrary data: `H(0x00 || data)`.
pub fn data_leaf_hash(data: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// An interior node: `H(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut data = [0u8; 65];
    data[0] = 0x01;
    data[1..33].copy_from_slice(left);
    data[33..].copy_from_slice(right);
    sha256(&data)
}

/// `MTH(leaves)`: the root of the tree over these leaf hashes, `H("")` when empty.
pub fn root(leaves: &[Digest]) -> Digest {
    if leaves.is_empty() {
        return sha256(b"");
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// The level above: neighbours hashed in pairs, a lone last node carried up. Parts
/// of a large level are hashed on separate threads, split at even positions so that
/// every pair stays whole.
fn next_level(level: &[Digest]) -> Vec<Digest> {
    in_parts(level, 2, pairs_above)
}

fn pairs_above(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node_hash(left, right),
            [lone] => *lone,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// A Merkle tree with all its levels kept, for handing out audit paths.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[0]` are the leaves, the last level holds the root alone.
    levels: Vec<Vec<Digest>>,
}

impl MerkleTree {
    pub fn new(leaves: Vec<Digest>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let next = next_level(levels.last().expect("checked above"));
            levels.push(next);
        }
        Self { levels }
    }

    /// The number of leaves.
    pub fn size(&self) -> usize {
        self.levels[0].len()
    }

    pub fn root(&self) -> Digest {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => sha256(b""),
        }
    }

    /// The RFC 6962 section 2.1.1 audit path of leaf `index`, from the leaf upwards;
    /// `None` when there is no such leaf.
    pub fn audit_path(&self, index: usize) -> Option<Vec<Digest>> {
        if index >= self.size() {
            return None;
        }
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(*sibling);
            }
            i /= 2;
        }
        Some(path)
    }
}

/// Checks an audit path (RFC 9162 section 2.1.3.2): does `leaf` sit at `index` in a
/// tree of `size` leaves whose root is `root`?
pub fn verify_inclusion(
    leaf: &Digest,
    index: u64,
    size: u64,
    path: &[Digest],
    root: &Digest,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && subtle::ConstantTimeEq::ct_eq(&r[..], &root[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursive definition, straight from RFC 6962 section 2.1.
    fn mth(leaves: &[Digest]) -> Digest {
        match leaves.len() {
            0 => sha256(b""),
            1 => leaves[0],
            n => {
                // the largest power of two smaller than n
                let k = if n.is_power_of_two() {
                    n / 2
                } else {
                    n.next_power_of_two() / 2
                };
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n)
            .map(|i| data_leaf_hash(&(i as u32).to_be_bytes()))
            .collect()
    }

    #[test]
    fn level_tree_equals_the_recursive_definition() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root(&l), mth(&l), "size {n}");
            assert_eq!(MerkleTree::new(l.clone()).root(), mth(&l), "size {n}");
        }
    }

    #[test]
    fn levels_hashed_in_parts_equal_the_recursive_definition() {
        // Sizes around the threshold where levels are split across threads, odd and
        // even, so that a part boundary never falls inside a pair.
        for n in [
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            PARALLEL_FROM + 1,
            2 * PARALLEL_FROM + 3,
            3 * PARALLEL_FROM + 7,
        ] {
            let l = leaves(n);
            assert_eq!(root(&l), mth(&l), "size {n}");
            let tree = MerkleTree::new(l.clone());
            assert_eq!(tree.root(), mth(&l), "size {n}");
            assert_eq!(tree.levels[1], pairs_above(&l), "size {n}");
        }
        let entries: Vec<Entry> = (0..PARALLEL_FROM as u32 + 5)
            .map(|i| Entry {
                id: crate::draw::EntryId::from_bytes(
                    sha256(&i.to_be_bytes())[..16].try_into().unwrap(),
                ),
                weight: 1 + i % 7,
            })
            .collect();
        let one_by_one: Vec<Digest> = entries.iter().map(leaf_hash).collect();
        assert_eq!(leaf_hashes(&entries), one_by_one);
    }

    #[test]
    fn every_audit_path_verifies_and_no_other_position_does() {
        for n in 1..40usize {
            let l = leaves(n);
            let tree = MerkleTree::new(l.clone());
            let r = tree.root();
            for (i, leaf) in l.iter().enumerate() {
                let path = tree.audit_path(i).unwrap();
                assert!(verify_inclusion(leaf, i as u64, n as u64, &path, &r));
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(!verify_inclusion(leaf, other as u64, n as u64, &path, &r));
                }
            }
            assert!(tree.audit_path(n).is_none());
        }
    }
}
