//! A small HTTP client for the CLI: calls a running gateway's control plane (operator token) or tenant
//! endpoints (tenant key).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid gateway URL `{0}`")]
    Url(String),
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    #[error("the gateway answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the gateway's answer has no `{0}`")]
    Missing(&'static str),
}

/// Creates tenant `name` and a key `key_name` of `role` for it, as the operator; returns the tenant id and
/// the key (shown only in this answer).
pub async fn create_tenant_with_key(
    gateway: &str,
    token: &str,
    name: &str,
    key_name: &str,
    role: &str,
) -> Result<(String, String), ClientError> {
    let body = serde_json::json!({ "name": name });
    let tenant = call(
        gateway,
        token,
        http::Method::POST,
        "/admin/v1/tenants",
        Some(body),
    )
    .await?;
    let id = tenant["id"].as_str().ok_or(ClientError::Missing("id"))?;
    let body = serde_json::json!({ "name": key_name, "role": role });
    let path = format!("/admin/v1/tenants/{id}/keys");
    let key = call(gateway, token, http::Method::POST, &path, Some(body)).await?;
    let key = key["key"].as_str().ok_or(ClientError::Missing("key"))?;
    Ok((id.to_owned(), key.to_owned()))
}

/// Calls `method path` on the gateway with a bearer token and an optional JSON body; returns the JSON answer.
pub async fn call(
    gateway: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let body = body.map(|v| ("application/json", Bytes::from(v.to_string())));
    send(gateway, token, method, path, body).await
}

/// Calls `method path` with a body of the given content type (e.g. a Wasm component); returns the JSON answer.
pub async fn send(
    gateway: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<(&str, Bytes)>,
) -> Result<serde_json::Value, ClientError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let url = format!("{}{path}", gateway.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ClientError::Url(gateway.to_owned()))?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    let payload = match body {
        Some((content_type, bytes)) => {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    let req = builder
        .body(Full::new(payload))
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Transport(format!("bad JSON answer: {e}")))
}
