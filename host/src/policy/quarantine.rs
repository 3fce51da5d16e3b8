//! Quarantine: counting a tenant version's failures in a row, quarantining it at the threshold, and the short
//! word each failure is recorded as.
//!
//! Every failure of the policy's own counts; `quarantine_after` failures in a row quarantine the version
//! until another one is activated. A call stopped by the wall-clock backstop with fuel left
//! (`PolicyFailure::Overloaded`) is the host's fault, not the policy's: it neither counts nor resets the
//! count.

use std::sync::atomic::Ordering;

use super::registry::{Active, Loaded, Policies};
use super::wasm::PolicyFailure;

/// A short word for a failure, for trails and metrics.
pub fn failure_reason(f: &PolicyFailure) -> &'static str {
    match f {
        // Out of fuel is the deadline as users know it: the policy did more than its deadline's work.
        PolicyFailure::OutOfFuel { .. } => "timeout",
        PolicyFailure::Overloaded { .. } => "overloaded",
        PolicyFailure::Trap(_) => "trap",
        PolicyFailure::Policy(_) => "error",
        PolicyFailure::MissingSlot(_)
        | PolicyFailure::NotWasm
        | PolicyFailure::CoreModule
        | PolicyFailure::NotAComponent(_)
        | PolicyFailure::ForbiddenImport(_)
        | PolicyFailure::Link(_)
        | PolicyFailure::Engine(_) => "invalid",
    }
}

impl Active {
    /// Quarantined after repeated failures, or not loadable at start: the slot's failure rule applies.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed) || self.loaded.is_none()
    }

    /// The compiled policy, unless the version is quarantined or could not be loaded.
    pub(super) fn usable(&self) -> Option<&Loaded> {
        self.loaded
            .as_deref()
            .filter(|_| !self.quarantined.load(Ordering::Relaxed))
    }
}

impl Policies {
    /// Counts a failure of a tenant's version; quarantines it at the threshold (in memory at once, in storage
    /// in the background). An overload is not the version's fault: it leaves the count as it is.
    pub(super) fn failed(&self, tenant_id: &str, active: &Active, failure: &PolicyFailure) {
        if failure.is_overload() {
            tracing::warn!(tenant = %tenant_id, slot = active.slot.as_str(), version = active.version, error = %failure, "tenant policy stopped by the wall-clock backstop; not counted toward quarantine");
            return;
        }
        tracing::warn!(tenant = %tenant_id, slot = active.slot.as_str(), version = active.version, error = %failure, "tenant policy failed");
        let n = active.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.config.quarantine_after
            && active
                .quarantined
                .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.quarantines.fetch_add(1, Ordering::Relaxed);
            let reason = format!("{n} failures in a row, the last: {failure}");
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
        if active.failures.load(Ordering::Relaxed) != 0 {
            active.failures.store(0, Ordering::Relaxed);
        }
    }
}
