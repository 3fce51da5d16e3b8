//! `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`: pass-through, streaming, failover, enrichment.

use std::time::Duration;

use futures_util::StreamExt;

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

#[tokio::test]
async fn chat_passes_through_with_upstream_model_and_enrichment() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "small-model")
    ))
    .await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let mut body = chat_body("small");
    body["seed"] = 7.into();
    body["response_format"] = serde_json::json!({"type": "json_object"});
    body["tools"] =
        serde_json::json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-request-id", "client-req-1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-secret-client-header", "must-not-leak")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-req-1");
    assert_eq!(resp.headers()["x-sluice-deployment"], "small");
    assert_eq!(resp.headers()["x-sluice-tier"], "simple");
    assert_eq!(resp.headers()["x-sluice-cache"], "bypass");
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Hello from upstream"
    );

    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.body["model"], "small-model",
        "the deployment's upstream model is sent"
    );
    assert_eq!(r.body["seed"], 7, "unknown OpenAI parameters pass through");
    assert_eq!(r.body["response_format"]["type"], "json_object");
    assert_eq!(r.body["tools"][0]["function"]["name"], "f");
    assert_eq!(r.headers["x-request-id"], "client-req-1");
    assert_eq!(r.headers["x-sluice-tenant"], tenant.as_str());
    let tp = r.headers["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the client's trace continues: {tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "with a new span id");
    assert!(
        r.headers.get("x-secret-client-header").is_none(),
        "client headers are not forwarded"
    );
    assert!(
        r.headers.get("authorization").is_none(),
        "the tenant key never goes upstream"
    );
}

#[tokio::test]
async fn streaming_is_passed_through_chunk_by_chunk() {
    let up = Upstream::stream(&["one ", "two ", "three"], Duration::from_millis(30)).await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "small-model")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let mut body = chat_body("small");
    body["stream"] = true.into();
    let resp = gw.post("/v1/chat/completions", &key, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-sluice-deployment"], "small");
    // Chunks arrive as the upstream sends them, not all at the end.
    let mut stream = resp.bytes_stream();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    let start = std::time::Instant::now();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        arrivals.push(start.elapsed());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        arrivals.len() >= 3,
        "several separate chunks, got {}",
        arrivals.len()
    );
    assert!(
        arrivals.last().unwrap().saturating_sub(arrivals[0]) >= Duration::from_millis(60),
        "chunks spread over the upstream's pacing: {arrivals:?}"
    );
    let contents: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(contents, "one two three");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // The gateway asked for usage, but the client did not: the usage-only chunk is withheld.
    assert_eq!(
        up.requests()[0].body["stream_options"]["include_usage"],
        true
    );
    assert!(!text.contains("\"usage\""), "{text}");
}

#[tokio::test]
async fn stream_usage_reaches_clients_that_ask() {
    let up = Upstream::stream(&["a", "b"], Duration::ZERO).await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "small-model")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let mut body = chat_body("small");
    body["stream"] = true.into();
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", &key, body)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"usage\":{\"completion_tokens\":2") || text.contains("\"prompt_tokens\":7"),
        "{text}"
    );
}

#[tokio::test]
async fn logical_model_fails_over_on_5xx_and_connect_errors() {
    let broken = Upstream::status(503).await;
    let healthy = Upstream::ok().await;
    // A port nobody listens on: connection refused.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let gw = TestGateway::start(&format!(
        "{}{}{}{}{}{}[[models]]\nname = \"chat\"\ndeployments = [\"a\", \"b\", \"c\"]\n",
        openai_provider("refused", &refused, ""),
        openai_provider("broken", &broken.url, ""),
        openai_provider("healthy", &healthy.url, ""),
        deployment("a", "refused", "m"),
        deployment("b", "broken", "m"),
        deployment("c", "healthy", "m"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("chat"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "c");
    assert_eq!(broken.hits(), 1);
    assert_eq!(healthy.hits(), 1);
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("sluice_upstream_requests_total{deployment=\"a\",outcome=\"connect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_upstream_requests_total{deployment=\"b\",outcome=\"status\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn flaky_upstream_is_retried_on_the_next_deployment_only() {
    let flaky = Upstream::flaky(1).await;
    let gw = TestGateway::start(&format!(
        "{}{}{}[[models]]\nname = \"chat\"\ndeployments = [\"first\", \"second\"]\n",
        openai_provider("flaky", &flaky.url, ""),
        deployment("first", "flaky", "m1"),
        deployment("second", "flaky", "m2"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("chat"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "second");
    let models: Vec<_> = flaky
        .requests()
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(
        models,
        vec![serde_json::json!("m1"), serde_json::json!("m2")]
    );
}

#[tokio::test]
async fn exhausted_fallbacks_give_502_and_timeouts_504() {
    let broken = Upstream::status(500).await;
    let slow = Upstream::slow(Duration::from_secs(5)).await;
    let gw = TestGateway::start(&format!(
        "{}{}{}{}",
        openai_provider("broken", &broken.url, ""),
        openai_provider("slow", &slow.url, "first_byte_timeout_ms = 200"),
        deployment("broken", "broken", "m"),
        deployment("slow", "slow", "m"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("broken"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (502, "upstream_error")
    );
    assert!(
        !err["message"].as_str().unwrap().contains("upstream says"),
        "upstream detail stays in the log"
    );
    let started = std::time::Instant::now();
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("slow"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (504, "upstream_timeout")
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the first-byte timeout cut the wait"
    );
}

#[tokio::test]
async fn upstream_400_is_the_clients_error_and_garbage_is_502() {
    let bad = Upstream::status(400).await;
    let garbage = Upstream::start(crate::support::upstream::Behavior::Garbage).await;
    let gw = TestGateway::start(&format!(
        "{}{}{}{}",
        openai_provider("bad", &bad.url, ""),
        openai_provider("garbage", &garbage.url, ""),
        deployment("bad", "bad", "m"),
        deployment("garbage", "garbage", "m"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("bad"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    // The upstream's own message is not passed on: it may quote the prompt.
    let message = err["message"].as_str().unwrap();
    assert!(!message.contains("upstream says"), "{message}");
    assert!(message.contains("HTTP 400"), "{message}");
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("garbage"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (502, "upstream_error")
    );
}

#[tokio::test]
async fn reset_mid_stream_gives_an_sse_error_event_and_a_clean_end() {
    let up = Upstream::reset_mid_stream(3).await;
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
    assert_eq!(resp.status(), 200);
    // `text()` fails if the body does not end cleanly (chunked framing intact).
    let text = resp.text().await.expect("the client stream ends cleanly");
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events.len(),
        4,
        "three upstream chunks then the error: {text}"
    );
    let last: serde_json::Value =
        serde_json::from_str(events[3].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error");
    assert!(
        !text.contains("[DONE]"),
        "a broken answer is not marked done"
    );
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream_request() {
    let pieces: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let up = Upstream::stream(&pieces, Duration::from_millis(20)).await;
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
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    // The upstream notices once the gateway drops its side; poll instead of sleeping a fixed time.
    for _ in 0..200 {
        if up.cancelled_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        up.cancelled_streams(),
        1,
        "the upstream stream was cancelled"
    );
    assert_eq!(up.completed_streams(), 0);
    for _ in 0..200 {
        let m = gw.metrics_text().await;
        if m.contains("sluice_open_streams 0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway still counts the stream as open");
}

#[tokio::test]
async fn embeddings_and_models() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}[[deployments]]\nname = \"embed\"\nprovider = \"up\"\nmodel = \"text-embed\"\nkind = \"embeddings\"\n",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let resp = gw
        .post(
            "/v1/embeddings",
            &key,
            serde_json::json!({"model": "embed", "input": ["a", "b"], "dimensions": 3}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "embed");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"][2], 0.3);
    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/v1/embeddings");
    assert_eq!(seen.body["model"], "text-embed");
    assert_eq!(seen.body["dimensions"], 3);
    // A chat deployment is not an embeddings model.
    let (status, err) = error_of(
        gw.post(
            "/v1/embeddings",
            &key,
            serde_json::json!({"model": "small", "input": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (404, "model_not_found")
    );

    let models: serde_json::Value = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["small", "embed"]);
    let anon = gw.http.get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
}

#[tokio::test]
async fn fake_provider_from_config_answers_streams_and_fails_on_script() {
    let gw = TestGateway::start(
        r#"
[[providers]]
name = "fake"
kind = "fake"
reply = "scripted answer here"
[[providers]]
name = "fake-down"
kind = "fake"
status = 503
[[providers]]
name = "fake-reset"
kind = "fake"
reset_after_chunks = 2
[[deployments]]
name = "ok"
provider = "fake"
model = "f1"
[[deployments]]
name = "down"
provider = "fake-down"
model = "f2"
[[deployments]]
name = "reset"
provider = "fake-reset"
model = "f3"
[[deployments]]
name = "emb"
provider = "fake"
model = "e1"
kind = "embeddings"
[[models]]
name = "resilient"
deployments = ["down", "ok"]
"#,
    )
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let v: serde_json::Value = gw
        .post("/v1/chat/completions", &key, chat_body("ok"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "scripted answer here"
    );
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let mut body = chat_body("ok");
    body["stream"] = true.into();
    let text = gw
        .post("/v1/chat/completions", &key, body.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"content\":\"scripted \""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));

    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("resilient"))
        .await;
    assert_eq!(
        resp.headers()["x-sluice-deployment"],
        "ok",
        "a scripted 503 fails over"
    );

    body["model"] = "reset".into();
    let text = gw
        .post("/v1/chat/completions", &key, body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"upstream_error\""), "{text}");

    let e: serde_json::Value = gw
        .post(
            "/v1/embeddings",
            &key,
            serde_json::json!({"model": "emb", "input": "x"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["data"][0]["embedding"].as_array().unwrap().len(), 16);
}

#[tokio::test]
async fn anthropic_provider_translates_both_ways_streaming_included() {
    let up = Upstream::start(crate::support::upstream::Behavior::Anthropic).await;
    let gw = TestGateway::start(&format!(
        "[[providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"ANTHROPIC_TEST_KEY\"\n{}",
        up.url,
        deployment("claude", "claude", "claude-test-1"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let body = serde_json::json!({
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello in French"}
        ],
        "max_tokens": 50,
        "stop": "\n\n"
    });
    let resp = gw.post("/v1/chat/completions", &key, body.clone()).await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Bonjour from Claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 21);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-test");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.body["model"], "claude-test-1");
    assert_eq!(seen.body["system"], "Be terse.");
    assert_eq!(seen.body["max_tokens"], 50);
    assert_eq!(seen.body["stop_sequences"], serde_json::json!(["\n\n"]));
    assert_eq!(seen.body["messages"].as_array().unwrap().len(), 1);

    let mut stream_body = body;
    stream_body["stream"] = true.into();
    stream_body["stream_options"] = serde_json::json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", &key, stream_body)
        .await
        .text()
        .await
        .unwrap();
    let chunks: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Bonjour from Claude");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(up.requests()[1].body["stream"], true);
}

#[tokio::test]
async fn deployment_concurrency_cap_spills_over_or_answers_429() {
    let slow = Upstream::slow(Duration::from_millis(600)).await;
    let other = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}max_concurrent = 1\n{}[[models]]\nname = \"chat\"\ndeployments = [\"capped\", \"spare\"]\n",
        openai_provider("slow", &slow.url, ""),
        openai_provider("other", &other.url, ""),
        deployment("capped", "slow", "m"),
        deployment("spare", "other", "m"),
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let first = {
        let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat/completions"), key.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&chat_body("capped"))
                .send()
                .await
                .unwrap()
        })
    };
    // Wait until the first request holds the slot (the slow upstream saw it).
    for _ in 0..200 {
        if slow.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(slow.hits(), 1);
    let spilled = gw
        .post("/v1/chat/completions", &key, chat_body("chat"))
        .await;
    assert_eq!(
        spilled.headers()["x-sluice-deployment"],
        "spare",
        "the full deployment is skipped"
    );
    let limited = gw
        .post("/v1/chat/completions", &key, chat_body("capped"))
        .await;
    assert_eq!(limited.headers()["retry-after"], "1");
    let (status, err) = error_of(limited).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (429, "rate_limited")
    );
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(
        slow.hits(),
        1,
        "saturated requests never reached the capped upstream"
    );
    // The slot is free again.
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("capped"))
            .await
            .status(),
        200
    );
}
