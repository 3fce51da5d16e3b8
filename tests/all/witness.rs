//! Witnessed checkpoints end to end: a real witness over HTTP cosigns what extends the log, keeps its state
//! across a restart, refuses a rewritten history, and a witness that is down never holds up requests.

use std::sync::Arc;
use std::time::Duration;

use sluice::audit::verify::{Export, verify_export, verify_witnesses};
use sluice::config::WitnessConfig;

use crate::support::upstream::Upstream;
use crate::support::{AUDIT_KEY, TestGateway, chat_body, deployment, openai_provider};

/// The gateway's log key as a witness is given it (the test signing key, named by the default origin).
fn gateway_key() -> String {
    let key = sluice::audit::signing_key_from_text(AUDIT_KEY).unwrap();
    sluice::audit::note::verifier_key_text("sluice", &key.verifying_key())
}

/// A witness on 127.0.0.1:0 with its state in `state`; returns its URL, its cosigner key and its stopper.
async fn witness(state: &std::path::Path) -> (String, String, tokio_util::sync::CancellationToken) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let w =
        sluice::witness::Witness::open("witness.test/w1", key, &gateway_key(), "sluice/", state)
            .unwrap();
    let vkey = w.verifier_key();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(sluice::witness::serve(listener, Arc::new(w), stop.clone()));
    (url, vkey, stop)
}

async fn gateway(up: &Upstream, witness_url: &str, witness_key: &str) -> TestGateway {
    let routing = format!(
        "{}{}",
        openai_provider("up", &up.url, ""),
        deployment("small", "up", "m")
    );
    let (url, key) = (witness_url.to_owned(), witness_key.to_owned());
    TestGateway::start_changed(&routing, move |c| {
        c.audit.witnesses = vec![WitnessConfig { url, key }];
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_the_log_and_refuses_a_rewritten_history() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("witness.json");
    let (url, wkey, stop) = witness(&state).await;
    let up = Upstream::ok().await;
    let gw = gateway(&up, &url, &wkey).await;
    let (tenant, admin, member) = gw.tenant_admin_member().await;
    for _ in 0..4 {
        assert_eq!(
            gw.post("/v1/chat/completions", &member, chat_body("small"))
                .await
                .status(),
            200
        );
    }
    let export: Export = gw.get_json("/v1/audit/export", &admin).await;
    let key = gw
        .get_json::<serde_json::Value>("/.well-known/sluice-audit-keys", &admin)
        .await["keys"][0]["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    verify_export(&export, Some(&key), None).unwrap();
    assert_eq!(
        verify_witnesses(&export, std::slice::from_ref(&wkey), 1).unwrap(),
        ["witness.test/w1"]
    );
    // Another witness's key did not cosign it.
    let stranger = sluice::audit::note::cosigner_key_text(
        "other.test/w9",
        &ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key(),
    );
    assert!(verify_witnesses(&export, &[stranger], 1).is_err());
    // The published checkpoint carries the cosignature too.
    let cp: serde_json::Value = gw.get_json("/v1/audit/checkpoint", &admin).await;
    assert!(
        cp["note"].as_str().unwrap().contains("— witness.test/w1 "),
        "{cp}"
    );

    // The witness restarts (its state from its file); the operator rewrites history and deletes every
    // trace of what was signed: checkpoints, cosignatures and signed heads.
    stop.cancel();
    let (url, _, stop) = witness(&state).await;
    let dir = gw.stop_keep_dir().await;
    crate::support::forge_history(dir.path(), &tenant).await;
    std::fs::remove_dir_all(dir.path().join("audit-heads")).unwrap();
    let witness_key = wkey.clone();
    let gw = TestGateway::start_in_with(dir, move |c| {
        c.audit.witnesses = vec![WitnessConfig {
            url,
            key: witness_key,
        }];
    })
    .await;
    // A request after the rewrite: the gateway signs the forged log and asks the witness, which refuses.
    assert_eq!(
        gw.post("/v1/chat/completions", &member, chat_body("small"))
            .await
            .status(),
        200
    );
    let forged: Export = gw.get_json("/v1/audit/export", &admin).await;
    verify_export(&forged, Some(&key), None).unwrap();
    let err = verify_witnesses(&forged, std::slice::from_ref(&wkey), 1).unwrap_err();
    assert!(err.to_string().contains("0 of the 1"), "{err}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_that_is_down_delays_cosigning_and_never_blocks_requests() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let wkey = sluice::audit::note::cosigner_key_text(
        "witness.test/w1",
        &ed25519_dalek::SigningKey::from_bytes(&[42; 32]).verifying_key(),
    );
    let up = Upstream::ok().await;
    let gw = gateway(&up, &closed, &wkey).await;
    let (_, admin, member) = gw.tenant_admin_member().await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let resp = gw
            .post("/v1/chat/completions", &member, chat_body("small"))
            .await;
        assert_eq!(resp.status(), 200);
        // Not a timing assertion on the gateway's speed: only that nothing waited for the witness's
        // 5-second connect timeout.
        assert!(started.elapsed() < Duration::from_secs(4));
    }
    let export: Export = gw.get_json("/v1/audit/export", &admin).await;
    verify_export(&export, None, None).unwrap();
    assert!(
        verify_witnesses(&export, &[wkey], 1).is_err(),
        "nothing was cosigned"
    );
}
