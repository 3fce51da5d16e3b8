//! Request entry: request id, span, panic catching, dispatch by method and path, and the response helpers
//! every handler shares.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tracing::Instrument;

use super::App;
use super::metrics::{ErrorLabels, RequestLabels};
use super::pipeline::Finished;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, JSON};

/// Every response body: full JSON, or a stream of server-sent events.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
}

pub fn error_response(err: &ApiError, request_id: &str) -> Response<Body> {
    let mut resp = json_response(err.status(), err.body(request_id));
    for (name, value) in &err.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// Per-request state that outlives the handler: identity, outcome and timing.
#[derive(Debug)]
pub struct RequestCtx {
    pub id: String,
    pub traceparent: String,
    pub started: Instant,
    /// Route label for metrics (a fixed set, never the raw path).
    pub route: &'static str,
    /// Who is asking, once `authenticate` succeeded.
    pub principal: Option<Principal>,
    /// Set once the request's audit entry was written, or handed to a streaming body that writes it.
    pub audited: bool,
    pub error_code: Option<&'static str>,
    /// The budget reservation (micro-USD) once made: a panic after it is charged at this amount.
    pub reserved_micro_usd: Option<u64>,
    /// What the key's budget cover holds for the request, released by whichever entry ends up recording it.
    pub covered_micro_usd: u64,
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
fn traceparent(headers: &http::HeaderMap) -> String {
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

fn route_label(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (_, "/v1/chat/completions") => "chat",
        (_, "/v1/embeddings") => "embeddings",
        (_, "/v1/models") => "models",
        (_, "/healthz") => "healthz",
        (_, "/readyz") => "readyz",
        (_, "/metrics") => "metrics",
        (_, p) if p.starts_with("/admin/") => "admin",
        (_, "/v1/budget" | "/v1/usage") => "tenant",
        (_, p) if p.starts_with("/v1/keys/") => "tenant",
        (_, p) if p == "/v1/policies" || p.starts_with("/v1/policies/") => "policies",
        _ => "other",
    }
}

/// The hyper service: never fails, never lets a panic escape.
pub async fn handle(
    app: Arc<App>,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let mut ctx = RequestCtx {
        traceparent: traceparent(req.headers()),
        started: Instant::now(),
        route: route_label(req.method(), req.uri().path()),
        principal: None,
        audited: false,
        error_code: None,
        reserved_micro_usd: None,
        covered_micro_usd: 0,
        id,
    };
    let span = tracing::info_span!(
        "request",
        id = %ctx.id,
        method = %req.method(),
        path = %req.uri().path(),
        tenant = tracing::field::Empty,
    );
    app.metrics.in_flight.inc();
    let outcome = AssertUnwindSafe(dispatch(&app, &mut ctx, req).instrument(span.clone()))
        .catch_unwind()
        .await;
    app.metrics.in_flight.dec();
    let mut resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(err)) => {
            ctx.error_code = Some(err.code.as_str());
            if matches!(
                err.code,
                ErrorCode::Internal
                    | ErrorCode::UpstreamError
                    | ErrorCode::UpstreamTimeout
                    | ErrorCode::Unavailable
            ) {
                span.in_scope(|| tracing::warn!(code = err.code.as_str(), detail = %err.message, "request failed"));
            }
            error_response(&err, &ctx.id)
        }
        Err(panic) => {
            app.metrics.panics.inc();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| tracing::error!(panic = %what, "request handler panicked"));
            let err = ApiError::new(ErrorCode::Internal, "handler panicked");
            ctx.error_code = Some(err.code.as_str());
            if let Some(principal) = ctx.principal.clone().filter(|_| !ctx.audited) {
                // The pipeline died before it could write its entry; write one here.
                let mut finished = Finished::new(&ctx, principal, ctx.route, String::new());
                // Nobody knows what the upstream did: charge the reservation, as the ticket did when the
                // panic dropped it.
                finished.unknown_outcome_charge = ctx.reserved_micro_usd;
                finished.release = ctx.covered_micro_usd;
                if let Err(e) = finished
                    .settle_and_audit(&app, 500, Some("internal"), None, None)
                    .await
                {
                    span.in_scope(|| tracing::error!(error = %e.message, "audit entry of a panicked request failed"));
                }
            }
            error_response(&err, &ctx.id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            tenant: ctx
                .principal
                .as_ref()
                .map(|p| p.tenant_id.to_string())
                .unwrap_or_default(),
            route: ctx.route,
            status,
        })
        .inc();
    if let Some(code) = ctx.error_code {
        app.metrics
            .errors
            .get_or_create(&ErrorLabels { code })
            .inc();
    }
    span.in_scope(|| {
        tracing::debug!(
            status,
            latency_us = ctx.started.elapsed().as_micros() as u64,
            "response"
        );
    });
    Ok(resp)
}

async fn dispatch(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let wrong_method = || {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        )
    };
    match path.as_str() {
        "/healthz" if method == Method::GET => {
            Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#))
        }
        "/readyz" if method == Method::GET => readyz(app).await,
        "/metrics" if method == Method::GET => {
            app.metrics.audit_queue_depth.set(app.audit.queue_depth());
            app.metrics
                .audit_damaged_logs
                .set(i64::try_from(app.audit.damaged_logs().len()).unwrap_or(i64::MAX));
            let mut resp = Response::new(full(app.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(resp)
        }
        "/v1/chat/completions" if method == Method::POST => {
            super::pipeline::chat(app, ctx, req).await
        }
        "/v1/embeddings" if method == Method::POST => {
            super::pipeline::embeddings(app, ctx, req).await
        }
        "/v1/models" if method == Method::GET => super::pipeline::models(app, ctx, req).await,
        "/.well-known/sluice-audit-keys" if method == Method::GET => Ok(json_response(
            StatusCode::OK,
            serde_json::json!({"keys": [{
                "name": app.audit.signer().key_name(),
                "verifier_key": app.audit.signer().verifier_key(),
                "algorithm": "ed25519",
            }]})
            .to_string(),
        )),
        p if p.starts_with("/v1/audit/") => crate::api::audit::handle(app, ctx, req).await,
        "/v1/budget" | "/v1/usage" => crate::api::tenant::handle(app, ctx, req).await,
        p if p.starts_with("/v1/keys/") => crate::api::tenant::handle(app, ctx, req).await,
        p if p == "/v1/policies" || p.starts_with("/v1/policies/") => {
            crate::api::policies::handle(app, ctx, req).await
        }
        "/healthz"
        | "/readyz"
        | "/metrics"
        | "/v1/chat/completions"
        | "/v1/embeddings"
        | "/v1/models" => Err(wrong_method()),
        p if p.starts_with("/admin/v1/") => crate::api::admin::handle(app, ctx, req).await,
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route for {method} {path}"),
        )),
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
