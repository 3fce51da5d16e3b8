//! Upstream providers: one adapter per wire format (`openai`, `anthropic`, `local`, `fake`), the routing
//! snapshot of deployments, pooled HTTP clients with connect / first-byte / total timeouts, and SSE decoding.

mod anthropic;
pub mod anthropic_translate;
mod fake;
pub mod local;
mod openai;
pub mod sse;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{
    DeploymentConfig, DeploymentKind, ProviderConfig, ProviderKind, RoutingConfig, Timeouts,
};
use crate::inference::LocalModels;

/// Tokens an upstream reported (or the fake provider counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The most tokens one answer may report in either field (100 million, far above any model's context).
/// A larger report is an upstream fault: the gateway clamps it to this and the entry says `usage:clamped`,
/// so no report can overflow a sum of spend.
pub const MAX_REPORTED_TOKENS: u64 = 100_000_000;

impl Usage {
    /// The usage with each field at most `MAX_REPORTED_TOKENS`, and whether anything was cut.
    pub fn clamped(self) -> (Usage, bool) {
        let clamped = Usage {
            prompt_tokens: self.prompt_tokens.min(MAX_REPORTED_TOKENS),
            completion_tokens: self.completion_tokens.min(MAX_REPORTED_TOKENS),
        };
        (clamped, clamped != self)
    }
}

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot connect to provider `{provider}`: {detail}")]
    Connect { provider: String, detail: String },
    #[error("provider `{provider}` timed out after {after:?} waiting for {stage}")]
    Timeout {
        provider: String,
        after: Duration,
        stage: &'static str,
    },
    /// `body` describes the error body (`describe_body`); it never holds the upstream's text.
    #[error("provider `{provider}` answered {status} ({body})")]
    Status {
        provider: String,
        status: StatusCode,
        body: String,
    },
    #[error("provider `{provider}` sent something unexpected: {detail}")]
    Protocol { provider: String, detail: String },
    #[error("provider `{provider}` broke off the stream: {detail}")]
    Reset { provider: String, detail: String },
    /// The upstream sent an error event in the middle of a stream (vLLM does when generation fails);
    /// `kind` is its error type or code when it gives a short one, never its message.
    #[error("provider `{provider}` reported an error mid-stream ({kind})")]
    StreamError { provider: String, kind: String },
    #[error("{reason}")]
    Unsupported { field: String, reason: String },
    #[error("deployment `{deployment}` is at its concurrency limit")]
    Saturated { deployment: String },
    /// A local model's queue is full, or holds this tenant's whole share of it.
    #[error("the queue of local deployment `{deployment}` is full{}", if *tenant_share { " for this tenant" } else { "" })]
    Busy {
        deployment: String,
        tenant_share: bool,
    },
}

impl ProviderError {
    /// Worth trying the next deployment, as long as nothing reached the client yet.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Saturated { .. }
            | ProviderError::Busy { .. } => true,
            ProviderError::Status { status, .. } => status.is_server_error(),
            ProviderError::Protocol { .. }
            | ProviderError::Reset { .. }
            | ProviderError::StreamError { .. }
            | ProviderError::Unsupported { .. } => false,
        }
    }

    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Connect { .. } => "connect",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Status { .. } => "status",
            ProviderError::Protocol { .. } => "protocol",
            ProviderError::Reset { .. } => "reset",
            ProviderError::StreamError { .. } => "stream_error",
            ProviderError::Unsupported { .. } => "unsupported",
            ProviderError::Saturated { .. } => "saturated",
            ProviderError::Busy { .. } => "busy",
        }
    }
}

/// Which OpenAI endpoint a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

/// Headers the gateway adds to every upstream request; client headers are never forwarded blindly.
#[derive(Debug, Clone)]
pub struct Enrichment<'a> {
    pub request_id: &'a str,
    pub traceparent: &'a str,
    pub tenant_id: &'a str,
    pub tier: &'a str,
}

/// One upstream call.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    pub endpoint: Endpoint,
    /// The client's validated request as JSON, ready to send to an OpenAI-style upstream: `model` is the
    /// deployment's upstream model and streams ask for `stream_options.include_usage`.
    pub body: &'a serde_json::Value,
    pub stream: bool,
    /// The client asked for `stream_options.include_usage`; otherwise the usage chunk the gateway asks for
    /// is kept from the client.
    pub client_wants_usage: bool,
    pub enrich: Enrichment<'a>,
}

/// One item of a streamed answer, already in the OpenAI chunk format.
#[derive(Debug)]
pub enum StreamItem {
    /// A complete SSE event (`data: {...}\n\n`), to pass to the client as is.
    Chunk(Bytes),
    Usage(Usage),
    /// The upstream finished the stream properly.
    Done,
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamItem, ProviderError>> + Send>>;

/// What an upstream answered, once its response headers arrived.
pub enum UpstreamReply {
    /// A whole answer in the OpenAI format, parsed (once, by the adapter), with the usage it reports.
    Complete {
        json: serde_json::Value,
        usage: Option<Usage>,
    },
    Stream(EventStream),
}

impl std::fmt::Debug for UpstreamReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamReply::Complete { usage, .. } => write!(f, "Complete({usage:?})"),
            UpstreamReply::Stream(_) => f.write_str("Stream"),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A configured provider with its connection pool.
pub struct Provider {
    pub name: String,
    timeouts: Timeouts,
    adapter: AnyAdapter,
}

/// What every provider adapter does: one upstream call for a deployment, answered whole or as a stream of
/// OpenAI-format events. A new wire format is one file with one `impl Adapter`, and one variant below.
trait Adapter {
    async fn call(
        &self,
        provider: &str,
        timeouts: &Timeouts,
        deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError>;
}

/// The configured adapter of a provider.
enum AnyAdapter {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Fake(fake::Fake),
    Local(local::Local),
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{provider}`: cannot load TLS roots: {detail}")]
    TlsRoots { provider: String, detail: String },
    #[error("deployment `{deployment}`: {source}")]
    Model {
        deployment: String,
        source: crate::inference::LoadError,
    },
}

fn http_client(name: &str, t: &Timeouts) -> Result<HttpsClient, BuildError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(t.connect));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| BuildError::TlsRoots {
            provider: name.to_owned(),
            detail: e.to_string(),
        })?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https))
}

impl Provider {
    /// The provider `cfg`; a local one loads (or finds already loaded in `models`) the model of each of its
    /// `deployments`.
    pub fn build(
        cfg: &ProviderConfig,
        deployments: &[DeploymentConfig],
        models: &LocalModels,
    ) -> Result<Provider, BuildError> {
        let adapter = match &cfg.kind {
            ProviderKind::OpenAi { base_url, api_key } => AnyAdapter::OpenAi(openai::OpenAi {
                base_url: base_url.to_string(),
                api_key: api_key.clone(),
                client: http_client(&cfg.name, &cfg.timeouts)?,
            }),
            ProviderKind::Anthropic {
                base_url,
                api_key,
                version,
            } => AnyAdapter::Anthropic(anthropic::Anthropic {
                base_url: base_url.to_string(),
                api_key: api_key.clone(),
                version: version.clone(),
                client: http_client(&cfg.name, &cfg.timeouts)?,
            }),
            ProviderKind::Fake(script) => AnyAdapter::Fake(fake::Fake {
                script: script.clone(),
            }),
            ProviderKind::Local(settings) => AnyAdapter::Local(local::Local {
                models: load_local(settings, &cfg.name, deployments, models)?,
            }),
        };
        Ok(Provider {
            name: cfg.name.clone(),
            timeouts: cfg.timeouts,
            adapter,
        })
    }

    /// Sends one request. Returns once the upstream's response headers arrived (the failover boundary).
    pub async fn call(
        &self,
        deployment: &DeploymentConfig,
        req: &UpstreamRequest<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        match &self.adapter {
            AnyAdapter::OpenAi(a) => a.call(&self.name, &self.timeouts, deployment, req).await,
            AnyAdapter::Anthropic(a) => a.call(&self.name, &self.timeouts, deployment, req).await,
            AnyAdapter::Fake(a) => a.call(&self.name, &self.timeouts, deployment, req).await,
            AnyAdapter::Local(a) => a.call(&self.name, &self.timeouts, deployment, req).await,
        }
    }
}

/// The models of a local provider's deployments, by their `model`.
fn load_local(
    settings: &crate::config::LocalSettings,
    provider: &str,
    deployments: &[DeploymentConfig],
    models: &LocalModels,
) -> Result<HashMap<String, local::LocalModel>, BuildError> {
    let mut out = HashMap::new();
    for d in deployments.iter().filter(|d| d.provider == provider) {
        let dir = &settings.models_dir;
        let loaded = match d.kind {
            DeploymentKind::Chat => models
                .chat(dir, &d.upstream_model, settings.queue)
                .map(local::LocalModel::Chat),
            DeploymentKind::Embeddings => models
                .embedder(dir, &d.upstream_model, settings.queue)
                .map(local::LocalModel::Embeddings),
        };
        let model = loaded.map_err(|source| BuildError::Model {
            deployment: d.name.clone(),
            source,
        })?;
        out.insert(d.upstream_model.clone(), model);
    }
    Ok(out)
}

/// A deployment with its provider: what the router hands to `forward`.
#[derive(Debug)]
pub struct Deployment {
    pub config: DeploymentConfig,
    pub provider: Arc<Provider>,
    /// In-flight slots when the deployment has `max_concurrent`. A reload starts with fresh slots.
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// Holds one of a deployment's concurrency slots until the request (stream included) is over.
#[derive(Debug)]
pub struct SlotPermit(
    #[expect(dead_code, reason = "held for its Drop")] Option<tokio::sync::OwnedSemaphorePermit>,
);

impl SlotPermit {
    /// No slot: an answer no deployment makes (a cache hit).
    pub fn none() -> SlotPermit {
        SlotPermit(None)
    }
}

impl Deployment {
    /// Takes a concurrency slot, or says the deployment is saturated.
    pub fn try_acquire(&self) -> Result<SlotPermit, ProviderError> {
        match &self.slots {
            None => Ok(SlotPermit(None)),
            Some(s) => s
                .clone()
                .try_acquire_owned()
                .map(|p| SlotPermit(Some(p)))
                .map_err(|_| ProviderError::Saturated {
                    deployment: self.config.name.clone(),
                }),
        }
    }
}

/// Providers, deployments and logical models, swapped whole on reload.
#[derive(Debug, Default)]
pub struct RoutingSnapshot {
    /// Deployment or logical-model name -> deployments in fallback order.
    targets: HashMap<String, Arc<[Arc<Deployment>]>>,
    /// Names clients may use as `model`, in config order, for `/v1/models`.
    names: Vec<String>,
    /// The host's embedder: the model of the first local embeddings deployment, for the phases that need
    /// a request's embedding (computed once per request).
    embedder: Option<Arc<crate::inference::LocalEmbedder>>,
}

impl RoutingSnapshot {
    /// The snapshot of `cfg`; local models come from (and are added to) `models`.
    pub fn build(cfg: &RoutingConfig, models: &LocalModels) -> Result<RoutingSnapshot, BuildError> {
        let mut providers = HashMap::new();
        let mut snapshot = RoutingSnapshot::default();
        for p in &cfg.providers {
            let provider = Provider::build(p, &cfg.deployments, models)?;
            if let AnyAdapter::Local(local) = &provider.adapter
                && snapshot.embedder.is_none()
            {
                snapshot.embedder = cfg
                    .deployments
                    .iter()
                    .filter(|d| d.provider == p.name)
                    .find_map(|d| match local.models.get(&d.upstream_model) {
                        Some(local::LocalModel::Embeddings(e)) => Some(e.clone()),
                        _ => None,
                    });
            }
            providers.insert(p.name.clone(), Arc::new(provider));
        }
        let mut deployments = HashMap::new();
        for d in &cfg.deployments {
            // Validation guarantees the provider exists.
            let Some(provider) = providers.get(&d.provider) else {
                continue;
            };
            let dep = Arc::new(Deployment {
                config: d.clone(),
                provider: provider.clone(),
                slots: d
                    .max_concurrent
                    .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
            });
            deployments.insert(d.name.clone(), dep.clone());
            snapshot
                .targets
                .insert(d.name.clone(), Arc::from(vec![dep]));
            snapshot.names.push(d.name.clone());
        }
        for (name, members) in &cfg.models {
            let list: Vec<_> = members
                .iter()
                .filter_map(|m| deployments.get(m).cloned())
                .collect();
            snapshot.targets.insert(name.clone(), Arc::from(list));
            snapshot.names.push(name.clone());
        }
        Ok(snapshot)
    }

    /// The host's embedder, when a local embeddings deployment is configured.
    pub fn embedder(&self) -> Option<&Arc<crate::inference::LocalEmbedder>> {
        self.embedder.as_ref()
    }

    /// The deployments serving a model name, in fallback order.
    pub fn resolve(&self, model: &str) -> Option<Arc<[Arc<Deployment>]>> {
        self.targets.get(model).cloned()
    }

    /// Names clients may request, with the kind of their deployments.
    pub fn catalog(&self) -> impl Iterator<Item = (&str, &Arc<[Arc<Deployment>]>)> {
        self.names
            .iter()
            .filter_map(|n| self.targets.get(n).map(|t| (n.as_str(), t)))
    }
}

/// Reads at most `limit` bytes of an upstream body before `deadline`.
async fn read_body(
    provider: &str,
    body: hyper::body::Incoming,
    limit: usize,
    deadline: tokio::time::Instant,
    total: Duration,
) -> Result<Bytes, ProviderError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Err(_) => Err(ProviderError::Timeout {
            provider: provider.to_owned(),
            after: total,
            stage: "the whole response",
        }),
        Ok(Err(e)) => Err(ProviderError::Protocol {
            provider: provider.to_owned(),
            detail: format!("reading the body failed: {e}"),
        }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Largest non-streamed upstream body the gateway reads.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest upstream error body read for the log.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// POSTs a JSON body with the gateway's enrichment headers plus the adapter's own (credential, version),
/// and waits for the response headers. A non-2xx answer becomes `ProviderError::Status`, its body described
/// by `describe_body`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per adapter; a struct would only rename them"
)]
async fn post_json(
    client: &HttpsClient,
    provider: &str,
    timeouts: &Timeouts,
    deadline: tokio::time::Instant,
    url: String,
    enrich: &Enrichment<'_>,
    body: &serde_json::Value,
    extra: Vec<(http::HeaderName, String)>,
) -> Result<http::Response<hyper::body::Incoming>, ProviderError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Protocol {
        provider: provider.to_owned(),
        detail: format!("cannot encode request: {e}"),
    })?;
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-request-id", enrich.request_id)
        .header("traceparent", enrich.traceparent)
        .header("x-sluice-tenant", enrich.tenant_id)
        .header("x-sluice-tier", enrich.tier);
    for (name, value) in extra {
        builder = builder.header(name, value);
    }
    let request =
        builder
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ProviderError::Protocol {
                provider: provider.to_owned(),
                detail: format!("cannot build request: {e}"),
            })?;
    let resp = send(client, provider, timeouts, request).await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_body(
        provider,
        resp.into_body(),
        MAX_ERROR_BODY,
        deadline,
        timeouts.total,
    )
    .await
    .unwrap_or_default();
    Err(ProviderError::Status {
        provider: provider.to_owned(),
        status,
        body: describe_body(&body),
    })
}

/// Reads a non-streamed answer and parses it as JSON.
async fn read_json(
    provider: &str,
    resp: http::Response<hyper::body::Incoming>,
    deadline: tokio::time::Instant,
    total: Duration,
) -> Result<(Bytes, serde_json::Value), ProviderError> {
    let body = read_body(provider, resp.into_body(), MAX_BODY, deadline, total).await?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
            provider: provider.to_owned(),
            detail: format!("the body is not JSON: {e}"),
        })?;
    if !parsed.is_object() {
        return Err(ProviderError::Protocol {
            provider: provider.to_owned(),
            detail: "the body is not a JSON object".to_owned(),
        });
    }
    Ok((body, parsed))
}

/// Sends a request and waits for the response headers within the first-byte timeout.
async fn send(
    client: &HttpsClient,
    provider: &str,
    timeouts: &Timeouts,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, ProviderError> {
    match tokio::time::timeout(timeouts.first_byte, client.request(request)).await {
        Err(_) => Err(ProviderError::Timeout {
            provider: provider.to_owned(),
            after: timeouts.first_byte,
            stage: "the response headers",
        }),
        // Refused, reset or closed before the response headers: nothing reached the client, so it is as
        // retryable as a failed connect.
        Ok(Err(e)) => Err(ProviderError::Connect {
            provider: provider.to_owned(),
            detail: error_chain(&e),
        }),
        Ok(Ok(resp)) => Ok(resp),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What the log may say of an upstream's error body: its length, the start of its SHA-256 (to find it in
/// the provider's own records) and its `type` and `code` when they are short identifiers. Never its text:
/// upstream messages quote the prompt, also for tenants whose content the gateway must not keep.
pub fn describe_body(body: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body);
    let prefix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut out = format!("error body of {} bytes, sha256 {prefix}", body.len());
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    for field in ["type", "code"] {
        let identifier = error
            .and_then(|e| e.get(field))
            .and_then(serde_json::Value::as_str)
            .filter(|s| {
                (1..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            });
        if let Some(identifier) = identifier {
            out.push_str(&format!(", {field} `{identifier}`"));
        }
    }
    out
}

/// Usage from an OpenAI-shaped body (`usage.prompt_tokens`, `usage.completion_tokens`).
fn usage_of(v: &serde_json::Value) -> Option<Usage> {
    let u = v.get("usage")?;
    if u.is_null() {
        return None;
    }
    Some(Usage {
        prompt_tokens: u
            .get("prompt_tokens")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        completion_tokens: u
            .get("completion_tokens")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    })
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_described_without_its_text() {
        let body = br#"{"error":{"message":"Invalid prompt: my secret canary-7731","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let described = describe_body(body);
        assert!(!described.contains("canary"), "{described}");
        assert!(
            described.starts_with(&format!("error body of {} bytes, sha256 ", body.len())),
            "{described}"
        );
        assert!(
            described.ends_with(", type `invalid_request_error`, code `context_length_exceeded`"),
            "{described}"
        );
        // Identifiers that are not identifiers are left out too.
        let sneaky = br#"{"error":{"type":"my secret canary","code":42}}"#;
        assert!(!describe_body(sneaky).contains("canary"));
        assert!(!describe_body(b"<html>canary</html>").contains("canary"));
    }
}
