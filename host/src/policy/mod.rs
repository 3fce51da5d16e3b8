//! Authorization, classification and routing decisions.
//!
//! Tenant-programmable Wasm policies (and the built-in ones compiled from `policies/`) plug in here. Until
//! they land, each slot has a fixed built-in behaviour, stated on each function; the pipeline already
//! calls the three slots in their final order.

use std::sync::Arc;

use crate::auth::Principal;
use crate::config::{DeploymentKind, Tier};
use crate::error::{ApiError, ErrorCode};
use crate::providers::{Deployment, RoutingSnapshot};

/// The `auth` slot's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Allow,
}

/// Built-in `auth`: any authenticated key of the tenant may use the data plane (roles gate the tenant
/// self-service endpoints, not inference).
pub fn authorize(_principal: &Principal) -> Result<Authorization, ApiError> {
    Ok(Authorization::Allow)
}

/// The `classify` slot's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
}

/// The deployments a request may go to, in fallback order, and the tier they serve.
#[derive(Debug, Clone)]
pub struct Route {
    pub deployments: Arc<[Arc<Deployment>]>,
}

/// Built-in `route`: the deployments configured for the requested name (a deployment, or a logical model's
/// ordered list). `auto` needs the classifier and router policies, which are not in this build.
pub fn route(
    snapshot: &RoutingSnapshot,
    model: &str,
    kind: DeploymentKind,
) -> Result<Route, ApiError> {
    let not_found = || ApiError {
        code: ErrorCode::ModelNotFound,
        message: format!("the model `{model}` does not exist or you do not have access to it"),
        param: Some("model".to_owned()),
        headers: Vec::new(),
    };
    let deployments = snapshot.resolve(model).ok_or_else(not_found)?;
    // A chat model named on the embeddings endpoint (or the reverse) is as unknown as a missing one.
    if deployments.is_empty() || deployments.iter().any(|d| d.config.kind != kind) {
        return Err(not_found());
    }
    Ok(Route { deployments })
}

/// Built-in `classify`: the tier of the first deployment the route names (no complexity scoring yet).
pub fn classify(route: &Route) -> Classification {
    Classification {
        tier: route
            .deployments
            .first()
            .map_or(Tier::Standard, |d| d.config.tier),
    }
}
