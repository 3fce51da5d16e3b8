//! The gateway core: the data-plane phases over one `Exchange` per request, the audit guard that gives
//! every authenticated request exactly one entry, and the streamed answer. It knows nothing of the HTTP
//! server: the edge hands it the headers and the body's bytes and renders the `Reply` it returns.

mod audit_guard;
mod exchange;
mod forward;
mod inference;
mod stream;

use bytes::Bytes;
use http::HeaderMap;

pub use audit_guard::{AuditGuard, CLIENT_CLOSED, Record};
pub use exchange::{Exchange, Phase, audit_unavailable, inject_panic};
pub use inference::{Typed, parse_chat, parse_embeddings, run};
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

/// `POST /v1/chat/completions`, from the validated body on.
pub async fn chat(ex: &mut Exchange, headers: &HeaderMap, body: Bytes) -> Result<Reply, ApiError> {
    ex.enter(Phase::Validate);
    let start = std::time::Instant::now();
    let request = parse_chat(&body);
    ex.app
        .metrics
        .observe_phase("validate", start.elapsed().as_secs_f64());
    let request = request?;
    run(ex, headers, request, body).await
}

/// `POST /v1/embeddings`, from the validated body on.
pub async fn embeddings(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, ApiError> {
    ex.enter(Phase::Validate);
    let start = std::time::Instant::now();
    let request = parse_embeddings(&body);
    ex.app
        .metrics
        .observe_phase("validate", start.elapsed().as_secs_f64());
    let request = request?;
    run(ex, headers, request, body).await
}

/// `GET /v1/models`: the catalog, for any tenant key; audited like every authenticated request.
pub async fn models(ex: &mut Exchange, headers: &HeaderMap) -> Result<Reply, ApiError> {
    ex.authenticate(headers, "models")?;
    let snapshot = ex.app.routing.load();
    let data: Vec<_> = snapshot
        .catalog()
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
