//! `GET /v1/audit/export`, streamed: the document is written page by page as the client reads it, so an
//! export of any size holds about one page (at most `PAGE_ENTRIES` entries or, past `PAGE_BYTES`, one more
//! entry with its content) in memory. At most `audit.max_concurrent_exports` run at once.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::audit::entry::{ContentMark, Entry};
use crate::audit::verify::{ExportedContent, ExportedEntry, FORMAT};
use crate::audit::{AuditLog, SignedCheckpoint};
use crate::error::{ApiError, ErrorCode};

/// Most entries read from storage at once.
const PAGE_ENTRIES: u64 = 256;
/// A page ends once it holds this many bytes of JSON (its last entry's content may pass it).
const PAGE_BYTES: usize = 1 << 20;

/// A streamed body, for the edge to send as it is produced.
pub type ByteStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>;

/// Takes one of the export slots, or 429 when every one is in use.
pub fn slot(slots: &Arc<tokio::sync::Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            ErrorCode::RateLimited,
            "every audit export slot is in use; retry shortly",
        )
        .with_header(http::header::RETRY_AFTER, "1")
    })
}

/// What the stream needs, owned.
struct Exporter {
    log: AuditLog,
    tenant: String,
    /// Entries `0..size`: what the checkpoint covers.
    size: u64,
    next: u64,
    /// Whether an entry was written (the next one needs a comma).
    written: bool,
    /// The document's end (checkpoints), written once the entries are.
    tail: Option<Bytes>,
    /// Held until the last byte is produced (or the client leaves and the stream is dropped).
    _slot: OwnedSemaphorePermit,
}

/// The export of `tenant`'s log up to `checkpoint`, as a stream of JSON pieces (the `Export` document).
pub async fn stream(
    log: &AuditLog,
    tenant: &str,
    checkpoint: SignedCheckpoint,
    slot: OwnedSemaphorePermit,
) -> Result<ByteStream, ApiError> {
    let earlier: Vec<String> = log
        .storage()
        .audit_checkpoints(tenant)
        .await
        .map_err(super::unavailable)?
        .into_iter()
        .filter(|c| c.size < checkpoint.size)
        .map(|c| c.note)
        .collect();
    let json = |v: &str| serde_json::Value::from(v).to_string();
    let head = format!(
        r#"{{"format":{},"tenant_id":{},"origin":{},"public_key":{},"entries":["#,
        json(FORMAT),
        json(tenant),
        json(&log.signer().log_origin(tenant)),
        json(&log.signer().verifier_key()),
    );
    let tail = format!(
        r#"],"checkpoint":{},"checkpoints":{}}}"#,
        json(&checkpoint.note),
        serde_json::Value::from(earlier)
    );
    let exporter = Exporter {
        log: log.clone(),
        tenant: tenant.to_owned(),
        size: checkpoint.size,
        next: 0,
        written: false,
        tail: Some(Bytes::from(tail)),
        _slot: slot,
    };
    let pages = futures_util::stream::unfold(exporter, |mut ex| async move {
        let page = ex.page().await?;
        Some((page, ex))
    });
    Ok(Box::pin(futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Bytes::from(head) }),
        pages,
    )))
}

impl Exporter {
    /// The next piece: a page of entries, then the tail, then the end. A storage failure ends the stream
    /// early, so the client gets a document that does not parse rather than one that is short.
    async fn page(&mut self) -> Option<Bytes> {
        if self.next >= self.size {
            return self.tail.take();
        }
        let limit = PAGE_ENTRIES.min(self.size - self.next);
        let storage = self.log.storage();
        let rows = match storage.audit_entries(&self.tenant, self.next, limit).await {
            Ok(rows) if !rows.is_empty() => rows,
            Ok(_) => {
                tracing::error!(tenant = %self.tenant, index = self.next, "audit export: entries missing below the checkpoint");
                return None;
            }
            Err(e) => {
                tracing::error!(tenant = %self.tenant, error = %e, "audit export failed");
                return None;
            }
        };
        let mut out = Vec::with_capacity(64 * 1024);
        for (index, bytes) in rows {
            if out.len() >= PAGE_BYTES || index >= self.size {
                break;
            }
            let exported = self.entry(index, &bytes).await?;
            if self.written {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &exported).ok()?;
            self.written = true;
            self.next = index + 1;
        }
        if out.is_empty() {
            // Only rows past the checkpoint (a gap below it): nothing more to export.
            self.next = self.size;
        }
        Some(Bytes::from(out))
    }

    /// One exported entry, with its content when the entry commits to some (or its bytes do not decode:
    /// then whatever is stored is shown for the verifier to judge).
    async fn entry(&self, index: u64, bytes: &[u8]) -> Option<ExportedEntry> {
        let decoded = Entry::decode(bytes).ok();
        let wants_content = decoded
            .as_ref()
            .is_none_or(|e| e.content == ContentMark::Committed);
        let (content, content_error) = if wants_content {
            match self.log.storage().audit_content(&self.tenant, index).await {
                Ok(None) => (None, None),
                Ok(Some((nonce, ciphertext))) => {
                    match self
                        .log
                        .sealer()
                        .open(&self.tenant, index, &nonce, &ciphertext)
                    {
                        Ok(c) => (Some(ExportedContent::from_content(&c)), None),
                        Err(e) => (None, Some(e.to_string())),
                    }
                }
                Err(e) => {
                    tracing::error!(tenant = %self.tenant, error = %e, "audit export failed");
                    return None;
                }
            }
        } else {
            (None, None)
        };
        Some(ExportedEntry {
            index,
            fields: decoded.and_then(|e| serde_json::to_value(e).ok()),
            entry: base64::engine::general_purpose::STANDARD.encode(bytes),
            content,
            content_error,
        })
    }
}
