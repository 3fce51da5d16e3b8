//! Tenant policy self-service, with a tenant key of the admin or owner role (the tenant comes from the
//! credential, never the URL):
//! - `GET /v1/policies`: each slot's active version (or the built-in), quarantine state, every version, and
//!   the tenant's settings;
//! - `PUT /v1/policies/{slot}` (`Content-Type: application/wasm`): upload a component as the slot's next
//!   version and activate it;
//! - `POST /v1/policies/{slot}/activate` `{"version": N}`: activate any stored version;
//! - `POST /v1/policies/{slot}/rollback`: activate the version just below the active one (from the first
//!   version: back to the built-in);
//! - `DELETE /v1/policies/{slot}`: back to the built-in policy;
//! - `PUT /v1/policies/settings` `{"deadline_ms": N | null}`: the tenant's call deadline, within the
//!   operator's maximum.
//!
//! Slots are `auth`, `classify` and `route`. Each request writes its audit entry; changes record the slot,
//! version and digest in the entry's subject.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::admin::read_json;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorCode};
use crate::policy::{Slot, TenantPolicies, UploadError};
use crate::server::{App, Body, Finished, RequestCtx, authenticate, json_response};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Activate {
    version: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Deadline of one policy call in milliseconds; `null` for the operator's default.
    deadline_ms: Option<u64>,
}

/// What a request asks for.
enum Action {
    List,
    Upload(Slot),
    Activate(Slot),
    Rollback(Slot),
    Deactivate(Slot),
    Settings,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::List => "policies.list",
            Action::Upload(_) => "policies.upload",
            Action::Activate(_) => "policies.activate",
            Action::Rollback(_) => "policies.rollback",
            Action::Deactivate(_) => "policies.deactivate",
            Action::Settings => "policies.settings_set",
        }
    }
}

fn parse(method: &Method, path: &str) -> Result<Action, ApiError> {
    let rest = path.strip_prefix("/v1/policies").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let slot = |s: &str| {
        Slot::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no policy slot `{s}`: the slots are auth, classify and route"),
            )
        })
    };
    let wrong = || {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed here"),
        )
    };
    match parts.as_slice() {
        [] if method == Method::GET => Ok(Action::List),
        [] => Err(wrong()),
        ["settings"] if method == Method::PUT => Ok(Action::Settings),
        ["settings"] => Err(wrong()),
        [s] if method == Method::PUT => Ok(Action::Upload(slot(s)?)),
        [s] if method == Method::DELETE => Ok(Action::Deactivate(slot(s)?)),
        [s] => {
            slot(s)?;
            Err(wrong())
        }
        [s, "activate"] if method == Method::POST => Ok(Action::Activate(slot(s)?)),
        [s, "rollback"] if method == Method::POST => Ok(Action::Rollback(slot(s)?)),
        [s, "activate" | "rollback"] => {
            slot(s)?;
            Err(wrong())
        }
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
    }
}

/// Routes one tenant policy request and writes its audit entry.
pub async fn handle(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let uploading = req.method() == Method::PUT;
    let action = parse(req.method(), req.uri().path()).map_err(|e| closing(e, uploading))?;
    let principal = authenticate(app, ctx, req.headers()).map_err(|e| closing(e, uploading))?;
    let mut finished = Finished::new(ctx, principal.clone(), action.name(), String::new());
    ctx.audited = true;
    let result = if principal.role == Role::Member {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "policy endpoints need a key with the admin or owner role",
        ))
    } else {
        serve(app, &principal, action, req).await
    };
    let (status, code) = match &result {
        Ok((resp, _)) => (resp.status().as_u16(), None),
        Err(e) => (e.status().as_u16(), Some(e.code.as_str())),
    };
    if let Ok((_, Some(subject))) = &result {
        finished.subject.clone_from(subject);
    }
    finished
        .settle_and_audit(app, status, code, None, None)
        .await?;
    result
        .map(|(resp, _)| resp)
        .map_err(|e| closing(e, uploading))
}

/// An upload refused before its body was read in full leaves bytes on the connection: it must close, or the
/// client would send its next request after them.
fn closing(mut e: ApiError, uploading: bool) -> ApiError {
    if uploading {
        e.headers.push((
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        ));
    }
    e
}

fn upload_err(e: UploadError) -> ApiError {
    match e {
        UploadError::TooLarge { .. } => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
        UploadError::Invalid(_) | UploadError::WrongWorld(_) | UploadError::CompileTimeout(_) => {
            ApiError::invalid("policy", e.to_string())
        }
        UploadError::Storage(_) | UploadError::Compiler(_) => {
            ApiError::new(ErrorCode::Unavailable, e.to_string())
        }
    }
}

fn ok(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    json_response(status, v.to_string())
}

/// The response, and what the audit entry records as the subject of a change.
async fn serve(
    app: &App,
    principal: &Principal,
    action: Action,
    req: http::Request<Incoming>,
) -> Result<(Response<Body>, Option<String>), ApiError> {
    let tenant = &*principal.tenant_id;
    match action {
        Action::List => Ok((ok(StatusCode::OK, &view(app, tenant).await?), None)),
        Action::Upload(slot) => {
            let bytes = read_wasm(app, req).await?;
            let size = bytes.len();
            let (version, digest) = app
                .policies
                .upload(tenant, slot, bytes, &principal.key_id)
                .await
                .map_err(upload_err)?;
            tracing::info!(tenant = %tenant, slot = slot.as_str(), version, %digest, "tenant policy uploaded and activated");
            Ok((
                ok(
                    StatusCode::CREATED,
                    &serde_json::json!({
                        "slot": slot.as_str(), "version": version, "digest": digest, "size": size, "active": true,
                    }),
                ),
                Some(format!(
                    "policy:{} version={version} {digest}",
                    slot.as_str()
                )),
            ))
        }
        Action::Activate(slot) => {
            let body: Activate = read_json(req).await?;
            activate(app, tenant, slot, body.version).await
        }
        Action::Rollback(slot) => {
            let current = app
                .policies
                .tenant(tenant)
                .and_then(|t| t.active(slot).map(|a| a.version))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "slot",
                        format!(
                            "no version of `{}` is active: the built-in policy serves it",
                            slot.as_str()
                        ),
                    )
                })?;
            let versions = app
                .storage
                .policy_versions(tenant)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
            let below = versions
                .iter()
                .filter(|v| v.slot == slot.as_str() && v.version < current)
                .map(|v| v.version)
                .max();
            match below {
                Some(version) => activate(app, tenant, slot, version).await,
                None => deactivate(app, tenant, slot).await,
            }
        }
        Action::Deactivate(slot) => deactivate(app, tenant, slot).await,
        Action::Settings => {
            let body: Settings = read_json(req).await?;
            let max = app.policies.config().max_deadline;
            if let Some(ms) = body.deadline_ms
                && (ms == 0 || u128::from(ms) > max.as_millis())
            {
                return Err(ApiError::invalid(
                    "deadline_ms",
                    format!(
                        "must be between 1 and the operator's maximum, {} ms",
                        max.as_millis()
                    ),
                ));
            }
            let regions = app
                .policies
                .tenant(tenant)
                .and_then(|t| t.allowed_regions.as_ref().map(|r| r.to_vec()));
            app.policies
                .set_settings(tenant, body.deadline_ms, regions)
                .await
                .map_err(upload_err)?;
            let deadline = body.deadline_ms.map_or_else(
                || app.policies.config().default_deadline.as_millis(),
                u128::from,
            );
            Ok((
                ok(
                    StatusCode::OK,
                    &serde_json::json!({"deadline_ms": u64::try_from(deadline).unwrap_or(u64::MAX)}),
                ),
                Some(format!("policy:settings deadline_ms={deadline}")),
            ))
        }
    }
}

async fn activate(
    app: &App,
    tenant: &str,
    slot: Slot,
    version: u32,
) -> Result<(Response<Body>, Option<String>), ApiError> {
    let digest = app
        .policies
        .activate(tenant, slot, version)
        .await
        .map_err(upload_err)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no version {version} of `{}`", slot.as_str()),
            )
        })?;
    tracing::info!(tenant = %tenant, slot = slot.as_str(), version, "tenant policy activated");
    Ok((
        ok(
            StatusCode::OK,
            &serde_json::json!({"slot": slot.as_str(), "version": version, "digest": digest}),
        ),
        Some(format!(
            "policy:{} activate version={version} {digest}",
            slot.as_str()
        )),
    ))
}

async fn deactivate(
    app: &App,
    tenant: &str,
    slot: Slot,
) -> Result<(Response<Body>, Option<String>), ApiError> {
    app.policies
        .deactivate(tenant, slot)
        .await
        .map_err(upload_err)?;
    tracing::info!(tenant = %tenant, slot = slot.as_str(), "tenant policy back to the built-in");
    Ok((
        ok(
            StatusCode::OK,
            &serde_json::json!({"slot": slot.as_str(), "version": null, "builtin": true}),
        ),
        Some(format!("policy:{} builtin", slot.as_str())),
    ))
}

/// Reads an `application/wasm` body up to the upload cap: 413 beyond it, without buffering more.
async fn read_wasm(app: &App, req: http::Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    if !crate::wire::has_media_type(req.headers(), "application/wasm") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "upload a component with `Content-Type: application/wasm`",
        ));
    }
    let limit = app.policies.config().max_upload_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("policy components are limited to {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let bytes = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes();
    Ok(bytes.to_vec())
}

fn slot_view(t: Option<&TenantPolicies>, slot: Slot, builtin: Option<&str>) -> serde_json::Value {
    match t.and_then(|t| t.active(slot)) {
        Some(a) => serde_json::json!({
            "source": "tenant", "version": a.version, "digest": a.digest, "quarantined": a.is_quarantined(),
        }),
        None => serde_json::json!({"source": "builtin", "digest": builtin}),
    }
}

async fn view(app: &App, tenant: &str) -> Result<serde_json::Value, ApiError> {
    let t = app.policies.tenant(tenant);
    let t = t.as_deref();
    let versions = app
        .storage
        .policy_versions(tenant)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    let (classifier, router) = app.policies.builtin_digests();
    let config = app.policies.config();
    Ok(serde_json::json!({
        "slots": {
            "auth": slot_view(t, Slot::Auth, None),
            "classify": slot_view(t, Slot::Classify, Some(classifier)),
            "route": slot_view(t, Slot::Route, Some(router)),
        },
        "versions": versions,
        "settings": {
            "deadline_ms": t.and_then(|t| t.deadline_ms)
                .unwrap_or(u64::try_from(config.default_deadline.as_millis()).unwrap_or(u64::MAX)),
            "max_deadline_ms": u64::try_from(config.max_deadline.as_millis()).unwrap_or(u64::MAX),
            "allowed_regions": t.and_then(|t| t.allowed_regions.as_ref().map(|r| r.to_vec())),
            "max_upload_bytes": config.max_upload_bytes,
        },
    }))
}
