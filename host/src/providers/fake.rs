//! The in-process fake provider: scripted answers, latency, error statuses, streams and mid-stream resets,
//! for demos, tests and load tests. It needs no network and no API key.

use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};

use super::sse::data_event;
use super::{
    Endpoint, ProviderError, StreamItem, UpstreamReply, UpstreamRequest, Usage, unix_seconds,
};
use crate::config::{DeploymentConfig, FakeScript};

pub(super) struct Fake {
    pub script: FakeScript,
}

/// Rough token count of the request's text: bytes / 4, at least 1 per message.
fn prompt_tokens(body: &serde_json::Value) -> u64 {
    let messages = body.get("messages").and_then(serde_json::Value::as_array);
    let text: usize = messages
        .into_iter()
        .flatten()
        .flat_map(|m| crate::wire::content_text(m.get("content")))
        .map(str::len)
        .sum();
    let count = messages.map_or(0, Vec::len);
    u64::try_from(text.div_ceil(4) + count).unwrap_or(u64::MAX)
}

impl super::Adapter for Fake {
    async fn call(
        &self,
        _provider: &str,
        _timeouts: &crate::config::Timeouts,
        deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        if !self.script.latency.is_zero() {
            tokio::time::sleep(self.script.latency).await;
        }
        if self.script.panic {
            panic_on_purpose();
        }
        if let Some(status) = self.script.status {
            return Err(ProviderError::Status {
                provider: "fake".to_owned(),
                status,
                body: super::describe_body(b"scripted"),
            });
        }
        let model = deployment.upstream_model.as_str();
        match req.endpoint {
            Endpoint::Embeddings => Ok(self.embeddings(model, req.body)),
            Endpoint::Chat if req.stream => Ok(self.stream(model, req)),
            Endpoint::Chat => {
                let usage = Usage {
                    prompt_tokens: prompt_tokens(req.body),
                    completion_tokens: word_count(&self.script.reply),
                };
                let body = serde_json::json!({
                    "id": format!("chatcmpl-{}", req.enrich.request_id),
                    "object": "chat.completion",
                    "created": unix_seconds(),
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": self.script.reply},
                        "finish_reason": "stop",
                    }],
                    "usage": {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                    },
                });
                Ok(UpstreamReply::Complete {
                    json: body,
                    usage: Some(usage),
                })
            }
        }
    }
}

impl Fake {
    fn embeddings(&self, model: &str, body: &serde_json::Value) -> UpstreamReply {
        let inputs: Vec<String> = match body.get("input") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items))
                if items.iter().all(serde_json::Value::is_u64) =>
            {
                vec![serde_json::Value::Array(items.clone()).to_string()]
            }
            Some(serde_json::Value::Array(items)) => items.iter().map(|v| v.to_string()).collect(),
            _ => Vec::new(),
        };
        let tokens: u64 = inputs
            .iter()
            .map(|s| u64::try_from(s.len().div_ceil(4)).unwrap_or(0))
            .sum();
        let data: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                serde_json::json!({
                    "object": "embedding",
                    "index": i,
                    "embedding": pseudo_embedding(text, self.script.embedding_dims),
                })
            })
            .collect();
        let body = serde_json::json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        UpstreamReply::Complete {
            json: body,
            usage: Some(Usage {
                prompt_tokens: tokens,
                completion_tokens: 0,
            }),
        }
    }

    fn stream(&self, model: &str, req: &UpstreamRequest<'_>) -> UpstreamReply {
        let id = format!("chatcmpl-{}", req.enrich.request_id);
        let created = unix_seconds();
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            let v = serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            data_event(v.to_string().as_bytes())
        };
        let mut items = vec![chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )];
        let words: Vec<&str> = self.script.reply.split_inclusive(' ').collect();
        for w in &words {
            items.push(chunk(serde_json::json!({"content": w}), None));
        }
        items.push(chunk(serde_json::json!({}), Some("stop")));
        let usage = Usage {
            prompt_tokens: prompt_tokens(req.body),
            completion_tokens: u64::try_from(words.len()).unwrap_or(u64::MAX),
        };
        if req.client_wants_usage {
            let v = serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            });
            items.push(data_event(v.to_string().as_bytes()));
        }
        let mut script: Vec<Result<StreamItem, ProviderError>> = items
            .into_iter()
            .map(|c| Ok(StreamItem::Chunk(c)))
            .collect();
        match self.script.reset_after_chunks {
            Some(n) => {
                script.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                script.push(Err(ProviderError::Reset {
                    provider: "fake".to_owned(),
                    detail: format!("scripted reset after {n} chunks"),
                }));
            }
            None => {
                script.push(Ok(StreamItem::Usage(usage)));
                script.push(Ok(StreamItem::Done));
            }
        }
        let interval = self.script.chunk_interval;
        let s = stream::iter(script.into_iter().enumerate()).then(move |(i, item)| async move {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            item
        });
        UpstreamReply::Stream(Box::pin(s))
    }
}

fn word_count(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count().max(1)).unwrap_or(u64::MAX)
}

/// A deterministic unit vector derived from the text, so equal inputs embed equally.
fn pseudo_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims);
    let mut counter = 0u32;
    while out.len() < dims {
        let digest = Sha256::new()
            .chain_update(text.as_bytes())
            .chain_update(counter.to_le_bytes())
            .finalize();
        for pair in digest.chunks_exact(2) {
            if out.len() == dims {
                break;
            }
            let v = f32::from(u16::from_le_bytes([pair[0], pair[1]])) / 32768.0 - 1.0;
            out.push(v);
        }
        counter += 1;
    }
    let norm = out
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    out.iter_mut().for_each(|v| *v /= norm);
    out
}

#[expect(
    clippy::panic,
    reason = "the fake provider's `panic = true` exists to test panic handling"
)]
fn panic_on_purpose() {
    panic!("fake provider: scripted panic");
}
