//! Tenant self-service for spend, with a tenant key (the tenant comes from the credential, never the URL):
//! - `GET /v1/budget` (any role): the tenant's caps and windows, and the calling key's;
//! - `GET /v1/usage?days=N` (admin or owner): daily requests, tokens and cost per key;
//! - `PUT /v1/keys/{key_id}/budget` (owner): a budget for one of the tenant's keys.

use super::operator::{budget_subject, key_tenant};
use super::spend::{self, BudgetBody};
use super::{ControlRequest, SpendEndpoint, View};
use crate::app::App;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};

/// Longest usage report, in days.
const MAX_USAGE_DAYS: u64 = 366;

/// Serves one tenant spend endpoint.
pub async fn serve(
    app: &App,
    principal: &Principal,
    endpoint: SpendEndpoint,
    mut call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    let tenant = &*principal.tenant_id;
    match endpoint {
        SpendEndpoint::BudgetRead => Ok(View::ok(&spend::budget_view(
            app,
            tenant,
            Some(&principal.key_id),
        ))),
        SpendEndpoint::UsageRead => {
            let days = call
                .query("days")
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
            Ok(View::ok(&spend::usage_view(app, tenant, days).await?))
        }
        SpendEndpoint::KeyBudgetSet => {
            let key = call.param(0).to_owned();
            let budget = call.json::<BudgetBody>().await?.validate()?;
            // Another tenant's key is as unknown as a missing one.
            if key_tenant(app, &key).await.ok().as_deref() != Some(tenant) {
                return Err(ApiError::new(ErrorCode::NotFound, "no such key"));
            }
            spend::set_budget(app, tenant, Some(&key), budget).await?;
            Ok(View::ok(&spend::budget_view(app, tenant, Some(&key)))
                .changed(budget_subject(&format!("key:{key}"), budget)))
        }
    }
}
