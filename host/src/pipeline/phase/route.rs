//! Route: a policy orders the candidates (the host keeps only candidates; a failing or invalid router falls
//! back to the built-in one), or the configured order stands; then the built-in degradation drops the
//! deployments the remaining budget cannot pay for. `Err` is 403 `policy_denied` when the router refused
//! the request.

use crate::config::Tier;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::Call;
use crate::policy::{self, Route};
use crate::providers::Endpoint;

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Route);
    let candidates = std::mem::take(&mut call.candidates);
    let view = call.view.take().filter(|_| call.routes());
    let route = match view {
        Some(view) => {
            let tier = call.classified.as_ref().map_or(Tier::Standard, |c| c.tier);
            let remaining = call.remaining_budget();
            call.ex
                .app
                .policies
                .route(
                    call.tenant.as_deref(),
                    view,
                    tier,
                    candidates,
                    remaining,
                    &mut call.trail,
                )
                .await
        }
        None => {
            call.trail.configured();
            Ok(Route {
                deployments: candidates.into(),
            })
        }
    };
    let decided = call.trail.as_str().to_owned();
    call.ex.note(|r| r.policy = decided);
    let route =
        route.map_err(|policy::Refused(reason)| ApiError::new(ErrorCode::PolicyDenied, reason))?;
    call.route = Some(degrade(call, route));
    Ok(Flow::Next)
}

/// The built-in degradation as the budget runs low: deployments it can no longer pay for leave the route.
fn degrade(call: &Call<'_>, route: Route) -> Route {
    let Some(remaining) = call.remaining_budget() else {
        return route;
    };
    let hint = policy::BudgetHint {
        remaining_micro_usd: remaining,
        prompt_tokens: call.bound.prompt_tokens,
        output_tokens: match call.endpoint {
            Endpoint::Chat => call.max_output,
            Endpoint::Embeddings => Some(0),
        },
        choices: call.bound.choices,
        extra_output_tokens: call.bound.extra_output_tokens,
    };
    policy::fit_budget(route, &hint)
}
