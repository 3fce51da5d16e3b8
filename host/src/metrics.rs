//! Prometheus metrics, all named `sluice_*`, rendered in the text exposition format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    pub panics: Counter,
    pub config_reloads: Family<ErrorLabels, Counter>,
    pub audit_failures: Counter,
    pub audit_queue_depth: Gauge,
    pub audit_damaged_logs: Gauge,
    pub admission_rejections: Family<ReasonLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 10 µs to ~40 s: gateway phases sit at the low end, upstream calls at the high end.
    prometheus_client::metrics::histogram::exponential_buckets(0.000_01, 2.5, 17)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by tenant, route and HTTP status",
            requests.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("errors", "Error responses by error code", errors.clone());
        let phase_seconds = Family::<PhaseLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "phase_duration_seconds",
            "Time spent in each pipeline phase",
            phase_seconds.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Upstream calls by deployment and outcome (ok, connect, timeout, status, protocol, reset)",
            upstream.clone(),
        );
        let upstream_seconds = Histogram::new(latency_buckets());
        registry.register(
            "upstream_first_byte_seconds",
            "Time until upstream response headers",
            upstream_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            in_flight.clone(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "open_streams",
            "Streaming responses in progress",
            open_streams.clone(),
        );
        let panics = Counter::default();
        registry.register(
            "panics",
            "Request handlers that panicked (answered 500)",
            panics.clone(),
        );
        let config_reloads = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Routing reloads by outcome (code = ok or the failure)",
            config_reloads.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Requests refused (503) because their audit entry could not be made durable",
            audit_failures.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit entries handed to the sequencer and not yet durable",
            audit_queue_depth.clone(),
        );
        let audit_damaged_logs = Gauge::default();
        registry.register(
            "audit_damaged_logs",
            "Tenant logs whose stored entries did not match their latest signed checkpoint at start",
            audit_damaged_logs.clone(),
        );
        let admission_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "admission_rejections",
            "Requests refused by admission, by reason (rate_requests, rate_tokens, too_large, concurrency, budget)",
            admission_rejections.clone(),
        );
        Metrics {
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
            in_flight,
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
