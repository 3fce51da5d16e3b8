//! Admission and spend: rate limits (GCRA), token caps, concurrency limits and budgets, all
//! served from memory on the hot path.
//!
//! A request is admitted in two steps, both under its tenant's one mutex so every check-and-add is atomic:
//! - `Admission::admit` (the pipeline's `admit` phase): request rates, token rates and in-flight counts of the tenant,
//!   the tenant × endpoint and the key. Everything is checked before anything is taken, so a rejection
//!   leaves no trace. The result is a `Ticket`.
//! - `Ticket::reserve_budget` (once the route, and so the prices, are known): the worst-case cost (prompt
//!   upper bound + max output tokens at the route's highest prices) against the tenant's and the key's
//!   daily and monthly caps, clamping the output tokens to what is left.
//!
//! `Ticket::settle` replaces the reservations with the actual cost and tokens, and releases the in-flight
//! slots. A ticket dropped without being settled (the handler panicked) is settled at its full reservation:
//! an outcome nobody knows is charged at the worst case, never at zero.
//!
//! Settled spend is made durable by the audit log (each entry carries its cost, and the sequencer keeps
//! daily totals in the same transaction); `Admission::record_spend` rebuilds the ledgers from those totals at
//! start. Reservations under a cap are made durable by budget covers (`cover.rs`) before forwarding.

pub mod clock;
pub mod cover;
pub mod gcra;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};
use gcra::Rate;
use window::{NS_PER_DAY, NS_PER_SEC, day_of, month_of};

use crate::config::Price;
use crate::providers::Usage;

/// Exact cost of a usage at a deployment's prices, in micro-USD, rounded up so the gateway never
/// under-charges by rounding.
pub fn cost_micro_usd(usage: Usage, price: Price) -> u64 {
    let micro_tokens = u128::from(usage.prompt_tokens) * u128::from(price.input_micro_usd_per_mtok)
        + u128::from(usage.completion_tokens) * u128::from(price.output_micro_usd_per_mtok);
    u64::try_from(micro_tokens.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The endpoints that are admitted, and may carry limits of their own.
pub const ENDPOINTS: [&str; 2] = crate::audit::entry::INFERENCE_ENDPOINTS;

/// Rate, token and concurrency limits of one scope (a tenant, a key, or a tenant's endpoint). `None` means
/// no limit. Request rates allow a burst of their own size (600 per minute: 600 at once, then one every
/// 100 ms); token rates work the same way on tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

/// What a rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Tokens,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
        }
    }
}

/// The four rates of a `LimitSet`, in a fixed order (indices into `Scope::tats`).
const RATES: usize = 4;

impl LimitSet {
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    fn rate(&self, i: usize) -> Option<(Rate, Unit, &'static str)> {
        let sec = NS_PER_SEC;
        match i {
            0 => self
                .requests_per_second
                .map(|n| (Rate::new(n.into(), sec), Unit::Requests, "second")),
            1 => self
                .requests_per_minute
                .map(|n| (Rate::new(n.into(), 60 * sec), Unit::Requests, "minute")),
            2 => self
                .tokens_per_minute
                .map(|n| (Rate::new(n, 60 * sec), Unit::Tokens, "minute")),
            3 => self
                .tokens_per_day
                .map(|n| (Rate::new(n, NS_PER_DAY), Unit::Tokens, "day")),
            _ => None,
        }
    }

    /// Checks that every limit that is set is at least 1 (`None` removes a limit; 0 would block forever).
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidLimit> {
        let fields = [
            (
                "requests_per_second",
                self.requests_per_second.map(u64::from),
            ),
            (
                "requests_per_minute",
                self.requests_per_minute.map(u64::from),
            ),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_per_day", self.tokens_per_day),
            ("max_concurrent", self.max_concurrent.map(u64::from)),
        ];
        for (name, value) in fields {
            if value == Some(0) {
                return Err(InvalidLimit {
                    field: format!("{prefix}{name}"),
                });
            }
        }
        Ok(())
    }
}

/// Spend caps of a tenant or a key, in micro-USD per UTC day and per UTC calendar month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetSet {
    pub daily_micro_usd: Option<u64>,
    pub monthly_micro_usd: Option<u64>,
}

/// Where a limit or budget applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Key(String),
    Endpoint(String),
}

impl Scope {
    /// The storage form: `tenant`, `key:<id>`, `endpoint:<name>`.
    pub fn encode(&self) -> String {
        match self {
            Scope::Tenant => "tenant".to_owned(),
            Scope::Key(k) => format!("key:{k}"),
            Scope::Endpoint(e) => format!("endpoint:{e}"),
        }
    }

    pub fn decode(s: &str) -> Option<Scope> {
        if s == "tenant" {
            return Some(Scope::Tenant);
        }
        if let Some(k) = s.strip_prefix("key:") {
            return Some(Scope::Key(k.to_owned()));
        }
        s.strip_prefix("endpoint:")
            .map(|e| Scope::Endpoint(e.to_owned()))
    }
}

/// Limit state of one scope.
#[derive(Debug, Default)]
struct Limiter {
    limits: LimitSet,
    /// Theoretical arrival times of the four rates.
    tats: [u128; RATES],
    in_flight: u32,
}

/// Spend of a tenant or a key in the current windows.
#[derive(Debug, Default)]
struct Ledger {
    budget: BudgetSet,
    day: u64,
    month: u64,
    spent_day: u64,
    spent_month: u64,
    /// Worst-case cost of requests in flight; it counts against whichever window is current.
    reserved: u64,
}

impl Ledger {
    /// Starts new windows when the UTC day or month changed. Reservations carry over: they will settle in
    /// the new window.
    fn roll(&mut self, day: u64) {
        if self.day != day {
            self.day = day;
            self.spent_day = 0;
        }
        let month = month_of(day);
        if self.month != month {
            self.month = month;
            self.spent_month = 0;
        }
    }

    /// What the tightest cap leaves, with the window it belongs to; `None` without caps.
    fn remaining(&self) -> Option<(u64, &'static str)> {
        let day = self.budget.daily_micro_usd.map(|cap| {
            (
                cap.saturating_sub(self.spent_day.saturating_add(self.reserved)),
                "daily",
            )
        });
        let month = self.budget.monthly_micro_usd.map(|cap| {
            (
                cap.saturating_sub(self.spent_month.saturating_add(self.reserved)),
                "monthly",
            )
        });
        match (day, month) {
            (Some(d), Some(m)) => Some(if m.0 < d.0 { m } else { d }),
            (d, m) => d.or(m),
        }
    }
}

#[derive(Debug, Default)]
struct KeyState {
    limiter: Limiter,
    ledger: Ledger,
    /// Budget covers per endpoint, in `ENDPOINTS` order.
    covers: [cover::Cover; 2],
}

#[derive(Debug, Default)]
struct TenantState {
    limiter: Limiter,
    ledger: Ledger,
    endpoints: HashMap<String, Limiter>,
    keys: HashMap<String, KeyState>,
}

/// Which scopes a ticket holds in-flight slots and token reservations in: tenant, endpoint, key.
const SCOPES: usize = 3;
const SCOPE_NAMES: [&str; SCOPES] = ["tenant", "endpoint", "key"];

impl TenantState {
    fn limiters(&mut self, endpoint: &str, key: &str) -> [Option<&mut Limiter>; SCOPES] {
        [
            Some(&mut self.limiter),
            self.endpoints.get_mut(endpoint),
            self.keys.get_mut(key).map(|k| &mut k.limiter),
        ]
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A request or token rate is used up for now.
    Rate {
        scope: &'static str,
        unit: Unit,
        limit: u64,
        per: &'static str,
        retry_after_ns: u64,
        reset_ns: u64,
    },
    /// The request alone needs more tokens than the rate allows at all.
    TooLarge {
        scope: &'static str,
        limit: u64,
        per: &'static str,
        needed: u64,
    },
    /// Too many requests in flight.
    Concurrency { scope: &'static str, limit: u32 },
    /// The request holds content whose cost nothing bounds, and a limit (a token rate or a spend cap)
    /// needs a bound.
    Unbounded {
        scope: &'static str,
        limit: &'static str,
    },
    /// The budget cannot cover the request's worst-case cost.
    Budget {
        scope: &'static str,
        window: &'static str,
        remaining_micro_usd: u64,
        needed_micro_usd: u64,
        resets_at: String,
    },
}

impl Rejection {
    /// The metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Rate {
                unit: Unit::Requests,
                ..
            } => "rate_requests",
            Rejection::Rate {
                unit: Unit::Tokens, ..
            } => "rate_tokens",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Concurrency { .. } => "concurrency",
            Rejection::Budget { .. } => "budget",
            Rejection::Unbounded { .. } => "unbounded",
        }
    }
}

/// What a request asks of the limits.
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    pub key_id: &'a str,
    pub endpoint: &'static str,
    /// Upper bound of the tokens it may use: prompt bound plus the requested output cap of every choice.
    pub tokens: u64,
    /// Some of its content has no bound (`tokens` leaves it out): refused under a token rate limit.
    pub unbounded: bool,
}

/// What a request asks of the budget, once its route is known.
#[derive(Debug, Clone, Copy)]
pub struct BudgetAsk {
    /// Upper bound of the prompt tokens any upstream bills.
    pub prompt_tokens: u64,
    /// The output cap the client asked for, per choice.
    pub requested_output: Option<u32>,
    /// Completions generated (`n`), each of which may use the whole output cap.
    pub choices: u32,
    /// Tokens billed at the output price beyond the choices' (predicted content).
    pub extra_output_tokens: u64,
    /// Some of its content has no bound: refused under a cap.
    pub unbounded: bool,
    /// The output cap when the client set none (the route's smallest `max_output_tokens`).
    pub default_output: u32,
    /// The highest input and output prices among the route's deployments (failover may use any).
    pub price: Price,
    /// Whether the endpoint generates output tokens (chat) or not (embeddings).
    pub generates: bool,
}

/// A budget reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetHold {
    pub micro_usd: u64,
    /// The output cap to send upstream when it must be lowered (or set) so the reservation is a true bound.
    pub max_output: Option<u32>,
    /// Whether a cap applies (only then must a budget cover hold the reservation before forwarding).
    pub capped: bool,
}

#[derive(Debug, Default)]
struct Held {
    settled: bool,
    tokens: u64,
    micro_usd: u64,
    /// Scopes whose in-flight count this ticket holds.
    slots: [bool; SCOPES],
    /// Whether the key's budget cover holds the reservation.
    cover: cover::Standing,
}

/// The in-memory admission state of every tenant.
#[derive(Debug)]
pub struct Admission {
    clock: Arc<dyn Clock>,
    tenants: crate::per_tenant::PerTenant<Mutex<TenantState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One window of one budget, as `GET /v1/budget` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WindowView {
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub window: &'static str,
    pub cap_micro_usd: Option<u64>,
    pub spent_micro_usd: u64,
    pub reserved_micro_usd: u64,
    pub remaining_micro_usd: Option<u64>,
    pub resets_at: String,
}

impl Admission {
    pub fn new(clock: Arc<dyn Clock>) -> Admission {
        Admission {
            clock,
            tenants: crate::per_tenant::PerTenant::default(),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn cell(&self, tenant: &str) -> Arc<Mutex<TenantState>> {
        self.tenants.get_or_default(tenant)
    }

    /// The `admit` phase: request and token rates and in-flight limits of the tenant, the endpoint and the key, checked
    /// together and taken together.
    pub fn admit(&self, tenant: &str, demand: &Demand<'_>) -> Result<Ticket, Rejection> {
        let cell = self.cell(tenant);
        let now = self.clock.now_ns();
        let mut held = Held {
            tokens: demand.tokens,
            ..Held::default()
        };
        let rates_now;
        {
            let mut st = lock(&cell);
            let limiters = st.limiters(demand.endpoint, demand.key_id);
            // Check everything first; only then take anything, so a rejection changes nothing.
            let mut next = [[None::<u128>; RATES]; SCOPES];
            for (s, limiter) in limiters.iter().enumerate() {
                let Some(l) = limiter else { continue };
                for (r, slot) in next[s].iter_mut().enumerate() {
                    let Some((rate, unit, per)) = l.limits.rate(r) else {
                        continue;
                    };
                    let units = match unit {
                        Unit::Requests => 1,
                        Unit::Tokens if demand.unbounded => {
                            return Err(Rejection::Unbounded {
                                scope: SCOPE_NAMES[s],
                                limit: "token rate limit",
                            });
                        }
                        Unit::Tokens => demand.tokens,
                    };
                    if units > rate.amount {
                        return Err(Rejection::TooLarge {
                            scope: SCOPE_NAMES[s],
                            limit: rate.amount,
                            per,
                            needed: units,
                        });
                    }
                    match rate.check(l.tats[r], now, units) {
                        Ok(tat) => *slot = Some(tat),
                        Err(wait) => {
                            return Err(Rejection::Rate {
                                scope: SCOPE_NAMES[s],
                                unit,
                                limit: rate.amount,
                                per,
                                retry_after_ns: wait,
                                reset_ns: rate.remaining(l.tats[r], now).1,
                            });
                        }
                    }
                }
                if let Some(max) = l.limits.max_concurrent
                    && l.in_flight >= max
                {
                    return Err(Rejection::Concurrency {
                        scope: SCOPE_NAMES[s],
                        limit: max,
                    });
                }
            }
            let mut tightest: [Option<(u64, u64, u64)>; 2] = [None, None];
            for (s, limiter) in limiters.into_iter().enumerate() {
                let Some(l) = limiter else { continue };
                for (r, tat) in next[s].iter().enumerate() {
                    if let Some(tat) = tat {
                        l.tats[r] = *tat;
                    }
                    if let Some((rate, unit, _)) = l.limits.rate(r) {
                        let (left, reset) = rate.remaining(l.tats[r], now);
                        let t = &mut tightest[usize::from(unit == Unit::Tokens)];
                        if t.is_none_or(|(_, l, _)| left < l) {
                            *t = Some((rate.amount, left, reset));
                        }
                    }
                }
                l.in_flight += 1;
                held.slots[s] = true;
            }
            rates_now = rates(&tightest);
        }
        Ok(Ticket {
            cell,
            clock: self.clock.clone(),
            tenant_id: tenant.to_owned(),
            key_id: demand.key_id.to_owned(),
            endpoint: demand.endpoint,
            held: Mutex::new(held),
            rates: rates_now,
        })
    }

    /// Replaces the limits of a scope (an empty set removes them).
    pub fn set_limits(&self, tenant: &str, scope: &Scope, limits: LimitSet) {
        let cell = self.cell(tenant);
        let mut st = lock(&cell);
        match scope {
            Scope::Tenant => st.limiter.limits = limits,
            Scope::Endpoint(e) => st.endpoints.entry(e.clone()).or_default().limits = limits,
            Scope::Key(k) => st.keys.entry(k.clone()).or_default().limiter.limits = limits,
        }
    }

    pub fn limits(&self, tenant: &str, scope: &Scope) -> LimitSet {
        let cell = self.cell(tenant);
        let st = lock(&cell);
        match scope {
            Scope::Tenant => st.limiter.limits,
            Scope::Endpoint(e) => st.endpoints.get(e).map(|l| l.limits).unwrap_or_default(),
            Scope::Key(k) => st.keys.get(k).map(|k| k.limiter.limits).unwrap_or_default(),
        }
    }

    /// Replaces the budget of the tenant (`key` None) or of one of its keys.
    pub fn set_budget(&self, tenant: &str, key: Option<&str>, budget: BudgetSet) {
        let cell = self.cell(tenant);
        let mut st = lock(&cell);
        match key {
            None => st.ledger.budget = budget,
            Some(k) => st.keys.entry(k.to_owned()).or_default().ledger.budget = budget,
        }
    }

    /// Adds durable spend of one UTC day (rebuilding the ledgers at start). Days outside the current windows
    /// are ignored.
    pub fn record_spend(&self, tenant: &str, key: &str, day: u64, micro_usd: u64) {
        let today = day_of(self.clock.now_ns());
        let cell = self.cell(tenant);
        let mut st = lock(&cell);
        let st = &mut *st;
        let key_ledger = &mut st.keys.entry(key.to_owned()).or_default().ledger;
        for ledger in [&mut st.ledger, key_ledger] {
            ledger.roll(today);
            if day == today {
                ledger.spent_day = ledger.spent_day.saturating_add(micro_usd);
            }
            if month_of(day) == ledger.month && day <= today {
                ledger.spent_month = ledger.spent_month.saturating_add(micro_usd);
            }
        }
    }

    /// What the tenant's (and the key's) tightest budget leaves now; `None` without caps. The router policy
    /// reads it to degrade to cheaper tiers.
    pub fn remaining_budget(&self, tenant: &str, key: &str) -> Option<u64> {
        let day = day_of(self.clock.now_ns());
        let cell = self.cell(tenant);
        let mut st = lock(&cell);
        st.ledger.roll(day);
        let tenant_left = st.ledger.remaining().map(|r| r.0);
        let key_left = st.keys.get_mut(key).and_then(|k| {
            k.ledger.roll(day);
            k.ledger.remaining().map(|r| r.0)
        });
        match (tenant_left, key_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The tenant's budget windows, and the key's when `key` is given.
    pub fn budget_view(&self, tenant: &str, key: Option<&str>) -> Vec<WindowView> {
        let day = day_of(self.clock.now_ns());
        let cell = self.cell(tenant);
        let mut st = lock(&cell);
        let st = &mut *st;
        let mut out = Vec::with_capacity(4);
        let mut views = |scope, key_id: Option<String>, ledger: &mut Ledger| {
            ledger.roll(day);
            for (window, cap, spent, resets) in [
                (
                    "daily",
                    ledger.budget.daily_micro_usd,
                    ledger.spent_day,
                    day + 1,
                ),
                (
                    "monthly",
                    ledger.budget.monthly_micro_usd,
                    ledger.spent_month,
                    window::next_month_start(day),
                ),
            ] {
                out.push(WindowView {
                    scope,
                    key_id: key_id.clone(),
                    window,
                    cap_micro_usd: cap,
                    spent_micro_usd: spent,
                    reserved_micro_usd: ledger.reserved,
                    remaining_micro_usd: cap
                        .map(|c| c.saturating_sub(spent.saturating_add(ledger.reserved))),
                    resets_at: window::rfc3339(resets),
                });
            }
        };
        views("tenant", None, &mut st.ledger);
        if let Some(k) = key {
            let ledger = &mut st.keys.entry(k.to_owned()).or_default().ledger;
            views("key", Some(k.to_owned()), ledger);
        }
        out
    }

    pub fn budget(&self, tenant: &str, key: Option<&str>) -> BudgetSet {
        let cell = self.cell(tenant);
        let st = lock(&cell);
        match key {
            None => st.ledger.budget,
            Some(k) => st.keys.get(k).map(|k| k.ledger.budget).unwrap_or_default(),
        }
    }
}

fn rates(tightest: &[Option<(u64, u64, u64)>; 2]) -> Vec<RateState> {
    [Unit::Requests, Unit::Tokens]
        .into_iter()
        .zip(tightest)
        .filter_map(|(unit, t)| {
            t.map(|(limit, remaining, reset_ns)| RateState {
                unit,
                limit,
                remaining,
                reset_ns,
            })
        })
        .collect()
}

/// Where a request stands against its tightest limit of one unit, for `x-ratelimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub unit: Unit,
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is whole again.
    pub reset_ns: u64,
}

/// A limit of 0, which would block forever (`null` removes a limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` must be at least 1; use null for no limit")]
pub struct InvalidLimit {
    pub field: String,
}

/// An admitted request's hold on its tenant's limits and budget, until it is settled.
#[derive(Debug)]
pub struct Ticket {
    cell: Arc<Mutex<TenantState>>,
    clock: Arc<dyn Clock>,
    tenant_id: String,
    key_id: String,
    endpoint: &'static str,
    held: Mutex<Held>,
    /// The tightest request and token limits, for the response's `x-ratelimit-*`.
    pub rates: Vec<RateState>,
}

impl Ticket {
    /// Reserves the worst-case cost against the tenant's and the key's caps in one atomic check-and-add,
    /// clamping the output tokens to what the tightest cap leaves.
    pub fn reserve_budget(&self, ask: &BudgetAsk) -> Result<BudgetHold, Rejection> {
        let day = day_of(self.clock.now_ns());
        let mut held = lock(&self.held);
        let mut st = lock(&self.cell);
        let st = &mut *st;
        st.ledger.roll(day);
        let key = st.keys.entry(self.key_id.clone()).or_default();
        key.ledger.roll(day);
        let limit = match (st.ledger.remaining(), key.ledger.remaining()) {
            (Some(t), Some(k)) if k.0 < t.0 => Some((k.0, "key", k.1)),
            (Some(t), _) => Some((t.0, "tenant", t.1)),
            (None, Some(k)) => Some((k.0, "key", k.1)),
            (None, None) => None,
        };
        let price = ask.price;
        let prompt_cost = cost_micro_usd(
            Usage {
                prompt_tokens: ask.prompt_tokens,
                completion_tokens: 0,
            },
            price,
        );
        let (wanted, choices, extra) = if ask.generates {
            (
                ask.requested_output.unwrap_or(ask.default_output),
                ask.choices.max(1),
                ask.extra_output_tokens,
            )
        } else {
            (0, 1, 0)
        };
        // The output billed when every choice uses `per_choice` tokens.
        let output_cost = |per_choice: u32| {
            cost_micro_usd(
                Usage {
                    prompt_tokens: 0,
                    completion_tokens: u64::from(per_choice)
                        .saturating_mul(u64::from(choices))
                        .saturating_add(extra),
                },
                price,
            )
        };
        let hold = match limit {
            None => BudgetHold {
                micro_usd: prompt_cost.saturating_add(output_cost(wanted)),
                max_output: None,
                capped: false,
            },
            Some((left, scope, window)) => {
                let resets_at = if window == "daily" {
                    window::rfc3339(day + 1)
                } else {
                    window::rfc3339(window::next_month_start(day))
                };
                let reject = |needed| Rejection::Budget {
                    scope,
                    window,
                    remaining_micro_usd: left,
                    needed_micro_usd: needed,
                    resets_at: resets_at.clone(),
                };
                if ask.unbounded {
                    return Err(Rejection::Unbounded {
                        scope,
                        limit: "spend cap",
                    });
                }
                // What the request costs before any choice generates a token.
                let fixed = prompt_cost.saturating_add(output_cost(0));
                // An exhausted budget admits nothing, not even a request that happens to cost nothing.
                if left == 0 || fixed > left {
                    return Err(reject(fixed.max(1)));
                }
                // Output tokens per choice the rest pays for, every choice using them all.
                let affordable = if price.output_micro_usd_per_mtok == 0 {
                    u64::from(u32::MAX)
                } else {
                    u64::try_from(
                        u128::from(left - fixed) * 1_000_000
                            / u128::from(price.output_micro_usd_per_mtok)
                            / u128::from(choices),
                    )
                    .unwrap_or(u64::MAX)
                };
                let max_output = u32::try_from(affordable.min(u64::from(wanted))).unwrap_or(wanted);
                if ask.generates && max_output == 0 {
                    return Err(reject(prompt_cost.saturating_add(output_cost(1))));
                }
                BudgetHold {
                    micro_usd: prompt_cost.saturating_add(output_cost(max_output)),
                    max_output: (ask.generates
                        && (ask.requested_output.is_none() || max_output < wanted))
                        .then_some(max_output),
                    capped: true,
                }
            }
        };
        st.ledger.reserved = st.ledger.reserved.saturating_add(hold.micro_usd);
        key.ledger.reserved = key.ledger.reserved.saturating_add(hold.micro_usd);
        held.micro_usd = held.micro_usd.saturating_add(hold.micro_usd);
        Ok(hold)
    }

    /// The worst-case cost reserved.
    pub fn reserved_micro_usd(&self) -> u64 {
        lock(&self.held).micro_usd
    }

    /// Replaces the reservations with what the request actually cost and used, and frees its in-flight
    /// slots. Only the first call counts.
    pub fn settle(&self, micro_usd: u64, tokens: u64) {
        let mut held = lock(&self.held);
        if held.settled {
            return;
        }
        held.settled = true;
        let now = self.clock.now_ns();
        let day = day_of(now);
        let mut st = lock(&self.cell);
        let st = &mut *st;
        let key = st.keys.entry(self.key_id.clone()).or_default();
        cover::leave(
            &mut key.covers[cover::endpoint_index(self.endpoint)],
            held.cover,
            held.micro_usd,
        );
        for ledger in [&mut st.ledger, &mut key.ledger] {
            ledger.roll(day);
            ledger.reserved = ledger.reserved.saturating_sub(held.micro_usd);
            ledger.spent_day = ledger.spent_day.saturating_add(micro_usd);
            ledger.spent_month = ledger.spent_month.saturating_add(micro_usd);
        }
        let limiters = st.limiters(self.endpoint, &self.key_id);
        for (s, limiter) in limiters.into_iter().enumerate() {
            let Some(l) = limiter else { continue };
            if held.slots[s] {
                l.in_flight = l.in_flight.saturating_sub(1);
            }
            for r in 2..RATES {
                if let Some((rate, _, _)) = l.limits.rate(r) {
                    l.tats[r] = if tokens >= held.tokens {
                        rate.charge(l.tats[r], now, tokens - held.tokens)
                    } else {
                        rate.refund(l.tats[r], held.tokens - tokens)
                    };
                }
            }
        }
    }
}

impl Drop for Ticket {
    /// An unsettled ticket means nobody knows what the request cost: charge the whole reservation.
    fn drop(&mut self) {
        let (micro, tokens) = {
            let held = lock(&self.held);
            (held.micro_usd, held.tokens)
        };
        self.settle(micro, tokens);
    }
}

#[cfg(test)]
mod tests;
