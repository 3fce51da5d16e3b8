//! Every bad input of the issue, each answered in the documented error shape with the right status.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, error_of, openai_provider};

async fn gateway() -> (TestGateway, Upstream, String) {
    gateway_with("").await
}

/// A gateway with one deployment on an instant upstream and `server_extra` in its `[server]` table, and a
/// tenant key of `acme`.
async fn gateway_with(server_extra: &str) -> (TestGateway, Upstream, String) {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_with(
        &format!(
            "{}{}",
            openai_provider("up", &up.url, ""),
            deployment("small", "up", "m")
        ),
        server_extra,
    )
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    (gw, up, key)
}

async fn raw_post(
    gw: &TestGateway,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let (gw, up, key) = gateway().await;
    let cases: Vec<(&[u8], Option<&str>, &str)> = vec![
        (b"{\"model\": \"small\", \"messages\": [", None, "not valid JSON"),
        (br#"{"model": 5, "messages": []}"#, Some("model"), "invalid type"),
        (br#"{"model": "small", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}"#, Some("max_tokens"), "invalid type"),
        (br#"{"model": "small", "messages": [{"role": "wizard", "content": "x"}]}"#, Some("messages[0].role"), "unknown variant"),
        (br#"{"model": "small"}"#, None, "missing field `messages`"),
        (br#"{"model": "small", "messages": []}"#, Some("messages"), "at least one message"),
        (br#"{"model": "small", "messages": [{"role": "user"}]}"#, Some("messages[0].content"), "required"),
        (br#"{"model": "small", "messages": [{"role": "user", "content": "x"}], "temperature": 9}"#, Some("temperature"), "between 0 and 2"),
        (b"{\"model\": \"small\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}", None, "UTF-8"),
        (b"[1, 2]", None, "invalid"),
    ];
    for (body, param, needle) in cases {
        let resp = raw_post(&gw, &key, "application/json", body.to_vec()).await;
        let (status, err) = error_of(resp).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(status, 400, "{shown}");
        assert_eq!(err["code"], "invalid_request", "{shown}");
        assert_eq!(err["param"].as_str(), param, "{shown}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{shown}: {err}"
        );
    }
    assert_eq!(up.hits(), 0, "nothing invalid reaches the upstream");
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let (gw, up, key) = gateway().await;
    let (status, err) = error_of(
        gw.post("/v1/chat/completions", &key, chat_body("gpt-nope"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (404, "model_not_found")
    );
    assert_eq!(err["param"], "model");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (gw, _up, key) = gateway().await;
    let body = serde_json::to_vec(&chat_body("small")).unwrap();
    let (status, err) = error_of(raw_post(&gw, &key, "text/plain", body.clone()).await).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (415, "unsupported_media_type")
    );
    // Parameters on the right type are fine.
    let ok = raw_post(&gw, &key, "application/json; charset=utf-8", body).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let (gw, up, key) = gateway_with("max_body_bytes = 4096").await;
    let mut big = chat_body("small");
    big["messages"][0]["content"] = "x".repeat(10_000).into();
    let (status, err) = error_of(gw.post("/v1/chat/completions", &key, big.clone()).await).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (413, "payload_too_large")
    );

    // No Content-Length (chunked): the limit still holds, and the gateway stops reading at the limit.
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let (status, _) = error_of(resp).await;
    assert_eq!(status, 413);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let (gw, _up, key) = gateway().await;
    // 70 KiB of headers: over the 64 KiB default, under hyper's own hard stop, so the JSON error is sent.
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("small"));
    for i in 0..7 {
        req = req.header(format!("x-filler-{i}"), "y".repeat(10 * 1024));
    }
    let (status, err) = error_of(req.send().await.unwrap()).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (431, "headers_too_large")
    );
    // Too many headers.
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("small"));
    for i in 0..120 {
        req = req.header(format!("x-h-{i}"), "v");
    }
    let (status, _) = error_of(req.send().await.unwrap()).await;
    assert_eq!(status, 431);
}

#[tokio::test]
async fn missing_malformed_mistyped_unknown_and_revoked_keys_are_401() {
    let (gw, up, key) = gateway().await;
    let no_key = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(no_key).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (401, "unauthenticated")
    );
    assert!(err["message"].as_str().unwrap().contains("no API key"));

    let (s, err) = error_of(
        gw.post("/v1/chat/completions", "sk-not-ours", chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        err["message"].as_str().unwrap().contains("malformed"),
        "{err}"
    );

    let mut typo = key.clone().into_bytes();
    typo[25] = if typo[25] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let (s, err) = error_of(
        gw.post("/v1/chat/completions", &typo, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        err["message"].as_str().unwrap().contains("checksum"),
        "{err}"
    );

    // Well formed with a valid checksum, but never issued.
    let forged = sluice::auth::keys::generate().plaintext;
    let (s, err) = error_of(
        gw.post("/v1/chat/completions", &forged, chat_body("small"))
            .await,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        err["message"].as_str().unwrap().contains("not valid"),
        "{err}"
    );
    assert_eq!(up.hits(), 0);

    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let (gw, _up, key) = gateway().await;
    let (s, err) = error_of(gw.http.get(gw.url("/v1/nothing")).send().await.unwrap()).await;
    assert_eq!((s, err["code"].as_str().unwrap()), (404, "not_found"));
    let (s, err) = error_of(
        gw.http
            .get(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, err["code"].as_str().unwrap()),
        (405, "method_not_allowed")
    );
}

#[tokio::test]
async fn slow_header_senders_are_disconnected() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start_with(
        &format!(
            "{}{}",
            openai_provider("up", &up.url, ""),
            deployment("small", "up", "m")
        ),
        "header_read_timeout_ms = 300",
    )
    .await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    // Half a request line, then silence: the gateway must hang up instead of waiting forever.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sock.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the connection was closed by the gateway");
    // A connection that sends nothing at all is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        idle.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "a silent connection was closed by the gateway"
    );
}

#[tokio::test]
async fn header_limits_hold_on_every_route() {
    let (gw, _up, key) = gateway().await;
    for (method, path) in [
        (reqwest::Method::GET, "/healthz"),
        (reqwest::Method::GET, "/v1/usage"),
        (reqwest::Method::GET, "/admin/v1/tenants"),
        (reqwest::Method::GET, "/v1/audit/export"),
        (reqwest::Method::GET, "/no/such/path"),
    ] {
        let mut req = gw.http.request(method, gw.url(path)).bearer_auth(&key);
        for i in 0..7 {
            req = req.header(format!("x-filler-{i}"), "y".repeat(10 * 1024));
        }
        let (status, err) = error_of(req.send().await.unwrap()).await;
        assert_eq!(
            (status, err["code"].as_str().unwrap()),
            (431, "headers_too_large"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn credentials_that_disagree_are_401() {
    let (gw, up, key) = gateway().await;
    let (_, _, other) = gw.tenant_key("other").await;
    let send = |headers: Vec<(&'static str, String)>| {
        let mut req = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body("small"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req.send()
    };
    for headers in [
        vec![
            ("authorization", format!("Bearer {key}")),
            ("x-api-key", other.clone()),
        ],
        vec![
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("Bearer {other}")),
        ],
        vec![("x-api-key", key.clone()), ("x-api-key", other.clone())],
    ] {
        let (status, err) = error_of(send(headers.clone()).await.unwrap()).await;
        assert_eq!(
            (status, err["code"].as_str().unwrap()),
            (401, "unauthenticated"),
            "{headers:?}"
        );
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("more than one credential"),
            "{err}"
        );
    }
    assert_eq!(up.hits(), 0);
    // The same key in both headers is one credential.
    let same = send(vec![
        ("authorization", format!("Bearer {key}")),
        ("x-api-key", key.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(same.status(), 200);
    let alone = send(vec![("x-api-key", other.clone())]).await.unwrap();
    assert_eq!(alone.status(), 200);
}

#[tokio::test]
async fn an_anonymous_client_is_refused_before_its_body_is_parsed() {
    let (gw, _up, key) = gateway().await;
    for body in [
        b"{not json".to_vec(),
        b"\xff\xfe".to_vec(),
        br#"{"model": 7}"#.to_vec(),
    ] {
        let resp = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, err) = error_of(resp).await;
        assert_eq!(
            (status, err["code"].as_str().unwrap()),
            (401, "unauthenticated")
        );
    }
    // Nor does its content type matter yet.
    let resp = raw_post(&gw, "slk_wrong", "text/plain", b"hi".to_vec()).await;
    assert_eq!(resp.status(), 401);
    // With a key, the same body is the client's error.
    let resp = raw_post(&gw, &key, "application/json", b"{not json".to_vec()).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn the_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (gw, _up, key) = gateway().await;
    assert_eq!(
        gw.post("/v1/chat/completions", &key, chat_body("small"))
            .await
            .status(),
        200
    );
    for suffix in ["", "-wal", "-shm"] {
        let mut path = gw.db_path.clone().into_os_string();
        path.push(suffix);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            std::path::Path::new(&path).display()
        );
    }
}

#[tokio::test]
async fn an_upstream_error_quoting_the_prompt_does_not_reach_the_client() {
    for status in [400, 422, 500] {
        let up = Upstream::start(crate::support::upstream::Behavior::EchoError(status)).await;
        let gw = TestGateway::start(&format!(
            "{}{}",
            openai_provider("up", &up.url, ""),
            deployment("small", "up", "m")
        ))
        .await;
        let (_, _, key) = gw.tenant_key("acme").await;
        let mut body = chat_body("small");
        body["messages"][0]["content"] = "my secret canary-5531".into();
        let (got, err) = error_of(gw.post("/v1/chat/completions", &key, body).await).await;
        let message = err["message"].as_str().unwrap();
        assert!(!message.contains("canary"), "{status}: {message}");
        assert!(message.contains("request id"), "{status}: {message}");
        let code = err["code"].as_str().unwrap();
        if status == 500 {
            assert_eq!((got, code), (502, "upstream_error"));
        } else {
            assert_eq!((got, code), (400, "invalid_request"), "{message}");
            assert!(message.contains(&format!("HTTP {status}")), "{message}");
        }
        assert_eq!(up.hits(), 1);
    }
}

/// A body that never finishes is cut off at the read deadline on both planes (one body reader serves
/// them): the data plane's chat completions and the control plane's operator endpoints alike answer 400.
#[tokio::test]
async fn a_body_that_never_finishes_is_refused_at_the_deadline_on_both_planes() {
    let (gw, _up, _) = gateway_with("header_read_timeout_ms = 300").await;
    let (tenant, _, key) = gw.tenant_key("globex").await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    for (path, token, method) in [
        ("/v1/chat/completions".to_owned(), key.clone(), "POST"),
        (
            format!("/admin/v1/tenants/{tenant}/retention"),
            crate::support::ADMIN_TOKEN.to_owned(),
            "PUT",
        ),
    ] {
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"days\":"
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("answered within the deadline")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(
            text.contains("timed out reading the request body"),
            "{path}: {text}"
        );
    }
}
