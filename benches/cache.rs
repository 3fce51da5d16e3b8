//! Criterion benches of the semantic cache's index: a search among 100 000 entries of one tenant (the
//! HNSW graph) and among a small index's flat list, and the memory 100 000 entries take.
//!
//! Two kinds of 100 000 entries. `clustered`: 2 000 topics of 50 questions each, as a cache holds many
//! wordings of fewer questions, searched with stored entries perturbed to a cosine of about 0.89 (a
//! rewording near the default threshold); the share of searches whose top hit is the perturbed entry
//! (the exact nearest neighbour for every one of these queries) is printed as the recall. `random`:
//! uniform unit vectors, the worst case for a graph index (every entry about as far as any other), with
//! no recall to speak of. Every search filters by the context key, as the cache's do.
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: an index that cannot be built or searched must stop it"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::cache::index::{FLAT_LIMIT, SemanticIndex};

const DIMS: usize = 384;
const ENTRIES: usize = 100_000;

/// A fixed xorshift sequence of values in [-0.5, 0.5): the same index on every run.
fn noise(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn random(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut next = noise(seed);
    (0..n)
        .map(|_| unit((0..DIMS).map(|_| next()).collect()))
        .collect()
}

/// `v` moved by uniform noise of `spread` in each dimension.
fn perturbed(v: &[f32], spread: f32, next: &mut impl FnMut() -> f32) -> Vec<f32> {
    unit(v.iter().map(|x| x + spread * next()).collect())
}

/// `n` entries around 2 000 random centres (cosine about 0.9 to their centre).
fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let centres = random(2_000, seed ^ 77);
    let mut next = noise(seed);
    (0..n)
        .map(|i| perturbed(&centres[i % centres.len()], 0.08, &mut next))
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
    let queries = random(64, 99);
    let small = index_of(&random(FLAT_LIMIT, 7));
    let mut i = 0;
    c.bench_function("cache/search_flat_256", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(small.search(&queries[i], 4, &[0; 32]).unwrap())
        })
    });

    let entries = clustered(ENTRIES, 11);
    let mut next = noise(5);
    let planted: Vec<u64> = (0..200u64).map(|k| (k * 7919) % ENTRIES as u64).collect();
    let rewordings: Vec<Vec<f32>> = planted
        .iter()
        .map(|&id| perturbed(&entries[id as usize], 0.09, &mut next))
        .collect();
    let before = rss_kib();
    let big = index_of(&entries);
    let after = rss_kib();
    drop(entries);
    eprintln!(
        "cache/memory_100k: usearch counts {:.1} MiB, resident set grew {:.1} MiB ({DIMS} dims, f16)",
        big.memory_usage() as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / 1024.0
    );
    let found = planted
        .iter()
        .zip(&rewordings)
        .filter(|(id, q)| big.search(q, 4, &[0; 32]).unwrap().first().map(|n| n.id) == Some(**id))
        .count();
    eprintln!(
        "cache/search_hnsw_100k: the reworded entry is the top hit for {found} of {}",
        planted.len()
    );
    c.bench_function("cache/search_hnsw_100k", |b| {
        b.iter(|| {
            i = (i + 1) % rewordings.len();
            black_box(big.search(&rewordings[i], 4, &[0; 32]).unwrap())
        })
    });
    drop(big);

    let uniform = index_of(&random(ENTRIES, 11));
    c.bench_function("cache/search_hnsw_100k_random", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(uniform.search(&queries[i], 4, &[0; 32]).unwrap())
        })
    });
}

criterion_group!(cache, benches);
criterion_main!(cache);
