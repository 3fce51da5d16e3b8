//! Criterion benches of the per-request hot pieces: key authentication, request parsing and validation,
//! the re-encoding for the upstream, SSE pass-through decoding, pricing, and admission (limits, budget
//! reservation and settlement).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::admission::{
    Admission, BudgetAsk, BudgetSet, Demand, LimitSet, Scope, SystemClock, cost_micro_usd,
};
use sluice::auth::{KeyStore, Role, keys};
use sluice::config::Price;
use sluice::providers::Usage;
use sluice::providers::sse::SseDecoder;
use sluice::storage::KeyRow;
use sluice::wire::{ChatRequest, parse_body};

const PEPPER: &[u8] = b"bench-pepper-bench-pepper-bench-pepper";

fn key_store(n: usize) -> (KeyStore, String) {
    let mut rows = Vec::with_capacity(n);
    let mut last = String::new();
    for i in 0..n {
        let k = keys::generate();
        let secret = keys::parse(&k.plaintext)
            .map(|p| p.secret.to_owned())
            .unwrap_or_default();
        rows.push(KeyRow {
            id: k.id.clone(),
            tenant_id: format!("tenant-{}", i % 50),
            name: "bench".to_owned(),
            role: Role::Member,
            salt: k.salt.to_vec(),
            hash: keys::hash(PEPPER, &k.salt, &secret).to_vec(),
            last4: k.last4.clone(),
            created_at: 0,
            revoked_at: None,
        });
        last = k.plaintext;
    }
    (KeyStore::new(PEPPER, rows), last)
}

const CHAT: &[u8] = br#"{"model":"small","messages":[
  {"role":"system","content":"You are a helpful assistant that answers briefly."},
  {"role":"user","content":"What is the capital of France? Answer in one word, please."}
 ],"temperature":0.2,"max_tokens":64,"seed":7,"response_format":{"type":"text"}}"#;

fn benches(c: &mut Criterion) {
    let (store, key) = key_store(10_000);
    c.bench_function("auth/api_key_valid_of_10k", |b| {
        b.iter(|| black_box(store.authenticate(black_box(&key)).is_ok()))
    });
    let forged = keys::generate().plaintext;
    c.bench_function("auth/api_key_unknown_id", |b| {
        b.iter(|| black_box(store.authenticate(black_box(&forged)).is_err()))
    });

    c.bench_function("wire/parse_and_validate_chat", |b| {
        b.iter(|| {
            let req: ChatRequest = parse_body(black_box(CHAT)).unwrap_or_else(|_| unreachable!());
            black_box(req.validate().is_ok())
        })
    });
    let parsed: ChatRequest = parse_body(CHAT).unwrap_or_else(|_| unreachable!());
    c.bench_function("wire/reencode_for_upstream", |b| {
        b.iter(|| {
            black_box(serde_json::to_vec(
                &serde_json::to_value(black_box(&parsed)).ok(),
            ))
        })
    });

    let mut stream = Vec::new();
    for i in 0..100 {
        stream.extend_from_slice(
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    c.bench_function("sse/decode_100_chunks_in_1k_pieces", |b| {
        b.iter(|| {
            let mut d = SseDecoder::default();
            let mut n = 0;
            for piece in stream.chunks(1024) {
                d.push(piece);
                while let Some(e) = d.next_event() {
                    n += e.data.len();
                }
            }
            black_box(n)
        })
    });

    let price = Price {
        input_micro_usd_per_mtok: 150_000,
        output_micro_usd_per_mtok: 600_000,
    };
    c.bench_function("admission/cost", |b| {
        b.iter(|| {
            black_box(cost_micro_usd(
                black_box(Usage {
                    prompt_tokens: 1234,
                    completion_tokens: 567,
                }),
                price,
            ))
        })
    });
    // Admission of one request with every kind of limit set: tenant request and token rates and in-flight
    // cap, a key request rate, tenant and key budgets; then the budget reservation and the settlement.
    // 1,000 tenants, so the tenant map is not a one-entry toy.
    let admission = Admission::new(std::sync::Arc::new(SystemClock));
    for t in 0..1_000 {
        let tenant = format!("tenant-{t}");
        admission.set_limits(
            &tenant,
            &Scope::Tenant,
            LimitSet {
                requests_per_second: Some(u32::MAX),
                requests_per_minute: Some(u32::MAX),
                tokens_per_minute: Some(u64::MAX / 2),
                tokens_per_day: Some(u64::MAX / 2),
                max_concurrent: Some(1_000),
            },
        );
        admission.set_limits(
            &tenant,
            &Scope::Key("key-1".to_owned()),
            LimitSet {
                requests_per_minute: Some(u32::MAX),
                ..LimitSet::default()
            },
        );
        let budget = BudgetSet {
            daily_micro_usd: Some(u64::MAX / 4),
            monthly_micro_usd: Some(u64::MAX / 4),
        };
        admission.set_budget(&tenant, None, budget);
        admission.set_budget(&tenant, Some("key-1"), budget);
    }
    let ask = BudgetAsk {
        prompt_tokens: 1_200,
        requested_output: Some(500),
        default_output: 4096,
        price,
        generates: true,
        choices: 1,
        extra_output_tokens: 0,
        unbounded: false,
    };
    c.bench_function("admission/admit_reserve_settle", |b| {
        b.iter(|| {
            let ticket = admission
                .admit(
                    black_box("tenant-500"),
                    &Demand {
                        key_id: "key-1",
                        endpoint: "chat",
                        tokens: 1_700,
                        unbounded: false,
                    },
                )
                .ok();
            if let Some(t) = ticket {
                let hold = t.reserve_budget(black_box(&ask));
                t.settle(black_box(900), black_box(1_500));
                black_box(hold.ok());
            }
        })
    });
}

/// What the policy benches' policies see: a short simple prompt.
fn policy_request() -> sluice::policy::wasm::wit::Request {
    use sluice::policy::wasm::wit;
    wit::Request {
        request_id: "req".to_owned(),
        tenant_id: "t".to_owned(),
        key_id: "k".to_owned(),
        key_role: wit::Role::Member,
        endpoint: wit::Endpoint::Chat,
        model: "auto".to_owned(),
        messages: vec![wit::Message {
            role: "user".to_owned(),
            text: "Write a haiku about the sea, in exactly three lines.".to_owned(),
        }],
        max_tokens: Some(200),
        temperature: None,
        stream: false,
        has_tools: false,
        metadata: Vec::new(),
        prompt_tokens: 60,
        labels: Vec::new(),
    }
}

/// Fresh-instance policy calls (instantiate + call + drop) of the built-in components.
#[expect(
    clippy::unwrap_used,
    reason = "a benchmark: a built-in that does not load or decide must stop it"
)]
fn policies(c: &mut Criterion) {
    use sluice::policy::wasm::{Limits, RoutingInput, Runtime, wit};
    let runtime = Runtime::new(Limits::default()).unwrap();
    // The cost of a call, not its deadline: on this shared machine a descheduled call can pass 5 ms of
    // wall time, which would end the bench.
    let deadline = Some(std::time::Duration::from_secs(1));
    let classifier = runtime.load(sluice::policy::builtin::CLASSIFIER).unwrap();
    let router = runtime.load(sluice::policy::builtin::ROUTER).unwrap();
    let req = policy_request();
    c.bench_function("policy/classify_builtin_fresh_instance", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .classify(&classifier, black_box(&req), None, deadline)
                    .unwrap(),
            )
        })
    });
    // With the question's embedding (384 floats of the model the built-in head reads), as `auto` runs it
    // when the gateway has its embedder: the difference to the call above is what reading it costs.
    let minilm = sluice::inference::catalog::find("all-minilm-l6-v2").unwrap();
    let embedding = wit::Embedding {
        model_digest: format!("sha256:{}", minilm.weights().sha256),
        vector: (0..384).map(|i| ((i as f32) * 0.37).sin() / 13.9).collect(),
    };
    c.bench_function("policy/classify_builtin_with_embedding", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .classify(&classifier, black_box(&req), Some(&embedding), deadline)
                    .unwrap(),
            )
        })
    });
    let deployment = |name: &str, tier, price: u64| wit::Deployment {
        name: name.to_owned(),
        tier,
        region: "eu".to_owned(),
        input_micro_usd_per_mtok: price,
        output_micro_usd_per_mtok: price * 4,
        health: wit::Health::Healthy,
        recent_latency_ms: None,
    };
    let input = RoutingInput {
        req: req.clone(),
        tier: wit::Tier::Simple,
        candidates: vec![
            deployment("a", wit::Tier::Simple, 100_000),
            deployment("b", wit::Tier::Simple, 150_000),
            deployment("c", wit::Tier::Standard, 1_000_000),
            deployment("d", wit::Tier::Complex, 2_500_000),
        ],
        budget: wit::Budget {
            remaining_micro_usd: Some(1_000_000),
        },
    };
    c.bench_function("policy/route_builtin_fresh_instance", |b| {
        b.iter(|| black_box(runtime.route(&router, black_box(&input), deadline).unwrap()))
    });
    // The three slots of one request, each in a fresh instance: an `auth` policy that allows (the test
    // program's default path), then the built-in classifier and router.
    let auth = runtime
        .load(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/sluice_policy_test_hostile.wasm"
        )))
        .unwrap();
    c.bench_function("policy/three_slots_fresh_instances", |b| {
        b.iter(|| {
            black_box(runtime.authorize(&auth, black_box(&req), deadline).unwrap());
            black_box(
                runtime
                    .classify(&classifier, black_box(&req), None, deadline)
                    .unwrap(),
            );
            black_box(runtime.route(&router, black_box(&input), deadline).unwrap())
        })
    });
}

/// What the policy pool adds to a call: the built-in classifier called directly and through the pool from an
/// async task (queue, a pool thread's turn, the answer back); an empty call through the pool, alone (the
/// thread hand-off both ways included) and amortised over 64 calls waiting at once (the scheduler's own
/// bookkeeping, threads kept busy).
#[expect(
    clippy::unwrap_used,
    reason = "a benchmark: a call that does not run must stop it"
)]
fn policy_pool(c: &mut Criterion) {
    use std::sync::Arc;
    use std::time::Duration;

    use sluice::config::PoolConfig;
    use sluice::policy::cpu::CpuBudgets;
    use sluice::policy::pool::Pool;
    use sluice::policy::wasm::{Limits, Runtime, thread_cpu};
    let runtime = Arc::new(Runtime::new(Limits::default()).unwrap());
    let classifier = Arc::new(runtime.load(sluice::policy::builtin::CLASSIFIER).unwrap());
    let req = Arc::new(policy_request());
    let deadline = Some(Duration::from_secs(1));
    let pool = Arc::new(
        Pool::start(
            PoolConfig {
                workers: 2,
                per_tenant: 1,
                queue: 1_024,
                queue_per_tenant: 64,
            },
            thread_cpu,
            Arc::new(CpuBudgets::new(1_000_000)),
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    c.bench_function("policy_pool/classify_builtin_direct", |b| {
        b.iter(|| black_box(runtime.classify(&classifier, &req, None, deadline).unwrap()))
    });
    c.bench_function("policy_pool/classify_builtin_through_pool", |b| {
        b.iter(|| {
            let (runtime, classifier, req) = (runtime.clone(), classifier.clone(), req.clone());
            rt.block_on(pool.run("t", move || {
                black_box(runtime.classify(&classifier, &req, None, deadline).unwrap())
            }))
            .unwrap()
        })
    });
    c.bench_function("policy_pool/empty_call_alone", |b| {
        b.iter(|| rt.block_on(pool.run("t", || black_box(1))).unwrap())
    });
    c.bench_function("policy_pool/empty_call_64_waiting_per_call", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                rt.block_on(async {
                    // Spawned, so that all 64 are queued before the first answer is awaited.
                    let calls: Vec<_> = (0..64)
                        .map(|i| {
                            let pool = pool.clone();
                            let tenant = if i % 2 == 0 { "a" } else { "b" };
                            tokio::spawn(async move { pool.run(tenant, move || i).await })
                        })
                        .collect();
                    for call in calls {
                        black_box(call.await.unwrap().unwrap());
                    }
                });
            }
            start.elapsed() / 64
        })
    });
}

criterion_group!(hot, benches, policies, policy_pool);
criterion_main!(hot);
