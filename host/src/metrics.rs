//! Prometheus metrics, all named `sluice_*`, rendered in the text exposition format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyCallLabels {
    pub tenant: String,
    /// `ran`, `busy` (its line was full), `over_budget` or `withdrawn` (the client left while it waited).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub tenant: String,
    /// `hit-exact`, `hit-semantic`, `miss` or `bypass`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub tenant: String,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub deployment: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub phase_seconds: Family<PhaseLabels, Histogram>,
    pub upstream: Family<UpstreamLabels, Counter>,
    pub upstream_seconds: Histogram,
    pub in_flight: Gauge,
    pub open_streams: Gauge,
    pub open_connections: Gauge,
    pub connections_refused: Counter,
    pub accept_errors: Counter,
    pub panics: Counter,
    pub config_reloads: Family<ErrorLabels, Counter>,
    pub audit_failures: Counter,
    pub audit_queue_depth: Gauge,
    pub audit_damaged_logs: Gauge,
    pub admission_rejections: Family<ReasonLabels, Counter>,
    /// CPU time each tenant's policy calls used, in milliseconds (set from the budgets at each scrape).
    pub policy_cpu_ms: Family<TenantLabels, Gauge>,
    /// The policy pool's calls by tenant and outcome since start, and calls waiting for a thread (set from
    /// the pool at each scrape).
    pub policy_calls: Family<PolicyCallLabels, Gauge>,
    pub policy_waiting: Family<TenantLabels, Gauge>,
    /// The response cache (set from its counters at each scrape): lookups since start by tenant and result,
    /// and each tenant's entries and bytes (answers, and semantic indexes).
    pub cache_lookups: Family<CacheLabels, Gauge>,
    pub cache_entries: Family<TenantLabels, Gauge>,
    pub cache_bytes: Family<TenantLabels, Gauge>,
    pub cache_index_bytes: Family<TenantLabels, Gauge>,
    /// Local models (set from their workers' counters at each scrape): tokens generated or inputs embedded
    /// since start, requests waiting or running, requests stopped because their client left.
    pub local_generated: Family<ModelLabels, Gauge>,
    pub local_queued: Family<ModelLabels, Gauge>,
    pub local_cancelled: Family<ModelLabels, Gauge>,
    pub local_timed_out: Family<ModelLabels, Gauge>,
    /// Tenant id → the name the operator gave it, for `TenantLabel::Name`.
    tenant_names: std::sync::RwLock<std::collections::HashMap<String, String>>,
}

impl Metrics {
    /// The audit log's figures as of a scrape: its queue depth, and its failed writes (counted by the log,
    /// where they fail; the counter is brought up to that figure).
    pub fn set_audit(&self, queue_depth: i64, failures: u64) {
        self.audit_queue_depth.set(queue_depth);
        let shown = self.audit_failures.get();
        self.audit_failures.inc_by(failures.saturating_sub(shown));
    }

    /// Records the name a tenant's requests are labelled with.
    pub fn name_tenant(&self, id: &str, name: &str) {
        self.tenant_names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), name.to_owned());
    }

    /// The `tenant` label of a request of tenant `id` (empty before authentication).
    pub fn tenant_label(&self, id: Option<&str>, mode: crate::config::TenantLabel) -> String {
        use crate::config::TenantLabel;
        match (id, mode) {
            (None, _) | (_, TenantLabel::None) => String::new(),
            (Some(id), TenantLabel::Id) => id.to_owned(),
            (Some(id), TenantLabel::Name) => self
                .tenant_names
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(id)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// Registers a metric and returns it (a handle to the same series).
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 10 µs to ~40 s: gateway phases sit at the low end, upstream calls at the high end.
    prometheus_client::metrics::histogram::exponential_buckets(0.000_01, 2.5, 17)
}

impl Metrics {
    #[expect(
        clippy::too_many_lines,
        reason = "a flat list, one registration per metric; splitting it would only hide the list"
    )]
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let r = &mut registry;
        let requests = register(
            r,
            "requests",
            "Requests by tenant, route and HTTP status",
            Family::<RequestLabels, Counter>::default(),
        );
        let errors = register(
            r,
            "errors",
            "Error responses by error code",
            Family::<ErrorLabels, Counter>::default(),
        );
        let phase_seconds = register(
            r,
            "phase_duration_seconds",
            "Time spent in each pipeline phase",
            Family::<PhaseLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(latency_buckets())
            }),
        );
        let upstream = register(
            r,
            "upstream_requests",
            "Upstream calls by deployment and outcome (ok, connect, timeout, status, protocol, reset)",
            Family::<UpstreamLabels, Counter>::default(),
        );
        let upstream_seconds = register(
            r,
            "upstream_first_byte_seconds",
            "Time until upstream response headers",
            Histogram::new(latency_buckets()),
        );
        let in_flight = register(
            r,
            "in_flight_requests",
            "Requests being handled",
            Gauge::default(),
        );
        let open_connections = register(
            r,
            "open_connections",
            "Client connections open now",
            Gauge::default(),
        );
        let connections_refused = register(
            r,
            "connections_refused",
            "Client connections closed as accepted because `server.max_connections` were open",
            Counter::default(),
        );
        let accept_errors = register(
            r,
            "accept_errors",
            "Failed accepts of the listener (out of file descriptors, mostly)",
            Counter::default(),
        );
        let open_streams = register(
            r,
            "open_streams",
            "Streaming responses in progress",
            Gauge::default(),
        );
        let panics = register(
            r,
            "panics",
            "Request handlers that panicked (answered 500)",
            Counter::default(),
        );
        let config_reloads = register(
            r,
            "config_reloads",
            "Routing reloads by outcome (code = ok or the failure)",
            Family::<ErrorLabels, Counter>::default(),
        );
        let audit_failures = register(
            r,
            "audit_failures",
            "Audit writes (request entries, budget cover raises) that could not be made durable; the request each was for was refused (503) or, if its client had gone, is charged at the next start",
            Counter::default(),
        );
        let audit_queue_depth = register(
            r,
            "audit_queue_depth",
            "Audit entries handed to the sequencer and not yet durable",
            Gauge::default(),
        );
        let audit_damaged_logs = register(
            r,
            "audit_damaged_logs",
            "Tenant logs whose stored entries did not match their latest signed checkpoint at start",
            Gauge::default(),
        );
        let admission_rejections = register(
            r,
            "admission_rejections",
            "Requests refused by admission, by reason (rate_requests, rate_tokens, too_large, concurrency, budget, unbounded)",
            Family::<ReasonLabels, Counter>::default(),
        );
        let policy_cpu_ms = register(
            r,
            "policy_cpu_milliseconds",
            "CPU time each tenant's own policy calls used (the thread's CPU clock), in milliseconds",
            Family::<TenantLabels, Gauge>::default(),
        );
        let policy_calls = register(
            r,
            "policy_calls",
            "Tenant policy calls the policy pool took, by tenant and outcome (ran, busy, over_budget, withdrawn)",
            Family::<PolicyCallLabels, Gauge>::default(),
        );
        let policy_waiting = register(
            r,
            "policy_waiting",
            "Tenant policy calls waiting for a thread of the policy pool",
            Family::<TenantLabels, Gauge>::default(),
        );
        let cache_lookups = register(
            r,
            "cache_lookups",
            "Response cache lookups since start, by tenant and result (hit-exact, hit-semantic, miss, bypass)",
            Family::<CacheLabels, Gauge>::default(),
        );
        let cache_entries = register(
            r,
            "cache_entries",
            "Answers in each tenant's response cache",
            Family::<TenantLabels, Gauge>::default(),
        );
        let cache_bytes = register(
            r,
            "cache_bytes",
            "Bytes of the answers and questions in each tenant's response cache",
            Family::<TenantLabels, Gauge>::default(),
        );
        let cache_index_bytes = register(
            r,
            "cache_index_bytes",
            "Bytes of each tenant's semantic cache indexes (graphs and f16 vectors)",
            Family::<TenantLabels, Gauge>::default(),
        );
        let local_generated = register(
            r,
            "local_generated",
            "Tokens generated (chat) or inputs embedded (embeddings) by each local model since start",
            Family::<ModelLabels, Gauge>::default(),
        );
        let local_queued = register(
            r,
            "local_queued",
            "Requests waiting or running on each local model",
            Family::<ModelLabels, Gauge>::default(),
        );
        let local_cancelled = register(
            r,
            "local_cancelled",
            "Local requests stopped since start because their client went away",
            Family::<ModelLabels, Gauge>::default(),
        );
        let local_timed_out = register(
            r,
            "local_timed_out",
            "Local requests stopped since start by their deadline",
            Family::<ModelLabels, Gauge>::default(),
        );
        Metrics {
            cache_lookups,
            cache_entries,
            cache_bytes,
            cache_index_bytes,
            local_generated,
            local_queued,
            local_cancelled,
            local_timed_out,
            registry,
            admission_rejections,
            audit_damaged_logs,
            audit_failures,
            audit_queue_depth,
            requests,
            errors,
            phase_seconds,
            upstream,
            upstream_seconds,
            tenant_names: std::sync::RwLock::default(),
            policy_cpu_ms,
            policy_calls,
            policy_waiting,
            in_flight,
            open_connections,
            connections_refused,
            accept_errors,
            open_streams,
            panics,
            config_reloads,
        }
    }

    pub fn observe_phase(&self, phase: &'static str, seconds: f64) {
        self.phase_seconds
            .get_or_create(&PhaseLabels { phase })
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
