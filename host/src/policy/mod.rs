//! Authorization, classification and routing decisions.
//!
//! Tenant-programmable Wasm policies (and the built-in ones compiled from `policies/`) plug in here. Until
//! they land, each slot has a fixed built-in behaviour, stated on each function; the pipeline already
//! calls the three slots in their final order.

pub mod builtin;
pub mod wasm;

use std::sync::Arc;

use crate::auth::Principal;
use crate::config::{DeploymentKind, Price, Tier};
use crate::error::{ApiError, ErrorCode};
use crate::providers::{Deployment, RoutingSnapshot};

/// The `auth` slot's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Allow,
}

/// Built-in `auth`: any authenticated key of the tenant may use the data plane (roles gate the tenant
/// self-service endpoints, not inference).
pub fn authorize(_principal: &Principal) -> Result<Authorization, ApiError> {
    Ok(Authorization::Allow)
}

/// The `classify` slot's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
}

/// The deployments a request may go to, in fallback order, and the tier they serve.
#[derive(Debug, Clone)]
pub struct Route {
    pub deployments: Arc<[Arc<Deployment>]>,
}

/// Built-in `route`: the deployments configured for the requested name (a deployment, or a logical model's
/// ordered list). `auto` needs the classifier and router policies, which are not in this build.
pub fn route(
    snapshot: &RoutingSnapshot,
    model: &str,
    kind: DeploymentKind,
) -> Result<Route, ApiError> {
    let not_found = || ApiError {
        code: ErrorCode::ModelNotFound,
        message: format!("the model `{model}` does not exist or you do not have access to it"),
        param: Some("model".to_owned()),
        headers: Vec::new(),
    };
    let deployments = snapshot.resolve(model).ok_or_else(not_found)?;
    // A chat model named on the embeddings endpoint (or the reverse) is as unknown as a missing one.
    if deployments.is_empty() || deployments.iter().any(|d| d.config.kind != kind) {
        return Err(not_found());
    }
    Ok(Route { deployments })
}

/// Built-in `classify`: the tier of the first deployment the route names (no complexity scoring yet).
pub fn classify(route: &Route) -> Classification {
    Classification {
        tier: route
            .deployments
            .first()
            .map_or(Tier::Standard, |d| d.config.tier),
    }
}

/// The built-in policies, compiled once at start from the components embedded in the binary.
pub struct Builtins {
    pub runtime: wasm::Runtime,
    classifier: wasm::Policy,
    router: wasm::Policy,
}

impl std::fmt::Debug for Builtins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtins").finish_non_exhaustive()
    }
}

impl Builtins {
    pub fn load(limits: wasm::Limits) -> Result<Builtins, wasm::PolicyFailure> {
        let runtime = wasm::Runtime::new(limits)?;
        Ok(Builtins {
            classifier: runtime.load(builtin::CLASSIFIER)?,
            router: runtime.load(builtin::ROUTER)?,
            runtime,
        })
    }
}

fn to_wit_tier(t: Tier) -> wasm::wit::Tier {
    match t {
        Tier::Simple => wasm::wit::Tier::Simple,
        Tier::Standard => wasm::wit::Tier::Standard,
        Tier::Complex => wasm::wit::Tier::Complex,
    }
}

fn from_wit_tier(t: wasm::wit::Tier) -> Tier {
    match t {
        wasm::wit::Tier::Simple => Tier::Simple,
        wasm::wit::Tier::Standard => Tier::Standard,
        wasm::wit::Tier::Complex => Tier::Complex,
    }
}

/// How an `auto` request was decided, for the audit entry's `policy` field.
pub const POLICY_WASM: &str = "builtin-wasm";
pub const POLICY_FALLBACK: &str = "builtin-fallback";

/// `model: "auto"`: the built-in classifier picks a tier and the built-in router orders the tenant's chat
/// deployments. The host checks the decision: only names among the candidates count, each once. A policy
/// failure, or a decision naming nothing valid, falls back to the cheapest deployments of the classified
/// tier first (recorded as `builtin-fallback`); a rejection is 403 `policy_denied`.
pub fn auto_route(
    builtins: &Builtins,
    snapshot: &RoutingSnapshot,
    req: &wasm::wit::Request,
    budget: Option<u64>,
) -> Result<(Route, Tier, &'static str), ApiError> {
    let mut candidates: Vec<Arc<Deployment>> = Vec::new();
    for (_, deps) in snapshot.catalog() {
        for d in deps.iter() {
            if d.config.kind == DeploymentKind::Chat
                && !candidates.iter().any(|c| c.config.name == d.config.name)
            {
                candidates.push(d.clone());
            }
        }
    }
    if candidates.is_empty() {
        return Err(ApiError::invalid(
            "model",
            "`auto` needs at least one chat deployment",
        ));
    }
    let mut policy = POLICY_WASM;
    let tier = match builtins.runtime.classify(&builtins.classifier, req, None) {
        Ok(out) => from_wit_tier(out.value.tier),
        Err(e) => {
            tracing::warn!(error = %e, "built-in classifier failed; using the standard tier");
            policy = POLICY_FALLBACK;
            Tier::Standard
        }
    };
    let input = wasm::RoutingInput {
        req: req.clone(),
        tier: to_wit_tier(tier),
        candidates: candidates
            .iter()
            .map(|d| wasm::wit::Deployment {
                name: d.config.name.clone(),
                tier: to_wit_tier(d.config.tier),
                region: d.config.region.clone(),
                input_micro_usd_per_mtok: d.config.price.input_micro_usd_per_mtok,
                output_micro_usd_per_mtok: d.config.price.output_micro_usd_per_mtok,
                health: wasm::wit::Health::Healthy,
                recent_latency_ms: None,
            })
            .collect(),
        budget: wasm::wit::Budget {
            remaining_micro_usd: budget,
        },
    };
    let chosen: Vec<Arc<Deployment>> = match builtins.runtime.route(&builtins.router, &input, None)
    {
        Ok(out) => match out.value {
            wasm::RouteDecision::Reject(reason) => {
                return Err(ApiError::new(ErrorCode::PolicyDenied, reason));
            }
            wasm::RouteDecision::Route(names) => {
                let mut picked: Vec<Arc<Deployment>> = Vec::new();
                for name in names {
                    match candidates.iter().find(|c| c.config.name == name) {
                        Some(d) if !picked.iter().any(|p| p.config.name == name) => {
                            picked.push(d.clone());
                        }
                        Some(_) => {}
                        None => {
                            tracing::warn!(deployment = %name, "the router named a deployment outside the candidates; ignored");
                        }
                    }
                }
                picked
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "built-in router failed; falling back");
            Vec::new()
        }
    };
    let deployments = if chosen.is_empty() {
        policy = POLICY_FALLBACK;
        let mut all = candidates;
        all.sort_by_key(|d| {
            (
                d.config.tier != tier,
                d.config.price.input_micro_usd_per_mtok + d.config.price.output_micro_usd_per_mtok,
            )
        });
        all
    } else {
        chosen
    };
    Ok((
        Route {
            deployments: deployments.into(),
        },
        tier,
        policy,
    ))
}

/// What the router knows of a request's cost and the budget left.
#[derive(Debug, Clone, Copy)]
pub struct BudgetHint {
    /// What the tightest budget still allows, in micro-USD.
    pub remaining_micro_usd: u64,
    pub prompt_tokens: u64,
    /// The output cap the client asked for; `None` means each deployment's `max_output_tokens`.
    pub output_tokens: Option<u32>,
}

/// How the budget reservation prices a request that may go to any of `set` (failover): the highest input
/// and output prices, and the smallest default output cap.
pub fn reservation_terms<'a>(set: impl IntoIterator<Item = &'a Deployment>) -> (Price, u32) {
    set.into_iter().fold(
        (Price::default(), crate::config::DEFAULT_MAX_OUTPUT_TOKENS),
        |(p, out), d| {
            (
                Price {
                    input_micro_usd_per_mtok: p
                        .input_micro_usd_per_mtok
                        .max(d.config.price.input_micro_usd_per_mtok),
                    output_micro_usd_per_mtok: p
                        .output_micro_usd_per_mtok
                        .max(d.config.price.output_micro_usd_per_mtok),
                },
                out.min(d.config.max_output_tokens),
            )
        },
    )
}

/// The worst-case cost of a request that may go to any of `set`, priced as the reservation prices it.
fn worst_case(set: &[&Deployment], hint: &BudgetHint) -> u64 {
    let (price, default_output) = reservation_terms(set.iter().copied());
    crate::admission::cost_micro_usd(
        crate::providers::Usage {
            prompt_tokens: hint.prompt_tokens,
            completion_tokens: hint.output_tokens.unwrap_or(default_output).into(),
        },
        price,
    )
}

/// Built-in degradation as a budget runs low: deployments the remaining budget can no longer pay for are
/// dropped from the route, so the request goes to a cheaper one instead of being refused. Deployments are
/// kept in order while the worst case over those kept still fits (the reservation prices that same set). If
/// none fits, only the cheapest stays (the reservation then lowers `max_tokens`, or refuses with 402).
pub fn fit_budget(route: Route, hint: &BudgetHint) -> Route {
    let mut kept: Vec<&Deployment> = Vec::with_capacity(route.deployments.len());
    let mut keep = Vec::with_capacity(route.deployments.len());
    for d in route.deployments.iter() {
        kept.push(d);
        if worst_case(&kept, hint) <= hint.remaining_micro_usd {
            keep.push(d.clone());
        } else {
            kept.pop();
        }
    }
    if keep.len() == route.deployments.len() {
        return route;
    }
    if keep.is_empty() {
        keep.extend(
            route
                .deployments
                .iter()
                .min_by_key(|d| worst_case(&[d], hint))
                .cloned(),
        );
    }
    Route {
        deployments: keep.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn snapshot() -> RoutingSnapshot {
        let text = r#"
version = 1
[admin]
token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[auth]
pepper_env = "P"
[audit]
signing_key_env = "S"
master_key_env = "M"
[[providers]]
name = "f"
kind = "fake"
[[deployments]]
name = "big"
provider = "f"
model = "b"
price = { input_per_mtok = 10.0, output_per_mtok = 30.0 }
[[deployments]]
name = "mid"
provider = "f"
model = "m"
price = { input_per_mtok = 1.0, output_per_mtok = 3.0 }
max_output_tokens = 100
[[deployments]]
name = "tiny"
provider = "f"
model = "t"
price = { input_per_mtok = 0.1, output_per_mtok = 0.3 }
[[models]]
name = "chain"
deployments = ["big", "mid", "tiny"]
"#;
        let env = std::collections::HashMap::from([
            ("P".to_owned(), "p".repeat(32)),
            (
                "S".to_owned(),
                "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_owned(),
            ),
            (
                "M".to_owned(),
                "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=".to_owned(),
            ),
        ]);
        let config = Config::from_toml(text, std::path::Path::new("."), &env).unwrap();
        RoutingSnapshot::build(&config.routing).unwrap()
    }

    fn names(route: &Route) -> Vec<&str> {
        route
            .deployments
            .iter()
            .map(|d| d.config.name.as_str())
            .collect()
    }

    #[test]
    fn a_low_budget_drops_the_deployments_it_cannot_pay_for() {
        let snap = snapshot();
        let route = || route(&snap, "chain", DeploymentKind::Chat).unwrap();
        let hint = |remaining| BudgetHint {
            remaining_micro_usd: remaining,
            prompt_tokens: 1_000,
            output_tokens: None,
        };
        // Alone: big 10,000 + 4,096 * 30 = 132,880; mid 1,000 + 100 * 3 = 1,300; tiny 100 + 4,096 * 0.3 =
        // 1,329. Together they are priced at the highest prices and the smallest default output (100).
        assert_eq!(
            names(&fit_budget(route(), &hint(200_000))),
            ["big", "mid", "tiny"]
        );
        assert_eq!(names(&fit_budget(route(), &hint(100_000))), ["mid", "tiny"]);
        assert_eq!(names(&fit_budget(route(), &hint(1_300))), ["mid", "tiny"]);
        // Nothing fits: the cheapest worst case stays, for the reservation to clamp or refuse.
        assert_eq!(names(&fit_budget(route(), &hint(1_299))), ["mid"]);
        // With the output cap given: big costs 10,300 at most, and big with mid is priced at big's prices.
        let capped = |remaining| BudgetHint {
            output_tokens: Some(10),
            ..hint(remaining)
        };
        assert_eq!(
            names(&fit_budget(route(), &capped(10_300))),
            ["big", "mid", "tiny"]
        );
        assert_eq!(
            names(&fit_budget(route(), &capped(10_299))),
            ["mid", "tiny"]
        );
    }
}
