//! `Call`: one inference request as the phases see it. It owns the request's state: each phase reads what
//! the earlier ones left on it and adds its own, and nothing is handed out and put back. `Typed` is the
//! client's request, typed; it stays typed until `forward` serialises it for each deployment it tries.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::admission::Ticket;
use crate::cache::{self, CacheStatus};
use crate::config::DeploymentKind;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Exchange;
use crate::policy::{self, Classified, PolicyRequest, Route, TenantPolicies, Trail};
use crate::providers::{Deployment, Endpoint, SlotPermit, UpstreamReply};
use crate::wire::{self, ChatRequest, EmbeddingsRequest};

/// The client's request, typed. Unknown fields ride in each type's `rest` map.
#[derive(Debug)]
pub enum Typed {
    Chat(Box<ChatRequest>),
    Embeddings(EmbeddingsRequest),
}

impl Typed {
    /// The request as an upstream of `upstream_model` gets it.
    pub(super) fn for_upstream(
        &mut self,
        upstream_model: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let encoded = match self {
            Typed::Chat(chat) => {
                upstream_model.clone_into(&mut chat.model);
                serde_json::to_value(&**chat)
            }
            Typed::Embeddings(emb) => {
                upstream_model.clone_into(&mut emb.model);
                serde_json::to_value(&*emb)
            }
        };
        encoded
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("encoding the request: {e}")))
    }

    pub(super) fn chat(&self) -> Option<&ChatRequest> {
        match self {
            Typed::Chat(chat) => Some(chat),
            Typed::Embeddings(_) => None,
        }
    }
}

/// Parses and checks a chat request. `Err` is a 400 naming the parameter.
pub fn parse_chat(body: &[u8]) -> Result<Typed, ApiError> {
    let chat: ChatRequest = wire::parse_body(body)?;
    chat.validate()?;
    Ok(Typed::Chat(Box::new(chat)))
}

/// Parses and checks an embeddings request. `Err` is a 400 naming the parameter.
pub fn parse_embeddings(body: &[u8]) -> Result<Typed, ApiError> {
    let emb: EmbeddingsRequest = wire::parse_body(body)?;
    emb.validate()?;
    Ok(Typed::Embeddings(emb))
}

/// One embedding of the request's question (`cache::key::question_text`), made once per request.
pub(super) struct Embedded {
    pub question: String,
    pub vector: Vec<f32>,
    /// The embedding model's weights, SHA-256 hex.
    pub digest: String,
}

/// The deployment that answered, its answer, and its concurrency slot (held until the answer is done).
pub(super) struct Forwarded {
    pub deployment: Arc<Deployment>,
    pub reply: UpstreamReply,
    pub permit: SlotPermit,
}

/// One inference request and what each phase adds, in the order the phases run.
pub struct Call<'x> {
    pub(super) ex: &'x mut Exchange,
    pub(super) headers: &'x HeaderMap,
    pub(super) endpoint: Endpoint,
    /// The model the client named (`auto` lets the policies choose).
    pub(super) model: String,
    pub(super) request: Typed,
    /// The request body as the client sent it: the audited prompt.
    pub(super) prompt: Bytes,
    /// Upper bounds of what the request can be billed: prompt tokens, choices, content without a bound.
    pub(super) bound: wire::ChatBound,
    /// The output cap the client asked for.
    pub(super) max_output: Option<u32>,
    pub(super) stream: bool,
    pub(super) client_wants_usage: bool,
    /// The tenant's uploaded policies, if any.
    pub(super) tenant: Option<Arc<TenantPolicies>>,
    /// What the policies see; built by `authorize` only when a policy will run; `route` consumes it.
    pub(super) view: Option<Arc<PolicyRequest>>,
    /// Which policies decided, for the entry.
    pub(super) trail: Trail,
    /// admit: the request's hold on its tenant's limits.
    pub(super) ticket: Option<Arc<Ticket>>,
    /// candidates: the deployments the request may use; `route` consumes them.
    pub(super) candidates: Vec<Arc<Deployment>>,
    /// classify: the tier, score and labels.
    pub(super) classified: Option<Classified>,
    /// classify: the question's embedding, when the classifier read it; the cache phase reuses it.
    pub(super) embedded: Option<Embedded>,
    /// cache: what the cache did (`x-sluice-cache` and the entry).
    pub(super) cache: CacheStatus,
    /// cache: what a miss keeps to store its answer.
    pub(super) pending: Option<cache::Pending>,
    /// route: the deployments to try, in order; `forward` consumes it.
    pub(super) route: Option<Route>,
    /// forward: the deployment that answered and its answer, for `respond`.
    pub(super) forwarded: Option<Forwarded>,
}

impl<'x> Call<'x> {
    pub(super) fn new(
        ex: &'x mut Exchange,
        headers: &'x HeaderMap,
        endpoint: Endpoint,
        request: Typed,
        prompt: Bytes,
    ) -> Call<'x> {
        let (model, bound, max_output, stream, client_wants_usage) = match &request {
            Typed::Chat(chat) => (
                chat.model.clone(),
                wire::chat_bound(chat),
                chat.max_output_tokens(),
                chat.is_stream(),
                chat.wants_usage_in_stream(),
            ),
            Typed::Embeddings(emb) => (
                emb.model.clone(),
                wire::ChatBound {
                    prompt_tokens: wire::embeddings_token_upper_bound(emb),
                    choices: 1,
                    extra_output_tokens: 0,
                    unbounded: None,
                },
                None,
                false,
                false,
            ),
        };
        let tenant = ex
            .principal
            .as_ref()
            .and_then(|p| ex.app.policies.tenant(&p.tenant_id));
        Call {
            ex,
            headers,
            endpoint,
            model,
            request,
            prompt,
            bound,
            max_output,
            stream,
            client_wants_usage,
            tenant,
            view: None,
            trail: Trail::default(),
            ticket: None,
            candidates: Vec::new(),
            classified: None,
            embedded: None,
            cache: CacheStatus::Bypass,
            pending: None,
            route: None,
            forwarded: None,
        }
    }

    pub(super) fn kind(&self) -> DeploymentKind {
        match self.endpoint {
            Endpoint::Chat => DeploymentKind::Chat,
            Endpoint::Embeddings => DeploymentKind::Embeddings,
        }
    }

    /// The endpoint's name in the entry and in admission's limits.
    pub(super) fn endpoint_name(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        }
    }

    pub(super) fn auto(&self) -> bool {
        self.model == "auto" && self.endpoint == Endpoint::Chat
    }

    /// Classify and route run for chat only: `auto`, or a tenant that uploaded a policy for them.
    pub(super) fn routes(&self) -> bool {
        self.endpoint == Endpoint::Chat
            && policy::Policies::routes(self.tenant.as_deref(), self.auto())
    }

    pub(super) fn classifies(&self) -> bool {
        self.endpoint == Endpoint::Chat
            && (self.routes() || self.has_policy(policy::Slot::Classify))
    }

    pub(super) fn has_policy(&self, slot: policy::Slot) -> bool {
        self.tenant
            .as_deref()
            .is_some_and(|t| t.active(slot).is_some())
    }

    pub(super) fn tenant_id(&self) -> String {
        self.ex
            .principal
            .as_ref()
            .map(|p| p.tenant_id.to_string())
            .unwrap_or_default()
    }

    /// The rates to report in `x-ratelimit-*`.
    pub(super) fn rates(&self) -> Vec<crate::admission::RateState> {
        self.ticket
            .as_ref()
            .map(|t| t.rates.clone())
            .unwrap_or_default()
    }

    /// The error of a refusal by admission, counted by reason; one for content without a bound names that
    /// content.
    pub(super) fn refused(&self, rejection: &crate::admission::Rejection) -> ApiError {
        self.ex
            .app
            .metrics
            .admission_rejections
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: rejection.reason(),
            })
            .inc();
        let mut e = ApiError::from(rejection);
        if let crate::admission::Rejection::Unbounded { .. } = rejection {
            e.param.clone_from(&self.bound.unbounded);
        }
        e
    }

    /// The remaining budget of the request's tenant and key (the tighter), if either has one.
    pub(super) fn remaining_budget(&self) -> Option<u64> {
        let p = self.ex.principal.as_ref()?;
        self.ex
            .app
            .admission
            .remaining_budget(&p.tenant_id, &p.key_id)
    }
}
