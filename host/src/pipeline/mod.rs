//! The gateway core: the data-plane phases over one `Exchange` per request, the audit guard that gives
//! every authenticated request exactly one entry, and the streamed answer. It knows nothing of the HTTP
//! server: the edge hands it the headers and a future of the body's bytes and renders the `Reply` it
//! returns.

mod audit_guard;
mod exchange;
mod forward;
mod inference;
mod stream;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;

pub use audit_guard::{AuditGuard, CLIENT_CLOSED, Record};
pub use exchange::{Exchange, Phase, audit_unavailable, inject_panic};
pub use inference::{Typed, parse_chat, parse_embeddings};
pub use stream::AnswerStream;

use crate::admission::RateState;
use crate::cache::CacheStatus;
use crate::config::{DeploymentKind, Tier};
use crate::error::ApiError;

/// What a routed answer tells the client about its route, as response headers.
#[derive(Debug, Clone)]
pub struct Routed {
    pub deployment: String,
    pub tier: Tier,
    pub cache: CacheStatus,
    /// The questions' cosine similarity, for a semantic hit (`x-sluice-cache-similarity`).
    pub similarity: Option<f32>,
    /// The tightest request and token limits, as `x-ratelimit-*`.
    pub rates: Vec<RateState>,
}

/// The pipeline's answer, for the edge to render.
#[derive(Debug)]
pub enum Reply {
    /// A complete JSON answer, already audited.
    Json {
        status: u16,
        body: Bytes,
        routed: Option<Routed>,
    },
    /// Server-sent events; the stream audits the request when it ends.
    Stream {
        events: Box<AnswerStream>,
        routed: Routed,
    },
}

/// The request body, read when the pipeline asks for it: after `authenticate`, so an anonymous client is
/// refused before a byte of its body is read or parsed. `Err` is the edge's refusal (size, media type, a
/// body that could not be read).
pub type BodyRead = Pin<Box<dyn Future<Output = Result<Bytes, ApiError>> + Send>>;

/// `POST /v1/chat/completions`.
pub async fn chat(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: BodyRead,
) -> Result<Reply, ApiError> {
    inference::serve(ex, headers, body, crate::providers::Endpoint::Chat).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: BodyRead,
) -> Result<Reply, ApiError> {
    inference::serve(ex, headers, body, crate::providers::Endpoint::Embeddings).await
}

/// `GET /v1/models`: the catalog, for any tenant key; audited like every authenticated request.
pub async fn models(ex: &mut Exchange, headers: &HeaderMap) -> Result<Reply, ApiError> {
    let principal = ex.authenticate(headers, "models")?;
    let tenant = ex.app.policies.tenant(&principal.tenant_id);
    let snapshot = ex.app.routing.load();
    // Only what the tenant may be routed to: a model with no deployment in its allowed regions is as
    // absent here as it is on the chat endpoint.
    let data: Vec<_> = snapshot
        .catalog()
        .filter_map(|(name, deps)| {
            let allowed: Vec<_> = deps
                .iter()
                .filter(|d| {
                    tenant
                        .as_deref()
                        .is_none_or(|t| t.region_allowed(&d.config.region))
                })
                .collect();
            (!allowed.is_empty()).then_some((name, allowed))
        })
        .map(|(name, deps)| {
            serde_json::json!({
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "sluice",
                "kind": match deps.first().map(|d| d.config.kind) {
                    Some(DeploymentKind::Embeddings) => "embeddings",
                    _ => "chat",
                },
                "tier": deps.first().map(|d| d.config.tier.as_str()),
                "region": deps.first().map(|d| d.config.region.as_str()),
            })
        })
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    ex.audit
        .commit(200, None, None, None)
        .await
        .map_err(|e| audit_unavailable(&ex.app, &e))?;
    Ok(Reply::Json {
        status: 200,
        body: Bytes::from(body.to_string()),
        routed: None,
    })
}
