//! Criterion benches of the semantic cache's index: a search among 100 000 entries of one tenant (the
//! HNSW graph) and among a small index's flat list, and the memory 100 000 entries take.
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: an index that cannot be built or searched must stop it"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::cache::index::{FLAT_LIMIT, SemanticIndex};

const DIMS: usize = 384;

/// Unit vectors from a fixed xorshift sequence: the same index on every run.
fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..DIMS).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn index_of(entries: &[Vec<f32>]) -> SemanticIndex {
    let index = SemanticIndex::new(DIMS, 4).unwrap();
    for (id, v) in entries.iter().enumerate() {
        index.add(id as u64, v, [0; 32]).unwrap();
    }
    index
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let queries = vectors(64, 99);
    let small = index_of(&vectors(FLAT_LIMIT, 7));
    let mut i = 0;
    c.bench_function("cache/search_flat_256", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(small.search(&queries[i], 4, &[0; 32]).unwrap())
        })
    });

    let entries = vectors(100_000, 11);
    let before = rss_kib();
    let big = index_of(&entries);
    let after = rss_kib();
    drop(entries);
    eprintln!(
        "cache/memory_100k: usearch counts {:.1} MiB, resident set grew {:.1} MiB ({DIMS} dims, f16)",
        big.memory_usage() as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / 1024.0
    );
    c.bench_function("cache/search_hnsw_100k", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(big.search(&queries[i], 4, &[0; 32]).unwrap())
        })
    });
}

criterion_group!(cache, benches);
criterion_main!(cache);
