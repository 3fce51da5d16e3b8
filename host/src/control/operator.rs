//! Operator endpoints under `/admin/v1` (the operator token, checked by the wrapper): tenants (create,
//! list), tenant keys (create, list) and key revocation, retention, budgets and limits, the regions a
//! tenant's requests may be routed to, and audit content pruning. Changes name the tenant whose log
//! records them (`View::audited`).

use serde::Deserialize;

use super::spend::{self, BudgetBody, TenantLimitsBody};
use super::{ControlRequest, OperatorEndpoint, View};
use crate::admission::{BudgetSet, LimitSet, Scope};
use crate::app::App;
use crate::auth::{Role, keys};
use crate::error::{ApiError, ErrorCode};
use crate::storage::{KeyRow, unix_now};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRetention {
    /// Days of content to keep; 0 keeps none.
    days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prune {
    now: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPolicyCpu {
    /// CPU time the tenant's policy calls may use per second, in milliseconds; `null` for the default.
    ms_per_second: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRegions {
    /// Regions the tenant's requests may be routed to; `null` for any.
    allowed_regions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    role: String,
}

fn valid_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be 1 to 200 printable characters"),
        ));
    }
    Ok(())
}

/// Serves one operator endpoint.
pub async fn serve(
    app: &App,
    endpoint: OperatorEndpoint,
    mut call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    let id = call.param(0).to_owned();
    match endpoint {
        OperatorEndpoint::TenantCreate => create_tenant(app, call.json().await?).await,
        OperatorEndpoint::TenantList => {
            let rows = app.storage.list_tenants().await?;
            Ok(View::ok(
                &serde_json::json!({"object": "list", "data": rows}),
            ))
        }
        OperatorEndpoint::KeyCreate => create_key(app, &id, call.json().await?).await,
        OperatorEndpoint::KeyList => list_keys(app, &id).await,
        OperatorEndpoint::RetentionSet => set_retention(app, &id, call.json().await?).await,
        OperatorEndpoint::TenantBudgetSet => {
            let budget = call.json::<BudgetBody>().await?.validate()?;
            require_tenant(app, &id).await?;
            spend::set_budget(app, &id, None, budget).await?;
            Ok(View::ok(&spend::budget_view(app, &id, None))
                .audited(&id, &budget_subject("tenant", budget)))
        }
        OperatorEndpoint::TenantBudgetRead => {
            require_tenant(app, &id).await?;
            Ok(View::ok(&spend::budget_view(app, &id, None)))
        }
        OperatorEndpoint::RegionsSet => set_regions(app, &id, call.json().await?).await,
        OperatorEndpoint::PolicyCpuSet => set_policy_cpu(app, &id, call.json().await?).await,
        OperatorEndpoint::TenantLimitsSet => set_tenant_limits(app, &id, call.json().await?).await,
        OperatorEndpoint::TenantLimitsRead => {
            require_tenant(app, &id).await?;
            Ok(View::ok(&spend::limits_view(app, &id)))
        }
        OperatorEndpoint::OperatorKeyBudgetSet => {
            let budget = call.json::<BudgetBody>().await?.validate()?;
            let tenant_id = key_tenant(app, &id).await?;
            spend::set_budget(app, &tenant_id, Some(&id), budget).await?;
            Ok(View::ok(&spend::budget_view(app, &tenant_id, Some(&id)))
                .audited(&tenant_id, &budget_subject(&format!("key:{id}"), budget)))
        }
        OperatorEndpoint::KeyLimitsSet => set_key_limits(app, &id, call.json().await?).await,
        OperatorEndpoint::AuditPrune => {
            // `now` lets operators (and tests) prune as of a given time; default: the clock.
            let body: Prune = call.json().await?;
            let now = body.now.unwrap_or_else(unix_now);
            let deleted = app.prune(now).await?;
            Ok(View::ok(
                &serde_json::json!({"deleted": deleted, "as_of": now}),
            ))
        }
        OperatorEndpoint::KeyRevoke => revoke_key(app, &id).await,
    }
}

async fn create_tenant(app: &App, body: CreateTenant) -> Result<View, ApiError> {
    valid_name("name", &body.name)?;
    let id = uuid::Uuid::now_v7().to_string();
    let row = app.storage.create_tenant(&id, body.name.trim()).await?;
    app.metrics.name_tenant(&row.id, &row.name);
    tracing::info!(tenant = %row.id, "tenant created");
    Ok(View::status(
        201,
        &serde_json::json!({"id": row.id, "name": row.name, "created_at": row.created_at}),
    )
    .audited(&row.id, &row.id))
}

async fn create_key(app: &App, tenant_id: &str, body: CreateKey) -> Result<View, ApiError> {
    valid_name("name", &body.name)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid("role", "`role` must be one of owner, admin, member"))?;
    require_tenant(app, tenant_id).await?;
    let new = keys::generate();
    let row = KeyRow {
        id: new.id.clone(),
        tenant_id: tenant_id.to_owned(),
        name: body.name.trim().to_owned(),
        role,
        salt: new.salt.to_vec(),
        hash: keys::hash(app.keys.pepper(), &new.salt, secret_of(&new.plaintext)).to_vec(),
        last4: new.last4.clone(),
        created_at: unix_now(),
        revoked_at: None,
    };
    app.storage.insert_key(&row).await?;
    app.keys.insert(&row);
    tracing::info!(tenant = %tenant_id, key_id = %row.id, role = role.as_str(), "API key created");
    // The only time the plaintext exists outside the client: this response.
    Ok(View::status(
        201,
        &serde_json::json!({
            "id": row.id,
            "key": new.plaintext,
            "last4": row.last4,
            "role": role,
            "name": row.name,
            "tenant_id": tenant_id,
        }),
    )
    .audited(tenant_id, &row.id))
}

async fn list_keys(app: &App, tenant_id: &str) -> Result<View, ApiError> {
    require_tenant(app, tenant_id).await?;
    let rows = app.storage.list_keys(Some(tenant_id)).await?;
    let data: Vec<_> = rows
        .iter()
        .map(|k| {
            serde_json::json!({
                "id": k.id, "name": k.name, "role": k.role, "last4": k.last4,
                "created_at": k.created_at, "revoked_at": k.revoked_at,
            })
        })
        .collect();
    Ok(View::ok(
        &serde_json::json!({"object": "list", "data": data}),
    ))
}

async fn set_retention(app: &App, tenant_id: &str, body: SetRetention) -> Result<View, ApiError> {
    if body.days > 36_500 {
        return Err(ApiError::invalid(
            "days",
            "`days` must be between 0 and 36500",
        ));
    }
    let found = app.set_retention(tenant_id, body.days).await?;
    if !found {
        return Err(ApiError::new(ErrorCode::NotFound, "no such tenant"));
    }
    Ok(
        View::ok(&serde_json::json!({"tenant_id": tenant_id, "retention_days": body.days}))
            .audited(tenant_id, &body.days.to_string()),
    )
}

async fn set_policy_cpu(app: &App, tenant_id: &str, body: SetPolicyCpu) -> Result<View, ApiError> {
    if body
        .ms_per_second
        .is_some_and(|ms| ms == 0 || ms > 1_000_000)
    {
        return Err(ApiError::invalid(
            "ms_per_second",
            "milliseconds of CPU per second, 1 to 1000000, or null for the default",
        ));
    }
    require_tenant(app, tenant_id).await?;
    app.storage
        .put_policy_cpu(tenant_id, body.ms_per_second)
        .await?;
    app.policies.cpu.set_own(tenant_id, body.ms_per_second);
    let rate = u64::try_from(app.policies.cpu.rate(tenant_id).as_millis()).unwrap_or(u64::MAX);
    let view = serde_json::json!({"tenant_id": tenant_id, "ms_per_second": rate});
    Ok(View::ok(&view).audited(tenant_id, &view.to_string()))
}

async fn set_regions(app: &App, tenant_id: &str, body: SetRegions) -> Result<View, ApiError> {
    if let Some(regions) = &body.allowed_regions
        && (regions.is_empty()
            || regions.len() > 64
            || regions.iter().any(|r| r.is_empty() || r.len() > 64))
    {
        return Err(ApiError::invalid(
            "allowed_regions",
            "a list of 1 to 64 region labels (each 1 to 64 bytes), or null for any region",
        ));
    }
    require_tenant(app, tenant_id).await?;
    let deadline = app.policies.tenant(tenant_id).and_then(|t| t.deadline_ms);
    app.policies
        .set_settings(tenant_id, deadline, body.allowed_regions.clone())
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    let view = serde_json::json!({"tenant_id": tenant_id, "allowed_regions": body.allowed_regions});
    Ok(View::ok(&view).audited(tenant_id, &view.to_string()))
}

async fn set_tenant_limits(
    app: &App,
    tenant_id: &str,
    body: TenantLimitsBody,
) -> Result<View, ApiError> {
    let (limits, endpoints) = body.validate()?;
    require_tenant(app, tenant_id).await?;
    spend::set_limits(app, tenant_id, &Scope::Tenant, limits).await?;
    for (endpoint, limits) in endpoints {
        spend::set_limits(app, tenant_id, &Scope::Endpoint(endpoint), limits).await?;
    }
    let view = spend::limits_view(app, tenant_id);
    Ok(View::ok(&view).audited(tenant_id, &view.to_string()))
}

async fn set_key_limits(app: &App, key_id: &str, limits: LimitSet) -> Result<View, ApiError> {
    limits.validate("").map_err(ApiError::from)?;
    let tenant_id = key_tenant(app, key_id).await?;
    spend::set_limits(app, &tenant_id, &Scope::Key(key_id.to_owned()), limits).await?;
    let mut view = serde_json::to_value(limits).unwrap_or_default();
    view["key_id"] = serde_json::Value::from(key_id);
    view["tenant_id"] = serde_json::Value::from(tenant_id.clone());
    Ok(View::ok(&view).audited(&tenant_id, &view.to_string()))
}

async fn revoke_key(app: &App, key_id: &str) -> Result<View, ApiError> {
    // Memory first: from this instant the key no longer authenticates, even if the write is slow.
    app.keys.remove(key_id);
    match app.storage.revoke_key(key_id).await? {
        Some(tenant) => {
            tracing::info!(tenant = %tenant, key_id = %key_id, "API key revoked");
            Ok(
                View::ok(&serde_json::json!({"id": key_id, "revoked": true}))
                    .audited(&tenant, key_id),
            )
        }
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            "no live key with that id",
        )),
    }
}

async fn require_tenant(app: &App, tenant_id: &str) -> Result<(), ApiError> {
    if app.storage.tenant_exists(tenant_id).await? {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "no such tenant"))
    }
}

/// The tenant a key belongs to, or 404.
pub(super) async fn key_tenant(app: &App, key_id: &str) -> Result<String, ApiError> {
    app.storage
        .key_tenant(key_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such key"))
}

/// What a budget change records in the audit log.
pub(super) fn budget_subject(scope: &str, b: BudgetSet) -> String {
    let cap = |c: Option<u64>| c.map_or_else(|| "none".to_owned(), |m| m.to_string());
    format!(
        "{scope} daily_micro_usd={} monthly_micro_usd={}",
        cap(b.daily_micro_usd),
        cap(b.monthly_micro_usd)
    )
}

/// The secret part of a freshly generated key (the key was just made, so its shape is known).
fn secret_of(plaintext: &str) -> &str {
    keys::parse(plaintext).map(|p| p.secret).unwrap_or_default()
}
