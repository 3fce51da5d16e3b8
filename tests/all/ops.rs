//! Operations: health, readiness, metrics, graceful shutdown, panics, reload.

use std::time::Duration;

use futures_util::StreamExt;

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = TestGateway::start("").await;
    let h = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = gw.http.get(gw.url("/nope")).send().await.unwrap();
    let _ = gw
        .post("/v1/chat/completions", "slk_x", chat_body("m"))
        .await;
    let m = gw
        .http
        .get(gw.url("/metrics"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = m.text().await.unwrap();
    assert!(
        text.contains("sluice_requests_total{tenant=\"\",route=\"healthz\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sluice_errors_total{code=\"not_found\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sluice_phase_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams() {
    let up = Upstream::stream(&["a ", "b ", "c ", "d ", "e"], Duration::from_millis(100)).await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let mut body = chat_body("small");
    body["stream"] = true.into();
    let resp = gw.post("/v1/chat/completions", &key, body).await;
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let app = gw.app.clone();
    let base = gw.base.clone();
    let stopping = tokio::spawn(gw.stop());
    // Draining: readiness is false while the stream finishes.
    for _ in 0..100 {
        if app.is_draining() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(app.is_draining());
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.expect("the stream is not cut by shutdown"));
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    stopping.await.unwrap();
    // New connections are refused once stopped.
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    assert_eq!(up.completed_streams(), 1);
}

#[tokio::test]
async fn a_panicking_request_is_a_500_and_the_gateway_keeps_serving() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "[[providers]]\nname = \"boom\"\nkind = \"fake\"\npanic = true\n[[deployments]]\nname = \"boom\"\nprovider = \"boom\"\nmodel = \"b\"\n{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("boom"))
        .await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, err) = error_of(resp).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (500, "internal"));
    assert!(err["message"].as_str().unwrap().contains(&rid));
    assert!(
        !err["message"].as_str().unwrap().contains("scripted panic"),
        "panic detail stays in the log"
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
    let m = gw.metrics_text().await;
    assert!(m.contains("sluice_panics_total 1"), "{m}");
}

#[tokio::test]
async fn reload_swaps_routing_and_rejects_invalid_configs() {
    let a = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("a", &a.url, ""),
        deployment("small", "a", "m")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("bigger"))
            .await
            .status(),
        404
    );

    let original = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        format!("{original}\n{}", deployment("bigger", "a", "m2")),
    )
    .unwrap();
    gw.app.reload_from_source().unwrap();
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("bigger"))
            .await
            .status(),
        200
    );

    // A typo: rejected, and the previous snapshot keeps serving.
    std::fs::write(
        &gw.config_path,
        format!("{original}\n[[deployments]]\nname = \"x\"\nprovidr = \"a\"\n"),
    )
    .unwrap();
    let err = gw.app.reload_from_source().unwrap_err();
    assert!(err.contains("providr"), "{err}");
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("bigger"))
            .await
            .status(),
        200
    );
    let m = gw.metrics_text().await;
    assert!(
        m.contains("sluice_config_reloads_total{code=\"invalid\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sluice_config_reloads_total{code=\"ok\"} 1"),
        "{m}"
    );
}
