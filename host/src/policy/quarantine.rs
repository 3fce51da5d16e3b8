//! Quarantine: counting a tenant version's failures in a row, quarantining it at the threshold, and the short
//! word each failure is recorded as.
//!
//! Every failure of the policy's own counts. A version is quarantined until another one is activated when
//! `quarantine_after` calls in a row fail, or when, within a minute, at least twice that many fail and they
//! are at least half of its calls: successes in between do not keep a failing version running. A call
//! stopped by the wall-clock backstop with fuel left, before it had run for its deadline on the CPU
//! (`PolicyFailure::Overloaded`), is the host's fault, not the policy's: it neither counts nor resets the
//! count. One that had run that long (`TooMuchCpu`) is the policy's.
//!
//! A version's failures are logged at most once a second, with how many were not; the message is the
//! policy's own text, bounded and escaped (`wasm::printable`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::registry::{Active, Loaded, Policies};
use super::wasm::PolicyFailure;

/// A short word for a failure, for trails and metrics.
pub fn failure_reason(f: &PolicyFailure) -> &'static str {
    match f {
        // Out of fuel is the deadline as users know it: the policy did more than its deadline's work.
        PolicyFailure::OutOfFuel { .. } | PolicyFailure::TooMuchCpu { .. } => "timeout",
        PolicyFailure::Overloaded { .. } => "overloaded",
        PolicyFailure::OverBudget { .. } => "over_budget",
        PolicyFailure::Busy => "busy",
        PolicyFailure::Trap(_) => "trap",
        PolicyFailure::Policy(_) => "error",
        PolicyFailure::MissingSlot(_)
        | PolicyFailure::NotWasm
        | PolicyFailure::CoreModule
        | PolicyFailure::NotAComponent(_)
        | PolicyFailure::ForbiddenImport(_)
        | PolicyFailure::ExportType { .. }
        | PolicyFailure::Link(_)
        | PolicyFailure::Engine(_) => "invalid",
    }
}

/// The window failures are counted over, besides the run of failures in a row.
const WINDOW: Duration = Duration::from_secs(60);
/// Least time between two logged failures of one version.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A version's calls and failures in the current window, and when a failure of it was last logged.
#[derive(Debug)]
pub struct Health {
    window: Mutex<(Instant, u32, u32)>,
    logged: Mutex<(Option<Instant>, u32)>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            window: Mutex::new((Instant::now(), 0, 0)),
            logged: Mutex::new((None, 0)),
        }
    }
}

impl Health {
    /// Counts a call of the version; returns the window's (calls, failures) with it.
    fn count(&self, failed: bool) -> (u32, u32) {
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.0.elapsed() >= WINDOW {
            *w = (Instant::now(), 0, 0);
        }
        w.1 = w.1.saturating_add(1);
        w.2 = w.2.saturating_add(u32::from(failed));
        (w.1, w.2)
    }

    /// Whether a failure may be logged now; if so, how many were left out since the last one logged.
    fn may_log(&self) -> Option<u32> {
        let mut l = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if l.0.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            l.1 = l.1.saturating_add(1);
            return None;
        }
        let left_out = l.1;
        *l = (Some(Instant::now()), 0);
        Some(left_out)
    }
}

impl Active {
    /// Quarantined after repeated failures, or not loadable at start: the slot's failure rule applies.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed) || self.loaded.is_none()
    }

    /// The compiled policy, unless the version is quarantined or could not be loaded.
    pub(super) fn usable(&self) -> Option<&Arc<Loaded>> {
        self.loaded
            .as_ref()
            .filter(|_| !self.quarantined.load(Ordering::Relaxed))
    }
}

impl Policies {
    /// Counts a failure of a tenant's version; quarantines it at the threshold (in memory at once, in storage
    /// in the background). An overload is not the version's fault: it leaves the count as it is.
    pub(super) fn failed(&self, tenant_id: &str, active: &Active, failure: &PolicyFailure) {
        if matches!(
            failure,
            PolicyFailure::OverBudget { .. } | PolicyFailure::Busy
        ) {
            // The tenant's budget or load, not this version's fault: nothing counts.
            return;
        }
        let left_out = active.health.may_log();
        if failure.is_overload() {
            if let Some(left_out) = left_out {
                tracing::warn!(tenant = %tenant_id, slot = active.slot.as_str(), version = active.version, error = %failure, left_out, "tenant policy stopped by the wall-clock backstop; not counted toward quarantine");
            }
            return;
        }
        if let Some(left_out) = left_out {
            tracing::warn!(tenant = %tenant_id, slot = active.slot.as_str(), version = active.version, error = %failure, left_out, "tenant policy failed");
        }
        let n = active.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let (calls, failures) = active.health.count(true);
        let threshold = self.config.quarantine_after;
        let in_a_row = n >= threshold;
        let by_rate =
            failures >= threshold.saturating_mul(2) && failures.saturating_mul(2) >= calls;
        if (in_a_row || by_rate)
            && active
                .quarantined
                .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.quarantines.fetch_add(1, Ordering::Relaxed);
            let reason = if in_a_row {
                format!("{n} failures in a row, the last: {failure}")
            } else {
                format!("{failures} of {calls} calls failed within a minute, the last: {failure}")
            };
            tracing::error!(tenant = %tenant_id, slot = active.slot.as_str(), version = active.version, %reason, "tenant policy quarantined");
            if let Some(storage) = self.storage.clone()
                && let Ok(handle) = tokio::runtime::Handle::try_current()
            {
                let (tenant, slot, version) =
                    (tenant_id.to_owned(), active.slot.as_str(), active.version);
                handle.spawn(async move {
                    if let Err(e) = storage
                        .policy_quarantine(&tenant, slot, version, &reason)
                        .await
                    {
                        tracing::error!(error = %e, "cannot store a quarantine");
                    }
                });
            }
        }
    }

    /// A success of a tenant's version: its failures are no longer in a row.
    pub(super) fn succeeded(active: &Active) {
        active.health.count(false);
        if active.failures.load(Ordering::Relaxed) != 0 {
            active.failures.store(0, Ordering::Relaxed);
        }
    }
}
