//! In-process fake upstreams (OpenAI-compatible HTTP servers on 127.0.0.1:0) built from a small set of
//! behaviours, counting their hits and recording what they received.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answers every request at once.
    Ok,
    /// Waits before the response headers.
    Slow(Duration),
    /// Answers with this status and an OpenAI error body.
    Status(u16),
    /// Fails the first `n` requests with 500, then behaves like `Ok`.
    Flaky(usize),
    /// Streams these content pieces, `interval` apart.
    Stream {
        pieces: Vec<String>,
        interval: Duration,
    },
    /// Streams `after` chunks, then breaks the connection.
    ResetMidStream { after: usize },
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Speaks the Anthropic Messages API (`/v1/messages`), streaming included.
    Anthropic,
    /// Answers 200 with this JSON body, whatever was asked.
    Json(serde_json::Value),
    /// Answers this status with an error whose message quotes the whole request body (as some upstreams
    /// quote the prompt).
    EchoError(u16),
    /// Streams these events' data verbatim (`data: <each>\n\n`), whatever was asked.
    Sse(Vec<String>),
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Counters {
    hits: AtomicUsize,
    /// Streams whose body was dropped before it finished (the gateway hung up).
    cancelled: AtomicUsize,
    completed: AtomicUsize,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request as in flight until its response is handed to hyper.
struct InFlight(Arc<Counters>);

impl InFlight {
    fn new(counters: &Arc<Counters>) -> InFlight {
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Upstream {
    /// Base URL including `/v1`, for a provider's `base_url`.
    pub url: String,
    counters: Arc<Counters>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn full(status: u16, body: String) -> http::Response<Body> {
    let mut resp = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn completion(model: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from upstream"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    })
    .to_string()
}

fn chunk(model: &str, delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let v = serde_json::json!({
        "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {v}\n\n"))
}

/// Counts a stream as completed when it ran to its end, as cancelled when it was dropped before.
struct StreamGuard {
    counters: Arc<Counters>,
    done: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.done {
            self.counters.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn stream_response(
    model: &str,
    pieces: Vec<String>,
    interval: Duration,
    reset_after: Option<usize>,
    counters: Arc<Counters>,
    include_usage: bool,
) -> http::Response<Body> {
    let mut events: Vec<Bytes> = vec![chunk(
        model,
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    for p in &pieces {
        events.push(chunk(model, serde_json::json!({"content": p}), None));
    }
    events.push(chunk(model, serde_json::json!({}), Some("stop")));
    if include_usage {
        let v = serde_json::json!({
            "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": pieces.len(), "total_tokens": 7 + pieces.len()}
        });
        events.push(Bytes::from(format!("data: {v}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let total = events.len();
    let guard = Arc::new(Mutex::new(StreamGuard {
        counters,
        done: false,
    }));
    let s = futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, bytes)| {
        let guard = guard.clone();
        async move {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            if reset_after.is_some_and(|n| i >= n) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "scripted reset",
                ));
            }
            if i + 1 == total {
                guard.lock().unwrap().done = true;
            }
            Ok(Frame::data(bytes))
        }
    });
    // Stop after the first error so hyper aborts the connection.
    let s = s.scan(false, |failed, item| {
        let out = if *failed { None } else { Some(item) };
        if matches!(out, Some(Err(_))) {
            *failed = true;
        }
        futures_util::future::ready(out)
    });
    let mut resp = http::Response::new(BodyExt::boxed_unsync(StreamBody::new(s)));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    resp
}

impl Upstream {
    pub async fn start(behavior: Behavior) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (c, r, s) = (counters.clone(), recorded.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = s.cancelled() => return,
                    a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
                };
                let (c, r, behavior, s) = (c.clone(), r.clone(), behavior.clone(), s.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (c, r, behavior) = (c.clone(), r.clone(), behavior.clone());
                            async move { Ok::<_, Infallible>(respond(req, behavior, c, r).await) }
                        },
                    );
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        () = s.cancelled() => {}
                    }
                });
            }
        });
        Upstream {
            url: format!("http://{addr}/v1"),
            counters,
            recorded,
            stop,
        }
    }

    pub async fn ok() -> Upstream {
        Upstream::start(Behavior::Ok).await
    }
    pub async fn slow(d: Duration) -> Upstream {
        Upstream::start(Behavior::Slow(d)).await
    }
    pub async fn status(code: u16) -> Upstream {
        Upstream::start(Behavior::Status(code)).await
    }
    pub async fn flaky(n: usize) -> Upstream {
        Upstream::start(Behavior::Flaky(n)).await
    }
    pub async fn stream(pieces: &[&str], interval: Duration) -> Upstream {
        let pieces = pieces.iter().map(|s| (*s).to_owned()).collect();
        Upstream::start(Behavior::Stream { pieces, interval }).await
    }
    pub async fn reset_mid_stream(after: usize) -> Upstream {
        Upstream::start(Behavior::ResetMidStream { after }).await
    }

    pub fn hits(&self) -> usize {
        self.counters.hits.load(Ordering::SeqCst)
    }
    pub fn cancelled_streams(&self) -> usize {
        self.counters.cancelled.load(Ordering::SeqCst)
    }
    pub fn completed_streams(&self) -> usize {
        self.counters.completed.load(Ordering::SeqCst)
    }
    /// The most requests this upstream was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.counters.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn respond(
    req: http::Request<hyper::body::Incoming>,
    behavior: Behavior,
    counters: Arc<Counters>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) -> http::Response<Body> {
    let hit = counters.hits.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::new(&counters);
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    recorded.lock().unwrap().push(Recorded {
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: json.clone(),
    });
    let model = json
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("unknown")
        .to_owned();
    let streaming = json
        .get("stream")
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let include_usage = json
        .pointer("/stream_options/include_usage")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let error = |code: u16| {
        full(code, serde_json::json!({"error": {"message": format!("upstream says {code}"), "type": "server_error"}}).to_string())
    };
    let ok = |counters: Arc<Counters>| {
        if parts.uri.path().ends_with("/embeddings") {
            return full(
                200,
                serde_json::json!({
                    "object": "list", "model": model,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                    "usage": {"prompt_tokens": 2, "total_tokens": 2}
                })
                .to_string(),
            );
        }
        if streaming {
            let pieces = vec![
                "Hello".to_owned(),
                " from".to_owned(),
                " upstream".to_owned(),
            ];
            stream_response(
                &model,
                pieces,
                Duration::ZERO,
                None,
                counters,
                include_usage,
            )
        } else {
            full(200, completion(&model))
        }
    };
    match behavior {
        Behavior::Ok => ok(counters),
        Behavior::Slow(d) => {
            tokio::time::sleep(d).await;
            ok(counters)
        }
        Behavior::Status(code) => error(code),
        Behavior::Flaky(n) if hit < n => error(500),
        Behavior::Flaky(_) => ok(counters),
        Behavior::Stream { pieces, interval } => {
            stream_response(&model, pieces, interval, None, counters, include_usage)
        }
        Behavior::ResetMidStream { after } => {
            let pieces = (0..10).map(|i| format!("piece{i} ")).collect();
            stream_response(
                &model,
                pieces,
                Duration::from_millis(5),
                Some(after),
                counters,
                include_usage,
            )
        }
        Behavior::Garbage => full(200, "<html>not json</html>".to_owned()),
        Behavior::Anthropic => anthropic(&model, streaming),
        Behavior::Json(body) => full(200, body.to_string()),
        Behavior::Sse(events) => {
            let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            let mut resp = full(200, body);
            resp.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/event-stream"),
            );
            resp
        }
        Behavior::EchoError(code) => full(
            code,
            serde_json::json!({"error": {"message": format!("invalid request: {json}"), "type": "invalid_request_error"}})
                .to_string(),
        ),
    }
}

fn anthropic(model: &str, streaming: bool) -> http::Response<Body> {
    if !streaming {
        return full(
            200,
            serde_json::json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "Bonjour from Claude"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 21, "output_tokens": 4}
            })
            .to_string(),
        );
    }
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 21, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", serde_json::json!({"type": "ping"})),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour"}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " from Claude"}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    let text: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    let mut resp = full(200, text);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    resp
}
