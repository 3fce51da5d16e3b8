//! Phase 9's loop: the route's deployments in order, each in its concurrency slot, failing over after
//! connect errors, 5xx, timeouts and saturation, all of which happen before anything reached the client.

use std::sync::Arc;
use std::time::Instant;

use super::inference::Typed;
use crate::app::App;
use crate::error::ApiError;
use crate::metrics::UpstreamLabels;
use crate::policy::Route;
use crate::providers::{
    Deployment, Endpoint, Enrichment, ProviderError, SlotPermit, UpstreamReply, UpstreamRequest,
};

/// Everything about an upstream call except the body, which `forward` adapts per deployment.
pub struct CallShape<'a> {
    pub endpoint: Endpoint,
    pub stream: bool,
    pub client_wants_usage: bool,
    pub enrich: Enrichment<'a>,
}

/// The deployment that answered, its answer, and its concurrency slot (held until the answer is done).
pub struct Forwarded {
    pub deployment: Arc<Deployment>,
    pub reply: UpstreamReply,
    pub permit: SlotPermit,
}

/// Tries the route's deployments in order. `Err` is the failure of the last one tried.
pub async fn forward(
    app: &App,
    route: &Route,
    request: &mut Typed,
    shape: &CallShape<'_>,
) -> Result<Forwarded, ApiError> {
    let mut last_err = None;
    for (i, dep) in route.deployments.iter().enumerate() {
        let body = request.for_upstream(&dep.config.upstream_model)?;
        let started = Instant::now();
        let upstream = UpstreamRequest {
            endpoint: shape.endpoint,
            body: &body,
            stream: shape.stream,
            client_wants_usage: shape.client_wants_usage,
            enrich: shape.enrich.clone(),
        };
        // A saturated deployment counts as a failure before the first byte: try the next one.
        let result = match dep.try_acquire() {
            Ok(permit) => dep
                .provider
                .call(&dep.config, &upstream)
                .await
                .map(|reply| (reply, permit)),
            Err(e) => Err(e),
        };
        observe(app, dep, started, &result);
        match result {
            Ok((reply, permit)) => {
                return Ok(Forwarded {
                    deployment: dep.clone(),
                    reply,
                    permit,
                });
            }
            Err(e) => {
                let more = i + 1 < route.deployments.len();
                tracing::warn!(deployment = %dep.config.name, error = %e, will_fail_over = e.is_retryable() && more, "upstream call failed");
                if !(e.is_retryable() && more) {
                    return Err(ApiError::from(&e));
                }
                last_err = Some(e);
            }
        }
    }
    let last = last_err.unwrap_or_else(|| ProviderError::Protocol {
        provider: String::new(),
        detail: "the route named no deployment".to_owned(),
    });
    Err(ApiError::from(&last))
}

fn observe<T>(app: &App, dep: &Deployment, started: Instant, result: &Result<T, ProviderError>) {
    app.metrics
        .upstream_seconds
        .observe(started.elapsed().as_secs_f64());
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    app.metrics
        .upstream
        .get_or_create(&UpstreamLabels {
            deployment: dep.config.name.clone(),
            outcome,
        })
        .inc();
}
