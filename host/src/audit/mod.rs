//! The audit record of every request that reached authentication.
//!
//! The tamper-evident, durable per-tenant log (Merkle hash chain, signed checkpoints) is not in this build.
//! Today each record is one structured `tracing` event on the `sluice::audit` target, written exactly once
//! per authenticated request: at the end of the response, or when a stream ends or is dropped. That is a
//! log line, not a durable, verifiable entry.

use crate::cache::CacheStatus;
use crate::providers::Usage;

/// What is recorded about one request.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub request_id: &'a str,
    pub tenant_id: &'a str,
    pub key_id: &'a str,
    pub endpoint: &'a str,
    pub model: Option<&'a str>,
    pub deployment: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub cache: CacheStatus,
    pub status: u16,
    pub error_code: Option<&'static str>,
    pub usage: Option<Usage>,
    pub cost_micro_usd: u64,
    pub latency_us: u64,
}

/// Records one request.
pub fn record(r: &AuditRecord<'_>) {
    tracing::info!(
        target: "sluice::audit",
        request_id = r.request_id,
        tenant = r.tenant_id,
        key_id = r.key_id,
        endpoint = r.endpoint,
        model = r.model,
        deployment = r.deployment,
        tier = r.tier,
        cache = r.cache.as_str(),
        status = r.status,
        error_code = r.error_code,
        prompt_tokens = r.usage.map(|u| u.prompt_tokens),
        completion_tokens = r.usage.map(|u| u.completion_tokens),
        cost_micro_usd = r.cost_micro_usd,
        latency_us = r.latency_us,
        "audit"
    );
}
