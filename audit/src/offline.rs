//! The offline check of an export file, as `sluice-verify` and `sluice audit verify` run it: the export's
//! entries, tree and checkpoint (against a pinned key when one is given), an older checkpoint it must
//! extend, and the witnesses' cosignatures.

use std::path::Path;

use crate::{entry, verify};

/// What the check was given.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// An older signed checkpoint (the note's text) the log must extend.
    pub since: Option<String>,
    /// The gateway's verifier key; without it the export's own key is used (and the report says so).
    pub public_key: Option<String>,
    /// Cosigner keys of the witnesses.
    pub witness_keys: Vec<String>,
    /// How many of `witness_keys` must have cosigned; default 1 when any is given.
    pub min_witnesses: Option<usize>,
}

/// Why the check could not say OK.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The input could not be read or is not an export: nothing was verified.
    #[error("{0}")]
    Input(String),
    /// The export was read and does not verify.
    #[error("FAILED: {0}")]
    Failed(String),
}

/// Verifies the export in `file`; `Ok` holds the report's lines (`OK: ...`, `NOTE: ...`).
pub fn check_file(file: &Path, check: &Check) -> Result<Vec<String>, CheckError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CheckError::Input(format!("reading {}: {e}", file.display())))?;
    let export: verify::Export = serde_json::from_str(&text).map_err(|e| {
        CheckError::Input(format!("{} is not an audit export: {e}", file.display()))
    })?;
    let min = check
        .min_witnesses
        .unwrap_or(usize::from(!check.witness_keys.is_empty()));
    let report =
        verify::verify_export(&export, check.public_key.as_deref(), check.since.as_deref())
            .map_err(|e| CheckError::Failed(e.to_string()))?;
    let witnesses = verify::verify_witnesses(&export, &check.witness_keys, min)
        .map_err(|e| CheckError::Failed(e.to_string()))?;
    let mut lines = vec![format!(
        "OK: {} entries of log {} verify; root {}",
        report.size,
        report.origin,
        entry::hex(&report.root)
    )];
    if let Some(old) = report.extends {
        lines.push(format!(
            "OK: the log extends the older checkpoint of size {old} (append-only)"
        ));
    }
    if !witnesses.is_empty() {
        lines.push(format!("OK: cosigned by {}", witnesses.join(", ")));
    }
    if report.key_from_export {
        lines.push(
            "NOTE: checked against the public key inside the export; pin the gateway's key with \
             --public-key to prove where the log came from"
                .to_owned(),
        );
    }
    Ok(lines)
}

/// A key given as text, or as the path of a file holding it.
pub fn key_text(k: String) -> std::io::Result<String> {
    if Path::new(&k).is_file() {
        std::fs::read_to_string(&k).map(|t| t.trim().to_owned())
    } else {
        Ok(k)
    }
}
