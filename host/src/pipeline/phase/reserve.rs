//! Reserve: the worst-case cost at the route's highest prices, against the budgets; the output cap sent
//! upstream is lowered (or set) so the reservation is a true bound. Under a cap, the key's budget cover
//! holds the reservation before anything is forwarded (raised durably first when it must be). `Err` is 402
//! `budget_exceeded`, or 503 when the cover could not be raised.
//!
//! It runs after `route`: the worst case needs the prices of every deployment the request may fail over to.

use crate::admission::BudgetAsk;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::{Call, Typed};
use crate::policy;
use crate::providers::Endpoint;
use crate::wire::ChatRequest;

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Reserve);
    let (Some(route), Some(ticket)) = (&call.route, call.ticket.clone()) else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "reserve before admit and route",
        ));
    };
    let (price, default_output) = policy::reservation_terms(route.deployments.iter().map(|d| &**d));
    let ask = BudgetAsk {
        prompt_tokens: call.bound.prompt_tokens,
        requested_output: call.max_output,
        choices: call.bound.choices,
        extra_output_tokens: call.bound.extra_output_tokens,
        unbounded: call.bound.unbounded.is_some(),
        default_output,
        price,
        generates: call.endpoint == Endpoint::Chat,
    };
    let hold = ticket.reserve_budget(&ask).map_err(|r| call.refused(&r))?;
    let reserved = hold.micro_usd;
    call.ex.note(|r| r.reserved_micro_usd = Some(reserved));
    if let (Some(max), Typed::Chat(chat)) = (hold.max_output, &mut call.request) {
        cap_output(chat, max);
        if Some(max) != call.max_output
            && let Some(pending) = &mut call.pending
        {
            // The cache's keys describe the client's cap; an answer this lower cap cuts short is not theirs.
            pending.cap_lowered();
        }
    }
    if hold.capped {
        let app = call.ex.app.clone();
        let waited = crate::admission::cover::hold(&app.audit, &ticket, &app.background)
            .await
            .map_err(|e| ApiError::from(&e))?;
        if let Some(waited) = waited {
            app.metrics
                .observe_phase("cover_raise", waited.as_secs_f64());
        }
    }
    Ok(Flow::Next)
}

/// Lowers the output cap the upstream gets to `max`: the field the client used (both when it sent both),
/// `max_tokens` when it sent none.
fn cap_output(chat: &mut ChatRequest, max: u32) {
    if chat.max_completion_tokens.is_some() {
        chat.max_completion_tokens = Some(max);
        if chat.max_tokens.is_some() {
            chat.max_tokens = Some(max);
        }
    } else {
        chat.max_tokens = Some(max);
    }
}
