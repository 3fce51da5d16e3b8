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
//! - `DELETE /v1/policies/{slot}/versions/{version}`: delete an inactive version (the tenant's quota counts
//!   stored versions);
//! - `PUT /v1/policies/settings` `{"deadline_ms": N | null}`: the tenant's call deadline, within the
//!   operator's maximum.
//!
//! Slots are `auth`, `classify` and `route`. Each request writes its audit entry; changes record the slot,
//! version and digest in the entry's subject.

use serde::Deserialize;

use super::{ControlRequest, PolicyEndpoint, View};
use crate::app::App;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::policy::{Slot, TenantPolicies};

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

/// Serves one policy endpoint; changes record the slot, version and digest as the entry's subject.
pub async fn serve(
    app: &App,
    principal: &Principal,
    endpoint: PolicyEndpoint,
    mut call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    let tenant = &*principal.tenant_id;
    // The route table only lets known slot names through.
    let slot = Slot::parse(call.param(0)).unwrap_or(Slot::Route);
    match endpoint {
        PolicyEndpoint::PoliciesList => Ok(View::ok(&view(app, tenant).await?)),
        PolicyEndpoint::PolicyUpload => {
            let bytes = call.bytes().await?.to_vec();
            upload(app, principal, slot, bytes).await
        }
        PolicyEndpoint::PolicyActivate => {
            let body: Activate = call.json().await?;
            activate(app, tenant, slot, body.version).await
        }
        PolicyEndpoint::PolicyRollback => rollback(app, tenant, slot).await,
        PolicyEndpoint::PolicyDeactivate => deactivate(app, tenant, slot).await,
        PolicyEndpoint::PolicyVersionDelete => {
            let version: u32 = call.param(1).parse().map_err(|_| {
                ApiError::invalid("version", "the version must be a positive integer")
            })?;
            delete_version(app, tenant, slot, version).await
        }
        PolicyEndpoint::PolicySettings => settings(app, tenant, call.json().await?).await,
    }
}

async fn upload(
    app: &App,
    principal: &Principal,
    slot: Slot,
    bytes: Vec<u8>,
) -> Result<View, ApiError> {
    let tenant = &*principal.tenant_id;
    let size = bytes.len();
    let (version, digest) = app
        .policies
        .upload(tenant, slot, bytes, &principal.key_id)
        .await?;
    tracing::info!(tenant = %tenant, slot = slot.as_str(), version, %digest, "tenant policy uploaded and activated");
    Ok(View::status(
        201,
        &serde_json::json!({
            "slot": slot.as_str(), "version": version, "digest": digest, "size": size, "active": true,
        }),
    )
    .changed(format!(
        "policy:{} version={version} {digest}",
        slot.as_str()
    )))
}

async fn delete_version(
    app: &App,
    tenant: &str,
    slot: Slot,
    version: u32,
) -> Result<View, ApiError> {
    if !app
        .storage
        .policy_delete_version(tenant, slot.as_str(), version)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no version {version} of `{}`", slot.as_str()),
        ));
    }
    Ok(
        View::ok(&serde_json::json!({"slot": slot.as_str(), "version": version, "deleted": true}))
            .changed(format!(
                "policy:{} version={version} deleted",
                slot.as_str()
            )),
    )
}

/// Activates the version just below the active one; from the first version, back to the built-in.
async fn rollback(app: &App, tenant: &str, slot: Slot) -> Result<View, ApiError> {
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
    let versions = app.storage.policy_versions(tenant).await?;
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

async fn settings(app: &App, tenant: &str, body: Settings) -> Result<View, ApiError> {
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
        .await?;
    let deadline = body.deadline_ms.map_or_else(
        || app.policies.config().default_deadline.as_millis(),
        u128::from,
    );
    Ok(
        View::ok(&serde_json::json!({"deadline_ms": u64::try_from(deadline).unwrap_or(u64::MAX)}))
            .changed(format!("policy:settings deadline_ms={deadline}")),
    )
}

async fn activate(app: &App, tenant: &str, slot: Slot, version: u32) -> Result<View, ApiError> {
    let digest = app
        .policies
        .activate(tenant, slot, version)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no version {version} of `{}`", slot.as_str()),
            )
        })?;
    tracing::info!(tenant = %tenant, slot = slot.as_str(), version, "tenant policy activated");
    Ok(
        View::ok(&serde_json::json!({"slot": slot.as_str(), "version": version, "digest": digest}))
            .changed(format!(
                "policy:{} activate version={version} {digest}",
                slot.as_str()
            )),
    )
}

async fn deactivate(app: &App, tenant: &str, slot: Slot) -> Result<View, ApiError> {
    app.policies.deactivate(tenant, slot).await?;
    tracing::info!(tenant = %tenant, slot = slot.as_str(), "tenant policy back to the built-in");
    Ok(
        View::ok(&serde_json::json!({"slot": slot.as_str(), "version": null, "builtin": true}))
            .changed(format!("policy:{} builtin", slot.as_str())),
    )
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
    let versions = app.storage.policy_versions(tenant).await?;
    let (classifier, router) = app.policies.builtin_digests();
    let config = app.policies.config();
    let pool = app.policies.pool.tenant_stats(tenant);
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
        "cpu": {
            "ms_per_second": u64::try_from(app.policies.cpu.rate(tenant).as_millis()).unwrap_or(u64::MAX),
            "used_ms": u64::try_from(app.policies.cpu.used(tenant).as_millis()).unwrap_or(u64::MAX),
        },
        "pool": {
            "ran": pool.ran,
            "busy": pool.busy,
            "over_budget": pool.over_budget,
            "withdrawn": pool.withdrawn,
            "waiting": pool.waiting,
            "running": pool.running,
        },
    }))
}
