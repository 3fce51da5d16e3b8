//! The registry of policies: the runtime, the built-ins, and which uploaded version serves each tenant's slots;
//! upload, activation, deactivation and settings.
//!
//! `Policies` holds the runtime, the built-ins and, per tenant, the active uploaded version of each slot with
//! its failure count, plus the tenant's deadline and allowed regions. The tenant map is swapped whole
//! (`ArcSwap`) on every change, so a request reads one consistent snapshot without a lock and an activation
//! is atomic. Uploads are checked and compiled off the request path, one at a time. The decisions made with
//! these policies are in `decide.rs`, the failure counting in `quarantine.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::artifacts::ArtifactCache;
use super::builtin;
use super::compiler::CompileError;
use super::wasm::{self, PolicyFailure, Slot};
use crate::config::PolicyConfig;
use crate::storage::{ActivePolicyRow, Storage};

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
    pub(super) loaded: Option<Arc<Loaded>>,
    pub(super) failures: AtomicU32,
    pub(super) health: super::quarantine::Health,
    pub(super) quarantined: AtomicBool,
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

    /// Whether the tenant may be routed to a deployment in `region`.
    pub fn region_allowed(&self, region: &str) -> bool {
        self.allowed_regions
            .as_ref()
            .is_none_or(|r| r.iter().any(|a| a == region))
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

/// The runtime, the built-ins, and every tenant's active policies.
pub struct Policies {
    pub(super) runtime: Arc<wasm::Runtime>,
    pub(super) classifier: Arc<Loaded>,
    pub(super) router: Arc<Loaded>,
    tenants: ArcSwap<HashMap<String, Arc<TenantPolicies>>>,
    pub(super) config: PolicyConfig,
    artifacts: Option<ArtifactCache>,
    pub(super) storage: Option<Storage>,
    /// One compilation at a time: uploads cannot take both cores from the data plane.
    compile_gate: tokio::sync::Semaphore,
    /// Each tenant's compile lock: one compile per tenant at a time.
    compiling: crate::per_tenant::PerTenant<tokio::sync::Mutex<()>>,
    /// Serializes changes to the tenant map (reads never wait for it).
    change: tokio::sync::Mutex<()>,
    pub(super) quarantines: AtomicU32,
    /// Each tenant's CPU budget of policy calls.
    pub cpu: Arc<super::cpu::CpuBudgets>,
    /// The threads tenant policy calls run on, fair across tenants.
    pub pool: super::pool::Pool,
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
            cpu_clock: config.cpu_clock.unwrap_or(wasm::thread_cpu),
        })?;
        let artifacts = config.cache_dir.as_ref().and_then(|dir| {
            ArtifactCache::new(dir, cache_secret, runtime.engine())
                .map_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "no policy artifact cache: compiling at every start");
                })
                .ok()
        });
        let cpu = Arc::new(super::cpu::CpuBudgets::new(config.cpu_ms_per_second));
        let mut policies = Policies {
            classifier: Arc::new(
                load_cached(&runtime, config, artifacts.as_ref(), builtin::CLASSIFIER).await?,
            ),
            router: Arc::new(
                load_cached(&runtime, config, artifacts.as_ref(), builtin::ROUTER).await?,
            ),
            pool: super::pool::Pool::start(config.pool, runtime.limits().cpu_clock, cpu.clone())
                .map_err(|e| PolicyFailure::Engine(format!("the policy pool: {e}")))?,
            runtime: Arc::new(runtime),
            tenants: ArcSwap::from_pointee(HashMap::new()),
            config: config.clone(),
            artifacts,
            storage,
            compile_gate: tokio::sync::Semaphore::new(1),
            compiling: crate::per_tenant::PerTenant::default(),
            cpu,
            change: tokio::sync::Mutex::new(()),
            quarantines: AtomicU32::new(0),
        };
        if let Some(storage) = policies.storage.clone() {
            policies.restore(&storage).await?;
            for (tenant, ms) in storage
                .policy_cpu_overrides()
                .await
                .map_err(|e| PolicyFailure::Engine(e.to_string()))?
            {
                policies.cpu.set_own(&tenant, Some(ms));
            }
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
            health: super::quarantine::Health::default(),
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
    pub(super) fn deadline(&self, tenant: &TenantPolicies) -> Duration {
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
        // The same bytes compiled before (by any tenant, or before a restart) are not compiled again.
        let cached = self
            .artifacts
            .as_ref()
            .and_then(|c| c.get(self.runtime.engine(), &digest));
        let fresh = cached.is_none();
        let component = match cached {
            Some(c) => c,
            None => self.compile(tenant_id, &bytes).await?,
        };
        let policy = self.runtime.link(&component)?;
        if !policy.exports(slot) {
            return Err(UploadError::WrongWorld(slot));
        }
        self.runtime.check_export(&policy, slot)?;
        if let (true, Some(cache)) = (fresh, &self.artifacts) {
            cache.put(&digest, &component);
        }
        let storage = self.storage()?;
        let _change = self.change.lock().await;
        let version = storage
            .policy_upload(
                tenant_id,
                slot.as_str(),
                &digest,
                &bytes,
                uploaded_by,
                (self.config.max_versions, self.config.max_stored_bytes),
            )
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
            health: super::quarantine::Health::default(),
            quarantined: AtomicBool::new(false),
        });
        self.update(tenant_id, |t| t.with_slot(slot, Some(active)));
        Ok((version, digest))
    }

    /// Compiles one component at a time, within the compile timeout (see `compiler.rs`).
    /// Compiles an upload of `tenant_id`: one at a time per tenant, so a tenant's burst of uploads waits
    /// behind itself, and in the gate's first-come order across tenants.
    async fn compile(
        &self,
        tenant_id: &str,
        bytes: &[u8],
    ) -> Result<wasmtime::component::Component, UploadError> {
        let mine = self.compiling.get_or_default(tenant_id);
        let _mine = mine.lock().await;
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
                self.config.compile_memory_bytes,
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
            None => self.compile(tenant_id, &bytes).await?,
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
            health: super::quarantine::Health::default(),
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
                    config.compile_memory_bytes,
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
