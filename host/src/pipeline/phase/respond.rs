//! Respond: settle, audit, answer. A complete answer is settled and audited before it leaves (if its entry
//! cannot be made durable the answer is withheld: 503) and, once audited, stored in the cache when it may
//! be; a stream takes the entry with it and settles, audits and stores when it ends. A cache hit is
//! answered here too, at zero cost.

use bytes::Bytes;

use crate::cache;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::Phase;
use crate::pipeline::call::{Call, Forwarded};
use crate::pipeline::stream::AnswerStream;
use crate::pipeline::{Reply, Routed};
use crate::providers::{StreamItem, UpstreamReply, sse};

pub(in crate::pipeline) async fn run(call: &mut Call<'_>) -> Result<Reply, ApiError> {
    let _timer = call.ex.phase(Phase::Respond);
    let Some(Forwarded {
        deployment,
        reply,
        permit,
    }) = call.forwarded.take()
    else {
        return Err(ApiError::new(ErrorCode::Internal, "respond before forward"));
    };
    let name = deployment.config.name.clone();
    let tier = deployment.config.tier;
    let routed = Routed {
        deployment: name.clone(),
        tier,
        cache: call.cache,
        similarity: None,
        rates: call.rates(),
    };
    match reply {
        UpstreamReply::Complete { mut json, usage } => {
            drop(permit);
            // The cost travels in the response's usage, as `usage.cost_micro_usd`.
            if let Some(u) = usage {
                let cost = crate::admission::cost_micro_usd(u, deployment.config.price);
                sse::insert_usage_cost(&mut json, cost);
            }
            let body = serde_json::to_vec(&json).map(Bytes::from).map_err(|e| {
                ApiError::new(ErrorCode::Internal, format!("encoding the answer: {e}"))
            })?;
            if usage.is_none() {
                // The upstream answered without reporting usage: charge what the answer bounds.
                let generated = sse::generated_text_bytes(&body);
                call.ex.note(|r| {
                    r.estimate_missing_usage = true;
                    r.generated_bytes = generated;
                });
            }
            call.ex
                .audit
                .commit(200, None, usage, Some(&body))
                .await
                .map_err(|e| ApiError::from(&e))?;
            // Stored once audited, and only an answer that completed.
            if let Some(pending) = call.pending.take()
                && let Some(answer) =
                    cache::Answer::complete(&json, body.clone(), name, tier, pending.own_cap())
            {
                call.ex.app.cache.store(&call.tenant_id(), pending, answer);
            }
            Ok(Reply::Json {
                status: 200,
                body,
                routed: Some(routed),
            })
        }
        UpstreamReply::Stream(events) => {
            let guard = call.ex.audit.hand_off();
            let mut events = Box::new(AnswerStream::new(
                call.ex.app.clone(),
                events,
                guard,
                permit,
            ));
            if let Some(pending) = call.pending.take() {
                events.store_when_done(call.tenant_id(), pending, (name, tier));
            }
            Ok(Reply::Stream { events, routed })
        }
    }
}

/// A hit's answer: the stored completion under a fresh id, at zero cost, as JSON or replayed as a stream.
/// Audited like any answer, with the entry that answered as its subject.
pub(in crate::pipeline) async fn from_cache(
    call: &mut Call<'_>,
    hit: cache::Hit,
) -> Result<Reply, ApiError> {
    let _timer = call.ex.phase(Phase::Respond);
    let created = u64::try_from(crate::storage::unix_now()).unwrap_or(0);
    let body = cache::replay::hit_body(
        &hit.answer.body,
        &format!("chatcmpl-{}", call.ex.id),
        created,
    );
    let routed = Routed {
        deployment: hit.answer.deployment.clone(),
        tier: hit.answer.tier,
        cache: call.cache,
        similarity: hit.similarity,
        rates: call.rates(),
    };
    if call.stream {
        let chunks = cache::replay::replay(&body, call.client_wants_usage);
        let items = chunks
            .into_iter()
            .map(|c| Ok(StreamItem::Chunk(c)))
            .chain(std::iter::once(Ok(StreamItem::Done)));
        let guard = call.ex.audit.hand_off();
        let events = Box::new(AnswerStream::new(
            call.ex.app.clone(),
            Box::pin(futures_util::stream::iter(items)),
            guard,
            crate::providers::SlotPermit::none(),
        ));
        return Ok(Reply::Stream { events, routed });
    }
    call.ex
        .audit
        .commit(200, None, None, Some(&body))
        .await
        .map_err(|e| ApiError::from(&e))?;
    Ok(Reply::Json {
        status: 200,
        body,
        routed: Some(routed),
    })
}
