//! The built-in Wasm policies behind `model: "auto"`: the classifier's tier and the router's choice show in
//! the response headers and in the audit entry.

use serde_json::{Value, json};

use crate::support::TestGateway;

const ROUTING: &str = r#"
[[providers]]
name = "fake"
kind = "fake"

[[deployments]]
name = "fake-small"
provider = "fake"
model = "small-1"
tier = "simple"
region = "eu"
price = { input_per_mtok = 0.10, output_per_mtok = 0.40 }

[[deployments]]
name = "fake-large"
provider = "fake"
model = "large-1"
tier = "complex"
region = "eu"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
"#;

const HARD: &str = "Prove that the integral of x^2 from 0 to 3 equals 9, step by step. Then write a Rust \
    function `fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64` that must use exactly 1000 \
    trapezoids, and do not use any crate. Format the answer as Markdown with ``` code blocks.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sends_simple_and_complex_prompts_to_different_deployments() {
    let gw = TestGateway::start(ROUTING).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let ask =
        |text: &str| json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    let simple = gw
        .post(
            "/v1/chat/completions",
            &key,
            ask("What is the capital of France?"),
        )
        .await;
    assert_eq!(simple.status(), 200);
    assert_eq!(simple.headers()["x-sluice-deployment"], "fake-small");
    assert_eq!(simple.headers()["x-sluice-tier"], "simple");
    let complex = gw.post("/v1/chat/completions", &key, ask(HARD)).await;
    assert_eq!(complex.status(), 200);
    assert_eq!(complex.headers()["x-sluice-deployment"], "fake-large");
    assert_eq!(complex.headers()["x-sluice-tier"], "complex");

    // The entries say the Wasm policies decided.
    let admin: Value = gw
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(json!({"name": "a", "role": "admin"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries: Value = gw
        .get_json(
            "/v1/audit/entries?limit=100",
            admin["key"].as_str().unwrap(),
        )
        .await;
    let chats: Vec<&Value> = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"] == "chat")
        .collect();
    assert_eq!(chats.len(), 2);
    assert!(
        chats.iter().all(|f| f["policy"] == "builtin-wasm"),
        "{chats:?}"
    );
    assert_eq!(chats[1]["deployment"], "fake-large");

    // A named model is not re-routed.
    let named = gw
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "fake-small", "messages": [{"role": "user", "content": HARD}]}),
        )
        .await;
    assert_eq!(named.headers()["x-sluice-deployment"], "fake-small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_respects_a_region_in_the_metadata() {
    let routing = format!(
        "{ROUTING}\n[[deployments]]\nname = \"us-small\"\nprovider = \"fake\"\nmodel = \"s\"\ntier = \"simple\"\n\
         region = \"us\"\nprice = {{ input_per_mtok = 0.01, output_per_mtok = 0.01 }}\n"
    );
    let gw = TestGateway::start(&routing).await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let cheapest = gw.post("/v1/chat/completions", &key, body.clone()).await;
    assert_eq!(cheapest.headers()["x-sluice-deployment"], "us-small");
    let eu = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-sluice-meta-region", "eu")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(eu.status(), 200);
    assert_eq!(eu.headers()["x-sluice-deployment"], "fake-small");
}
