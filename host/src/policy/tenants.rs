//! Which policy serves each tenant's slots, and the three decisions made with them.
//!
//! `Policies` holds the runtime, the built-ins and, per tenant, the active uploaded version of each slot with
//! its failure count, plus the tenant's deadline and allowed regions. The tenant map is swapped whole
//! (`ArcSwap`) on every change, so a request reads one consistent snapshot without a lock and an activation
//! is atomic. Uploads are checked and compiled off the request path, one at a time.
//!
//! Failure rules: `auth` fails closed (a trap, running out of fuel, an error or quarantine denies); `classify`
//! and `route` fall back to the built-in policy. Every failure of the policy's own counts; `quarantine_after`
//! failures in a row quarantine the version until another one is activated. A call stopped by the wall-clock
//! backstop with fuel left (`PolicyFailure::Overloaded`) is the host's fault, not the policy's: it neither
//! counts nor resets the count, `auth` answers 503 (retry) instead of denying, and `classify` and `route` fall
//! back as for any failure. Every decision is recorded in a `Trail` for the audit entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::artifacts::ArtifactCache;
use super::compiler::CompileError;
use super::wasm::{self, PolicyFailure, Slot, wit};
use super::{Route, builtin};
use crate::config::{DeploymentKind, PolicyConfig, Tier};
use crate::providers::{Deployment, RoutingSnapshot};
use crate::storage::{ActivePolicyRow, Storage};

/// Most labels one slot may add, and the longest key and value kept; the rest is dropped.
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_KEY: usize = 64;
pub const MAX_LABEL_VALUE: usize = 256;

/// A compiled component and its digest.
pub struct Loaded {
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    pub policy: wasm::Policy,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// A tenant's active version of one slot.
#[derive(Debug)]
pub struct Active {
    pub slot: Slot,
    pub version: u32,
    pub digest: String,
    /// `None` when the stored component could not be loaded at start (it then counts as quarantined).
    loaded: Option<Arc<Loaded>>,
    failures: AtomicU32,
    quarantined: AtomicBool,
}

impl Active {
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed) || self.loaded.is_none()
    }

    fn usable(&self) -> Option<&Loaded> {
        self.loaded
            .as_deref()
            .filter(|_| !self.quarantined.load(Ordering::Relaxed))
    }
}

/// One tenant's policies and settings.
#[derive(Debug, Default)]
pub struct TenantPolicies {
    slots: [Option<Arc<Active>>; 3],
    /// The tenant's deadline, if it chose one.
    pub deadline_ms: Option<u64>,
    /// Regions the tenant's requests may go to; `None` = any.
    pub allowed_regions: Option<Arc<[String]>>,
}

impl TenantPolicies {
    pub fn active(&self, slot: Slot) -> Option<&Arc<Active>> {
        self.slots[slot.index()].as_ref()
    }

    fn with_slot(&self, slot: Slot, active: Option<Arc<Active>>) -> TenantPolicies {
        let mut slots = self.slots.clone();
        slots[slot.index()] = active;
        TenantPolicies {
            slots,
            deadline_ms: self.deadline_ms,
            allowed_regions: self.allowed_regions.clone(),
        }
    }

    fn region_allowed(&self, region: &str) -> bool {
        self.allowed_regions
            .as_ref()
            .is_none_or(|r| r.iter().any(|a| a == region))
    }
}

/// Which policies decided a request, for the audit entry's `policy` field: space-separated `slot=source`
/// items, source being `sha256:<hex>` (the tenant's version), `builtin:sha256:<hex>` (a built-in) or
/// `config` (no policy ran: the configured deployments), with `!<reason>` appended when the tenant's policy
/// failed and the slot's failure rule applied (`!timeout` for running out of fuel, `!overloaded` for the
/// wall-clock backstop, `!trap`, `!error`, `!invalid`, `!quarantined`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail(String);

impl Trail {
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

/// Why an upload was refused; the message is for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Invalid(#[from] PolicyFailure),
    #[error(
        "the component does not export the `{slot}` slot (world `{world}`): build it against that world",
        slot = .0.as_str(),
        world = .0.world()
    )]
    WrongWorld(Slot),
    #[error("compilation took longer than {0:?}")]
    CompileTimeout(Duration),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("the compiler stopped: {0}")]
    Compiler(String),
}

/// What a tenant's `auth` slot decided.
#[derive(Debug)]
pub enum AuthOutcome {
    Allow(Vec<wit::Label>),
    /// Refused, with the reason shown to the client.
    Deny(String),
    /// The policy could not finish because the host was overloaded: no decision either way (503, retry).
    Overloaded,
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

/// The runtime, the built-ins, and every tenant's active policies.
pub struct Policies {
    runtime: wasm::Runtime,
    classifier: Arc<Loaded>,
    router: Arc<Loaded>,
    tenants: ArcSwap<HashMap<String, Arc<TenantPolicies>>>,
    config: PolicyConfig,
    artifacts: Option<ArtifactCache>,
    storage: Option<Storage>,
    /// One compilation at a time: uploads cannot take both cores from the data plane.
    compile_gate: tokio::sync::Semaphore,
    /// Serializes changes to the tenant map (reads never wait for it).
    change: tokio::sync::Mutex<()>,
    quarantines: AtomicU32,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn wit_tier(t: Tier) -> wit::Tier {
    match t {
        Tier::Simple => wit::Tier::Simple,
        Tier::Standard => wit::Tier::Standard,
        Tier::Complex => wit::Tier::Complex,
    }
}

fn host_tier(t: wit::Tier) -> Tier {
    match t {
        wit::Tier::Simple => Tier::Simple,
        wit::Tier::Standard => Tier::Standard,
        wit::Tier::Complex => Tier::Complex,
    }
}

/// Keeps at most `MAX_LABELS` labels, each cut to the key and value limits.
pub fn cap_labels(labels: Vec<wit::Label>) -> Vec<wit::Label> {
    fn cut(s: String, max: usize) -> String {
        if s.len() <= max {
            return s;
        }
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }
    labels
        .into_iter()
        .take(MAX_LABELS)
        .map(|l| wit::Label {
            key: cut(l.key, MAX_LABEL_KEY),
            value: cut(l.value, MAX_LABEL_VALUE),
        })
        .collect()
}

/// The catalog entry a router sees for a deployment.
pub fn wit_deployment(d: &Deployment) -> wit::Deployment {
    wit::Deployment {
        name: d.config.name.clone(),
        tier: wit_tier(d.config.tier),
        region: d.config.region.clone(),
        input_micro_usd_per_mtok: d.config.price.input_micro_usd_per_mtok,
        output_micro_usd_per_mtok: d.config.price.output_micro_usd_per_mtok,
        // The gateway does not track deployment health yet: every deployment is reported healthy.
        health: wit::Health::Healthy,
        recent_latency_ms: None,
    }
}

impl Policies {
    /// Starts the runtime, loads the built-ins and every tenant's active versions (through the artifact
    /// cache when there is one). `storage` is `None` for offline use (`sluice policy test`).
    pub async fn load(
        config: &PolicyConfig,
        cache_secret: &[u8],
        storage: Option<Storage>,
    ) -> Result<Policies, PolicyFailure> {
        let runtime = wasm::Runtime::new(wasm::Limits {
            deadline: config.default_deadline,
            fuel_per_ms: config.fuel_per_ms,
            max_memory_bytes: config.max_memory_bytes,
        })?;
        let artifacts = config.cache_dir.as_ref().and_then(|dir| {
            ArtifactCache::new(dir, cache_secret, runtime.engine())
                .map_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "no policy artifact cache: compiling at every start");
                })
                .ok()
        });
        let mut policies = Policies {
            classifier: Arc::new(
                load_cached(&runtime, config, artifacts.as_ref(), builtin::CLASSIFIER).await?,
            ),
            router: Arc::new(
                load_cached(&runtime, config, artifacts.as_ref(), builtin::ROUTER).await?,
            ),
            runtime,
            tenants: ArcSwap::from_pointee(HashMap::new()),
            config: config.clone(),
            artifacts,
            storage,
            compile_gate: tokio::sync::Semaphore::new(1),
            change: tokio::sync::Mutex::new(()),
            quarantines: AtomicU32::new(0),
        };
        if let Some(storage) = policies.storage.clone() {
            policies.restore(&storage).await?;
        }
        Ok(policies)
    }

    async fn restore(&mut self, storage: &Storage) -> Result<(), PolicyFailure> {
        let db = |e: crate::storage::StorageError| PolicyFailure::Engine(e.to_string());
        let mut map: HashMap<String, TenantPolicies> = HashMap::new();
        for row in storage.policy_settings().await.map_err(db)? {
            let t = map.entry(row.tenant_id.clone()).or_default();
            t.deadline_ms = row.deadline_ms;
            t.allowed_regions = row
                .allowed_regions
                .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
                .map(Into::into);
        }
        for row in storage.policy_active().await.map_err(db)? {
            let Some(slot) = Slot::parse(&row.slot) else {
                continue;
            };
            let active = self.restore_one(storage, &row, slot).await;
            map.entry(row.tenant_id.clone()).or_default().slots[slot.index()] =
                Some(Arc::new(active));
        }
        self.tenants =
            ArcSwap::from_pointee(map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect());
        Ok(())
    }

    async fn restore_one(&self, storage: &Storage, row: &ActivePolicyRow, slot: Slot) -> Active {
        let loaded = match storage.policy_blob(&row.digest).await {
            Ok(Some(bytes)) => {
                load_cached(&self.runtime, &self.config, self.artifacts.as_ref(), &bytes)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(None) => Err("the stored component is missing".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        let loaded = match loaded {
            Ok(l) => Some(Arc::new(l)),
            Err(e) => {
                tracing::error!(tenant = %row.tenant_id, slot = slot.as_str(), version = row.version, error = %e, "cannot load a tenant's active policy; the slot's failure rule applies");
                None
            }
        };
        Active {
            slot,
            version: row.version,
            digest: row.digest.clone(),
            loaded,
            failures: AtomicU32::new(0),
            quarantined: AtomicBool::new(row.quarantine.is_some()),
        }
    }

    pub fn runtime(&self) -> &wasm::Runtime {
        &self.runtime
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The digests of the built-in classifier and router.
    pub fn builtin_digests(&self) -> (&str, &str) {
        (&self.classifier.digest, &self.router.digest)
    }

    /// How many quarantines happened since start.
    pub fn quarantines(&self) -> u32 {
        self.quarantines.load(Ordering::Relaxed)
    }

    /// A tenant's policies, if it has any setting or upload.
    pub fn tenant(&self, tenant_id: &str) -> Option<Arc<TenantPolicies>> {
        self.tenants.load().get(tenant_id).cloned()
    }

    /// The deadline of a tenant's calls.
    fn deadline(&self, tenant: &TenantPolicies) -> Duration {
        tenant
            .deadline_ms
            .map_or(self.config.default_deadline, Duration::from_millis)
            .min(self.config.max_deadline)
    }

    fn update(&self, tenant_id: &str, f: impl FnOnce(&TenantPolicies) -> TenantPolicies) {
        let map = self.tenants.load_full();
        let current = map.get(tenant_id).cloned().unwrap_or_default();
        let mut next = HashMap::clone(&map);
        next.insert(tenant_id.to_owned(), Arc::new(f(&current)));
        self.tenants.store(Arc::new(next));
    }

    // ---- lifecycle ---------------------------------------------------------------------------------

    /// The database; offline runtimes (`sluice policy test`) have none and cannot change anything.
    fn storage(&self) -> Result<&Storage, UploadError> {
        self.storage
            .as_ref()
            .ok_or_else(|| UploadError::Compiler("no storage: an offline runtime".to_owned()))
    }

    /// Checks, compiles, stores and activates an upload. Returns the new version and the digest.
    pub async fn upload(
        &self,
        tenant_id: &str,
        slot: Slot,
        bytes: Vec<u8>,
        uploaded_by: &str,
    ) -> Result<(u32, String), UploadError> {
        if bytes.len() > self.config.max_upload_bytes {
            return Err(UploadError::TooLarge {
                size: bytes.len(),
                limit: self.config.max_upload_bytes,
            });
        }
        let digest = digest_of(&bytes);
        let component = self.compile(&bytes).await?;
        let policy = self.runtime.link(&component)?;
        if !policy.exports(slot) {
            return Err(UploadError::WrongWorld(slot));
        }
        if let Some(cache) = &self.artifacts {
            cache.put(&digest, &component);
        }
        let storage = self.storage()?;
        let _change = self.change.lock().await;
        let version = storage
            .policy_upload(tenant_id, slot.as_str(), &digest, &bytes, uploaded_by)
            .await?;
        let active = Arc::new(Active {
            slot,
            version,
            digest: digest.clone(),
            loaded: Some(Arc::new(Loaded {
                digest: digest.clone(),
                policy,
            })),
            failures: AtomicU32::new(0),
            quarantined: AtomicBool::new(false),
        });
        self.update(tenant_id, |t| t.with_slot(slot, Some(active)));
        Ok((version, digest))
    }

    /// Compiles one component at a time, within the compile timeout (see `compiler.rs`).
    async fn compile(&self, bytes: &[u8]) -> Result<wasmtime::component::Component, UploadError> {
        let _gate = self
            .compile_gate
            .acquire()
            .await
            .map_err(|e| UploadError::Compiler(e.to_string()))?;
        self.config
            .compiler
            .compile(
                self.runtime.engine(),
                self.runtime.limits(),
                bytes,
                self.config.compile_timeout,
            )
            .await
            .map_err(|e| match e {
                CompileError::Refused(failure) => UploadError::Invalid(failure),
                CompileError::TimedOut => UploadError::CompileTimeout(self.config.compile_timeout),
                CompileError::Broken(why) => UploadError::Compiler(why),
            })
    }

    /// Activates a stored version (and lifts any quarantine). `Ok(None)`: no such version.
    pub async fn activate(
        &self,
        tenant_id: &str,
        slot: Slot,
        version: u32,
    ) -> Result<Option<String>, UploadError> {
        let storage = self.storage()?;
        let _change = self.change.lock().await;
        // Load before switching, so a version that no longer loads is refused rather than activated.
        let versions = storage.policy_versions(tenant_id).await?;
        let Some(row) = versions
            .into_iter()
            .find(|v| v.slot == slot.as_str() && v.version == version)
        else {
            return Ok(None);
        };
        let bytes = storage
            .policy_blob(&row.digest)
            .await?
            .ok_or_else(|| UploadError::Compiler("the stored component is missing".to_owned()))?;
        let component = match self
            .artifacts
            .as_ref()
            .and_then(|c| c.get(self.runtime.engine(), &row.digest))
        {
            Some(c) => c,
            None => self.compile(&bytes).await?,
        };
        let policy = self.runtime.link(&component)?;
        if storage
            .policy_activate(tenant_id, slot.as_str(), version)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let active = Arc::new(Active {
            slot,
            version,
            digest: row.digest.clone(),
            loaded: Some(Arc::new(Loaded {
                digest: row.digest.clone(),
                policy,
            })),
            failures: AtomicU32::new(0),
            quarantined: AtomicBool::new(false),
        });
        self.update(tenant_id, |t| t.with_slot(slot, Some(active)));
        Ok(Some(row.digest))
    }

    /// Takes a slot back to the built-in policy. Returns whether a version was active.
    pub async fn deactivate(&self, tenant_id: &str, slot: Slot) -> Result<bool, UploadError> {
        let storage = self.storage()?;
        let _change = self.change.lock().await;
        let was = storage.policy_deactivate(tenant_id, slot.as_str()).await?;
        self.update(tenant_id, |t| t.with_slot(slot, None));
        Ok(was)
    }

    /// Stores and applies a tenant's settings. The deadline is checked against the operator's maximum by the
    /// caller.
    pub async fn set_settings(
        &self,
        tenant_id: &str,
        deadline_ms: Option<u64>,
        allowed_regions: Option<Vec<String>>,
    ) -> Result<(), UploadError> {
        let storage = self.storage()?;
        let _change = self.change.lock().await;
        let row = crate::storage::PolicySettingsRow {
            tenant_id: tenant_id.to_owned(),
            deadline_ms,
            allowed_regions: allowed_regions
                .as_ref()
                .map(|r| serde_json::Value::from(r.clone()).to_string()),
        };
        storage.put_policy_settings(&row).await?;
        self.update(tenant_id, |t| TenantPolicies {
            slots: t.slots.clone(),
            deadline_ms,
            allowed_regions: allowed_regions.map(Into::into),
        });
        Ok(())
    }

    // ---- decisions ---------------------------------------------------------------------------------

    /// Counts a failure of a tenant's version; quarantines it at the threshold (in memory at once, in storage
    /// in the background). An overload is not the version's fault: it leaves the count as it is.
    fn failed(&self, tenant_id: &str, active: &Active, failure: &PolicyFailure) {
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

    fn succeeded(active: &Active) {
        if active.failures.load(Ordering::Relaxed) != 0 {
            active.failures.store(0, Ordering::Relaxed);
        }
    }

    fn log_lines(tenant_id: &str, slot: Slot, lines: &[String]) {
        for line in lines {
            tracing::info!(target: "sluice::policy", tenant = %tenant_id, slot = slot.as_str(), "{line}");
        }
    }

    /// Slot 4. Without an uploaded `auth` policy every authenticated key is allowed (roles gate the
    /// self-service endpoints, not inference). A failing or quarantined policy denies: fail closed. A call the
    /// overloaded host could not finish neither allows nor denies: `Overloaded`.
    pub fn authorize(
        &self,
        tenant: Option<&TenantPolicies>,
        req: &wit::Request,
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
        match self
            .runtime
            .authorize(&loaded.policy, req, Some(self.deadline(tenant)))
        {
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
                if e.is_overload() {
                    return AuthOutcome::Overloaded;
                }
                AuthOutcome::Deny("the tenant's authorization policy failed".to_owned())
            }
        }
    }

    fn builtin_classify(&self, req: &wit::Request) -> Result<Classified, PolicyFailure> {
        let out = self.runtime.classify(&self.classifier.policy, req, None)?;
        Ok(Classified {
            tier: host_tier(out.value.tier),
            labels: cap_labels(out.value.labels),
        })
    }

    /// Slot 6. The tenant's classifier if it has one; otherwise the built-in one when a router will read the
    /// tier (`needed`); otherwise `None` (the configured deployment's tier stands).
    pub fn classify(
        &self,
        tenant: Option<&TenantPolicies>,
        req: &wit::Request,
        needed: bool,
        trail: &mut Trail,
    ) -> Option<Classified> {
        let mut failed = None;
        if let Some((tenant, active)) =
            tenant.and_then(|t| t.active(Slot::Classify).map(|a| (t, a)))
        {
            match active.usable() {
                None => failed = Some((&active.digest, "quarantined")),
                Some(loaded) => {
                    match self
                        .runtime
                        .classify(&loaded.policy, req, Some(self.deadline(tenant)))
                    {
                        Ok(out) => {
                            Self::succeeded(active);
                            Self::log_lines(&req.tenant_id, Slot::Classify, &out.log);
                            trail.push(Slot::Classify, &active.digest, None);
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
        match self.builtin_classify(req) {
            Ok(c) => {
                trail.push(Slot::Classify, &source, None);
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
    /// requested name (in their configured order); only in the tenant's allowed regions. `Ok(None)` for a
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

    /// Slot 8 over `candidates` (non-empty). The tenant's router if it has one, else the built-in one; the
    /// host keeps only names among the candidates, each once. An invalid decision or a failure falls back to
    /// the built-in router, and if that fails too, to the candidates ordered by tier then price.
    pub fn route(
        &self,
        tenant: Option<&TenantPolicies>,
        input: wasm::RoutingInput,
        candidates: Vec<Arc<Deployment>>,
        trail: &mut Trail,
    ) -> Result<Route, Refused> {
        let tenant_id = input.req.tenant_id.clone();
        let tier = host_tier(input.tier);
        let pick = |names: Vec<String>| -> Vec<Arc<Deployment>> {
            let mut picked: Vec<Arc<Deployment>> = Vec::new();
            for name in names {
                if let Some(d) = candidates.iter().find(|c| c.config.name == name)
                    && !picked.iter().any(|p| p.config.name == name)
                {
                    picked.push(d.clone());
                }
            }
            picked
        };
        let mut failed = None;
        if let Some((t, active)) = tenant.and_then(|t| t.active(Slot::Route).map(|a| (t, a))) {
            match active.usable() {
                None => failed = Some((&active.digest, "quarantined")),
                Some(loaded) => {
                    match self
                        .runtime
                        .route(&loaded.policy, &input, Some(self.deadline(t)))
                    {
                        Ok(out) => {
                            Self::log_lines(&tenant_id, Slot::Route, &out.log);
                            match out.value {
                                wasm::RouteDecision::Reject(reason) => {
                                    Self::succeeded(active);
                                    trail.push(Slot::Route, &active.digest, None);
                                    return Err(Refused(
                                        reason.chars().take(MAX_LABEL_VALUE).collect(),
                                    ));
                                }
                                wasm::RouteDecision::Route(names) => {
                                    let picked = pick(names);
                                    if picked.is_empty() {
                                        tracing::warn!(tenant = %tenant_id, "the tenant's router named no deployment among the candidates; using the built-in router");
                                        self.failed(
                                            &tenant_id,
                                            active,
                                            &PolicyFailure::Policy(
                                                "no valid deployment named".to_owned(),
                                            ),
                                        );
                                        failed = Some((&active.digest, "invalid"));
                                    } else {
                                        Self::succeeded(active);
                                        trail.push(Slot::Route, &active.digest, None);
                                        return Ok(Route {
                                            deployments: picked.into(),
                                        });
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            self.failed(&tenant_id, active, &e);
                            failed = Some((&active.digest, failure_reason(&e)));
                        }
                    }
                }
            }
        }
        if let Some((digest, reason)) = failed {
            trail.push(Slot::Route, digest, Some(reason));
        }
        let source = format!("builtin:{}", self.router.digest);
        let builtin = match self.runtime.route(&self.router.policy, &input, None) {
            Ok(out) => match out.value {
                wasm::RouteDecision::Route(names) => Ok(pick(names)),
                wasm::RouteDecision::Reject(reason) => Err(Refused(reason)),
            },
            Err(e) => {
                tracing::error!(error = %e, "the built-in router failed");
                Ok(Vec::new())
            }
        };
        let chosen = builtin?;
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

/// Compiles (or fetches from the artifact cache) and links a component.
async fn load_cached(
    runtime: &wasm::Runtime,
    config: &PolicyConfig,
    cache: Option<&ArtifactCache>,
    bytes: &[u8],
) -> Result<Loaded, PolicyFailure> {
    let digest = digest_of(bytes);
    let component = match cache.and_then(|c| c.get(runtime.engine(), &digest)) {
        Some(c) => c,
        None => {
            let c = config
                .compiler
                .compile(
                    runtime.engine(),
                    runtime.limits(),
                    bytes,
                    config.compile_timeout,
                )
                .await
                .map_err(|e| match e {
                    CompileError::Refused(failure) => failure,
                    CompileError::TimedOut => PolicyFailure::Engine(format!(
                        "compilation took longer than {:?}",
                        config.compile_timeout
                    )),
                    CompileError::Broken(why) => PolicyFailure::Engine(why),
                })?;
            if let Some(cache) = cache {
                cache.put(&digest, &c);
            }
            c
        }
    };
    Ok(Loaded {
        policy: runtime.link(&component)?,
        digest,
    })
}
