//! Tenant audit endpoints under `/v1/audit` (tenant key with the `admin` or `owner` role): entries,
//! checkpoints, inclusion and consistency proofs, the export `sluice audit verify` checks offline, and
//! erasure of the tenant's stored content.
//! The tenant comes from the credential, never from the URL.

use std::time::Duration;

use base64::Engine;

use super::{AuditEndpoint, ControlRequest, View, unavailable};
use crate::app::App;
use crate::audit::entry::{Entry, hex};
use crate::audit::merkle::{self, Hash};
use crate::error::{ApiError, ErrorCode};

/// Largest page of `/v1/audit/entries`.
const MAX_PAGE: u64 = 1000;

async fn leaves(app: &App, tenant: &str, size: u64) -> Result<Vec<Hash>, ApiError> {
    let rows = app
        .audit
        .storage()
        .audit_leaves(tenant, size)
        .await
        .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .map(|l| l.as_slice().try_into().unwrap_or([0; 32]))
        .collect())
}

/// The longest an audit read waits for a checkpoint to cover what it needs.
const MAX_COVER_WAIT: Duration = Duration::from_secs(2);

/// The longest an export waits for the witnesses' cosignatures of its checkpoint.
const MAX_COSIGN_WAIT: Duration = Duration::from_secs(3);

/// The longest `GET /v1/audit/checkpoint` waits for them: the checkpoint it hands out may have been signed
/// just now (for the reads that came before), and a witness cosigns in milliseconds.
const CHECKPOINT_COSIGN_WAIT: Duration = Duration::from_secs(1);

/// The checkpoint with the witnesses' cosignature lines appended to its note (what a note verifier reads
/// as extra signatures), waiting up to `wait` for every configured witness to have cosigned it.
async fn cosigned(
    app: &App,
    tenant: &str,
    mut cp: crate::audit::SignedCheckpoint,
    wait: Duration,
) -> Result<crate::audit::SignedCheckpoint, ApiError> {
    let wanted = app.audit.witnesses();
    if wanted == 0 {
        return Ok(cp);
    }
    let started = tokio::time::Instant::now();
    let lines = loop {
        let lines = app
            .audit
            .storage()
            .cosignatures(tenant, cp.size)
            .await
            .map_err(unavailable)?;
        if lines.len() >= wanted || started.elapsed() >= wait {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    cp.note.extend(lines.iter().map(String::as_str));
    Ok(cp)
}

/// The latest checkpoint covering the log (signed now unless one was signed within the interval).
async fn latest(app: &App, tenant: &str) -> Result<crate::audit::SignedCheckpoint, ApiError> {
    app.audit
        .checkpoint_now(tenant)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "the log has no entries yet"))
}

/// The latest checkpoint once it covers the first `size` entries, or, with `None`, every entry the log
/// held when asked. A checkpoint signed within the interval covers fewer: this waits for the next signing
/// when it comes within `MAX_COVER_WAIT`, and is otherwise 409 `not_checkpointed` with `Retry-After`.
async fn covering(
    app: &App,
    tenant: &str,
    size: Option<u64>,
) -> Result<crate::audit::SignedCheckpoint, ApiError> {
    let started = tokio::time::Instant::now();
    let mut coverage = app.audit.coverage(tenant).await.map_err(unavailable)?;
    let wanted = size.unwrap_or(coverage.log_size);
    loop {
        let Some(cp) = coverage.checkpoint else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "the log has no entries yet",
            ));
        };
        if cp.size >= wanted {
            return Ok(cp);
        }
        let wait = coverage.next_signing_in.max(Duration::from_millis(5));
        if started.elapsed() + wait > MAX_COVER_WAIT {
            let retry = wait.as_secs_f64().ceil().max(1.0);
            return Err(ApiError::new(
                ErrorCode::NotCheckpointed,
                format!(
                    "the latest signed checkpoint covers {} entries and this needs {wanted}; the next one is signed within {retry} s",
                    cp.size
                ),
            )
            .with_header(http::header::RETRY_AFTER, &retry.to_string()));
        }
        tokio::time::sleep(wait).await;
        coverage = app.audit.coverage(tenant).await.map_err(unavailable)?;
    }
}

fn ok(v: serde_json::Value) -> View {
    View::ok(&v)
}

/// Serves one audit endpoint for the caller's tenant.
pub async fn serve(
    app: &App,
    tenant: &str,
    endpoint: AuditEndpoint,
    call: ControlRequest<'_>,
) -> Result<View, ApiError> {
    match endpoint {
        AuditEndpoint::AuditEntries => entries(app, tenant, &call).await,
        AuditEndpoint::AuditCheckpoint => {
            let cp = cosigned(
                app,
                tenant,
                latest(app, tenant).await?,
                CHECKPOINT_COSIGN_WAIT,
            )
            .await?;
            Ok(ok(
                serde_json::json!({"size": cp.size, "root": hex(&cp.root), "note": cp.note}),
            ))
        }
        AuditEndpoint::AuditCheckpoints => {
            let all = app
                .audit
                .storage()
                .audit_checkpoints(tenant)
                .await
                .map_err(unavailable)?;
            Ok(ok(serde_json::json!({"object": "list", "data": all})))
        }
        AuditEndpoint::AuditProofInclusion => inclusion(app, tenant, &call).await,
        AuditEndpoint::AuditProofConsistency => consistency(app, tenant, &call).await,
        AuditEndpoint::AuditExport => export(app, tenant).await,
        AuditEndpoint::AuditErase => {
            // The tenant's right to erasure: content and salts go; entries, chain and checkpoints stay.
            let deleted = app
                .audit
                .storage()
                .audit_delete_content(tenant, None)
                .await
                .map_err(unavailable)?;
            // The cache keeps answers (and questions) too: they go with the content.
            let cached = app.cache.erase(tenant).await.map_err(unavailable)?;
            Ok(ok(
                serde_json::json!({"erased_entries": deleted, "erased_cache_entries": cached}),
            ))
        }
    }
}

async fn entries(app: &App, tenant: &str, call: &ControlRequest<'_>) -> Result<View, ApiError> {
    let storage = app.audit.storage();
    let from = call.number("from")?.unwrap_or(0);
    let limit = call.number("limit")?.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = storage
        .audit_entries(tenant, from, limit)
        .await
        .map_err(unavailable)?;
    let next = rows.last().map(|(i, _)| i + 1);
    let data: Vec<_> = rows
        .into_iter()
        .map(|(index, bytes)| {
            serde_json::json!({
                "index": index,
                "leaf_hash": hex(&merkle::leaf_hash(&bytes)),
                "entry": base64::engine::general_purpose::STANDARD.encode(&bytes),
                "fields": Entry::decode(&bytes).ok(),
            })
        })
        .collect();
    Ok(ok(
        serde_json::json!({"object": "list", "data": data, "next_from": next}),
    ))
}

async fn inclusion(app: &App, tenant: &str, call: &ControlRequest<'_>) -> Result<View, ApiError> {
    let storage = app.audit.storage();
    let request_id = call
        .query("request_id")
        .ok_or_else(|| ApiError::invalid("request_id", "`request_id` is required"))?;
    let index = storage
        .audit_find_request(tenant, &request_id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no entry records that request"))?;
    let cp = covering(app, tenant, Some(index.saturating_add(1))).await?;
    let leaves = leaves(app, tenant, cp.size).await?;
    let proof = merkle::inclusion_proof(&leaves, index, cp.size)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "inclusion proof out of range"))?;
    Ok(ok(serde_json::json!({
        "index": index,
        "size": cp.size,
        "leaf_hash": leaves.get(usize::try_from(index).unwrap_or(usize::MAX)).map(|l| hex(l)),
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "checkpoint": cp.note,
    })))
}

async fn consistency(app: &App, tenant: &str, call: &ControlRequest<'_>) -> Result<View, ApiError> {
    let from = call
        .number("from")?
        .ok_or_else(|| ApiError::invalid("from", "`from` is required"))?;
    let to = call.number("to")?;
    let cp = match to {
        Some(to) => {
            let log_size = app
                .audit
                .coverage(tenant)
                .await
                .map_err(unavailable)?
                .log_size;
            if to > log_size {
                return Err(ApiError::invalid(
                    "to",
                    format!("`to` is past the end of the log ({log_size} entries)"),
                ));
            }
            covering(app, tenant, Some(to)).await?
        }
        None => latest(app, tenant).await?,
    };
    let to = to.unwrap_or(cp.size);
    if from > to || to > cp.size {
        return Err(ApiError::invalid(
            "from",
            format!(
                "need from <= to <= {} (the latest checkpoint size)",
                cp.size
            ),
        ));
    }
    let leaves = leaves(app, tenant, to).await?;
    let proof = merkle::consistency_proof(&leaves, from, to)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "consistency proof out of range"))?;
    Ok(ok(serde_json::json!({
        "from": from,
        "to": to,
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "checkpoint": cp.note,
    })))
}

async fn export(app: &App, tenant: &str) -> Result<View, ApiError> {
    let slot = super::export::slot(&app.exports)?;
    let cp = covering(app, tenant, None).await?;
    let cp = cosigned(app, tenant, cp, MAX_COSIGN_WAIT).await?;
    let body = super::export::stream(&app.audit, tenant, cp, slot).await?;
    Ok(View::streamed(body))
}
