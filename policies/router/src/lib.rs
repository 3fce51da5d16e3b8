//! The built-in tiered router: simple requests go to the cheapest healthy simple-tier deployment, complex ones
//! to the best complex-tier one (the highest-priced, as a proxy for capability, then the fastest), standard
//! ones to the cheapest standard-tier one. A `region` metadata value is preferred when deployments serve
//! it. When the remaining budget cannot pay for the request's worst case at the chosen tier, the router
//! moves down a tier. The other healthy candidates follow as fallbacks, cheapest first.

wit_bindgen::generate!({ path: "../../wit", world: "router-policy" });

use exports::sluice::policy::router::{Decision, Guest, RoutingInput};
use sluice::policy::types::{Deployment, Health, PolicyError, Tier};

/// Output tokens assumed when the client set no cap, to price the worst case.
const ASSUMED_OUTPUT: u64 = 1_024;

fn rank(t: Tier) -> u8 {
    match t {
        Tier::Simple => 0,
        Tier::Standard => 1,
        Tier::Complex => 2,
    }
}

fn cheaper(t: Tier) -> Option<Tier> {
    match t {
        Tier::Complex => Some(Tier::Standard),
        Tier::Standard => Some(Tier::Simple),
        Tier::Simple => None,
    }
}

fn price(d: &Deployment) -> u64 {
    d.input_micro_usd_per_mtok + d.output_micro_usd_per_mtok
}

fn worst_case(d: &Deployment, prompt: u64, output: u64) -> u64 {
    (u128::from(prompt) * u128::from(d.input_micro_usd_per_mtok)
        + u128::from(output) * u128::from(d.output_micro_usd_per_mtok))
    .div_ceil(1_000_000)
    .try_into()
    .unwrap_or(u64::MAX)
}

/// The pick for a tier among `pool`: cheapest, except for the complex tier (best first).
fn pick<'a>(pool: &[&'a Deployment], tier: Tier) -> Option<&'a Deployment> {
    let of_tier = pool.iter().copied().filter(|d| d.tier == tier);
    if tier == Tier::Complex {
        of_tier.max_by_key(|d| (price(d), std::cmp::Reverse(d.recent_latency_ms.unwrap_or(u32::MAX))))
    } else {
        of_tier.min_by_key(|d| (price(d), d.recent_latency_ms.unwrap_or(u32::MAX)))
    }
}

struct Router;

impl Guest for Router {
    fn route(input: RoutingInput) -> Result<Decision, PolicyError> {
        let region = input
            .req
            .metadata
            .iter()
            .find(|l| l.key == "region")
            .map(|l| l.value.clone());
        let healthy: Vec<&Deployment> = input
            .candidates
            .iter()
            .filter(|d| d.health != Health::Down)
            .collect();
        let in_region: Vec<&Deployment> = match &region {
            Some(r) => healthy.iter().copied().filter(|d| &d.region == r).collect(),
            None => Vec::new(),
        };
        let pool = if in_region.is_empty() { healthy } else { in_region };
        if pool.is_empty() {
            return Err(PolicyError {
                message: "no healthy deployment among the candidates".to_owned(),
            });
        }
        let output = input.req.max_tokens.map_or(ASSUMED_OUTPUT, u64::from);
        let affordable = |d: &Deployment| {
            input
                .budget
                .remaining_micro_usd
                .is_none_or(|left| worst_case(d, input.req.prompt_tokens, output) <= left)
        };
        let within_budget: Vec<&Deployment> = pool.iter().copied().filter(|d| affordable(d)).collect();
        // The classifier's tier, or the nearest cheaper tier with an affordable deployment.
        let mut tier = Some(input.tier);
        let mut first = None;
        while let Some(t) = tier {
            if let Some(d) = pick(&within_budget, t) {
                first = Some(d);
                break;
            }
            tier = cheaper(t);
        }
        // No deployment of the tier or below: the closest tier above that fits.
        let first = first.or_else(|| {
            let mut above: Vec<&Deployment> = within_budget
                .iter()
                .copied()
                .filter(|d| rank(d.tier) > rank(input.tier))
                .collect();
            above.sort_by_key(|d| (rank(d.tier), price(d)));
            above.first().copied()
        });
        let Some(first) = first else {
            // Nothing is affordable: the cheapest, and the host's budget check decides.
            let cheapest = pool.iter().min_by_key(|d| price(d)).map(|d| d.name.clone());
            return Ok(Decision::Route(cheapest.into_iter().collect()));
        };
        let mut rest: Vec<&Deployment> = pool
            .iter()
            .copied()
            .filter(|d| d.name != first.name && affordable(d))
            .collect();
        rest.sort_by_key(|d| (rank(d.tier) != rank(first.tier), price(d)));
        let mut names = vec![first.name.clone()];
        names.extend(rest.into_iter().map(|d| d.name.clone()));
        Ok(Decision::Route(names))
    }
}

export!(Router);
