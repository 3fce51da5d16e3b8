//! Admission and spend: rate limits, concurrency caps and budgets are checked here before forwarding, and
//! actual usage is priced here afterwards.
//!
//! No tenant has limits or budgets in this build, so `admit` lets every authenticated request through;
//! `cost_micro_usd` already prices every answer from the upstream's usage.

use crate::auth::Principal;
use crate::config::Price;
use crate::error::ApiError;
use crate::providers::Usage;

/// Built-in admission: no limits or budgets are configured, so every request is admitted.
pub fn admit(_principal: &Principal) -> Result<(), ApiError> {
    Ok(())
}

/// Exact cost of a usage at a deployment's prices, in micro-USD, rounded up so the gateway never
/// under-charges by rounding.
pub fn cost_micro_usd(usage: Usage, price: Price) -> u64 {
    let micro_tokens = u128::from(usage.prompt_tokens) * u128::from(price.input_micro_usd_per_mtok)
        + u128::from(usage.completion_tokens) * u128::from(price.output_micro_usd_per_mtok);
    u64::try_from(micro_tokens.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_and_rounds_up() {
        let price = Price {
            input_micro_usd_per_mtok: 100_000,  // $0.10 / Mtok
            output_micro_usd_per_mtok: 400_000, // $0.40 / Mtok
        };
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 10,
        };
        assert_eq!(cost_micro_usd(usage, price), 100_000 + 4);
        let one = Usage {
            prompt_tokens: 1,
            completion_tokens: 0,
        };
        assert_eq!(
            cost_micro_usd(one, price),
            1,
            "a fraction of a micro-dollar rounds up"
        );
        assert_eq!(cost_micro_usd(Usage::default(), price), 0);
    }
}
