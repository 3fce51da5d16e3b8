//! The witness: `POST /add-checkpoint` per C2SP tlog-witness. It trusts one log key for every origin under
//! a prefix (a gateway signs one log per tenant, `<origin>/<tenant id>`), keeps the latest cosigned size and
//! root of each log in a state file (written and synced before it answers), and checks and updates that
//! state atomically.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{SigningKey, VerifyingKey};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::audit::merkle::{self, Hash};
use crate::audit::note;

/// The most proof lines a request may carry (the protocol's own limit).
const MAX_PROOF_LINES: usize = 63;
/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;

/// Why a checkpoint is not cosigned, with the status the protocol gives it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown log origin `{0}`")]
    UnknownOrigin(String),
    #[error("no signature by a trusted log key")]
    Forbidden,
    /// The old size is not the size last cosigned (the body of the answer says which is).
    #[error("the last cosigned size of this log is {0}")]
    Conflict(u64),
    #[error("the checkpoint has the size last cosigned but another root")]
    RootMismatch,
    #[error(
        "the consistency proof does not verify: the checkpoint does not extend the one last cosigned"
    )]
    Inconsistent,
    #[error("the witness could not keep its state: {0}")]
    State(String),
}

impl AddError {
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) => 400,
            AddError::Forbidden => 403,
            AddError::UnknownOrigin(_) => 404,
            AddError::Conflict(_) | AddError::RootMismatch => 409,
            AddError::Inconsistent => 422,
            AddError::State(_) => 500,
        }
    }
}

/// A witness: its key, the log key it trusts and for which origins, and what it cosigned.
pub struct Witness {
    name: String,
    key: SigningKey,
    /// Origins `<prefix>…` are logs signed by this key.
    origin_prefix: String,
    log_key: (String, VerifyingKey),
    state_path: PathBuf,
    /// Origin → the latest cosigned (size, root). The lock spans check, write and answer.
    state: Mutex<HashMap<String, (u64, Hash)>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    size: u64,
    root: String,
}

impl Witness {
    /// A witness named `name` (a schema-less URL), signing with `key`, trusting `log_key` (a verifier key
    /// text) for every origin starting with `origin_prefix`, its state kept in `state_path`.
    pub fn open(
        name: &str,
        key: SigningKey,
        log_key: &str,
        origin_prefix: &str,
        state_path: &Path,
    ) -> Result<Witness, String> {
        let log_key =
            note::parse_verifier_key(log_key.trim()).map_err(|e| format!("log key: {e}"))?;
        let state = match std::fs::read_to_string(state_path) {
            Ok(text) => {
                let stored: HashMap<String, Stored> = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", state_path.display()))?;
                let mut state = HashMap::new();
                for (origin, s) in stored {
                    let root = base64::engine::general_purpose::STANDARD
                        .decode(&s.root)
                        .ok()
                        .and_then(|r| Hash::try_from(r.as_slice()).ok())
                        .ok_or_else(|| {
                            format!("{}: bad root for {origin}", state_path.display())
                        })?;
                    state.insert(origin, (s.size, root));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("{}: {e}", state_path.display())),
        };
        Ok(Witness {
            name: name.to_owned(),
            key,
            origin_prefix: origin_prefix.to_owned(),
            log_key,
            state_path: state_path.to_owned(),
            state: Mutex::new(state),
        })
    }

    /// The witness's cosigner verifier key text, for the gateway's config and auditors.
    pub fn verifier_key(&self) -> String {
        note::cosigner_key_text(&self.name, &self.key.verifying_key())
    }

    /// Handles an `add-checkpoint` body: on success, the cosignature line(s) to answer with.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, AddError> {
        let (old, proof, checkpoint) = parse_request(body)?;
        let origin = checkpoint.lines().next().unwrap_or_default();
        if !origin.starts_with(&self.origin_prefix) {
            return Err(AddError::UnknownOrigin(origin.to_owned()));
        }
        let cp =
            note::verify(checkpoint, &self.log_key.0, &self.log_key.1).map_err(|e| match e {
                note::NoteError::Malformed(m) => AddError::Malformed(m),
                _ => AddError::Forbidden,
            })?;
        if old > cp.size {
            return Err(AddError::Malformed(format!(
                "old size {old} is larger than the checkpoint's {}",
                cp.size
            )));
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last_size, last_root) = state
            .get(&cp.origin)
            .copied()
            .unwrap_or((0, merkle::empty_root()));
        if old != last_size {
            return Err(AddError::Conflict(last_size));
        }
        if old == cp.size {
            if old > 0 && cp.root != last_root {
                return Err(AddError::RootMismatch);
            }
        } else if old > 0 {
            merkle::verify_consistency(old, cp.size, &last_root, &cp.root, &proof)
                .map_err(|_| AddError::Inconsistent)?;
        } else if !proof.is_empty() {
            return Err(AddError::Malformed(
                "a proof from size 0 must be empty".to_owned(),
            ));
        }
        let mut next = state.clone();
        next.insert(cp.origin.clone(), (cp.size, cp.root));
        self.persist(&next)?;
        *state = next;
        Ok(note::cosign(&cp.body(), &self.name, &self.key, now))
    }

    fn persist(&self, state: &HashMap<String, (u64, Hash)>) -> Result<(), AddError> {
        let stored: HashMap<&str, Stored> = state
            .iter()
            .map(|(origin, (size, root))| {
                (
                    origin.as_str(),
                    Stored {
                        size: *size,
                        root: base64::engine::general_purpose::STANDARD.encode(root),
                    },
                )
            })
            .collect();
        let text = serde_json::to_string(&stored).map_err(|e| AddError::State(e.to_string()))?;
        crate::audit::heads::write_synced(&self.state_path, &text)
            .map_err(|e| AddError::State(e.to_string()))
    }
}

/// Splits a request body into the old size, the proof and the checkpoint note.
fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), AddError> {
    let bad = |m: &str| AddError::Malformed(m.to_owned());
    let (head, checkpoint) = body
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .filter(|n| *n == "0" || !n.starts_with('0'))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad("the first line must be `old <size>`"))?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        let hash = base64::engine::general_purpose::STANDARD
            .decode(line)
            .ok()
            .and_then(|h| Hash::try_from(h.as_slice()).ok())
            .ok_or_else(|| bad("a proof line is not a base64 hash"))?;
        proof.push(hash);
    }
    Ok((old, proof, checkpoint))
}

/// Serves `POST /add-checkpoint` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let witness = witness.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(witness.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn answer(
    witness: Arc<Witness>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, content_type: &'static str, body: String| {
        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        Ok(resp)
    };
    if req.uri().path() != "/add-checkpoint" {
        return reply(404, "text/plain", "not found\n".to_owned());
    }
    if req.method() != http::Method::POST {
        return reply(405, "text/plain", "POST only\n".to_owned());
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                400,
                "text/plain",
                "unreadable or too large body\n".to_owned(),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return reply(400, "text/plain", "the body is not UTF-8\n".to_owned());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Signing and the synced write of the state run off the async workers.
    let text = text.to_owned();
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&text, now))
        .await
        .unwrap_or_else(|e| Err(AddError::State(e.to_string())));
    match outcome {
        Ok(lines) => reply(200, "text/plain; charset=utf-8", lines),
        Err(AddError::Conflict(size)) => reply(409, "text/x.tlog.size", format!("{size}\n")),
        Err(e) => {
            tracing::info!(error = %e, "checkpoint not cosigned");
            reply(e.status(), "text/plain", format!("{e}\n"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::note::Checkpoint;

    fn leaves(n: u64, salt: u8) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&[salt, i as u8]))
            .collect()
    }

    fn checkpoint(log: &SigningKey, leaves: &[Hash]) -> String {
        let cp = Checkpoint {
            origin: "sluice/tenant-1".to_owned(),
            size: leaves.len() as u64,
            root: merkle::root(leaves),
        };
        note::sign(&cp, "sluice", log)
    }

    fn request(old: u64, proof: &[Hash], note: &str) -> String {
        let mut body = format!("old {old}\n");
        for h in proof {
            body.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        body
    }

    #[test]
    fn cosigns_what_extends_and_refuses_a_rewrite_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let log = SigningKey::from_bytes(&[3; 32]);
        let log_vkey = note::verifier_key_text("sluice", &log.verifying_key());
        let open = || {
            Witness::open(
                "w.example/w1",
                SigningKey::from_bytes(&[9; 32]),
                &log_vkey,
                "sluice/",
                &state,
            )
            .unwrap()
        };
        let w = open();
        let (wname, wkey) = note::parse_cosigner_key(&w.verifier_key()).unwrap();

        let first = leaves(5, 1);
        let note5 = checkpoint(&log, &first);
        let line = w
            .add_checkpoint(&request(0, &[], &note5), 1_700_000_000)
            .unwrap();
        let (cp, time) =
            note::verify_cosignature(&format!("{note5}{line}"), &wname, &wkey).unwrap();
        assert_eq!((cp.size, time), (5, 1_700_000_000));

        // Stale old size: 409 with the size it has.
        let grown: Vec<Hash> = first.iter().copied().chain(leaves(3, 2)).collect();
        let note8 = checkpoint(&log, &grown);
        assert_eq!(
            w.add_checkpoint(&request(0, &[], &note8), 1),
            Err(AddError::Conflict(5))
        );

        // A restart keeps the state; a proof from 5 to 8 is cosigned.
        drop(w);
        let w = open();
        let proof = merkle::consistency_proof(&grown, 5, 8).unwrap();
        assert!(w.add_checkpoint(&request(5, &proof, &note8), 2).is_ok());

        // A rewritten history of 10 entries does not extend what was cosigned at 8.
        let forged: Vec<Hash> = leaves(10, 7);
        let note10 = checkpoint(&log, &forged);
        let proof = merkle::consistency_proof(&forged, 8, 10).unwrap();
        assert_eq!(
            w.add_checkpoint(&request(8, &proof, &note10), 3),
            Err(AddError::Inconsistent)
        );
        // Nor does another root at the same size.
        let other8 = checkpoint(&log, &leaves(8, 9));
        assert_eq!(
            w.add_checkpoint(&request(8, &[], &other8), 3),
            Err(AddError::RootMismatch)
        );

        // Unknown origins, untrusted signatures and malformed bodies.
        let stranger = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            w.add_checkpoint(&request(8, &[], &checkpoint(&stranger, &grown)), 3),
            Err(AddError::Forbidden)
        );
        let elsewhere = note::sign(
            &Checkpoint {
                origin: "other/log".to_owned(),
                size: 1,
                root: merkle::root(&leaves(1, 1)),
            },
            "sluice",
            &log,
        );
        assert!(matches!(
            w.add_checkpoint(&request(0, &[], &elsewhere), 3),
            Err(AddError::UnknownOrigin(_))
        ));
        assert!(matches!(
            w.add_checkpoint("old 08\n\nx", 3),
            Err(AddError::Malformed(_))
        ));
        assert!(matches!(
            w.add_checkpoint(&request(9, &[], &note8), 3),
            Err(AddError::Malformed(_))
        ));
    }
}
