//! The verifiable audit log's format and its offline verifier, apart from the gateway that writes it: one log
//! per tenant of canonical entries (`entry`), an RFC 6962 Merkle tree and hash chain (`merkle`), Ed25519
//! signed-note checkpoints and witness cosignatures (`note`), salted content commitments and the sealing of
//! content (`content`), and the verification of an export (`verify`, and `offline` for the command line).
//!
//! It depends on no async runtime, HTTP stack, database, Wasm engine or model code, so an auditor builds the
//! `sluice-verify` binary with `cargo build --release -p sluice-audit` and nothing of the gateway.

pub mod content;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod offline;
pub mod verify;

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Decodes base64 text (surrounding whitespace ignored) holding exactly 32 bytes.
pub fn key32_from_text(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.as_slice().try_into().ok()
}

/// Decodes 64 hex characters into 32 bytes.
pub fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
