//! Operator endpoints under `/admin/v1`, guarded by the operator token:
//! tenants (create, list), tenant keys (create, list) and key revocation, retention, budgets and limits,
//! and the regions a tenant's requests may be routed to.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::spend::{self, BudgetBody, TenantLimitsBody};
use crate::admission::{BudgetSet, LimitSet, Scope};
use crate::audit::entry::{ContentMark, Entry, EntryKind};
use crate::auth::{Role, keys};
use crate::error::{ApiError, ErrorCode};
use crate::server::App;
use crate::server::Body;
use crate::storage::{KeyRow, StorageError, unix_now};

/// Control-plane bodies are small; anything larger is a mistake.
const MAX_ADMIN_BODY: usize = 64 * 1024;

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

fn storage_err(e: StorageError) -> ApiError {
    match e {
        StorageError::DuplicateTenant(name) => {
            ApiError::invalid("name", format!("a tenant named `{name}` already exists"))
        }
        StorageError::NoSuchTenant => ApiError::new(ErrorCode::NotFound, "no such tenant"),
        other => ApiError::new(ErrorCode::Unavailable, other.to_string()),
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    crate::server::json_response(status, v.to_string())
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    req: http::Request<Incoming>,
) -> Result<T, ApiError> {
    if !crate::wire::has_media_type(req.headers(), "application/json") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON with `Content-Type: application/json`",
        ));
    }
    let bytes = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "admin request bodies are limited to 64 KiB",
            )
        })?
        .to_bytes();
    crate::wire::parse_body(&bytes)
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

/// Routes one `/admin/v1/...` request.
pub async fn handle(
    app: &Arc<App>,
    ctx: &mut crate::server::RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let authorized = crate::auth::bearer(req.headers())
        .is_some_and(|t| crate::auth::operator_token_matches(t, app.admin_token_sha256()));
    if !authorized {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "a valid operator token is required",
        ));
    }
    let path = req.uri().path().trim_start_matches("/admin/v1/").to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let method = req.method().clone();
    match (method.clone(), segments.as_slice()) {
        (Method::POST, ["tenants"]) => {
            let body: CreateTenant = read_json(req).await?;
            valid_name("name", &body.name)?;
            let id = uuid::Uuid::now_v7().to_string();
            let row = app
                .storage
                .create_tenant(&id, body.name.trim())
                .await
                .map_err(storage_err)?;
            tracing::info!(tenant = %row.id, "tenant created");
            audit_admin(app, ctx, &row.id, "admin.tenant_created", &row.id).await?;
            Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({"id": row.id, "name": row.name, "created_at": row.created_at}),
            ))
        }
        (Method::GET, ["tenants"]) => {
            let rows = app.storage.list_tenants().await.map_err(storage_err)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"object": "list", "data": rows}),
            ))
        }
        (Method::POST, ["tenants", tenant_id, "keys"]) => {
            let tenant_id = (*tenant_id).to_owned();
            let body: CreateKey = read_json(req).await?;
            valid_name("name", &body.name)?;
            let role = Role::parse(&body.role).ok_or_else(|| {
                ApiError::invalid("role", "`role` must be one of owner, admin, member")
            })?;
            if !app
                .storage
                .tenant_exists(&tenant_id)
                .await
                .map_err(storage_err)?
            {
                return Err(ApiError::new(ErrorCode::NotFound, "no such tenant"));
            }
            let new = keys::generate();
            let row = KeyRow {
                id: new.id.clone(),
                tenant_id: tenant_id.clone(),
                name: body.name.trim().to_owned(),
                role,
                salt: new.salt.to_vec(),
                hash: keys::hash(app.keys.pepper(), &new.salt, secret_of(&new.plaintext)).to_vec(),
                last4: new.last4.clone(),
                created_at: unix_now(),
                revoked_at: None,
            };
            app.storage.insert_key(&row).await.map_err(storage_err)?;
            app.keys.insert(&row);
            tracing::info!(tenant = %tenant_id, key_id = %row.id, role = role.as_str(), "API key created");
            audit_admin(app, ctx, &tenant_id, "admin.key_created", &row.id).await?;
            // The only time the plaintext exists outside the client: this response.
            Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "id": row.id,
                    "key": new.plaintext,
                    "last4": row.last4,
                    "role": role,
                    "name": row.name,
                    "tenant_id": tenant_id,
                }),
            ))
        }
        (Method::GET, ["tenants", tenant_id, "keys"]) => {
            if !app
                .storage
                .tenant_exists(tenant_id)
                .await
                .map_err(storage_err)?
            {
                return Err(ApiError::new(ErrorCode::NotFound, "no such tenant"));
            }
            let rows = app
                .storage
                .list_keys(Some(tenant_id))
                .await
                .map_err(storage_err)?;
            let data: Vec<_> = rows
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "id": k.id, "name": k.name, "role": k.role, "last4": k.last4,
                        "created_at": k.created_at, "revoked_at": k.revoked_at,
                    })
                })
                .collect();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"object": "list", "data": data}),
            ))
        }
        (Method::PUT, ["tenants", tenant_id, "retention"]) => {
            let tenant_id = (*tenant_id).to_owned();
            let body: SetRetention = read_json(req).await?;
            if body.days > 36_500 {
                return Err(ApiError::invalid(
                    "days",
                    "`days` must be between 0 and 36500",
                ));
            }
            let found = app
                .audit
                .set_retention(&tenant_id, body.days)
                .await
                .map_err(storage_err)?;
            if !found {
                return Err(ApiError::new(ErrorCode::NotFound, "no such tenant"));
            }
            audit_admin(
                app,
                ctx,
                &tenant_id,
                "admin.retention_set",
                &body.days.to_string(),
            )
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"tenant_id": tenant_id, "retention_days": body.days}),
            ))
        }
        (Method::PUT, ["tenants", tenant_id, "budget"]) => {
            let tenant_id = (*tenant_id).to_owned();
            let budget = read_json::<BudgetBody>(req).await?.validate()?;
            require_tenant(app, &tenant_id).await?;
            spend::set_budget(app, &tenant_id, None, budget).await?;
            audit_admin(
                app,
                ctx,
                &tenant_id,
                "admin.budget_set",
                &budget_subject("tenant", budget),
            )
            .await?;
            Ok(json(
                StatusCode::OK,
                &spend::budget_view(app, &tenant_id, None),
            ))
        }
        (Method::PUT, ["tenants", tenant_id, "regions"]) => {
            let tenant_id = (*tenant_id).to_owned();
            let body = read_json::<SetRegions>(req).await?;
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
            require_tenant(app, &tenant_id).await?;
            let deadline = app.policies.tenant(&tenant_id).and_then(|t| t.deadline_ms);
            app.policies
                .set_settings(&tenant_id, deadline, body.allowed_regions.clone())
                .await
                .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
            let view = serde_json::json!({"tenant_id": tenant_id, "allowed_regions": body.allowed_regions});
            audit_admin(app, ctx, &tenant_id, "admin.regions_set", &view.to_string()).await?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["tenants", tenant_id, "budget"]) => {
            require_tenant(app, tenant_id).await?;
            Ok(json(
                StatusCode::OK,
                &spend::budget_view(app, tenant_id, None),
            ))
        }
        (Method::PUT, ["tenants", tenant_id, "limits"]) => {
            let tenant_id = (*tenant_id).to_owned();
            let (limits, endpoints) = read_json::<TenantLimitsBody>(req).await?.validate()?;
            require_tenant(app, &tenant_id).await?;
            spend::set_limits(app, &tenant_id, &Scope::Tenant, limits).await?;
            for (endpoint, limits) in endpoints {
                spend::set_limits(app, &tenant_id, &Scope::Endpoint(endpoint), limits).await?;
            }
            let view = spend::limits_view(app, &tenant_id);
            audit_admin(app, ctx, &tenant_id, "admin.limits_set", &view.to_string()).await?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["tenants", tenant_id, "limits"]) => {
            require_tenant(app, tenant_id).await?;
            Ok(json(StatusCode::OK, &spend::limits_view(app, tenant_id)))
        }
        (Method::PUT, ["keys", key_id, "budget"]) => {
            let key_id = (*key_id).to_owned();
            let budget = read_json::<BudgetBody>(req).await?.validate()?;
            let tenant_id = key_tenant(app, &key_id).await?;
            spend::set_budget(app, &tenant_id, Some(&key_id), budget).await?;
            audit_admin(
                app,
                ctx,
                &tenant_id,
                "admin.budget_set",
                &budget_subject(&format!("key:{key_id}"), budget),
            )
            .await?;
            Ok(json(
                StatusCode::OK,
                &spend::budget_view(app, &tenant_id, Some(&key_id)),
            ))
        }
        (Method::PUT, ["keys", key_id, "limits"]) => {
            let key_id = (*key_id).to_owned();
            let limits: LimitSet = read_json(req).await?;
            limits.validate("")?;
            let tenant_id = key_tenant(app, &key_id).await?;
            spend::set_limits(app, &tenant_id, &Scope::Key(key_id.clone()), limits).await?;
            let mut view = serde_json::to_value(limits).unwrap_or_default();
            view["key_id"] = serde_json::Value::from(key_id.clone());
            view["tenant_id"] = serde_json::Value::from(tenant_id.clone());
            audit_admin(app, ctx, &tenant_id, "admin.limits_set", &view.to_string()).await?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::POST, ["audit", "prune"]) => {
            // `now` lets operators (and tests) prune as of a given time; default: the clock.
            let body: Prune = read_json(req).await?;
            let now = body.now.unwrap_or_else(unix_now);
            let deleted = app.audit.prune(now).await.map_err(storage_err)?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"deleted": deleted, "as_of": now}),
            ))
        }
        (Method::DELETE, ["keys", key_id]) => {
            let key_id = (*key_id).to_owned();
            // Memory first: from this instant the key no longer authenticates, even if the write is slow.
            app.keys.remove(&key_id);
            match app.storage.revoke_key(&key_id).await.map_err(storage_err)? {
                Some(tenant) => {
                    tracing::info!(tenant = %tenant, key_id = %key_id, "API key revoked");
                    audit_admin(app, ctx, &tenant, "admin.key_revoked", &key_id).await?;
                    Ok(json(
                        StatusCode::OK,
                        &serde_json::json!({"id": key_id, "revoked": true}),
                    ))
                }
                None => Err(ApiError::new(
                    ErrorCode::NotFound,
                    "no live key with that id",
                )),
            }
        }
        (
            _,
            ["tenants"]
            | ["tenants", _, "keys"]
            | ["tenants", _, "retention"]
            | ["tenants", _, "budget" | "limits" | "regions"]
            | ["keys", _, "budget" | "limits"]
            | ["audit", "prune"]
            | ["keys", _],
        ) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed here"),
        )),
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such admin endpoint")),
    }
}

async fn require_tenant(app: &App, tenant_id: &str) -> Result<(), ApiError> {
    if app
        .storage
        .tenant_exists(tenant_id)
        .await
        .map_err(storage_err)?
    {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "no such tenant"))
    }
}

/// The tenant a key belongs to, or 404.
pub(crate) async fn key_tenant(app: &App, key_id: &str) -> Result<String, ApiError> {
    app.storage
        .key_tenant(key_id)
        .await
        .map_err(storage_err)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such key"))
}

/// What a budget change records in the audit log.
pub(crate) fn budget_subject(scope: &str, b: BudgetSet) -> String {
    let cap = |c: Option<u64>| c.map_or_else(|| "none".to_owned(), |m| m.to_string());
    format!(
        "{scope} daily_micro_usd={} monthly_micro_usd={}",
        cap(b.daily_micro_usd),
        cap(b.monthly_micro_usd)
    )
}

/// Writes an admin action into the tenant's log before the action is confirmed to the operator. The action
/// has happened by then; if the entry cannot be made durable the operator gets 503 and the log says why.
async fn audit_admin(
    app: &App,
    ctx: &crate::server::RequestCtx,
    tenant_id: &str,
    action: &str,
    subject: &str,
) -> Result<(), ApiError> {
    let entry = Entry {
        index: 0,
        prev_leaf: [0; 32],
        kind: EntryKind::Admin,
        timestamp_ms: crate::audit::now_ms(),
        tenant_id: tenant_id.to_owned(),
        key_id: "operator".to_owned(),
        request_id: ctx.id.clone(),
        trace_id: ctx.traceparent.get(3..35).unwrap_or_default().to_owned(),
        endpoint: action.to_owned(),
        subject: subject.to_owned(),
        model_requested: String::new(),
        deployment: String::new(),
        tier: String::new(),
        region: String::new(),
        cache: String::new(),
        policy: String::new(),
        status: 200,
        error_code: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_micro_usd: 0,
        latency_us: u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        content: ContentMark::None,
        prompt_commitment: None,
        response_commitment: None,
    };
    app.audit.append(entry, None).await.map(|_| ()).map_err(|e| {
        tracing::error!(tenant = %tenant_id, action, error = %e, "admin action done but not audited");
        crate::server::audit_unavailable(app, &e)
    })
}

/// The secret part of a freshly generated key (the key was just made, so its shape is known).
fn secret_of(plaintext: &str) -> &str {
    keys::parse(plaintext).map(|p| p.secret).unwrap_or_default()
}
