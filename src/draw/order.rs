//! The full weighted ranking of all entries (DRAW-SPEC section 7).
//!
//! At each step an entry is picked among those left with probability proportional to
//! its weight: `t = uniform(remaining)`, then the smallest `i` whose running sum of
//! weights exceeds `t`. A tree of partial sums (see [`SumTree`], a wide cousin of the
//! Fenwick tree) answers that in `O(log n)`, so the whole ranking is `O(n log n)`, with
//! integers only.

use super::stream::Stream;

/// Ranks every entry. `weights` are in entry order; the result lists entry indices in
/// rank order (the first element has rank 1).
pub fn rank(weights: &[u32], stream: &mut Stream) -> Vec<usize> {
    let mut tree = SumTree::new(weights);
    let mut remaining: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut order = Vec::with_capacity(weights.len());
    for _ in 0..weights.len() {
        let t = stream.uniform(remaining);
        let i = tree.first_above(t);
        let w = tree.weight(i);
        order.push(i);
        tree.subtract(i, w);
        remaining -= w;
    }
    order
}

/// For each entry index, its rank (1-based) given the order from [`rank`].
pub fn ranks_by_entry(order: &[usize]) -> Vec<u64> {
    let mut ranks = vec![0u64; order.len()];
    for (position, &entry) in order.iter().enumerate() {
        ranks[entry] = position as u64 + 1;
    }
    ranks
}

/// Children per node of the [`SumTree`].
const FANOUT: usize = 16;

/// A tree of running sums with 16 children per node: level 0 holds the weights, each
/// level above the sums of 16 nodes below. Finding the first index above `t` scans at
/// most 16 neighbouring sums per level (a cache line or two) over about `log16 n`
/// levels, and removing a weight touches one node per level. It answers exactly what a
/// Fenwick tree would, with far fewer cache misses on a million entries.
struct SumTree {
    levels: Vec<Vec<u64>>,
}

impl SumTree {
    fn new(weights: &[u32]) -> Self {
        let mut levels = vec![weights.iter().map(|&w| u64::from(w)).collect::<Vec<u64>>()];
        while levels.last().is_some_and(|level| level.len() > FANOUT) {
            let below = levels.last().expect("checked above");
            let above = below.chunks(FANOUT).map(|c| c.iter().sum()).collect();
            levels.push(above);
        }
        Self { levels }
    }

    fn weight(&self, index: usize) -> u64 {
        self.levels[0][index]
    }

    /// The smallest index `i` with `w[0] + ... + w[i] > t`; `t` must be below the total.
    fn first_above(&self, mut t: u64) -> usize {
        let mut node = 0;
        for level in self.levels.iter().rev() {
            let start = node * FANOUT;
            let end = (start + FANOUT).min(level.len());
            let mut child = start;
            for (i, &sum) in level[start..end].iter().enumerate() {
                child = start + i;
                if sum > t {
                    break;
                }
                t -= sum;
            }
            node = child;
        }
        node
    }

    fn subtract(&mut self, index: usize, amount: u64) {
        let mut i = index;
        for level in &mut self.levels {
            level[i] -= amount;
            i /= FANOUT;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 7 read literally: a linear scan over the weights.
    fn rank_linear(weights: &[u32], stream: &mut Stream) -> Vec<usize> {
        let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x)).collect();
        let mut remaining: u64 = w.iter().sum();
        let mut order = Vec::new();
        for _ in 0..w.len() {
            let t = stream.uniform(remaining);
            let mut acc = 0;
            let i = w
                .iter()
                .position(|&x| {
                    acc += x;
                    acc > t
                })
                .unwrap();
            order.push(i);
            remaining -= w[i];
            w[i] = 0;
        }
        order
    }

    #[test]
    fn tree_ranking_equals_the_linear_scan() {
        for n in (0..300u32).chain([4095, 4096, 4097]) {
            let weights: Vec<u32> = (0..n).map(|i| 1 + (i * 7919) % 13).collect();
            let seed = [n as u8; 32];
            let fast = rank(&weights, &mut Stream::new(&seed));
            let slow = rank_linear(&weights, &mut Stream::new(&seed));
            assert_eq!(fast, slow, "n = {n}");
        }
    }

    #[test]
    fn every_entry_gets_exactly_one_rank() {
        let weights = vec![1, 1_000_000, 3, 8, 8, 2, 1];
        let order = rank(&weights, &mut Stream::new(&[1; 32]));
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..weights.len()).collect::<Vec<_>>());
        let ranks = ranks_by_entry(&order);
        assert!(ranks.iter().all(|&r| (1..=7).contains(&r)));
    }
}
