//! The response cache over real HTTP: exact hits, tenant isolation, bypass rules, a replayed stream, the
//! hit's audit entry at zero cost, erasure, and persistence across a restart; and `sluice cache eval`'s
//! figures with the real embedder.

use serde_json::Value;

use crate::support::upstream::{Behavior, Upstream};
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

fn routing(up: &Upstream) -> String {
    format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "small-model")
    )
}

fn on(c: &mut sluice::config::Config) {
    c.cache.enabled = true;
}

async fn status_of(gw: &TestGateway, key: &str, body: Value) -> String {
    let resp = gw.post("/v1/chat/completions", key, body).await;
    assert_eq!(resp.status(), 200);
    resp.headers()["x-sluice-cache"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_repeat_is_served_from_the_tenants_own_cache_at_zero_cost_until_erased_and_after_a_restart()
 {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    let (_, _, other) = gw.tenant_key("globex").await;

    assert_eq!(status_of(&gw, &member, chat_body("small")).await, "miss");
    let resp = gw
        .post("/v1/chat/completions", &member, chat_body("small"))
        .await;
    assert_eq!(resp.headers()["x-sluice-cache"], "hit-exact");
    assert_eq!(resp.headers()["x-sluice-deployment"], "small");
    let hit_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let json: Value = resp.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Hello from upstream"
    );
    assert_eq!(json["usage"]["cost_micro_usd"], 0);
    assert_eq!(json["id"], format!("chatcmpl-{hit_id}"));
    assert_eq!(up.hits(), 1, "the hit never reached the upstream");

    // Streamed: the same answer replayed as well-formed SSE.
    let mut stream = chat_body("small");
    stream["stream"] = true.into();
    stream["stream_options"] = serde_json::json!({"include_usage": true});
    let resp = gw.post("/v1/chat/completions", &member, stream).await;
    assert_eq!(resp.headers()["x-sluice-cache"], "hit-exact");
    let text = resp.text().await.unwrap();
    assert!(text.contains("Hello from upstream"), "{text}");
    assert!(text.contains("\"usage\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(up.hits(), 1);

    // Another tenant, the same request: its own miss.
    assert_eq!(status_of(&gw, &other, chat_body("small")).await, "miss");
    assert_eq!(up.hits(), 2);

    // Bypass rules and a bad threshold.
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&member)
        .header("cache-control", "no-store")
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-sluice-cache"], "bypass");
    let mut sampled = chat_body("small");
    sampled["temperature"] = 0.8.into();
    assert_eq!(status_of(&gw, &member, sampled).await, "bypass");
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&member)
        .header("x-sluice-cache-threshold", "2")
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["param"], "x-sluice-cache-threshold");

    // The hit's audit entry: the cache result, the entry that answered, no cost.
    let entries: Value = gw.get_json("/v1/audit/entries?limit=100", &admin).await;
    let hit = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fields"])
        .find(|f| f["request_id"] == hit_id.as_str())
        .unwrap();
    assert_eq!(hit["cache"], "hit-exact");
    assert_eq!(hit["cost_micro_usd"], 0);
    assert!(
        hit["subject"].as_str().unwrap().starts_with("cache:"),
        "{hit}"
    );

    let stats: Value = gw.get_json("/v1/cache", &admin).await;
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["hits"]["exact"], 2);

    // Persistence across a restart.
    let dir = gw.stop_keep_dir().await;
    let gw = TestGateway::start_in_with(dir, on).await;
    assert_eq!(
        status_of(&gw, &member, chat_body("small")).await,
        "hit-exact"
    );
    assert_eq!(
        up.hits(),
        4,
        "only the two bypassed requests went upstream since"
    );

    // Erasure empties it.
    let resp = gw
        .http
        .delete(gw.url("/v1/cache"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let erased: Value = resp.json().await.unwrap();
    assert_eq!(erased["erased_entries"], 1);
    assert_eq!(status_of(&gw, &member, chat_body("small")).await, "miss");
    gw.stop().await;
}

/// The cache's own lookup path over the `fow-cache` pairs with the real embedder, at the default threshold
/// (0.95) with the guard on. Floors from the measured figures (56.0% of same-answer pairs served, 41.0% of
/// the `paraphrase` category, 2 of 300 traps answered wrongly), so a regression of the embedder's scale or
/// the guard fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eval_at_the_default_serves_40_percent_of_paraphrases_and_at_most_1_percent_of_traps() {
    use sluice::cache::eval;
    use sluice::inference::{LocalModels, QueueLimits};
    let Some(dir) = crate::local::models_dir() else {
        return;
    };
    let data = sluice::inference::catalog::find("fow-cache").unwrap();
    let missing = sluice::inference::files::needed(&dir, data);
    if !missing.is_empty() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_MODELS").is_none(),
            "SLUICE_REQUIRE_MODELS is set but the fow-cache data set is missing"
        );
        eprintln!(
            "SKIPPED: the fow-cache data set is missing; run `sluice models pull --dir {}`",
            dir.display()
        );
        return;
    }
    let cases = eval::load(&dir.join("fow-cache")).unwrap();
    let embedder = LocalModels::default()
        .embedder(&dir, "all-minilm-l6-v2", QueueLimits::default())
        .unwrap();
    let report = eval::evaluate(cases, &embedder).await.unwrap();
    let at = |threshold: f32, guard: bool| {
        let run = report.run(threshold, guard).unwrap();
        let pairs = |same: bool| run.total(same, false, &report.cases);
        let conversations = |same: bool| run.total(same, true, &report.cases);
        (
            pairs(true),
            pairs(false),
            conversations(true),
            conversations(false),
        )
    };
    let (same, traps, _, conversation_traps) = at(0.95, true);
    assert_eq!((same.pairs, traps.pairs), (300, 300));
    assert!(same.served * 100 >= 54 * same.pairs, "{same:?}");
    let run = report.run(0.95, true).unwrap();
    let paraphrases = run.by_category["paraphrase"];
    assert_eq!(paraphrases.pairs, 200);
    assert!(
        paraphrases.served * 100 >= 40 * paraphrases.pairs,
        "{paraphrases:?}"
    );
    assert!(traps.false_hits * 100 <= traps.pairs, "{traps:?}");
    assert_eq!(conversation_traps.false_hits, 0, "{conversation_traps:?}");
    // The guard is what keeps the traps out: without it the same threshold answers many of them.
    let (_, unguarded, _, _) = at(0.95, false);
    assert!(
        unguarded.false_hits >= 5 * traps.false_hits.max(1),
        "{unguarded:?}"
    );
}

/// The audit entries' fields of the tenant of `admin`, oldest first.
async fn entries(gw: &TestGateway, admin: &str) -> Vec<Value> {
    let page: Value = gw.get_json("/v1/audit/entries?limit=500", admin).await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fields"].clone())
        .collect()
}

/// vLLM's failure mid-generation: content, an error event, then `[DONE]`. The client is told the stream
/// failed, the entry records the error, and nothing is cached: the same request goes upstream again.
#[tokio::test]
async fn a_stream_that_fails_mid_way_is_audited_as_an_error_and_never_cached() {
    let chunk = |delta: Value| {
        serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    };
    let up = Upstream::start(Behavior::Sse(vec![
        chunk(serde_json::json!({"role": "assistant", "content": ""})),
        chunk(serde_json::json!({"content": "The answer is half"})),
        serde_json::json!({"error": {"message": "CUDA error: out of memory", "type": "internal_error"}})
            .to_string(),
        "[DONE]".to_owned(),
    ]))
    .await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    let mut body = chat_body("small");
    body["stream"] = true.into();
    for round in 1..=2 {
        let resp = gw.post("/v1/chat/completions", &member, body.clone()).await;
        assert_eq!(resp.headers()["x-sluice-cache"], "miss", "round {round}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("The answer is half"), "{text}");
        assert!(
            !text.contains("data: [DONE]"),
            "a failed stream must not end as complete: {text}"
        );
        assert!(text.contains("upstream_error"), "{text}");
        assert!(
            !text.contains("CUDA"),
            "the upstream's message is not passed on: {text}"
        );
    }
    assert_eq!(
        up.hits(),
        2,
        "the failed answer was not served from the cache"
    );
    let stats: Value = gw.get_json("/v1/cache", &admin).await;
    assert_eq!(stats["entries"], 0);
    let chats: Vec<Value> = entries(&gw, &admin)
        .await
        .into_iter()
        .filter(|f| f["endpoint"] == "chat")
        .collect();
    assert_eq!(chats.len(), 2);
    for f in &chats {
        assert_eq!(f["error_code"], "upstream_error", "{f}");
        assert_eq!(f["cache"], "miss", "{f}");
    }
    gw.stop().await;
}

/// An answer that a budget's lowered `max_tokens` cut short (`length`) belongs to that key's request, not
/// to the tenant's: another key asking with its own `max_tokens` is not served it. An answer that the
/// client's own cap ended is the same request's answer, and is cached.
#[tokio::test]
async fn an_answer_cut_short_by_a_budget_is_not_served_to_another_key() {
    let up = Upstream::start(Behavior::Json(serde_json::json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A long answer, cut"},
            "finish_reason": "length"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 52, "total_tokens": 63}
    })))
    .await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (tenant, poor_id, poor) = gw.tenant_key("acme").await;
    let (_, rich) = gw.key(&tenant, "rich", "member").await;
    // $2 per Mtok of output: 120 micro-USD leaves the poor key about 50 output tokens.
    let resp = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/keys/{poor_id}/budget"),
            Some(serde_json::json!({"daily_usd": 0.00012})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = chat_body("small");
    body["max_tokens"] = 400.into();
    assert_eq!(status_of(&gw, &poor, body.clone()).await, "miss");
    let lowered = up.requests()[0].body["max_tokens"].as_u64().unwrap();
    assert!(lowered < 400, "the budget lowered the cap: {lowered}");
    assert_eq!(
        status_of(&gw, &rich, body.clone()).await,
        "miss",
        "the truncated answer was not stored"
    );
    assert_eq!(up.requests()[1].body["max_tokens"], 400);
    // The rich key's own cap ended its answer: that one is stored, and serves the same request.
    assert_eq!(status_of(&gw, &rich, body.clone()).await, "hit-exact");
    assert_eq!(up.hits(), 2);
    gw.stop().await;
}

/// Zero retention: the tenant's cached answers go at once (memory and database), stay gone after a prune,
/// and the cache is bypassed from then on; entries of a tenant switched to zero retention while the gateway
/// was down are not restored at start.
#[tokio::test]
async fn zero_retention_erases_the_tenants_cache_now_and_at_start() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (tenant, admin, member) = gw.tenant_admin_member().await;
    assert_eq!(status_of(&gw, &member, chat_body("small")).await, "miss");
    assert_eq!(
        status_of(&gw, &member, chat_body("small")).await,
        "hit-exact"
    );
    gw.app.cache.flush().await;
    assert_eq!(rows(&gw, &tenant).await, 1);

    let set = gw
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/retention"),
            Some(serde_json::json!({"days": 0})),
        )
        .await;
    assert_eq!(set.status(), 200);
    let stats: Value = gw.get_json("/v1/cache", &admin).await;
    assert_eq!(stats["entries"], 0, "erased from memory at once");
    assert_eq!(rows(&gw, &tenant).await, 0, "and from the database");
    assert_eq!(status_of(&gw, &member, chat_body("small")).await, "bypass");
    let pruned = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/audit/prune",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(pruned.status(), 200);
    assert_eq!(rows(&gw, &tenant).await, 0);

    // Another tenant's entry, then its retention set to zero in the database while the gateway is down.
    let (other, _, other_member) = gw.tenant_key("globex").await;
    assert_eq!(
        status_of(&gw, &other_member, chat_body("small")).await,
        "miss"
    );
    gw.app.cache.flush().await;
    assert_eq!(rows(&gw, &other).await, 1);
    let dir = gw.stop_keep_dir().await;
    {
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.path().join("sluice.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("UPDATE tenants SET retention_days = 0 WHERE id = ?")
            .bind(&other)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let gw = TestGateway::start_in_with(dir, on).await;
    gw.app.cache.flush().await;
    assert_eq!(rows(&gw, &other).await, 0, "dropped at start");
    assert_eq!(gw.app.cache.stats(&other).entries, 0);
    assert_eq!(
        status_of(&gw, &other_member, chat_body("small")).await,
        "bypass"
    );
    gw.stop().await;
}

/// An expired entry leaves memory and the database when it expires, without waiting for another store or
/// a restart.
#[tokio::test]
async fn an_expired_entry_leaves_memory_and_the_database_by_itself() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (tenant, admin, member) = gw.tenant_admin_member().await;
    let resp = gw
        .http
        .put(gw.url("/v1/cache/settings"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"enabled": true, "threshold": 0.95, "ttl_secs": 1, "cache_sampled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(status_of(&gw, &member, chat_body("small")).await, "miss");
    gw.app.cache.flush().await;
    assert_eq!(rows(&gw, &tenant).await, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stats: Value = gw.get_json("/v1/cache", &admin).await;
        gw.app.cache.flush().await;
        if stats["entries"] == 0 && rows(&gw, &tenant).await == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an expired entry stayed: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gw.stop().await;
}

/// The database: rows of `cache_entries` for a tenant.
async fn rows(gw: &TestGateway, tenant: &str) -> i64 {
    let pool = db(gw).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cache_entries WHERE tenant_id = ?")
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn db(gw: &TestGateway) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.db_path.display()))
        .await
        .unwrap()
}

/// What anyone with the database (or a tenant's own export) sees of the cache says nothing about other
/// tenants: the same question from two tenants has unrelated keys, and one tenant's entry ids do not move
/// with another's stores.
#[tokio::test]
async fn cache_keys_and_ids_link_no_tenants() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_changed(&routing(&up), on).await;
    let (a, a_admin, a_member) = gw.tenant_admin_member().await;
    let (b, _, b_member) = gw.tenant_key("globex").await;
    let ask = |q: &str| {
        let mut body = chat_body("small");
        body["messages"][0]["content"] = q.into();
        body
    };
    let hit_id = |entries: &[Value], q: usize| -> u64 {
        let hits: Vec<u64> = entries
            .iter()
            .filter(|f| f["cache"] == "hit-exact")
            .map(|f| {
                f["subject"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("cache:")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        hits[q]
    };
    // A stores and hits q0, B stores five answers, A stores and hits q1.
    assert_eq!(status_of(&gw, &a_member, ask("q0")).await, "miss");
    assert_eq!(status_of(&gw, &a_member, ask("q0")).await, "hit-exact");
    for i in 0..5 {
        assert_eq!(
            status_of(&gw, &b_member, ask(&format!("b{i}"))).await,
            "miss"
        );
    }
    assert_eq!(status_of(&gw, &a_member, ask("q1")).await, "miss");
    assert_eq!(status_of(&gw, &a_member, ask("q1")).await, "hit-exact");
    let seen = entries(&gw, &a_admin).await;
    let (first, second) = (hit_id(&seen, 0), hit_id(&seen, 1));
    assert_ne!(first, second);
    // Sequential ids would differ by 6 (B's five stores in between); random 63-bit ids are far apart.
    assert!(
        first.abs_diff(second) > 1_000_000,
        "ids {first} and {second} look sequential"
    );

    // The same question from both tenants: different keys in the database.
    assert_eq!(status_of(&gw, &b_member, ask("q0")).await, "miss");
    gw.app.cache.flush().await;
    let pool = db(&gw).await;
    let keys = |tenant: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(
                "SELECT exact_key, context_key FROM cache_entries WHERE tenant_id = ?",
            )
            .bind(tenant)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let (ka, kb) = (keys(a).await, keys(b).await);
    assert_eq!((ka.len(), kb.len()), (2, 6));
    for (exact, context) in &ka {
        assert!(
            kb.iter().all(|(e, c)| e != exact && c != context),
            "a key of tenant A appears under tenant B"
        );
    }
    pool.close().await;
    gw.stop().await;
}
