//! Audit append benchmark: sustained durable appends per second (many concurrent writers, group commit)
//! and the latency of one durable append at one client, on a SQLite file in WAL mode with
//! `synchronous = FULL`, each entry with ~900 bytes of content to seal. `cargo bench --bench audit`
//! (`SLUICE_AUDIT_SECONDS`, default 5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark harness"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice::audit::content::Content;
use sluice::audit::entry::{ContentMark, Entry, EntryKind};
use sluice::audit::{AuditLog, Signer, signing_key_from_text};
use sluice::config::Durability;

fn entry(tenant: &str, n: u64) -> Entry {
    Entry {
        index: 0,
        prev_leaf: [0; 32],
        kind: EntryKind::Request,
        timestamp_ms: 1_795_000_000_000 + n,
        tenant_id: tenant.to_owned(),
        key_id: "AbCdEf012345".to_owned(),
        request_id: format!("0193a5b2-7c1d-7e4f-8a9b-{n:012}"),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
        endpoint: "chat".to_owned(),
        subject: String::new(),
        model_requested: "default".to_owned(),
        deployment: "fake-small".to_owned(),
        tier: "simple".to_owned(),
        region: "eu".to_owned(),
        cache: "bypass".to_owned(),
        policy: "builtin".to_owned(),
        status: 200,
        error_code: String::new(),
        prompt_tokens: 120,
        completion_tokens: 40,
        cost_micro_usd: 28,
        latency_us: 900,
        content: ContentMark::None,
        prompt_commitment: None,
        response_commitment: None,
        model_digest: String::new(),
    }
}

/// A typical short exchange (~600 B prompt, ~300 B answer), sealed with AES-256-GCM by the sequencer.
fn content() -> Content {
    Content::new(vec![b'p'; 600], vec![b'r'; 300])
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let seconds: u64 = std::env::var("SLUICE_AUDIT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for durability in [Durability::Fsync, Durability::Os] {
        println!("storage.durability = {durability:?}");
        rt.block_on(run(durability, seconds));
    }
}

async fn run(durability: Durability, seconds: u64) {
    {
        let dir = tempfile::tempdir().unwrap();
        let storage = sluice::storage::Storage::open(
            &format!("sqlite://{}", dir.path().join("audit.db").display()),
            4,
            durability,
        )
        .await
        .unwrap();
        let key = signing_key_from_text("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
        let (log, _task) = AuditLog::open(
            storage,
            Signer::new("bench".into(), key),
            sluice::audit::content::Sealer::new([8; 32]),
            sluice::audit::LogOptions {
                default_retention_days: 365,
                batch_max: 1024,
                checkpoint_interval: Duration::from_secs(1),
                heads: sluice::audit::heads::SignedHeads::in_memory(),
                witnesses: None,
            },
        )
        .await
        .unwrap();

        // One client: each append waits for its own commit (one fsync per entry).
        let mut lat = Vec::new();
        for n in 0..2000 {
            let t = Instant::now();
            log.append(entry("solo", n), Some(content())).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "  1 client, 2000 durable appends: p50 {:.1} µs, p99 {:.1} µs",
            lat[lat.len() / 2].as_secs_f64() * 1e6,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1e6
        );

        // Sustained: many writers over 8 tenants; the sequencer groups them into batches.
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..256u64 {
            let (log, done, stop) = (log.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let tenant = format!("tenant-{}", w % 8);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    log.append(entry(&tenant, w * 1_000_000 + n), Some(content()))
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_count = done.load(Ordering::Relaxed);
        let start_commits = log.commits();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let count = done.load(Ordering::Relaxed) - start_count;
        let commits = log.commits() - start_commits;
        let rate = count as f64 / start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "  256 concurrent writers, {seconds} s: {rate:.0} durable appends/s ({:.1} entries per commit)",
            count as f64 / commits.max(1) as f64
        );
    }
}
