//! Admit: request and token rates and in-flight limits, checked and taken at once. `Err` is 429 (with
//! `Retry-After`), or 400 for a request that can never fit a token limit.

use std::sync::Arc;

use crate::admission::Demand;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::Call;

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Admit);
    let Some(principal) = call.ex.principal.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "admit before authenticate",
        ));
    };
    let demand = Demand {
        key_id: &principal.key_id,
        endpoint: call.endpoint_name(),
        tokens: call.bound.prompt_tokens.saturating_add(
            call.max_output
                .map_or(0, |max| call.bound.output_tokens(max)),
        ),
        unbounded: call.bound.unbounded.is_some(),
    };
    let admitted = call.ex.app.admission.admit(&principal.tenant_id, &demand);
    let ticket = Arc::new(admitted.map_err(|r| call.refused(&r))?);
    let held = ticket.clone();
    call.ex.note(|r| r.ticket = Some(held));
    call.ticket = Some(ticket);
    Ok(Flow::Next)
}
