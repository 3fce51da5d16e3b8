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

/// Every control-plane endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    BudgetRead,
    UsageRead,
    KeyBudgetSet,
    PoliciesList,
    PolicyUpload,
    PolicyActivate,
    PolicyRollback,
    PolicyDeactivate,
    PolicyVersionDelete,
    PolicySettings,
    AuditEntries,
    AuditCheckpoint,
    AuditCheckpoints,
    AuditProofInclusion,
    AuditProofConsistency,
    AuditExport,
    AuditErase,
    CacheRead,
    CacheSettings,
    CacheErase,
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
            E::BudgetRead => (T(Role::Member), "budget.read"),
            E::UsageRead => (T(Role::Admin), "usage.read"),
            E::KeyBudgetSet => (T(Role::Owner), "keys.budget_set"),
            E::PoliciesList => (T(Role::Admin), "policies.list"),
            E::PolicyUpload => (T(Role::Admin), "policies.upload"),
            E::PolicyActivate => (T(Role::Admin), "policies.activate"),
            E::PolicyRollback => (T(Role::Admin), "policies.rollback"),
            E::PolicyDeactivate => (T(Role::Admin), "policies.deactivate"),
            E::PolicyVersionDelete => (T(Role::Admin), "policies.version_delete"),
            E::PolicySettings => (T(Role::Admin), "policies.settings_set"),
            E::AuditEntries => (T(Role::Admin), "audit.entries"),
            E::AuditCheckpoint => (T(Role::Admin), "audit.checkpoint"),
            E::AuditCheckpoints => (T(Role::Admin), "audit.checkpoints"),
            E::AuditProofInclusion => (T(Role::Admin), "audit.proof_inclusion"),
            E::AuditProofConsistency => (T(Role::Admin), "audit.proof_consistency"),
            E::AuditExport => (T(Role::Admin), "audit.export"),
            E::AuditErase => (T(Role::Admin), "audit.erase"),
            E::CacheRead => (T(Role::Admin), "cache.read"),
            E::CacheSettings => (T(Role::Admin), "cache.settings_set"),
            E::CacheErase => (T(Role::Admin), "cache.erase"),
            E::TenantCreate => (O, "admin.tenant_created"),
            E::TenantList => (O, "admin.tenants_listed"),
            E::KeyCreate => (O, "admin.key_created"),
            E::KeyList => (O, "admin.keys_listed"),
            E::RetentionSet => (O, "admin.retention_set"),
            E::TenantBudgetSet | E::OperatorKeyBudgetSet => (O, "admin.budget_set"),
            E::TenantBudgetRead => (O, "admin.budget_read"),
            E::TenantLimitsSet | E::KeyLimitsSet => (O, "admin.limits_set"),
            E::TenantLimitsRead => (O, "admin.limits_read"),
            E::RegionsSet => (O, "admin.regions_set"),
            E::PolicyCpuSet => (O, "admin.policy_cpu_set"),
            E::KeyRevoke => (O, "admin.key_revoked"),
            E::AuditPrune => (O, "admin.audit_pruned"),
        }
    }

    /// The media type its body must have; `None` for endpoints that take no body.
    pub fn media_type(self) -> Option<&'static str> {
        use Endpoint as E;
        match self {
            E::PolicyUpload => Some("application/wasm"),
            E::KeyBudgetSet
            | E::PolicyActivate
            | E::PolicySettings
            | E::CacheSettings
            | E::TenantCreate
            | E::KeyCreate
            | E::RetentionSet
            | E::TenantBudgetSet
            | E::TenantLimitsSet
            | E::RegionsSet
            | E::PolicyCpuSet
            | E::OperatorKeyBudgetSet
            | E::KeyLimitsSet
            | E::AuditPrune => Some("application/json"),
            _ => None,
        }
    }
}

/// The most bytes an endpoint's body may have.
pub fn body_limit(app: &App, endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::PolicyUpload => app.policies.config().max_upload_bytes,
        _ => MAX_JSON_BODY,
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
            let view = operator::serve(&ex.app, endpoint, call).await?;
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
                .map_err(|e| crate::exchange::audit_unavailable(&ex.app, &e))?;
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
    use Endpoint as E;
    match endpoint {
        E::BudgetRead | E::UsageRead | E::KeyBudgetSet => {
            tenant::serve(app, principal, endpoint, call).await
        }
        E::PoliciesList
        | E::PolicyUpload
        | E::PolicyActivate
        | E::PolicyRollback
        | E::PolicyDeactivate
        | E::PolicyVersionDelete
        | E::PolicySettings => policies::serve(app, principal, endpoint, call).await,
        E::CacheRead | E::CacheSettings | E::CacheErase => {
            cache::serve(app, &principal.tenant_id, endpoint, call).await
        }
        _ => audit::serve(app, &principal.tenant_id, endpoint, call).await,
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
        crate::exchange::audit_unavailable(&ex.app, &e)
    })
}
