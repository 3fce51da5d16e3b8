//! Local inference benchmark, through the worker and its fair queue (what a request uses): SmolLM2-135M
//! tokens per second and time to first token at 1 and 4 concurrent generations, the MiniLM embedder's time
//! for inputs of 8, 32 and 256 tokens, and the process's RSS with both models loaded.
//! `cargo bench --bench local` (`SLUICE_MODELS_DIR`, default `models`; `SLUICE_LOCAL_ROUNDS`, default 5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark harness"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice::inference::chat::{ChatMessage, Sampling};
use sluice::inference::jobs::ChatEvent;
use sluice::inference::{LocalChat, LocalModels, QueueLimits, catalog, files};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// About 50 tokens of prompt once templated.
const PROMPT: &str = "You are given a short note. Read it and answer in one sentence: the meeting \
    moved from Tuesday to Thursday at ten, in the small room on the second floor. When is it?";

/// One greedy generation of `tokens` tokens for `tenant`: (time to first text, tokens, total time).
async fn generate(chat: &LocalChat, tenant: &str, tokens: usize) -> (Duration, usize, Duration) {
    let started = Instant::now();
    let far = Instant::now() + Duration::from_secs(600);
    let mut events = chat
        .submit(
            tenant,
            vec![ChatMessage {
                role: "user".into(),
                content: PROMPT.into(),
            }],
            Sampling {
                max_tokens: tokens,
                temperature: 0.8,
                top_p: None,
                seed: 1,
                stop: Vec::new(),
            },
            (far, far),
        )
        .unwrap();
    let mut first = None;
    loop {
        match events.recv().await.unwrap() {
            ChatEvent::Started { .. } => {}
            ChatEvent::Text(_) => {
                first.get_or_insert_with(|| started.elapsed());
            }
            ChatEvent::Finished {
                completion_tokens, ..
            } => {
                let first = first.unwrap_or_else(|| started.elapsed());
                return (first, completion_tokens, started.elapsed());
            }
            ChatEvent::Failed(f) => panic!("{f}"),
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let dir = std::env::var_os("SLUICE_MODELS_DIR")
        .map_or_else(|| PathBuf::from("models"), PathBuf::from);
    let ready = ["smollm2-135m-instruct", "all-minilm-l6-v2"]
        .iter()
        .all(|n| files::needed(&dir, catalog::find(n).unwrap()).is_empty());
    if !ready {
        eprintln!(
            "SKIPPED: model files missing in {}; run `sluice models pull --dir {}`",
            dir.display(),
            dir.display()
        );
        return;
    }
    let rounds: usize = std::env::var("SLUICE_LOCAL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = rss_mib();
    let models = LocalModels::default();
    let chat = models
        .chat(&dir, "smollm2-135m-instruct", QueueLimits::default())
        .unwrap();
    let embedder = models
        .embedder(&dir, "all-minilm-l6-v2", QueueLimits::default())
        .unwrap();
    let loaded = rss_mib();
    rt.block_on(async {
        generate(&chat, "warm", 8).await;
        let mut ttft = Vec::new();
        let mut rate = Vec::new();
        for _ in 0..rounds {
            let (first, tokens, total) = generate(&chat, "a", 128).await;
            ttft.push(first.as_secs_f64() * 1e3);
            rate.push(tokens as f64 / (total - first).as_secs_f64().max(1e-9));
        }
        println!("chat, 1 request:  time to first token {:.1} ms, {:.1} tokens/s (medians of {rounds})", median(ttft), median(rate));
        let mut ttft4 = Vec::new();
        let mut rate4 = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let runs = futures_util::future::join_all(
                ["a", "b", "c", "d"].map(|t| generate(&chat, t, 64)),
            )
            .await;
            let tokens: usize = runs.iter().map(|r| r.1).sum();
            rate4.push(tokens as f64 / started.elapsed().as_secs_f64());
            ttft4.extend(runs.iter().map(|r| r.0.as_secs_f64() * 1e3));
        }
        println!("chat, 4 requests (4 tenants): time to first token {:.1} ms (median of all), {:.1} tokens/s in all", median(ttft4), median(rate4));
        for words in [5usize, 24, 400] {
            let input = "the quick brown fox jumps over a lazy dog ".repeat(words.div_ceil(9));
            let input: String = input.split_whitespace().take(words).collect::<Vec<_>>().join(" ");
            let mut times = Vec::new();
            let mut tokens = 0;
            for _ in 0..rounds * 4 {
                let started = Instant::now();
                let out = embedder.embed("a", vec![input.clone()], Instant::now() + Duration::from_secs(60)).await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1e3);
                tokens = out[0].tokens;
            }
            println!("embed, {tokens} tokens: {:.2} ms (median of {})", median(times), rounds * 4);
        }
    });
    println!(
        "RSS: {before:.0} MiB before loading, {loaded:.0} MiB with both models loaded, {:.0} MiB after the runs",
        rss_mib()
    );
}
