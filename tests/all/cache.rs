//! The response cache over real HTTP: exact hits, tenant isolation, bypass rules, a replayed stream, the
//! hit's audit entry at zero cost, erasure, and persistence across a restart; and `sluice cache eval`'s
//! figures with the real embedder.

use serde_json::Value;

use crate::support::upstream::Upstream;
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
    let cases = eval::load(&dir.join("fow-cache")).expect("`sluice models pull` fetches fow-cache");
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
