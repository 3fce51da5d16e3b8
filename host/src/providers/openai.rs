//! Adapter for OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI): the request passes
//! through with the upstream model name; streams pass through event by event, with usage captured.

use bytes::Bytes;
use futures_util::stream;
use http_body_util::BodyExt;

use super::sse::{SseDecoder, data_event};
use super::{
    Endpoint, HttpsClient, ProviderError, StreamItem, UpstreamReply, UpstreamRequest, post_json,
    read_json, usage_of,
};
use crate::config::{DeploymentConfig, Secret, Timeouts};

pub(super) struct OpenAi {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub client: HttpsClient,
}

impl super::Adapter for OpenAi {
    async fn call(
        &self,
        provider: &str,
        timeouts: &Timeouts,
        _deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        let deadline = tokio::time::Instant::now() + timeouts.total;
        let path = match req.endpoint {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Embeddings => "/embeddings",
        };
        let mut extra = Vec::with_capacity(2);
        if req.stream {
            extra.push((http::header::ACCEPT, "text/event-stream".to_owned()));
        }
        if let Some(key) = &self.api_key {
            extra.push((
                http::header::AUTHORIZATION,
                format!("Bearer {}", key.expose()),
            ));
        }
        let url = format!("{}{path}", self.base_url);
        let resp = post_json(
            &self.client,
            provider,
            timeouts,
            deadline,
            url,
            &req.enrich,
            req.body,
            extra,
        )
        .await?;
        if !req.stream {
            let (_, json) = read_json(provider, resp, deadline, timeouts.total).await?;
            return Ok(UpstreamReply::Complete {
                usage: usage_of(&json),
                json,
            });
        }
        let state = PassThrough {
            provider: provider.to_owned(),
            body: resp.into_body(),
            decoder: SseDecoder::default(),
            deadline,
            total: timeouts.total,
            client_wants_usage: req.client_wants_usage,
            finished: false,
            stashed: None,
        };
        Ok(UpstreamReply::Stream(Box::pin(stream::unfold(
            state,
            PassThrough::next,
        ))))
    }
}

struct PassThrough {
    provider: String,
    body: hyper::body::Incoming,
    decoder: SseDecoder,
    deadline: tokio::time::Instant,
    total: std::time::Duration,
    client_wants_usage: bool,
    finished: bool,
    /// A chunk to emit on the next poll (after the usage item decoded from it).
    stashed: Option<Bytes>,
}

impl PassThrough {
    async fn next(mut self) -> Option<(Result<StreamItem, ProviderError>, Self)> {
        if let Some(chunk) = self.stashed.take() {
            return Some((Ok(StreamItem::Chunk(chunk)), self));
        }
        if self.finished {
            return None;
        }
        loop {
            if let Some(event) = self.decoder.next_event() {
                if event.data == "[DONE]" {
                    self.finished = true;
                    return Some((Ok(StreamItem::Done), self));
                }
                // An error event ends the answer, whatever follows it (`[DONE]` included): the stream failed.
                if event.data.contains("\"error\"")
                    && let Some(kind) = error_event(&event.data)
                {
                    self.finished = true;
                    let err = ProviderError::StreamError {
                        provider: self.provider.clone(),
                        kind,
                    };
                    return Some((Err(err), self));
                }
                // Only the usage chunk needs parsing; every other event passes through untouched.
                if event.data.contains("\"usage\"")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&event.data)
                    && let Some(usage) = usage_of(&v)
                {
                    let usage_only = v
                        .get("choices")
                        .and_then(serde_json::Value::as_array)
                        .is_some_and(Vec::is_empty);
                    if usage_only && !self.client_wants_usage {
                        return Some((Ok(StreamItem::Usage(usage)), self));
                    }
                    // Forward the chunk too: the client asked for it or it carries content.
                    self.stashed = Some(data_event(event.data.as_bytes()));
                    return Some((Ok(StreamItem::Usage(usage)), self));
                }
                return Some((
                    Ok(StreamItem::Chunk(data_event(event.data.as_bytes()))),
                    self,
                ));
            }
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => {
                    self.finished = true;
                    let err = ProviderError::Timeout {
                        provider: self.provider.clone(),
                        after: self.total,
                        stage: "the end of the stream",
                    };
                    return Some((Err(err), self));
                }
                Ok(None) => {
                    // The upstream closed without `[DONE]`: a broken stream, not a finished one.
                    self.finished = true;
                    let err = ProviderError::Reset {
                        provider: self.provider.clone(),
                        detail: "the stream ended without [DONE]".to_owned(),
                    };
                    return Some((Err(err), self));
                }
                Ok(Some(Err(e))) => {
                    self.finished = true;
                    let err = ProviderError::Reset {
                        provider: self.provider.clone(),
                        detail: e.to_string(),
                    };
                    return Some((Err(err), self));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.decoder.push(&data);
                if self.decoder.pending() > super::sse::MAX_EVENT_BYTES {
                    self.finished = true;
                    let err = ProviderError::Protocol {
                        provider: self.provider.clone(),
                        detail: "an SSE event exceeded the size limit".to_owned(),
                    };
                    return Some((Err(err), self));
                }
            }
        }
    }
}

/// The kind of an OpenAI-style error event (`{"error": {...}}` at the top level), if `data` is one: its
/// `type` or `code` when that is a short identifier, else `error`. Never the upstream's message.
fn error_event(data: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    let error = v.get("error").filter(|e| !e.is_null())?;
    let kind = ["type", "code"]
        .iter()
        .filter_map(|field| error.get(*field).and_then(serde_json::Value::as_str))
        .find(|k| {
            !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        });
    Some(kind.unwrap_or("error").to_owned())
}

#[cfg(test)]
mod tests {
    use super::error_event;

    #[test]
    fn an_error_event_is_recognised_and_only_its_kind_is_kept() {
        assert_eq!(
            error_event(r#"{"error": {"message": "CUDA out of memory, prompt was ...", "type": "internal_error"}}"#)
                .as_deref(),
            Some("internal_error")
        );
        assert_eq!(
            error_event(r#"{"error": {"message": "x", "type": "has spaces: and text"}}"#)
                .as_deref(),
            Some("error")
        );
        assert_eq!(
            error_event(r#"{"error": "boom"}"#).as_deref(),
            Some("error")
        );
        for not_one in [
            r#"{"choices": [{"delta": {"content": "\"error\""}}]}"#,
            r#"{"error": null, "choices": []}"#,
            "not json",
        ] {
            assert_eq!(error_event(not_one), None, "{not_one}");
        }
    }
}
