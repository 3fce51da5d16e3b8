//! Per-tenant CPU budgets of policy calls: each tenant's uploaded policies may use `policies.cpu_ms_per_second`
//! of CPU time per second, a token bucket holding at most one second's worth. A call is admitted only while
//! its tenant's bucket is not empty, and is charged the CPU time it used (the thread's CPU clock, which sees
//! work fuel does not). A tenant whose legal but heavy policy burns CPU is held to its share instead of
//! taking the gateway from every other tenant; over budget, its `auth` slot answers 429 and its `classify`
//! and `route` slots fall back to the built-ins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One tenant's bucket: nanoseconds of CPU it may still use (negative: a debt from its last call), as of `at`,
/// and all it has used.
#[derive(Debug)]
struct Bucket {
    tokens_ns: i128,
    at: Instant,
    used: Duration,
}

/// The budgets of every tenant that ran a policy.
#[derive(Debug)]
pub struct CpuBudgets {
    /// CPU nanoseconds a tenant may use per second (and the bucket's capacity), unless it has its own.
    rate_ns: i128,
    /// Tenants' own rates, set by the operator.
    own: std::sync::RwLock<HashMap<String, i128>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn ns_of(ms_per_second: u64) -> i128 {
    i128::from(ms_per_second.max(1)) * 1_000_000
}

impl CpuBudgets {
    pub fn new(ms_per_second: u64) -> CpuBudgets {
        CpuBudgets {
            rate_ns: ns_of(ms_per_second),
            own: std::sync::RwLock::default(),
            buckets: Mutex::default(),
        }
    }

    /// Gives a tenant its own rate (`None`: back to the default).
    pub fn set_own(&self, tenant: &str, ms_per_second: Option<u64>) {
        let mut own = self
            .own
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ms_per_second {
            Some(ms) => own.insert(tenant.to_owned(), ns_of(ms)),
            None => own.remove(tenant),
        };
    }

    fn rate_ns(&self, tenant: &str) -> i128 {
        self.own
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .copied()
            .unwrap_or(self.rate_ns)
    }

    /// The CPU time per second `tenant` may use.
    pub fn rate(&self, tenant: &str) -> Duration {
        Duration::from_nanos(u64::try_from(self.rate_ns(tenant)).unwrap_or(u64::MAX))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refills a bucket to now, at `rate` nanoseconds per second.
    fn refill(bucket: &mut Bucket, now: Instant, rate: i128) {
        let elapsed = i128::try_from(now.duration_since(bucket.at).as_nanos()).unwrap_or(i128::MAX);
        let earned = elapsed.saturating_mul(rate) / 1_000_000_000;
        bucket.tokens_ns = bucket.tokens_ns.saturating_add(earned).min(rate);
        bucket.at = now;
    }

    /// Whether a call of `tenant` may start now; `Err` is how long until its bucket is not empty.
    pub fn admit(&self, tenant: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.rate_ns(tenant);
        let mut buckets = self.lock();
        let Some(bucket) = buckets.get_mut(tenant) else {
            return Ok(());
        };
        Self::refill(bucket, now, rate);
        if bucket.tokens_ns > 0 {
            return Ok(());
        }
        let wait_ns = (1 - bucket.tokens_ns).saturating_mul(1_000_000_000) / rate;
        Err(Duration::from_nanos(
            u64::try_from(wait_ns).unwrap_or(u64::MAX),
        ))
    }

    /// Charges a call's CPU time to its tenant.
    pub fn charge(&self, tenant: &str, cpu: Duration) {
        let now = Instant::now();
        let rate = self.rate_ns(tenant);
        let mut buckets = self.lock();
        // Looked up first: a known tenant's charge, once per policy call, allocates nothing.
        if !buckets.contains_key(tenant) {
            buckets.insert(
                tenant.to_owned(),
                Bucket {
                    tokens_ns: rate,
                    at: now,
                    used: Duration::ZERO,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(tenant) else {
            return;
        };
        Self::refill(bucket, now, rate);
        let cost = i128::try_from(cpu.as_nanos()).unwrap_or(i128::MAX);
        bucket.tokens_ns = bucket.tokens_ns.saturating_sub(cost);
        bucket.used = bucket.used.saturating_add(cpu);
    }

    /// All the CPU time `tenant`'s policies have used.
    pub fn used(&self, tenant: &str) -> Duration {
        self.lock().get(tenant).map_or(Duration::ZERO, |b| b.used)
    }

    /// Every tenant's total, for `/metrics`.
    pub fn all_used(&self) -> Vec<(String, Duration)> {
        self.lock()
            .iter()
            .map(|(t, b)| (t.clone(), b.used))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_budget_waits_and_others_do_not() {
        let budgets = CpuBudgets::new(10); // 10 ms per second
        assert!(budgets.admit("a").is_ok());
        budgets.charge("a", Duration::from_millis(25));
        let wait = budgets.admit("a").unwrap_err();
        assert!(
            wait > Duration::from_millis(1400) && wait <= Duration::from_millis(1500),
            "{wait:?}"
        );
        assert!(budgets.admit("b").is_ok(), "b has its own bucket");
        budgets.charge("b", Duration::from_millis(2));
        assert!(budgets.admit("b").is_ok());
        assert_eq!(budgets.used("a"), Duration::from_millis(25));
        assert_eq!(budgets.all_used().len(), 2);
        // A tenant of its own rate: 1 s per second refills a's debt at once.
        budgets.set_own("a", Some(1_000));
        assert_eq!(budgets.rate("a"), Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(30));
        assert!(budgets.admit("a").is_ok());
        budgets.set_own("a", None);
        assert_eq!(budgets.rate("a"), Duration::from_millis(10));
    }
}
