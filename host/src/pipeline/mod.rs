//! The data plane: `POST /v1/chat/completions`, `POST /v1/embeddings` and `GET /v1/models`. An inference
//! request runs the phases in `phase/`, one file each, in the order `phases` lists them, over one `Call`
//! (`call.rs`) that owns the request's state; a streamed answer is an `AnswerStream` (`stream.rs`) that
//! owns the request's audit entry. It knows nothing of the HTTP server: the edge hands it the headers and a
//! future of the body's bytes and renders the `Reply` it returns.

mod call;
mod phase;
mod stream;

use bytes::Bytes;
use http::HeaderMap;

pub use call::{Typed, parse_chat, parse_embeddings};
pub use stream::AnswerStream;

use crate::admission::RateState;
use crate::cache::CacheStatus;
use crate::config::{DeploymentKind, Tier};
use crate::error::ApiError;
use crate::exchange::{BodyRead, Exchange};
use crate::providers::Endpoint;
use call::Call;

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

/// What a phase tells the pipeline: go on to the next phase, or end the request with this answer.
pub(crate) enum Flow {
    Next,
    Answer(Reply),
}

/// `POST /v1/chat/completions`.
pub async fn chat(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: BodyRead,
) -> Result<Reply, ApiError> {
    serve(ex, headers, body, Endpoint::Chat).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: BodyRead,
) -> Result<Reply, ApiError> {
    serve(ex, headers, body, Endpoint::Embeddings).await
}

/// Authenticates (401 before the body is read), reads and validates the body, runs the phases, and audits
/// every outcome after `authenticate` exactly once: an error here, a complete answer in `respond`, a stream
/// when it ends (or the guard, if nothing did).
async fn serve(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: BodyRead,
    endpoint: Endpoint,
) -> Result<Reply, ApiError> {
    let name = match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
    };
    ex.authenticate(headers, name)?;
    let (request, prompt) = match phase::validate::run(ex, body, endpoint).await {
        Ok(valid) => valid,
        Err(e) => {
            ex.audit_error(&e).await?;
            return Err(e);
        }
    };
    let mut call = Call::new(ex, headers, endpoint, request, prompt);
    let (model, prompt, bound) = (
        call.model.clone(),
        call.prompt.clone(),
        call.bound.prompt_tokens,
    );
    call.ex.note(|r| {
        r.model = model;
        r.prompt = Some(prompt);
        r.prompt_tokens_bound = bound;
    });
    match phases(&mut call).await {
        Ok(reply) => Ok(reply),
        Err(e) => {
            call.ex.audit_error(&e).await?;
            Err(e)
        }
    }
}

/// The phases in order. Rate and concurrency limits (`admit`) come before any policy work but the tenant's
/// own `auth`; the cache before `route` (a hit needs no route); the budget reservation after `route`, whose
/// worst case needs the prices of every deployment the request may fail over to.
async fn phases(call: &mut Call<'_>) -> Result<Reply, ApiError> {
    macro_rules! step {
        ($phase:path) => {
            if let Flow::Answer(reply) = $phase(call).await? {
                return Ok(reply);
            }
        };
    }
    step!(phase::authorize::run);
    step!(phase::admit::run);
    step!(phase::candidates::run);
    step!(phase::classify::run);
    step!(phase::cache::run);
    step!(phase::route::run);
    step!(phase::reserve::run);
    step!(phase::forward::run);
    phase::respond::run(call).await
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
        .map_err(|e| ApiError::from(&e))?;
    Ok(Reply::Json {
        status: 200,
        body: Bytes::from(body.to_string()),
        routed: None,
    })
}
