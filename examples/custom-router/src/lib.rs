//! An example tenant routing policy for Sluice: route only to deployments in one region, send code to a
//! code model, `x-sluice-meta-tier: premium` requests to the best complex-tier model, and everything else to
//! the cheapest model of the classifier's tier that the budget pays for. Edit the constants to make it yours.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use sluice_guest::prelude::*;

/// The only region requests may go to; `None` allows every region.
const REQUIRED_REGION: Option<&str> = Some("eu");
/// Requests that contain code go first to a deployment whose name contains this.
const CODE_MARK: &str = "code";
/// The metadata key (`x-sluice-meta-tier` header) and value that ask for the best model.
const PREMIUM: (&str, &str) = ("tier", "premium");

/// The route slot: the decision, and one log line saying why.
fn route(input: RoutingInput) -> Result<RouteDecision, PolicyError> {
    let (decision, why) = decide(&input);
    log::info(&format!("custom-router: {why}"));
    Ok(decision)
}

sluice_guest::export_router!(route);

/// The routing logic as a pure function, so it is tested on the build machine: the decision and why.
fn decide(input: &RoutingInput) -> (RouteDecision, String) {
    let up = input.candidates.healthy();
    let pool: Vec<&Deployment> = match REQUIRED_REGION {
        Some(region) => up.in_region(region),
        None => up,
    };
    let region = REQUIRED_REGION.unwrap_or("any region");
    if pool.is_empty() {
        let why = format!("no healthy deployment in region {region}");
        return (RouteDecision::Reject(why.clone()), why);
    }

    let (first, why) = match first_choice(input, &pool) {
        Some(choice) => choice,
        // Nothing fits the budget: the cheapest in the region, and the gateway's budget check decides.
        None => match pool.cheapest() {
            Some(d) => (d, "nothing fits the budget; cheapest in region".to_owned()),
            None => {
                let why = format!("no healthy deployment in region {region}");
                return (RouteDecision::Reject(why.clone()), why);
            }
        },
    };

    // The rest of the region follows as fallbacks, cheapest first.
    let mut names = vec![first.name.clone()];
    names.extend(
        pool.cheapest_first()
            .into_iter()
            .filter(|d| d.name != first.name)
            .map(|d| d.name.clone()),
    );
    let why = format!("{why} -> {}", names.join(", "));
    (RouteDecision::Route(names), why)
}

/// The first deployment to try among `pool` (healthy, in the region), and why; none if the budget pays for
/// nothing.
fn first_choice<'a>(
    input: &RoutingInput,
    pool: &[&'a Deployment],
) -> Option<(&'a Deployment, String)> {
    let affordable: Vec<&'a Deployment> = pool
        .iter()
        .copied()
        .filter(|d| input.can_afford(d))
        .collect();

    if input.req.contains_code() {
        let code: Vec<&'a Deployment> = affordable
            .iter()
            .copied()
            .filter(|d| d.name.contains(CODE_MARK))
            .collect();
        if let Some(d) = code.cheapest() {
            return Some((d, "code in the request".to_owned()));
        }
    }

    if input.req.meta(PREMIUM.0) == Some(PREMIUM.1)
        && let Some(d) = affordable.best_healthy(Tier::Complex, None)
    {
        return Some((d, "premium request".to_owned()));
    }

    // The classifier's tier, or the nearest cheaper one with an affordable deployment.
    let mut tier = Some(input.tier);
    while let Some(t) = tier {
        if let Some(d) = affordable.cheapest_healthy(t, None) {
            let why = if t == input.tier {
                format!("{} tier", t.as_str())
            } else {
                format!("{} tier, degraded to {}", input.tier.as_str(), t.as_str())
            };
            return Some((d, why));
        }
        tier = t.cheaper();
    }
    // Nothing at the tier or below: the cheapest affordable one above it.
    affordable.cheapest().map(|d| {
        (
            d,
            format!(
                "no {} tier or cheaper; cheapest affordable",
                input.tier.as_str()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, tier: Tier, region: &str, input: u64, output: u64) -> Deployment {
        Deployment {
            name: name.to_owned(),
            tier,
            region: region.to_owned(),
            input_micro_usd_per_mtok: input,
            output_micro_usd_per_mtok: output,
            health: Health::Healthy,
            recent_latency_ms: None,
        }
    }

    /// The same catalog as catalog.json.
    fn catalog() -> Vec<Deployment> {
        vec![
            dep("eu-small", Tier::Simple, "eu", 100_000, 400_000),
            dep("eu-code", Tier::Standard, "eu", 500_000, 1_500_000),
            dep("eu-large", Tier::Complex, "eu", 5_000_000, 15_000_000),
            dep("us-large", Tier::Complex, "us", 2_500_000, 10_000_000),
        ]
    }

    fn input(text: &str, tier: Tier, meta: &[(&str, &str)]) -> RoutingInput {
        RoutingInput {
            req: Request {
                request_id: "req-1".to_owned(),
                tenant_id: "tenant-1".to_owned(),
                key_id: "key-1".to_owned(),
                key_role: Role::Member,
                endpoint: Endpoint::Chat,
                model: "auto".to_owned(),
                messages: vec![Message {
                    role: "user".to_owned(),
                    text: text.to_owned(),
                }],
                max_tokens: Some(500),
                temperature: None,
                stream: false,
                has_tools: false,
                metadata: meta.iter().map(|(k, v)| Label::new(*k, *v)).collect(),
                prompt_tokens: 1_000,
                labels: Vec::new(),
            },
            tier,
            candidates: catalog(),
            budget: Budget {
                remaining_micro_usd: None,
            },
        }
    }

    fn routed(input: &RoutingInput) -> Vec<String> {
        match decide(input).0 {
            RouteDecision::Route(names) => names,
            RouteDecision::Reject(why) => panic!("rejected: {why}"),
        }
    }

    const CODE: &str = "Why does this fail?\n```rust\nfn main() { let v: Vec<u8> = None; }\n```";

    #[test]
    fn code_goes_to_the_code_model() {
        assert_eq!(
            routed(&input(CODE, Tier::Complex, &[])),
            ["eu-code", "eu-small", "eu-large"]
        );
    }

    #[test]
    fn premium_goes_to_the_best_complex_model_in_region() {
        let names = routed(&input(
            "Summarise this.",
            Tier::Simple,
            &[("tier", "premium")],
        ));
        assert_eq!(names, ["eu-large", "eu-small", "eu-code"]);
        // Code wins over premium.
        assert_eq!(
            routed(&input(CODE, Tier::Simple, &[("tier", "premium")]))[0],
            "eu-code"
        );
        // Another value is not premium.
        assert_eq!(
            routed(&input("Hi", Tier::Simple, &[("tier", "gold")]))[0],
            "eu-small"
        );
    }

    #[test]
    fn otherwise_the_cheapest_of_the_classifier_tier() {
        assert_eq!(routed(&input("Hi", Tier::Simple, &[]))[0], "eu-small");
        assert_eq!(routed(&input("Hi", Tier::Standard, &[]))[0], "eu-code");
        assert_eq!(routed(&input("Hi", Tier::Complex, &[]))[0], "eu-large");
    }

    #[test]
    fn never_leaves_the_region() {
        for tier in [Tier::Simple, Tier::Standard, Tier::Complex] {
            assert!(!routed(&input("Hi", tier, &[])).contains(&"us-large".to_owned()));
        }
    }

    #[test]
    fn degrades_a_tier_when_the_budget_cannot_pay() {
        let mut inp = input("Hi", Tier::Complex, &[("tier", "premium")]);
        // eu-large's worst case is 1,000 × 5 + 500 × 15 = 12,500 micro-USD; eu-code's 1,250.
        inp.budget.remaining_micro_usd = Some(2_000);
        let (decision, why) = decide(&inp);
        assert_eq!(
            decision,
            RouteDecision::Route(vec!["eu-code".into(), "eu-small".into(), "eu-large".into()])
        );
        assert!(why.contains("degraded to standard"), "{why}");
        // Nothing affordable: the cheapest, and the gateway's budget check decides.
        inp.budget.remaining_micro_usd = Some(1);
        assert_eq!(routed(&inp)[0], "eu-small");
    }

    #[test]
    fn skips_down_deployments() {
        let mut inp = input(CODE, Tier::Simple, &[]);
        inp.candidates[1].health = Health::Down;
        assert_eq!(routed(&inp), ["eu-small", "eu-large"]);
    }

    #[test]
    fn rejects_without_a_deployment_in_region() {
        let mut inp = input("Hi", Tier::Simple, &[]);
        inp.candidates.retain(|d| d.region != "eu");
        let (decision, why) = decide(&inp);
        assert_eq!(
            decision,
            RouteDecision::Reject("no healthy deployment in region eu".to_owned())
        );
        assert_eq!(why, "no healthy deployment in region eu");
    }

    #[test]
    fn the_slot_logs_and_routes() {
        let decision = route(input("Hi", Tier::Simple, &[])).unwrap();
        assert!(matches!(decision, RouteDecision::Route(names) if names[0] == "eu-small"));
    }
}
