//! Criterion benches for the draw core: the Merkle root and the full ranking at 10k,
//! 100k and 1M entries. Run with `cargo bench --bench draw`; results are recorded in
//! `docs/benchmarks.md`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tirage::draw::merkle::{leaf_hash, root};
use tirage::draw::order::rank;
use tirage::draw::stream::Stream;
use tirage::draw::{Entry, EntryId, sha256};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Deterministic entries with the default weight tiers (1, 2, 4, 8).
fn entries(n: usize) -> Vec<Entry> {
    let mut entries: Vec<Entry> = (0..n)
        .map(|i| {
            let digest = sha256(&(i as u64).to_le_bytes());
            Entry {
                id: EntryId::from_bytes(digest[..16].try_into().unwrap()),
                weight: 1 << (digest[16] % 4),
            }
        })
        .collect();
    entries.sort_by_key(|e| e.id);
    entries
}

fn merkle(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle_root");
    group.sample_size(10);
    for n in SIZES {
        let entries = entries(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &entries, |b, entries| {
            b.iter(|| {
                let leaves: Vec<_> = entries.iter().map(leaf_hash).collect();
                root(&leaves)
            });
        });
    }
    group.finish();
}

fn ranking(c: &mut Criterion) {
    let mut group = c.benchmark_group("rank");
    group.sample_size(10);
    for n in SIZES {
        let weights: Vec<u32> = entries(n).iter().map(|e| e.weight).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &weights, |b, weights| {
            b.iter(|| rank(weights, &mut Stream::new(&[7; 32])));
        });
    }
    group.finish();
}

criterion_group!(benches, merkle, ranking);
criterion_main!(benches);
