//! The cache's durable copy: entries sealed like audit content (AES-256-GCM, a key derived per tenant from
//! the cache's own master key, bound to the tenant and the entry id) and written by one background task, in
//! the order the cache made them, in batches of one transaction. Stores never wait for it; erasure and
//! settings do, so "erased" means erased on disk too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{Answer, Cache, Restored, Settings};
use crate::audit::content::{Content, Sealer};
use crate::config::Tier;
use crate::storage::{CacheRow, CacheWrite, Storage, StorageError};

/// Stores queued and not yet written, beyond which new ones stay in memory only.
const MAX_QUEUED_PUTS: usize = 4096;
/// Writes per transaction.
const BATCH: usize = 256;

enum Op {
    Write(CacheWrite),
    /// Resolved once everything queued before it is durable.
    Barrier(oneshot::Sender<Result<(), StorageError>>),
}

/// The handle the cache queues writes on.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Op>,
    sealer: Arc<Sealer>,
    /// What the tenants' key secrets are derived from: stored keys stay valid across restarts.
    key_master: [u8; 32],
    queued_puts: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Write(_) => "Write",
            Op::Barrier(_) => "Barrier",
        })
    }
}

/// What the sealed blob holds besides the answer.
#[derive(Serialize, Deserialize)]
struct Meta {
    question: Option<String>,
    deployment: String,
    tier: String,
    vector: Option<Vec<f32>>,
}

/// A key of the cache's own, derived from the audit master key for `purpose` (so neither log's ciphertexts
/// open under the other's, and the key secrets are unrelated to the sealing key).
fn derived(master: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sluice-cache"), master);
    let mut key = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(purpose, &mut key);
    key
}

impl Writer {
    /// Starts the writer task over `storage`, sealing under keys derived from the audit `master` key; it
    /// ends when every handle is gone.
    pub fn start(storage: Storage, master: &[u8; 32]) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued_puts = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(storage, rx, queued_puts.clone()));
        Writer {
            tx,
            sealer: Arc::new(Sealer::new(derived(master, b"cache-master"))),
            key_master: derived(master, b"cache-keys"),
            queued_puts,
        }
    }

    pub(super) fn key_master(&self) -> [u8; 32] {
        self.key_master
    }

    pub(super) fn put(&self, entry: Restored) {
        if self.queued_puts.load(Ordering::Relaxed) >= MAX_QUEUED_PUTS {
            tracing::warn!(tenant = %entry.tenant, "cache writer behind: an entry is kept in memory only");
            return;
        }
        let meta = Meta {
            question: entry.question,
            deployment: entry.answer.deployment,
            tier: entry.answer.tier.as_str().to_owned(),
            vector: entry.vector,
        };
        let Ok(meta) = serde_json::to_vec(&meta) else {
            return;
        };
        let content = Content::new(meta, entry.answer.body.to_vec());
        let Ok((nonce, sealed)) = self.sealer.seal(&entry.tenant, entry.id, &content) else {
            return;
        };
        let row = CacheRow {
            tenant_id: entry.tenant,
            id: entry.id,
            family: entry.family,
            embedder: entry.embedder,
            exact_key: entry.exact.to_vec(),
            context_key: entry.context.to_vec(),
            created_ms: entry.created_ms,
            nonce,
            sealed,
        };
        self.queued_puts.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Op::Write(CacheWrite::Put(Box::new(row))));
    }

    pub(super) fn delete(&self, tenant: &str, ids: Vec<u64>) {
        let _ = self.tx.send(Op::Write(CacheWrite::Delete {
            tenant_id: tenant.to_owned(),
            ids,
        }));
    }

    pub(super) async fn erase(&self, tenant: &str) -> Result<(), StorageError> {
        let _ = self.tx.send(Op::Write(CacheWrite::Erase {
            tenant_id: tenant.to_owned(),
        }));
        self.barrier().await
    }

    pub(super) async fn settings(
        &self,
        tenant: &str,
        settings: &Settings,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_string(settings).unwrap_or_default();
        let _ = self.tx.send(Op::Write(CacheWrite::Settings {
            tenant_id: tenant.to_owned(),
            json,
        }));
        self.barrier().await
    }

    pub(super) async fn flush(&self) {
        if let Err(e) = self.barrier().await {
            tracing::error!(error = %e, "cache entries could not be written");
        }
    }

    async fn barrier(&self) -> Result<(), StorageError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Op::Barrier(ack))
            .map_err(|_| StorageError::Sync("the cache writer stopped".to_owned()))?;
        done.await
            .unwrap_or_else(|_| Err(StorageError::Sync("the cache writer stopped".to_owned())))
    }

    /// Opens a stored entry; `None` if it does not authenticate or decode.
    fn open(&self, row: CacheRow) -> Option<Restored> {
        let content = self
            .sealer
            .open(&row.tenant_id, row.id, &row.nonce, &row.sealed)
            .ok()?;
        let meta: Meta = serde_json::from_slice(&content.prompt).ok()?;
        let tier = match meta.tier.as_str() {
            "simple" => Tier::Simple,
            "complex" => Tier::Complex,
            _ => Tier::Standard,
        };
        Some(Restored {
            tenant: row.tenant_id,
            id: row.id,
            family: row.family,
            embedder: row.embedder,
            exact: row.exact_key.try_into().ok()?,
            context: row.context_key.try_into().ok()?,
            question: meta.question,
            vector: meta.vector,
            answer: Answer {
                body: Bytes::from(content.response),
                deployment: meta.deployment,
                tier,
                checked: (),
            },
            created_ms: row.created_ms,
        })
    }
}

/// Applies queued writes in batches; a failed batch is logged and its barriers get the error.
async fn run(storage: Storage, mut rx: mpsc::UnboundedReceiver<Op>, queued_puts: Arc<AtomicUsize>) {
    let mut ops = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut ops, BATCH).await > 0 {
        let mut writes = Vec::new();
        let mut acks = Vec::new();
        for op in ops.drain(..) {
            match op {
                Op::Write(w) => {
                    if matches!(w, CacheWrite::Put(_)) {
                        queued_puts.fetch_sub(1, Ordering::Relaxed);
                    }
                    writes.push(w);
                }
                Op::Barrier(ack) => acks.push(ack),
            }
        }
        let result = if writes.is_empty() {
            Ok(())
        } else {
            storage.cache_apply(&writes).await
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = writes.len(), "cache writes failed");
        }
        for ack in acks {
            let _ = ack.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StorageError::Sync(e.to_string())),
            });
        }
    }
}

/// Reads the stored settings and entries back into `cache` at start. Entries that expired, that do not open
/// under this gateway's key, or whose tenant no longer keeps content (`retains` says no) are deleted.
/// Returns the entries restored.
pub async fn restore(
    cache: &Cache,
    storage: &Storage,
    retains: impl Fn(&str) -> bool,
) -> Result<usize, StorageError> {
    let Some(writer) = &cache.persist else {
        return Ok(0);
    };
    for (tenant, json) in storage.cache_settings().await? {
        match serde_json::from_str::<Settings>(&json) {
            Ok(s) => cache.restore_settings(&tenant, s),
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "unreadable cache settings ignored")
            }
        }
    }
    let mut restored = 0;
    let mut dropped: Vec<(String, u64)> = Vec::new();
    for row in storage.cache_rows().await? {
        let key = (row.tenant_id.clone(), row.id);
        if !retains(&row.tenant_id) {
            dropped.push(key);
            continue;
        }
        match writer.open(row) {
            Some(entry) => {
                if cache.restore(entry) {
                    restored += 1;
                } else {
                    dropped.push(key);
                }
            }
            None => {
                tracing::warn!(tenant = %key.0, id = key.1, "a stored cache entry does not open; deleted");
                dropped.push(key);
            }
        }
    }
    for (tenant, id) in dropped {
        writer.delete(&tenant, vec![id]);
    }
    writer.flush().await;
    Ok(restored)
}
