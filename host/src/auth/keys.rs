//! API keys: `slk_<key id, 12 base62>_<secret, 32 base62><checksum, 6 base62 of CRC32>`.
//!
//! The checksum lets secret scanners recognise keys and lets the gateway reject a mistyped key before
//! any lookup. Only `HMAC-SHA256(pepper, salt || secret)` is stored.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX: &str = "slk_";
pub const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// Total length of a key: prefix, id, separator, secret, checksum.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECK_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented key is not even worth looking up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the API key is malformed")]
    Malformed,
    #[error("the API key checksum does not match (mistyped or truncated key?)")]
    BadChecksum,
}

/// A key that passed the format and checksum checks.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// A freshly generated key: the plaintext exists only here and in the one response that shows it.
pub struct NewKey {
    pub id: String,
    pub plaintext: String,
    pub salt: [u8; 16],
    pub last4: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Random base62 text of `len` characters.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

fn checksum(body: &str) -> [u8; CHECK_LEN] {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[usize::try_from(n % 62).unwrap_or(0)];
        n /= 62;
    }
    out
}

/// Makes a new key and its salt.
pub fn generate() -> NewKey {
    let id = random_base62(ID_LEN);
    let secret = random_base62(SECRET_LEN);
    let body = format!("{PREFIX}{id}_{secret}");
    let check = checksum(&body);
    let mut plaintext = body;
    plaintext.extend(check.iter().map(|&b| char::from(b)));
    let last4 = plaintext[plaintext.len() - 4..].to_owned();
    NewKey {
        id,
        plaintext,
        salt: rand::rng().random(),
        last4,
    }
}

/// Checks shape and checksum without touching any store.
pub fn parse(key: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    if key.len() != KEY_LEN || !key.starts_with(PREFIX) {
        return Err(KeyFormatError::Malformed);
    }
    let rest = &key[PREFIX.len()..];
    let (id, tail) = rest.split_at(ID_LEN);
    let Some(tail) = tail.strip_prefix('_') else {
        return Err(KeyFormatError::Malformed);
    };
    let (secret, check) = tail.split_at(SECRET_LEN);
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !base62(id) || !base62(secret) || !base62(check) {
        return Err(KeyFormatError::Malformed);
    }
    if checksum(&key[..key.len() - CHECK_LEN]).as_slice() != check.as_bytes() {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(ParsedKey { id, secret })
}

/// `HMAC-SHA256(pepper, salt || secret)`.
pub fn hash(pepper: &[u8], salt: &[u8], secret: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps clippy's no-panic rule.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(pepper) else {
        return [0; 32];
    };
    mac.update(salt);
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn verify(pepper: &[u8], salt: &[u8], secret: &str, stored: &[u8]) -> bool {
    let computed = hash(pepper, salt, secret);
    bool::from(computed.as_slice().ct_eq(stored))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        for _ in 0..200 {
            let k = generate();
            assert_eq!(k.plaintext.len(), KEY_LEN);
            let p = parse(&k.plaintext).unwrap();
            assert_eq!(p.id, k.id);
            assert!(k.plaintext.ends_with(&k.last4));
        }
    }

    #[test]
    fn malformed_and_mistyped_keys_are_rejected_before_lookup() {
        let k = generate().plaintext;
        assert_eq!(parse(""), Err(KeyFormatError::Malformed));
        assert_eq!(parse(&k[..k.len() - 1]), Err(KeyFormatError::Malformed));
        assert_eq!(
            parse(&k.replacen("slk_", "sk-_", 1)),
            Err(KeyFormatError::Malformed)
        );
        let mut bad = k.clone().into_bytes();
        bad[16] = b'-';
        assert_eq!(
            parse(std::str::from_utf8(&bad).unwrap()),
            Err(KeyFormatError::Malformed)
        );
        // Change one secret character: still well formed, but the checksum no longer matches.
        let mut typo = k.into_bytes();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            parse(std::str::from_utf8(&typo).unwrap()),
            Err(KeyFormatError::BadChecksum)
        );
    }

    #[test]
    fn hash_depends_on_pepper_salt_and_secret() {
        let h = hash(b"pepper", b"salt", "secret");
        assert!(verify(b"pepper", b"salt", "secret", &h));
        assert!(!verify(b"pepper2", b"salt", "secret", &h));
        assert!(!verify(b"pepper", b"salt2", "secret", &h));
        assert!(!verify(b"pepper", b"salt", "secreT", &h));
        assert!(!verify(b"pepper", b"salt", "secret", &h[..31]));
    }
}
