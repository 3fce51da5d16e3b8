//! The route table: every `(method, path)` the gateway serves, in one list. A path that matches no pattern
//! is 404 `not_found`; a known path with another method is 405 `method_not_allowed` with `allow`.

use http::Method;

use crate::control::{
    AuditEndpoint as A, CacheEndpoint as K, Endpoint, OperatorEndpoint as O, PolicyEndpoint as P,
    SpendEndpoint as S,
};
use crate::error::{ApiError, ErrorCode};
use crate::policy::Slot;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Healthz,
    Readyz,
    Metrics,
    AuditKeys,
    Chat,
    Embeddings,
    Models,
    /// A tenant self-service or operator endpoint.
    Control(Endpoint),
}

/// One segment of a path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Lit(&'static str),
    /// Any non-empty segment, captured (an id).
    Id,
    /// A policy slot name, captured: an unknown slot is 404 whatever the method.
    Slot,
}

use Seg::{Id, Lit};

/// A path pattern, the methods it serves, and the metrics label of its requests.
struct Entry {
    path: &'static [Seg],
    methods: &'static [(Method, Target)],
    label: &'static str,
}

const fn entry(
    path: &'static [Seg],
    methods: &'static [(Method, Target)],
    label: &'static str,
) -> Entry {
    Entry {
        path,
        methods,
        label,
    }
}

use Endpoint as E;
use Target::Control as C;

/// Every route. The first pattern that matches a path wins (`/v1/policies/settings` before `{slot}`).
const TABLE: &[Entry] = &[
    entry(
        &[Lit("healthz")],
        &[(Method::GET, Target::Healthz)],
        "healthz",
    ),
    entry(&[Lit("readyz")], &[(Method::GET, Target::Readyz)], "readyz"),
    entry(
        &[Lit("metrics")],
        &[(Method::GET, Target::Metrics)],
        "metrics",
    ),
    entry(
        &[Lit(".well-known"), Lit("sluice-audit-keys")],
        &[(Method::GET, Target::AuditKeys)],
        "other",
    ),
    entry(
        &[Lit("v1"), Lit("chat"), Lit("completions")],
        &[(Method::POST, Target::Chat)],
        "chat",
    ),
    entry(
        &[Lit("v1"), Lit("embeddings")],
        &[(Method::POST, Target::Embeddings)],
        "embeddings",
    ),
    entry(
        &[Lit("v1"), Lit("models")],
        &[(Method::GET, Target::Models)],
        "models",
    ),
    // Tenant self-service: the tenant comes from the credential, never the path.
    entry(
        &[Lit("v1"), Lit("budget")],
        &[(Method::GET, C(E::Spend(S::BudgetRead)))],
        "tenant",
    ),
    entry(
        &[Lit("v1"), Lit("usage")],
        &[(Method::GET, C(E::Spend(S::UsageRead)))],
        "tenant",
    ),
    entry(
        &[Lit("v1"), Lit("keys"), Id, Lit("budget")],
        &[(Method::PUT, C(E::Spend(S::KeyBudgetSet)))],
        "tenant",
    ),
    entry(
        &[Lit("v1"), Lit("policies")],
        &[(Method::GET, C(E::Policy(P::PoliciesList)))],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("policies"), Lit("settings")],
        &[(Method::PUT, C(E::Policy(P::PolicySettings)))],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("policies"), Seg::Slot],
        &[
            (Method::PUT, C(E::Policy(P::PolicyUpload))),
            (Method::DELETE, C(E::Policy(P::PolicyDeactivate))),
        ],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("policies"), Seg::Slot, Lit("activate")],
        &[(Method::POST, C(E::Policy(P::PolicyActivate)))],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("policies"), Seg::Slot, Lit("rollback")],
        &[(Method::POST, C(E::Policy(P::PolicyRollback)))],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("policies"), Seg::Slot, Lit("versions"), Id],
        &[(Method::DELETE, C(E::Policy(P::PolicyVersionDelete)))],
        "policies",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("entries")],
        &[(Method::GET, C(E::Audit(A::AuditEntries)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("checkpoint")],
        &[(Method::GET, C(E::Audit(A::AuditCheckpoint)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("checkpoints")],
        &[(Method::GET, C(E::Audit(A::AuditCheckpoints)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("proof"), Lit("inclusion")],
        &[(Method::GET, C(E::Audit(A::AuditProofInclusion)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("proof"), Lit("consistency")],
        &[(Method::GET, C(E::Audit(A::AuditProofConsistency)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("export")],
        &[(Method::GET, C(E::Audit(A::AuditExport)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("audit"), Lit("erase")],
        &[(Method::POST, C(E::Audit(A::AuditErase)))],
        "audit",
    ),
    entry(
        &[Lit("v1"), Lit("cache")],
        &[
            (Method::GET, C(E::Cache(K::CacheRead))),
            (Method::DELETE, C(E::Cache(K::CacheErase))),
        ],
        "tenant",
    ),
    entry(
        &[Lit("v1"), Lit("cache"), Lit("settings")],
        &[(Method::PUT, C(E::Cache(K::CacheSettings)))],
        "tenant",
    ),
    // Operator endpoints.
    entry(
        &[Lit("admin"), Lit("v1"), Lit("tenants")],
        &[
            (Method::POST, C(E::Operator(O::TenantCreate))),
            (Method::GET, C(E::Operator(O::TenantList))),
        ],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("tenants"), Id, Lit("keys")],
        &[
            (Method::POST, C(E::Operator(O::KeyCreate))),
            (Method::GET, C(E::Operator(O::KeyList))),
        ],
        "admin",
    ),
    entry(
        &[
            Lit("admin"),
            Lit("v1"),
            Lit("tenants"),
            Id,
            Lit("retention"),
        ],
        &[(Method::PUT, C(E::Operator(O::RetentionSet)))],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("tenants"), Id, Lit("budget")],
        &[
            (Method::PUT, C(E::Operator(O::TenantBudgetSet))),
            (Method::GET, C(E::Operator(O::TenantBudgetRead))),
        ],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("tenants"), Id, Lit("limits")],
        &[
            (Method::PUT, C(E::Operator(O::TenantLimitsSet))),
            (Method::GET, C(E::Operator(O::TenantLimitsRead))),
        ],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("tenants"), Id, Lit("regions")],
        &[(Method::PUT, C(E::Operator(O::RegionsSet)))],
        "admin",
    ),
    entry(
        &[
            Lit("admin"),
            Lit("v1"),
            Lit("tenants"),
            Id,
            Lit("policy-cpu"),
        ],
        &[(Method::PUT, C(E::Operator(O::PolicyCpuSet)))],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("keys"), Id],
        &[(Method::DELETE, C(E::Operator(O::KeyRevoke)))],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("keys"), Id, Lit("budget")],
        &[(Method::PUT, C(E::Operator(O::OperatorKeyBudgetSet)))],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("keys"), Id, Lit("limits")],
        &[(Method::PUT, C(E::Operator(O::KeyLimitsSet)))],
        "admin",
    ),
    entry(
        &[Lit("admin"), Lit("v1"), Lit("audit"), Lit("prune")],
        &[(Method::POST, C(E::Operator(O::AuditPrune)))],
        "admin",
    ),
];

/// A request's place in the table: what it is for and the path's captured segments.
#[derive(Debug, Clone)]
pub struct Route {
    pub target: Target,
    /// Captured segments (ids, the slot), in path order.
    pub params: Vec<String>,
    pub label: &'static str,
}

/// The metrics label of a path, whether or not its method is served (`other` for unknown paths).
pub fn label(path: &str) -> &'static str {
    find(path).map_or("other", |(e, _)| e.label)
}

fn find(path: &str) -> Option<(&'static Entry, Vec<&str>)> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    TABLE.iter().find_map(|e| {
        if e.path.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, actual) in e.path.iter().zip(&segments) {
            match seg {
                Lit(lit) if lit == actual => {}
                Id | Seg::Slot if !actual.is_empty() => params.push(*actual),
                _ => return None,
            }
        }
        Some((e, params))
    })
}

/// Looks a request up. `Err` is 404 (unknown path, or an unknown policy slot) or 405 with the `allow`
/// header listing the methods the path serves.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let Some((entry, params)) = find(path) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route for {method} {path}"),
        ));
    };
    if let Some((pos, _)) = entry
        .path
        .iter()
        .filter(|s| matches!(s, Id | Seg::Slot))
        .enumerate()
        .find(|(_, s)| matches!(s, Seg::Slot))
        && let Some(slot) = params.get(pos)
        && Slot::parse(slot).is_none()
    {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no policy slot `{slot}`: the slots are auth, classify and route"),
        ));
    }
    match entry.methods.iter().find(|(m, _)| m == method) {
        Some((_, target)) => Ok(Route {
            target: *target,
            params: params.into_iter().map(str::to_owned).collect(),
            label: entry.label,
        }),
        None => {
            let allow: Vec<&str> = entry.methods.iter().map(|(m, _)| m.as_str()).collect();
            Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on {path}"),
            )
            .with_header(http::header::ALLOW, &allow.join(", ")))
        }
    }
}

/// Every pattern of the table with sample values for its captures, and the methods it serves: for tests
/// that walk the whole table.
pub fn known() -> Vec<(String, Vec<Method>)> {
    TABLE
        .iter()
        .map(|e| {
            let path: Vec<&str> = e
                .path
                .iter()
                .map(|s| match s {
                    Lit(l) => *l,
                    Id => "some-id",
                    Seg::Slot => "route",
                })
                .collect();
            (
                format!("/{}", path.join("/")),
                e.methods.iter().map(|(m, _)| m.clone()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_pattern_wins() {
        let r = route(&Method::PUT, "/v1/policies/settings").unwrap();
        assert_eq!(
            r.target,
            Target::Control(Endpoint::Policy(P::PolicySettings))
        );
        let r = route(&Method::PUT, "/v1/policies/classify").unwrap();
        assert_eq!(r.target, Target::Control(Endpoint::Policy(P::PolicyUpload)));
        assert_eq!(r.params, ["classify"]);
    }

    #[test]
    fn unknown_slots_and_paths_are_404_and_wrong_methods_405() {
        let e = route(&Method::PUT, "/v1/policies/nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = route(&Method::GET, "/v1/policies/nope/activate").unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = route(&Method::GET, "/v1/keys//budget").unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = route(&Method::GET, "/admin/v1/tenants/t/keys").map(|r| r.target);
        assert_eq!(e.unwrap(), Target::Control(Endpoint::Operator(O::KeyList)));
        let e = route(&Method::PATCH, "/admin/v1/tenants").unwrap_err();
        assert_eq!(e.code, ErrorCode::MethodNotAllowed);
        let allow = e.headers.iter().find(|(n, _)| n == http::header::ALLOW);
        assert_eq!(allow.unwrap().1, "POST, GET");
    }
}
