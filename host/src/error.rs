//! The public error codes and the one mapping from a code to an HTTP status and an error body.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// Stable error codes of the public interface (DESIGN 4). Clients may match on them.
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
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Codes whose cause is on our side or upstream: the client gets a generic message, the log gets the
    /// detail.
    fn hides_detail(self) -> bool {
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
