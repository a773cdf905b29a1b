//! The full weighted ranking of all entries (DRAW-SPEC section 7).
//!
//! At each step an entry is picked among those left with probability proportional to
//! its weight: `t = uniform(remaining)`, then the smallest `i` whose running sum of
//! weights exceeds `t`. A Fenwick tree keeps the running sums, so each step costs
//! `O(log n)` and the whole ranking `O(n log n)` with integers only.

use super::stream::Stream;

/// Ranks every entry. `weights` are in entry order; the result lists entry indices in
/// rank order (the first element has rank 1).
pub fn rank(weights: &[u32], stream: &mut Stream) -> Vec<usize> {
    let mut tree = Fenwick::new(weights);
    let mut left: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
    let mut remaining: u64 = left.iter().sum();
    let mut order = Vec::with_capacity(weights.len());
    for _ in 0..weights.len() {
        let t = stream.uniform(remaining);
        let i = tree.first_above(t);
        let w = left[i];
        order.push(i);
        tree.subtract(i, w);
        remaining -= w;
        left[i] = 0;
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

/// A Fenwick (binary indexed) tree of `u64` sums, 1-based inside.
struct Fenwick {
    sums: Vec<u64>,
    /// The largest power of two not above the size, where the descent starts.
    top: usize,
}

impl Fenwick {
    fn new(weights: &[u32]) -> Self {
        let n = weights.len();
        let mut sums = vec![0u64; n + 1];
        for (i, &w) in weights.iter().enumerate() {
            sums[i + 1] += u64::from(w);
            let parent = (i + 1) + ((i + 1) & (i + 1).wrapping_neg());
            if parent <= n {
                sums[parent] += sums[i + 1];
            }
        }
        let top = if n == 0 { 0 } else { 1 << n.ilog2() };
        Self { sums, top }
    }

    /// The smallest index `i` (0-based) with `w[0] + ... + w[i] > t`; `t` must be below
    /// the total.
    fn first_above(&self, mut t: u64) -> usize {
        let mut pos = 0;
        let mut step = self.top;
        while step > 0 {
            let next = pos + step;
            if next < self.sums.len() && self.sums[next] <= t {
                pos = next;
                t -= self.sums[next];
            }
            step >>= 1;
        }
        // `pos` leaves have a sum <= t; the next one (0-based index pos) goes above it.
        pos
    }

    fn subtract(&mut self, index: usize, amount: u64) {
        let mut i = index + 1;
        while i < self.sums.len() {
            self.sums[i] -= amount;
            i += i & i.wrapping_neg();
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
    fn fenwick_ranking_equals_the_linear_scan() {
        for n in 0..60u32 {
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
