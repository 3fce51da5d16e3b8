//! The export format and its offline verification: decode every entry canonically, check index contiguity
//! and the hash chain, recompute the Merkle root, check the signed checkpoint, and with an older checkpoint
//! prove the log only grew. Needs no server and no database; names the first bad index and why.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::merkle::{self, Hash};
use super::note::{self, Checkpoint};

/// Format tag of an export document.
pub const FORMAT: &str = "sluice-audit-export/1";

/// One exported entry: its index and its canonical bytes (base64). `fields` is the decoded form, for
/// reading; the verifier decodes the bytes itself and refuses an export whose `fields` say anything else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedEntry {
    pub index: u64,
    pub entry: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    /// The stored prompt and response with their salts (base64), while retention keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ExportedContent>,
    /// Set when stored content exists but cannot be decrypted (it was modified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_error: Option<String>,
}

/// Content as exported: everything needed to recompute the entry's commitments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedContent {
    pub prompt_salt: String,
    pub prompt: String,
    pub response_salt: String,
    pub response: String,
}

impl ExportedContent {
    pub fn from_content(c: &super::content::Content) -> ExportedContent {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        ExportedContent {
            prompt_salt: b64(&c.prompt_salt),
            prompt: b64(&c.prompt),
            response_salt: b64(&c.response_salt),
            response: b64(&c.response),
        }
    }

    /// Recomputes (prompt commitment, response commitment).
    fn commitments(&self) -> Option<(Hash, Hash)> {
        let d = |t: &str| base64::engine::general_purpose::STANDARD.decode(t).ok();
        let salt = |t: &str| d(t).and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
        Some((
            super::content::commit(&salt(&self.prompt_salt)?, &d(&self.prompt)?),
            super::content::commit(&salt(&self.response_salt)?, &d(&self.response)?),
        ))
    }
}

/// `GET /v1/audit/export`: everything an auditor needs to recompute a tenant's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub tenant_id: String,
    /// Origin line of the tenant's log.
    pub origin: String,
    /// Signed-note verifier key of the gateway (pin it; see `--public-key`).
    pub public_key: String,
    /// Entries `0..checkpoint size`, in order.
    pub entries: Vec<ExportedEntry>,
    /// The latest signed checkpoint, covering exactly these entries.
    pub checkpoint: String,
    /// Every earlier checkpoint, oldest first.
    #[serde(default)]
    pub checkpoints: Vec<String>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The older checkpoint's size the log was proven to extend, if one was given.
    pub extends: Option<u64>,
    /// The public key came from the export itself rather than from the auditor.
    pub key_from_export: bool,
}

/// The first thing that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a Sluice audit export: {0}")]
    Format(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    #[error("{0}")]
    Log(String),
}

fn entry_err(index: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Entry {
        index,
        reason: reason.into(),
    }
}

/// Verifies an export. `trusted_key` is the auditor's pinned verifier key text; without it the export's own
/// key is used (which only proves self-consistency, not origin). `since` is an older signed checkpoint
/// note the log must extend.
pub fn verify_export(
    export: &Export,
    trusted_key: Option<&str>,
    since: Option<&str>,
) -> Result<Report, VerifyError> {
    // The steps run in this order and each stops at its first failure, so an export with several problems
    // always names the same one.
    let (name, key, latest) = verify_latest_checkpoint(export, trusted_key)?;
    let leaves = verify_entries(export)?;
    verify_roots(export, &leaves, &latest, &name, &key)?;
    let extends = match since {
        Some(old_text) => Some(verify_since(old_text, &leaves, &latest, &name, &key)?),
        None => None,
    };
    Ok(Report {
        origin: latest.origin,
        size: latest.size,
        root: latest.root,
        extends,
        key_from_export: trusted_key.is_none(),
    })
}

/// Checks that the export's checkpoint carries valid cosignatures (C2SP `cosignature/v1`) by at least
/// `min` of `witness_keys` (cosigner verifier key texts), each over the checkpoint the log verified to.
/// Returns the names of the witnesses that cosigned it.
pub fn verify_witnesses(
    export: &Export,
    witness_keys: &[String],
    min: usize,
) -> Result<Vec<String>, VerifyError> {
    let mut cosigned = Vec::new();
    for text in witness_keys {
        let (name, key) = note::parse_cosigner_key(text.trim())
            .map_err(|e| VerifyError::Checkpoint(format!("witness key: {e}")))?;
        match note::verify_cosignature(&export.checkpoint, &name, &key) {
            Ok(_) if !cosigned.contains(&name) => cosigned.push(name),
            Ok(_) | Err(note::NoteError::NoSignatureForKey) => {}
            Err(e) => {
                return Err(VerifyError::Checkpoint(format!(
                    "the cosignature of witness {name}: {e}"
                )));
            }
        }
    }
    if cosigned.len() < min {
        return Err(VerifyError::Checkpoint(format!(
            "the checkpoint carries {} of the {min} witness cosignatures required",
            cosigned.len()
        )));
    }
    Ok(cosigned)
}

/// Checks the format tag, parses the verifier key (the trusted one, else the export's) and verifies the
/// latest checkpoint with it. Returns the key's name, the key and the checkpoint.
fn verify_latest_checkpoint(
    export: &Export,
    trusted_key: Option<&str>,
) -> Result<(String, ed25519_dalek::VerifyingKey, Checkpoint), VerifyError> {
    if export.format != FORMAT {
        return Err(VerifyError::Format(format!(
            "format is `{}`, expected `{FORMAT}`",
            export.format
        )));
    }
    let key_text = trusted_key.unwrap_or(&export.public_key).trim();
    let (name, key) = note::parse_verifier_key(key_text)
        .map_err(|e| VerifyError::Checkpoint(format!("public key: {e}")))?;
    let latest = note::verify(&export.checkpoint, &name, &key)
        .map_err(|e| VerifyError::Checkpoint(e.to_string()))?;
    if latest.origin != export.origin {
        return Err(VerifyError::Checkpoint(format!(
            "the checkpoint is for log `{}`, the export says `{}`",
            latest.origin, export.origin
        )));
    }
    Ok((name, key, latest))
}

/// Entries: canonical, contiguous, chained, all of this tenant. Returns their leaf hashes in order.
fn verify_entries(export: &Export) -> Result<Vec<Hash>, VerifyError> {
    let mut leaves: Vec<Hash> = Vec::with_capacity(export.entries.len());
    let mut prev: Hash = [0; 32];
    for (position, exported) in export.entries.iter().enumerate() {
        let expected = u64::try_from(position).unwrap_or(u64::MAX);
        let leaf = verify_entry(export, exported, expected, prev)?;
        prev = leaf;
        leaves.push(leaf);
    }
    Ok(leaves)
}

/// Checks the entry at position `expected` whose predecessor's leaf hash is `prev`; returns its leaf hash.
fn verify_entry(
    export: &Export,
    exported: &ExportedEntry,
    expected: u64,
    prev: Hash,
) -> Result<Hash, VerifyError> {
    if exported.index != expected {
        return Err(if exported.index > expected {
            entry_err(
                expected,
                format!("missing (the next exported entry is {})", exported.index),
            )
        } else {
            entry_err(
                expected,
                format!("out of order: found entry {} in its place", exported.index),
            )
        });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&exported.entry)
        .map_err(|e| entry_err(expected, format!("not base64: {e}")))?;
    let entry = Entry::decode(&bytes)
        .map_err(|e| entry_err(expected, format!("not a canonical entry: {e}")))?;
    if entry.index != expected {
        return Err(entry_err(
            expected,
            format!(
                "its bytes say index {} (rows swapped or reordered)",
                entry.index
            ),
        ));
    }
    if entry.tenant_id != export.tenant_id {
        return Err(entry_err(
            expected,
            format!("belongs to tenant `{}`", entry.tenant_id),
        ));
    }
    if entry.prev_leaf != prev {
        // Entry `expected` is intact as bytes, but the one before it is not the one it was chained to.
        let culprit = expected.saturating_sub(1);
        return Err(entry_err(
            culprit,
            format!("modified: entry {expected} chains to a different previous leaf hash"),
        ));
    }
    verify_fields(exported, &entry, expected)?;
    verify_content(exported, &entry, expected)?;
    Ok(merkle::leaf_hash(&bytes))
}

/// Checks that the readable `fields` of entry `expected` (if any) say exactly what its signed bytes say:
/// a reader of the export must not be shown numbers the checkpoint does not cover.
fn verify_fields(
    exported: &ExportedEntry,
    entry: &Entry,
    expected: u64,
) -> Result<(), VerifyError> {
    let Some(fields) = &exported.fields else {
        return Ok(());
    };
    let signed = serde_json::to_value(entry)
        .map_err(|e| entry_err(expected, format!("cannot encode the entry: {e}")))?;
    if *fields == signed {
        return Ok(());
    }
    let differing = match (fields.as_object(), signed.as_object()) {
        (Some(shown), Some(signed)) => shown
            .keys()
            .chain(signed.keys())
            .find(|k| shown.get(*k) != signed.get(*k))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    Err(entry_err(
        expected,
        format!("its readable `fields` differ from its signed bytes (`{differing}` edited)"),
    ))
}

/// Checks the exported content of entry `expected` (if any) against the commitments in its bytes.
fn verify_content(
    exported: &ExportedEntry,
    entry: &Entry,
    expected: u64,
) -> Result<(), VerifyError> {
    if let Some(err) = &exported.content_error {
        return Err(entry_err(expected, format!("stored content: {err}")));
    }
    if let Some(content) = &exported.content {
        if entry.content != super::entry::ContentMark::Committed {
            return Err(entry_err(
                expected,
                "content is exported for an entry that commits to none",
            ));
        }
        let (p, r) = content
            .commitments()
            .ok_or_else(|| entry_err(expected, "exported content is not valid base64"))?;
        if Some(p) != entry.prompt_commitment || Some(r) != entry.response_commitment {
            return Err(entry_err(
                expected,
                "stored content does not match the entry's commitments (content edited)",
            ));
        }
    }
    Ok(())
}

/// Checks the leaves against every signed checkpoint, smallest first, then that the latest covers exactly
/// the exported entries.
fn verify_roots(
    export: &Export,
    leaves: &[Hash],
    latest: &Checkpoint,
    name: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<(), VerifyError> {
    let count = u64::try_from(leaves.len()).unwrap_or(u64::MAX);

    // Earlier checkpoints locate damage the chain cannot see (the newest entries have no successor).
    let mut checked: Vec<Checkpoint> = Vec::new();
    for text in &export.checkpoints {
        let cp = note::verify(text, name, key)
            .map_err(|e| VerifyError::Checkpoint(format!("earlier checkpoint: {e}")))?;
        checked.push(cp);
    }
    checked.push(latest.clone());
    checked.sort_by_key(|c| c.size);
    let mut good_upto = 0u64;
    for cp in &checked {
        if cp.origin != latest.origin {
            return Err(VerifyError::Checkpoint(format!(
                "earlier checkpoint for another log `{}`",
                cp.origin
            )));
        }
        if cp.size > count {
            return Err(VerifyError::Log(format!(
                "truncated: a signed checkpoint covers {} entries, the export holds {count} (entry {count} onwards is missing)",
                cp.size
            )));
        }
        let size = usize::try_from(cp.size).unwrap_or(usize::MAX);
        let root = merkle::root(leaves.get(..size).unwrap_or(leaves));
        if root != cp.root {
            // Something in good_upto..size changed; the chain found nothing, so it is the last of them.
            return Err(entry_err(
                cp.size.saturating_sub(1).max(good_upto),
                format!(
                    "modified: the entries do not hash to the root signed for size {} (entries {good_upto}..{} checked against it)",
                    cp.size, cp.size
                ),
            ));
        }
        good_upto = cp.size;
    }
    if count != latest.size {
        return Err(VerifyError::Log(format!(
            "the export holds {count} entries but its checkpoint covers {}",
            latest.size
        )));
    }
    Ok(())
}

/// Proves that the log of `latest` extends the older checkpoint `old_text`; returns the older size.
fn verify_since(
    old_text: &str,
    leaves: &[Hash],
    latest: &Checkpoint,
    name: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<u64, VerifyError> {
    let old = note::verify(old_text, name, key)
        .map_err(|e| VerifyError::Checkpoint(format!("--since checkpoint: {e}")))?;
    if old.origin != latest.origin {
        return Err(VerifyError::Checkpoint(format!(
            "--since checkpoint is for log `{}`",
            old.origin
        )));
    }
    if old.size > latest.size {
        return Err(VerifyError::Log(format!(
            "the log shrank: the older checkpoint covers {} entries, the latest {}",
            old.size, latest.size
        )));
    }
    let size = usize::try_from(old.size).unwrap_or(usize::MAX);
    let old_root = merkle::root(leaves.get(..size).unwrap_or(leaves));
    if old_root != old.root {
        return Err(VerifyError::Log(format!(
            "rewritten: the first {} entries no longer match the older checkpoint, so entries before index {} were changed after it was signed",
            old.size, old.size
        )));
    }
    // The consistency proof the server would send, recomputed and checked here, proves append-only growth.
    let proof = merkle::consistency_proof(leaves, old.size, latest.size)
        .ok_or_else(|| VerifyError::Log("cannot build a consistency proof".to_owned()))?;
    merkle::verify_consistency(old.size, latest.size, &old.root, &latest.root, &proof)
        .map_err(|e| VerifyError::Log(format!("consistency: {e}")))?;
    Ok(old.size)
}
