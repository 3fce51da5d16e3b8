//! Compatibility with the official `openai` Python package (installed by `.ci/run`).

use crate::support::TestGateway;

const FAKE_ROUTING: &str = r#"
[[providers]]
name = "fake"
kind = "fake"
[[providers]]
name = "fake-reset"
kind = "fake"
reset_after_chunks = 2
[[deployments]]
name = "fake-small"
provider = "fake"
model = "fake-small-1"
tier = "simple"
[[deployments]]
name = "fake-reset"
provider = "fake-reset"
model = "fake-reset-1"
[[deployments]]
name = "fake-embed"
provider = "fake"
model = "fake-embedding-1"
kind = "embeddings"
"#;

/// Whether the `openai` package can be imported; without it a test skips, unless CI requires it.
fn python_has_openai() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_COMPAT").is_none(),
            "SLUICE_REQUIRE_COMPAT is set but python3 cannot import openai"
        );
        eprintln!(
            "SKIPPED: python3 cannot import openai (pip install -r tests/compat/requirements.txt)"
        );
    }
    found
}

/// Runs `tests/compat/<script>` against the gateway with a tenant key; it prints OK when every check held.
async fn run_script(script: &str, gw: &TestGateway) {
    let (_, _, key) = gw.tenant_key("acme").await;
    let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .args([path.as_str(), gw.base.as_str(), key.as_str()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), "OK");
}

#[tokio::test]
async fn official_openai_python_client() {
    if !python_has_openai() {
        return;
    }
    let gw = TestGateway::start(FAKE_ROUTING).await;
    run_script("openai_client.py", &gw).await;
}

#[tokio::test]
async fn official_openai_python_client_streams_a_local_completion() {
    if !python_has_openai() {
        return;
    }
    let Some(dir) = crate::local::models_dir() else {
        return;
    };
    let gw = TestGateway::start(&crate::local::routing(&dir, "")).await;
    run_script("openai_local.py", &gw).await;
}

#[tokio::test]
async fn official_openai_python_client_reads_cache_hits_and_a_replayed_stream() {
    if !python_has_openai() {
        return;
    }
    let Some(dir) = crate::local::models_dir() else {
        return;
    };
    let gw = TestGateway::start_changed(&crate::local::routing(&dir, ""), |c| {
        c.cache.enabled = true;
    })
    .await;
    run_script("openai_cache.py", &gw).await;
}
