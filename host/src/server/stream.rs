//! The streaming response body: passes upstream SSE events to the client one by one, turns an upstream
//! failure into an SSE error event and a clean end, and settles and audits exactly once when the stream
//! ends, including when the client goes away (dropping the body cancels the upstream request).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Body, Frame};

use super::App;
use super::pipeline::Finished;
use crate::error::{ApiError, ErrorCode};
use crate::providers::sse::DONE;
use crate::providers::{EventStream, SlotPermit, StreamItem, Usage};

enum End {
    Completed,
    UpstreamFailed(&'static str),
}

pub(super) struct SseBody {
    app: Arc<App>,
    upstream: Option<EventStream>,
    finished: Finished,
    usage: Option<Usage>,
    end: Option<End>,
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
        SseBody {
            app,
            upstream: Some(upstream),
            finished,
            usage: None,
            end: None,
            _permit: permit,
        }
    }

    fn error_event(&self, err: &ApiError) -> Bytes {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&err.body(&self.finished.request_id));
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
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
            let Some(upstream) = self.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            let item = match upstream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match item {
                Some(Ok(StreamItem::Chunk(bytes))) => {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Some(Ok(StreamItem::Usage(u))) => self.usage = Some(u),
                Some(Ok(StreamItem::Done)) => {
                    self.upstream = None;
                    self.end = Some(End::Completed);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE)))));
                }
                Some(Err(e)) => {
                    tracing::warn!(request_id = %self.finished.request_id, error = %e, "upstream stream failed");
                    let api = e.to_api_error();
                    self.upstream = None;
                    self.end = Some(End::UpstreamFailed(api.code.as_str()));
                    return Poll::Ready(Some(Ok(Frame::data(self.error_event(&api)))));
                }
                None => {
                    // The adapter ended without `Done`: report it rather than pretend the answer is whole.
                    let api = ApiError::new(ErrorCode::UpstreamError, "stream ended early");
                    self.upstream = None;
                    self.end = Some(End::UpstreamFailed(api.code.as_str()));
                    return Poll::Ready(Some(Ok(Frame::data(self.error_event(&api)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.upstream.is_none() && self.end.is_some()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.app.metrics.open_streams.dec();
        // The HTTP status was already 200; the audit record carries what happened to the stream.
        let error_code = match self.end {
            Some(End::Completed) => None,
            Some(End::UpstreamFailed(code)) => Some(code),
            None => Some("client_disconnected"),
        };
        if error_code == Some("client_disconnected") {
            tracing::info!(request_id = %self.finished.request_id, "client went away mid-stream; upstream request cancelled");
        }
        self.finished.settle_and_audit(200, error_code, self.usage);
    }
}
