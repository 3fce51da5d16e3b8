//! The gateway's side of witnessing: every checkpoint the sequencer signs is sent, in the background, to
//! each configured witness with a consistency proof from the size that witness last cosigned; the
//! cosignature that comes back is checked against the witness's key and stored. A witness that is down or
//! refuses delays (or withholds) its cosignature and nothing else: requests never wait for a witness.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use crate::audit::SignedCheckpoint;
use crate::audit::merkle::{self, Hash};
use crate::audit::note;
use crate::config::WitnessConfig;
use crate::storage::Storage;

/// Checkpoints waiting to be sent; when full, one is skipped (the next one carries the log forward).
const QUEUE: usize = 1024;
/// Time allowed for one witness call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest witness answer read.
const MAX_ANSWER: usize = 16 * 1024;

/// A witness the gateway asks for cosignatures.
#[derive(Debug, Clone)]
struct Witness {
    /// The witness's submission prefix; requests go to `<url>/add-checkpoint`.
    url: String,
    /// The witness's key name and cosigner public key.
    name: String,
    key: VerifyingKey,
}

/// A signed checkpoint of one tenant's log, on its way to the witnesses.
pub type Signed = (String, SignedCheckpoint);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Starts the task that sends checkpoints to `witnesses`; `None` without any witness.
pub fn start(
    storage: Storage,
    witnesses: &[WitnessConfig],
) -> Result<Option<mpsc::Sender<Signed>>, String> {
    if witnesses.is_empty() {
        return Ok(None);
    }
    let witnesses = witnesses
        .iter()
        .map(|w| {
            let (name, key) = note::parse_cosigner_key(&w.key)
                .map_err(|e| format!("audit.witnesses: the key of {}: {e}", w.url))?;
            Ok(Witness {
                url: w.url.clone(),
                name,
                key,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let client = https_client()?;
    let (tx, mut rx) = mpsc::channel::<Signed>(QUEUE);
    let witnesses = Arc::new(witnesses);
    tokio::spawn(async move {
        while let Some((tenant, checkpoint)) = rx.recv().await {
            for w in witnesses.iter() {
                if let Err(e) = cosign(&client, &storage, w, &tenant, &checkpoint).await {
                    tracing::warn!(witness = %w.name, tenant = %tenant, size = checkpoint.size, error = %e, "no cosignature");
                }
            }
        }
    });
    Ok(Some(tx))
}

fn https_client() -> Result<HttpsClient, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| format!("TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Asks one witness to cosign one checkpoint: from the size it last cosigned (as stored here, or as the
/// witness answers when that is stale), with a consistency proof, and stores what it returns.
async fn cosign(
    client: &HttpsClient,
    storage: &Storage,
    w: &Witness,
    tenant: &str,
    checkpoint: &SignedCheckpoint,
) -> Result<(), String> {
    let mut old = storage
        .last_cosigned(tenant, &w.name)
        .await
        .map_err(|e| e.to_string())?
        .min(checkpoint.size);
    for _ in 0..2 {
        let proof = proof(storage, tenant, old, checkpoint.size).await?;
        let mut body = format!("old {old}\n");
        for hash in &proof {
            body.push_str(&base64::engine::general_purpose::STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&checkpoint.note);
        let (status, answer) = post(client, &format!("{}/add-checkpoint", w.url), body).await?;
        match status {
            200 => {
                let line = answer
                    .lines()
                    .map(|l| format!("{l}\n"))
                    .find(|l| {
                        note::verify_cosignature(
                            &format!("{}{l}", checkpoint.note),
                            &w.name,
                            &w.key,
                        )
                        .is_ok_and(|(cp, _)| {
                            cp.size == checkpoint.size && cp.root == checkpoint.root
                        })
                    })
                    .ok_or("the witness answered without a valid cosignature by its key")?;
                storage
                    .insert_cosignature(tenant, checkpoint.size, &w.name, &line)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            409 => {
                let theirs: u64 = answer.trim().parse().map_err(|_| {
                    "the witness refused the checkpoint's root at its own size".to_owned()
                })?;
                if theirs > checkpoint.size || theirs == old {
                    return Err(format!(
                        "the witness has cosigned {theirs} entries; this checkpoint has {}",
                        checkpoint.size
                    ));
                }
                old = theirs;
            }
            status => return Err(format!("the witness answered {status}: {}", answer.trim())),
        }
    }
    Err("the witness kept answering 409".to_owned())
}

/// The consistency proof from `old` to `size` over the stored leaves (empty from 0 or to the same size).
async fn proof(storage: &Storage, tenant: &str, old: u64, size: u64) -> Result<Vec<Hash>, String> {
    if old == 0 || old == size {
        return Ok(Vec::new());
    }
    let leaves: Vec<Hash> = storage
        .audit_leaves(tenant, size)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|l| Hash::try_from(l.as_slice()).unwrap_or([0; 32]))
        .collect();
    merkle::consistency_proof(&leaves, old, size)
        .ok_or_else(|| "cannot build the consistency proof".to_owned())
}

async fn post(client: &HttpsClient, url: &str, body: String) -> Result<(u16, String), String> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad witness URL {url}: {e}"))?;
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {url}: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| format!("{url} did not answer within {CALL_TIMEOUT:?}"))?
}
