//! The audit guard: the owner of a request's audit entry from `authenticate` on. Whoever ends the request
//! commits it once; if nobody does (a panic, a client that hung up so the server dropped the request's future), the
//! guard's `Drop` appends it in the background. "Exactly one audit entry per authenticated request" holds
//! by construction.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::admission::Ticket;
use crate::app::App;
use crate::audit::AuditError;
use crate::audit::content::Content;
use crate::audit::entry::{ContentMark, Entry};
use crate::auth::Principal;
use crate::cache::CacheStatus;
use crate::providers::{Deployment, Usage};

/// Status recorded for a request whose client left before the answer (nginx's convention; no response is
/// sent, so no client ever sees it).
pub const CLIENT_CLOSED: u16 = 499;

/// What the entry of one authenticated request records, filled in by the phases as they run.
#[derive(Debug, Clone)]
pub struct Record {
    pub request_id: String,
    pub trace_id: String,
    pub principal: Principal,
    pub endpoint: &'static str,
    pub model: String,
    pub deployment: Option<Arc<Deployment>>,
    pub cache: CacheStatus,
    pub started: Instant,
    /// The request body, for requests whose content the audit log keeps (chat, embeddings).
    pub prompt: Option<Bytes>,
    /// The request's hold on its tenant's limits and budget; settled when the entry is recorded.
    pub ticket: Option<Arc<Ticket>>,
    /// Upper bound of the prompt tokens, for pricing answers without reported usage.
    pub prompt_tokens_bound: u64,
    /// Bytes of generated text received from the upstream so far.
    pub generated_bytes: u64,
    /// The budget reservation (micro-USD) once made: what a request of unknown outcome is charged.
    pub reserved_micro_usd: Option<u64>,
    /// Nobody knows what the upstream did (panic, client gone): charge the reservation, not the usage.
    pub outcome_unknown: bool,
    /// The upstream answered: if it reported no usage, charge `estimated_usage` rather than nothing.
    pub estimate_missing_usage: bool,
    /// What a tenant API call changed, recorded in its entry.
    pub subject: String,
    /// Which policies decided the request (`policy::Trail`).
    pub policy: String,
}

impl Record {
    pub fn new(
        request_id: &str,
        traceparent: &str,
        started: Instant,
        principal: Principal,
        endpoint: &'static str,
    ) -> Record {
        Record {
            request_id: request_id.to_owned(),
            // traceparent is `00-<trace id>-<span id>-<flags>`.
            trace_id: traceparent.get(3..35).unwrap_or_default().to_owned(),
            principal,
            endpoint,
            model: String::new(),
            deployment: None,
            cache: CacheStatus::Bypass,
            started,
            prompt: None,
            ticket: None,
            prompt_tokens_bound: 0,
            generated_bytes: 0,
            reserved_micro_usd: None,
            outcome_unknown: false,
            estimate_missing_usage: false,
            subject: String::new(),
            policy: String::new(),
        }
    }

    /// Usage estimated from what the gateway saw, for answers whose upstream reported none: the prompt's
    /// upper bound and the bytes of generated text (both bounds of the tokens billed).
    pub fn estimated_usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens_bound,
            completion_tokens: self.generated_bytes,
        }
    }

    /// What the entry releases from the key's budget cover (micro-USD).
    pub fn release(&self) -> u64 {
        self.ticket.as_ref().map_or(0, |t| t.covered_micro_usd())
    }

    /// Settle (the cost of the usage at the deployment's prices) and the entry the audit phase appends.
    pub fn entry(&self, status: u16, error_code: Option<&str>, usage: Option<Usage>) -> Entry {
        let estimated = usage.is_none() && self.estimate_missing_usage && !self.outcome_unknown;
        let usage = if estimated {
            Some(self.estimated_usage())
        } else {
            usage
        };
        let (usage, clamped) = match usage.map(Usage::clamped) {
            Some((u, clamped)) => (Some(u), clamped),
            None => (None, false),
        };
        let charge = self
            .outcome_unknown
            .then_some(self.reserved_micro_usd.unwrap_or(0));
        let cost = match (&self.deployment, usage, charge) {
            (_, _, Some(charge)) => charge,
            (Some(d), Some(u), None) => crate::admission::cost_micro_usd(u, d.config.price),
            _ => 0,
        };
        // Requests record how their charge was found when it was not the upstream's own usage report.
        let subject = if charge.is_some() && self.reserved_micro_usd.is_some() {
            "usage:reservation"
        } else if clamped {
            "usage:clamped"
        } else if estimated {
            "usage:estimated"
        } else {
            &self.subject
        };
        let dep = self.deployment.as_ref().map(|d| &d.config);
        Entry {
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            subject: subject.to_owned(),
            model_requested: self.model.clone(),
            deployment: dep.map(|d| d.name.clone()).unwrap_or_default(),
            tier: dep.map(|d| d.tier.as_str().to_owned()).unwrap_or_default(),
            region: dep.map(|d| d.region.clone()).unwrap_or_default(),
            cache: self.cache.as_str().to_owned(),
            policy: self.policy.clone(),
            status,
            error_code: error_code.unwrap_or_default().to_owned(),
            prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
            completion_tokens: usage.map_or(0, |u| u.completion_tokens),
            cost_micro_usd: cost,
            latency_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            model_digest: dep.and_then(|d| d.model_digest.clone()).unwrap_or_default(),
            ..Entry::request(
                &self.principal.tenant_id,
                &self.principal.key_id,
                self.endpoint,
            )
        }
    }

    /// The entry and, unless the tenant keeps no content, the content it commits to. The ticket is settled
    /// at the entry's cost and tokens.
    fn seal(
        &self,
        app: &App,
        status: u16,
        error_code: Option<&str>,
        usage: Option<Usage>,
        response: Option<&[u8]>,
    ) -> (Entry, Option<Content>) {
        let mut entry = self.entry(status, error_code, usage);
        if let Some(ticket) = &self.ticket {
            ticket.settle(
                entry.cost_micro_usd,
                entry.prompt_tokens.saturating_add(entry.completion_tokens),
            );
        }
        let Some(prompt) = &self.prompt else {
            return (entry, None);
        };
        if app.audit.retention_days(&self.principal.tenant_id) == 0 {
            // Zero retention: not even a commitment, only the mark that content existed.
            entry.content = ContentMark::NotRetained;
            return (entry, None);
        }
        let content = Content::new(prompt.to_vec(), response.unwrap_or_default().to_vec());
        entry.content = ContentMark::Committed;
        entry.prompt_commitment = Some(content.prompt_commitment());
        entry.response_commitment = Some(content.response_commitment());
        (entry, Some(content))
    }
}

/// The owner of one request's entry. Inert until `arm`; `commit` appends the entry once; dropping an armed
/// guard appends it too, as a request whose client went away.
pub struct AuditGuard {
    app: Arc<App>,
    record: Option<Record>,
}

impl std::fmt::Debug for AuditGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditGuard")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl AuditGuard {
    pub fn new(app: Arc<App>) -> AuditGuard {
        AuditGuard { app, record: None }
    }

    /// From here on the request has exactly one entry.
    pub fn arm(&mut self, record: Record) {
        self.record = Some(record);
    }

    pub fn is_armed(&self) -> bool {
        self.record.is_some()
    }

    /// The entry being filled in, once armed.
    pub fn record(&mut self) -> Option<&mut Record> {
        self.record.as_mut()
    }

    /// Moves the entry into a new guard (a streaming body that ends the request later); this one is inert.
    pub fn hand_off(&mut self) -> AuditGuard {
        AuditGuard {
            app: self.app.clone(),
            record: self.record.take(),
        }
    }

    /// Records the outcome and appends the entry; the future resolves once it is durable. The append runs
    /// as its own task, so a caller that is dropped while waiting (a client gone) loses nothing. Nothing
    /// happens if the guard was never armed or already committed.
    pub fn commit(
        &mut self,
        status: u16,
        error_code: Option<&str>,
        usage: Option<Usage>,
        response: Option<&[u8]>,
    ) -> impl Future<Output = Result<(), AuditError>> + Send + 'static {
        let append = self.record.take().map(|record| {
            let start = Instant::now();
            let (entry, content) = record.seal(&self.app, status, error_code, usage, response);
            let app = self.app.clone();
            self.app.background.spawn(async move {
                let result = app
                    .audit
                    .append_settling(entry, content, record.release())
                    .await;
                app.metrics
                    .observe_phase("audit", start.elapsed().as_secs_f64());
                result.map(|_| ())
            })
        });
        async move {
            match append {
                None => Ok(()),
                Some(task) => task.await.unwrap_or(Err(AuditError::Stopped)),
            }
        }
    }

    /// Like `commit`, for a request whose outcome nobody knows (the handler panicked, the client left with
    /// the upstream still working): it is charged its budget reservation, since the upstream may bill it.
    pub fn commit_unknown(
        &mut self,
        status: u16,
        error_code: &str,
    ) -> impl Future<Output = Result<(), AuditError>> + Send + 'static {
        if let Some(record) = self.record.as_mut() {
            record.outcome_unknown = true;
        }
        self.commit(status, Some(error_code), None, None)
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        let Some(request_id) = self.record.as_ref().map(|r| r.request_id.clone()) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            // Only a runtime being torn down drops a request outside it; the next start charges its cover.
            tracing::error!(request_id = %request_id, "request dropped outside the runtime: no audit entry");
            return;
        }
        // Nothing committed the entry: the request's future was dropped, which the HTTP server does when
        // the client closes the connection before the answer.
        tracing::info!(request_id = %request_id, "client went away before the answer");
        let append = self.commit_unknown(CLIENT_CLOSED, "client_disconnected");
        self.app.background.spawn(async move {
            if let Err(e) = append.await {
                tracing::error!(request_id = %request_id, error = %e, "audit entry of an abandoned request failed");
            }
        });
    }
}
