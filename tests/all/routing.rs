//! Learned complexity routing: the request's embedding reaches a classifier that reads it (the same vector
//! the embedder makes), and only then is it made; an old 0.1.0 classifier still uploads and runs; without an
//! embedder the built-in classifier decides on the structural features and the audit trail says so; and the
//! built-in classifier's agreement with the corpus's held-out labels stays above its floor.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::config::Tier;
use sluice::inference::{LocalModels, QueueLimits};
use sluice::policy::{builtin, learn};

use crate::local::models_dir;
use crate::support::{TestGateway, error_of};

/// A classifier built with raw wit-bindgen against a frozen copy of the 0.1.0 contract.
const V0_1_0: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sluice_policy_test_v0_1_0.wasm"));
/// A classifier and router that hand the classifier's embedding back in the 403's reason.
const ECHO: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sluice_policy_test_embedding_echo.wasm"
));

const FAKES: &str = r#"
[[providers]]
name = "fake"
kind = "fake"

[[deployments]]
name = "fake-small"
provider = "fake"
model = "small-1"
tier = "simple"
price = { input_per_mtok = 0.10, output_per_mtok = 0.40 }

[[deployments]]
name = "fake-large"
provider = "fake"
model = "large-1"
tier = "complex"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
"#;

/// The fake deployments and the local embedder.
fn with_embedder(dir: &std::path::Path) -> String {
    format!(
        r#"{FAKES}
[[providers]]
name = "local"
kind = "local"
models_dir = "{}"

[[deployments]]
name = "local-embed"
provider = "local"
model = "all-minilm-l6-v2"
kind = "embeddings"
"#,
        dir.display()
    )
}

async fn upload(gw: &TestGateway, key: &str, slot: &str, bytes: &[u8]) {
    let resp = gw
        .http
        .put(gw.url(&format!("/v1/policies/{slot}")))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap()
    );
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The audit entries' `policy` trails of the tenant's chat requests, oldest first.
async fn trails(gw: &TestGateway, admin: &str) -> Vec<String> {
    let entries: Value = gw.get_json("/v1/audit/entries?limit=1000", admin).await;
    entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"] == "chat")
        .map(|f| f["policy"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Inputs the embedder has embedded since start, from `/metrics`.
async fn embedded(gw: &TestGateway) -> u64 {
    let text = gw.metrics_text().await;
    text.lines()
        .find(|l| l.starts_with("sluice_local_generated{model=\"all-minilm-l6-v2\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classifier_built_against_0_1_0_uploads_and_runs() {
    let gw = TestGateway::start(FAKES).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    upload(&gw, &admin, "classify", V0_1_0).await;
    let hard = gw
        .post("/v1/chat/completions", &member, ask("auto", "a hard one"))
        .await;
    assert_eq!(hard.status(), 200);
    assert_eq!(hard.headers()["x-sluice-tier"], "complex");
    assert_eq!(hard.headers()["x-sluice-deployment"], "fake-large");
    let easy = gw
        .post("/v1/chat/completions", &member, ask("auto", "an easy one"))
        .await;
    assert_eq!(easy.headers()["x-sluice-tier"], "simple");
    // The tenant's version decided, without a fallback; it does not read an embedding, so none is missed.
    for trail in trails(&gw, &admin).await {
        assert!(
            trail.starts_with("classify=sha256:") && !trail.contains('!') && !trail.contains('~'),
            "{trail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_embedder_the_builtin_classifier_decides_on_structure_and_the_trail_says_so() {
    let gw = TestGateway::start(FAKES).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    let resp = gw
        .post("/v1/chat/completions", &member, ask("auto", "hello there"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-tier"], "simple");
    let trails = trails(&gw, &admin).await;
    assert_eq!(trails.len(), 1);
    let classify = trails[0].split(' ').next().unwrap();
    assert!(
        classify.starts_with("classify=builtin:sha256:") && classify.ends_with("~no-embedding"),
        "{}",
        trails[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_is_made_only_when_a_classifier_reads_it() {
    let Some(dir) = models_dir() else { return };
    let gw = TestGateway::start(&with_embedder(&dir)).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    let before = embedded(&gw).await;
    // A named model: no classifier runs, nothing is embedded.
    let named = gw
        .post(
            "/v1/chat/completions",
            &member,
            ask("fake-small", "Prove that e is irrational."),
        )
        .await;
    assert_eq!(named.status(), 200);
    assert_eq!(embedded(&gw).await, before, "a named model embeds nothing");
    // `auto`: the built-in classifier reads the embedding, made once.
    let auto = gw
        .post(
            "/v1/chat/completions",
            &member,
            ask("auto", "Prove that e is irrational."),
        )
        .await;
    assert_eq!(auto.status(), 200);
    assert_eq!(embedded(&gw).await, before + 1, "one embedding for `auto`");
    // A tenant classifier that does not read it: nothing is embedded, even for `auto`.
    upload(&gw, &admin, "classify", V0_1_0).await;
    let old = gw
        .post("/v1/chat/completions", &member, ask("auto", "a hard one"))
        .await;
    assert_eq!(old.headers()["x-sluice-tier"], "complex");
    assert_eq!(embedded(&gw).await, before + 1, "a 0.1.0 classifier");
    let trails = trails(&gw, &admin).await;
    assert_eq!(trails.len(), 3);
    assert_eq!(trails[0], "route=config", "no policy ran for a named model");
    assert!(
        trails[1].starts_with("classify=builtin:sha256:") && !trails[1].contains('~'),
        "the built-in classifier had its embedding: {}",
        trails[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_classifier_sees_the_vector_the_embedder_makes() {
    let Some(dir) = models_dir() else { return };
    let gw = TestGateway::start(&with_embedder(&dir)).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    upload(&gw, &admin, "classify", ECHO).await;
    upload(&gw, &admin, "route", ECHO).await;
    let question = "Design a Raft-based replicated key-value store with membership changes.";
    let body = json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": question},
    ]});
    let echo = |part: String| {
        let (gw, member, body) = (&gw, &member, body.clone());
        async move {
            let resp = gw
                .http
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(member)
                .header("x-sluice-meta-part", part)
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, err) = error_of(resp).await;
            assert_eq!(status, 403, "{err}");
            // The reason, then ` (request id ...)`.
            let message = err["message"].as_str().unwrap();
            message
                .rsplit_once(" (request id ")
                .map_or(message, |(reason, _)| reason)
                .to_owned()
        }
    };
    let direct = LocalModels::default()
        .embedder(&dir, "all-minilm-l6-v2", QueueLimits::default())
        .unwrap();
    let expected = direct
        .embed(
            "t",
            vec![question.to_owned()],
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap()
        .remove(0)
        .vector;
    assert_eq!(
        echo("digest".to_owned()).await,
        format!("sha256:{}", direct.digest)
    );
    assert_eq!(echo("dims".to_owned()).await, expected.len().to_string());
    let mut seen = Vec::new();
    for part in 0..expected.len().div_ceil(32) {
        let hex = echo(part.to_string()).await;
        assert_eq!(hex.len() % 8, 0, "{hex}");
        for i in (0..hex.len()).step_by(8) {
            seen.push(f32::from_bits(
                u32::from_str_radix(&hex[i..i + 8], 16).unwrap(),
            ));
        }
    }
    assert_eq!(seen.len(), expected.len());
    let dot: f64 = seen
        .iter()
        .zip(&expected)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let cosine = dot / (norm(&seen) * norm(&expected));
    assert!((cosine - 1.0).abs() < 1e-9, "cosine {cosine}");
    assert_eq!(seen, expected, "bit for bit");
}

/// Floors under the built-in classifier's held-out agreement, set a little below what `sluice route eval
/// policies/classifier/data/prompts.jsonl --split heldout` measures (95.5% and 90.2%), so a regression
/// fails.
const FLOOR_SIMPLE: f64 = 0.93;
const FLOOR_COMPLEX: f64 = 0.88;
/// The structural fallback's floors, without an embedding (measured: 95.1% and 83.2%).
const FALLBACK_FLOOR_SIMPLE: f64 = 0.93;
const FALLBACK_FLOOR_COMPLEX: f64 = 0.81;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_classifier_keeps_its_held_out_agreement() {
    let Some(dir) = models_dir() else { return };
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/classifier/data/prompts.jsonl"
    ))
    .unwrap();
    let rows = learn::load(&corpus, Some("heldout")).unwrap();
    assert!(rows.len() >= 200, "{} held-out rows", rows.len());
    let embedder = LocalModels::default()
        .embedder(&dir, "all-minilm-l6-v2", QueueLimits::default())
        .unwrap();
    let embeddings = learn::embed(&rows, &embedder).await.unwrap();
    let setup = learn::Setup {
        classifier: builtin::CLASSIFIER,
        router: builtin::ROUTER,
        catalog: learn::reference_catalog(),
    };
    let with = learn::evaluate(&rows, &embeddings, &setup, &[]).unwrap();
    assert_eq!(with.failed, 0, "{:?}", with.first_failure);
    assert_eq!(with.by.get("embedding"), Some(&rows.len()), "{:?}", with.by);
    let sheet = &with.sheets[0];
    assert!(
        sheet.agreement(Tier::Simple) >= FLOOR_SIMPLE
            && sheet.agreement(Tier::Complex) >= FLOOR_COMPLEX,
        "{with}"
    );
    assert!(sheet.cost_micro_usd < sheet.all_complex_micro_usd, "{with}");
    let none = vec![None; rows.len()];
    let without = learn::evaluate(&rows, &none, &setup, &[]).unwrap();
    assert_eq!(without.by.get("structural"), Some(&rows.len()));
    let sheet = &without.sheets[0];
    assert!(
        sheet.agreement(Tier::Simple) >= FALLBACK_FLOOR_SIMPLE
            && sheet.agreement(Tier::Complex) >= FALLBACK_FLOOR_COMPLEX,
        "{without}"
    );
}
