//! The control plane: operator endpoints (`/admin/v1/...`, operator token) and tenant self-service
//! (budget, usage, key budgets, policies, audit, cache; tenant key). Each endpoint is one function of the app, the
//! caller and its typed input, returning a `View`; `serve` is the one wrapper around them that
//! authenticates, checks the role and audits. It knows nothing of the HTTP server: the edge passes the headers, the
//! path's captures, the query and a way to read the body.

mod audit;
mod cache;
mod export;
mod operator;
mod policies;
pub mod spend;
mod tenant;

use bytes::Bytes;
use http::HeaderMap;

use crate::app::App;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Exchange;

/// Control-plane JSON bodies are small; anything larger is a mistake.
const MAX_JSON_BODY: usize = 64 * 1024;

/// Every control-plane endpoint, by the module that serves it: each module matches its own kind
/// exhaustively, so an endpoint no module serves does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Spend(SpendEndpoint),
    Policy(PolicyEndpoint),
    Audit(AuditEndpoint),
    Cache(CacheEndpoint),
    Operator(OperatorEndpoint),
}

/// A tenant's spend: its budget and usage, and its keys' budgets (`tenant.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendEndpoint {
    BudgetRead,
    UsageRead,
    KeyBudgetSet,
}

/// A tenant's policies (`policies.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyEndpoint {
    PoliciesList,
    PolicyUpload,
    PolicyActivate,
    PolicyRollback,
    PolicyDeactivate,
    PolicyVersionDelete,
    PolicySettings,
}

/// A tenant's audit log (`audit.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEndpoint {
    AuditEntries,
    AuditCheckpoint,
    AuditCheckpoints,
    AuditProofInclusion,
    AuditProofConsistency,
    AuditExport,
    AuditErase,
}

/// A tenant's response cache (`cache.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEndpoint {
    CacheRead,
    CacheSettings,
    CacheErase,
}

/// The operator's endpoints (`operator.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorEndpoint {
    TenantCreate,
    TenantList,
    KeyCreate,
    KeyList,
    RetentionSet,
    TenantBudgetSet,
    TenantBudgetRead,
    TenantLimitsSet,
    TenantLimitsRead,
    RegionsSet,
    PolicyCpuSet,
    KeyRevoke,
    OperatorKeyBudgetSet,
    KeyLimitsSet,
    AuditPrune,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The operator token.
    Operator,
    /// A tenant key of at least this role.
    Tenant(Role),
}

impl Endpoint {
    /// Who may call it, and the name its audit entries record.
    pub fn who_and_name(self) -> (Who, &'static str) {
        use Endpoint as E;
        use Who::{Operator as O, Tenant as T};
        match self {
            E::Spend(SpendEndpoint::BudgetRead) => (T(Role::Member), "budget.read"),
            E::Spend(SpendEndpoint::UsageRead) => (T(Role::Admin), "usage.read"),
            E::Spend(SpendEndpoint::KeyBudgetSet) => (T(Role::Owner), "keys.budget_set"),
            E::Policy(PolicyEndpoint::PoliciesList) => (T(Role::Admin), "policies.list"),
            E::Policy(PolicyEndpoint::PolicyUpload) => (T(Role::Admin), "policies.upload"),
            E::Policy(PolicyEndpoint::PolicyActivate) => (T(Role::Admin), "policies.activate"),
            E::Policy(PolicyEndpoint::PolicyRollback) => (T(Role::Admin), "policies.rollback"),
            E::Policy(PolicyEndpoint::PolicyDeactivate) => (T(Role::Admin), "policies.deactivate"),
            E::Policy(PolicyEndpoint::PolicyVersionDelete) => {
                (T(Role::Admin), "policies.version_delete")
            }
            E::Policy(PolicyEndpoint::PolicySettings) => (T(Role::Admin), "policies.settings_set"),
            E::Audit(AuditEndpoint::AuditEntries) => (T(Role::Admin), "audit.entries"),
            E::Audit(AuditEndpoint::AuditCheckpoint) => (T(Role::Admin), "audit.checkpoint"),
            E::Audit(AuditEndpoint::AuditCheckpoints) => (T(Role::Admin), "audit.checkpoints"),
            E::Audit(AuditEndpoint::AuditProofInclusion) => {
                (T(Role::Admin), "audit.proof_inclusion")
            }
            E::Audit(AuditEndpoint::AuditProofConsistency) => {
                (T(Role::Admin), "audit.proof_consistency")
            }
            E::Audit(AuditEndpoint::AuditExport) => (T(Role::Admin), "audit.export"),
            E::Audit(AuditEndpoint::AuditErase) => (T(Role::Admin), "audit.erase"),
            E::Cache(CacheEndpoint::CacheRead) => (T(Role::Admin), "cache.read"),
            E::Cache(CacheEndpoint::CacheSettings) => (T(Role::Admin), "cache.settings_set"),
            E::Cache(CacheEndpoint::CacheErase) => (T(Role::Admin), "cache.erase"),
            E::Operator(OperatorEndpoint::TenantCreate) => (O, "admin.tenant_created"),
            E::Operator(OperatorEndpoint::TenantList) => (O, "admin.tenants_listed"),
            E::Operator(OperatorEndpoint::KeyCreate) => (O, "admin.key_created"),
            E::Operator(OperatorEndpoint::KeyList) => (O, "admin.keys_listed"),
            E::Operator(OperatorEndpoint::RetentionSet) => (O, "admin.retention_set"),
            E::Operator(OperatorEndpoint::TenantBudgetSet)
            | E::Operator(OperatorEndpoint::OperatorKeyBudgetSet) => (O, "admin.budget_set"),
            E::Operator(OperatorEndpoint::TenantBudgetRead) => (O, "admin.budget_read"),
            E::Operator(OperatorEndpoint::TenantLimitsSet)
            | E::Operator(OperatorEndpoint::KeyLimitsSet) => (O, "admin.limits_set"),
            E::Operator(OperatorEndpoint::TenantLimitsRead) => (O, "admin.limits_read"),
            E::Operator(OperatorEndpoint::RegionsSet) => (O, "admin.regions_set"),
            E::Operator(OperatorEndpoint::PolicyCpuSet) => (O, "admin.policy_cpu_set"),
            E::Operator(OperatorEndpoint::KeyRevoke) => (O, "admin.key_revoked"),
            E::Operator(OperatorEndpoint::AuditPrune) => (O, "admin.audit_pruned"),
        }
    }

    /// The media type its body must have; `None` for endpoints that take no body.
    pub fn media_type(self) -> Option<&'static str> {
        use Endpoint as E;
        match self {
            E::Policy(PolicyEndpoint::PolicyUpload) => Some("application/wasm"),
            E::Spend(SpendEndpoint::KeyBudgetSet)
            | E::Policy(PolicyEndpoint::PolicyActivate)
            | E::Policy(PolicyEndpoint::PolicySettings)
            | E::Cache(CacheEndpoint::CacheSettings)
            | E::Operator(OperatorEndpoint::TenantCreate)
            | E::Operator(OperatorEndpoint::KeyCreate)
            | E::Operator(OperatorEndpoint::RetentionSet)
            | E::Operator(OperatorEndpoint::TenantBudgetSet)
            | E::Operator(OperatorEndpoint::TenantLimitsSet)
            | E::Operator(OperatorEndpoint::RegionsSet)
            | E::Operator(OperatorEndpoint::PolicyCpuSet)
            | E::Operator(OperatorEndpoint::OperatorKeyBudgetSet)
            | E::Operator(OperatorEndpoint::KeyLimitsSet)
            | E::Operator(OperatorEndpoint::AuditPrune) => Some("application/json"),
            E::Spend(SpendEndpoint::BudgetRead)
            | E::Spend(SpendEndpoint::UsageRead)
            | E::Policy(PolicyEndpoint::PoliciesList)
            | E::Policy(PolicyEndpoint::PolicyRollback)
            | E::Policy(PolicyEndpoint::PolicyDeactivate)
            | E::Policy(PolicyEndpoint::PolicyVersionDelete)
            | E::Audit(AuditEndpoint::AuditEntries)
            | E::Audit(AuditEndpoint::AuditCheckpoint)
            | E::Audit(AuditEndpoint::AuditCheckpoints)
            | E::Audit(AuditEndpoint::AuditProofInclusion)
            | E::Audit(AuditEndpoint::AuditProofConsistency)
            | E::Audit(AuditEndpoint::AuditExport)
            | E::Audit(AuditEndpoint::AuditErase)
            | E::Cache(CacheEndpoint::CacheRead)
            | E::Cache(CacheEndpoint::CacheErase)
            | E::Operator(OperatorEndpoint::TenantList)
            | E::Operator(OperatorEndpoint::KeyList)
            | E::Operator(OperatorEndpoint::TenantBudgetRead)
            | E::Operator(OperatorEndpoint::TenantLimitsRead)
            | E::Operator(OperatorEndpoint::KeyRevoke) => None,
        }
    }
}

/// The most bytes an endpoint's body may have.
pub fn body_limit(app: &App, endpoint: Endpoint) -> usize {
    if endpoint == Endpoint::Policy(PolicyEndpoint::PolicyUpload) {
        app.policies.config().max_upload_bytes
    } else {
        MAX_JSON_BODY
    }
}

pub use crate::exchange::BodyRead;

/// The answer when the audit storage cannot be read.
fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("audit storage: {e}"))
}

/// A control-plane request as the edge hands it over.
pub struct ControlRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The path's captured segments (ids, the slot), in order.
    pub params: Vec<String>,
    pub query: Option<String>,
    /// Behind a mutex only so that a `&ControlRequest` may be held across an `.await`.
    pub body: std::sync::Mutex<Option<BodyRead>>,
}

impl ControlRequest<'_> {
    /// The `n`th captured path segment.
    fn param(&self, n: usize) -> &str {
        self.params.get(n).map_or("", String::as_str)
    }

    /// A query parameter's raw value.
    fn query(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_owned())
        })
    }

    /// A query parameter that must be a non-negative integer when present.
    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.query(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(name, format!("`{name}` must be a non-negative integer"))
                })
            })
            .transpose()
    }

    /// Reads the body.
    async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let read = self.body.get_mut().ok().and_then(Option::take);
        match read {
            Some(read) => read.await,
            None => Ok(Bytes::new()),
        }
    }

    /// Reads the body as JSON into `T` (400 naming the field otherwise).
    async fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        Ok(crate::wire::parse_body(&bytes)?)
    }
}

/// An operator action to record in the tenant's audit log.
#[derive(Debug, Clone)]
pub struct AdminAction {
    pub tenant_id: String,
    pub subject: String,
}

/// A view's JSON body: whole, or streamed as it is produced (an audit export).
pub enum ViewBody {
    Full(Bytes),
    Stream(export::ByteStream),
}

impl std::fmt::Debug for ViewBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewBody::Full(b) => write!(f, "Full({} bytes)", b.len()),
            ViewBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What an endpoint answers.
#[derive(Debug)]
pub struct View {
    pub status: u16,
    /// The JSON body.
    pub body: ViewBody,
    /// What a tenant call changed, for its audit entry.
    pub subject: Option<String>,
    /// The operator action to audit before the answer is confirmed.
    pub admin: Option<AdminAction>,
}

impl View {
    fn ok(v: &serde_json::Value) -> View {
        View::status(200, v)
    }

    fn status(status: u16, v: &serde_json::Value) -> View {
        View {
            status,
            body: ViewBody::Full(Bytes::from(v.to_string())),
            subject: None,
            admin: None,
        }
    }

    /// A 200 whose body is streamed.
    fn streamed(body: export::ByteStream) -> View {
        View {
            status: 200,
            body: ViewBody::Stream(body),
            subject: None,
            admin: None,
        }
    }

    /// With the subject a tenant call's entry records.
    fn changed(mut self, subject: String) -> View {
        self.subject = Some(subject);
        self
    }

    /// With the operator action to record in `tenant_id`'s log.
    fn audited(mut self, tenant_id: &str, subject: &str) -> View {
        self.admin = Some(AdminAction {
            tenant_id: tenant_id.to_owned(),
            subject: subject.to_owned(),
        });
        self
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 2,
        Role::Admin => 1,
        Role::Member => 0,
    }
}

/// The one wrapper of every control-plane endpoint: authenticate (operator token or tenant key), check the
/// role, serve, and audit. A tenant call's entry records every outcome, denials included; an operator
/// action is recorded in the affected tenant's log before it is confirmed (503 if it cannot be).
pub async fn serve(
    ex: &mut Exchange,
    endpoint: Endpoint,
    call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    let (who, name) = endpoint.who_and_name();
    match who {
        Who::Operator => {
            if !ex.app.is_operator(call.headers) {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "a valid operator token is required",
                ));
            }
            let Endpoint::Operator(op) = endpoint else {
                return Err(ApiError::new(
                    ErrorCode::Internal,
                    "a tenant endpoint reached the operator path",
                ));
            };
            let view = operator::serve(&ex.app, op, call).await?;
            if let Some(action) = &view.admin {
                audit_admin(ex, name, action).await?;
            }
            Ok(view)
        }
        Who::Tenant(needs) => {
            let principal = ex.authenticate(call.headers, name)?;
            let result = if rank(principal.role) < rank(needs) {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("this endpoint needs a key with the {} role", needs.as_str()),
                ))
            } else {
                serve_tenant(&ex.app, &principal, endpoint, call).await
            };
            let (status, code) = match &result {
                Ok(view) => (view.status, None),
                Err(e) => (e.status().as_u16(), Some(e.code.as_str())),
            };
            if let Ok(View {
                subject: Some(subject),
                ..
            }) = &result
            {
                let subject = subject.clone();
                ex.note(|r| r.subject = subject);
            }
            ex.audit
                .commit(status, code, None, None)
                .await
                .map_err(|e| ApiError::from(&e))?;
            result
        }
    }
}

async fn serve_tenant(
    app: &App,
    principal: &Principal,
    endpoint: Endpoint,
    call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    match endpoint {
        Endpoint::Spend(e) => tenant::serve(app, principal, e, call).await,
        Endpoint::Policy(e) => policies::serve(app, principal, e, call).await,
        Endpoint::Cache(e) => cache::serve(app, &principal.tenant_id, e, call).await,
        Endpoint::Audit(e) => audit::serve(app, &principal.tenant_id, e, call).await,
        // `who_and_name` sends operator endpoints the other way.
        Endpoint::Operator(_) => Err(ApiError::new(
            ErrorCode::Internal,
            "an operator endpoint reached the tenant path",
        )),
    }
}

/// Writes an operator action into the tenant's log before the action is confirmed. The action has happened
/// by then; if the entry cannot be made durable the operator gets 503 and the log says why.
async fn audit_admin(ex: &Exchange, action: &str, what: &AdminAction) -> Result<(), ApiError> {
    let entry = crate::audit::entry::Entry {
        request_id: ex.id.clone(),
        trace_id: ex.traceparent.get(3..35).unwrap_or_default().to_owned(),
        latency_us: u64::try_from(ex.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        ..crate::audit::entry::Entry::admin(&what.tenant_id, action, &what.subject)
    };
    ex.app.audit.append(entry, None).await.map(|_| ()).map_err(|e| {
        tracing::error!(tenant = %what.tenant_id, action, error = %e, "admin action done but not audited");
        ApiError::from(&e)
    })
}
