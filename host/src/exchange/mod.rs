//! `Exchange`: the one per-request context, shared by the control plane and the pipeline. The edge makes it
//! when a request arrives; from `authenticate` on it owns the request's audit entry (`guard::AuditGuard`).
//! `PhaseTimer` is the one way a phase is entered and timed.

mod guard;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;

pub use guard::{AuditGuard, CLIENT_CLOSED, Record};

use crate::app::App;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};

/// The named phases of a request, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Authenticate,
    Validate,
    Authorize,
    Admit,
    Candidates,
    Classify,
    Cache,
    Route,
    Reserve,
    Forward,
    Respond,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 11] = [
        Phase::Authenticate,
        Phase::Validate,
        Phase::Authorize,
        Phase::Admit,
        Phase::Candidates,
        Phase::Classify,
        Phase::Cache,
        Phase::Route,
        Phase::Reserve,
        Phase::Forward,
        Phase::Respond,
    ];

    pub fn index(self) -> u8 {
        match self {
            Phase::Authenticate => 0,
            Phase::Validate => 1,
            Phase::Authorize => 2,
            Phase::Admit => 3,
            Phase::Candidates => 4,
            Phase::Classify => 5,
            Phase::Cache => 6,
            Phase::Route => 7,
            Phase::Reserve => 8,
            Phase::Forward => 9,
            Phase::Respond => 10,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Validate => "validate",
            Phase::Authenticate => "authenticate",
            Phase::Authorize => "authorize",
            Phase::Admit => "admit",
            Phase::Candidates => "candidates",
            Phase::Classify => "classify",
            Phase::Cache => "cache",
            Phase::Route => "route",
            Phase::Reserve => "reserve",
            Phase::Forward => "forward",
            Phase::Respond => "respond",
        }
    }
}

/// The request body, read when a handler asks for it: after `authenticate`, so an anonymous client is
/// refused before a byte of its body is read or parsed. `Err` is the edge's refusal (size, media type, a
/// body that could not be read).
pub type BodyRead = Pin<Box<dyn Future<Output = Result<Bytes, ApiError>> + Send>>;

/// A phase being run: made by [`Exchange::phase`], it records the phase's duration when dropped, however
/// the phase ends.
pub struct PhaseTimer {
    app: Arc<App>,
    phase: Phase,
    start: Instant,
}

impl Drop for PhaseTimer {
    fn drop(&mut self) {
        self.app
            .metrics
            .observe_phase(self.phase.as_str(), self.start.elapsed().as_secs_f64());
    }
}

/// One request, from arrival to its audit entry.
pub struct Exchange {
    pub app: Arc<App>,
    /// The client's `x-request-id` when well formed, else a fresh UUIDv7.
    pub id: String,
    /// W3C `traceparent` sent upstream: the client's trace continued, or a new one.
    pub traceparent: String,
    pub started: Instant,
    /// Route label for metrics (a fixed set, never the raw path).
    pub route: &'static str,
    /// Who is asking, once `authenticate` succeeded.
    pub principal: Option<Principal>,
    /// The error code of the answer, for metrics.
    pub error_code: Option<&'static str>,
    /// The request's audit entry: armed by `authenticate`, appended exactly once.
    pub audit: AuditGuard,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.id)
            .field("route", &self.route)
            .field("principal", &self.principal)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    pub fn new(app: Arc<App>, id: String, traceparent: String, route: &'static str) -> Exchange {
        Exchange {
            audit: AuditGuard::new(app.clone()),
            app,
            id,
            traceparent,
            started: Instant::now(),
            route,
            principal: None,
            error_code: None,
        }
    }

    /// Enters `phase`: the returned timer records its duration when dropped. Tests make a phase panic here
    /// (`inject_panic`) to prove the audit guard holds wherever a request dies.
    pub fn phase(&self, phase: Phase) -> PhaseTimer {
        self.injected(phase);
        PhaseTimer {
            app: self.app.clone(),
            phase,
            start: Instant::now(),
        }
    }

    /// Authenticate: the bearer API key → `Principal` (401 otherwise). On success the audit guard is armed:
    /// from here on the request has exactly one entry, recorded under `endpoint`.
    pub fn authenticate(
        &mut self,
        headers: &HeaderMap,
        endpoint: &'static str,
    ) -> Result<Principal, ApiError> {
        let timer = PhaseTimer {
            app: self.app.clone(),
            phase: Phase::Authenticate,
            start: Instant::now(),
        };
        let result =
            crate::auth::bearer(headers).and_then(|token| self.app.keys.authenticate(token));
        drop(timer);
        let principal =
            result.map_err(|e| ApiError::new(ErrorCode::Unauthenticated, e.to_string()))?;
        tracing::Span::current().record("tenant", &*principal.tenant_id);
        self.principal = Some(principal.clone());
        self.audit.arm(Record::new(
            &self.id,
            &self.traceparent,
            self.started,
            principal.clone(),
            endpoint,
        ));
        // Armed first: a panic injected here is audited like one in any later phase.
        self.injected(Phase::Authenticate);
        Ok(principal)
    }

    fn injected(&self, phase: Phase) {
        if self.app.panic_at.load(Ordering::Relaxed) == phase.index() + 1 {
            panic_in(phase);
        }
    }

    /// Records something in the request's entry (a no-op before `authenticate` armed it).
    pub fn note(&mut self, f: impl FnOnce(&mut Record)) {
        if let Some(record) = self.audit.record() {
            f(record);
        }
    }

    /// Appends the entry for an answer that is an error (the entry is durable when this returns `Ok`).
    pub async fn audit_error(&mut self, err: &ApiError) -> Result<(), ApiError> {
        let append = self
            .audit
            .commit(err.status().as_u16(), Some(err.code.as_str()), None, None);
        append.await.map_err(|e| ApiError::from(&e))
    }
}

/// Makes `phase` panic in every request that reaches it (`None` stops it): for tests of the audit guard.
pub fn inject_panic(app: &App, phase: Option<Phase>) {
    let code = phase.map_or(0, |p| p.index() + 1);
    app.panic_at.store(code, Ordering::Relaxed);
}

#[expect(
    clippy::panic,
    reason = "a panic on purpose, for the audit guard's tests"
)]
fn panic_in(phase: Phase) -> ! {
    panic!("panic injected in phase {}", phase.as_str())
}
