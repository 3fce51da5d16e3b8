//! The verifiable audit log as the gateway keeps it: the batching sequencer (`log`) and the signed heads
//! kept outside the database (`heads`). The log's format (canonical entries, the Merkle tree, signed notes,
//! content commitments and sealing) and the offline verifier are the `sluice-audit` crate, re-exported here
//! under the same names.

pub mod heads;
mod log;

pub use sluice_audit::{content, entry, merkle, note, now_ms, verify};

use base64::Engine;
use ed25519_dalek::SigningKey;

pub use log::{
    Appended, AuditError, AuditLog, Coverage, LogOptions, OpenError, SignedCheckpoint, Signer,
    ToWitnesses,
};

pub use sluice_audit::key32_from_text;

/// Parses a base64 32-byte Ed25519 seed.
pub fn signing_key_from_text(text: &str) -> Option<SigningKey> {
    key32_from_text(text).map(|seed| SigningKey::from_bytes(&seed))
}

/// A fresh 32-byte key (signing seed or content master key) as base64 text, for `sluice init`.
pub fn new_key_text() -> String {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    base64::engine::general_purpose::STANDARD.encode(seed)
}
