//! Cache: the exact tier, then the semantic tier (the request's embedding: the classifier's when it made
//! one, else made here), within the tenant. A hit is the answer: nothing is reserved or forwarded. A miss
//! keeps what `respond` needs to store the answer. `Err` is 400 for a malformed `x-sluice-cache-threshold`.

use crate::cache::{self, CacheStatus};
use crate::error::ApiError;
use crate::exchange::Phase;
use crate::pipeline::Flow;
use crate::pipeline::call::{Call, Typed};

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Flow, ApiError> {
    let timer = call.ex.phase(Phase::Cache);
    let tenant = call.tenant_id();
    let (status, hit) = lookup(call, &tenant).await?;
    drop(timer);
    call.ex.app.cache.count(&tenant, status);
    call.cache = status;
    let subject = hit.as_ref().map(|h| format!("cache:{}", h.id));
    call.ex.note(|r| {
        r.cache = status;
        if let Some(subject) = subject {
            r.subject = subject;
        }
    });
    match hit {
        Some(hit) => super::respond::from_cache(call, hit)
            .await
            .map(Flow::Answer),
        None => Ok(Flow::Next),
    }
}

async fn lookup(
    call: &mut Call<'_>,
    tenant: &str,
) -> Result<(CacheStatus, Option<cache::Hit>), ApiError> {
    use CacheStatus::{Bypass, HitExact, HitSemantic, Miss};
    let app = call.ex.app.clone();
    let Typed::Chat(chat) = &call.request else {
        return Ok((Bypass, None));
    };
    // A tenant that keeps no content gets no answer kept either.
    if app.audit.retention_days(tenant) == 0 {
        return Ok((Bypass, None));
    }
    let settings = app.cache.settings(tenant);
    let family = match &call.classified {
        Some(c) => format!("{}/{}", call.model, c.tier.as_str()),
        None => call.model.clone(),
    };
    let plan = match app
        .cache
        .plan(tenant, &settings, chat, call.headers, family)
    {
        Err(e) => {
            return Err(ApiError::invalid(
                cache::key::THRESHOLD_HEADER,
                e.to_string(),
            ));
        }
        Ok(Err(_)) => return Ok((Bypass, None)),
        Ok(Ok(plan)) => plan,
    };
    if plan.read
        && let Some(hit) = app.cache.lookup_exact(tenant, &plan)
    {
        return Ok((HitExact, Some(hit)));
    }
    let vector = match (&plan.question, call.embedded.take()) {
        (Some(question), Some(e)) if e.question == *question => Some((e.vector, e.digest)),
        (Some(question), _) => super::classify::embed(&app, tenant, question).await,
        (None, _) => None,
    };
    if plan.read
        && let Some((v, digest)) = &vector
    {
        // f32 as the index measures; 0.95 in f64 and in f32 round to the same f32.
        let threshold = plan
            .threshold
            .map_or(settings.threshold, |t| f64::from(t).max(settings.threshold))
            as f32;
        let query = cache::Query {
            vector: v,
            embedder: digest,
        };
        if let Some(hit) = app
            .cache
            .lookup_semantic(tenant, &plan, query, threshold, true)
        {
            return Ok((HitSemantic, Some(hit)));
        }
    }
    call.pending = Some(app.cache.pending(tenant, plan, vector));
    Ok((Miss, None))
}
