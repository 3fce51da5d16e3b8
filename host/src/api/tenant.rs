//! Tenant self-service for spend, with a tenant key (the tenant comes from the credential, never the URL):
//! - `GET /v1/budget` (any role): the tenant's caps and windows, and the calling key's;
//! - `GET /v1/usage?days=N` (admin or owner): daily requests, tokens and cost per key;
//! - `PUT /v1/keys/{key_id}/budget` (owner): a budget for one of the tenant's keys.
//!
//! Each request writes its audit entry, like every request that reaches authentication.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

use super::admin::{budget_subject, key_tenant, read_json};
use super::spend::{self, BudgetBody};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorCode};
use crate::server::{App, Body, Finished, RequestCtx, authenticate, json_response};

/// Longest usage report, in days.
const MAX_USAGE_DAYS: u64 = 366;

fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 2,
        Role::Admin => 1,
        Role::Member => 0,
    }
}

/// Routes one tenant spend request and writes its audit entry.
pub async fn handle(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    req: http::Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let key_budget = path
        .strip_prefix("/v1/keys/")
        .and_then(|rest| rest.strip_suffix("/budget"))
        .filter(|k| !k.is_empty() && !k.contains('/'))
        .map(str::to_owned);
    let (endpoint, method, needs) = match (path.as_str(), &key_budget) {
        ("/v1/budget", _) => ("budget.read", Method::GET, Role::Member),
        ("/v1/usage", _) => ("usage.read", Method::GET, Role::Admin),
        (_, Some(_)) => ("keys.budget_set", Method::PUT, Role::Owner),
        _ => return Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
    };
    if req.method() != method {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not allowed here", req.method()),
        ));
    }
    let principal = authenticate(app, ctx, req.headers())?;
    let mut finished = Finished::new(ctx, principal.clone(), endpoint, String::new());
    ctx.audited = true;
    let result = if rank(principal.role) < rank(needs) {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this endpoint needs a key with the {} role", needs.as_str()),
        ))
    } else {
        serve(app, &principal, endpoint, key_budget.as_deref(), req).await
    };
    let (status, code) = match &result {
        Ok((_, _)) => (200, None),
        Err(e) => (e.status().as_u16(), Some(e.code.as_str())),
    };
    if let Ok((_, Some(subject))) = &result {
        finished.subject.clone_from(subject);
    }
    finished
        .settle_and_audit(app, status, code, None, None)
        .await?;
    result.map(|(resp, _)| resp)
}

/// The response, and what the audit entry should record as the subject of a change.
async fn serve(
    app: &App,
    principal: &Principal,
    endpoint: &str,
    key: Option<&str>,
    req: http::Request<Incoming>,
) -> Result<(Response<Body>, Option<String>), ApiError> {
    let tenant = &*principal.tenant_id;
    let ok = |v: serde_json::Value| json_response(StatusCode::OK, v.to_string());
    match (endpoint, key) {
        ("budget.read", _) => Ok((
            ok(spend::budget_view(app, tenant, Some(&principal.key_id))),
            None,
        )),
        ("usage.read", _) => {
            let days = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("days=")))
                .map(|v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|d| (1..=MAX_USAGE_DAYS).contains(d))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "days",
                                format!("`days` must be between 1 and {MAX_USAGE_DAYS}"),
                            )
                        })
                })
                .transpose()?
                .unwrap_or(30);
            Ok((ok(spend::usage_view(app, tenant, days).await?), None))
        }
        ("keys.budget_set", Some(key)) => {
            let budget = read_json::<BudgetBody>(req).await?.validate()?;
            // Another tenant's key is as unknown as a missing one.
            if key_tenant(app, key).await.ok().as_deref() != Some(tenant) {
                return Err(ApiError::new(ErrorCode::NotFound, "no such key"));
            }
            spend::set_budget(app, tenant, Some(key), budget).await?;
            Ok((
                ok(spend::budget_view(app, tenant, Some(key))),
                Some(budget_subject(&format!("key:{key}"), budget)),
            ))
        }
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
    }
}
