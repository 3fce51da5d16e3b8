//! The three decisions a request's policies make (`authorize`, `classify`, `route`), with the host's checks
//! on what a policy answers, the fallbacks and the `Trail` recorded for the audit entry.
//!
//! Failure rules: `auth` fails closed (a trap, running out of fuel, an error or quarantine denies); `classify`
//! and `route` fall back to the built-in policy. A call stopped by the wall-clock backstop with fuel left
//! (`PolicyFailure::Overloaded`) is the host's fault: `auth` answers 503 (retry) instead of denying, and
//! `classify` and `route` fall back as for any failure (`quarantine.rs` counts the failures).
//!
//! A tenant's calls run on the policy pool (`pool.rs`), which also holds them to the tenant's CPU budget; a
//! call it does not run (budget spent, the tenant's line full) is no failure of the policy. The built-ins
//! run on the caller's thread.

use std::sync::Arc;

use super::Route;
use super::pool::Refused as NotRun;
use super::quarantine::failure_reason;
use super::registry::{Active, Policies, TenantPolicies};
use super::view::{self, MAX_LABEL_VALUE, PolicyRequest, cap_labels, host_tier};
use super::wasm::{self, PolicyFailure, Slot, wit};
use crate::config::{DeploymentKind, Tier};
use crate::providers::{Deployment, RoutingSnapshot};

/// Which policies decided a request, for the audit entry's `policy` field: space-separated `slot=source`
/// items, source being `sha256:<hex>` (the tenant's version), `builtin:sha256:<hex>` (a built-in) or
/// `config` (no policy ran: the configured deployments), with `!<reason>` appended when the tenant's policy
/// failed and the slot's failure rule applied (`!timeout` for running out of fuel, `!overloaded` for the
/// wall-clock backstop, `!trap`, `!error`, `!invalid`, `!quarantined`), and `~no-embedding` when a
/// classifier that reads the request's embedding ran without it (no embedding model, or not in time: the
/// built-in one then decides on the structural features alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail(String);

impl Trail {
    fn without_embedding(&mut self) {
        self.0.push_str("~no-embedding");
    }

    fn push(&mut self, slot: Slot, source: &str, failed: Option<&str>) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(slot.as_str());
        self.0.push('=');
        self.0.push_str(source);
        if let Some(reason) = failed {
            self.0.push('!');
            self.0.push_str(reason);
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// No router ran: the configured deployments serve.
    pub fn configured(&mut self) {
        self.push(Slot::Route, "config", None);
    }
}

/// What a tenant's `auth` slot decided.
#[derive(Debug)]
pub enum AuthOutcome {
    Allow(Vec<wit::Label>),
    /// Refused, with the reason shown to the client.
    Deny(String),
    /// The policy could not finish because the host was overloaded: no decision either way (503, retry).
    Overloaded,
    /// The tenant's policies used their CPU budget (`ms_per_second` of CPU a second); the call did not run
    /// (429, retry after `retry_after`).
    OverBudget {
        retry_after: std::time::Duration,
        ms_per_second: u128,
    },
    /// The tenant's calls fill its line of the policy pool (`queue_per_tenant` long); the call did not run
    /// (429, retry).
    Busy {
        queue_per_tenant: usize,
    },
}

/// What classification produced.
#[derive(Debug, Clone)]
pub struct Classified {
    pub tier: Tier,
    pub labels: Vec<wit::Label>,
}

/// A route refused by a policy (403 `policy_denied`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl Policies {
    fn log_lines(tenant_id: &str, slot: Slot, lines: &[String]) {
        for line in lines {
            tracing::info!(target: "sluice::policy", tenant = %tenant_id, slot = slot.as_str(), "{line}");
        }
    }

    /// Slot 4. Without an uploaded `auth` policy every authenticated key is allowed (roles gate the
    /// self-service endpoints, not inference). A failing or quarantined policy denies: fail closed. A call the
    /// overloaded host could not finish neither allows nor denies: `Overloaded`.
    pub async fn authorize(
        &self,
        tenant: Option<&TenantPolicies>,
        req: &Arc<PolicyRequest>,
        trail: &mut Trail,
    ) -> AuthOutcome {
        let Some((tenant, active)) = tenant.and_then(|t| t.active(Slot::Auth).map(|a| (t, a)))
        else {
            return AuthOutcome::Allow(Vec::new());
        };
        let Some(loaded) = active.usable() else {
            trail.push(Slot::Auth, &active.digest, Some("quarantined"));
            return AuthOutcome::Deny(
                "the tenant's authorization policy is quarantined after repeated failures"
                    .to_owned(),
            );
        };
        let (loaded, input, deadline) = (loaded.clone(), req.clone(), self.deadline(tenant));
        let called = self
            .pooled(&req.tenant_id, move |runtime| {
                runtime.authorize(&loaded.policy, &input, Some(deadline))
            })
            .await;
        match called {
            Ok(out) => {
                Self::succeeded(active);
                Self::log_lines(&req.tenant_id, Slot::Auth, &out.log);
                trail.push(Slot::Auth, &active.digest, None);
                match out.value {
                    wasm::AuthDecision::Allow(labels) => AuthOutcome::Allow(cap_labels(labels)),
                    wasm::AuthDecision::Deny(reason) => {
                        AuthOutcome::Deny(reason.chars().take(MAX_LABEL_VALUE).collect())
                    }
                }
            }
            Err(e) => {
                self.failed(&req.tenant_id, active, &e);
                trail.push(Slot::Auth, &active.digest, Some(failure_reason(&e)));
                match e {
                    e if e.is_overload() => AuthOutcome::Overloaded,
                    PolicyFailure::OverBudget { retry_after } => AuthOutcome::OverBudget {
                        retry_after,
                        ms_per_second: self.cpu.rate(&req.tenant_id).as_millis(),
                    },
                    PolicyFailure::Busy => AuthOutcome::Busy {
                        queue_per_tenant: self.pool.config().queue_per_tenant,
                    },
                    _ => AuthOutcome::Deny("the tenant's authorization policy failed".to_owned()),
                }
            }
        }
    }

    /// Runs a tenant's policy call on the policy pool, in the tenant's turn and within its CPU budget (which
    /// the pool checks before the call starts and charges after).
    async fn pooled<T: Send + 'static>(
        &self,
        tenant_id: &str,
        call: impl FnOnce(&wasm::Runtime) -> Result<T, PolicyFailure> + Send + 'static,
    ) -> Result<T, PolicyFailure> {
        let runtime = self.runtime.clone();
        match self.pool.run(tenant_id, move || call(&runtime)).await {
            Ok(out) => out,
            Err(NotRun::Busy) => Err(PolicyFailure::Busy),
            Err(NotRun::OverBudget(retry_after)) => Err(PolicyFailure::OverBudget { retry_after }),
            Err(NotRun::Stopped) => Err(PolicyFailure::Engine(
                "the policy pool stopped, or the host's part of the call panicked".to_owned(),
            )),
        }
    }

    fn builtin_classify(
        &self,
        req: &PolicyRequest,
        embedding: Option<&wit::Embedding>,
    ) -> Result<Classified, PolicyFailure> {
        let out = self
            .runtime
            .classify(&self.classifier.policy, req, embedding, None)?;
        Ok(Classified {
            tier: host_tier(out.value.tier),
            labels: cap_labels(out.value.labels),
        })
    }

    /// Whether the classifier that `classify` will run reads the request's embedding: the tenant's usable
    /// one if it has one, else the built-in one when a router will read the tier (`needed`). The caller
    /// computes the embedding only then.
    pub fn classifier_reads_embedding(
        &self,
        tenant: Option<&TenantPolicies>,
        needed: bool,
    ) -> bool {
        match tenant.and_then(|t| t.active(Slot::Classify)) {
            Some(active) => active
                .usable()
                .is_some_and(|loaded| loaded.policy.reads_embedding()),
            None => needed && self.classifier.policy.reads_embedding(),
        }
    }

    /// Slot 6. The tenant's classifier if it has one; otherwise the built-in one when a router will read the
    /// tier (`needed`); otherwise `None` (the configured deployment's tier stands). `embedding` is the
    /// request's, computed when [`classifier_reads_embedding`](Self::classifier_reads_embedding) said so.
    pub async fn classify(
        &self,
        tenant: Option<&TenantPolicies>,
        req: &Arc<PolicyRequest>,
        needed: bool,
        embedding: Option<Arc<wit::Embedding>>,
        trail: &mut Trail,
    ) -> Option<Classified> {
        let mut failed = None;
        if let Some((tenant, active)) =
            tenant.and_then(|t| t.active(Slot::Classify).map(|a| (t, a)))
        {
            match active.usable() {
                None => failed = Some((&active.digest, "quarantined")),
                Some(loaded) => {
                    let reads = loaded.policy.reads_embedding();
                    let (loaded, input, deadline) =
                        (loaded.clone(), req.clone(), self.deadline(tenant));
                    let given = embedding.clone();
                    let called = self
                        .pooled(&req.tenant_id, move |runtime| {
                            runtime.classify(
                                &loaded.policy,
                                &input,
                                given.as_deref(),
                                Some(deadline),
                            )
                        })
                        .await;
                    match called {
                        Ok(out) => {
                            Self::succeeded(active);
                            Self::log_lines(&req.tenant_id, Slot::Classify, &out.log);
                            trail.push(Slot::Classify, &active.digest, None);
                            if reads && embedding.is_none() {
                                trail.without_embedding();
                            }
                            return Some(Classified {
                                tier: host_tier(out.value.tier),
                                labels: cap_labels(out.value.labels),
                            });
                        }
                        Err(e) => {
                            self.failed(&req.tenant_id, active, &e);
                            failed = Some((&active.digest, failure_reason(&e)));
                        }
                    }
                }
            }
        }
        if failed.is_none() && !needed {
            return None;
        }
        if let Some((digest, reason)) = failed {
            trail.push(Slot::Classify, digest, Some(reason));
        }
        let source = format!("builtin:{}", self.classifier.digest);
        match self.builtin_classify(req, embedding.as_deref()) {
            Ok(c) => {
                trail.push(Slot::Classify, &source, None);
                if embedding.is_none() {
                    trail.without_embedding();
                }
                Some(c)
            }
            Err(e) => {
                tracing::error!(error = %e, "the built-in classifier failed; using the standard tier");
                trail.push(Slot::Classify, &source, Some(failure_reason(&e)));
                Some(Classified {
                    tier: Tier::Standard,
                    labels: Vec::new(),
                })
            }
        }
    }

    /// The deployments a request may go to: the tenant's whole chat catalog for `auto`, else those serving the
    /// requested name (in their configured order); only in the tenant's allowed regions. `None` for a
    /// name that does not exist for this endpoint.
    pub fn candidates(
        snapshot: &RoutingSnapshot,
        tenant: Option<&TenantPolicies>,
        model: &str,
        kind: DeploymentKind,
    ) -> Option<Vec<Arc<Deployment>>> {
        let allowed = |d: &Deployment| tenant.is_none_or(|t| t.region_allowed(&d.config.region));
        if model == "auto" && kind == DeploymentKind::Chat {
            let mut all: Vec<Arc<Deployment>> = Vec::new();
            for (_, deps) in snapshot.catalog() {
                for d in deps.iter() {
                    if d.config.kind == DeploymentKind::Chat
                        && allowed(d)
                        && !all.iter().any(|c| c.config.name == d.config.name)
                    {
                        all.push(d.clone());
                    }
                }
            }
            return Some(all);
        }
        let deployments = snapshot.resolve(model)?;
        // A chat model named on the embeddings endpoint (or the reverse) is as unknown as a missing one.
        if deployments.is_empty() || deployments.iter().any(|d| d.config.kind != kind) {
            return None;
        }
        Some(deployments.iter().filter(|d| allowed(d)).cloned().collect())
    }

    /// Whether slot 8 runs a policy for this request: always for `auto`, else only when the tenant uploaded a
    /// router (the built-in router does not reorder a configured logical model).
    pub fn routes(tenant: Option<&TenantPolicies>, auto: bool) -> bool {
        auto || tenant.is_some_and(|t| t.active(Slot::Route).is_some())
    }

    /// Slot 8 over `candidates` (non-empty), told the request's `tier` and the budget left
    /// (`remaining_micro_usd`, `None` when no budget applies). The tenant's router if it has one, else the
    /// built-in one; the host keeps only names among the candidates, each once. An invalid decision or a
    /// failure falls back to the built-in router, and if that fails too, to the candidates ordered by tier then
    /// price.
    pub async fn route(
        &self,
        tenant: Option<&TenantPolicies>,
        req: Arc<PolicyRequest>,
        tier: Tier,
        candidates: Vec<Arc<Deployment>>,
        remaining_micro_usd: Option<u64>,
        trail: &mut Trail,
    ) -> Result<Route, Refused> {
        let input = Arc::new(view::routing_input(
            Arc::unwrap_or_clone(req),
            tier,
            &candidates,
            remaining_micro_usd,
        ));
        if let Some((t, active)) = tenant.and_then(|t| t.active(Slot::Route).map(|a| (t, a))) {
            match self
                .tenant_route(t, active, &input, &candidates, trail)
                .await
            {
                Ok(decided) => return decided,
                Err(reason) => trail.push(Slot::Route, &active.digest, Some(reason)),
            }
        }
        self.builtin_route(&input, tier, candidates, trail)
    }

    /// The tenant's router: its decision (recorded in the trail), or why it gave none (counted as a failure
    /// unless it is quarantined or the host was overloaded), for the trail.
    async fn tenant_route(
        &self,
        tenant: &TenantPolicies,
        active: &Active,
        input: &Arc<wasm::RoutingInput>,
        candidates: &[Arc<Deployment>],
        trail: &mut Trail,
    ) -> Result<Result<Route, Refused>, &'static str> {
        let tenant_id = &input.req.tenant_id;
        let Some(loaded) = active.usable() else {
            return Err("quarantined");
        };
        let (loaded, shared, deadline) = (loaded.clone(), input.clone(), self.deadline(tenant));
        let called = self
            .pooled(tenant_id, move |runtime| {
                runtime.route(&loaded.policy, &shared, Some(deadline))
            })
            .await;
        let out = match called {
            Ok(out) => out,
            Err(e) => {
                self.failed(tenant_id, active, &e);
                return Err(failure_reason(&e));
            }
        };
        Self::log_lines(tenant_id, Slot::Route, &out.log);
        match out.value {
            wasm::RouteDecision::Reject(reason) => {
                Self::succeeded(active);
                trail.push(Slot::Route, &active.digest, None);
                Ok(Err(Refused(reason.chars().take(MAX_LABEL_VALUE).collect())))
            }
            wasm::RouteDecision::Route(names) => {
                let picked = pick(candidates, names);
                if picked.is_empty() {
                    tracing::warn!(tenant = %tenant_id, "the tenant's router named no deployment among the candidates; using the built-in router");
                    self.failed(
                        tenant_id,
                        active,
                        &PolicyFailure::Policy("no valid deployment named".to_owned()),
                    );
                    return Err("invalid");
                }
                Self::succeeded(active);
                trail.push(Slot::Route, &active.digest, None);
                Ok(Ok(Route {
                    deployments: picked.into(),
                }))
            }
        }
    }

    /// The built-in router; if it fails or names no candidate, the candidates ordered by tier then price.
    fn builtin_route(
        &self,
        input: &wasm::RoutingInput,
        tier: Tier,
        candidates: Vec<Arc<Deployment>>,
        trail: &mut Trail,
    ) -> Result<Route, Refused> {
        let source = format!("builtin:{}", self.router.digest);
        let chosen = match self.runtime.route(&self.router.policy, input, None) {
            Ok(out) => match out.value {
                wasm::RouteDecision::Route(names) => pick(&candidates, names),
                wasm::RouteDecision::Reject(reason) => return Err(Refused(reason)),
            },
            Err(e) => {
                tracing::error!(error = %e, "the built-in router failed");
                Vec::new()
            }
        };
        if chosen.is_empty() {
            trail.push(Slot::Route, &source, Some("invalid"));
            let mut all = candidates;
            all.sort_by_key(|d| {
                (
                    d.config.tier != tier,
                    d.config.price.input_micro_usd_per_mtok
                        + d.config.price.output_micro_usd_per_mtok,
                )
            });
            return Ok(Route {
                deployments: all.into(),
            });
        }
        trail.push(Slot::Route, &source, None);
        Ok(Route {
            deployments: chosen.into(),
        })
    }
}

/// The candidates a router named, in its order, each once; names that are not candidates are dropped.
fn pick(candidates: &[Arc<Deployment>], names: Vec<String>) -> Vec<Arc<Deployment>> {
    let mut picked: Vec<Arc<Deployment>> = Vec::new();
    for name in names {
        if let Some(d) = candidates.iter().find(|c| c.config.name == name)
            && !picked.iter().any(|p| p.config.name == name)
        {
            picked.push(d.clone());
        }
    }
    picked
}
