//! The verifiable audit log: one log per tenant, canonical entries (`entry`), an RFC 6962 Merkle tree and
//! hash chain (`merkle`), Ed25519 signed-note checkpoints (`note`), the batching sequencer (`log`), and the
//! offline verifier of exports (`verify`).

pub mod content;
pub mod entry;
pub mod heads;
mod log;
pub mod merkle;
pub mod note;
pub mod verify;

use base64::Engine;
use ed25519_dalek::SigningKey;

pub use log::{
    Appended, AuditError, AuditLog, Coverage, LogOptions, OpenError, SignedCheckpoint, Signer,
    ToWitnesses,
};

pub use crate::config::key32_from_text;

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

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
