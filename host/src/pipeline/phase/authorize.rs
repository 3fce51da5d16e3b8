//! Authorize: the tenant's `auth` policy, if any, on the policy pool. `Err` is 403 `policy_denied`, 503 when
//! the wall-clock backstop stopped the policy (the host's fault, retryable), or 429 when the tenant's
//! policies used their CPU budget or fill their line of the pool. Its labels go to the next slots. The view
//! the policies see is built here, once, when any policy will run.

use std::sync::Arc;

use crate::error::ApiError;
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::Call;
use crate::policy::{self, AuthOutcome, PolicyRequest, RequestFacts};

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Authorize);
    let auth = call.has_policy(policy::Slot::Auth);
    if auth || call.classifies() || call.routes() {
        call.view = view(call).map(Arc::new);
    }
    let (true, Some(view)) = (auth, call.view.as_ref()) else {
        return Ok(Flow::Next);
    };
    let outcome = call
        .ex
        .app
        .policies
        .authorize(call.tenant.as_deref(), view, &mut call.trail)
        .await;
    let decided = call.trail.as_str().to_owned();
    call.ex.note(|r| r.policy = decided);
    match outcome {
        AuthOutcome::Allow(labels) => {
            if let Some(view) = call.view.as_mut() {
                Arc::make_mut(view).labels.extend(labels);
            }
            Ok(Flow::Next)
        }
        refused => Err(ApiError::from(refused)),
    }
}

/// What the policies see of the request (plain data, nothing secret).
fn view(call: &Call<'_>) -> Option<PolicyRequest> {
    let principal = call.ex.principal.as_ref()?;
    let metadata = call
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix("x-sluice-meta-")?;
            Some((key.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Some(policy::request_view(&RequestFacts {
        request_id: &call.ex.id,
        principal,
        endpoint: call.endpoint,
        model: &call.model,
        chat: call.request.chat(),
        max_tokens: call.max_output,
        stream: call.stream,
        prompt_tokens: call.bound.prompt_tokens,
        metadata,
    }))
}
