//! Quarantine: a version's `Health` (its calls and failures in the current window, and when a failure was
//! last logged) and the short word each failure is recorded as. `Policies::failed` (in `registry.rs`, with
//! the versions it counts for) applies the rules below.
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

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    pub(super) fn count(&self, failed: bool) -> (u32, u32) {
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
    pub(super) fn may_log(&self) -> Option<u32> {
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
