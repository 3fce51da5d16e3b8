//! Request entry: request id, trace, span, header limits, the route table, the body read the pipeline's
//! validate phase awaits (content type, body limit), dispatch, panic catching, metrics, and rendering what
//! the layers below return. Generic over the request body, so tests can drive it in process.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use tracing::Instrument;

use super::routes::{self, Route, Target};
use crate::app::App;
use crate::control::{self, ControlRequest, View};
use crate::error::{ApiError, ErrorCode, JSON};
use crate::exchange::{BodyRead, Exchange};
use crate::metrics::{ErrorLabels, RequestLabels};
use crate::pipeline::{self, Reply, Routed};

/// Every response body: full JSON, or a stream of server-sent events.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a request body may be: anything hyper or a test hands in.
pub trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
    + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static
{
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
}

fn error_response(err: &ApiError, request_id: &str) -> Response<Body> {
    let mut resp = json_response(err.status(), err.body(request_id));
    for (name, value) in &err.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

fn valid_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    use std::fmt::Write;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter()
        .fold(String::with_capacity(bytes * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Continues the client's W3C trace if it sent a well-formed `traceparent`, else starts one.
fn traceparent(headers: &HeaderMap) -> String {
    let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let trace_id = incoming
        .and_then(|t| {
            let parts: Vec<&str> = t.split('-').collect();
            (parts.len() == 4
                && parts[0] == "00"
                && parts[1].len() == 32
                && parts[1].bytes().all(|b| b.is_ascii_hexdigit())
                && parts[1] != "00000000000000000000000000000000")
                .then(|| parts[1].to_ascii_lowercase())
        })
        .unwrap_or_else(|| random_hex(16));
    format!("00-{trace_id}-{}-01", random_hex(8))
}

/// The service: never fails, never lets a panic escape. A panic is answered 500 with the request id and,
/// for an authenticated request, audited before the answer leaves.
pub async fn handle<B: RequestBody>(
    app: Arc<App>,
    req: http::Request<B>,
) -> Result<Response<Body>, Infallible> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let label = routes::label(req.uri().path());
    let mut ex = Exchange::new(app.clone(), id, traceparent(req.headers()), label);
    let span = tracing::info_span!(
        "request",
        id = %ex.id,
        method = %req.method(),
        path = %req.uri().path(),
        tenant = tracing::field::Empty,
    );
    let in_flight = InFlight::enter(&app.metrics.in_flight);
    let outcome = AssertUnwindSafe(dispatch(&mut ex, req).instrument(span.clone()))
        .catch_unwind()
        .await;
    drop(in_flight);
    let mut resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(err)) => {
            ex.error_code = Some(err.code.as_str());
            if err.code.hides_detail() {
                span.in_scope(|| tracing::warn!(code = err.code.as_str(), detail = %err.message, "request failed"));
            }
            error_response(&err, &ex.id)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            drop(panic);
            panicked(&mut ex, &span, what).await
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ex.id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    count(&app, &ex, resp.status().as_u16(), &span);
    Ok(resp)
}

/// One request in the in-flight gauge, until it is answered or dropped (a client that hung up).
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> InFlight<'a> {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The answer to a request whose handler panicked, after its entry (if it has one) is durable.
async fn panicked(ex: &mut Exchange, span: &tracing::Span, what: String) -> Response<Body> {
    ex.app.metrics.panics.inc();
    span.in_scope(|| tracing::error!(panic = %what, "request handler panicked"));
    let err = ApiError::new(ErrorCode::Internal, "handler panicked");
    ex.error_code = Some(err.code.as_str());
    // Nobody knows what the upstream did: the entry charges the reservation.
    if let Err(e) = ex.audit.commit_unknown(500, "internal").await {
        span.in_scope(|| tracing::error!(error = %e, "audit entry of a panicked request failed"));
    }
    error_response(&err, &ex.id)
}

fn count(app: &App, ex: &Exchange, status: u16, span: &tracing::Span) {
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            tenant: app.metrics.tenant_label(
                ex.principal.as_ref().map(|p| &*p.tenant_id),
                app.limits.metrics_tenant_label,
            ),
            route: ex.route,
            status,
        })
        .inc();
    if let Some(code) = ex.error_code {
        app.metrics
            .errors
            .get_or_create(&ErrorLabels { code })
            .inc();
    }
    span.in_scope(|| {
        tracing::debug!(
            status,
            latency_us = ex.started.elapsed().as_micros() as u64,
            "response"
        );
    });
}

async fn dispatch<B: RequestBody>(
    ex: &mut Exchange,
    req: http::Request<B>,
) -> Result<Response<Body>, ApiError> {
    let app = ex.app.clone();
    check_headers(&app, req.headers()).map_err(|e| unread_body(e, &req))?;
    let route = routes::route(req.method(), req.uri().path()).map_err(|e| unread_body(e, &req))?;
    match route.target {
        Target::Healthz => Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#)),
        Target::Readyz => readyz(&app).await,
        Target::Metrics => {
            // Operators only: the metrics name tenants and show their traffic.
            if !app.is_operator(req.headers()) {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "`/metrics` needs the operator token",
                ));
            }
            Ok(metrics(&app))
        }
        Target::AuditKeys => Ok(json_response(StatusCode::OK, audit_keys(&app))),
        Target::Chat | Target::Embeddings => {
            let (parts, body) = req.into_parts();
            let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let limit = usize::try_from(app.limits.max_body_bytes).unwrap_or(usize::MAX);
            let body = body_read(
                &app,
                &parts.headers,
                body,
                Some("application/json"),
                limit,
                read.clone(),
            );
            let reply = if route.target == Target::Chat {
                pipeline::chat(ex, &parts.headers, body).await
            } else {
                pipeline::embeddings(ex, &parts.headers, body).await
            };
            // Refused before the body was read (no valid key): its bytes are still on the connection.
            let unread = !read.load(std::sync::atomic::Ordering::Relaxed);
            Ok(render(reply.map_err(|e| {
                if unread {
                    close_unread(e, &parts.headers, parts.version)
                } else {
                    e
                }
            })?))
        }
        Target::Models => Ok(render(pipeline::models(ex, req.headers()).await?)),
        Target::Control(endpoint) => control_plane(ex, endpoint, route, req).await,
    }
}

/// A refusal of an HTTP/1 request whose body was never read leaves its bytes on the connection: close it,
/// or the client's next request would be read after them.
fn unread_body<B>(e: ApiError, req: &http::Request<B>) -> ApiError {
    close_unread(e, req.headers(), req.version())
}

fn close_unread(mut e: ApiError, headers: &HeaderMap, version: http::Version) -> ApiError {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body && version <= http::Version::HTTP_11 {
        e.headers
            .push((header::CONNECTION, HeaderValue::from_static("close")));
    }
    e
}

/// A control-plane request: the layer below authenticates, checks the role, serves and audits; the body
/// is read only when it asks for it, after the credential and the role were checked.
async fn control_plane<B: RequestBody>(
    ex: &mut Exchange,
    endpoint: control::Endpoint,
    route: Route,
    req: http::Request<B>,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = control::body_limit(&ex.app, endpoint);
    let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = body_read(
        &ex.app,
        &parts.headers,
        body,
        endpoint.media_type(),
        limit,
        read,
    );
    let call = ControlRequest {
        headers: &parts.headers,
        params: route.params,
        query: parts.uri.query().map(str::to_owned),
        body: std::sync::Mutex::new(Some(body)),
    };
    // A refusal before an upload's body was read leaves bytes on the connection: close it, or the client
    // would send its next request after them.
    let closing = |mut e: ApiError| {
        if endpoint.media_type() == Some("application/wasm") {
            e.headers
                .push((header::CONNECTION, HeaderValue::from_static("close")));
        }
        e
    };
    let view = control::serve(ex, endpoint, call).await.map_err(closing)?;
    Ok(render_view(view))
}

fn render_view(view: View) -> Response<Body> {
    let status = StatusCode::from_u16(view.status).unwrap_or(StatusCode::OK);
    match view.body {
        control::ViewBody::Full(bytes) => json_response(status, bytes),
        control::ViewBody::Stream(pieces) => {
            let frames = pieces.map(|bytes| Ok::<_, Infallible>(http_body::Frame::data(bytes)));
            let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
            *resp.status_mut() = status;
            resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
            resp
        }
    }
}

/// Renders the pipeline's answer: the JSON or the event stream, with the routing headers.
fn render(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json {
            status,
            body,
            routed,
        } => {
            let mut resp =
                json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body);
            if let Some(routed) = &routed {
                routing_headers(resp.headers_mut(), routed);
            }
            resp
        }
        Reply::Stream { events, routed } => {
            let frames = events.map(|bytes| Ok::<_, Infallible>(http_body::Frame::data(bytes)));
            let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            routing_headers(h, &routed);
            resp
        }
    }
}

/// The headers every routed answer carries, and the `x-ratelimit-*` of its limits.
fn routing_headers(h: &mut HeaderMap, routed: &Routed) {
    for (name, value) in crate::error::rate_headers(&routed.rates) {
        h.insert(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&routed.deployment) {
        h.insert("x-sluice-deployment", v);
    }
    h.insert(
        "x-sluice-tier",
        HeaderValue::from_static(routed.tier.as_str()),
    );
    h.insert(
        "x-sluice-cache",
        HeaderValue::from_static(routed.cache.as_str()),
    );
    if let Some(similarity) = routed.similarity
        && let Ok(v) = HeaderValue::from_str(&format!("{similarity:.4}"))
    {
        h.insert("x-sluice-cache-similarity", v);
    }
}

async fn readyz(app: &App) -> Result<Response<Body>, ApiError> {
    if app.is_draining() {
        return Err(ApiError::new(ErrorCode::Unavailable, "draining"));
    }
    app.storage
        .ping()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("storage: {e}")))?;
    Ok(json_response(StatusCode::OK, r#"{"status":"ready"}"#))
}

fn metrics(app: &App) -> Response<Body> {
    app.metrics
        .set_audit(app.audit.queue_depth(), app.audit.failures());
    for (tenant, used) in app.policies.cpu.all_used() {
        let tenant = app
            .metrics
            .tenant_label(Some(&tenant), app.limits.metrics_tenant_label);
        app.metrics
            .policy_cpu_ms
            .get_or_create(&crate::metrics::TenantLabels { tenant })
            .set(i64::try_from(used.as_millis()).unwrap_or(i64::MAX));
    }
    for (tenant, line) in app.policies.pool.stats() {
        let tenant = app
            .metrics
            .tenant_label(Some(&tenant), app.limits.metrics_tenant_label);
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (outcome, n) in [
            ("ran", line.ran),
            ("busy", line.busy),
            ("over_budget", line.over_budget),
            ("withdrawn", line.withdrawn),
        ] {
            app.metrics
                .policy_calls
                .get_or_create(&crate::metrics::PolicyCallLabels {
                    tenant: tenant.clone(),
                    outcome,
                })
                .set(count(n));
        }
        app.metrics
            .policy_waiting
            .get_or_create(&crate::metrics::TenantLabels { tenant })
            .set(i64::try_from(line.waiting).unwrap_or(i64::MAX));
    }
    for (tenant, stats) in app.cache.all_stats() {
        let tenant = app
            .metrics
            .tenant_label(Some(&tenant), app.limits.metrics_tenant_label);
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (result, n) in [
            ("hit-exact", stats.hits_exact),
            ("hit-semantic", stats.hits_semantic),
            ("miss", stats.misses),
            ("bypass", stats.bypasses),
        ] {
            app.metrics
                .cache_lookups
                .get_or_create(&crate::metrics::CacheLabels {
                    tenant: tenant.clone(),
                    result,
                })
                .set(count(n));
        }
        let labels = crate::metrics::TenantLabels { tenant };
        app.metrics
            .cache_entries
            .get_or_create(&labels)
            .set(count(stats.entries));
        app.metrics
            .cache_bytes
            .get_or_create(&labels)
            .set(count(stats.bytes));
        app.metrics
            .cache_index_bytes
            .get_or_create(&labels)
            .set(count(stats.index_bytes));
    }
    app.metrics
        .audit_damaged_logs
        .set(i64::try_from(app.audit.damaged_logs().len()).unwrap_or(i64::MAX));
    app.local_models.each(|model, _kind, queued, stats| {
        use std::sync::atomic::Ordering::Relaxed;
        let labels = crate::metrics::ModelLabels {
            model: model.to_owned(),
        };
        let m = &app.metrics;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.local_generated
            .get_or_create(&labels)
            .set(to_i64(stats.generated.load(Relaxed)));
        m.local_queued
            .get_or_create(&labels)
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        m.local_cancelled
            .get_or_create(&labels)
            .set(to_i64(stats.cancelled.load(Relaxed)));
        m.local_timed_out
            .get_or_create(&labels)
            .set(to_i64(stats.timed_out.load(Relaxed)));
    });
    let mut resp = Response::new(full(app.metrics.render()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn audit_keys(app: &App) -> String {
    serde_json::json!({"keys": [{
        "name": app.audit.signer().key_name(),
        "verifier_key": app.audit.signer().verifier_key(),
        "algorithm": "ed25519",
    }]})
    .to_string()
}

// ---- limits on what the client sends ------------------------------------------------------------

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

/// Whether the `Content-Type` header names `mime`, case-insensitively and ignoring parameters such as
/// `charset`.
fn has_media_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

fn check_content_type(headers: &HeaderMap, mime: &str) -> Result<(), ApiError> {
    if has_media_type(headers, mime) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        if mime == "application/wasm" {
            "upload a component with `Content-Type: application/wasm`".to_owned()
        } else {
            format!("the request body must be JSON with `Content-Type: {mime}`")
        },
    ))
}

/// Reads a data-plane body up to the limit, within three times the header timeout (slow senders get the
/// same allowance for the body as for the headers).
/// The one way a handler, data plane or control plane, gets its request body: read only when it asks (after
/// authenticating; `read` records that it did), of the media type `media` (415 otherwise), at most `limit`
/// bytes (413, refused before being buffered), within the read deadline (400 past it).
fn body_read<B: RequestBody>(
    app: &App,
    headers: &HeaderMap,
    body: B,
    media: Option<&'static str>,
    limit: usize,
    read: Arc<std::sync::atomic::AtomicBool>,
) -> BodyRead {
    let headers = headers.clone();
    let deadline = app.limits.header_read_timeout * 3;
    Box::pin(async move {
        read.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(media) = media {
            check_content_type(&headers, media)?;
        }
        match tokio::time::timeout(deadline, read_limited(&headers, body, limit)).await {
            Ok(read) => read,
            Err(_) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "timed out reading the request body",
            )),
        }
    })
}

/// Reads a body of at most `limit` bytes; a larger one is refused without being buffered (the declared
/// `Content-Length` first, then the bytes as they arrive).
async fn read_limited<B: RequestBody>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, ApiError> {
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
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("could not read the request body: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(valid_request_id("abc-DEF_1.2"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id(&"a".repeat(129)));
        assert!(!valid_request_id("a b"));
    }

    #[test]
    fn a_well_formed_traceparent_is_continued() {
        let mut h = HeaderMap::new();
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        h.insert("traceparent", HeaderValue::from_static(incoming));
        assert!(traceparent(&h).starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        h.insert("traceparent", HeaderValue::from_static("garbage"));
        assert!(!traceparent(&h).contains("garbage"));
    }
}
