//! The `local` provider: chat completions and embeddings answered by models in this process
//! (`crate::inference`), in the same OpenAI wire format as the other adapters. A request waits in its
//! model's fair queue; `call` returns once generation began (the failover boundary), and a stream yields
//! one chunk per piece of text as the worker produces it. Dropping the stream stops the generation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::sse::data_event;
use super::{
    Endpoint, ProviderError, StreamItem, UpstreamReply, UpstreamRequest, Usage, unix_seconds,
};
use crate::config::{DeploymentConfig, Timeouts};
use crate::inference::chat::{ChatMessage, Finish, Sampling};
use crate::inference::jobs::{ChatEvent, Failure, WAITING};
use crate::inference::{EmbedRefusal, LocalChat, LocalEmbedder, Refusal};

/// A model this provider serves, by the deployment's `model`.
#[derive(Debug, Clone)]
pub enum LocalModel {
    Chat(Arc<LocalChat>),
    Embeddings(Arc<LocalEmbedder>),
}

pub(super) struct Local {
    pub models: HashMap<String, LocalModel>,
}

impl super::Adapter for Local {
    async fn call(
        &self,
        provider: &str,
        timeouts: &Timeouts,
        deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        let now = Instant::now();
        let deadlines = (now + timeouts.first_byte, now + timeouts.total);
        match (self.models.get(&deployment.upstream_model), req.endpoint) {
            (Some(LocalModel::Chat(model)), Endpoint::Chat) => {
                chat(provider, timeouts, model, deployment, req, deadlines).await
            }
            (Some(LocalModel::Embeddings(model)), Endpoint::Embeddings) => {
                embeddings(provider, timeouts, model, deployment, req, deadlines.1).await
            }
            _ => Err(ProviderError::Unsupported {
                field: "model".to_owned(),
                reason: format!(
                    "deployment `{}` does not serve this endpoint",
                    deployment.name
                ),
            }),
        }
    }
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> ProviderError {
    ProviderError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

fn refused(deployment: &DeploymentConfig, why: Refusal) -> ProviderError {
    ProviderError::Busy {
        deployment: deployment.name.clone(),
        tenant_share: why == Refusal::TenantFull,
    }
}

/// The provider error of a failed local request; a timeout names the limit that ran out.
fn failed(provider: &str, timeouts: &Timeouts, failure: Failure) -> ProviderError {
    match failure {
        Failure::Invalid(reason) => unsupported("messages", reason),
        Failure::TimedOut { stage } => ProviderError::Timeout {
            provider: provider.to_owned(),
            after: if stage == WAITING {
                timeouts.first_byte
            } else {
                timeouts.total
            },
            stage,
        },
        Failure::Internal(detail) => ProviderError::Protocol {
            provider: provider.to_owned(),
            detail,
        },
    }
}

/// The text of a message's `content`: a string, or text parts; anything else is not for a text model.
fn message_text(i: usize, content: Option<&serde_json::Value>) -> Result<String, ProviderError> {
    let field = format!("messages[{i}].content");
    match content {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(serde_json::Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(|t| t.as_str()).unwrap_or(""));
                    }
                    _ => return Err(unsupported(field, "local chat models read text parts only")),
                }
            }
            Ok(text)
        }
        Some(_) => Err(unsupported(
            field,
            "must be a string or a list of text parts",
        )),
    }
}

/// The conversation, as the chat template sees it.
fn messages(body: &serde_json::Value) -> Result<Vec<ChatMessage>, ProviderError> {
    let list = body
        .get("messages")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| unsupported("messages", "must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = match m.get("role").and_then(serde_json::Value::as_str) {
            Some("system" | "developer") => "system",
            Some("user") => "user",
            Some("assistant") if m.get("tool_calls").is_none_or(serde_json::Value::is_null) => {
                "assistant"
            }
            _ => {
                return Err(unsupported(
                    format!("messages[{i}]"),
                    "local chat models take system, user and assistant text messages (no tools)",
                ));
            }
        };
        out.push(ChatMessage {
            role: role.to_owned(),
            content: message_text(i, m.get("content"))?,
        });
    }
    Ok(out)
}

/// Parameters a local model cannot honour are refused, never silently ignored.
fn refuse_unsupported(body: &serde_json::Value) -> Result<(), ProviderError> {
    let set = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    for key in [
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "audio",
        "prediction",
    ] {
        if set(key) {
            return Err(unsupported(key, "not supported by local chat models"));
        }
    }
    if body
        .get("n")
        .and_then(serde_json::Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(unsupported("n", "local chat models answer one choice"));
    }
    if body.get("logprobs").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(unsupported(
            "logprobs",
            "not supported by local chat models",
        ));
    }
    let format = body
        .pointer("/response_format/type")
        .and_then(|v| v.as_str());
    if format.is_some_and(|t| t != "text") {
        return Err(unsupported(
            "response_format",
            "local chat models answer text only",
        ));
    }
    Ok(())
}

fn sampling(
    body: &serde_json::Value,
    deployment: &DeploymentConfig,
    default_temperature: f64,
) -> Result<Sampling, ProviderError> {
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(u64::from(deployment.max_output_tokens));
    let stop = match body.get("stop") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return Err(unsupported("stop", "must be a string or a list of strings")),
    };
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(unsupported("stop", "at most 4 non-empty sequences"));
    }
    Ok(Sampling {
        max_tokens: usize::try_from(max_tokens).unwrap_or(usize::MAX),
        temperature: body
            .get("temperature")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(default_temperature),
        top_p: body.get("top_p").and_then(serde_json::Value::as_f64),
        seed: body
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(rand::random),
        stop,
    })
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

async fn chat(
    provider: &str,
    timeouts: &Timeouts,
    model: &Arc<LocalChat>,
    deployment: &DeploymentConfig,
    req: &UpstreamRequest<'_>,
    deadlines: (Instant, Instant),
) -> Result<UpstreamReply, ProviderError> {
    refuse_unsupported(req.body)?;
    let conversation = messages(req.body)?;
    let sampling = sampling(req.body, deployment, model.package.default_temperature)?;
    let mut events = model
        .submit(req.enrich.tenant_id, conversation, sampling, deadlines)
        .map_err(|why| refused(deployment, why))?;
    let deadline = tokio::time::Instant::from_std(deadlines.1);
    let prompt_tokens = match tokio::time::timeout_at(deadline, events.recv()).await {
        Err(_) | Ok(None) => {
            return Err(failed(
                provider,
                timeouts,
                Failure::TimedOut { stage: WAITING },
            ));
        }
        Ok(Some(ChatEvent::Started { prompt_tokens })) => prompt_tokens,
        Ok(Some(ChatEvent::Failed(f))) => return Err(failed(provider, timeouts, f)),
        Ok(Some(other)) => {
            return Err(failed(
                provider,
                timeouts,
                Failure::Internal(format!("unexpected {other:?}")),
            ));
        }
    };
    let answer = Answer {
        id: format!("chatcmpl-{}", req.enrich.request_id),
        created: unix_seconds(),
        model: deployment.upstream_model.clone(),
        fingerprint: format!("sha256:{}", &model.digest[..16]),
        prompt_tokens,
    };
    if req.stream {
        return Ok(stream(
            provider,
            timeouts,
            answer,
            events,
            deadline,
            req.client_wants_usage,
        ));
    }
    complete(provider, timeouts, answer, &mut events, deadline).await
}

/// What every chunk or body of one answer repeats.
struct Answer {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    prompt_tokens: usize,
}

impl Answer {
    fn usage(&self, completion_tokens: usize) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens as u64,
            completion_tokens: completion_tokens as u64,
        }
    }

    fn usage_json(&self, completion_tokens: usize) -> serde_json::Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    fn chunk(&self, delta: serde_json::Value, finish: Option<&str>) -> Bytes {
        let v = serde_json::json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        data_event(v.to_string().as_bytes())
    }

    fn usage_chunk(&self, completion_tokens: usize) -> Bytes {
        let v = serde_json::json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": self.fingerprint,
            "choices": [], "usage": self.usage_json(completion_tokens),
        });
        data_event(v.to_string().as_bytes())
    }
}

async fn complete(
    provider: &str,
    timeouts: &Timeouts,
    answer: Answer,
    events: &mut mpsc::Receiver<ChatEvent>,
    deadline: tokio::time::Instant,
) -> Result<UpstreamReply, ProviderError> {
    let mut text = String::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) | Ok(None) => {
                return Err(failed(
                    provider,
                    timeouts,
                    Failure::TimedOut {
                        stage: "generation",
                    },
                ));
            }
            Ok(Some(ChatEvent::Text(t))) => text.push_str(&t),
            Ok(Some(ChatEvent::Failed(f))) => return Err(failed(provider, timeouts, f)),
            Ok(Some(ChatEvent::Started { .. })) => {}
            Ok(Some(ChatEvent::Finished {
                text: tail,
                finish,
                completion_tokens,
            })) => {
                text.push_str(&tail);
                let body = serde_json::json!({
                    "id": answer.id,
                    "object": "chat.completion",
                    "created": answer.created,
                    "model": answer.model,
                    "system_fingerprint": answer.fingerprint,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason(finish),
                    }],
                    "usage": answer.usage_json(completion_tokens),
                });
                return Ok(UpstreamReply::Complete {
                    json: body,
                    usage: Some(answer.usage(completion_tokens)),
                });
            }
        }
    }
}

/// The streamed answer: a role chunk, one chunk per piece of text, the finish chunk, the usage chunk when
/// the client asked for it. Dropping it drops the receiver, which stops the generation.
fn stream(
    provider: &str,
    timeouts: &Timeouts,
    answer: Answer,
    events: mpsc::Receiver<ChatEvent>,
    deadline: tokio::time::Instant,
    client_wants_usage: bool,
) -> UpstreamReply {
    let provider = provider.to_owned();
    let timeouts = *timeouts;
    let first = answer.chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    );
    let state = (
        events,
        Some(answer),
        std::collections::VecDeque::from([Ok(StreamItem::Chunk(first))]),
    );
    let s = futures_util::stream::unfold(state, move |(mut events, mut answer, mut pending)| {
        let provider = provider.clone();
        async move {
            loop {
                if let Some(item) = pending.pop_front() {
                    return Some((item, (events, answer, pending)));
                }
                let current = answer.as_ref()?;
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) | Ok(None) => {
                        answer = None;
                        pending.push_back(Err(failed(
                            &provider,
                            &timeouts,
                            Failure::TimedOut {
                                stage: "generation",
                            },
                        )));
                    }
                    Ok(Some(ChatEvent::Started { .. })) => {}
                    Ok(Some(ChatEvent::Text(t))) => {
                        pending.push_back(Ok(StreamItem::Chunk(
                            current.chunk(serde_json::json!({"content": t}), None),
                        )));
                    }
                    Ok(Some(ChatEvent::Failed(f))) => {
                        answer = None;
                        pending.push_back(Err(failed(&provider, &timeouts, f)));
                    }
                    Ok(Some(ChatEvent::Finished {
                        text,
                        finish,
                        completion_tokens,
                    })) => {
                        if !text.is_empty() {
                            pending.push_back(Ok(StreamItem::Chunk(
                                current.chunk(serde_json::json!({"content": text}), None),
                            )));
                        }
                        pending.push_back(Ok(StreamItem::Chunk(
                            current.chunk(serde_json::json!({}), Some(finish_reason(finish))),
                        )));
                        if client_wants_usage {
                            pending.push_back(Ok(StreamItem::Chunk(
                                current.usage_chunk(completion_tokens),
                            )));
                        }
                        pending.push_back(Ok(StreamItem::Usage(current.usage(completion_tokens))));
                        pending.push_back(Ok(StreamItem::Done));
                        answer = None;
                    }
                }
            }
        }
    });
    UpstreamReply::Stream(Box::pin(s.fuse()))
}

/// The inputs of an embeddings request: a string or a list of strings (token lists are for remote models).
fn inputs(body: &serde_json::Value) -> Result<Vec<String>, ProviderError> {
    match body.get("input") {
        Some(serde_json::Value::String(s)) => Ok(vec![s.clone()]),
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    unsupported("input", "the local embedder takes text, not token lists")
                })
            })
            .collect(),
        _ => Err(unsupported(
            "input",
            "must be a string or a non-empty list of strings",
        )),
    }
}

async fn embeddings(
    provider: &str,
    timeouts: &Timeouts,
    model: &Arc<LocalEmbedder>,
    deployment: &DeploymentConfig,
    req: &UpstreamRequest<'_>,
    deadline: Instant,
) -> Result<UpstreamReply, ProviderError> {
    let inputs = inputs(req.body)?;
    if let Some(d) = req
        .body
        .get("dimensions")
        .and_then(serde_json::Value::as_u64)
        && d != model.dims() as u64
    {
        return Err(unsupported(
            "dimensions",
            format!("this model makes {} dimensions", model.dims()),
        ));
    }
    let base64 = match req
        .body
        .get("encoding_format")
        .and_then(serde_json::Value::as_str)
    {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(unsupported(
                "encoding_format",
                "must be `float` or `base64`",
            ));
        }
    };
    let vectors = model
        .embed(req.enrich.tenant_id, inputs, deadline)
        .await
        .map_err(|e| match e {
            EmbedRefusal::Queue(why) => refused(deployment, why),
            EmbedRefusal::Failed(f) => failed(provider, timeouts, f),
        })?;
    let tokens: usize = vectors.iter().map(|e| e.tokens).sum();
    let data: Vec<serde_json::Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(e.vector)
            };
            serde_json::json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": deployment.upstream_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Ok(UpstreamReply::Complete {
        json: body,
        usage: Some(Usage {
            prompt_tokens: tokens as u64,
            completion_tokens: 0,
        }),
    })
}
