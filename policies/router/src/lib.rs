//! The built-in tiered router: simple requests go to the cheapest healthy simple-tier deployment, complex ones
//! to the best complex-tier one (the highest-priced, as a proxy for capability, then the fastest), standard
//! ones to the cheapest standard-tier one. A `region` metadata value is preferred when deployments serve
//! it. When the remaining budget cannot pay for the request's worst case at the chosen tier, the router
//! moves down a tier. The other healthy candidates follow as fallbacks, cheapest first.

use sluice_guest::prelude::*;

/// The pick for a tier among `pool`: cheapest, except for the complex tier (best first).
fn pick<'a>(pool: &[&'a Deployment], tier: Tier) -> Option<&'a Deployment> {
    let of_tier = pool.of_tier(tier);
    if tier == Tier::Complex {
        of_tier.best()
    } else {
        of_tier.cheapest()
    }
}

/// The route slot.
fn route(input: RoutingInput) -> Result<RouteDecision, PolicyError> {
    let healthy = input.candidates.healthy();
    let in_region = match input.req.meta("region") {
        Some(r) => healthy.in_region(r),
        None => Vec::new(),
    };
    let pool = if in_region.is_empty() {
        healthy
    } else {
        in_region
    };
    if pool.is_empty() {
        return Err(PolicyError::new(
            "no healthy deployment among the candidates",
        ));
    }
    let within_budget: Vec<&Deployment> = pool
        .iter()
        .copied()
        .filter(|d| input.can_afford(d))
        .collect();
    // The classifier's tier, or the nearest cheaper tier with an affordable deployment.
    let mut tier = Some(input.tier);
    let mut first = None;
    while let Some(t) = tier {
        if let Some(d) = pick(&within_budget, t) {
            first = Some(d);
            break;
        }
        tier = t.cheaper();
    }
    // No deployment of the tier or below: the closest tier above that fits.
    let first = first.or_else(|| {
        let mut above: Vec<&Deployment> = within_budget
            .iter()
            .copied()
            .filter(|d| d.tier.rank() > input.tier.rank())
            .collect();
        above.sort_by_key(|d| (d.tier.rank(), d.unit_price()));
        above.first().copied()
    });
    let Some(first) = first else {
        // Nothing is affordable: the cheapest (by price alone, the first of equals), and the host's budget
        // check decides.
        let cheapest = pool
            .iter()
            .min_by_key(|d| d.unit_price())
            .map(|d| d.name.clone());
        return Ok(RouteDecision::Route(cheapest.into_iter().collect()));
    };
    let mut rest: Vec<&Deployment> = pool
        .iter()
        .copied()
        .filter(|d| d.name != first.name && input.can_afford(d))
        .collect();
    rest.sort_by_key(|d| (d.tier.rank() != first.tier.rank(), d.unit_price()));
    let mut names = vec![first.name.clone()];
    names.extend(rest.into_iter().map(|d| d.name.clone()));
    Ok(RouteDecision::Route(names))
}

sluice_guest::export_router!(route);
