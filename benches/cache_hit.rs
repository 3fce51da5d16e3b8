//! The response cache end to end: the real `sluice` binary with `[cache]` on and the local MiniLM
//! embedder, in front of an upstream that takes 300 ms per answer. For each of the first `fow-cache`
//! paraphrase pairs (a, b), one client asks a (a miss: the upstream answers, the cache stores it), a again
//! (an exact hit) and then b (a semantic hit when b is close enough to a), and the harness prints the
//! median and p90 of each answer's time by the `x-sluice-cache` value the gateway answered with.
//!
//! `cargo bench --bench cache_hit` (`SLUICE_MODELS_DIR`, default `models`, as `sluice models pull --dir`
//! fills it; `SLUICE_CACHE_PAIRS`, default 60).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark harness"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod support;
use support::{Gateway, percentile, rss_kib, start_upstream};

const UPSTREAM_DELAY: Duration = Duration::from_millis(300);

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench -- --list` probes
    }
    let models = std::env::var("SLUICE_MODELS_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"),
        PathBuf::from,
    );
    let pairs: usize = std::env::var("SLUICE_CACHE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let cases = match sluice::cache::eval::load(&models.join("fow-cache")) {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!(
                "cache_hit: {e}; run `sluice models pull --dir {}`",
                models.display()
            );
            return;
        }
    };
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|c| c.category == "paraphrase" && c.same_answer)
        .take(pairs)
        .collect();

    let upstream = start_upstream(UPSTREAM_DELAY);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"version = 1
[server]
listen = "127.0.0.1:0"
[storage]
url = "sqlite://{db}"
[cache]
enabled = true
[[providers]]
name = "up"
kind = "openai"
base_url = "http://{upstream}/v1"
[[deployments]]
name = "chat"
provider = "up"
model = "small-model"
price = {{ input_per_mtok = 0.10, output_per_mtok = 0.40 }}
[[providers]]
name = "local"
kind = "local"
models_dir = "{models}"
[[deployments]]
name = "embed"
provider = "local"
model = "all-minilm-l6-v2"
kind = "embeddings"
"#,
        db = dir.path().join("cache.db").display(),
        models = models.display(),
    );
    let gateway = Gateway::start(dir.path(), &config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", gateway.addr);
    let base = format!("http://{}", gateway.addr);
    let mut by_outcome = rt.block_on(async move {
        let (_, key) = support::tenant(&base, support::TOKEN, "cache").await;
        let client = reqwest::Client::new();
        let ask = |messages: &serde_json::Value| {
            let body = serde_json::json!({
                "model": "chat", "messages": messages, "max_tokens": 16, "temperature": 0,
            });
            let request = client.post(&url).bearer_auth(&key).json(&body);
            async move {
                let started = Instant::now();
                let resp = request.send().await.unwrap();
                let outcome = resp
                    .headers()
                    .get("x-sluice-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("(none)")
                    .to_owned();
                assert_eq!(resp.status(), 200, "{outcome}");
                let _ = resp.bytes().await.unwrap();
                (outcome, started.elapsed())
            }
        };
        // One warm-up pair outside the figures: the first embedding loads the model.
        let warm = serde_json::json!([{"role": "user", "content": "A warm-up question?"}]);
        ask(&warm).await;
        ask(&warm).await;
        let mut by_outcome = BTreeMap::<String, Vec<Duration>>::new();
        for case in &cases {
            let (outcome, took) = ask(&case.a).await;
            by_outcome.entry(outcome).or_default().push(took);
            // The answer is stored once its audit entry is durable, just after it is sent.
            tokio::time::sleep(Duration::from_millis(50)).await;
            for messages in [&case.a, &case.b] {
                let (outcome, took) = ask(messages).await;
                by_outcome.entry(outcome).or_default().push(took);
            }
        }
        by_outcome
    });
    for times in by_outcome.values_mut() {
        times.sort();
    }
    let answers: usize = by_outcome.values().map(Vec::len).sum();
    println!(
        "{} paraphrase pairs, 1 client, upstream answering after {} ms (a, then a again, then b):",
        answers / 3,
        UPSTREAM_DELAY.as_millis()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let miss = by_outcome.get("miss").map(|v| percentile(v, 0.5));
    for (outcome, times) in by_outcome {
        let p50 = percentile(&times, 0.5);
        println!(
            "  {outcome:<13} {:>4} answers   p50 {:>8.2} ms   p90 {:>8.2} ms{}",
            times.len(),
            ms(p50),
            ms(percentile(&times, 0.9)),
            miss.filter(|_| outcome != "miss")
                .map(|m| format!(
                    "   {:.0}x faster than a miss",
                    m.as_secs_f64() / p50.as_secs_f64()
                ))
                .unwrap_or_default()
        );
    }
    println!(
        "gateway RSS after: {:.1} MiB (the embedder loaded)",
        rss_kib(gateway.pid()) as f64 / 1024.0
    );
    gateway.stop();
}
