//! Candidates: `auto` → the tenant's chat catalog, a name → its deployments; only the tenant's allowed
//! regions. `Err` is 404 `model_not_found`, 403 when no deployment is in an allowed region, or 400 for an
//! `auto` without any chat deployment.

use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::Call;
use crate::policy;

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Candidates);
    let snapshot = call.ex.app.routing.load();
    let model = &call.model;
    let found = policy::Policies::candidates(&snapshot, call.tenant.as_deref(), model, call.kind())
        .ok_or_else(|| ApiError {
            code: ErrorCode::ModelNotFound,
            message: format!("the model `{model}` does not exist or you do not have access to it"),
            param: Some("model".to_owned()),
            headers: Vec::new(),
        })?;
    if found.is_empty() {
        return Err(if call.auto() {
            ApiError::invalid(
                "model",
                "`auto` needs a chat deployment in an allowed region",
            )
        } else {
            ApiError::new(
                ErrorCode::PolicyDenied,
                format!("no deployment serving `{model}` is in the tenant's allowed regions"),
            )
        });
    }
    call.candidates = found;
    Ok(Flow::Next)
}
