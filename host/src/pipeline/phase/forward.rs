//! Forward: the route's deployments in order, each in its concurrency slot, failing over after connect
//! errors, 5xx, timeouts and saturation, all of which happen before anything reached the client. `Err` is
//! the last upstream failure, as 502 / 504 / 429.

use std::time::Instant;

use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::metrics::UpstreamLabels;
use crate::pipeline::Flow;
use crate::pipeline::call::{Call, Forwarded, Typed};
use crate::policy::Route;
use crate::providers::{Deployment, Endpoint, Enrichment, ProviderError, UpstreamRequest};
use crate::wire::StreamOptions;

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Forward);
    let Some(route) = call.route.take() else {
        return Err(ApiError::new(ErrorCode::Internal, "forward before route"));
    };
    let tier = call
        .classified
        .as_ref()
        .map_or_else(|| route.configured_tier(), |c| c.tier);
    if let Typed::Chat(chat) = &mut call.request
        && call.stream
    {
        // Always ask for usage so a stream's spend is known; the chunk is withheld unless the client asked.
        chat.stream_options
            .get_or_insert_with(|| StreamOptions {
                include_usage: None,
                rest: serde_json::Map::new(),
            })
            .include_usage = Some(true);
    }
    let tenant = call.tenant_id();
    let shape = CallShape {
        endpoint: call.endpoint,
        stream: call.stream,
        client_wants_usage: call.client_wants_usage,
        enrich: Enrichment {
            request_id: &call.ex.id,
            traceparent: &call.ex.traceparent,
            tenant_id: &tenant,
            tier: tier.as_str(),
        },
    };
    let forwarded = forward(&call.ex.app, &route, &mut call.request, &shape).await?;
    let deployment = forwarded.deployment.clone();
    call.ex.note(|r| r.deployment = Some(deployment));
    call.forwarded = Some(forwarded);
    Ok(Flow::Next)
}

/// Everything about an upstream call except the body, which `forward` adapts per deployment.
struct CallShape<'a> {
    pub endpoint: Endpoint,
    pub stream: bool,
    pub client_wants_usage: bool,
    pub enrich: Enrichment<'a>,
}

/// Tries the route's deployments in order. `Err` is the failure of the last one tried.
async fn forward(
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
