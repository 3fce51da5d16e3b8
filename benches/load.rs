//! Load harness: added latency (p50, p99) at one client and throughput at 32 clients of the real `sluice`
//! binary against a direct call to the same instant upstream, measured in one run; plus the gateway's
//! idle and after-load RSS. A second tenant with limits and a spend cap measures the full admission path,
//! budget cover included, in the same run. A third tenant with its own `auth`, `classify`
//! and `route` policies uploaded measures the three policy calls, and a fourth with both is the full
//! pipeline.
//!
//! `cargo bench --bench load` (set `SLUICE_LOAD_SECONDS` to change the 32-client phase length, default 5;
//! `SLUICE_LOAD_REQUESTS` for the 1-client phase, default 5000; `SLUICE_LOAD_DURABILITY=os` for the
//! gateway's `storage.durability`, default `fsync`). For profiling, `SLUICE_LOAD_ONLY=<tenant>` (`load`,
//! `capped`, `policies` or `full`) runs only that tenant's 32-client phase, and prints the gateway's pid
//! first (`perf record -g -p <pid>`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark harness"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod support;
use support::{Gateway, TOKEN, percentile, rss_kib, start_upstream};

const BODY: &str = r#"{"model":"small","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}"#;
/// The same request for the in-process fake deployment: the gateway's own cost without the upstream hop.
const FAKE_BODY: &str = r#"{"model":"fake","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}"#;

/// CPU time (user + system) the process has used, in seconds. `/proc` counts it in USER_HZ ticks, which
/// the kernel fixes at 100 per second for this interface on every architecture.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at the state, field 3.
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request; returns its status (the body is read in full either way).
async fn one(
    client: &HttpClient,
    url: &str,
    key: Option<&str>,
    body: &'static str,
) -> http::StatusCode {
    one_with(client, url, key, body, None).await
}

/// One request with an extra header (`x-sluice-meta-*` for a tenant's policy).
async fn one_with(
    client: &HttpClient,
    url: &str,
    key: Option<&str>,
    body: &'static str,
    header: Option<(&'static str, &'static str)>,
) -> http::StatusCode {
    let mut req = http::Request::post(url).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await.unwrap();
    status
}

async fn latencies(
    client: &HttpClient,
    url: &str,
    key: Option<&str>,
    body: &'static str,
    n: usize,
) -> Vec<Duration> {
    for _ in 0..200 {
        one(client, url, key, body).await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let status = one(client, url, key, body).await;
        out.push(t.elapsed());
        assert_eq!(status, 200, "{url}");
    }
    out.sort();
    out
}

/// A tenant's 1-client latencies, sorted, and how many answers were not 200 (timed all the same).
async fn quiet_latencies(
    client: &HttpClient,
    url: &str,
    key: &str,
    n: usize,
) -> (Vec<Duration>, u64) {
    let mut out = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n {
        let t = Instant::now();
        if one(client, url, Some(key), BODY).await != 200 {
            errors += 1;
        }
        out.push(t.elapsed());
    }
    out.sort();
    (out, errors)
}

/// Clients sending `header`'s requests without pause until `stop`; counts their answers by 200 and not.
fn load_in_background(
    url: &str,
    key: &str,
    clients: usize,
    header: (&'static str, &'static str),
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(u64, u64)>> {
    (0..clients)
        .map(|_| {
            let (url, key, stop) = (url.to_owned(), key.to_owned(), stop.clone());
            tokio::spawn(async move {
                let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
                let (mut ok, mut other) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    if one_with(&client, &url, Some(&key), BODY, Some(header)).await == 200 {
                        ok += 1;
                    } else {
                        other += 1;
                    }
                }
                (ok, other)
            })
        })
        .collect()
}

/// Answers per second with status 200 at `clients` concurrent clients, and how many other answers came
/// (a gateway under overload may shed load with 503 and `Retry-After`; those are counted, not timed).
/// Also the gateway's CPU time per answered request, in µs (`pid`: the gateway; none for direct calls).
async fn throughput(
    url: &str,
    key: Option<&str>,
    clients: usize,
    seconds: u64,
    pid: Option<u32>,
) -> (f64, u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, key, done, refused, stop) = (
            url.to_owned(),
            key.map(str::to_owned),
            done.clone(),
            refused.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            while !stop.load(Ordering::Relaxed) {
                if one(&client, &url, key.as_deref(), BODY).await == 200 {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    let cpu_start = pid.map(cpu_seconds);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let cpu = pid.zip(cpu_start).map_or(0.0, |(p, c)| cpu_seconds(p) - c);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    (
        count as f64 / elapsed,
        refused.load(Ordering::Relaxed),
        cpu / count.max(1) as f64 * 1e6,
    )
}

/// (sum of seconds, count) by phase name.
type Phases = std::collections::BTreeMap<String, (f64, u64)>;

/// The gateway's phase histograms (and the upstream's time to first byte).
async fn phase_totals(client: &HttpClient, gateway: &str, token: &str) -> Phases {
    let req = http::Request::get(format!("{gateway}/metrics"))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let mut out = std::collections::BTreeMap::<String, (f64, u64)>::new();
    for line in std::str::from_utf8(&text).unwrap().lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
        let name = match metric {
            "sluice_phase_duration_seconds_sum" | "sluice_phase_duration_seconds_count" => labels
                .strip_prefix("phase=\"")
                .and_then(|l| l.strip_suffix("\"}"))
                .unwrap_or(labels),
            "sluice_upstream_first_byte_seconds_sum"
            | "sluice_upstream_first_byte_seconds_count" => "(upstream, first byte)",
            _ => continue,
        };
        let slot = out.entry(name.to_owned()).or_default();
        if metric.ends_with("_sum") {
            slot.0 = value.parse().unwrap();
        } else {
            slot.1 = value.parse().unwrap();
        }
    }
    out
}

#[derive(PartialEq)]
enum Feature {
    /// Rate, token and in-flight limits, and a spend cap.
    Caps,
    /// Its own `auth`, `classify` and `route` policies.
    Policies,
}

/// Creates a tenant with `features` and an admin key; returns (tenant id, key).
async fn tenant(gateway: &str, token: &str, name: &str, features: &[Feature]) -> (String, String) {
    use sluice::cli::client::{call, send};
    let (id, key) = support::tenant(gateway, token, name).await;
    if features.contains(&Feature::Caps) {
        for (path, body) in [
            (
                "budget",
                serde_json::json!({"daily_usd": 1_000_000.0, "monthly_usd": 1_000_000.0}),
            ),
            (
                "limits",
                serde_json::json!({"requests_per_second": 1_000_000, "tokens_per_minute": 1_000_000_000_000u64,
                                   "max_concurrent": 10_000}),
            ),
        ] {
            call(
                gateway,
                token,
                http::Method::PUT,
                &format!("/admin/v1/tenants/{id}/{path}"),
                Some(body),
            )
            .await
            .unwrap();
        }
    }
    if features.contains(&Feature::Policies) {
        for (slot, bytes) in [
            (
                "auth",
                &include_bytes!(concat!(env!("OUT_DIR"), "/example_secret_guard.wasm"))[..],
            ),
            ("classify", sluice::policy::builtin::CLASSIFIER),
            ("route", sluice::policy::builtin::ROUTER),
        ] {
            send(
                gateway,
                &key,
                http::Method::PUT,
                &format!("/v1/policies/{slot}"),
                Some(("application/wasm", bytes::Bytes::from_static(bytes))),
            )
            .await
            .unwrap();
        }
    }
    (id, key)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench -- --list` probes
    }
    let requests: usize = std::env::var("SLUICE_LOAD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let seconds: u64 = std::env::var("SLUICE_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let upstream = start_upstream(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"version = 1
[server]
listen = "127.0.0.1:0"
[storage]
url = "sqlite://{db}"
durability = "{durability}"
[[providers]]
name = "up"
kind = "openai"
base_url = "http://{upstream}/v1"
[[deployments]]
name = "small"
provider = "up"
model = "small-model"
tier = "simple"
price = {{ input_per_mtok = 0.10, output_per_mtok = 0.40 }}
[[providers]]
name = "fake"
kind = "fake"
reply = "Hello"
[[deployments]]
name = "fake"
provider = "fake"
model = "fake-model"
"#,
        db = dir.path().join("load.db").display(),
        durability = std::env::var("SLUICE_LOAD_DURABILITY").unwrap_or_else(|_| "fsync".to_owned()),
    );
    let gateway_process = Gateway::start(dir.path(), &config);
    let addr = gateway_process.addr.clone();
    let token = TOKEN;
    let pid = gateway_process.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let gateway = format!("http://{addr}");
        let (_, key) = tenant(&gateway, token, "load", &[]).await;
        // A second tenant with every admission feature on: rate, token and in-flight limits, and a spend
        // cap, so each request is also held by its key's durable budget cover before it is forwarded.
        let (_, capped_key) = tenant(&gateway, token, "capped", &[Feature::Caps]).await;
        // A third tenant with three policies of its own, so each request makes three Wasm calls: `auth` (the
        // example `examples/secret-guard`, which scans every message for credentials), the built-in
        // classifier and the built-in router, uploaded as the tenant's. The model is named, and the tenant's router orders its deployments.
        let (_, policy_key) = tenant(&gateway, token, "policies", &[Feature::Policies]).await;
        // The full pipeline: both.
        let (_, full_key) =
            tenant(&gateway, token, "full", &[Feature::Caps, Feature::Policies]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle_rss = rss_kib(pid);
        if let Ok(only) = std::env::var("SLUICE_LOAD_ONLY") {
            let key = match only.as_str() {
                "load" => &key,
                "capped" => &capped_key,
                "policies" => &policy_key,
                "full" => &full_key,
                other => panic!("SLUICE_LOAD_ONLY: no tenant {other:?}"),
            };
            println!("gateway pid {pid}");
            let url = format!("{gateway}/v1/chat/completions");
            let (rps, refused, cpu) = throughput(&url, Some(key), 32, seconds, Some(pid)).await;
            println!("{only}: {rps:.0} req/s; CPU {cpu:.0} µs/request; {refused} not 200");
            return;
        }

        let direct_url = format!("http://{upstream}/v1/chat/completions");
        let gateway_url = format!("{gateway}/v1/chat/completions");
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let direct = latencies(&client, &direct_url, None, BODY, requests).await;
        let before = phase_totals(&client, &gateway, token).await;
        let via = latencies(&client, &gateway_url, Some(&key), BODY, requests).await;
        let after = phase_totals(&client, &gateway, token).await;
        let fake = latencies(&client, &gateway_url, Some(&key), FAKE_BODY, requests).await;
        let capped = latencies(&client, &gateway_url, Some(&capped_key), BODY, requests).await;
        let with_policies = latencies(&client, &gateway_url, Some(&policy_key), BODY, requests).await;
        let full_before = phase_totals(&client, &gateway, token).await;
        let full = latencies(&client, &gateway_url, Some(&full_key), BODY, requests).await;
        let full_after = phase_totals(&client, &gateway, token).await;
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let (g50, g99) = (percentile(&via, 0.5), percentile(&via, 0.99));
        println!("1 client, {requests} sequential requests each (keep-alive):");
        println!(
            "  direct   p50 {:>8.1} µs   p99 {:>8.1} µs",
            d50.as_secs_f64() * 1e6,
            d99.as_secs_f64() * 1e6
        );
        println!(
            "  gateway  p50 {:>8.1} µs   p99 {:>8.1} µs",
            g50.as_secs_f64() * 1e6,
            g99.as_secs_f64() * 1e6
        );
        println!(
            "  gateway, in-process fake provider (no upstream hop)  p50 {:>8.1} µs   p99 {:>8.1} µs",
            percentile(&fake, 0.5).as_secs_f64() * 1e6,
            percentile(&fake, 0.99).as_secs_f64() * 1e6
        );
        println!(
            "  added    p50 {:>8.1} µs   p99 {:>8.1} µs",
            (g50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
            (g99.as_secs_f64() - d99.as_secs_f64()) * 1e6
        );
        println!("  where the gateway's time goes at 1 client (mean per request from its own phase histograms):");
        println!("    {:<24} {:>10} {:>14}", "phase", "plain", "full pipeline");
        // Per request: a phase some requests skip (a cover raise) is averaged over all of them, and says on
        // how many it ran.
        let mean = |before: &Phases, after: &Phases, phase: &str| {
            let delta = |phase: &str| {
                let (sum, count) = after.get(phase).copied().unwrap_or_default();
                let (sum0, count0) = before.get(phase).copied().unwrap_or_default();
                (sum - sum0, count - count0)
            };
            let (_, requests) = delta("validate");
            let (sum, count) = delta(phase);
            (count > 0 && requests > 0).then(|| {
                let per_request = format!("{:.1} µs", sum / requests as f64 * 1e6);
                if count < requests {
                    format!("{per_request} ({count}×)")
                } else {
                    per_request
                }
            })
        };
        // The full pipeline passes every phase the plain tenant does, and more.
        for phase in full_after.keys() {
            let plain = mean(&before, &after, phase);
            let full = mean(&full_before, &full_after, phase);
            if plain.is_some() || full.is_some() {
                println!(
                    "    {phase:<24} {:>10} {:>14}",
                    plain.unwrap_or_else(|| "-".to_owned()),
                    full.unwrap_or_else(|| "-".to_owned())
                );
            }
        }
        let (c50, c99) = (percentile(&capped, 0.5), percentile(&capped, 0.99));
        println!(
            "  tenant with limits and a spend cap (budget cover): p50 {:>8.1} µs   p99 {:>8.1} µs   added p50 {:>8.1} µs",
            c50.as_secs_f64() * 1e6,
            c99.as_secs_f64() * 1e6,
            (c50.as_secs_f64() - d50.as_secs_f64()) * 1e6
        );
        let (p50, p99) = (
            percentile(&with_policies, 0.5),
            percentile(&with_policies, 0.99),
        );
        println!(
            "  tenant with auth, classify and route policies (3 Wasm calls): p50 {:>8.1} µs   p99 {:>8.1} µs   added p50 {:>8.1} µs   policies' share of p50 {:>8.1} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            (p50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
            (p50.as_secs_f64() - g50.as_secs_f64()) * 1e6
        );
        let (f50, f99) = (percentile(&full, 0.5), percentile(&full, 0.99));
        println!(
            "  full pipeline (3 policies, limits, spend cap, durable audit): p50 {:>8.1} µs   p99 {:>8.1} µs   added p50 {:>8.1} µs   p99 {:>8.1} µs",
            f50.as_secs_f64() * 1e6,
            f99.as_secs_f64() * 1e6,
            (f50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
            (f99.as_secs_f64() - d99.as_secs_f64()) * 1e6
        );
        let (direct_rps, _, _) = throughput(&direct_url, None, 32, seconds, None).await;
        println!("32 clients, {seconds} s each (answers other than 200 are counted, not timed; CPU: the gateway's own user + system time per answered request):");
        println!("  direct   {direct_rps:>10.0} req/s");
        for (name, key) in [
            ("gateway", &key),
            ("gateway, tenant with limits and a spend cap", &capped_key),
            ("gateway, tenant with three policies", &policy_key),
            ("gateway, full pipeline", &full_key),
        ] {
            let (rps, refused, cpu) =
                throughput(&gateway_url, Some(key), 32, seconds, Some(pid)).await;
            println!(
                "  {name}  {rps:>10.0} req/s   ({:.2} of direct; CPU {cpu:.0} µs/request; {refused} not 200)",
                rps / direct_rps
            );
        }
        noisy_neighbour(&client, &gateway, &gateway_url, token, requests).await;
        println!(
            "gateway RSS: idle {:.1} MiB, after load {:.1} MiB",
            idle_rss as f64 / 1024.0,
            rss_kib(pid) as f64 / 1024.0
        );
    });
    gateway_process.stop();
}

/// A noisy neighbour: a tenant whose legal `auth` policy burns most of its fuel on every call, at 32 clients,
/// beside quiet tenants at one client, one without policies and one with its own three. Each quiet tenant's
/// p50 and p99 alone and during the load, measured back to back.
async fn noisy_neighbour(
    client: &HttpClient,
    gateway: &str,
    url: &str,
    token: &str,
    requests: usize,
) {
    let (_, burner) = tenant(gateway, token, "burner", &[]).await;
    sluice::cli::client::send(
        gateway,
        &burner,
        http::Method::PUT,
        "/v1/policies/auth",
        Some((
            "application/wasm",
            bytes::Bytes::from_static(include_bytes!(concat!(
                env!("OUT_DIR"),
                "/sluice_policy_test_hostile.wasm"
            ))),
        )),
    )
    .await
    .unwrap();
    let (_, plain) = tenant(gateway, token, "quiet", &[]).await;
    let (_, policies) = tenant(gateway, token, "quiet-policies", &[Feature::Policies]).await;
    let n = requests.min(2_000);
    println!(
        "noisy neighbour: 32 clients of a tenant whose auth policy burns most of its fuel on every call, beside a quiet tenant at 1 client ({n} requests):"
    );
    for (name, key) in [("no policies", &plain), ("three policies", &policies)] {
        let _ = quiet_latencies(client, url, key, 200).await;
        let (alone, alone_errors) = quiet_latencies(client, url, key, n).await;
        let stop = Arc::new(AtomicBool::new(false));
        let burners = load_in_background(
            url,
            &burner,
            32,
            ("x-sluice-meta-hostile", "burn"),
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (during, during_errors) = quiet_latencies(client, url, key, n).await;
        stop.store(true, Ordering::Relaxed);
        let (mut ok, mut other) = (0, 0);
        for b in burners {
            let (o, x) = b.await.unwrap();
            ok += o;
            other += x;
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let (a50, a99) = (percentile(&alone, 0.5), percentile(&alone, 0.99));
        let (d50, d99) = (percentile(&during, 0.5), percentile(&during, 0.99));
        println!(
            "  quiet, {name}: alone p50 {:>8.1} µs p99 {:>8.1} µs ({alone_errors} not 200); during p50 {:>8.1} µs p99 {:>8.1} µs ({during_errors} not 200); p50 ×{:.2}, p99 ×{:.2}; the burner meanwhile: {ok} answered 200, {other} refused",
            us(a50),
            us(a99),
            us(d50),
            us(d99),
            d50.as_secs_f64() / a50.as_secs_f64(),
            d99.as_secs_f64() / a99.as_secs_f64(),
        );
    }
}
