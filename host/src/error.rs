//! The public error codes, the one mapping from a code to an HTTP status and an error body, and the one
//! place where the domain modules' errors (admission, providers, wire, policies, storage) become the
//! client's answer: a flat list of `From` impls, one per cause.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// Stable error codes of the public interface. Clients may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    PayloadTooLarge,
    HeadersTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    PolicyDenied,
    RateLimited,
    BudgetExceeded,
    NotFound,
    ModelNotFound,
    /// An audit entry (or log size) that no signed checkpoint covers yet; retry after `Retry-After`.
    NotCheckpointed,
    UpstreamError,
    UpstreamTimeout,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The one exhaustive mapping to an HTTP status and the OpenAI error `type`.
    pub fn status_and_type(self) -> (StatusCode, &'static str) {
        match self {
            ErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorCode::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
            ErrorCode::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "invalid_request_error",
            ),
            ErrorCode::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error")
            }
            ErrorCode::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
            }
            ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "authentication_error"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "permission_error"),
            ErrorCode::PolicyDenied => (StatusCode::FORBIDDEN, "permission_error"),
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            ErrorCode::BudgetExceeded => (StatusCode::PAYMENT_REQUIRED, "insufficient_quota"),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found_error"),
            ErrorCode::ModelNotFound => (StatusCode::NOT_FOUND, "not_found_error"),
            ErrorCode::NotCheckpointed => (StatusCode::CONFLICT, "conflict_error"),
            ErrorCode::UpstreamError => (StatusCode::BAD_GATEWAY, "api_error"),
            ErrorCode::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
        }
    }

    /// The code as it appears on the wire and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::NotCheckpointed => "not_checkpointed",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Codes whose cause is on our side or upstream: the client gets a generic message, the log gets the
    /// detail.
    pub fn hides_detail(self) -> bool {
        matches!(
            self,
            ErrorCode::Internal
                | ErrorCode::UpstreamError
                | ErrorCode::UpstreamTimeout
                | ErrorCode::Unavailable
        )
    }
}

/// An error on its way to the client: a code, a client-safe message and the offending parameter.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub param: Option<String>,
    /// Extra response headers (`Retry-After`, `x-ratelimit-*`).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            param: None,
            headers: Vec::new(),
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
            param: Some(param.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a response header (header values built from our own numbers and names are always valid).
    #[must_use]
    pub fn with_header(mut self, name: http::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The JSON body in the OpenAI error shape. Internal and upstream failures carry a generic message with
    /// the request id; the detail only goes to the log.
    pub fn body(&self, request_id: &str) -> Bytes {
        let message = if self.code.hides_detail() {
            let what = match self.code {
                ErrorCode::UpstreamTimeout => "the upstream provider did not answer in time",
                ErrorCode::UpstreamError => "the upstream provider failed",
                ErrorCode::Unavailable => "the gateway is temporarily unavailable",
                _ => "internal error",
            };
            format!("{what} (request id {request_id})")
        } else {
            format!("{} (request id {request_id})", self.message)
        };
        let (_, kind) = self.code.status_and_type();
        let body = serde_json::json!({
            "error": {
                "message": message,
                "type": kind,
                "code": self.code.as_str(),
                "param": self.param,
            }
        });
        Bytes::from(body.to_string())
    }

    pub fn status(&self) -> StatusCode {
        self.code.status_and_type().0
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// `application/json` as a header value, shared by every JSON response.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

// ---- domain errors → the client's answer ---------------------------------------------------------------

use crate::admission::window::NS_PER_SEC;
use crate::admission::{InvalidLimit, RateState, Rejection, Unit};
use crate::policy::UploadError;
use crate::providers::ProviderError;
use crate::storage::StorageError;

fn usd(micro: u64) -> String {
    format!("${}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `250ms`, `6s`, `1m30s`.
fn duration_text(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1_000);
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

fn limit_header(unit: Unit, what: &str) -> http::HeaderName {
    http::HeaderName::from_bytes(format!("x-ratelimit-{what}-{}", unit.as_str()).as_bytes())
        .unwrap_or(http::header::RETRY_AFTER)
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` of a request's tightest limits.
pub fn rate_headers(rates: &[RateState]) -> Vec<(http::HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for r in rates {
        for (what, value) in [
            ("limit", r.limit.to_string()),
            ("remaining", r.remaining.to_string()),
            ("reset", duration_text(r.reset_ns)),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.push((limit_header(r.unit, what), v));
            }
        }
    }
    out
}

/// 429 `rate_limited` with `Retry-After` and `x-ratelimit-*`, 402 `budget_exceeded`, or 400 for a request
/// that can never fit.
impl From<&Rejection> for ApiError {
    fn from(rejection: &Rejection) -> ApiError {
        match rejection {
            Rejection::Rate {
                scope,
                unit,
                limit,
                per,
                retry_after_ns,
                reset_ns,
            } => {
                let retry = retry_after_ns.div_ceil(NS_PER_SEC).max(1);
                let u = unit.as_str();
                ApiError::new(
                    ErrorCode::RateLimited,
                    format!("rate limit reached: the {scope} allows {limit} {u} per {per}; retry in {retry} s"),
                )
                .with_header(http::header::RETRY_AFTER, &retry.to_string())
                .with_header(limit_header(*unit, "limit"), &limit.to_string())
                .with_header(limit_header(*unit, "remaining"), "0")
                .with_header(limit_header(*unit, "reset"), &duration_text(*reset_ns))
            }
            Rejection::TooLarge {
                scope,
                limit,
                per,
                needed,
            } => ApiError::invalid(
                "max_tokens",
                format!(
                    "this request may use up to {needed} tokens (prompt upper bound plus max_tokens), more than the {scope}'s limit of {limit} tokens per {per}"
                ),
            ),
            Rejection::Concurrency { scope, limit } => ApiError::new(
                ErrorCode::RateLimited,
                format!("too many requests in flight: the {scope} allows {limit} at once"),
            )
            .with_header(http::header::RETRY_AFTER, "1"),
            Rejection::Unbounded { scope, limit } => ApiError::invalid(
                "messages",
                format!(
                    "the cost of this request cannot be bounded before it is sent (a `file` part, a part of a type the gateway does not know, or an earlier audio answer by id), and the {scope} has a {limit}: send the content as text, images or audio"
                ),
            ),
            Rejection::Budget {
                scope,
                window,
                remaining_micro_usd,
                needed_micro_usd,
                resets_at,
            } => ApiError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "the {scope}'s {window} budget has {} left and this request needs at least {}; the window resets at {resets_at}",
                    usd(*remaining_micro_usd),
                    usd(*needed_micro_usd)
                ),
            ),
        }
    }
}

impl From<InvalidLimit> for ApiError {
    fn from(e: InvalidLimit) -> ApiError {
        let message = e.to_string();
        ApiError::invalid(e.field, message)
    }
}

impl From<crate::wire::Invalid> for ApiError {
    fn from(e: crate::wire::Invalid) -> ApiError {
        ApiError {
            code: ErrorCode::InvalidRequest,
            message: e.message,
            param: e.param,
            headers: Vec::new(),
        }
    }
}

/// A refusal by the tenant's `auth` policy, or by the host for it. (`Allow` is no error: it maps to an
/// internal error, which the pipeline never asks for.)
impl From<crate::policy::AuthOutcome> for ApiError {
    fn from(outcome: crate::policy::AuthOutcome) -> ApiError {
        use crate::policy::AuthOutcome as A;
        match outcome {
            A::Allow(_) => ApiError::new(ErrorCode::Internal, "an allowed request was refused"),
            A::Deny(reason) => ApiError::new(ErrorCode::PolicyDenied, reason),
            // The policy denied nothing: the host could not run it in time. Retryable.
            A::Overloaded => ApiError::new(
                ErrorCode::Unavailable,
                "the tenant's authorization policy was stopped by the wall-clock backstop: the gateway is overloaded",
            )
            .with_header(http::header::RETRY_AFTER, "1"),
            // The tenant's own policies used its CPU share: its requests wait, no one else's.
            A::OverBudget {
                retry_after,
                ms_per_second,
            } => {
                let retry = retry_after.as_secs_f64().ceil().max(1.0);
                ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "the tenant's policies used their CPU budget ({ms_per_second} ms per second); retry in {retry} s"
                    ),
                )
                .with_header(http::header::RETRY_AFTER, &retry.to_string())
            }
            // The tenant's own calls fill its line of the pool: the same, and no one else's wait either.
            A::Busy { queue_per_tenant } => ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "the tenant's policy calls fill their queue ({queue_per_tenant} waiting); retry in 1 s"
                ),
            )
            .with_header(http::header::RETRY_AFTER, "1"),
        }
    }
}

/// The answer when the audit log cannot make an entry (or a budget cover) durable: nothing that depends on
/// it is confirmed. (The audit log counts the failure.)
impl From<&crate::audit::AuditError> for ApiError {
    fn from(e: &crate::audit::AuditError) -> ApiError {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("audit log unavailable: {e}"),
        )
    }
}

/// What the client is told of an upstream failure; the detail stays in the log.
impl From<&ProviderError> for ApiError {
    fn from(e: &ProviderError) -> ApiError {
        use http::StatusCode as S;
        match e {
            ProviderError::Timeout { .. } => {
                ApiError::new(ErrorCode::UpstreamTimeout, e.to_string())
            }
            ProviderError::Status { status, .. }
                if *status == S::BAD_REQUEST || *status == S::UNPROCESSABLE_ENTITY =>
            {
                // The upstream rejected the request's content: the client's to fix. Its message is not passed
                // on (it may quote the prompt, or describe the upstream's setup); the log has what is safe.
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "the upstream provider rejected the request as invalid (HTTP {})",
                        status.as_u16()
                    ),
                )
            }
            ProviderError::Status { status, .. } if *status == S::TOO_MANY_REQUESTS => {
                ApiError::new(
                    ErrorCode::RateLimited,
                    "the upstream provider is rate limiting; retry later",
                )
                .with_header(http::header::RETRY_AFTER, "1")
            }
            ProviderError::Saturated { .. } => ApiError::new(
                ErrorCode::RateLimited,
                "every deployment serving this model is at its concurrency limit; retry shortly",
            )
            .with_header(http::header::RETRY_AFTER, "1"),
            ProviderError::Busy {
                tenant_share: true, ..
            } => ApiError::new(
                ErrorCode::RateLimited,
                "this tenant's requests fill its share of the local model's queue; retry shortly",
            )
            .with_header(http::header::RETRY_AFTER, "1"),
            ProviderError::Busy { .. } => ApiError::new(
                ErrorCode::Unavailable,
                "the local model's queue is full; retry shortly",
            )
            .with_header(http::header::RETRY_AFTER, "1"),
            ProviderError::Unsupported { field, reason } => {
                ApiError::invalid(field.clone(), reason.clone())
            }
            ProviderError::Connect { .. }
            | ProviderError::Status { .. }
            | ProviderError::Protocol { .. }
            | ProviderError::Reset { .. }
            | ProviderError::StreamError { .. } => {
                ApiError::new(ErrorCode::UpstreamError, e.to_string())
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> ApiError {
        match e {
            UploadError::TooLarge { .. } => {
                ApiError::new(ErrorCode::PayloadTooLarge, e.to_string())
            }
            UploadError::Invalid(_)
            | UploadError::WrongWorld(_)
            | UploadError::CompileTimeout(_) => ApiError::invalid("policy", e.to_string()),
            UploadError::Storage(
                e @ (StorageError::PolicyQuota(_) | StorageError::ActiveVersion),
            ) => ApiError::from(e),
            UploadError::Storage(_) | UploadError::Compiler(_) => {
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
        }
    }
}

/// Storage failures are the gateway's (503), except the two a request causes.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::DuplicateTenant(name) => {
                ApiError::invalid("name", format!("a tenant named `{name}` already exists"))
            }
            StorageError::NoSuchTenant => ApiError::new(ErrorCode::NotFound, "no such tenant"),
            StorageError::PolicyQuota(why) => ApiError::invalid("policy", why),
            StorageError::ActiveVersion => ApiError::invalid("version", e.to_string()),
            other => ApiError::new(ErrorCode::Unavailable, format!("storage: {other}")),
        }
    }
}
