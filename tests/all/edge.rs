//! The edge and the request's shape, driven in process: the route table (every known path with a wrong
//! method is 405 with `allow`, unknown paths 404), a panic in each phase still leaves exactly one audit
//! entry, and a client that hangs up before a non-streamed answer still gets its entry.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use sluice::audit::entry::Entry;
use sluice::exchange::Phase;

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, openai_provider};

async fn call(gw: &TestGateway, method: Method, path: &str, body: &[u8]) -> http::Response<Bytes> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = sluice::edge::handle(gw.app.clone(), req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, bytes)
}

fn code_of(resp: &http::Response<Bytes>) -> String {
    let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

#[tokio::test]
async fn every_known_path_answers_405_with_allow_to_other_methods() {
    let gw = TestGateway::start("").await;
    let known = sluice::edge::routes::known();
    assert!(
        known.len() >= 30,
        "the table lists every endpoint: {known:?}"
    );
    for (path, served) in known {
        for method in METHODS.iter().filter(|m| !served.contains(m)) {
            let resp = call(&gw, method.clone(), &path, b"{}").await;
            assert_eq!(
                resp.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(code_of(&resp), "method_not_allowed", "{method} {path}");
            let allow = resp.headers().get("allow").unwrap().to_str().unwrap();
            let mut listed: Vec<&str> = allow.split(", ").collect();
            let mut expected: Vec<&str> = served.iter().map(Method::as_str).collect();
            listed.sort_unstable();
            expected.sort_unstable();
            assert_eq!(listed, expected, "allow of {path}");
        }
    }
}

#[tokio::test]
async fn the_documented_paths_are_in_the_table_and_others_are_404() {
    let gw = TestGateway::start("").await;
    let documented = [
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/.well-known/sluice-audit-keys"),
        (Method::POST, "/v1/chat/completions"),
        (Method::POST, "/v1/embeddings"),
        (Method::GET, "/v1/models"),
        (Method::GET, "/v1/budget"),
        (Method::GET, "/v1/usage"),
        (Method::PUT, "/v1/keys/k1/budget"),
        (Method::GET, "/v1/policies"),
        (Method::PUT, "/v1/policies/settings"),
        (Method::PUT, "/v1/policies/auth"),
        (Method::DELETE, "/v1/policies/classify"),
        (Method::POST, "/v1/policies/route/activate"),
        (Method::POST, "/v1/policies/route/rollback"),
        (Method::GET, "/v1/audit/entries"),
        (Method::GET, "/v1/audit/checkpoint"),
        (Method::GET, "/v1/audit/checkpoints"),
        (Method::GET, "/v1/audit/proof/inclusion"),
        (Method::GET, "/v1/audit/proof/consistency"),
        (Method::GET, "/v1/audit/export"),
        (Method::POST, "/v1/audit/erase"),
        (Method::POST, "/admin/v1/tenants"),
        (Method::GET, "/admin/v1/tenants"),
        (Method::POST, "/admin/v1/tenants/t1/keys"),
        (Method::GET, "/admin/v1/tenants/t1/keys"),
        (Method::PUT, "/admin/v1/tenants/t1/retention"),
        (Method::PUT, "/admin/v1/tenants/t1/budget"),
        (Method::GET, "/admin/v1/tenants/t1/budget"),
        (Method::PUT, "/admin/v1/tenants/t1/limits"),
        (Method::GET, "/admin/v1/tenants/t1/limits"),
        (Method::PUT, "/admin/v1/tenants/t1/regions"),
        (Method::DELETE, "/admin/v1/keys/k1"),
        (Method::PUT, "/admin/v1/keys/k1/budget"),
        (Method::PUT, "/admin/v1/keys/k1/limits"),
        (Method::POST, "/admin/v1/audit/prune"),
    ];
    for (method, path) in documented {
        // Unauthenticated: 401 (or 400 for a body the data plane cannot parse, 200 for the open ones),
        // never the table's 404 or 405.
        let resp = call(&gw, method.clone(), path, b"{}").await;
        assert_ne!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_ne!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    for path in [
        "/",
        "/v1",
        "/v1/chat",
        "/v1/chat/completions/extra",
        "/v2/chat/completions",
        "/v1/policies/bogus",
        "/v1/policies/bogus/activate",
        "/v1/audit/nope",
        "/admin/v1/nope",
        "/admin/v1/tenants//keys",
        "/healthz/",
    ] {
        for method in [Method::GET, Method::POST] {
            let resp = call(&gw, method.clone(), path, b"{}").await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(code_of(&resp), "not_found", "{method} {path}");
        }
    }
}

async fn gateway_with_upstream(upstream: &Upstream) -> TestGateway {
    TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &upstream.url, ""),
        deployment("small", "up", "small-model")
    ))
    .await
}

/// The tenant's entries with this request id.
async fn entries_for(gw: &TestGateway, tenant: &str, request_id: &str) -> Vec<Entry> {
    let rows = gw
        .app
        .audit
        .storage()
        .audit_entries(tenant, 0, 10_000)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(_, bytes)| Entry::decode(&bytes).unwrap())
        .filter(|e| e.request_id == request_id)
        .collect()
}

#[tokio::test]
async fn a_panic_in_any_phase_leaves_exactly_one_audit_entry() {
    let upstream = Upstream::ok().await;
    let gw = gateway_with_upstream(&upstream).await;
    let (tenant, _, key) = gw.tenant_key("panics").await;
    for phase in Phase::ALL {
        sluice::exchange::inject_panic(&gw.app, Some(phase));
        let request_id = format!("panic-{}", phase.as_str());
        let resp = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", &request_id)
            .json(&chat_body("small"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 500, "panic in {}", phase.as_str());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal");
        // The panic path awaits the entry before answering.
        // Authentication comes first, so every phase (validate included) has a tenant log to write to.
        let entries = entries_for(&gw, &tenant, &request_id).await;
        assert_eq!(entries.len(), 1, "panic in {}: {entries:?}", phase.as_str());
        assert_eq!(entries[0].status, 500);
        assert_eq!(entries[0].error_code, "internal");
    }
    sluice::exchange::inject_panic(&gw.app, None);
    // The gateway keeps serving, and the ticket of every panicked request was settled.
    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("small"))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_client_that_hangs_up_before_the_answer_is_audited_once() {
    let upstream = Upstream::slow(Duration::from_millis(400)).await;
    let gw = gateway_with_upstream(&upstream).await;
    let (tenant, _, key) = gw.tenant_key("hangs-up").await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let request_id = "leaves-early";
    let sent = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-request-id", request_id)
        .json(&chat_body("small"))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the client gave up before the upstream answered"
    );
    drop(client);
    // The entry is appended in the background once hyper drops the request: wait for it (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let found = entries_for(&gw, &tenant, request_id).await;
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].error_code, "client_disconnected");
    assert_eq!(entries[0].status, sluice::exchange::CLIENT_CLOSED);
    assert_eq!(upstream.hits(), 1, "the upstream had received the request");
    // Nothing is left counted in flight.
    let text = gw.metrics_text().await;
    let gauge = text
        .lines()
        .find(|l| l.starts_with("sluice_in_flight_requests "))
        .unwrap();
    assert_eq!(
        gauge, "sluice_in_flight_requests 1",
        "only the /metrics request itself"
    );
    gw.stop().await;
}

/// The value of an unlabelled metric in `/metrics`.
async fn metric(gw: &TestGateway, name: &str) -> f64 {
    let text = gw.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_that_answers_pings_is_closed() {
    let upstream = Upstream::ok().await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &upstream.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start_with(&routing, "idle_timeout_s = 1\n").await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // hyper's client answers the server's pings for as long as the connection lives.
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get(format!("http://{addr}/healthz"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // Idle from here: the gateway must end the connection after about a second.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle connection is still open");

    // A stream in flight is not idle: a slow answer longer than the idle timeout completes.
    let slow = Upstream::slow(Duration::from_millis(2500)).await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &slow.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start_with(&routing, "idle_timeout_s = 1\n").await;
    let (_, _, key) = gw.tenant_key("patient").await;
    let resp = gw
        .post("/v1/chat/completions", &key, chat_body("small"))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_counted() {
    let upstream = Upstream::ok().await;
    let routing = format!(
        "{}{}",
        openai_provider("up", &upstream.url, ""),
        deployment("small", "up", "m")
    );
    let gw = TestGateway::start_with(&routing, "max_connections = 4\n").await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    // Four silent connections hold every slot (until the header timeout).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // Give the accept loop time to take them all.
    let mut refused = None;
    for _ in 0..50 {
        let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), extra.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            refused = Some(());
            break;
        }
    }
    assert!(refused.is_some(), "a fifth connection was never closed");
    drop(held);
    // With the slots free again, requests are served, and the refusals were counted.
    let mut served = false;
    for _ in 0..50 {
        if let Ok(resp) = gw.http.get(gw.url("/healthz")).send().await
            && resp.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
    assert!(metric(&gw, "sluice_connections_refused_total").await >= 1.0);
}
