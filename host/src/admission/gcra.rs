//! The generic cell rate algorithm (virtual scheduling form): `amount` units per `period`, with a burst of
//! `amount`. The state is one number, the theoretical arrival time (TAT) of the next unit, in nanoseconds.
//! A request of `n` units fits when `max(TAT, now) + n·T - now <= period`, where `T = period / amount`.

/// A rate: `amount` units per `period_ns`.
///
/// TATs are kept in scaled time (nanoseconds × `amount`), where one unit occupies exactly `period_ns`: no
/// rounding, so a burst of `amount` always fits and the sustained rate is exact for any amount and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub amount: u64,
    pub period_ns: u64,
}

impl Rate {
    pub fn new(amount: u64, period_ns: u64) -> Rate {
        Rate {
            amount: amount.max(1),
            period_ns: period_ns.max(1),
        }
    }

    fn scaled(&self, ns: u64) -> u128 {
        u128::from(ns) * u128::from(self.amount)
    }

    fn span(&self, units: u64) -> u128 {
        u128::from(units) * u128::from(self.period_ns)
    }

    /// Scaled time back to nanoseconds, rounded up.
    fn ns(&self, scaled: u128) -> u64 {
        u64::try_from(scaled.div_ceil(u128::from(self.amount))).unwrap_or(u64::MAX)
    }

    /// The new TAT if `units` fit now, else how long (ns) until they would.
    pub fn check(&self, tat: u128, now: u64, units: u64) -> Result<u128, u64> {
        let now = self.scaled(now);
        let new = tat.max(now) + self.span(units);
        let ahead = new - now;
        let window = self.span(self.amount);
        if ahead <= window {
            Ok(new)
        } else {
            Err(self.ns(ahead - window))
        }
    }

    /// Adds `units` unconditionally (usage beyond what was reserved): the bucket may go into debt.
    pub fn charge(&self, tat: u128, now: u64, units: u64) -> u128 {
        tat.max(self.scaled(now)) + self.span(units)
    }

    /// Gives back `units` that were reserved and not used.
    pub fn refund(&self, tat: u128, units: u64) -> u128 {
        tat.saturating_sub(self.span(units))
    }

    /// Units available now, and the time (ns) until the bucket is full again.
    pub fn remaining(&self, tat: u128, now: u64) -> (u64, u64) {
        let backlog = tat.saturating_sub(self.scaled(now));
        let window = self.span(self.amount);
        let free = window.saturating_sub(backlog) / u128::from(self.period_ns);
        (u64::try_from(free).unwrap_or(u64::MAX), self.ns(backlog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Admits one unit at a time at `now`, as long as they fit; returns how many did.
    fn burst(rate: &Rate, tat: &mut u128, now: u64) -> u64 {
        let mut n = 0;
        while let Ok(t) = rate.check(*tat, now, 1) {
            *tat = t;
            n += 1;
        }
        n
    }

    #[test]
    fn burst_then_exact_sustained_rate() {
        let rate = Rate::new(60, 60 * SEC); // 60 per minute: one per second, burst 60
        let mut tat = 0;
        let start = 1_000 * SEC;
        assert_eq!(burst(&rate, &mut tat, start), 60);
        // The 61st waits exactly one emission interval.
        assert_eq!(rate.check(tat, start, 1), Err(SEC));
        assert_eq!(burst(&rate, &mut tat, start + SEC - 1), 0);
        assert_eq!(burst(&rate, &mut tat, start + SEC), 1);
        // Over the next 10 minutes, exactly one per second.
        let mut admitted = 0;
        for ms in (1_001..=601_000).step_by(1) {
            admitted += burst(&rate, &mut tat, start + ms * 1_000_000);
        }
        assert_eq!(admitted, 600);
    }

    #[test]
    fn rates_that_do_not_divide_the_period_are_exact_too() {
        let rate = Rate::new(3, SEC); // one every 333.33... ms
        let mut tat = 0;
        let start = 7 * SEC;
        assert_eq!(burst(&rate, &mut tat, start), 3);
        let mut admitted = 0;
        for ms in 1..=60_000 {
            admitted += burst(&rate, &mut tat, start + ms * 1_000_000);
        }
        assert_eq!(admitted, 180, "exactly 3 per second for a minute");
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let rate = Rate::new(10, SEC);
        let mut tat = 0;
        assert_eq!(burst(&rate, &mut tat, 5 * SEC), 10);
        assert_eq!(
            burst(&rate, &mut tat, 500 * SEC),
            10,
            "a long pause earns no more than the burst"
        );
    }

    #[test]
    fn weighted_units_debt_and_refunds() {
        let rate = Rate::new(1_000, 60 * SEC); // 1,000 tokens per minute
        let now = 10 * SEC;
        let tat = rate.check(0, now, 800).unwrap();
        assert_eq!(rate.remaining(tat, now).0, 200);
        assert!(rate.check(tat, now, 201).is_err());
        // 500 of the 800 were not used.
        let tat = rate.refund(tat, 500);
        assert_eq!(rate.remaining(tat, now).0, 700);
        // Usage beyond the reservation puts the bucket into debt: nothing fits until it is paid off.
        let tat = rate.charge(tat, now, 1_300);
        assert_eq!(rate.remaining(tat, now).0, 0);
        let wait = rate.check(tat, now, 1).unwrap_err();
        assert_eq!(
            wait,
            36 * SEC + 60_000_000,
            "600 tokens of debt plus one take 36.06 s to drain"
        );
        // A request larger than the whole bucket never fits.
        assert!(rate.check(0, now, 1_001).is_err());
    }
}
