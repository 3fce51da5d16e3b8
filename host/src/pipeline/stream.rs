//! A streamed answer: passes upstream SSE events to the client one by one, turns an upstream failure into
//! an SSE error event and a clean end, and makes the request's audit entry (whose guard it owns) durable
//! before the final event (`[DONE]` or the error) is sent. If the client goes away first, dropping the
//! stream cancels the upstream request and the entry is appended in the background: exactly one entry
//! either way. The edge wraps it into the response body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::app::App;
use crate::audit::AuditError;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::AuditGuard;
use crate::providers::sse::DONE;
use crate::providers::{EventStream, SlotPermit, StreamItem, Usage};

type AuditFuture = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send>>;

enum State {
    Streaming(EventStream),
    /// The upstream is done; the entry is being made durable, then `last` is sent.
    Auditing {
        append: AuditFuture,
        last: Last,
    },
    Finished,
}

enum Last {
    Done,
    Error(ApiError),
}

pub struct AnswerStream {
    app: Arc<App>,
    state: State,
    request_id: String,
    /// The request's entry, committed when the stream ends.
    guard: AuditGuard,
    usage: Option<Usage>,
    /// The answering deployment's prices, for the cost in the usage event.
    price: Option<crate::config::Price>,
    /// Set when the usage arrived: the next event carrying it gets its `usage.cost_micro_usd`.
    cost_pending: bool,
    /// The events sent so far (cheap `Bytes` handles), when the tenant keeps content.
    sent: Option<Vec<Bytes>>,
    /// A miss's answer goes to the cache when the stream ends complete and audited: the tenant, what the
    /// lookup kept, and the deployment and tier that answered.
    store: Option<(String, crate::cache::Pending, (String, crate::config::Tier))>,
    /// The deployment's concurrency slot, released when the stream ends.
    _permit: SlotPermit,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl AnswerStream {
    pub fn new(
        app: Arc<App>,
        upstream: EventStream,
        mut guard: AuditGuard,
        permit: SlotPermit,
    ) -> AnswerStream {
        app.metrics.open_streams.inc();
        let mut keep = false;
        let mut request_id = String::new();
        let mut price = None;
        if let Some(record) = guard.record() {
            keep = app.audit.retention_days(&record.principal.tenant_id) > 0;
            // The upstream answered: a stream that ends without a usage report is charged what it generated.
            // (A replayed cache hit has no deployment and costs nothing.)
            record.estimate_missing_usage = record.deployment.is_some();
            request_id.clone_from(&record.request_id);
            price = record.deployment.as_ref().map(|d| d.config.price);
        }
        AnswerStream {
            sent: keep.then(Vec::new),
            app,
            state: State::Streaming(upstream),
            request_id,
            guard,
            price,
            usage: None,
            cost_pending: false,
            store: None,
            _permit: permit,
        }
    }

    /// Stores the answer in the cache once the stream ended complete and its entry is durable.
    pub fn store_when_done(
        &mut self,
        tenant: String,
        pending: crate::cache::Pending,
        answered_by: (String, crate::config::Tier),
    ) {
        self.store = Some((tenant, pending, answered_by));
    }

    fn store_answer(&mut self) {
        let (Some((tenant, pending, (deployment, tier))), Some(sent)) =
            (self.store.take(), self.sent.as_ref())
        else {
            return;
        };
        let own_cap = pending.own_cap();
        let completion = crate::cache::replay::assemble(sent, self.usage);
        if let Some(answer) = completion.and_then(|json| {
            let body = Bytes::from(serde_json::to_vec(&json).ok()?);
            crate::cache::Answer::complete(&json, body, deployment, tier, own_cap)
        }) {
            self.app.cache.store(&tenant, pending, answer);
        }
    }

    fn error_event(&self, err: &ApiError) -> Bytes {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&err.body(&self.request_id));
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    /// The request's entry on its way to the sequencer, with the streamed answer as the response content.
    fn append(&mut self, error_code: Option<&str>) -> AuditFuture {
        let response = self.sent.as_ref().map(|chunks| chunks.concat());
        Box::pin(
            self.guard
                .commit(200, error_code, self.usage, response.as_deref()),
        )
    }

    /// The usage event as the client gets it: with the request's cost in `usage.cost_micro_usd`.
    fn with_cost(&self, event: Bytes) -> Bytes {
        let (Some(usage), Some(price)) = (self.usage, self.price) else {
            return event;
        };
        let cost = crate::admission::cost_micro_usd(usage, price);
        event
            .strip_prefix(b"data: ")
            .map(|json| json.trim_ascii_end())
            .and_then(|json| crate::providers::sse::with_usage_cost(json, cost))
            .map_or(event.clone(), |json| {
                crate::providers::sse::data_event(&json)
            })
    }

    fn start_audit(&mut self, last: Last) {
        let error_code = match &last {
            Last::Done => None,
            Last::Error(e) => Some(e.code.as_str()),
        };
        self.state = State::Auditing {
            append: self.append(error_code),
            last,
        };
    }
}

impl Stream for AnswerStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            match &mut self.state {
                State::Finished => return Poll::Ready(None),
                State::Auditing { append, .. } => {
                    let Poll::Ready(result) = append.poll_unpin(cx) else {
                        return Poll::Pending;
                    };
                    let State::Auditing { last, .. } =
                        std::mem::replace(&mut self.state, State::Finished)
                    else {
                        return Poll::Ready(None);
                    };
                    let frame = match (result, last) {
                        (Ok(_), Last::Done) => {
                            self.store_answer();
                            Bytes::from_static(DONE)
                        }
                        (Ok(_), Last::Error(e)) => self.error_event(&e),
                        // Not durable: the client must not take the answer as complete.
                        (Err(e), _) => {
                            let err = ApiError::from(&e);
                            self.error_event(&err)
                        }
                    };
                    return Poll::Ready(Some(frame));
                }
                State::Streaming(upstream) => {
                    let item = match upstream.poll_next_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(item) => item,
                    };
                    match item {
                        Some(Ok(StreamItem::Chunk(mut bytes))) => {
                            if self.cost_pending {
                                self.cost_pending = false;
                                bytes = self.with_cost(bytes);
                            }
                            let generated = crate::providers::sse::generated_text_bytes(&bytes);
                            if let Some(record) = self.guard.record() {
                                record.generated_bytes += generated;
                            }
                            if let Some(sent) = &mut self.sent {
                                sent.push(bytes.clone());
                            }
                            return Poll::Ready(Some(bytes));
                        }
                        Some(Ok(StreamItem::Usage(u))) => {
                            self.usage = Some(u);
                            self.cost_pending = true;
                        }
                        Some(Ok(StreamItem::Done)) => self.start_audit(Last::Done),
                        Some(Err(e)) => {
                            tracing::warn!(request_id = %self.request_id, error = %e, "upstream stream failed");
                            self.start_audit(Last::Error(ApiError::from(&e)));
                        }
                        None => {
                            // The adapter ended without `Done`: report it rather than pretend the answer is whole.
                            self.start_audit(Last::Error(ApiError::new(
                                ErrorCode::UpstreamError,
                                "stream ended early",
                            )));
                        }
                    }
                }
            }
        }
    }
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        self.app.metrics.open_streams.dec();
        let append: AuditFuture = match std::mem::replace(&mut self.state, State::Finished) {
            State::Finished => return,
            // The entry is on its way; see it through even though nobody waits for it any more.
            State::Auditing { append, .. } => append,
            State::Streaming(_) => {
                tracing::info!(request_id = %self.request_id, "client went away mid-stream; upstream request cancelled");
                self.append(Some("client_disconnected"))
            }
        };
        let request_id = self.request_id.clone();
        self.app.background.spawn(async move {
            if let Err(e) = append.await {
                tracing::error!(request_id = %request_id, error = %e, "audit entry of an interrupted stream failed");
            }
        });
    }
}
