//! Statistics of a drawn window, per weight: how many entries, how many selected, and
//! the selection rate an entry of that weight could expect.
//!
//! These numbers are derived from a bundle for people to read; nothing is hashed or
//! verified from them, so they may use floating point where the draw itself never does.

use std::collections::BTreeMap;

use serde::Serialize;

use super::bundle::ResultRow;
use super::types::{Entry, EntryId};

/// The statistics published next to a bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    pub entries: u64,
    pub slots: u64,
    pub selected: u64,
    /// One line per distinct weight, heaviest first.
    pub tiers: Vec<TierStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierStatistics {
    pub weight: u32,
    pub entries: u64,
    pub selected: u64,
    /// `selected / entries`.
    pub selection_rate: f64,
    /// The chance of selection an entry of this weight had before the draw, from the
    /// successive-sampling approximation `1 - exp(-weight * lambda)` with `lambda` such
    /// that the expected number selected equals the number of slots given.
    pub expected_rate: f64,
}

/// Statistics of a draw from its entries, its results and its number of slots.
pub fn statistics(entries: &[Entry], results: &[ResultRow], n_slots: usize) -> Statistics {
    // The weight of each selected id, looked up by binary search in the entries sorted
    // by id (entry order already, in every caller: then nothing is copied).
    let sorted_copy;
    let by_id: &[Entry] = if entries.windows(2).all(|p| p[0].id < p[1].id) {
        entries
    } else {
        let mut copy = entries.to_vec();
        copy.sort_unstable_by_key(|e| e.id);
        sorted_copy = copy;
        &sorted_copy
    };
    let weight_of = |id: &EntryId| {
        by_id
            .binary_search_by_key(id, |e| e.id)
            .ok()
            .map(|i| by_id[i].weight)
    };
    let mut tiers: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for entry in entries {
        tiers.entry(entry.weight).or_default().0 += 1;
    }
    let mut selected = 0;
    for row in results.iter().filter(|r| r.slot.is_some()) {
        selected += 1;
        if let Some(weight) = weight_of(&row.id) {
            tiers.entry(weight).or_default().1 += 1;
        }
    }
    let counts: Vec<(u32, u64)> = tiers.iter().map(|(&w, &(n, _))| (w, n)).collect();
    let lambda = solve_lambda(&counts, selected);
    Statistics {
        entries: entries.len() as u64,
        slots: n_slots as u64,
        selected,
        tiers: tiers
            .into_iter()
            .rev()
            .map(|(weight, (n, chosen))| TierStatistics {
                weight,
                entries: n,
                selected: chosen,
                selection_rate: round4(chosen as f64 / n.max(1) as f64),
                expected_rate: round4(match lambda {
                    Lambda::All => 1.0,
                    Lambda::None => 0.0,
                    Lambda::Value(l) => 1.0 - (-(f64::from(weight)) * l).exp(),
                }),
            })
            .collect(),
    }
}

enum Lambda {
    All,
    None,
    Value(f64),
}

/// Finds `lambda` with `sum(n_t * (1 - exp(-w_t * lambda))) = selected` by bisection.
fn solve_lambda(tiers: &[(u32, u64)], selected: u64) -> Lambda {
    let total: u64 = tiers.iter().map(|&(_, n)| n).sum();
    if selected == 0 {
        return Lambda::None;
    }
    if selected >= total {
        return Lambda::All;
    }
    let expected = |lambda: f64| -> f64 {
        tiers
            .iter()
            .map(|&(w, n)| n as f64 * (1.0 - (-(f64::from(w)) * lambda).exp()))
            .sum()
    };
    let target = selected as f64;
    let (mut low, mut high) = (0.0f64, 1.0f64);
    while expected(high) < target && high < 1e12 {
        high *= 2.0;
    }
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if expected(mid) < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    Lambda::Value((low + high) / 2.0)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::EntryId;

    fn entry(i: u8, weight: u32) -> Entry {
        Entry {
            id: EntryId::from_bytes([i; 16]),
            weight,
        }
    }

    fn row(rank: u64, i: u8, slot: bool) -> ResultRow {
        ResultRow {
            rank,
            id: EntryId::from_bytes([i; 16]),
            slot: slot.then(|| format!("S{rank}")),
        }
    }

    #[test]
    fn counts_and_rates_per_weight() {
        let entries = [
            entry(1, 8),
            entry(2, 8),
            entry(3, 1),
            entry(4, 1),
            entry(5, 1),
        ];
        let results = [
            row(1, 1, true),
            row(2, 3, true),
            row(3, 2, false),
            row(4, 4, false),
            row(5, 5, false),
        ];
        let stats = statistics(&entries, &results, 2);
        assert_eq!((stats.entries, stats.slots, stats.selected), (5, 2, 2));
        assert_eq!(stats.tiers.len(), 2);
        let heavy = &stats.tiers[0];
        assert_eq!((heavy.weight, heavy.entries, heavy.selected), (8, 2, 1));
        assert_eq!(heavy.selection_rate, 0.5);
        let light = &stats.tiers[1];
        assert_eq!((light.weight, light.entries, light.selected), (1, 3, 1));
        assert_eq!(light.selection_rate, 0.3333);
        // the expected selections add up to the slots, and heavier means likelier
        let expected_total = 2.0 * heavy.expected_rate + 3.0 * light.expected_rate;
        assert!((expected_total - 2.0).abs() < 0.001, "{expected_total}");
        assert!(heavy.expected_rate > light.expected_rate);
    }

    #[test]
    fn entries_in_any_order_give_the_same_statistics() {
        let sorted = [entry(1, 8), entry(2, 8), entry(3, 1), entry(4, 1)];
        let shuffled = [entry(3, 1), entry(1, 8), entry(4, 1), entry(2, 8)];
        let results = [
            row(1, 3, true),
            row(2, 2, true),
            row(3, 1, false),
            row(4, 4, false),
        ];
        let expected = statistics(&sorted, &results, 2);
        assert_eq!(statistics(&shuffled, &results, 2), expected);
        assert_eq!(
            expected
                .tiers
                .iter()
                .map(|t| t.selected)
                .collect::<Vec<_>>(),
            [1, 1]
        );
    }

    #[test]
    fn everyone_or_no_one_selected() {
        let entries = [entry(1, 2), entry(2, 1)];
        let all = statistics(&entries, &[row(1, 1, true), row(2, 2, true)], 5);
        assert!(
            all.tiers
                .iter()
                .all(|t| t.expected_rate == 1.0 && t.selection_rate == 1.0)
        );
        let none = statistics(&entries, &[row(1, 1, false), row(2, 2, false)], 0);
        assert!(
            none.tiers
                .iter()
                .all(|t| t.expected_rate == 0.0 && t.selection_rate == 0.0)
        );
        let empty = statistics(&[], &[], 3);
        assert!(empty.tiers.is_empty());
    }
}
