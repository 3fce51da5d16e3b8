//! The data-plane phases of `POST /v1/chat/completions` and `POST /v1/embeddings`, in the order they run:
//! validate (parse) → authenticate → authorize → admit → candidates → classify → cache → route (and the
//! budget's degradation) → reserve → forward → respond (settle, audit, or hand both to the stream). A cache
//! hit skips from cache to respond: nothing is reserved or forwarded.
//!
//! Each phase is one function over the request's `Call`; `Ok` continues, `Err` ends the request with that
//! error, which `run` audits before it is answered. The typed request stays typed until `forward`
//! serialises it for each deployment it tries.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, header};

use super::exchange::{Exchange, Phase, audit_unavailable};
use super::forward::{self, CallShape};
use super::stream::AnswerStream;
use super::{Reply, Routed};
use crate::admission::{BudgetAsk, Demand, Ticket};
use crate::cache;
use crate::config::{DeploymentKind, Tier};
use crate::error::{ApiError, ErrorCode};
use crate::policy::{self, Classified, PolicyRequest, RequestFacts, Route, TenantPolicies, Trail};
use crate::providers::{Deployment, Endpoint, Enrichment, UpstreamReply};
use crate::wire::{self, ChatRequest, EmbeddingsRequest, StreamOptions};

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

    fn chat(&self) -> Option<&ChatRequest> {
        match self {
            Typed::Chat(chat) => Some(chat),
            Typed::Embeddings(_) => None,
        }
    }
}

/// One inference request as the phases see it, and what each phase adds, in order.
pub struct Call<'x> {
    pub ex: &'x mut Exchange,
    pub headers: &'x HeaderMap,
    pub endpoint: Endpoint,
    /// The model the client named (`auto` lets the policies choose).
    pub model: String,
    pub request: Typed,
    /// The request body as the client sent it: the audited prompt.
    pub prompt: Bytes,
    /// Upper bounds of what the request can be billed: prompt tokens, choices, content without a bound.
    pub bound: wire::ChatBound,
    /// The output cap the client asked for.
    pub max_output: Option<u32>,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// The tenant's uploaded policies, if any.
    tenant: Option<Arc<TenantPolicies>>,
    /// What the policies see; built only when one runs.
    view: Option<Arc<PolicyRequest>>,
    trail: Trail,
    /// admit: the request's hold on its tenant's limits.
    ticket: Option<Arc<Ticket>>,
    /// candidates: the deployments the request may use.
    candidates: Vec<Arc<Deployment>>,
    /// classify: the tier, score and labels.
    classified: Option<Classified>,
    /// route: the deployments to try, in order.
    route: Option<Route>,
    /// cache: what a miss keeps to store its answer.
    pending: Option<cache::Pending>,
    /// classify: the question's embedding, when the classifier read it; the cache reuses it.
    embedded: Option<Embedded>,
}

/// One embedding of the request's question (`cache::key::question_text`), made once per request.
struct Embedded {
    question: String,
    vector: Vec<f32>,
    /// The embedding model's weights, SHA-256 hex.
    digest: String,
}

impl Call<'_> {
    fn kind(&self) -> DeploymentKind {
        match self.endpoint {
            Endpoint::Chat => DeploymentKind::Chat,
            Endpoint::Embeddings => DeploymentKind::Embeddings,
        }
    }

    fn auto(&self) -> bool {
        self.model == "auto" && self.endpoint == Endpoint::Chat
    }

    /// Classify and route run for chat only: `auto`, or a tenant that uploaded a policy for them.
    fn routes(&self) -> bool {
        self.endpoint == Endpoint::Chat
            && policy::Policies::routes(self.tenant.as_deref(), self.auto())
    }

    fn classifies(&self) -> bool {
        self.endpoint == Endpoint::Chat
            && (self.routes() || self.has_policy(policy::Slot::Classify))
    }

    fn has_policy(&self, slot: policy::Slot) -> bool {
        self.tenant
            .as_deref()
            .is_some_and(|t| t.active(slot).is_some())
    }

    fn tenant_id(&self) -> String {
        self.ex
            .principal
            .as_ref()
            .map(|p| p.tenant_id.to_string())
            .unwrap_or_default()
    }

    fn timed<T>(&self, phase: Phase, f: impl FnOnce(&Self) -> T) -> T {
        self.ex.enter(phase);
        let start = Instant::now();
        let out = f(self);
        self.took(phase, start);
        out
    }

    /// Records the time a phase took since `start`.
    fn took(&self, phase: Phase, start: Instant) {
        self.ex
            .app
            .metrics
            .observe_phase(phase.as_str(), start.elapsed().as_secs_f64());
    }
}

// ---- validate: the body into typed structs ------------------------------------------------------------

/// Phase 2, validate: reads the body and parses it into the typed request. `Err` is 400 naming the
/// parameter, or the edge's 413 / 415.
async fn validate(
    ex: &mut Exchange,
    body: super::BodyRead,
    endpoint: Endpoint,
) -> Result<(Typed, Bytes), ApiError> {
    let bytes = body.await?;
    ex.enter(Phase::Validate);
    let start = Instant::now();
    let request = match endpoint {
        Endpoint::Chat => parse_chat(&bytes),
        Endpoint::Embeddings => parse_embeddings(&bytes),
    };
    ex.app
        .metrics
        .observe_phase("validate", start.elapsed().as_secs_f64());
    Ok((request?, bytes))
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

// ---- the request from authenticate on ----------------------------------------------------------------

/// Authenticates, reads and validates the body, runs the phases, and audits every outcome after
/// `authenticate` exactly once: an error here, a complete answer in `respond`, a stream when it ends (or the
/// guard, if nothing did). A request without a valid key is 401 before its body is read.
pub async fn serve(
    ex: &mut Exchange,
    headers: &HeaderMap,
    body: super::BodyRead,
    endpoint: Endpoint,
) -> Result<Reply, ApiError> {
    let name = match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
    };
    let principal = ex.authenticate(headers, name)?;
    let (request, prompt) = match validate(ex, body, endpoint).await {
        Ok(valid) => valid,
        Err(e) => {
            ex.audit_error(&e).await?;
            return Err(e);
        }
    };
    let mut call = Call::new(ex, headers, endpoint, request, prompt);
    call.tenant = call.ex.app.policies.tenant(&principal.tenant_id);
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

impl<'x> Call<'x> {
    fn new(
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
            tenant: None,
            view: None,
            trail: Trail::default(),
            ticket: None,
            candidates: Vec::new(),
            classified: None,
            route: None,
            pending: None,
            embedded: None,
        }
    }
}

/// The phases in order. The budget reservation runs after `route`: the worst case needs the prices of
/// every deployment the request may fail over to; rate and concurrency limits (`admit`) run before.
async fn phases(call: &mut Call<'_>) -> Result<Reply, ApiError> {
    authorize(call).await?;
    admit(call)?;
    candidates(call)?;
    classify(call).await;
    if let Some(hit) = cache(call).await? {
        return answer_from_cache(call, hit).await;
    }
    route(call).await?;
    degrade(call);
    reserve(call).await?;
    let forwarded = forward(call).await?;
    respond(call, forwarded).await
}

/// What the policies see of the request (plain data, nothing secret), built once when a policy will run.
fn policy_view(call: &Call<'_>) -> Option<PolicyRequest> {
    let principal = call.ex.principal.as_ref()?;
    let metadata = call
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix("x-sluice-meta-")?;
            Some((key.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Some(policy::request_view(&RequestFacts {
        request_id: &call.ex.id,
        principal,
        endpoint: call.endpoint,
        model: &call.model,
        chat: call.request.chat(),
        max_tokens: call.max_output,
        stream: call.stream,
        prompt_tokens: call.bound.prompt_tokens,
        metadata,
    }))
}

/// Phase 4, authorize: the tenant's `auth` policy, if any. `Err` is 403 `policy_denied`, or 503 when the
/// wall-clock backstop stopped the policy (the host's fault, retryable), or 429 when the tenant's policies
/// used their CPU budget or fill their line of the policy pool. Its labels go to the next slots.
async fn authorize(call: &mut Call<'_>) -> Result<(), ApiError> {
    if call.has_policy(policy::Slot::Auth) || call.classifies() || call.routes() {
        call.view = policy_view(call).map(Arc::new);
    }
    call.ex.enter(Phase::Authorize);
    if !call.has_policy(policy::Slot::Auth) {
        return Ok(());
    }
    let Some(mut view) = call.view.take() else {
        return Ok(());
    };
    let mut trail = std::mem::take(&mut call.trail);
    let start = Instant::now();
    let outcome = call
        .ex
        .app
        .policies
        .authorize(call.tenant.as_deref(), &view, &mut trail)
        .await;
    call.took(Phase::Authorize, start);
    let decided = trail.as_str().to_owned();
    call.ex.note(|r| r.policy = decided);
    call.trail = trail;
    match outcome {
        policy::AuthOutcome::Allow(labels) => {
            Arc::make_mut(&mut view).labels.extend(labels);
            call.view = Some(view);
            Ok(())
        }
        policy::AuthOutcome::Deny(reason) => Err(ApiError::new(ErrorCode::PolicyDenied, reason)),
        // The policy denied nothing: the host could not run it in time. Retryable.
        policy::AuthOutcome::Overloaded => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the tenant's authorization policy was stopped by the wall-clock backstop: the gateway is overloaded",
        )
        .with_header(header::RETRY_AFTER, "1")),
        // The tenant's own policies used its CPU share: its requests wait, no one else's.
        policy::AuthOutcome::OverBudget(wait) => {
            let retry = wait.as_secs_f64().ceil().max(1.0);
            Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "the tenant's policies used their CPU budget ({} ms per second); retry in {retry} s",
                    call.ex
                        .app
                        .policies
                        .cpu
                        .rate(&view.tenant_id)
                        .as_millis()
                ),
            )
            .with_header(header::RETRY_AFTER, &retry.to_string()))
        }
        // The tenant's own calls fill its line of the pool: the same, and no one else's wait either.
        policy::AuthOutcome::Busy => Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "the tenant's policy calls fill their queue ({} waiting); retry in 1 s",
                call.ex.app.policies.pool.config().queue_per_tenant
            ),
        )
        .with_header(header::RETRY_AFTER, "1")),
    }
}

/// Phase 5, admit: request and token rates and in-flight limits, checked and taken at once. `Err` is 429
/// (with `Retry-After`), or 400 for a request that can never fit a token limit.
fn admit(call: &mut Call<'_>) -> Result<(), ApiError> {
    let Some(principal) = call.ex.principal.clone() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "admit before authenticate",
        ));
    };
    let demand = Demand {
        key_id: &principal.key_id,
        endpoint: call.record_endpoint(),
        tokens: call.bound.prompt_tokens.saturating_add(
            call.max_output
                .map_or(0, |max| call.bound.output_tokens(max)),
        ),
        unbounded: call.bound.unbounded.is_some(),
    };
    let admitted = call.timed(Phase::Admit, |c| {
        c.ex.app.admission.admit(&principal.tenant_id, &demand)
    });
    let ticket = Arc::new(admitted.map_err(|r| call.refused(&r))?);
    let held = ticket.clone();
    call.ex.note(|r| r.ticket = Some(held));
    call.ticket = Some(ticket);
    Ok(())
}

impl Call<'_> {
    fn record_endpoint(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// Counts a rejection by reason and turns it into the client's answer.
impl Call<'_> {
    /// The error of a refusal by admission; one for content without a bound names that content.
    fn refused(&self, rejection: &crate::admission::Rejection) -> ApiError {
        let mut e = rejected(self.ex, rejection);
        if let crate::admission::Rejection::Unbounded { .. } = rejection {
            e.param.clone_from(&self.bound.unbounded);
        }
        e
    }
}

fn rejected(ex: &Exchange, rejection: &crate::admission::Rejection) -> ApiError {
    ex.app
        .metrics
        .admission_rejections
        .get_or_create(&crate::metrics::ReasonLabels {
            reason: rejection.reason(),
        })
        .inc();
    ApiError::from(rejection)
}

/// The candidates: `auto` → the tenant's chat catalog, a name → its deployments; only the tenant's allowed
/// regions. `Err` is 404 `model_not_found`, 403 when no deployment is in an allowed region, or 400 for an
/// `auto` without any chat deployment.
fn candidates(call: &mut Call<'_>) -> Result<(), ApiError> {
    call.ex.enter(Phase::Candidates);
    let snapshot = call.ex.app.routing.load();
    let model = &call.model;
    let found = policy::Policies::candidates(&snapshot, call.tenant.as_deref(), model, call.kind())
        .ok_or_else(|| ApiError {
            code: ErrorCode::ModelNotFound,
            message: format!("the model `{model}` does not exist or you do not have access to it"),
            param: Some("model".to_owned()),
            headers: Vec::new(),
        })?;
    if found.is_empty() {
        return Err(if call.auto() {
            ApiError::invalid(
                "model",
                "`auto` needs a chat deployment in an allowed region",
            )
        } else {
            ApiError::new(
                ErrorCode::PolicyDenied,
                format!("no deployment serving `{model}` is in the tenant's allowed regions"),
            )
        });
    }
    call.candidates = found;
    Ok(())
}

/// Phase 6, classify: the tenant's classifier, or the built-in one when a router will read the tier. A
/// classifier that reads the embedding gets the question's (made here, only then, and kept for the cache);
/// without an embedder, or when it is not made in time, it classifies without one, and the trail says so.
/// A failing classifier falls back to the built-in one; nothing here ends the request.
async fn classify(call: &mut Call<'_>) {
    call.ex.enter(Phase::Classify);
    if !call.classifies() {
        return;
    }
    let Some(mut view) = call.view.take() else {
        return;
    };
    let routes = call.routes();
    let mut trail = std::mem::take(&mut call.trail);
    let start = Instant::now();
    let app = call.ex.app.clone();
    let embedding = if app
        .policies
        .classifier_reads_embedding(call.tenant.as_deref(), routes)
    {
        embed_question(call).await
    } else {
        None
    };
    let classified = app
        .policies
        .classify(call.tenant.as_deref(), &view, routes, embedding, &mut trail)
        .await;
    call.took(Phase::Classify, start);
    if let Some(c) = &classified {
        Arc::make_mut(&mut view)
            .labels
            .extend(c.labels.iter().cloned());
    }
    call.trail = trail;
    call.view = Some(view);
    call.classified = classified;
}

/// The question's embedding for the classifier, kept in `call.embedded` for the cache. `None` without a
/// text question, without an embedder, or when the embedder refuses or is late.
async fn embed_question(call: &mut Call<'_>) -> Option<Arc<policy::Embedding>> {
    let Typed::Chat(chat) = &call.request else {
        return None;
    };
    let question = cache::key::question_text(chat)?;
    let tenant = call.tenant_id();
    let (vector, digest) = embed(&call.ex.app, &tenant, &question).await?;
    let embedding = Arc::new(policy::Embedding {
        model_digest: format!("sha256:{digest}"),
        vector: vector.clone(),
    });
    call.embedded = Some(Embedded {
        question,
        vector,
        digest,
    });
    Some(embedding)
}

/// `text`'s embedding by the routing's embedder, and the embedder's digest; `None` when there is no
/// embedder or it refuses or is late (the caller goes on without).
async fn embed(app: &crate::app::App, tenant: &str, text: &str) -> Option<(Vec<f32>, String)> {
    let embedder = app.routing.load().embedder()?.clone();
    let deadline = Instant::now() + EMBED_WAIT;
    match embedder
        .embed(tenant, vec![text.to_owned()], deadline)
        .await
    {
        Ok(mut e) if e.len() == 1 => Some((e.remove(0).vector, embedder.digest.to_owned())),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(tenant = %tenant, error = ?e, "no embedding");
            None
        }
    }
}

/// Phase 7, cache: the exact tier, then the semantic tier (the request's embedding, kept for the store),
/// within the tenant. A miss keeps what `respond` needs to store the answer. `Err` is 400 for a malformed
/// `x-sluice-cache-threshold`.
async fn cache(call: &mut Call<'_>) -> Result<Option<cache::Hit>, ApiError> {
    call.ex.enter(Phase::Cache);
    let start = Instant::now();
    let tenant = call.tenant_id();
    let outcome = lookup(call, &tenant).await;
    call.took(Phase::Cache, start);
    let (status, hit) = outcome?;
    let app = call.ex.app.clone();
    app.cache.count(&tenant, status);
    let subject = hit.as_ref().map(|h| format!("cache:{}", h.id));
    call.ex.note(|r| {
        r.cache = status;
        if let Some(subject) = subject {
            r.subject = subject;
        }
    });
    Ok(hit)
}

/// How long a request waits for its embedding before it goes on with the exact tier only.
const EMBED_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

async fn lookup(
    call: &mut Call<'_>,
    tenant: &str,
) -> Result<(cache::CacheStatus, Option<cache::Hit>), ApiError> {
    use cache::CacheStatus::{Bypass, HitExact, HitSemantic, Miss};
    let app = call.ex.app.clone();
    let Typed::Chat(chat) = &call.request else {
        return Ok((Bypass, None));
    };
    // A tenant that keeps no content gets no answer kept either.
    if app.audit.retention_days(tenant) == 0 {
        return Ok((Bypass, None));
    }
    let settings = app.cache.settings(tenant);
    let family = match &call.classified {
        Some(c) => format!("{}/{}", call.model, c.tier.as_str()),
        None => call.model.clone(),
    };
    let plan = match app.cache.plan(tenant, chat, call.headers, family) {
        Err(e) => {
            return Err(ApiError::invalid(
                cache::key::THRESHOLD_HEADER,
                e.to_string(),
            ));
        }
        Ok(Err(_)) => return Ok((Bypass, None)),
        Ok(Ok(plan)) => plan,
    };
    if plan.read
        && let Some(hit) = app.cache.lookup_exact(tenant, &plan)
    {
        return Ok((HitExact, Some(hit)));
    }
    let vector = match (&plan.question, call.embedded.take()) {
        (Some(question), Some(e)) if e.question == *question => Some((e.vector, e.digest)),
        (Some(question), _) => embed(&app, tenant, question).await,
        (None, _) => None,
    };
    if plan.read
        && let Some((v, digest)) = &vector
    {
        // f32 as the index measures; 0.95 in f64 and in f32 round to the same f32.
        let threshold = plan
            .threshold
            .map_or(settings.threshold, |t| f64::from(t).max(settings.threshold))
            as f32;
        let query = cache::Query {
            vector: v,
            embedder: digest,
        };
        if let Some(hit) = app
            .cache
            .lookup_semantic(tenant, &plan, query, threshold, true)
        {
            return Ok((HitSemantic, Some(hit)));
        }
    }
    call.pending = Some(app.cache.pending(tenant, plan, vector));
    Ok((Miss, None))
}

/// A hit's answer: the stored completion under a fresh id, at zero cost, as JSON or replayed as a stream.
/// Audited like any answer, with the entry that answered as its subject.
async fn answer_from_cache(call: &mut Call<'_>, hit: cache::Hit) -> Result<Reply, ApiError> {
    call.ex.enter(Phase::Respond);
    let mut status = cache::CacheStatus::Bypass;
    call.ex.note(|r| status = r.cache);
    let created = u64::try_from(crate::storage::unix_now()).unwrap_or(0);
    let body = cache::replay::hit_body(
        &hit.answer.body,
        &format!("chatcmpl-{}", call.ex.id),
        created,
    );
    let routed = Routed {
        deployment: hit.answer.deployment.clone(),
        tier: hit.answer.tier,
        cache: status,
        similarity: hit.similarity,
        rates: call
            .ticket
            .as_ref()
            .map(|t| t.rates.clone())
            .unwrap_or_default(),
    };
    if call.stream {
        let chunks = cache::replay::replay(&body, call.client_wants_usage);
        let items = chunks
            .into_iter()
            .map(|c| Ok(crate::providers::StreamItem::Chunk(c)))
            .chain(std::iter::once(Ok(crate::providers::StreamItem::Done)));
        let guard = call.ex.audit.hand_off();
        let events = Box::new(AnswerStream::new(
            call.ex.app.clone(),
            Box::pin(futures_util::stream::iter(items)),
            guard,
            crate::providers::SlotPermit::none(),
        ));
        return Ok(Reply::Stream { events, routed });
    }
    call.ex
        .audit
        .commit(200, None, None, Some(&body))
        .await
        .map_err(|e| audit_unavailable(&call.ex.app, &e))?;
    Ok(Reply::Json {
        status: 200,
        body,
        routed: Some(routed),
    })
}

/// Phase 8, route: a policy orders the candidates (the host keeps only candidates; a failing or invalid
/// router falls back to the built-in one), or the configured order stands. `Err` is 403 `policy_denied`
/// when the router refused the request.
async fn route(call: &mut Call<'_>) -> Result<(), ApiError> {
    call.ex.enter(Phase::Route);
    let candidates = std::mem::take(&mut call.candidates);
    let view = call.view.take().filter(|_| call.routes());
    let route = match view {
        Some(view) => {
            let tier = call.classified.as_ref().map_or(Tier::Standard, |c| c.tier);
            let remaining = remaining_budget(call);
            let mut trail = std::mem::take(&mut call.trail);
            let start = Instant::now();
            let decided = call
                .ex
                .app
                .policies
                .route(
                    call.tenant.as_deref(),
                    view,
                    tier,
                    candidates,
                    remaining,
                    &mut trail,
                )
                .await;
            call.took(Phase::Route, start);
            call.trail = trail;
            decided
        }
        None => {
            call.trail.configured();
            Ok(Route {
                deployments: candidates.into(),
            })
        }
    };
    let decided = call.trail.as_str().to_owned();
    call.ex.note(|r| r.policy = decided);
    call.route = Some(
        route.map_err(|policy::Refused(reason)| ApiError::new(ErrorCode::PolicyDenied, reason))?,
    );
    Ok(())
}

fn remaining_budget(call: &Call<'_>) -> Option<u64> {
    let p = call.ex.principal.as_ref()?;
    call.ex
        .app
        .admission
        .remaining_budget(&p.tenant_id, &p.key_id)
}

/// The built-in degradation as the budget runs low: deployments it can no longer pay for leave the route.
fn degrade(call: &mut Call<'_>) {
    let Some(remaining) = remaining_budget(call) else {
        return;
    };
    let Some(route) = call.route.take() else {
        return;
    };
    let hint = policy::BudgetHint {
        remaining_micro_usd: remaining,
        prompt_tokens: call.bound.prompt_tokens,
        output_tokens: match call.endpoint {
            Endpoint::Chat => call.max_output,
            Endpoint::Embeddings => Some(0),
        },
        choices: call.bound.choices,
        extra_output_tokens: call.bound.extra_output_tokens,
    };
    call.route = Some(policy::fit_budget(route, &hint));
}

/// Phase 5b, reserve: the worst-case cost at the route's highest prices, against the budgets; the output
/// cap sent upstream is lowered (or set) so the reservation is a true bound. Under a cap, the key's budget
/// cover holds the reservation before anything is forwarded (raised durably first when it must be). `Err`
/// is 402 `budget_exceeded`, or 503 when the cover could not be raised.
async fn reserve(call: &mut Call<'_>) -> Result<(), ApiError> {
    call.ex.enter(Phase::Reserve);
    let (Some(route), Some(ticket)) = (&call.route, call.ticket.clone()) else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "reserve before admit and route",
        ));
    };
    let (price, default_output) = policy::reservation_terms(route.deployments.iter().map(|d| &**d));
    let ask = BudgetAsk {
        prompt_tokens: call.bound.prompt_tokens,
        requested_output: call.max_output,
        choices: call.bound.choices,
        extra_output_tokens: call.bound.extra_output_tokens,
        unbounded: call.bound.unbounded.is_some(),
        default_output,
        price,
        generates: call.endpoint == Endpoint::Chat,
    };
    let start = Instant::now();
    let hold = ticket.reserve_budget(&ask);
    call.ex
        .app
        .metrics
        .observe_phase("reserve", start.elapsed().as_secs_f64());
    let hold = hold.map_err(|r| call.refused(&r))?;
    let reserved = hold.micro_usd;
    call.ex.note(|r| r.reserved_micro_usd = Some(reserved));
    if let (Some(max), Typed::Chat(chat)) = (hold.max_output, &mut call.request) {
        cap_output(chat, max);
        if Some(max) != call.max_output
            && let Some(pending) = &mut call.pending
        {
            // The cache's keys describe the client's cap; an answer this lower cap cuts short is not theirs.
            pending.cap_lowered();
        }
    }
    if hold.capped {
        crate::admission::cover::hold(&call.ex.app.audit, &ticket, &call.ex.app.background)
            .await
            .map_err(|e| audit_unavailable(&call.ex.app, &e))
            .inspect(|waited| {
                if let Some(waited) = waited {
                    call.ex
                        .app
                        .metrics
                        .observe_phase("cover_raise", waited.as_secs_f64());
                }
            })?;
    }
    Ok(())
}

/// Lowers the output cap the upstream gets to `max`: the field the client used (both when it sent both),
/// `max_tokens` when it sent none.
fn cap_output(chat: &mut ChatRequest, max: u32) {
    if chat.max_completion_tokens.is_some() {
        chat.max_completion_tokens = Some(max);
        if chat.max_tokens.is_some() {
            chat.max_tokens = Some(max);
        }
    } else {
        chat.max_tokens = Some(max);
    }
}

/// Phase 9, forward: the route's deployments in order, failing over before the first byte. `Err` is the
/// last upstream failure, as 502 / 504 / 429.
async fn forward(call: &mut Call<'_>) -> Result<forward::Forwarded, ApiError> {
    call.ex.enter(Phase::Forward);
    let Some(route) = call.route.take() else {
        return Err(ApiError::new(ErrorCode::Internal, "forward before route"));
    };
    let tier = call
        .classified
        .as_ref()
        .map_or_else(|| route.configured_tier(), |c| c.tier);
    if let Typed::Chat(chat) = &mut call.request
        && call.stream
    {
        // Always ask for usage so a stream's spend is known; the chunk is withheld unless the client asked.
        chat.stream_options
            .get_or_insert_with(|| StreamOptions {
                include_usage: None,
                rest: serde_json::Map::new(),
            })
            .include_usage = Some(true);
    }
    let tenant = call.tenant_id();
    let shape = CallShape {
        endpoint: call.endpoint,
        stream: call.stream,
        client_wants_usage: call.client_wants_usage,
        enrich: Enrichment {
            request_id: &call.ex.id,
            traceparent: &call.ex.traceparent,
            tenant_id: &tenant,
            tier: tier.as_str(),
        },
    };
    let start = Instant::now();
    let forwarded = forward::forward(&call.ex.app, &route, &mut call.request, &shape).await?;
    call.ex
        .app
        .metrics
        .observe_phase("forward", start.elapsed().as_secs_f64());
    let deployment = forwarded.deployment.clone();
    call.ex.note(|r| r.deployment = Some(deployment));
    Ok(forwarded)
}

/// Phases 10 to 12, respond: a complete answer is settled and audited before it leaves (if its entry
/// cannot be made durable the answer is withheld: 503); a stream takes the entry with it and settles and
/// audits when it ends. `Err` is that 503.
async fn respond(call: &mut Call<'_>, forwarded: forward::Forwarded) -> Result<Reply, ApiError> {
    call.ex.enter(Phase::Respond);
    let forward::Forwarded {
        deployment,
        reply,
        permit,
    } = forwarded;
    let mut cache = cache::CacheStatus::Bypass;
    call.ex.note(|r| cache = r.cache);
    let routed = Routed {
        deployment: deployment.config.name.clone(),
        tier: deployment.config.tier,
        cache,
        similarity: None,
        rates: call
            .ticket
            .as_ref()
            .map(|t| t.rates.clone())
            .unwrap_or_default(),
    };
    match reply {
        UpstreamReply::Complete { body, usage } => {
            drop(permit);
            // The cost travels in the response's usage, as `usage.cost_micro_usd`.
            let body = usage
                .and_then(|u| {
                    let cost = crate::admission::cost_micro_usd(u, deployment.config.price);
                    crate::providers::sse::with_usage_cost(&body, cost)
                })
                .map_or(body, Bytes::from);
            if usage.is_none() {
                // The upstream answered without reporting usage: charge what the answer bounds.
                let generated = crate::providers::sse::generated_text_bytes(&body);
                call.ex.note(|r| {
                    r.estimate_missing_usage = true;
                    r.generated_bytes = generated;
                });
            }
            call.ex
                .audit
                .commit(200, None, usage, Some(&body))
                .await
                .map_err(|e| audit_unavailable(&call.ex.app, &e))?;
            // Stored once audited, and only an answer that completed.
            if let Some(pending) = call.pending.take()
                && let Some(answer) = cache::Answer::complete(
                    body.clone(),
                    deployment.config.name.clone(),
                    deployment.config.tier,
                    pending.own_cap(),
                )
            {
                call.ex.app.cache.store(&call.tenant_id(), pending, answer);
            }
            Ok(Reply::Json {
                status: 200,
                body,
                routed: Some(routed),
            })
        }
        UpstreamReply::Stream(events) => {
            let guard = call.ex.audit.hand_off();
            let mut events = Box::new(AnswerStream::new(
                call.ex.app.clone(),
                events,
                guard,
                permit,
            ));
            if let Some(pending) = call.pending.take() {
                events.store_when_done(
                    call.tenant_id(),
                    pending,
                    (deployment.config.name.clone(), deployment.config.tier),
                );
            }
            Ok(Reply::Stream { events, routed })
        }
    }
}
