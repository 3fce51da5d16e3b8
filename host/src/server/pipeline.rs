//! The data-plane pipeline: the named phases of DESIGN 2, in order, as plain sequential code.
//!
//! validate -> authenticate -> authorize -> admit -> classify -> cache -> route -> forward -> settle ->
//! audit -> cache store. Each phase is one function; a phase that ends the request returns an `ApiError`
//! (the typed outcome), which the router turns into the error response. The audit record is written
//! exactly once for every request that reached `authenticate`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::App;
use super::router::{Body, RequestCtx, json_response};
use super::stream::SseBody;
use crate::admission::cover::CoverStep;
use crate::admission::{BudgetAsk, Demand, Rejection, Ticket};
use crate::audit::content::Content;
use crate::audit::entry::{ContentMark, Entry, EntryKind};
use crate::auth::{AuthError, Principal};
use crate::cache::{self, CacheStatus};
use crate::config::DeploymentKind;
use crate::error::{ApiError, ErrorCode};
use crate::policy::{self, Route};
use crate::providers::{
    Deployment, Endpoint, Enrichment, ProviderError, SlotPermit, UpstreamReply, UpstreamRequest,
    Usage,
};
use crate::wire::{self, ChatRequest, EmbeddingsRequest};

/// Times a phase into the `sluice_phase_duration_seconds` histogram.
fn timed<T>(app: &App, phase: &'static str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    app.metrics
        .observe_phase(phase, start.elapsed().as_secs_f64());
    out
}

// ---- phase 2: validate ---------------------------------------------------------------------------

fn check_headers(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let count = headers.len();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if count > app.limits.max_headers || bytes > app.limits.max_header_bytes {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "request headers too large: {count} headers, {bytes} bytes (limits {} headers, {} bytes)",
                app.limits.max_headers, app.limits.max_header_bytes
            ),
        ));
    }
    Ok(())
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if crate::wire::has_media_type(headers, "application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON with `Content-Type: application/json`",
        ))
    }
}

/// Reads the body up to the limit; a larger body is refused without buffering it.
async fn read_body(app: &App, headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    // Slow senders get the same allowance for the body as for the headers, times three.
    let deadline = app.limits.header_read_timeout * 3;
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "timed out reading the request body",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("could not read the request body: {e}"),
        )),
    }
}

async fn validate<T: serde::de::DeserializeOwned>(
    app: &App,
    req: http::Request<Incoming>,
) -> Result<(HeaderMap, T, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(app, &parts.headers)?;
    check_json_content_type(&parts.headers)?;
    let bytes = read_body(app, &parts.headers, body).await?;
    let start = Instant::now();
    let parsed = wire::parse_body::<T>(&bytes);
    app.metrics
        .observe_phase("validate", start.elapsed().as_secs_f64());
    Ok((parts.headers, parsed?, bytes))
}

// ---- phase 3: authenticate -----------------------------------------------------------------------

pub fn authenticate(
    app: &App,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let result = timed(app, "authenticate", || {
        let token = crate::auth::bearer(headers).ok_or(AuthError::Missing)?;
        app.keys.authenticate(token)
    });
    match result {
        Ok(p) => {
            tracing::Span::current().record("tenant", &*p.tenant_id);
            ctx.principal = Some(p.clone());
            Ok(p)
        }
        Err(e) => Err(ApiError::new(ErrorCode::Unauthenticated, e.to_string())),
    }
}

// ---- phase 9: forward ----------------------------------------------------------------------------

/// Everything about an upstream call except the body, which `forward` adapts per deployment.
struct CallShape<'a> {
    endpoint: Endpoint,
    stream: bool,
    client_wants_usage: bool,
    enrich: Enrichment<'a>,
}

/// Tries the route's deployments in order; moves on after connect errors, 5xx and timeouts, which all
/// happen before anything reached the client.
async fn forward(
    app: &App,
    route: &Route,
    body: &mut serde_json::Value,
    shape: &CallShape<'_>,
) -> Result<(Arc<Deployment>, UpstreamReply, SlotPermit), ProviderError> {
    let mut last_err = None;
    for (i, dep) in route.deployments.iter().enumerate() {
        if let Some(obj) = body.as_object_mut() {
            obj.insert(
                "model".to_owned(),
                serde_json::Value::String(dep.config.upstream_model.clone()),
            );
        }
        let started = Instant::now();
        let upstream = UpstreamRequest {
            endpoint: shape.endpoint,
            body,
            stream: shape.stream,
            client_wants_usage: shape.client_wants_usage,
            enrich: shape.enrich.clone(),
        };
        // A saturated deployment counts as a failure before the first byte: try the next one.
        let result = match dep.try_acquire() {
            Ok(permit) => dep
                .provider
                .call(&dep.config, &upstream)
                .await
                .map(|reply| (reply, permit)),
            Err(e) => Err(e),
        };
        app.metrics
            .upstream_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        app.metrics
            .upstream
            .get_or_create(&super::metrics::UpstreamLabels {
                deployment: dep.config.name.clone(),
                outcome,
            })
            .inc();
        match result {
            Ok((reply, permit)) => return Ok((dep.clone(), reply, permit)),
            Err(e) => {
                let more = i + 1 < route.deployments.len();
                tracing::warn!(deployment = %dep.config.name, error = %e, will_fail_over = e.is_retryable() && more, "upstream call failed");
                if !(e.is_retryable() && more) {
                    return Err(e);
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ProviderError::Protocol {
        provider: String::new(),
        detail: "the route named no deployment".to_owned(),
    }))
}

/// The response headers every routed answer carries (DESIGN 4), and the `x-ratelimit-*` of its limits.
fn routing_headers(
    resp: &mut Response<Body>,
    deployment: &Deployment,
    cache: CacheStatus,
    ticket: Option<&Ticket>,
) {
    let h = resp.headers_mut();
    for (name, value) in ticket.map(|t| t.headers.as_slice()).unwrap_or_default() {
        h.insert(name.clone(), value.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&deployment.config.name) {
        h.insert("x-sluice-deployment", v);
    }
    h.insert(
        "x-sluice-tier",
        HeaderValue::from_static(deployment.config.tier.as_str()),
    );
    h.insert("x-sluice-cache", HeaderValue::from_static(cache.as_str()));
}

/// What the settle and audit phases record about a request that reached `authenticate`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub request_id: String,
    pub trace_id: String,
    pub principal: Principal,
    pub endpoint: &'static str,
    pub model: String,
    pub deployment: Option<Arc<Deployment>>,
    pub cache: CacheStatus,
    pub started: Instant,
    /// The request body, for requests whose content the audit log keeps (chat, embeddings).
    pub prompt: Option<Bytes>,
    /// The request's hold on its tenant's limits and budget; settled when the entry is recorded.
    pub ticket: Option<Arc<Ticket>>,
    /// Upper bound of the prompt tokens, for pricing answers without reported usage.
    pub prompt_tokens_bound: u64,
    /// Bytes of generated text received from the upstream so far.
    pub generated_bytes: u64,
    /// The outcome is unknown (the handler panicked): charge this reservation instead of the usage.
    pub unknown_outcome_charge: Option<u64>,
    /// What this request's entry releases from its key's budget cover, when no ticket carries it.
    pub release: u64,
    /// The upstream answered: if it reported no usage, charge `estimated_usage` rather than nothing.
    pub estimate_missing_usage: bool,
    /// What a tenant API call changed, recorded in its entry.
    pub subject: String,
    /// Which policies decided the request (`policy::Trail`).
    pub policy: String,
}

impl Finished {
    pub fn new(
        ctx: &RequestCtx,
        principal: Principal,
        endpoint: &'static str,
        model: String,
    ) -> Finished {
        Finished {
            request_id: ctx.id.clone(),
            // traceparent is `00-<trace id>-<span id>-<flags>`.
            trace_id: ctx.traceparent.get(3..35).unwrap_or_default().to_owned(),
            principal,
            endpoint,
            model,
            deployment: None,
            cache: CacheStatus::Bypass,
            started: ctx.started,
            prompt: None,
            ticket: None,
            prompt_tokens_bound: 0,
            generated_bytes: 0,
            unknown_outcome_charge: None,
            release: 0,
            estimate_missing_usage: false,
            subject: String::new(),
            policy: String::new(),
        }
    }

    /// Usage estimated from what the gateway saw, for answers whose upstream reported none: the prompt's
    /// upper bound and the bytes of generated text (both bounds of the tokens billed).
    pub fn estimated_usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens_bound,
            completion_tokens: self.generated_bytes,
        }
    }

    /// What the entry releases from the key's budget cover (micro-USD).
    pub fn release(&self) -> u64 {
        self.ticket
            .as_ref()
            .map_or(self.release, |t| t.covered_micro_usd())
    }

    /// The entry and, unless the tenant keeps no content, the content it commits to. Phase 10: the ticket
    /// is settled at the entry's cost and tokens.
    pub fn record(
        &self,
        app: &App,
        status: u16,
        error_code: Option<&str>,
        usage: Option<Usage>,
        response: Option<&[u8]>,
    ) -> (Entry, Option<Content>) {
        let mut entry = self.entry(status, error_code, usage);
        if let Some(ticket) = &self.ticket {
            ticket.settle(
                entry.cost_micro_usd,
                entry.prompt_tokens.saturating_add(entry.completion_tokens),
            );
        }
        let Some(prompt) = &self.prompt else {
            return (entry, None);
        };
        if app.audit.retention_days(&self.principal.tenant_id) == 0 {
            // Zero retention: not even a commitment, only the mark that content existed.
            entry.content = ContentMark::NotRetained;
            return (entry, None);
        }
        let content = Content::new(prompt.to_vec(), response.unwrap_or_default().to_vec());
        entry.content = ContentMark::Committed;
        entry.prompt_commitment = Some(content.prompt_commitment());
        entry.response_commitment = Some(content.response_commitment());
        (entry, Some(content))
    }

    /// Phase 10 (the cost of the usage at the deployment's prices) and the entry phase 11 appends.
    pub fn entry(&self, status: u16, error_code: Option<&str>, usage: Option<Usage>) -> Entry {
        let estimated = usage.is_none() && self.estimate_missing_usage;
        let usage = if estimated {
            Some(self.estimated_usage())
        } else {
            usage
        };
        let cost = match (&self.deployment, usage, self.unknown_outcome_charge) {
            (_, _, Some(charge)) => charge,
            (Some(d), Some(u), None) => crate::admission::cost_micro_usd(u, d.config.price),
            _ => 0,
        };
        // Requests record how their charge was found when it was not the upstream's own usage report.
        let subject = if self.unknown_outcome_charge.is_some() {
            "usage:reservation"
        } else if estimated {
            "usage:estimated"
        } else {
            &self.subject
        };
        let dep = self.deployment.as_ref().map(|d| &d.config);
        Entry {
            index: 0,
            prev_leaf: [0; 32],
            kind: EntryKind::Request,
            timestamp_ms: crate::audit::now_ms(),
            tenant_id: self.principal.tenant_id.to_string(),
            key_id: self.principal.key_id.to_string(),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            endpoint: self.endpoint.to_owned(),
            subject: subject.to_owned(),
            model_requested: self.model.clone(),
            deployment: dep.map(|d| d.name.clone()).unwrap_or_default(),
            tier: dep.map(|d| d.tier.as_str().to_owned()).unwrap_or_default(),
            region: dep.map(|d| d.region.clone()).unwrap_or_default(),
            cache: self.cache.as_str().to_owned(),
            policy: self.policy.clone(),
            status,
            error_code: error_code.unwrap_or_default().to_owned(),
            prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
            completion_tokens: usage.map_or(0, |u| u.completion_tokens),
            cost_micro_usd: cost,
            latency_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            content: ContentMark::None,
            prompt_commitment: None,
            response_commitment: None,
        }
    }

    /// Phases 10 and 11: the entry is durable when this returns `Ok`; otherwise the request must fail with
    /// 503 rather than complete unaudited.
    pub async fn settle_and_audit(
        &self,
        app: &App,
        status: u16,
        error_code: Option<&str>,
        usage: Option<Usage>,
        response: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let start = Instant::now();
        let (entry, content) = self.record(app, status, error_code, usage, response);
        let result = app
            .audit
            .append_settling(entry, content, self.release())
            .await;
        app.metrics
            .observe_phase("audit", start.elapsed().as_secs_f64());
        result.map(|_| ()).map_err(|e| audit_unavailable(app, &e))
    }
}

/// The answer when the audit log cannot take an entry.
pub fn audit_unavailable(app: &App, e: &crate::audit::AuditError) -> ApiError {
    app.metrics.audit_failures.inc();
    ApiError::new(
        ErrorCode::Unavailable,
        format!("audit log unavailable: {e}"),
    )
}

// ---- POST /v1/chat/completions and /v1/embeddings -------------------------------------------------

/// The `x-sluice-meta-*` headers policies see, prefix stripped; values that are not visible ASCII are left out.
fn policy_metadata(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix("x-sluice-meta-")?;
            Some((key.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// What the phases after `validate` need of a request, whatever its endpoint.
struct Inference {
    /// The typed chat request, for what policies see of it.
    chat: Option<ChatRequest>,
    /// Upper bound of the prompt tokens any upstream bills.
    prompt_tokens: u64,
    /// The output cap the client asked for.
    max_output: Option<u32>,
    /// The request body as the client sent it: the audited prompt.
    prompt: Bytes,
    endpoint: Endpoint,
    model: String,
    /// The validated request as JSON, unknown fields included; `forward` sets the upstream model.
    body: serde_json::Value,
    stream: bool,
    client_wants_usage: bool,
}

fn reencode<T: serde::Serialize>(request: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(request)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("re-encoding the request: {e}")))
}

pub async fn chat(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    // 2. validate: limits, content type, JSON into typed structs, ranges.
    let (headers, chat, prompt): (_, ChatRequest, _) = validate(app, req).await?;
    chat.validate()?;
    let stream = chat.is_stream();
    let mut body = reencode(&chat)?;
    if stream {
        // Always ask for usage so a stream's spend is known; the chunk is withheld unless the client asked.
        body["stream_options"]["include_usage"] = serde_json::Value::Bool(true);
    }
    let inference = Inference {
        prompt_tokens: wire::prompt_token_upper_bound(&chat),
        max_output: chat.max_output_tokens(),
        prompt,
        endpoint: Endpoint::Chat,
        client_wants_usage: chat.wants_usage_in_stream(),
        model: chat.model.clone(),
        body,
        stream,
        chat: Some(chat),
    };
    infer(app, ctx, &headers, inference).await
}

pub async fn embeddings(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (headers, emb, prompt): (_, EmbeddingsRequest, _) = validate(app, req).await?;
    emb.validate()?;
    let inference = Inference {
        chat: None,
        prompt_tokens: wire::embeddings_token_upper_bound(&emb),
        max_output: None,
        prompt,
        endpoint: Endpoint::Embeddings,
        body: reencode(&emb)?,
        model: emb.model,
        stream: false,
        client_wants_usage: false,
    };
    infer(app, ctx, &headers, inference).await
}

/// Phase 3 onwards. From `authenticate` on, every outcome is audited exactly once.
async fn infer(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    inference: Inference,
) -> Result<Response<Body>, ApiError> {
    // 3. authenticate.
    let principal = authenticate(app, ctx, headers)?;
    let endpoint = match inference.endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
    };
    let mut finished = Finished::new(ctx, principal, endpoint, inference.model.clone());
    finished.prompt = Some(inference.prompt.clone());
    finished.prompt_tokens_bound = inference.prompt_tokens;
    let answer = after_auth(app, ctx, &mut finished, headers, inference).await;
    // From here on the entry is written below or by the streaming body, never by the panic handler.
    ctx.audited = true;
    match answer {
        // 10. settle and 11. audit, before the response leaves. If the entry cannot be made durable the
        // answer is withheld: the client gets 503, and no unaudited answer goes out.
        Ok(Answer::Complete(resp, usage, body)) => {
            if usage.is_none() {
                // The upstream answered without reporting usage: charge what the answer bounds.
                finished.estimate_missing_usage = true;
                finished.generated_bytes = crate::providers::sse::generated_text_bytes(&body);
            }
            finished
                .settle_and_audit(app, 200, None, usage, Some(&body))
                .await?;
            Ok(resp)
        }
        // A stream audits itself when it ends.
        Ok(Answer::Stream(resp)) => Ok(resp),
        Err(e) => {
            finished
                .settle_and_audit(app, e.status().as_u16(), Some(e.code.as_str()), None, None)
                .await?;
            Err(e)
        }
    }
}

/// Counts a rejection by reason and turns it into the client's answer.
fn rejected(app: &App, rejection: &Rejection) -> ApiError {
    app.metrics
        .admission_rejections
        .get_or_create(&super::metrics::ReasonLabels {
            reason: rejection.reason(),
        })
        .inc();
    rejection.to_api_error()
}

/// Phase 5b: reserves the worst-case cost against the budgets, lowers (or sets) the output cap sent
/// upstream so the reservation is a true bound, and, when a cap applies, has the key's budget cover hold the
/// reservation before anything is forwarded (raising the cover durably first if it must).
async fn reserve(
    app: &App,
    ctx: &mut RequestCtx,
    route: &Route,
    inference: &mut Inference,
    ticket: &Ticket,
) -> Result<(), ApiError> {
    let (price, default_output) = policy::reservation_terms(route.deployments.iter().map(|d| &**d));
    let ask = BudgetAsk {
        prompt_tokens: inference.prompt_tokens,
        requested_output: inference.max_output,
        default_output,
        price,
        generates: inference.endpoint == Endpoint::Chat,
    };
    let hold =
        timed(app, "reserve", || ticket.reserve_budget(&ask)).map_err(|r| rejected(app, &r))?;
    ctx.reserved_micro_usd = Some(hold.micro_usd);
    if let Some(max) = hold.max_output
        && let Some(body) = inference.body.as_object_mut()
    {
        let field = if body.contains_key("max_completion_tokens") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(field.to_owned(), serde_json::Value::from(max));
        if field == "max_completion_tokens" && body.contains_key("max_tokens") {
            body.insert("max_tokens".to_owned(), serde_json::Value::from(max));
        }
    }
    if hold.capped {
        let start = Instant::now();
        let mut waited = false;
        loop {
            match ticket.cover() {
                CoverStep::Covered(ahead) => {
                    if let Some(raise) = ahead {
                        let audit = app.audit.clone();
                        app.background.spawn(async move {
                            if audit.raise_cover(raise.row(), raise.lower()).await.is_ok() {
                                raise.landed();
                            }
                        });
                    }
                    break;
                }
                CoverStep::Raise(raise) => {
                    waited = true;
                    app.audit
                        .raise_cover(raise.row(), raise.lower())
                        .await
                        .map_err(|e| audit_unavailable(app, &e))?;
                    raise.landed();
                }
                CoverStep::Wait(mut done) => {
                    waited = true;
                    // Returns once the raise is done, landed or not; then look again.
                    let _ = done.changed().await;
                }
            }
        }
        if waited {
            app.metrics
                .observe_phase("cover_raise", start.elapsed().as_secs_f64());
        }
        ctx.covered_micro_usd = hold.micro_usd;
    }
    Ok(())
}

/// A routed answer: complete (audited by the caller) or streaming (audited by its body).
enum Answer {
    Complete(Response<Body>, Option<Usage>, Bytes),
    Stream(Response<Body>),
}

async fn after_auth(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    finished: &mut Finished,
    headers: &HeaderMap,
    mut inference: Inference,
) -> Result<Answer, ApiError> {
    let tenant = app.policies.tenant(&finished.principal.tenant_id);
    let tenant = tenant.as_deref();
    let kind = match inference.endpoint {
        Endpoint::Chat => DeploymentKind::Chat,
        Endpoint::Embeddings => DeploymentKind::Embeddings,
    };
    let auto = inference.model == "auto" && kind == DeploymentKind::Chat;
    // Classify and route run for chat only: `auto`, or a tenant that uploaded a policy for them.
    let routes = kind == DeploymentKind::Chat && policy::Policies::routes(tenant, auto);
    let classifies = kind == DeploymentKind::Chat
        && (routes || tenant.is_some_and(|t| t.active(policy::Slot::Classify).is_some()));
    let authorizes = tenant.is_some_and(|t| t.active(policy::Slot::Auth).is_some());
    // What the policies see; built only when one runs.
    let mut req = (authorizes || classifies || routes).then(|| {
        policy::request_view(&policy::RequestFacts {
            request_id: &finished.request_id,
            principal: &finished.principal,
            endpoint: inference.endpoint,
            model: &inference.model,
            chat: inference.chat.as_ref(),
            max_tokens: inference.max_output,
            stream: inference.stream,
            prompt_tokens: inference.prompt_tokens,
            metadata: policy_metadata(headers),
        })
    });
    let mut trail = policy::Trail::default();
    // 4. authorize: the tenant's `auth` policy, if any; fail closed (503 when overload stopped it).
    if authorizes && let Some(req) = req.as_mut() {
        let outcome = timed(app, "authorize", || {
            app.policies.authorize(tenant, req, &mut trail)
        });
        finished.policy = trail.as_str().to_owned();
        match outcome {
            policy::AuthOutcome::Allow(labels) => req.labels.extend(labels),
            policy::AuthOutcome::Deny(reason) => {
                return Err(ApiError::new(ErrorCode::PolicyDenied, reason));
            }
            // The policy denied nothing: the host could not run it in time. Retryable.
            policy::AuthOutcome::Overloaded => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the tenant's authorization policy was stopped by the wall-clock backstop: the gateway is overloaded",
                )
                .with_header(header::RETRY_AFTER, "1"));
            }
        }
    }
    // 5. admit: request and token rates and in-flight limits, checked and taken at once.
    let demand = Demand {
        key_id: &finished.principal.key_id,
        endpoint: finished.endpoint,
        tokens: inference
            .prompt_tokens
            .saturating_add(inference.max_output.map_or(0, u64::from)),
    };
    let ticket = timed(app, "admit", || {
        app.admission.admit(&finished.principal.tenant_id, &demand)
    })
    .map_err(|r| rejected(app, &r))?;
    let ticket = Arc::new(ticket);
    finished.ticket = Some(ticket.clone());
    let snapshot = app.routing.load();
    let model = &inference.model;
    let candidates =
        policy::Policies::candidates(&snapshot, tenant, model, kind).ok_or_else(|| ApiError {
            code: ErrorCode::ModelNotFound,
            message: format!("the model `{model}` does not exist or you do not have access to it"),
            param: Some("model".to_owned()),
            headers: Vec::new(),
        })?;
    if candidates.is_empty() {
        return Err(if auto {
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
    // 6. classify: the tenant's classifier, or the built-in one when a router reads the tier.
    let classified = match req.as_mut() {
        Some(req) if classifies => {
            let c = timed(app, "classify", || {
                app.policies.classify(tenant, req, routes, &mut trail)
            });
            if let Some(c) = &c {
                req.labels.extend(c.labels.iter().cloned());
            }
            c
        }
        _ => None,
    };
    // 7. cache.
    finished.cache = cache::lookup();
    // 8. route: a policy orders the candidates (the host keeps only candidates), or the configured order
    // stands.
    let remaining = app
        .admission
        .remaining_budget(&finished.principal.tenant_id, &finished.principal.key_id);
    let route = match req {
        Some(req) if routes => {
            let tier = classified
                .as_ref()
                .map_or(crate::config::Tier::Standard, |c| c.tier);
            let decided = timed(app, "route", || {
                app.policies
                    .route(tenant, req, tier, candidates, remaining, &mut trail)
            });
            finished.policy = trail.as_str().to_owned();
            decided
                .map_err(|policy::Refused(reason)| ApiError::new(ErrorCode::PolicyDenied, reason))?
        }
        _ => {
            trail.configured();
            Route {
                deployments: candidates.into(),
            }
        }
    };
    finished.policy = trail.as_str().to_owned();
    // The built-in degradation as the budget runs low: deployments it can no longer pay for are dropped.
    let route = match remaining {
        Some(remaining) => policy::fit_budget(
            route,
            &policy::BudgetHint {
                remaining_micro_usd: remaining,
                prompt_tokens: inference.prompt_tokens,
                output_tokens: match inference.endpoint {
                    Endpoint::Chat => inference.max_output,
                    Endpoint::Embeddings => Some(0),
                },
            },
        ),
        None => route,
    };
    // 5b. reserve the worst-case cost. It needs the prices of the deployments the request may reach, so it
    // runs once the route is known, and before anything is forwarded.
    reserve(app, ctx, &route, &mut inference, &ticket).await?;
    let tier = classified.map_or_else(|| route.configured_tier(), |c| c.tier);
    // 9. forward.
    let tenant = finished.principal.tenant_id.clone();
    let forward_start = Instant::now();
    let shape = CallShape {
        endpoint: inference.endpoint,
        stream: inference.stream,
        client_wants_usage: inference.client_wants_usage,
        enrich: Enrichment {
            request_id: &ctx.id,
            traceparent: &ctx.traceparent,
            tenant_id: &tenant,
            tier: tier.as_str(),
        },
    };
    let (deployment, reply, permit) = forward(app, &route, &mut inference.body, &shape)
        .await
        .map_err(|e| e.to_api_error())?;
    app.metrics
        .observe_phase("forward", forward_start.elapsed().as_secs_f64());
    finished.deployment = Some(deployment.clone());
    match reply {
        UpstreamReply::Complete { body, usage } => {
            // 12. cache store: no cache in this build.
            drop(permit);
            // The cost travels in the response's usage, as `usage.cost_micro_usd`.
            let body = usage
                .and_then(|u| {
                    let cost = crate::admission::cost_micro_usd(u, deployment.config.price);
                    crate::providers::sse::with_usage_cost(&body, cost)
                })
                .map_or(body, Bytes::from);
            let mut resp = json_response(StatusCode::OK, body.clone());
            routing_headers(&mut resp, &deployment, finished.cache, Some(&ticket));
            Ok(Answer::Complete(resp, usage, body))
        }
        UpstreamReply::Stream(events) => {
            // Settle and audit move into the body: they run when the stream ends, however it ends.
            let body = SseBody::new(app.clone(), events, finished.clone(), permit);
            let mut resp = Response::new(body.boxed_unsync());
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            routing_headers(&mut resp, &deployment, finished.cache, Some(&ticket));
            Ok(Answer::Stream(resp))
        }
    }
}

// ---- GET /v1/models ------------------------------------------------------------------------------

pub async fn models(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    check_headers(app, req.headers())?;
    let principal = authenticate(app, ctx, req.headers())?;
    let snapshot = app.routing.load();
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
    let finished = Finished::new(ctx, principal, "models", String::new());
    ctx.audited = true;
    finished
        .settle_and_audit(app, 200, None, None, None)
        .await?;
    Ok(json_response(StatusCode::OK, body.to_string()))
}
