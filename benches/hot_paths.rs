//! Criterion benches of the per-request hot pieces: key authentication, request parsing and validation,
//! the re-encoding for the upstream, SSE pass-through decoding, and pricing.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::admission::cost_micro_usd;
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
}

criterion_group!(hot, benches);
criterion_main!(hot);
