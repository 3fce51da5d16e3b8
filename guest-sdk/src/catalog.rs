//! Catalog queries and costs: which candidate deployments are healthy, in a region, of a tier, affordable,
//! cheapest or best, and what a request may cost on one.

use crate::{Budget, Deployment, Health, RoutingInput, Tier};

/// Output tokens assumed when the client set no `max_tokens`, to price a request's worst case (the built-in
/// router's assumption too).
pub const ASSUMED_OUTPUT_TOKENS: u64 = 1_024;

impl Tier {
    /// 0 for simple, 1 for standard, 2 for complex: tiers compare by this.
    pub fn rank(self) -> u8 {
        match self {
            Tier::Simple => 0,
            Tier::Standard => 1,
            Tier::Complex => 2,
        }
    }

    /// The next cheaper tier, none below simple.
    pub fn cheaper(self) -> Option<Tier> {
        match self {
            Tier::Complex => Some(Tier::Standard),
            Tier::Standard => Some(Tier::Simple),
            Tier::Simple => None,
        }
    }

    /// The tier's name as in the configuration and the `x-sluice-tier` header: `simple`, `standard` or
    /// `complex`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Simple => "simple",
            Tier::Standard => "standard",
            Tier::Complex => "complex",
        }
    }
}

impl Deployment {
    /// Input plus output price, micro-USD per million tokens: the key by which "cheapest" and "best" order
    /// deployments (a higher price standing in for a more capable model).
    pub fn unit_price(&self) -> u64 {
        self.input_micro_usd_per_mtok
            .saturating_add(self.output_micro_usd_per_mtok)
    }

    /// Whether the deployment takes requests: healthy or degraded, not down (what the built-in router
    /// routes to).
    pub fn is_up(&self) -> bool {
        self.health != Health::Down
    }

    /// The worst-case cost in micro-USD of `prompt_tokens` in and `output_tokens` out, rounded up:
    /// `prompt × input price + output × output price`, prices per million tokens. Integer math, saturating
    /// at `u64::MAX`.
    pub fn worst_case_cost(&self, prompt_tokens: u64, output_tokens: u64) -> u64 {
        let micro = (u128::from(prompt_tokens) * u128::from(self.input_micro_usd_per_mtok))
            .saturating_add(u128::from(output_tokens) * u128::from(self.output_micro_usd_per_mtok));
        micro.div_ceil(1_000_000).try_into().unwrap_or(u64::MAX)
    }

    /// The latency used to break price ties: the recent latency, unknown counting as the slowest.
    fn latency_key(&self) -> u32 {
        self.recent_latency_ms.unwrap_or(u32::MAX)
    }
}

impl Budget {
    /// Whether the remaining budget covers `cost_micro_usd`; always true without a cap.
    pub fn allows(&self, cost_micro_usd: u64) -> bool {
        self.remaining_micro_usd
            .is_none_or(|left| cost_micro_usd <= left)
    }
}

impl RoutingInput {
    /// The output tokens to price: the client's `max_tokens`, else [`ASSUMED_OUTPUT_TOKENS`].
    pub fn output_tokens(&self) -> u64 {
        self.req.max_tokens.map_or(ASSUMED_OUTPUT_TOKENS, u64::from)
    }

    /// The request's worst-case cost on `d`, micro-USD: the host's prompt-token bound and
    /// [`RoutingInput::output_tokens`].
    pub fn worst_case_cost(&self, d: &Deployment) -> u64 {
        d.worst_case_cost(self.req.prompt_tokens, self.output_tokens())
    }

    /// Whether the remaining budget pays for the request's worst case on `d`.
    pub fn can_afford(&self, d: &Deployment) -> bool {
        self.budget.allows(self.worst_case_cost(d))
    }

    /// The candidates whose worst case the remaining budget pays for, in candidate order.
    pub fn affordable(&self) -> Vec<&Deployment> {
        self.candidates
            .affordable(&self.budget, self.req.prompt_tokens, self.output_tokens())
    }
}

/// Queries over a list of deployments, such as [`RoutingInput::candidates`] (`&[Deployment]`) or the result
/// of an earlier query (`Vec<&Deployment>`), so they chain:
///
/// ```
/// # use sluice_guest::prelude::*;
/// # fn pick(input: &RoutingInput) -> Vec<String> {
/// input.candidates.healthy().in_region("eu").of_tier(Tier::Simple).cheapest_first().names()
/// # }
/// ```
///
/// Filters keep the list's order. "Cheapest" orders by [`Deployment::unit_price`], then by recent latency
/// (unknown last); "best" is the highest unit price, then the lowest latency.
pub trait Catalog<'a>: Sized {
    /// The deployments queried.
    fn deployments(self) -> impl Iterator<Item = &'a Deployment>;

    /// The deployments that take requests: healthy or degraded, not down ([`Deployment::is_up`]).
    fn healthy(self) -> Vec<&'a Deployment> {
        self.deployments().filter(|d| d.is_up()).collect()
    }

    /// The deployments in `region`.
    fn in_region(self, region: &str) -> Vec<&'a Deployment> {
        self.deployments().filter(|d| d.region == region).collect()
    }

    /// The deployments of `tier`.
    fn of_tier(self, tier: Tier) -> Vec<&'a Deployment> {
        self.deployments().filter(|d| d.tier == tier).collect()
    }

    /// The deployments whose worst case (`prompt_tokens` in, `output_tokens` out) `budget` pays for.
    fn affordable(
        self,
        budget: &Budget,
        prompt_tokens: u64,
        output_tokens: u64,
    ) -> Vec<&'a Deployment> {
        self.deployments()
            .filter(|d| budget.allows(d.worst_case_cost(prompt_tokens, output_tokens)))
            .collect()
    }

    /// The cheapest deployment; the first of equals.
    fn cheapest(self) -> Option<&'a Deployment> {
        self.deployments()
            .min_by_key(|d| (d.unit_price(), d.latency_key()))
    }

    /// The best deployment: the highest-priced, then the fastest; the last of equals.
    fn best(self) -> Option<&'a Deployment> {
        self.deployments()
            .max_by_key(|d| (d.unit_price(), std::cmp::Reverse(d.latency_key())))
    }

    /// The cheapest healthy deployment of `tier`, in `region` if one is given.
    fn cheapest_healthy(self, tier: Tier, region: Option<&str>) -> Option<&'a Deployment> {
        let pool: Vec<&'a Deployment> = self
            .deployments()
            .filter(|d| d.is_up() && d.tier == tier && region.is_none_or(|r| d.region == r))
            .collect();
        pool.cheapest()
    }

    /// The best healthy deployment of `tier` (highest-priced, then fastest), in `region` if one is given.
    fn best_healthy(self, tier: Tier, region: Option<&str>) -> Option<&'a Deployment> {
        let pool: Vec<&'a Deployment> = self
            .deployments()
            .filter(|d| d.is_up() && d.tier == tier && region.is_none_or(|r| d.region == r))
            .collect();
        pool.best()
    }

    /// The deployments ordered cheapest first (stable: equals keep their order).
    fn cheapest_first(self) -> Vec<&'a Deployment> {
        let mut all: Vec<&'a Deployment> = self.deployments().collect();
        all.sort_by_key(|d| (d.unit_price(), d.latency_key()));
        all
    }

    /// The deployments' names, in order: what [`RouteDecision::Route`](crate::RouteDecision::Route) takes.
    fn names(self) -> Vec<String> {
        self.deployments().map(|d| d.name.clone()).collect()
    }
}

impl<'a> Catalog<'a> for &'a [Deployment] {
    fn deployments(self) -> impl Iterator<Item = &'a Deployment> {
        self.iter()
    }
}

impl<'a> Catalog<'a> for &'a Vec<Deployment> {
    fn deployments(self) -> impl Iterator<Item = &'a Deployment> {
        self.iter()
    }
}

impl<'a> Catalog<'a> for &[&'a Deployment] {
    fn deployments(self) -> impl Iterator<Item = &'a Deployment> {
        self.iter().copied()
    }
}

impl<'a> Catalog<'a> for &Vec<&'a Deployment> {
    fn deployments(self) -> impl Iterator<Item = &'a Deployment> {
        self.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Message, Request, Role};

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

    fn catalog() -> Vec<Deployment> {
        let mut down = dep("eu-down", Tier::Simple, "eu", 1, 1);
        down.health = Health::Down;
        let mut degraded = dep("eu-mid", Tier::Standard, "eu", 500_000, 1_500_000);
        degraded.health = Health::Degraded;
        let mut fast = dep("eu-large-fast", Tier::Complex, "eu", 5_000_000, 15_000_000);
        fast.recent_latency_ms = Some(100);
        let mut slow = dep("eu-large-slow", Tier::Complex, "eu", 5_000_000, 15_000_000);
        slow.recent_latency_ms = Some(900);
        vec![
            down,
            dep("eu-small", Tier::Simple, "eu", 100_000, 400_000),
            dep("us-small", Tier::Simple, "us", 50_000, 200_000),
            degraded,
            slow,
            fast,
            dep("us-large", Tier::Complex, "us", 2_500_000, 10_000_000),
        ]
    }

    fn input(candidates: Vec<Deployment>, remaining: Option<u64>) -> RoutingInput {
        RoutingInput {
            req: Request {
                request_id: "r".to_owned(),
                tenant_id: "t".to_owned(),
                key_id: "k".to_owned(),
                key_role: Role::Member,
                endpoint: Endpoint::Chat,
                model: "auto".to_owned(),
                messages: vec![Message {
                    role: "user".to_owned(),
                    text: "hi".to_owned(),
                }],
                max_tokens: None,
                temperature: None,
                stream: false,
                has_tools: false,
                metadata: Vec::new(),
                prompt_tokens: 1_000,
                labels: Vec::new(),
            },
            tier: Tier::Simple,
            candidates,
            budget: Budget {
                remaining_micro_usd: remaining,
            },
        }
    }

    #[test]
    fn tiers_rank_and_step_down() {
        assert!(Tier::Simple.rank() < Tier::Standard.rank());
        assert!(Tier::Standard.rank() < Tier::Complex.rank());
        assert_eq!(Tier::Complex.cheaper(), Some(Tier::Standard));
        assert_eq!(Tier::Standard.cheaper(), Some(Tier::Simple));
        assert_eq!(Tier::Simple.cheaper(), None);
        assert_eq!(Tier::Standard.as_str(), "standard");
    }

    #[test]
    fn worst_case_cost_rounds_up_and_saturates() {
        let d = dep("d", Tier::Simple, "eu", 100_000, 400_000);
        // 1,000 × 0.1 + 1,024 × 0.4 = 509.6 micro-USD.
        assert_eq!(d.worst_case_cost(1_000, 1_024), 510);
        assert_eq!(d.worst_case_cost(10, 0), 1);
        assert_eq!(d.worst_case_cost(0, 0), 0);
        let exact = dep("d", Tier::Simple, "eu", 1_000_000, 0);
        assert_eq!(exact.worst_case_cost(3, 0), 3);
        let huge = dep("d", Tier::Simple, "eu", u64::MAX, u64::MAX);
        assert_eq!(huge.worst_case_cost(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(huge.unit_price(), u64::MAX);
    }

    #[test]
    fn filters_keep_order_and_chain() {
        let all = catalog();
        assert_eq!(
            all.healthy().names(),
            [
                "eu-small",
                "us-small",
                "eu-mid",
                "eu-large-slow",
                "eu-large-fast",
                "us-large"
            ]
        );
        assert_eq!(all.in_region("us").names(), ["us-small", "us-large"]);
        assert_eq!(
            all.healthy().in_region("eu").of_tier(Tier::Simple).names(),
            ["eu-small"]
        );
        assert!(all.in_region("ap").is_empty());
    }

    fn pick(d: Option<&Deployment>) -> Option<&str> {
        d.map(|d| d.name.as_str())
    }

    #[test]
    fn cheapest_and_best() {
        let all = catalog();
        assert_eq!(pick(all.cheapest()), Some("eu-down"));
        assert_eq!(
            pick(all.cheapest_healthy(Tier::Simple, None)),
            Some("us-small")
        );
        assert_eq!(
            pick(all.cheapest_healthy(Tier::Simple, Some("eu"))),
            Some("eu-small")
        );
        assert_eq!(pick(all.cheapest_healthy(Tier::Standard, Some("us"))), None);
        // Degraded still counts as up.
        assert_eq!(
            pick(all.cheapest_healthy(Tier::Standard, Some("eu"))),
            Some("eu-mid")
        );
        // Highest price wins, then the lower latency.
        assert_eq!(
            pick(all.best_healthy(Tier::Complex, None)),
            Some("eu-large-fast")
        );
        assert_eq!(
            pick(all.best_healthy(Tier::Complex, Some("us"))),
            Some("us-large")
        );
        assert_eq!(
            all.healthy().cheapest_first().names(),
            [
                "us-small",
                "eu-small",
                "eu-mid",
                "us-large",
                "eu-large-fast",
                "eu-large-slow"
            ]
        );
        let none: Vec<Deployment> = Vec::new();
        assert!(none.cheapest().is_none() && none.best().is_none());
    }

    #[test]
    fn budget_and_affordability() {
        assert!(
            Budget {
                remaining_micro_usd: None
            }
            .allows(u64::MAX)
        );
        assert!(
            Budget {
                remaining_micro_usd: Some(5)
            }
            .allows(5)
        );
        assert!(
            !Budget {
                remaining_micro_usd: Some(5)
            }
            .allows(6)
        );

        // 1,000 prompt tokens and 1,024 assumed output tokens.
        let mut inp = input(catalog(), Some(600));
        assert_eq!(inp.output_tokens(), ASSUMED_OUTPUT_TOKENS);
        let small = &inp.candidates[1];
        assert_eq!(inp.worst_case_cost(small), 510);
        assert!(inp.can_afford(small));
        assert_eq!(
            inp.affordable().names(),
            ["eu-down", "eu-small", "us-small"]
        );
        inp.req.max_tokens = Some(10);
        assert_eq!(inp.output_tokens(), 10);
        assert_eq!(
            inp.candidates.affordable(&inp.budget, 1_000, 10).names(),
            ["eu-down", "eu-small", "us-small", "eu-mid"]
        );
        let free = input(catalog(), None);
        assert_eq!(free.affordable().len(), free.candidates.len());
    }
}
