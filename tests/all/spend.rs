//! Spend governance over real HTTP: budgets that never overshoot under a burst, `max_tokens` clamping, cut
//! streams billed for what they generated, a crash with a request in flight (charged its budget cover),
//! rate limits, concurrency limits, and the budget, limits and usage endpoints.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::upstream::{Behavior, Upstream};
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

/// A deployment whose answers (the fake upstream's usage: 11 prompt, 3 completion tokens) cost exactly what
/// a `max_tokens: 3` request reserves: prompt tokens are free, output costs $1,000 per Mtok.
fn pricey(url: &str) -> String {
    format!(
        "{}[[deployments]]\nname = \"pricey\"\nprovider = \"up\"\nmodel = \"m\"\n\
         price = {{ input_per_mtok = 0.0, output_per_mtok = 1000.0 }}\n",
        openai_provider("up", url, "")
    )
}

/// A gateway with one chat deployment, `small` ($1 in, $2 out per Mtok), on `up`.
async fn small_gateway(up: &Upstream) -> TestGateway {
    let routing = format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    TestGateway::start(&routing).await
}

/// Sets a tenant's budget through the operator API.
async fn set_budget(gw: &TestGateway, tenant: &str, body: Value) {
    let resp = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/budget"),
            Some(body),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

async fn admin_key(gw: &TestGateway, tenant: &str, role: &str) -> String {
    let k: Value = gw
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            Some(json!({"name": role, "role": role})),
        )
        .await
        .json()
        .await
        .unwrap();
    k["key"].as_str().unwrap().to_owned()
}

async fn budget(gw: &TestGateway, key: &str) -> Value {
    gw.get_json("/v1/budget", key).await
}

/// The sum of the costs recorded in the tenant's audit log (the durable record of spend).
async fn audited_spend(gw: &TestGateway, admin: &str) -> u64 {
    let export: Value = gw.get_json("/v1/audit/export", admin).await;
    export["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fields"]["cost_micro_usd"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_concurrent_requests_never_overshoots_the_budget() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&pricey(&up.url)).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let admin = admin_key(&gw, &tenant, "admin").await;
    // Each request reserves, and costs, 3 output tokens at $1,000/Mtok: 3,000 micro-USD. The cap admits K.
    const K: u64 = 137;
    set_budget(&gw, &tenant, json!({"daily_usd": K as f64 * 0.003})).await;
    let body = json!({"model": "pricey", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (http, url, key, body) = (
                gw.http.clone(),
                gw.url("/v1/chat/completions"),
                key.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let resp = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => admitted += 1,
            402 => {
                assert_eq!(body["error"]["code"], "budget_exceeded");
                assert_eq!(body["error"]["type"], "insufficient_quota");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(
        admitted, K,
        "exactly the requests the cap pays for are admitted"
    );
    // The budget endpoint tells the truth, and it agrees with the audit log.
    let b = budget(&gw, &key).await;
    let daily = &b["windows"][0];
    assert_eq!(daily["window"], "daily");
    assert_eq!(daily["cap_micro_usd"], K * 3000);
    assert_eq!(daily["spent_micro_usd"], K * 3000);
    assert_eq!(daily["reserved_micro_usd"], 0);
    assert_eq!(daily["remaining_micro_usd"], 0);
    assert_eq!(audited_spend(&gw, &admin).await, K * 3000);
    assert_eq!(
        up.hits() as u64,
        K,
        "refused requests never reach the upstream"
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "sluice_admission_rejections_total{{reason=\"budget\"}} {}",
            1000 - K
        )),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("admission"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_is_clamped_to_the_budget_and_sent_upstream() {
    let up = Upstream::ok().await;
    let gw = small_gateway(&up).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    // $1 in, $2 out per Mtok. "Say hello" is bounded by 9 bytes + 8 per message = 17 prompt tokens: 17
    // micro-USD. A 100 micro-USD cap leaves 83 for output: 41 tokens.
    set_budget(
        &gw,
        &tenant,
        json!({"daily_usd": 0.0001, "monthly_usd": 10.0}),
    )
    .await;
    let mut body = chat_body("small");
    body["max_tokens"] = json!(1000);
    let first = gw.post("/v1/chat/completions", &key, body).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["usage"]["cost_micro_usd"], 17,
        "the cost is in the response's usage"
    );
    assert_eq!(first["usage"]["prompt_tokens"], 11);
    // 17 were spent (11 prompt + 3 completion tokens at $1 and $2): (100 - 17 - 17) / 2 = 33 output tokens.
    let mut body = chat_body("small");
    body["max_completion_tokens"] = json!(500);
    assert_eq!(
        gw.post("/v1/chat/completions", &key, body).await.status(),
        200
    );
    let seen = up.requests();
    assert_eq!(seen[0].body["max_tokens"], 41);
    assert_eq!(seen[1].body["max_completion_tokens"], 33);
    assert!(seen[1].body.get("max_tokens").is_none());

    // No max_tokens and plenty of budget: the deployment's default output cap is requested, so the
    // reservation is a true bound.
    let (rich, _, rich_key) = gw.tenant_key("rich").await;
    set_budget(&gw, &rich, json!({"monthly_usd": 100.0})).await;
    assert_eq!(
        gw.post("/v1/chat/completions", &rich_key, chat_body("small"))
            .await
            .status(),
        200
    );
    assert_eq!(up.requests()[2].body["max_tokens"], 4096);
    // Without a budget the request passes through untouched.
    let (_, _, free_key) = gw.tenant_key("free").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &free_key, chat_body("small"))
            .await
            .status(),
        200
    );
    assert!(up.requests()[3].body.get("max_tokens").is_none());
    // A stream whose client asked for usage gets the cost in the usage chunk (7 + 3 tokens: 7 + 6).
    let mut body = chat_body("small");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", &free_key, body)
        .await
        .text()
        .await
        .unwrap();
    let usage_event = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage_event["usage"]["cost_micro_usd"], 13, "{text}");

    // A budget that cannot pay for the prompt: 402 with the numbers and the reset time.
    let (poor, _, poor_key) = gw.tenant_key("poor").await;
    set_budget(&gw, &poor, json!({"daily_usd": 0.00001})).await;
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &poor_key, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(status, 402);
    assert_eq!(err["code"], "budget_exceeded");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the tenant's daily budget has $0.000010 left and this request needs at least $0.000017; the window resets at "),
        "{msg}"
    );
    assert_eq!(
        up.hits(),
        5,
        "the refused request never reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_client_is_billed_for_what_it_generated() {
    let pieces = ["abcd"; 40];
    let up = Upstream::stream(&pieces, Duration::from_millis(40)).await;
    let gw = small_gateway(&up).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let admin = admin_key(&gw, &tenant, "admin").await;
    set_budget(&gw, &tenant, json!({"daily_usd": 1.0})).await;
    let mut body = chat_body("small");
    body["stream"] = json!(true);
    let mut resp = gw.post("/v1/chat/completions", &key, body).await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut seen = String::new();
    while seen.matches("abcd").count() < 3 {
        let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(resp);
    // The gateway settles in the background once the upstream request is cancelled.
    let mut entry = Value::Null;
    for _ in 0..200 {
        let entries: Value = gw.get_json("/v1/audit/entries?limit=1000", &admin).await;
        if let Some(e) = entries["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["fields"]["request_id"] == request_id.as_str())
        {
            entry = e["fields"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entry["error_code"], "client_disconnected", "{entry}");
    assert_eq!(entry["subject"], "usage:estimated");
    // The prompt's upper bound, and at least the 12 bytes of text the client saw, at most what was sent.
    assert_eq!(entry["prompt_tokens"], 17);
    let completion = entry["completion_tokens"].as_u64().unwrap();
    assert!((12..160).contains(&completion), "{completion}");
    let cost = entry["cost_micro_usd"].as_u64().unwrap();
    assert_eq!(cost, 17 + 2 * completion);
    let b = budget(&gw, &key).await;
    assert_eq!(b["windows"][0]["spent_micro_usd"], cost);
    assert_eq!(b["windows"][0]["reserved_micro_usd"], 0);
    assert!(up.cancelled_streams() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_ratelimit_headers() {
    let up = Upstream::ok().await;
    let gw = small_gateway(&up).await;
    let (tenant, key_id, key) = gw.tenant_key("acme").await;
    let resp = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/limits"),
            Some(json!({"requests_per_minute": 600, "tokens_per_minute": 100000, "max_concurrent": 32,
                        "endpoints": {"embeddings": {"requests_per_minute": 1}}})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["requests_per_minute"], 600);
    assert_eq!(doc["endpoints"]["embeddings"]["requests_per_minute"], 1);
    let resp = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/keys/{key_id}/limits"),
            Some(json!({"requests_per_minute": 2})),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let ok = gw
        .post("/v1/chat/completions", &key, chat_body("small"))
        .await;
    assert_eq!(ok.status(), 200);
    let h = ok.headers();
    assert_eq!(
        h["x-ratelimit-limit-requests"], "2",
        "the tightest limit is reported"
    );
    assert_eq!(h["x-ratelimit-remaining-requests"], "1");
    assert_eq!(h["x-ratelimit-reset-requests"], "30s");
    assert_eq!(h["x-ratelimit-limit-tokens"], "100000");
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
    let refused = gw
        .post("/v1/chat/completions", &key, chat_body("small"))
        .await;
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(refused.headers()["x-ratelimit-reset-requests"], "1m0s");
    let (status, err) = error_of(refused).await;
    assert_eq!(status, 429);
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["type"], "rate_limit_error");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("rate limit reached: the key allows 2 requests per minute")
    );

    // Another key of the tenant is not held back by the first key's limit, only by the tenant's.
    let other = admin_key(&gw, &tenant, "member").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &other, chat_body("small"))
            .await
            .status(),
        200
    );
    assert_eq!(up.hits(), 3);
    // The embeddings endpoint has its own limit of one per minute; the rejection names the scope.
    let routing_emb = json!({"model": "small", "input": "x"});
    let first = gw.post("/v1/embeddings", &other, routing_emb.clone()).await;
    assert_ne!(first.status(), 429);
    let (status, err) = error_of(gw.post("/v1/embeddings", &other, routing_emb).await).await;
    assert_eq!(status, 429);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("the endpoint allows 1 requests per minute")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_under_a_burst() {
    let up = Upstream::slow(Duration::from_millis(300)).await;
    let gw = small_gateway(&up).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    gw.admin(
        Method::PUT,
        &format!("/admin/v1/tenants/{tenant}/limits"),
        Some(json!({"max_concurrent": 4})),
    )
    .await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat/completions"), key.clone());
            tokio::spawn(async move {
                let resp = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&chat_body("small"))
                    .send()
                    .await
                    .unwrap();
                (
                    resp.status().as_u16(),
                    resp.headers().get("retry-after").cloned(),
                )
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => {}
            (429, retry) => {
                assert_eq!(retry.unwrap(), "1");
                refused += 1;
            }
            (other, _) => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "a burst of 40 against 4 slots refuses some");
    assert!(
        up.max_in_flight() <= 4,
        "the upstream saw {} at once",
        up.max_in_flight()
    );
    assert_eq!(up.hits(), 40 - refused);
    // The slots come back: a later request is admitted.
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_endpoints_validate_and_respect_roles() {
    let up = Upstream::ok().await;
    let gw = small_gateway(&up).await;
    let (tenant, member_id, member) = gw.tenant_key("acme").await;
    let owner = admin_key(&gw, &tenant, "owner").await;
    let admin = admin_key(&gw, &tenant, "admin").await;
    let path = format!("/admin/v1/tenants/{tenant}/budget");
    for (bad, param) in [
        (json!({"daily_usd": -1.0}), "daily_usd"),
        (json!({"monthly_usd": "ten"}), "monthly_usd"),
        (json!({"weekly_usd": 1.0}), ""),
    ] {
        let (status, err) = error_of(gw.admin(Method::PUT, &path, Some(bad.clone())).await).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["code"], "invalid_request");
        if !param.is_empty() {
            assert_eq!(err["param"], param, "{bad}");
        }
    }
    let (status, _) = error_of(
        gw.admin(
            Method::PUT,
            "/admin/v1/tenants/nope/budget",
            Some(json!({"daily_usd": 1.0})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    let (status, err) = error_of(
        gw.admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/limits"),
            Some(json!({"requests_per_minute": 0})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["param"].as_str()),
        (400, Some("requests_per_minute"))
    );
    let (status, err) = error_of(
        gw.admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/limits"),
            Some(json!({"endpoints": {"images": {"max_concurrent": 1}}})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["param"].as_str()),
        (400, Some("endpoints.images"))
    );
    assert_eq!(
        gw.admin(
            Method::PUT,
            &path,
            Some(json!({"daily_usd": 5.0, "monthly_usd": 100.0}))
        )
        .await
        .status(),
        200
    );

    // Any key of the tenant reads the budget; the document shows caps and windows.
    let b = budget(&gw, &member).await;
    assert_eq!(b["tenant_id"], tenant.as_str());
    assert_eq!(b["daily_usd"], 5.0);
    assert_eq!(b["monthly_usd"], 100.0);
    assert_eq!(b["windows"][0]["cap_micro_usd"], 5_000_000);
    assert_eq!(b["windows"][1]["window"], "monthly");
    assert!(
        b["windows"][0]["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z")
    );
    assert_eq!(b["key"]["id"], member_id.as_str());

    // Only an owner sets a key's budget, and only for the tenant's own keys.
    let key_budget = |key: &str, target: &str| {
        gw.http
            .put(gw.url(&format!("/v1/keys/{target}/budget")))
            .bearer_auth(key.to_owned())
            .json(&json!({"daily_usd": 0.00002}))
            .send()
    };
    assert_eq!(key_budget(&admin, &member_id).await.unwrap().status(), 403);
    assert_eq!(key_budget(&owner, &member_id).await.unwrap().status(), 200);
    let (other_tenant, other_key_id, _) = gw.tenant_key("other").await;
    assert_eq!(
        key_budget(&owner, &other_key_id).await.unwrap().status(),
        404
    );
    assert!(!other_tenant.is_empty());
    // The key's cap (20 micro-USD) now binds: one request (17 prompt + up to 1 output token fits), then 402.
    assert_eq!(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await
            .status(),
        200
    );
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(status, 402);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("the key's daily budget")
    );
    // The owner's change is in the tenant's audit log with its values.
    let entries: Value = gw.get_json("/v1/audit/entries?limit=1000", &admin).await;
    let set = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["fields"]["endpoint"] == "keys.budget_set" && e["fields"]["status"] == 200)
        .expect("the change is audited");
    assert_eq!(
        set["fields"]["subject"],
        format!("key:{member_id} daily_micro_usd=20 monthly_micro_usd=none")
    );

    // Usage: admin and owner only, per day and key.
    let usage = gw
        .http
        .get(gw.url("/v1/usage?days=7"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), 403);
    let usage: Value = gw.get_json("/v1/usage?days=7", &admin).await;
    assert_eq!(usage["total"]["requests"], 2, "{usage}");
    assert_eq!(usage["total"]["prompt_tokens"], 11);
    assert_eq!(usage["total"]["cost_micro_usd"], 17);
    let bad = gw
        .http
        .get(gw.url("/v1/usage?days=0"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_with_requests_in_flight_charges_their_cover_at_restart() {
    use crate::cli::{init_on_any_port, spawn_serve};
    let dir = tempfile::tempdir().unwrap();
    let token = init_on_any_port(dir.path());
    let path = dir.path().join("sluice.toml");
    // A priced fake deployment, and a slow one whose requests are still in flight when the gateway is
    // killed.
    let config = std::fs::read_to_string(&path).unwrap()
        + "\n[[providers]]\nname = \"fast\"\nkind = \"fake\"\n\n[[deployments]]\nname = \"fake-small\"\n\
           provider = \"fast\"\nmodel = \"fake-small-1\"\nprice = { input_per_mtok = 0.10, output_per_mtok = 0.40 }\n\
           \n[[providers]]\nname = \"stuck\"\nkind = \"fake\"\nlatency_ms = 600000\n\
           first_byte_timeout_ms = 600000\n\n[[deployments]]\nname = \"stuck\"\nprovider = \"stuck\"\n\
           model = \"stuck-1\"\nprice = { input_per_mtok = 1.0, output_per_mtok = 2.0 }\n";
    std::fs::write(&path, config).unwrap();

    let (mut child, gateway) = spawn_serve(dir.path());
    let client = reqwest::Client::new();
    let admin = |method: Method, p: &str, body: Value| {
        client
            .request(method, format!("{gateway}{p}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let tenant: Value = admin(Method::POST, "/admin/v1/tenants", json!({"name": "acme"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    let key: Value = admin(
        Method::POST,
        &format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"name": "k", "role": "admin"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let resp = admin(
        Method::PUT,
        &format!("/admin/v1/tenants/{tenant}/budget"),
        json!({"daily_usd": 1.0}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let chat = |model: &str, max: u32| {
        client
            .post(format!("{gateway}/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", format!("req-{model}"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": max}))
            .send()
    };
    // One request completes and is settled at its actual cost.
    let done = chat("fake-small", 50).await.unwrap();
    assert_eq!(done.status(), 200);
    let settled = budget_at(&client, &gateway, &key).await["windows"][0]["spent_micro_usd"]
        .as_u64()
        .unwrap();
    assert!(settled > 0);
    // The settled request's cover keeps 8 × 22 micro-USD of margin. Another request is reserved (17 prompt
    // tokens at $1 + 100 output tokens at $2 = 217 micro-USD): the cover cannot hold it, so it is raised to
    // 217 + MIN_REQUESTS × 217 before the request is forwarded. It is still waiting for its upstream when the
    // gateway dies.
    let raised = 217 * (1 + sluice::admission::cover::MIN_REQUESTS);
    let pending = tokio::spawn(chat("stuck", 100));
    let db_url = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let cover = async |db: &sqlx::SqlitePool| {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(SUM(micro_usd), 0) FROM spend_covers")
            .fetch_one(db)
            .await
            .unwrap()
            .cast_unsigned()
    };
    let mut durable = 0;
    for _ in 0..400 {
        durable = cover(&db).await;
        if durable == raised {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        durable, raised,
        "the cover holds the request before it is forwarded"
    );
    db.close().await;
    child.kill().unwrap(); // SIGKILL: nothing settles
    child.wait().unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the client lost its connection"
    );
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    assert_eq!(cover(&db).await, raised, "what the crash left");
    db.close().await;

    let (mut second, gateway) = spawn_serve(dir.path());
    let b = budget_at(&client, &gateway, &key).await;
    assert_eq!(b["daily_usd"], 1.0, "caps survive a restart");
    assert_eq!(
        b["windows"][0]["spent_micro_usd"].as_u64().unwrap(),
        settled + raised,
        "the requests in flight are charged what their cover held: at least their reservations"
    );
    assert_eq!(b["windows"][0]["reserved_micro_usd"], 0);
    // Stored entries (an export would cover only those under the latest checkpoint, signed at most once a
    // second).
    let stored: Value = client
        .get(format!("{gateway}/v1/audit/entries?limit=1000"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries: Vec<&Value> = stored["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["error_code"] == "interrupted")
        .collect();
    assert_eq!(entries.len(), 1, "one entry charges the cover");
    assert_eq!(entries[0]["subject"], "usage:cover");
    assert_eq!(entries[0]["endpoint"], "chat");
    assert_eq!(entries[0]["cost_micro_usd"], raised);
    assert!(
        stored["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["fields"]["request_id"] != "req-stuck"),
        "the interrupted request never got an entry of its own"
    );
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    assert_eq!(cover(&db).await, 0, "the charge emptied the cover");
    // A request raises the cover with a margin again; a graceful stop gives the unused margin back, so the
    // next start has nothing to charge.
    let done = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "fake-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(cover(&db).await > 0, "the margin outlives the request");
    db.close().await;
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &second.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    second.wait().unwrap();
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    assert_eq!(cover(&db).await, 0, "a graceful stop releases the margin");
    db.close().await;
}

async fn budget_at(client: &reqwest::Client, gateway: &str, key: &str) -> Value {
    client
        .get(format!("{gateway}/v1/budget"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_router_moves_to_a_cheaper_deployment_as_the_budget_runs_low() {
    let up = Upstream::ok().await;
    // `large` bills the prompt at $20,000/Mtok: the fake upstream's 11 prompt tokens cost 220,000 micro-USD,
    // and the worst case of a "Say hello" prompt (17 tokens) is 340,000.
    let routing = format!(
        "{}[[deployments]]\nname = \"large\"\nprovider = \"up\"\nmodel = \"l\"\ntier = \"complex\"\n\
         price = {{ input_per_mtok = 20000.0, output_per_mtok = 0.0 }}\n{}\
         [[models]]\nname = \"default\"\ndeployments = [\"large\", \"small\"]\n",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start(&routing).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    set_budget(&gw, &tenant, json!({"daily_usd": 1.0})).await;
    let mut served = Vec::new();
    for _ in 0..6 {
        let mut body = chat_body("default");
        body["max_tokens"] = json!(3);
        let resp = gw.post("/v1/chat/completions", &key, body).await;
        assert_eq!(resp.status(), 200);
        served.push(
            resp.headers()["x-sluice-deployment"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // 1,000,000 left, then 780,000, 560,000 and 340,000 cover `large`; 120,000 does not.
    assert_eq!(
        served,
        ["large", "large", "large", "large", "small", "small"]
    );
    let b = budget(&gw, &key).await;
    assert_eq!(b["windows"][0]["spent_micro_usd"], 4 * 220_000 + 2 * 17);
}

/// A database from before budget covers: the reservations a crash left behind become covers, so the next
/// start charges them.
#[tokio::test]
async fn reservations_left_by_an_older_version_become_covers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut older = sqlx::migrate!("host/migrations/sqlite");
    older.migrations = older
        .migrations
        .iter()
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    older.run(&pool).await.unwrap();
    for (id, key, endpoint, micro) in [
        ("r1", "k1", "chat", 100),
        ("r2", "k1", "chat", 250),
        ("r3", "k1", "embeddings", 7),
        ("r4", "k2", "chat", 40),
    ] {
        sqlx::query(
            "INSERT INTO spend_reservations (id, tenant_id, key_id, request_id, trace_id, endpoint, model, \
             micro_usd, created_ms) VALUES (?, 't', ?, ?, '', ?, 'm', ?, 0)",
        )
        .bind(id)
        .bind(key)
        .bind(id)
        .bind(endpoint)
        .bind(micro)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let storage = sluice::storage::Storage::open(&url, 2, sluice::config::Durability::Os)
        .await
        .unwrap();
    let covers: Vec<(String, String, u64)> = storage
        .open_covers()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.key_id, c.endpoint, c.micro_usd))
        .collect();
    assert_eq!(
        covers,
        [
            ("k1".to_owned(), "chat".to_owned(), 350),
            ("k1".to_owned(), "embeddings".to_owned(), 7),
            ("k2".to_owned(), "chat".to_owned(), 40),
        ]
    );
}

/// An upstream whose answers report `prompt_tokens` and `completion_tokens` of 2^64 - 1.
async fn absurd_usage_upstream() -> Upstream {
    Upstream::start(Behavior::Json(json!({
        "id": "chatcmpl-absurd", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX, "total_tokens": u64::MAX}
    })))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_upstream_usage_is_clamped_audited_and_survives_a_restart() {
    let up = absurd_usage_upstream().await;
    let gw = small_gateway(&up).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    let admin = admin_key(&gw, &tenant, "admin").await;
    for _ in 0..3 {
        let resp = gw
            .post("/v1/chat/completions", &key, chat_body("small"))
            .await;
        assert_eq!(resp.status(), 200);
    }
    let max = sluice::providers::MAX_REPORTED_TOKENS;
    // $1 in, $2 out per Mtok: each answer costs 100 + 200 dollars at the clamped usage.
    let expected = json!({"requests": 3, "prompt_tokens": 3 * max, "completion_tokens": 3 * max,
        "cost_micro_usd": 3 * 300_000_000});
    let usage: Value = gw.get_json("/v1/usage", &admin).await;
    assert_eq!(usage["total"], expected, "{usage}");
    let export: Value = gw.get_json("/v1/audit/export", &admin).await;
    let clamped: Vec<&Value> = export["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["endpoint"] == "chat")
        .collect();
    assert_eq!(clamped.len(), 3);
    for f in clamped {
        assert_eq!(f["subject"], "usage:clamped", "{f}");
        assert_eq!(f["prompt_tokens"], max);
    }

    let gw = TestGateway::start_in(gw.stop_keep_dir().await).await;
    let usage: Value = gw.get_json("/v1/usage", &admin).await;
    assert_eq!(usage["total"], expected, "the restart read the same totals");
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spend_row_fails_its_key_closed_and_the_rest_is_served() {
    let up = Upstream::ok().await;
    let gw = small_gateway(&up).await;
    let (damaged, _, damaged_key) = gw.tenant_key("damaged").await;
    let (_, _, other_key) = gw.tenant_key("other").await;
    set_budget(&gw, &damaged, json!({"daily_usd": 100.0})).await;
    for key in [&damaged_key, &other_key] {
        assert_eq!(
            gw.post("/v1/chat/completions", key, chat_body("small"))
                .await
                .status(),
            200
        );
    }
    let dir = gw.stop_keep_dir().await;
    // What an older version's overflowing sum left: a REAL where a count belongs.
    let url = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let changed = sqlx::query("UPDATE spend_daily SET micro_usd = 1.8e19 WHERE tenant_id = ?")
        .bind(&damaged)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);
    pool.close().await;

    let gw = TestGateway::start_in(dir).await;
    assert_eq!(
        gw.post("/v1/chat/completions", &other_key, chat_body("small"))
            .await
            .status(),
        200,
        "other tenants are served"
    );
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &damaged_key, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (402, Some("budget_exceeded")),
        "the damaged key's budget counts as spent: {err}"
    );
    let admin = admin_key(&gw, &damaged, "admin").await;
    let resp = gw
        .http
        .get(gw.url("/v1/usage"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the usage endpoint still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worst_case_counts_choices_tools_images_and_refuses_what_has_no_bound() {
    let up = Upstream::ok().await;
    let gw = small_gateway(&up).await;
    let (tenant, _, key) = gw.tenant_key("acme").await;
    // $1 in, $2 out per Mtok; a cap of 1,000 micro-USD a day.
    set_budget(&gw, &tenant, json!({"daily_usd": 0.001})).await;

    // n = 128 at max_tokens = 100 could generate 12,800 tokens (25,600 micro-USD). The prompt bound (17)
    // leaves 983: 491 output tokens, 3 for each of the 128 choices.
    let mut body = chat_body("small");
    body["n"] = json!(128);
    body["max_tokens"] = json!(100);
    let resp = gw.post("/v1/chat/completions", &key, body).await;
    assert_eq!(resp.status(), 200);
    let seen = up.requests();
    assert_eq!(seen[0].body["n"], 128);
    assert_eq!(
        seen[0].body["max_tokens"], 3,
        "every choice's share of what is left"
    );

    let refused = |status: u16, code: &'static str, param: Option<&'static str>| {
        move |(s, err): (u16, Value)| {
            assert_eq!(s, status, "{err}");
            assert_eq!(err["code"], code, "{err}");
            assert_eq!(err["param"].as_str(), param, "{err}");
        }
    };
    // 100 KB of tool definitions are 100,000 prompt tokens at most: more than the cap.
    let mut body = chat_body("small");
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "description": "x".repeat(100_000)}}]);
    refused(402, "budget_exceeded", None)(
        error_of(gw.post("/v1/chat/completions", &key, body).await).await,
    );
    // So is a JSON schema the model is given.
    let mut body = chat_body("small");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "y".repeat(100_000)}}});
    refused(402, "budget_exceeded", None)(
        error_of(gw.post("/v1/chat/completions", &key, body).await).await,
    );
    // An image costs up to 25,501 prompt tokens, whatever its URL's length.
    let mut body = chat_body("small");
    body["messages"] = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    ]}]);
    refused(402, "budget_exceeded", None)(
        error_of(gw.post("/v1/chat/completions", &key, body).await).await,
    );
    // A file has no bound at all: refused under the cap, naming the part.
    let mut body = chat_body("small");
    body["messages"] = json!([{"role": "user", "content": [
        {"type": "text", "text": "summarise"},
        {"type": "file", "file": {"file_id": "file-abc"}}
    ]}]);
    refused(400, "invalid_request", Some("messages[0].content[1]"))(
        error_of(gw.post("/v1/chat/completions", &key, body.clone()).await).await,
    );
    assert_eq!(up.hits(), 1, "nothing refused reached the upstream");

    // Without a cap the same file request passes through.
    let (_, _, free_key) = gw.tenant_key("free").await;
    assert_eq!(
        gw.post("/v1/chat/completions", &free_key, body)
            .await
            .status(),
        200
    );
    // A token rate limit needs the bound too.
    let (limited, _, limited_key) = gw.tenant_key("limited").await;
    let resp = gw
        .admin(
            Method::PUT,
            &format!("/admin/v1/tenants/{limited}/limits"),
            Some(json!({"tokens_per_minute": 1_000_000})),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let mut body = chat_body("small");
    body["messages"] =
        json!([{"role": "user", "content": [{"type": "file", "file": {"file_data": "JVBERi0="}}]}]);
    refused(400, "invalid_request", Some("messages[0].content[0]"))(
        error_of(gw.post("/v1/chat/completions", &limited_key, body).await).await,
    );
}
