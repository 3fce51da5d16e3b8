//! `App`: the shared state of a running gateway (keys, routing snapshot, admission, policies, audit log,
//! storage, metrics), how it is built from a validated `Config`, and how it reloads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use arc_swap::ArcSwap;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, BudgetSet, Clock, LimitSet, Scope};
use crate::audit::entry::Entry;
use crate::audit::{AuditLog, Signer};
use crate::auth::KeyStore;
use crate::config::{Config, ConfigError, Env, ServerConfig};
use crate::inference::LocalModels;
use crate::metrics::{self, Metrics};
use crate::policy::Policies;
use crate::providers::{BuildError, RoutingSnapshot};
use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Providers(#[from] BuildError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("audit log: {0}")]
    Audit(String),
    #[error("policies: {0}")]
    Policy(String),
}

/// Where the running config came from, so SIGHUP can read it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env: Env,
}

/// Shared state of a running gateway.
pub struct App {
    pub limits: ServerConfig,
    pub routing: ArcSwap<RoutingSnapshot>,
    /// Models loaded in this process, kept across routing reloads.
    pub local_models: Arc<LocalModels>,
    pub keys: KeyStore,
    pub storage: Storage,
    pub metrics: Metrics,
    pub audit: AuditLog,
    /// Rate limits, concurrency, token caps and budgets, in memory.
    pub admission: Admission,
    /// The Wasm runtime, the built-in policies and every tenant's uploaded ones.
    pub policies: Policies,
    /// The response cache: each tenant's answers, in memory and sealed in storage.
    pub cache: crate::cache::Cache,
    /// Work that outlives its request (audit entries of requests whose client left); awaited on shutdown.
    pub background: TaskTracker,
    /// Audit exports running now are bounded (`audit.max_concurrent_exports`): each holds a connection to
    /// the database and a page of the log in memory until its client has read it.
    pub exports: Arc<tokio::sync::Semaphore>,
    admin_token_sha256: [u8; 32],
    draining: AtomicBool,
    /// A phase that panics on purpose (`Phase::index() + 1`, 0 for none): how tests prove that a panic
    /// anywhere still leaves exactly one audit entry. Only `exchange::inject_panic` sets it.
    pub(crate) panic_at: AtomicU8,
    source: ConfigSource,
}

impl App {
    /// Opens storage and the audit log, loads keys, routing, policies, limits and budgets.
    pub async fn build(
        config: &Config,
        source: ConfigSource,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StartError> {
        let storage = Storage::open(
            &config.storage.url,
            config.storage.max_connections,
            config.storage.durability,
        )
        .await?;
        let keys = KeyStore::new(
            config.auth.pepper.expose().as_bytes(),
            storage.list_keys(None).await?,
        );
        let local_models = Arc::new(LocalModels::default());
        let routing = RoutingSnapshot::build(&config.routing, &local_models)?;
        let audit = open_audit(config, &storage).await?;
        let policies = Policies::load(
            &config.policies,
            config.auth.pepper.expose().as_bytes(),
            Some(storage.clone()),
        )
        .await
        .map_err(|e| StartError::Policy(e.to_string()))?;
        let cache = open_cache(config, &storage, &audit, clock.clone()).await?;
        let admission = Admission::new(clock);
        restore_admission(&storage, &audit, &admission).await?;
        let metrics = Metrics::new();
        for tenant in storage.list_tenants().await? {
            metrics.name_tenant(&tenant.id, &tenant.name);
        }
        Ok(App {
            limits: config.server.clone(),
            routing: ArcSwap::from_pointee(routing),
            local_models,
            keys,
            storage,
            metrics,
            audit,
            admission,
            policies,
            cache,
            background: TaskTracker::new(),
            exports: Arc::new(tokio::sync::Semaphore::new(
                config.audit.max_concurrent_exports,
            )),
            admin_token_sha256: config.admin.token_sha256,
            draining: AtomicBool::new(false),
            panic_at: AtomicU8::new(0),
            source,
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Readiness goes false: the gateway is shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn admin_token_sha256(&self) -> &[u8; 32] {
        &self.admin_token_sha256
    }

    /// Whether the request carries the operator token.
    pub fn is_operator(&self, headers: &http::HeaderMap) -> bool {
        crate::auth::bearer(headers)
            .is_ok_and(|t| crate::auth::operator_token_matches(t, &self.admin_token_sha256))
    }

    /// Validates a new config and swaps the routing snapshot atomically. On error the old snapshot stays.
    pub fn reload(&self, config: &Config) -> Result<(), BuildError> {
        let snapshot = RoutingSnapshot::build(&config.routing, &self.local_models)?;
        self.routing.store(Arc::new(snapshot));
        Ok(())
    }

    /// Re-reads the config file (SIGHUP). Failures are logged and counted; the old snapshot keeps serving.
    pub fn reload_from_source(&self) -> Result<(), String> {
        let Some(path) = &self.source.path else {
            return Err("the gateway was started without a config file".to_owned());
        };
        let outcome = Config::load(path, &self.source.env)
            .map_err(|e: ConfigError| e.to_string())
            .and_then(|c| self.reload(&c).map_err(|e| e.to_string()));
        let code = if outcome.is_ok() { "ok" } else { "invalid" };
        self.metrics
            .config_reloads
            .get_or_create(&metrics::ErrorLabels { code })
            .inc();
        match &outcome {
            Ok(()) => tracing::info!(path = %path.display(), "routing snapshot reloaded"),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "config reload rejected; keeping the old routing snapshot")
            }
        }
        outcome
    }

    /// Sets a tenant's content retention (durably). Zero also erases the tenant's cached answers at once,
    /// in memory and in storage: a tenant that keeps no content keeps no answers either. Returns false for
    /// an unknown tenant.
    pub async fn set_retention(&self, tenant: &str, days: u32) -> Result<bool, StorageError> {
        if !self.audit.set_retention(tenant, days).await? {
            return Ok(false);
        }
        if days == 0 {
            // After the retention is in memory: a lookup from now on bypasses the cache, and a miss from
            // before stores nothing once the erasure has bumped the tenant's epoch.
            self.cache.erase(tenant).await?;
        }
        Ok(true)
    }

    /// Retention as of `now` (unix seconds): audit content past each tenant's retention is deleted, and so
    /// is the cache of any tenant that keeps no content. Returns the audit rows deleted.
    pub async fn prune(&self, now: i64) -> Result<u64, StorageError> {
        let deleted = self.audit.prune(now).await?;
        for tenant in self.cache.tenants_with_entries() {
            if self.audit.retention_days(&tenant) == 0 {
                self.cache.erase(&tenant).await?;
            }
        }
        Ok(deleted)
    }

    /// The end of a drain, once no request is in flight: what budget covers hold beyond that goes back (so
    /// the next start charges only requests whose outcome is unknown), the audit queue is flushed and
    /// storage closed.
    pub async fn close(&self) {
        self.background.close();
        self.background.wait().await;
        let slack = self.admission.release_covers();
        if !slack.is_empty()
            && let Err(e) = crate::admission::cover::lower(&self.audit, slack).await
        {
            tracing::error!(error = %e, "budget covers could not be lowered; the next start charges them");
        }
        self.cache.flush().await;
        self.audit.flush().await;
        self.storage.close().await;
    }
}

/// The response cache, its entries read back from storage (sealed under a key derived from the audit
/// master key).
async fn open_cache(
    config: &Config,
    storage: &Storage,
    audit: &AuditLog,
    clock: Arc<dyn Clock>,
) -> Result<crate::cache::Cache, StartError> {
    let master_key = crate::audit::key32_from_text(config.audit.master_key.expose())
        .ok_or_else(|| StartError::Audit("the master key is not base64 of 32 bytes".to_owned()))?;
    let writer = crate::cache::persist::Writer::start(storage.clone(), &master_key);
    // Searches run on the runtime's workers: one search slot each, and one for a thread outside it.
    let threads =
        tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers()) + 1;
    let cache = crate::cache::Cache::new(config.cache, clock, threads, Some(writer));
    // A tenant that keeps no content keeps no cached answers either.
    let restored =
        crate::cache::persist::restore(&cache, storage, |t| audit.retention_days(t) > 0).await?;
    if restored > 0 {
        tracing::info!(entries = restored, "response cache restored");
    }
    Ok(cache)
}

async fn open_audit(config: &Config, storage: &Storage) -> Result<AuditLog, StartError> {
    let signing_key = crate::audit::signing_key_from_text(config.audit.signing_key.expose())
        .ok_or_else(|| {
            StartError::Audit("the signing key is not a base64 32-byte seed".to_owned())
        })?;
    let master_key = crate::audit::key32_from_text(config.audit.master_key.expose())
        .ok_or_else(|| StartError::Audit("the master key is not base64 of 32 bytes".to_owned()))?;
    let witnesses = crate::witness::client::start(storage.clone(), &config.audit.witnesses)
        .map_err(StartError::Audit)?
        .map(|tx| (tx, config.audit.witnesses.len()));
    let options = crate::audit::LogOptions {
        default_retention_days: config.audit.retention_days,
        batch_max: config.audit.batch_max,
        checkpoint_interval: config.audit.checkpoint_interval,
        heads: crate::audit::heads::SignedHeads::open(&config.audit.heads_dir)
            .map_err(|e| StartError::Audit(e.to_string()))?,
        witnesses,
    };
    let (audit, _writer) = AuditLog::open(
        storage.clone(),
        Signer::new(config.audit.origin.clone(), signing_key),
        crate::audit::content::Sealer::new(master_key),
        options,
    )
    .await
    .map_err(|e| match e {
        crate::audit::OpenError::Storage(e) => StartError::Storage(e),
        crate::audit::OpenError::Heads(e) => StartError::Audit(e.to_string()),
    })?;
    Ok(audit)
}

/// Loads limits and budgets, charges what budget covers still hold (requests a previous run left in flight,
/// at their full amount, in an audit entry per cover), then rebuilds the current windows' spend from the
/// durable daily totals.
async fn restore_admission(
    storage: &Storage,
    audit: &AuditLog,
    admission: &Admission,
) -> Result<(), StartError> {
    for (tenant, scope, json) in storage.admission_limits().await? {
        match (
            Scope::decode(&scope),
            serde_json::from_str::<LimitSet>(&json),
        ) {
            (Some(scope), Ok(limits)) => admission.set_limits(&tenant, &scope, limits),
            _ => {
                tracing::error!(tenant = %tenant, scope = %scope, "unreadable stored limits ignored")
            }
        }
    }
    for (tenant, scope, daily, monthly) in storage.admission_budgets().await? {
        let budget = BudgetSet {
            daily_micro_usd: daily,
            monthly_micro_usd: monthly,
        };
        match Scope::decode(&scope) {
            Some(Scope::Tenant) => admission.set_budget(&tenant, None, budget),
            Some(Scope::Key(key)) => admission.set_budget(&tenant, Some(&key), budget),
            _ => {
                tracing::error!(tenant = %tenant, scope = %scope, "unreadable stored budget ignored")
            }
        }
    }
    for c in storage.open_covers().await? {
        // The gateway stopped with requests in flight under this cover: they may have cost all of it.
        let entry = Entry {
            subject: "usage:cover".to_owned(),
            status: 500,
            error_code: "interrupted".to_owned(),
            cost_micro_usd: c.micro_usd,
            ..Entry::request(&c.tenant_id, &c.key_id, &c.endpoint)
        };
        audit
            .append_settling(entry, None, c.micro_usd)
            .await
            .map_err(|e| StartError::Audit(format!("charging a budget cover: {e}")))?;
        tracing::warn!(tenant = %c.tenant_id, key = %c.key_id, endpoint = %c.endpoint, micro_usd = c.micro_usd, "requests interrupted by a restart charged at their budget cover");
    }
    let today = crate::admission::window::day_of(admission.clock().now_ns());
    let month_start = crate::admission::window::month_start(today);
    for row in storage.spend_since(None, month_start).await? {
        if row.damaged {
            tracing::error!(tenant = %row.tenant_id, key = %row.key_id, day = row.day, "a spend_daily row holds a value that is not a count: its key's budget counts as spent until an operator repairs the row");
        }
        admission.record_spend(&row.tenant_id, &row.key_id, row.day, row.micro_usd);
    }
    Ok(())
}
