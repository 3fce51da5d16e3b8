//! TLS 1.3 with ALPN (HTTP/2 and HTTP/1.1) and cleartext HTTP/2 on loopback.

use crate::support::upstream::Upstream;
use crate::support::{TestGateway, chat_body, deployment, openai_provider};

#[tokio::test]
async fn tls13_serves_http2_and_http1() {
    let up = Upstream::ok().await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start_with(
        &format!(
            "{}{}",
            openai_provider("up", &up.url, ""),
            deployment("small", "up", "m")
        ),
        &format!(
            "[server.tls]\ncert_path = \"{}\"\nkey_path = \"{}\"",
            cert_path.display(),
            key_path.display()
        ),
    )
    .await;
    let port = gw.base.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/v1/chat/completions");
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let resolve = |b: reqwest::ClientBuilder| {
        b.resolve("localhost", ([127, 0, 0, 1], port.parse().unwrap()).into())
    };
    let mut gw = gw;
    gw.base = format!("https://localhost:{port}");
    gw.http = resolve(reqwest::Client::builder().add_root_certificate(root.clone()))
        .build()
        .unwrap();
    let (_, _, key) = gw.tenant_key("acme").await;

    let h2 = resolve(
        reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .tls_built_in_root_certs(false),
    )
    .build()
    .unwrap();
    let resp = h2
        .post(&url)
        .bearer_auth(&key)
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2, "ALPN picks h2");

    let h1 = resolve(
        reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .http1_only(),
    )
    .build()
    .unwrap();
    let resp = h1
        .post(&url)
        .bearer_auth(&key)
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_11);

    // TLS 1.2 is refused.
    let old = resolve(
        reqwest::Client::builder()
            .add_root_certificate(root)
            .max_tls_version(reqwest::tls::Version::TLS_1_2),
    )
    .build()
    .unwrap();
    assert!(
        old.get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port does not get an answer.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge() {
    let up = Upstream::ok().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    ))
    .await;
    let (_, _, key) = gw.tenant_key("acme").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}
