//! The response cache, tenant-scoped by construction: each tenant has a shelf of its own (entries, an exact
//! map and one semantic index per model family and embedding model), so no lookup can reach another
//! tenant's answers, whatever the keys or the vectors.
//!
//! - [`key`]: the bypass rules, the exact key and the context key of a request.
//! - [`index`]: one usearch graph (cosine, f16) of a tenant's questions.
//! - [`guard`]: the lexical guard that refuses a semantic hit whose numbers, negations, entities or units
//!   differ.
//! - [`replay`]: stored completions, the body of a hit and its replay as a stream.
//! - [`persist`]: entries sealed in the database, and the writer that keeps it up to date.
//!
//! An exact hit needs the same exact key; a semantic hit needs the same context key and a similarity of at
//! least the threshold between the questions (their embeddings' cosine on the embedder's scale,
//! `1 - (1 - cosine) / scale`), and passes the guard. Only answers that completed are stored
//! ([`Answer::complete`]). Entries expire after the tenant's TTL (the sweeper removes them from memory and
//! storage within a second of it), and the least recently used entry of a full index makes room. Entry ids
//! are random, so an id says nothing of any other tenant's activity.

pub mod eval;
pub mod guard;
pub mod index;
pub mod key;
pub mod persist;
pub mod replay;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::admission::Clock;
pub use crate::config::CacheConfig;
use crate::config::Tier;
use index::SemanticIndex;
use key::{Key, Plan, Rules, TenantSecret};

/// What the cache phase did for a request, as reported in `x-sluice-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::HitExact => "hit-exact",
            CacheStatus::HitSemantic => "hit-semantic",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// A tenant's settings (`PUT /v1/cache/settings`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub enabled: bool,
    /// The similarity a semantic hit needs, in [0.90, 0.99].
    pub threshold: f64,
    /// How long an answer is served, in seconds.
    pub ttl_secs: u64,
    /// Whether answers sampled at `temperature > 0` are cached (and served for later such requests).
    pub cache_sampled: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            threshold: 0.95,
            ttl_secs: 86_400,
            cache_sampled: false,
        }
    }
}

pub const THRESHOLD_RANGE: std::ops::RangeInclusive<f64> = 0.90..=0.99;
/// From one second to 30 days.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 1..=30 * 86_400;

impl Settings {
    /// `Err` names the field out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !THRESHOLD_RANGE.contains(&self.threshold) {
            return Err((
                "threshold",
                format!(
                    "`threshold` must be between {} and {}",
                    THRESHOLD_RANGE.start(),
                    THRESHOLD_RANGE.end()
                ),
            ));
        }
        if !TTL_RANGE.contains(&self.ttl_secs) {
            return Err((
                "ttl_secs",
                format!(
                    "`ttl_secs` must be between {} and {}",
                    TTL_RANGE.start(),
                    TTL_RANGE.end()
                ),
            ));
        }
        Ok(())
    }

    pub fn rules(&self) -> Rules {
        Rules {
            enabled: self.enabled,
            cache_sampled: self.cache_sampled,
        }
    }
}

/// A stored answer: the completion and who made it. Made only by [`Answer::complete`] (or read back from
/// storage), so the cache holds nothing that did not complete.
#[derive(Debug, Clone)]
#[expect(
    clippy::manual_non_exhaustive,
    reason = "`non_exhaustive` binds other crates only; the private field binds the rest of this one"
)]
pub struct Answer {
    pub body: Bytes,
    pub deployment: String,
    pub tier: Tier,
    /// Keeps construction inside this module.
    #[expect(
        dead_code,
        reason = "a private field, so no code outside the cache makes an Answer"
    )]
    checked: (),
}

impl Answer {
    /// The answer `body` (whose parsed form is `json`), if it is one the cache may keep
    /// ([`replay::completed`]): `own_cap` says whether the output cap the upstream got was the client's own
    /// (see [`Pending::cap_lowered`]).
    pub fn complete(
        json: &serde_json::Value,
        body: Bytes,
        deployment: String,
        tier: Tier,
        own_cap: bool,
    ) -> Option<Answer> {
        replay::completed(json, own_cap).then_some(Answer {
            body,
            deployment,
            tier,
            checked: (),
        })
    }
}

/// The entry that answered a request.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: u64,
    pub answer: Arc<Answer>,
    /// The questions' similarity (on the embedder's scale), for a semantic hit.
    pub similarity: Option<f32>,
}

/// A request's embedding and the model that made it.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub embedder: &'a str,
}

/// The questions a semantic lookup considers: the nearest entries of the same context.
const CANDIDATES: usize = 4;
/// Expired entries are swept at most this often (milliseconds of the clock), on a store.
const SWEEP_EVERY_MS: u64 = 60_000;

/// One tenant's counters and size (`GET /v1/cache`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    /// Bytes of stored answers.
    pub bytes: u64,
    /// Bytes of the semantic indexes (graphs and f16 vectors).
    pub index_bytes: u64,
    pub hits_exact: u64,
    pub hits_semantic: u64,
    pub misses: u64,
    pub bypasses: u64,
}

/// The in-memory cache of every tenant, and its durable copy.
pub struct Cache {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    /// Search slots per index: as many threads as may search at once.
    threads: usize,
    /// What each tenant's key secret is derived from.
    key_master: [u8; 32],
    tenants: crate::per_tenant::PerTenant<TenantCache>,
    persist: Option<persist::Writer>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct TenantCache {
    /// The tenant's secret its cache keys are made under.
    secret: TenantSecret,
    settings: Mutex<Settings>,
    shelf: Mutex<Shelf>,
    /// Bumped by each erasure: a miss that started before it stores nothing after it.
    epoch: AtomicU64,
    hits_exact: AtomicU64,
    hits_semantic: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
}

/// Which index an entry belongs to: the model family and the embedding model (none: exact tier only).
type Bucket = (String, Option<String>);

#[derive(Default)]
struct Shelf {
    entries: HashMap<u64, Stored>,
    /// (creation time, id) of every entry, oldest first: what the sweeper drops.
    by_age: BTreeSet<(u64, u64)>,
    exact: HashMap<Key, u64>,
    buckets: HashMap<Bucket, Lane>,
    bytes: u64,
    tick: u64,
    last_sweep_ms: u64,
}

/// One bucket's entries in LRU order, and its semantic index.
#[derive(Default)]
struct Lane {
    /// Last use tick → entry id, oldest first.
    lru: BTreeMap<u64, u64>,
    index: Option<Arc<SemanticIndex>>,
}

struct Stored {
    bucket: Bucket,
    exact: Key,
    question: Option<String>,
    answer: Arc<Answer>,
    created_ms: u64,
    tick: u64,
}

impl Stored {
    fn bytes(&self) -> u64 {
        (self.answer.body.len() + self.question.as_ref().map_or(0, String::len)) as u64
    }
}

/// What a miss keeps until its answer is stored.
#[derive(Debug, Clone)]
pub struct Pending {
    pub plan: Plan,
    pub vector: Option<(Vec<f32>, String)>,
    epoch: u64,
    /// Whether the output cap forwarded is the one the keys describe (the client's).
    own_cap: bool,
}

impl Pending {
    /// The gateway lowered (or set) the output cap the upstream gets, below what the keys describe (a
    /// budget's reservation): an answer that the cap cut short (`length`) is not stored.
    pub fn cap_lowered(&mut self) {
        self.own_cap = false;
    }

    /// Whether the upstream got the client's own output cap.
    pub fn own_cap(&self) -> bool {
        self.own_cap
    }
}

/// An entry as it is persisted and restored.
#[derive(Debug, Clone)]
pub struct Restored {
    pub tenant: String,
    pub id: u64,
    pub family: String,
    pub embedder: Option<String>,
    pub exact: Key,
    pub context: Key,
    pub question: Option<String>,
    pub vector: Option<Vec<f32>>,
    pub answer: Answer,
    pub created_ms: u64,
}

impl Cache {
    /// An empty cache; `persist` keeps entries in the database (and `restore` reads them back).
    pub fn new(
        config: CacheConfig,
        clock: Arc<dyn Clock>,
        threads: usize,
        persist: Option<persist::Writer>,
    ) -> Cache {
        // Keys that outlive the process must be made under the key the stored entries were; a cache that
        // persists nothing needs no more than a secret of this process.
        let key_master = persist.as_ref().map_or_else(
            || {
                let mut random = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
                random
            },
            persist::Writer::key_master,
        );
        Cache {
            config,
            clock,
            threads: threads.max(1),
            key_master,
            tenants: crate::per_tenant::PerTenant::default(),
            persist,
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ns() / 1_000_000
    }

    fn tenant(&self, tenant: &str) -> Arc<TenantCache> {
        self.tenants.get_or_insert_with(tenant, || TenantCache {
            secret: tenant_secret(&self.key_master, tenant),
            settings: Mutex::default(),
            shelf: Mutex::default(),
            epoch: AtomicU64::new(0),
            hits_exact: AtomicU64::new(0),
            hits_semantic: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypasses: AtomicU64::new(0),
        })
    }

    /// The request's plan under the tenant's `settings` (as `settings` read them) and key secret, or why it
    /// bypasses the cache. `Err` is a malformed threshold header.
    pub fn plan(
        &self,
        tenant: &str,
        settings: &Settings,
        chat: &crate::wire::ChatRequest,
        headers: &http::HeaderMap,
        family: String,
    ) -> Result<Result<Plan, key::Bypass>, key::BadThreshold> {
        key::plan(
            chat,
            headers,
            family,
            settings.rules(),
            &self.tenant(tenant).secret,
        )
    }

    /// The tenant's settings, with the operator's switch applied.
    pub fn settings(&self, tenant: &str) -> Settings {
        let mut s = *lock(&self.tenant(tenant).settings);
        s.enabled &= self.config.enabled;
        s
    }

    /// The tenant's own settings (without the operator's switch).
    pub fn tenant_settings(&self, tenant: &str) -> Settings {
        *lock(&self.tenant(tenant).settings)
    }

    /// Replaces the tenant's settings, durably when the cache is persisted. `Err` names the field out of
    /// range, or is the database's failure.
    pub async fn set_settings(&self, tenant: &str, settings: Settings) -> Result<(), SetError> {
        settings
            .check()
            .map_err(|(field, message)| SetError::Invalid { field, message })?;
        if let Some(p) = &self.persist {
            p.settings(tenant, &settings)
                .await
                .map_err(SetError::Storage)?;
        }
        *lock(&self.tenant(tenant).settings) = settings;
        // A shorter TTL applies to what is stored now: the next lookup or sweep drops what is older.
        Ok(())
    }

    /// Restores a tenant's settings at start.
    pub fn restore_settings(&self, tenant: &str, settings: Settings) {
        *lock(&self.tenant(tenant).settings) = settings;
    }

    /// Counts one request's outcome for `GET /v1/cache`.
    pub fn count(&self, tenant: &str, status: CacheStatus) {
        let t = self.tenant(tenant);
        let counter = match status {
            CacheStatus::HitExact => &t.hits_exact,
            CacheStatus::HitSemantic => &t.hits_semantic,
            CacheStatus::Miss => &t.misses,
            CacheStatus::Bypass => &t.bypasses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The entry stored under the plan's exact key, if it is still fresh.
    pub fn lookup_exact(&self, tenant: &str, plan: &Plan) -> Option<Hit> {
        let t = self.tenant(tenant);
        let ttl_ms = lock(&t.settings).ttl_secs.saturating_mul(1000);
        let now = self.now_ms();
        let mut shelf = lock(&t.shelf);
        let id = *shelf.exact.get(&plan.exact)?;
        shelf.fresh_hit(id, now, ttl_ms, None)
    }

    /// The most similar stored question of the plan's context, at `threshold` or above, that the guard
    /// (when `guarded`) lets through.
    pub fn lookup_semantic(
        &self,
        tenant: &str,
        plan: &Plan,
        query: Query<'_>,
        threshold: f32,
        guarded: bool,
    ) -> Option<Hit> {
        let asked = plan.question.as_deref()?;
        let t = self.tenant(tenant);
        let ttl_ms = lock(&t.settings).ttl_secs.saturating_mul(1000);
        let bucket = (plan.family.clone(), Some(query.embedder.to_owned()));
        let index = lock(&t.shelf).buckets.get(&bucket)?.index.clone()?;
        // The search runs outside the shelf's lock: stores and other lookups of the tenant go on meanwhile.
        let near = match index.search(query.vector, CANDIDATES, &plan.context) {
            Ok(near) => near,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "semantic cache search failed");
                return None;
            }
        };
        // The embedder's cosine, read on the cache's similarity scale (see `similarity_scale`).
        let scale = crate::inference::catalog::similarity_scale(query.embedder);
        let similarity = |cosine: f32| 1.0 - (1.0 - cosine) / scale;
        let now = self.now_ms();
        let mut shelf = lock(&t.shelf);
        for n in near
            .into_iter()
            .filter(|n| similarity(n.similarity) >= threshold)
        {
            let Some(stored) = shelf.entries.get(&n.id) else {
                continue;
            };
            let refused = guarded
                && stored
                    .question
                    .as_deref()
                    .is_none_or(|q| guard::conflict(q, asked).is_some());
            if refused {
                continue;
            }
            if let Some(hit) = shelf.fresh_hit(n.id, now, ttl_ms, Some(similarity(n.similarity))) {
                return Some(hit);
            }
        }
        None
    }

    /// What a miss keeps for `store`.
    pub fn pending(&self, tenant: &str, plan: Plan, vector: Option<(Vec<f32>, String)>) -> Pending {
        Pending {
            plan,
            vector,
            epoch: self.tenant(tenant).epoch.load(Ordering::Acquire),
            own_cap: true,
        }
    }

    /// Stores a miss's answer (one that completed: [`Answer::complete`]), unless the tenant's cache was
    /// erased since the miss, the answer is too big, or the cache is off. Evicts the least recently used
    /// entry of a full index.
    pub fn store(&self, tenant: &str, pending: Pending, answer: Answer) {
        if answer.body.len() > self.config.max_entry_bytes || !self.settings(tenant).enabled {
            return;
        }
        let t = self.tenant(tenant);
        let ttl_ms = lock(&t.settings).ttl_secs.saturating_mul(1000);
        let now = self.now_ms();
        let Pending {
            plan,
            vector,
            epoch,
            own_cap: _,
        } = pending;
        let answer = Arc::new(answer);
        let mut shelf = lock(&t.shelf);
        // Checked under the shelf's lock, which erasure takes too.
        if t.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if now.saturating_sub(shelf.last_sweep_ms) >= SWEEP_EVERY_MS {
            shelf.last_sweep_ms = now;
            let expired = shelf.sweep(now, ttl_ms);
            self.forget(tenant, expired);
        }
        if let Some(old) = shelf.exact.get(&plan.exact).copied() {
            // The same request again (a `no-cache` refetch): the new answer replaces the old.
            shelf.remove(old);
            self.forget(tenant, vec![old]);
        }
        let embedder = vector.as_ref().map(|(_, d)| d.clone());
        let bucket = (plan.family.clone(), embedder.clone());
        let lane = shelf.buckets.entry(bucket.clone()).or_default();
        let mut evicted = Vec::new();
        while lane.lru.len() >= self.config.max_entries {
            let Some((_, oldest)) = lane.lru.pop_first() else {
                break;
            };
            evicted.push(oldest);
        }
        for old in &evicted {
            shelf.remove(*old);
        }
        self.forget(tenant, evicted);
        let id = shelf.fresh_id();
        if let (Some((v, _)), Some(_)) = (&vector, &plan.question)
            && let Err(e) = shelf
                .index_for(&bucket, v.len(), self.threads)
                .and_then(|index| index.add(id, v, plan.context))
        {
            tracing::warn!(tenant = %tenant, error = %e, "semantic cache insert failed; exact tier only");
        }
        shelf.insert(
            id,
            Stored {
                bucket,
                exact: plan.exact,
                question: plan.question.clone(),
                answer: answer.clone(),
                created_ms: now,
                tick: 0,
            },
        );
        if let Some(p) = &self.persist {
            p.put(Restored {
                tenant: tenant.to_owned(),
                id,
                family: plan.family,
                embedder,
                exact: plan.exact,
                context: plan.context,
                question: plan.question,
                vector: vector.map(|(v, _)| v),
                answer: Answer::clone(&answer),
                created_ms: now,
            });
        }
    }

    /// Puts back an entry read from the database at start; expired ones are left out (and `false`).
    pub fn restore(&self, entry: Restored) -> bool {
        let t = self.tenant(&entry.tenant);
        let ttl_ms = lock(&t.settings).ttl_secs.saturating_mul(1000);
        if self.now_ms().saturating_sub(entry.created_ms) > ttl_ms {
            return false;
        }
        let bucket = (entry.family, entry.embedder);
        let mut shelf = lock(&t.shelf);
        if shelf.entries.contains_key(&entry.id) {
            return false;
        }
        if let (Some(v), Some(_)) = (&entry.vector, &entry.question)
            && let Err(e) = shelf
                .index_for(&bucket, v.len(), self.threads)
                .and_then(|index| index.add(entry.id, v, entry.context))
        {
            tracing::warn!(tenant = %entry.tenant, error = %e, "a restored cache entry's vector was refused");
        }
        shelf.insert(
            entry.id,
            Stored {
                bucket,
                exact: entry.exact,
                question: entry.question,
                answer: Arc::new(entry.answer),
                created_ms: entry.created_ms,
                tick: 0,
            },
        );
        true
    }

    /// Empties the tenant's cache, in memory at once and durably before it returns. Returns the entries
    /// dropped from memory.
    pub async fn erase(&self, tenant: &str) -> Result<u64, crate::storage::StorageError> {
        let t = self.tenant(tenant);
        let dropped = {
            let mut shelf = lock(&t.shelf);
            t.epoch.fetch_add(1, Ordering::AcqRel);
            let n = shelf.entries.len() as u64;
            *shelf = Shelf::default();
            n
        };
        if let Some(p) = &self.persist {
            p.erase(tenant).await?;
        }
        Ok(dropped)
    }

    /// Drops every tenant's expired entries, from memory and (queued) from storage. Returns how many.
    pub fn sweep_expired(&self) -> usize {
        let tenants = self.tenants.all();
        let now = self.now_ms();
        let mut swept = 0;
        for (tenant, t) in tenants {
            let tenant = tenant.to_string();
            let ttl_ms = lock(&t.settings).ttl_secs.saturating_mul(1000);
            let expired = lock(&t.shelf).sweep(now, ttl_ms);
            swept += expired.len();
            self.forget(&tenant, expired);
        }
        swept
    }

    /// The tenants that have entries in memory.
    pub fn tenants_with_entries(&self) -> Vec<String> {
        self.tenants
            .all()
            .into_iter()
            .filter(|(_, t)| !lock(&t.shelf).entries.is_empty())
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Writes what is queued for the database; returns once it is durable.
    pub async fn flush(&self) {
        if let Some(p) = &self.persist {
            p.flush().await;
        }
    }

    pub fn stats(&self, tenant: &str) -> Stats {
        let t = self.tenant(tenant);
        let (entries, bytes, index_bytes) = {
            let shelf = lock(&t.shelf);
            let index_bytes: usize = shelf
                .buckets
                .values()
                .filter_map(|l| l.index.as_ref())
                .map(|i| i.memory_usage())
                .sum();
            (shelf.entries.len() as u64, shelf.bytes, index_bytes as u64)
        };
        Stats {
            entries,
            bytes,
            index_bytes,
            hits_exact: t.hits_exact.load(Ordering::Relaxed),
            hits_semantic: t.hits_semantic.load(Ordering::Relaxed),
            misses: t.misses.load(Ordering::Relaxed),
            bypasses: t.bypasses.load(Ordering::Relaxed),
        }
    }

    /// Every tenant's stats, for `/metrics`.
    pub fn all_stats(&self) -> Vec<(String, Stats)> {
        self.tenants
            .all()
            .into_iter()
            .map(|(id, _)| {
                let stats = self.stats(&id);
                (id.to_string(), stats)
            })
            .collect()
    }

    /// Tells the database that entries left memory (expired, evicted or replaced).
    fn forget(&self, tenant: &str, ids: Vec<u64>) {
        if let (Some(p), false) = (&self.persist, ids.is_empty()) {
            p.delete(tenant, ids);
        }
    }
}

/// The tenant's secret for its cache keys: HKDF-SHA256 of the cache's key master, bound to the tenant.
fn tenant_secret(master: &[u8; 32], tenant: &str) -> TenantSecret {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sluice-cache-keys"), master);
    let mut secret = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(tenant.as_bytes(), &mut secret);
    TenantSecret::new(secret)
}

impl Shelf {
    /// A random id no entry of the shelf has, below 2^63 (it is stored as a signed integer).
    fn fresh_id(&self) -> u64 {
        loop {
            let id = rand::random::<u64>() >> 1;
            if id != 0 && !self.entries.contains_key(&id) {
                return id;
            }
        }
    }

    /// A hit on `id` if it is fresh (it becomes the most recently used).
    fn fresh_hit(
        &mut self,
        id: u64,
        now: u64,
        ttl_ms: u64,
        similarity: Option<f32>,
    ) -> Option<Hit> {
        let stored = self.entries.get(&id)?;
        if now.saturating_sub(stored.created_ms) > ttl_ms {
            // Expired: never served; the sweeper removes it from memory and storage.
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let stored = self.entries.get_mut(&id)?;
        let old = std::mem::replace(&mut stored.tick, tick);
        let answer = stored.answer.clone();
        if let Some(lane) = self.buckets.get_mut(&stored.bucket) {
            lane.lru.remove(&old);
            lane.lru.insert(tick, id);
        }
        Some(Hit {
            id,
            answer,
            similarity,
        })
    }

    fn index_for(
        &mut self,
        bucket: &Bucket,
        dims: usize,
        threads: usize,
    ) -> Result<Arc<SemanticIndex>, index::IndexError> {
        let lane = self.buckets.entry(bucket.clone()).or_default();
        if let Some(index) = lane.index.as_ref().filter(|i| i.dims() == dims) {
            return Ok(index.clone());
        }
        let index = Arc::new(SemanticIndex::new(dims, threads)?);
        lane.index = Some(index.clone());
        Ok(index)
    }

    fn insert(&mut self, id: u64, mut stored: Stored) {
        self.tick += 1;
        stored.tick = self.tick;
        self.bytes += stored.bytes();
        self.by_age.insert((stored.created_ms, id));
        self.exact.insert(stored.exact, id);
        self.buckets
            .entry(stored.bucket.clone())
            .or_default()
            .lru
            .insert(stored.tick, id);
        self.entries.insert(id, stored);
    }

    fn remove(&mut self, id: u64) {
        let Some(stored) = self.entries.remove(&id) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(stored.bytes());
        self.by_age.remove(&(stored.created_ms, id));
        if self.exact.get(&stored.exact) == Some(&id) {
            self.exact.remove(&stored.exact);
        }
        if let Some(lane) = self.buckets.get_mut(&stored.bucket) {
            lane.lru.remove(&stored.tick);
            if let Some(index) = &lane.index {
                index.remove(id);
                // Removed slots stay in the graph until a compaction drops them.
                if index.removed() >= index.len().max(1024)
                    && let Err(e) = index.compact()
                {
                    tracing::warn!(error = %e, "semantic index compaction failed");
                }
            }
        }
    }

    /// Drops every expired entry (the oldest first, stopping at the first fresh one); returns their ids.
    fn sweep(&mut self, now: u64, ttl_ms: u64) -> Vec<u64> {
        let expired: Vec<u64> = self
            .by_age
            .iter()
            .take_while(|(created, _)| now.saturating_sub(*created) > ttl_ms)
            .map(|(_, id)| *id)
            .collect();
        for id in &expired {
            self.remove(*id);
        }
        expired
    }
}

/// Why settings were not changed.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Storage(crate::storage::StorageError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admission::clock::ManualClock;
    use crate::wire::ChatRequest;

    fn cache(clock: Arc<ManualClock>, max_entries: usize) -> Cache {
        let config = CacheConfig {
            enabled: true,
            max_entries,
            ..CacheConfig::default()
        };
        Cache::new(config, clock, 2, None)
    }

    fn plan(messages: serde_json::Value) -> Plan {
        let chat: ChatRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": messages}))
                .unwrap();
        key::plan(
            &chat,
            &http::HeaderMap::new(),
            "m".to_owned(),
            Settings::default().rules(),
            &key::TenantSecret::new([3; 32]),
        )
        .unwrap()
        .unwrap()
    }

    fn ask(q: &str) -> Plan {
        plan(serde_json::json!([{"role": "user", "content": q}]))
    }

    fn answer(text: &str) -> Answer {
        Answer {
            body: Bytes::from(text.to_owned()),
            deployment: "d".to_owned(),
            tier: Tier::Simple,
            checked: (),
        }
    }

    /// A unit vector for a small seed, close to others of nearby seeds.
    fn vector(seed: u32) -> Vec<f32> {
        let a = seed as f32 / 50.0;
        vec![a.cos(), a.sin(), 0.2, 0.1]
    }

    fn store(c: &Cache, tenant: &str, p: &Plan, v: Option<Vec<f32>>, text: &str) {
        let pending = c.pending(tenant, p.clone(), v.map(|v| (v, "e".to_owned())));
        c.store(tenant, pending, answer(text));
    }

    fn query(v: &[f32]) -> Query<'_> {
        Query {
            vector: v,
            embedder: "e",
        }
    }

    #[test]
    fn the_same_prompt_under_two_tenants_never_crosses_at_any_threshold() {
        let c = cache(Arc::new(ManualClock::new(0)), 1000);
        // Random prompts, each stored for tenant A only; B asks each one, exactly and by its vector.
        let mut seed = 0x9e37_79b9_u32;
        for i in 0..200u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let prompt = format!("question {seed} #{i}");
            let p = ask(&prompt);
            let v = vector(seed % 300);
            store(&c, "tenant-a", &p, Some(v.clone()), &prompt);
            assert!(c.lookup_exact("tenant-b", &p).is_none());
            for threshold in [0.0, 0.5, 0.9, 0.95, 0.99] {
                assert!(
                    c.lookup_semantic("tenant-b", &p, query(&v), threshold, false)
                        .is_none()
                );
            }
            assert!(c.lookup_exact("tenant-a", &p).is_some());
        }
        assert_eq!(c.stats("tenant-b").entries, 0);
        assert_eq!(c.stats("tenant-a").entries, 200);
    }

    #[test]
    fn a_semantic_hit_needs_the_same_context_and_passes_the_guard() {
        let c = cache(Arc::new(ManualClock::new(0)), 1000);
        let stored = ask("How do I reset my password?");
        store(&c, "t", &stored, Some(vector(10)), "reset it here");
        let paraphrase = ask("How can I reset my password?");
        let hit = c
            .lookup_semantic("t", &paraphrase, query(&vector(10)), 0.95, true)
            .unwrap();
        assert_eq!(&hit.answer.body[..], b"reset it here");
        assert!(hit.similarity.unwrap() > 0.99);
        // Another system prompt: another context key, no hit even for the same vector.
        let other = plan(serde_json::json!([
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "How can I reset my password?"},
        ]));
        assert!(
            c.lookup_semantic("t", &other, query(&vector(10)), 0.5, false)
                .is_none()
        );
        // The guard refuses a negation, a number that differs.
        store(
            &c,
            "t",
            &ask("Is the pool open on Sundays?"),
            Some(vector(100)),
            "yes",
        );
        let flipped = ask("Is the pool not open on Sundays?");
        assert!(
            c.lookup_semantic("t", &flipped, query(&vector(100)), 0.9, true)
                .is_none()
        );
        assert!(
            c.lookup_semantic("t", &flipped, query(&vector(100)), 0.9, false)
                .is_some(),
            "without the guard the vector alone would serve it"
        );
        store(
            &c,
            "t",
            &ask("Price of the plan for 5 users?"),
            Some(vector(200)),
            "£5",
        );
        let more = ask("Price of the plan for 50 users?");
        assert!(
            c.lookup_semantic("t", &more, query(&vector(200)), 0.9, true)
                .is_none()
        );
    }

    #[test]
    fn entries_expire_after_the_ttl_and_the_least_recently_used_goes() {
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        let c = cache(clock.clone(), 3);
        let plans: Vec<Plan> = (0..4).map(|i| ask(&format!("question {i}"))).collect();
        for p in &plans[..3] {
            store(&c, "t", p, None, "a");
        }
        // Touch 0: 1 is now the least recently used, and the fourth store evicts it.
        assert!(c.lookup_exact("t", &plans[0]).is_some());
        store(&c, "t", &plans[3], None, "a");
        assert!(c.lookup_exact("t", &plans[1]).is_none(), "evicted");
        for i in [0, 2, 3] {
            assert!(c.lookup_exact("t", &plans[i]).is_some(), "{i} kept");
        }
        assert_eq!(c.stats("t").entries, 3);
        clock.advance(Duration::from_secs(86_400));
        assert!(
            c.lookup_exact("t", &plans[0]).is_some(),
            "at the TTL, still fresh"
        );
        clock.advance(Duration::from_secs(1));
        assert!(c.lookup_exact("t", &plans[0]).is_none(), "past the TTL");
        // The next store sweeps the other expired entries.
        store(&c, "t", &ask("fresh"), None, "a");
        assert_eq!(c.stats("t").entries, 1);
    }

    #[tokio::test]
    async fn erasure_empties_the_cache_and_a_miss_from_before_it_stores_nothing() {
        let c = cache(Arc::new(ManualClock::new(0)), 100);
        let p = ask("question");
        store(&c, "t", &p, Some(vector(1)), "a");
        store(&c, "other", &p, None, "b");
        let before = c.pending("t", ask("late"), None);
        assert_eq!(c.erase("t").await.unwrap(), 1);
        c.store("t", before, answer("late answer"));
        assert!(c.lookup_exact("t", &p).is_none());
        assert!(c.lookup_exact("t", &ask("late")).is_none());
        assert!(
            c.lookup_semantic("t", &p, query(&vector(1)), 0.5, false)
                .is_none()
        );
        assert!(
            c.lookup_exact("other", &p).is_some(),
            "another tenant keeps its own"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let mut s = Settings::default();
        assert!(s.check().is_ok());
        s.threshold = 0.5;
        assert_eq!(s.check().unwrap_err().0, "threshold");
        s.threshold = 0.99;
        s.ttl_secs = 0;
        assert_eq!(s.check().unwrap_err().0, "ttl_secs");
    }
}
