//! Authorization, classification and routing decisions: the Wasm runtime (`wasm`), the built-in policies
//! (`builtin`), the compiler process (`compiler`), the compiled-artifact cache (`artifacts`), each tenant's
//! uploaded versions (`registry`) and their failure counts (`quarantine`), the decisions made with them
//! (`decide`), what policies see of the host's types (`view`), `sluice policy test` (`offline`), `sluice route
//! train` and `sluice route eval` (`learn`), and the budget rules the router and the reservation share
//! (below).

pub mod artifacts;
pub mod builtin;
pub mod compiler;
pub mod cpu;
mod decide;
pub mod learn;
pub mod offline;
pub mod pool;
mod quarantine;
mod registry;
mod view;
pub mod wasm;

use std::sync::Arc;

use crate::config::{Price, Tier};
use crate::providers::Deployment;

pub use decide::{AuthOutcome, Classified, Refused, Trail};
pub use registry::{Active, Policies, TenantPolicies, UploadError, digest_of};
pub use view::{PolicyRequest, RequestFacts, request_view};
pub use wasm::{Embedding, Slot};

/// The deployments a request may go to, in fallback order.
#[derive(Debug, Clone)]
pub struct Route {
    pub deployments: Arc<[Arc<Deployment>]>,
}

impl Route {
    /// The tier when no classifier ran: that of the first deployment the route names.
    pub fn configured_tier(&self) -> Tier {
        self.deployments
            .first()
            .map_or(Tier::Standard, |d| d.config.tier)
    }
}

/// What the router knows of a request's cost and the budget left.
#[derive(Debug, Clone, Copy)]
pub struct BudgetHint {
    /// What the tightest budget still allows, in micro-USD.
    pub remaining_micro_usd: u64,
    pub prompt_tokens: u64,
    /// The output cap the client asked for, per choice; `None` means each deployment's `max_output_tokens`.
    pub output_tokens: Option<u32>,
    /// Completions generated, each of which may use the whole cap.
    pub choices: u32,
    /// Tokens billed at the output price beyond the choices'.
    pub extra_output_tokens: u64,
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
            completion_tokens: u64::from(hint.output_tokens.unwrap_or(default_output))
                .saturating_mul(u64::from(hint.choices.max(1)))
                .saturating_add(hint.extra_output_tokens),
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
    use crate::config::{Config, DeploymentKind};
    use crate::providers::RoutingSnapshot;

    fn route(snap: &RoutingSnapshot, model: &str, kind: DeploymentKind) -> Option<Route> {
        Policies::candidates(snap, None, model, kind).map(|d| Route {
            deployments: d.into(),
        })
    }

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
        RoutingSnapshot::build(&config.routing, &crate::inference::LocalModels::default()).unwrap()
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
            choices: 1,
            extra_output_tokens: 0,
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
