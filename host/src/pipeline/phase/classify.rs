//! Classify: the tenant's classifier, or the built-in one when a router will read the tier. A classifier
//! that reads the embedding gets the question's (made here, only then, and kept on the call for the cache);
//! without an embedder, or when it is not made in time, it classifies without one, and the trail says so. A
//! failing classifier falls back to the built-in one: nothing here ends the request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::cache;
use crate::error::ApiError;
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::{Call, Embedded, Typed};
use crate::policy;

/// How long a request waits for its embedding before it goes on without (classify: structural features
/// only; cache: the exact tier only).
const EMBED_WAIT: Duration = Duration::from_secs(1);

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let _timer = call.ex.phase(Phase::Classify);
    if !call.classifies() || call.view.is_none() {
        return Ok(Flow::Next);
    }
    let routes = call.routes();
    let app = call.ex.app.clone();
    let embedding = if app
        .policies
        .classifier_reads_embedding(call.tenant.as_deref(), routes)
    {
        embed_question(call).await
    } else {
        None
    };
    let Some(view) = call.view.as_ref() else {
        return Ok(Flow::Next);
    };
    let classified = app
        .policies
        .classify(
            call.tenant.as_deref(),
            view,
            routes,
            embedding,
            &mut call.trail,
        )
        .await;
    if let (Some(c), Some(view)) = (&classified, call.view.as_mut()) {
        Arc::make_mut(view).labels.extend(c.labels.iter().cloned());
    }
    call.classified = classified;
    Ok(Flow::Next)
}

/// The question's embedding for the classifier, kept in `call.embedded` for the cache. `None` without a
/// text question, without an embedder, or when the embedder refuses or is late.
async fn embed_question(call: &mut Call<'_>) -> Option<Arc<policy::Embedding>> {
    let Typed::Chat(chat) = &call.request else {
        return None;
    };
    let question = cache::key::question_text(chat)?;
    let tenant = call.tenant_id();
    let (vector, digest) = embed(&call.ex.app, &tenant, &question).await?;
    let embedding = Arc::new(policy::Embedding {
        model_digest: format!("sha256:{digest}"),
        vector: vector.clone(),
    });
    call.embedded = Some(Embedded {
        question,
        vector,
        digest,
    });
    Some(embedding)
}

/// `text`'s embedding by the routing's embedder, and the embedder's digest; `None` when there is no
/// embedder or it refuses or is late (the caller goes on without).
pub(in crate::pipeline) async fn embed(
    app: &App,
    tenant: &str,
    text: &str,
) -> Option<(Vec<f32>, String)> {
    let embedder = app.routing.load().embedder()?.clone();
    let deadline = Instant::now() + EMBED_WAIT;
    match embedder
        .embed(tenant, vec![text.to_owned()], deadline)
        .await
    {
        Ok(mut e) if e.len() == 1 => Some((e.remove(0).vector, embedder.digest.to_owned())),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(tenant = %tenant, error = ?e, "no embedding");
            None
        }
    }
}
