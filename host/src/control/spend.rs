//! Budgets, limits and usage over HTTP: the request bodies, their validation and the views shared by the
//! operator endpoints (`/admin/v1/tenants/{id}/budget|limits`, `/admin/v1/keys/{id}/budget|limits`) and the
//! tenant endpoints (`GET /v1/budget`, `GET /v1/usage`, `PUT /v1/keys/{id}/budget`).
//!
//! Every change is stored first and then applied in memory, so a restart serves what the API confirmed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::admission::{BudgetSet, ENDPOINTS, LimitSet, Scope};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};

/// Largest cap accepted, in USD: anything above is a typo.
const MAX_USD: f64 = 1e9;

/// `PUT .../budget`: USD per UTC day and per UTC calendar month; absent or null removes the cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    #[serde(default)]
    pub daily_usd: Option<f64>,
    #[serde(default)]
    pub monthly_usd: Option<f64>,
}

fn micro(field: &str, usd: Option<f64>) -> Result<Option<u64>, ApiError> {
    let Some(usd) = usd else { return Ok(None) };
    if !usd.is_finite() || !(0.0..=MAX_USD).contains(&usd) {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be between 0 and {MAX_USD} USD, or null for no cap"),
        ));
    }
    // Within range, so the rounded product fits in a u64.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "range checked above"
    )]
    Ok(Some((usd * 1e6).round() as u64))
}

impl BudgetBody {
    pub fn validate(&self) -> Result<BudgetSet, ApiError> {
        Ok(BudgetSet {
            daily_micro_usd: micro("daily_usd", self.daily_usd)?,
            monthly_micro_usd: micro("monthly_usd", self.monthly_usd)?,
        })
    }
}

/// `PUT /admin/v1/tenants/{id}/limits`: the tenant's limits, and per-endpoint limits. The body replaces
/// what was set: a field left out removes that limit, an endpoint left out loses its own limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsBody {
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, LimitSet>,
}

impl TenantLimitsBody {
    pub fn validate(&self) -> Result<(LimitSet, Vec<(String, LimitSet)>), ApiError> {
        let tenant = LimitSet {
            requests_per_second: self.requests_per_second,
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            max_concurrent: self.max_concurrent,
        };
        tenant.validate("")?;
        for (name, limits) in &self.endpoints {
            if !ENDPOINTS.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    format!("endpoints.{name}"),
                    format!("`{name}` is not an endpoint with limits (chat, embeddings)"),
                ));
            }
            limits.validate(&format!("endpoints.{name}."))?;
        }
        let endpoints = ENDPOINTS
            .iter()
            .map(|e| {
                (
                    (*e).to_owned(),
                    self.endpoints.get(*e).copied().unwrap_or_default(),
                )
            })
            .collect();
        Ok((tenant, endpoints))
    }
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("storage: {e}"))
}

/// Stores and applies a budget.
pub async fn set_budget(
    app: &App,
    tenant: &str,
    key: Option<&str>,
    budget: BudgetSet,
) -> Result<(), ApiError> {
    let scope = key.map_or(Scope::Tenant, |k| Scope::Key(k.to_owned()));
    app.storage
        .put_budget(
            tenant,
            &scope.encode(),
            budget.daily_micro_usd,
            budget.monthly_micro_usd,
        )
        .await
        .map_err(unavailable)?;
    app.admission.set_budget(tenant, key, budget);
    Ok(())
}

/// Stores and applies the limits of one scope.
pub async fn set_limits(
    app: &App,
    tenant: &str,
    scope: &Scope,
    limits: LimitSet,
) -> Result<(), ApiError> {
    let json = (!limits.is_empty())
        .then(|| serde_json::to_string(&limits))
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    app.storage
        .put_limits(tenant, &scope.encode(), json.as_deref())
        .await
        .map_err(unavailable)?;
    app.admission.set_limits(tenant, scope, limits);
    Ok(())
}

fn usd(micro: Option<u64>) -> serde_json::Value {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    micro.map_or(serde_json::Value::Null, |m| {
        serde_json::Value::from(m as f64 / 1e6)
    })
}

/// The budget document: caps as set, and every window's cap, spent, reserved, remaining and reset time.
pub fn budget_view(app: &App, tenant: &str, key: Option<&str>) -> serde_json::Value {
    let tenant_budget = app.admission.budget(tenant, None);
    let mut doc = serde_json::json!({
        "tenant_id": tenant,
        "daily_usd": usd(tenant_budget.daily_micro_usd),
        "monthly_usd": usd(tenant_budget.monthly_micro_usd),
        "windows": app.admission.budget_view(tenant, key),
    });
    if let Some(k) = key {
        let b = app.admission.budget(tenant, Some(k));
        doc["key"] = serde_json::json!({
            "id": k,
            "daily_usd": usd(b.daily_micro_usd),
            "monthly_usd": usd(b.monthly_micro_usd),
        });
    }
    doc
}

/// The limits document of a tenant, with its endpoints' limits.
pub fn limits_view(app: &App, tenant: &str) -> serde_json::Value {
    let mut doc =
        serde_json::to_value(app.admission.limits(tenant, &Scope::Tenant)).unwrap_or_default();
    let endpoints: BTreeMap<&str, LimitSet> = ENDPOINTS
        .iter()
        .map(|e| {
            (
                *e,
                app.admission
                    .limits(tenant, &Scope::Endpoint((*e).to_owned())),
            )
        })
        .filter(|(_, l)| !l.is_empty())
        .collect();
    doc["tenant_id"] = serde_json::Value::from(tenant);
    doc["endpoints"] = serde_json::to_value(endpoints).unwrap_or_default();
    doc
}

/// Daily usage of a tenant over the last `days` UTC days (today included), per key.
pub async fn usage_view(app: &App, tenant: &str, days: u64) -> Result<serde_json::Value, ApiError> {
    let today = crate::admission::window::day_of(app.admission.clock().now_ns());
    let from = today.saturating_sub(days.saturating_sub(1));
    let rows = app
        .storage
        .spend_since(Some(tenant), from)
        .await
        .map_err(unavailable)?;
    let total = rows.iter().fold((0u64, 0u64, 0u64, 0u64), |t, r| {
        (
            t.0.saturating_add(r.requests),
            t.1.saturating_add(r.prompt_tokens),
            t.2.saturating_add(r.completion_tokens),
            t.3.saturating_add(r.micro_usd),
        )
    });
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "date": &crate::admission::window::rfc3339(r.day)[..10],
                "key_id": r.key_id,
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost_micro_usd": r.micro_usd,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "object": "list",
        "tenant_id": tenant,
        "from": &crate::admission::window::rfc3339(from)[..10],
        "data": data,
        "total": {
            "requests": total.0,
            "prompt_tokens": total.1,
            "completion_tokens": total.2,
            "cost_micro_usd": total.3,
        },
    }))
}
