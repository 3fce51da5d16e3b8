//! Adapter for the Anthropic Messages API: chat requests are translated to messages requests, answers and
//! streaming events back to chat completions (`anthropic_translate` holds the pure translation).

use futures_util::stream;
use http_body_util::BodyExt;

use super::anthropic_translate::{self as translate, StreamTranslator, TranslateError};
use super::sse::{SseDecoder, data_event};
use super::{
    Endpoint, HttpsClient, ProviderError, StreamItem, UpstreamReply, UpstreamRequest, post_json,
    read_json, unix_seconds,
};
use crate::config::{DeploymentConfig, Secret, Timeouts};

/// Anthropic requires `max_tokens`; used when the client sets none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

pub(super) struct Anthropic {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub version: String,
    pub client: HttpsClient,
}

fn translate_err(provider: &str, e: TranslateError) -> ProviderError {
    match e {
        TranslateError::InvalidField { field, reason } => ProviderError::Unsupported {
            reason: format!("`{field}`: {reason} (deployment is served by Anthropic)"),
            field,
        },
        TranslateError::UnexpectedUpstream(detail) => ProviderError::Protocol {
            provider: provider.to_owned(),
            detail,
        },
    }
}

impl super::Adapter for Anthropic {
    async fn call(
        &self,
        provider: &str,
        timeouts: &Timeouts,
        deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        if req.endpoint == Endpoint::Embeddings {
            return Err(ProviderError::Unsupported {
                field: "model".to_owned(),
                reason: "Anthropic deployments do not serve embeddings".to_owned(),
            });
        }
        let deadline = tokio::time::Instant::now() + timeouts.total;
        let body =
            translate::chat_to_messages(req.body, &deployment.upstream_model, DEFAULT_MAX_TOKENS)
                .map_err(|e| translate_err(provider, e))?;
        let mut extra = vec![(
            http::HeaderName::from_static("anthropic-version"),
            self.version.clone(),
        )];
        if let Some(key) = &self.api_key {
            extra.push((
                http::HeaderName::from_static("x-api-key"),
                key.expose().to_owned(),
            ));
        }
        let url = format!("{}/messages", self.base_url);
        let resp = post_json(
            &self.client,
            provider,
            timeouts,
            deadline,
            url,
            &req.enrich,
            &body,
            extra,
        )
        .await?;
        let id = format!("chatcmpl-{}", req.enrich.request_id);
        let created = unix_seconds();
        if !req.stream {
            let (_, parsed) = read_json(provider, resp, deadline, timeouts.total).await?;
            let (chat, usage) =
                translate::messages_to_chat(&parsed, &id, &deployment.upstream_model, created)
                    .map_err(|e| translate_err(provider, e))?;
            return Ok(UpstreamReply::Complete {
                json: chat,
                usage: Some(usage),
            });
        }
        let state = Translating {
            provider: provider.to_owned(),
            body: resp.into_body(),
            decoder: SseDecoder::default(),
            translator: StreamTranslator::new(
                id,
                deployment.upstream_model.clone(),
                created,
                req.client_wants_usage,
            ),
            deadline,
            total: timeouts.total,
            queue: std::collections::VecDeque::new(),
            ended: false,
        };
        Ok(UpstreamReply::Stream(Box::pin(stream::unfold(
            state,
            Translating::next,
        ))))
    }
}

struct Translating {
    provider: String,
    body: hyper::body::Incoming,
    decoder: SseDecoder,
    translator: StreamTranslator,
    deadline: tokio::time::Instant,
    total: std::time::Duration,
    /// Items translated from one upstream event, emitted one per poll.
    queue: std::collections::VecDeque<Result<StreamItem, ProviderError>>,
    ended: bool,
}

impl Translating {
    async fn next(mut self) -> Option<(Result<StreamItem, ProviderError>, Self)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            if let Some(event) = self.decoder.next_event() {
                self.translate(event);
                continue;
            }
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => Err(ProviderError::Timeout {
                    provider: self.provider.clone(),
                    after: self.total,
                    stage: "the end of the stream",
                }),
                Ok(None) => Err(ProviderError::Reset {
                    provider: self.provider.clone(),
                    detail: "the stream ended before message_stop".to_owned(),
                }),
                Ok(Some(Err(e))) => Err(ProviderError::Reset {
                    provider: self.provider.clone(),
                    detail: e.to_string(),
                }),
                Ok(Some(Ok(frame))) => Ok(frame),
            };
            match frame {
                Err(e) => {
                    self.ended = true;
                    self.queue.push_back(Err(e));
                }
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                    if self.decoder.pending() > super::sse::MAX_EVENT_BYTES {
                        self.ended = true;
                        self.queue.push_back(Err(ProviderError::Protocol {
                            provider: self.provider.clone(),
                            detail: "an SSE event exceeded the size limit".to_owned(),
                        }));
                    }
                }
            }
        }
    }

    fn translate(&mut self, event: super::sse::SseEvent) {
        let name = event.event.as_deref().unwrap_or("message");
        let data: serde_json::Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                self.ended = true;
                self.queue.push_back(Err(ProviderError::Protocol {
                    provider: self.provider.clone(),
                    detail: format!("event `{name}` is not JSON: {e}"),
                }));
                return;
            }
        };
        match self.translator.on_event(name, &data) {
            Err(e) => {
                self.ended = true;
                self.queue.push_back(Err(translate_err(&self.provider, e)));
            }
            Ok(chunks) => {
                for c in chunks {
                    self.queue
                        .push_back(Ok(StreamItem::Chunk(data_event(c.to_string().as_bytes()))));
                }
                if self.translator.finished() {
                    self.ended = true;
                    self.queue
                        .push_back(Ok(StreamItem::Usage(self.translator.usage())));
                    self.queue.push_back(Ok(StreamItem::Done));
                }
            }
        }
    }
}
