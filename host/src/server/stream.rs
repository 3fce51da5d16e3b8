//! The streaming response body: passes upstream SSE events to the client one by one, turns an upstream
//! failure into an SSE error event and a clean end, and makes the request's audit entry durable before the
//! final event (`[DONE]` or the error) is sent. If the client goes away first, dropping the body cancels
//! the upstream request and the entry is appended in the background: exactly one entry either way.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http_body::{Body, Frame};

use super::App;
use super::pipeline::{Finished, audit_unavailable};
use crate::audit::{Appended, AuditError};
use crate::error::{ApiError, ErrorCode};
use crate::providers::sse::DONE;
use crate::providers::{EventStream, SlotPermit, StreamItem, Usage};

type AuditFuture = Pin<Box<dyn Future<Output = Result<Appended, AuditError>> + Send>>;

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

pub(super) struct SseBody {
    app: Arc<App>,
    state: State,
    finished: Finished,
    usage: Option<Usage>,
    /// Set when the usage arrived: the next event carrying it gets its `usage.cost_micro_usd`.
    cost_pending: bool,
    /// The events sent so far (cheap `Bytes` handles), when the tenant keeps content.
    sent: Option<Vec<Bytes>>,
    /// The deployment's concurrency slot, released when the stream ends.
    _permit: SlotPermit,
}

impl SseBody {
    pub fn new(
        app: Arc<App>,
        upstream: EventStream,
        finished: Finished,
        permit: SlotPermit,
    ) -> SseBody {
        app.metrics.open_streams.inc();
        let keep = app.audit.retention_days(&finished.principal.tenant_id) > 0;
        let mut finished = finished;
        // The upstream answered: a stream that ends without a usage report is charged what it generated.
        finished.estimate_missing_usage = true;
        SseBody {
            sent: keep.then(Vec::new),
            app,
            state: State::Streaming(upstream),
            finished,
            usage: None,
            cost_pending: false,
            _permit: permit,
        }
    }

    fn error_event(&self, err: &ApiError) -> Bytes {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&err.body(&self.finished.request_id));
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    /// The request's entry on its way to the sequencer, with the streamed answer as the response content.
    fn append(&self, error_code: Option<&str>) -> AuditFuture {
        let response = self.sent.as_ref().map(|chunks| chunks.concat());
        let (entry, content) =
            self.finished
                .record(&self.app, 200, error_code, self.usage, response.as_deref());
        Box::pin(
            self.app
                .audit
                .append_settling(entry, content, self.finished.release()),
        )
    }

    /// The usage event as the client gets it: with the request's cost in `usage.cost_micro_usd`.
    fn with_cost(&self, event: Bytes) -> Bytes {
        let (Some(usage), Some(dep)) = (self.usage, &self.finished.deployment) else {
            return event;
        };
        let cost = crate::admission::cost_micro_usd(usage, dep.config.price);
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

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
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
                        (Ok(_), Last::Done) => Bytes::from_static(DONE),
                        (Ok(_), Last::Error(e)) => self.error_event(&e),
                        // Not durable: the client must not take the answer as complete.
                        (Err(e), _) => {
                            let err = audit_unavailable(&self.app, &e);
                            self.error_event(&err)
                        }
                    };
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
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
                            self.finished.generated_bytes +=
                                crate::providers::sse::generated_text_bytes(&bytes);
                            if let Some(sent) = &mut self.sent {
                                sent.push(bytes.clone());
                            }
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
                        Some(Ok(StreamItem::Usage(u))) => {
                            self.usage = Some(u);
                            self.cost_pending = true;
                        }
                        Some(Ok(StreamItem::Done)) => self.start_audit(Last::Done),
                        Some(Err(e)) => {
                            tracing::warn!(request_id = %self.finished.request_id, error = %e, "upstream stream failed");
                            self.start_audit(Last::Error(e.to_api_error()));
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

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.app.metrics.open_streams.dec();
        let append: AuditFuture = match std::mem::replace(&mut self.state, State::Finished) {
            State::Finished => return,
            // The entry is on its way; see it through even though nobody waits for it any more.
            State::Auditing { append, .. } => append,
            State::Streaming(_) => {
                tracing::info!(request_id = %self.finished.request_id, "client went away mid-stream; upstream request cancelled");
                self.append(Some("client_disconnected"))
            }
        };
        let request_id = self.finished.request_id.clone();
        self.app.background.spawn(async move {
            if let Err(e) = append.await {
                tracing::error!(request_id = %request_id, error = %e, "audit entry of an interrupted stream failed");
            }
        });
    }
}
