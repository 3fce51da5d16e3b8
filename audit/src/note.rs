//! Checkpoints (`origin\nsize\nbase64(root)\n`) signed with Ed25519 in the signed-note format.
//!
//! The wire format is the one of golang.org/x/mod/sumdb/note (C2SP signed-note and tlog-checkpoint), so that
//! the checkpoints can be checked by the existing transparency-log tooling: a note is its text, a blank
//! line, then one line `— name base64(key_id || signature)` per signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Algorithm byte of Ed25519 keys in signed-note key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;

/// Algorithm byte of Ed25519 cosigner (witness) keys: C2SP tlog-cosignature, `cosignature/v1`.
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Every signature line starts with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// A cap on signature lines, so that a hostile note cannot make a verifier do unbounded work.
const MAX_SIGNATURES: usize = 100;

/// A signed tree head: the log's name, its size and the root of its first `size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, the first line of the note (e.g. `sluice.example/audit/tenant-42`).
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 6962 root of the tree of the first `size` entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n` (standard base64 with padding).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a body (exactly three lines each ending in \n; origin non-empty without \n; size decimal without leading zeros except "0"; root 32 bytes).
    ///
    /// The origin must also be free of ASCII control characters, which the signed-note format forbids in a
    /// note's text.
    pub fn parse_body(text: &str) -> Result<Checkpoint, NoteError> {
        let Some(lines) = text.strip_suffix('\n') else {
            return Err(malformed("checkpoint body does not end with a newline"));
        };
        let mut parts = lines.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("checkpoint body is not exactly three lines"));
        };

        if origin.is_empty() {
            return Err(malformed("checkpoint origin is empty"));
        }
        if origin.chars().any(|c| c < ' ') {
            return Err(malformed("checkpoint origin contains a control character"));
        }

        // str::parse alone would also take "+5"; a size has exactly one spelling.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("checkpoint size is not a decimal number"));
        }
        if size.len() > 1 && size.starts_with('0') {
            return Err(malformed("checkpoint size has a leading zero"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| malformed("checkpoint size does not fit in 64 bits"))?;

        let root_bytes = STANDARD
            .decode(root)
            .map_err(|e| malformed(&format!("checkpoint root is not base64: {e}")))?;
        let root: Hash = root_bytes.as_slice().try_into().map_err(|_| {
            malformed(&format!(
                "checkpoint root is {} bytes, not 32",
                root_bytes.len()
            ))
        })?;

        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Why a note or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note or the checkpoint in it does not follow the format.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// No signature line carries the expected key's name and key id.
    #[error("the note has no signature by the expected key")]
    NoSignatureForKey,
    /// A signature line for the expected key does not verify.
    #[error("the note's signature by the expected key does not verify")]
    BadSignature,
    /// A verifier key text is not valid.
    #[error("bad verifier key: {0}")]
    BadKey(String),
}

fn malformed(why: &str) -> NoteError {
    NoteError::Malformed(why.to_owned())
}

fn bad_key(why: &str) -> NoteError {
    NoteError::BadKey(why.to_owned())
}

/// Signed-note key id: first 4 bytes of SHA-256(name || "\n" || 0x01 || public key) (0x01 = Ed25519 algorithm byte).
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, key, ALG_ED25519)
}

/// Cosigner key id: first 4 bytes of SHA-256(name || "\n" || 0x04 || public key).
pub fn cosigner_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, key, ALG_COSIGNATURE_V1)
}

fn typed_key_id(name: &str, key: &VerifyingKey, alg: u8) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(key.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    [a, b, c, d]
}

/// A key name per the format: non-empty, no whitespace (it ends the name on a signature line) and no `+`
/// (it ends the name in a verifier key).
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Verifier key text `name+hex8(key_id)+base64(0x01 || public key)` as used by sumdb/note.
pub fn verifier_key_text(name: &str, key: &VerifyingKey) -> String {
    typed_key_text(name, key, ALG_ED25519)
}

/// Cosigner verifier key text `name+hex8(key_id)+base64(0x04 || public key)`: how a witness's key is given.
pub fn cosigner_key_text(name: &str, key: &VerifyingKey) -> String {
    typed_key_text(name, key, ALG_COSIGNATURE_V1)
}

fn typed_key_text(name: &str, key: &VerifyingKey, alg: u8) -> String {
    let id = typed_key_id(name, key, alg);
    let mut typed = Vec::with_capacity(33);
    typed.push(alg);
    typed.extend_from_slice(key.as_bytes());
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}+{hex}+{}", STANDARD.encode(typed))
}

/// Parses a verifier key text back, checking that the key id matches.
///
/// Small-order ("weak") Ed25519 keys are refused: any signature made under them is worthless.
pub fn parse_verifier_key(text: &str) -> Result<(String, VerifyingKey), NoteError> {
    parse_typed_key(text, ALG_ED25519)
}

/// Parses a cosigner (witness) verifier key text, `name+hex8(key_id)+base64(0x04 || public key)`.
pub fn parse_cosigner_key(text: &str) -> Result<(String, VerifyingKey), NoteError> {
    parse_typed_key(text, ALG_COSIGNATURE_V1)
}

fn parse_typed_key(text: &str, want_alg: u8) -> Result<(String, VerifyingKey), NoteError> {
    // The name has no '+' but the base64 may, so split at the first two only.
    let Some((name, rest)) = text.split_once('+') else {
        return Err(bad_key("expected name+keyid+key"));
    };
    let Some((hex, key64)) = rest.split_once('+') else {
        return Err(bad_key("expected name+keyid+key"));
    };
    if !is_valid_name(name) {
        return Err(bad_key("key name is empty or contains whitespace or '+'"));
    }
    let id = parse_hex8(hex).ok_or_else(|| bad_key("key id is not 8 hexadecimal digits"))?;
    let typed = STANDARD
        .decode(key64)
        .map_err(|e| bad_key(&format!("key is not base64: {e}")))?;
    let Some((&alg, raw)) = typed.split_first() else {
        return Err(bad_key("key is empty"));
    };
    if alg != want_alg {
        return Err(bad_key(&format!(
            "key algorithm {alg:#04x}, expected {want_alg:#04x} ({})",
            if want_alg == ALG_ED25519 {
                "an Ed25519 note key"
            } else {
                "an Ed25519 cosigner key"
            }
        )));
    }
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| bad_key(&format!("Ed25519 key is {} bytes, not 32", raw.len())))?;
    let key =
        VerifyingKey::from_bytes(&raw).map_err(|_| bad_key("not a valid Ed25519 public key"))?;
    if key.is_weak() {
        return Err(bad_key("Ed25519 key has small order"));
    }
    if typed_key_id(name, &key, want_alg) != id {
        return Err(bad_key("key id does not match the name and key"));
    }
    Ok((name.to_owned(), key))
}

fn parse_hex8(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 {
        return None;
    }
    let mut out = [0u8; 4];
    let mut digits = hex.chars();
    for byte in &mut out {
        let hi = digits.next()?.to_digit(16)?;
        let lo = digits.next()?.to_digit(16)?;
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Signs: returns the full note text: body, a blank line, then `— name base64(key_id || signature)\n` (the em dash U+2014 followed by a space). The signature is over the body bytes.
///
/// The result only verifies if the checkpoint satisfies [`Checkpoint::parse_body`] and `name` is a valid key
/// name (non-empty, no whitespace, no `+`).
pub fn sign(cp: &Checkpoint, name: &str, key: &SigningKey) -> String {
    sign_text(&cp.body(), name, key)
}

/// Signs arbitrary note text (which must end in a newline to be a valid note).
fn sign_text(text: &str, name: &str, key: &SigningKey) -> String {
    let signature = key.sign(text.as_bytes());
    let mut blob = Vec::with_capacity(4 + Signature::BYTE_SIZE);
    blob.extend_from_slice(&key_id(name, &key.verifying_key()));
    blob.extend_from_slice(&signature.to_bytes());
    format!("{text}\n{SIG_PREFIX}{name} {}\n", STANDARD.encode(blob))
}

/// Verifies a note against one known key: finds the signature line whose name and key id match, checks the Ed25519 signature (verify_strict), then parses the body. Unknown signature lines are ignored; no matching line is an error.
///
/// Every line carrying this key's name and id must verify: one good signature does not excuse a bad one.
pub fn verify(note: &str, name: &str, key: &VerifyingKey) -> Result<Checkpoint, NoteError> {
    let text = open(note, name, key)?;
    Checkpoint::parse_body(text)
}

/// Checks the note's structure and its signature by `key`, and returns the signed text.
fn open<'a>(note: &'a str, name: &str, key: &VerifyingKey) -> Result<&'a str, NoteError> {
    // Same rule as the reference implementation: C0 controls other than newline (DEL is allowed).
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("note contains a control character"));
    }
    // The text cannot contain a blank line after its last line, and signature lines are never empty,
    // so the last blank line is the separator.
    let Some(split) = note.rfind("\n\n") else {
        return Err(malformed("no blank line before the signatures"));
    };
    let (Some(text), Some(sigs)) = (note.get(..=split), note.get(split + 2..)) else {
        return Err(malformed("no blank line before the signatures"));
    };
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(malformed(
            "signature block is empty or lacks its final newline",
        ));
    };

    let want_id = key_id(name, key);
    let mut verified = false;
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(malformed("too many signature lines"));
        }
        let Some(line) = line.strip_prefix(SIG_PREFIX) else {
            return Err(malformed("signature line does not start with an em dash"));
        };
        let Some((line_name, b64)) = line.split_once(' ') else {
            return Err(malformed("signature line has no signature"));
        };
        if !is_valid_name(line_name) {
            return Err(malformed("signature line has an invalid key name"));
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|e| malformed(&format!("signature is not base64: {e}")))?;
        let Some((id, signature)) = blob.split_first_chunk::<4>() else {
            return Err(malformed("signature is too short"));
        };
        if signature.is_empty() {
            return Err(malformed("signature is too short"));
        }
        if line_name != name || *id != want_id {
            continue;
        }
        let signature = Signature::from_slice(signature).map_err(|_| NoteError::BadSignature)?;
        key.verify_strict(text.as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature)?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(NoteError::NoSignatureForKey)
    }
}

/// The message a `cosignature/v1` signs: the header line, the time line and the checkpoint's note body.
fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A witness's cosignature on a checkpoint body, as a note signature line (with its newline):
/// `— name base64(key id || timestamp (8 bytes, big-endian) || Ed25519 signature)`.
pub fn cosign(body: &str, name: &str, key: &SigningKey, timestamp: u64) -> String {
    let signature = key.sign(cosigned_message(body, timestamp).as_bytes());
    let mut blob = Vec::with_capacity(4 + 8 + Signature::BYTE_SIZE);
    blob.extend_from_slice(&cosigner_key_id(name, &key.verifying_key()));
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&signature.to_bytes());
    format!("{SIG_PREFIX}{name} {}\n", STANDARD.encode(blob))
}

/// Checks a note's cosignature by one witness key: its body, and the cosignature's timestamp. Lines of
/// other keys are ignored; a line with this key's name and id that does not verify is an error.
pub fn verify_cosignature(
    note: &str,
    name: &str,
    key: &VerifyingKey,
) -> Result<(Checkpoint, u64), NoteError> {
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("note contains a control character"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (Some(text), Some(sigs)) = (note.get(..=split), note.get(split + 2..)) else {
        return Err(malformed("no blank line before the signatures"));
    };
    let want_id = cosigner_key_id(name, key);
    let mut found = None;
    for (count, line) in sigs.lines().enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(malformed("too many signature lines"));
        }
        let Some((line_name, b64)) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|l| l.split_once(' '))
        else {
            return Err(malformed("malformed signature line"));
        };
        if line_name != name {
            continue;
        }
        let Ok(blob) = STANDARD.decode(b64) else {
            continue;
        };
        let Some((id, rest)) = blob.split_first_chunk::<4>() else {
            continue;
        };
        if *id != want_id {
            continue;
        }
        let Some((time, signature)) = rest.split_first_chunk::<8>() else {
            return Err(malformed("cosignature is too short"));
        };
        let timestamp = u64::from_be_bytes(*time);
        let signature = Signature::from_slice(signature).map_err(|_| NoteError::BadSignature)?;
        key.verify_strict(cosigned_message(text, timestamp).as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature)?;
        found = Some(timestamp);
    }
    let timestamp = found.ok_or(NoteError::NoSignatureForKey)?;
    Ok((Checkpoint::parse_body(text)?, timestamp))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::super::merkle::{empty_root, leaf_hash};
    use super::*;

    const NAME: &str = "sluice.test/audit";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn other_key() -> SigningKey {
        SigningKey::from_bytes(&[8u8; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "sluice.test/audit/tenant-1".to_owned(),
            size: 1234,
            root: leaf_hash(b"root"),
        }
    }

    /// Rewrites the decoded `key_id || signature` blob of the note's last signature line.
    fn with_blob(note: &str, edit: impl Fn(&mut Vec<u8>)) -> String {
        let (text, sig_line) = note.rsplit_once("\n\n").unwrap();
        let (head, b64) = sig_line.trim_end_matches('\n').rsplit_once(' ').unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        edit(&mut blob);
        format!("{text}\n\n{head} {}\n", STANDARD.encode(blob))
    }

    #[test]
    fn body_format() {
        let cp = Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 0,
            root: empty_root(),
        };
        assert_eq!(
            cp.body(),
            "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        assert_eq!(Checkpoint::parse_body(&cp.body()), Ok(cp));
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key();
        let cp = checkpoint();
        let note = sign(&cp, NAME, &k);
        assert!(note.starts_with(&cp.body()));
        assert!(note.contains("\n\n\u{2014} sluice.test/audit "));
        assert!(note.ends_with('\n'));
        assert_eq!(note.matches('\n').count(), 5);
        assert_eq!(verify(&note, NAME, &k.verifying_key()), Ok(cp));
        // Ed25519 is deterministic, so signing is reproducible.
        assert_eq!(sign(&checkpoint(), NAME, &k), note);

        for size in [0, 1, u64::MAX] {
            let cp = Checkpoint {
                size,
                ..checkpoint()
            };
            assert_eq!(
                verify(&sign(&cp, NAME, &k), NAME, &k.verifying_key()),
                Ok(cp)
            );
        }
    }

    #[test]
    fn any_change_to_the_body_is_rejected() {
        let k = key();
        let vk = k.verifying_key();
        let note = sign(&checkpoint(), NAME, &k);
        let body_len = checkpoint().body().len();
        for i in 0..body_len {
            for bit in 0..8 {
                let mut bytes = note.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                // A flip that breaks UTF-8 cannot even be handed to verify.
                if let Ok(changed) = String::from_utf8(bytes) {
                    assert!(verify(&changed, NAME, &vk).is_err(), "byte {i} bit {bit}");
                }
            }
        }
        // Adding or removing text is a change too.
        let body = checkpoint().body();
        let extended = note.replacen(&body, &format!("{body}extra\n"), 1);
        assert_eq!(verify(&extended, NAME, &vk), Err(NoteError::BadSignature));
        let shortened = note.replacen("tenant-1", "tenant-", 1);
        assert_eq!(verify(&shortened, NAME, &vk), Err(NoteError::BadSignature));
    }

    #[test]
    fn any_change_to_the_signature_is_rejected() {
        let k = key();
        let vk = k.verifying_key();
        let note = sign(&checkpoint(), NAME, &k);
        for i in 0..68 {
            for bit in [0, 3, 7] {
                let changed = with_blob(&note, |b| b[i] ^= 1 << bit);
                let got = verify(&changed, NAME, &vk);
                if i < 4 {
                    // A changed key id makes the line someone else's.
                    assert_eq!(got, Err(NoteError::NoSignatureForKey), "byte {i}");
                } else {
                    assert_eq!(got, Err(NoteError::BadSignature), "byte {i}");
                }
            }
        }
        let truncated = with_blob(&note, |b| b.truncate(67));
        assert_eq!(verify(&truncated, NAME, &vk), Err(NoteError::BadSignature));
        let extended = with_blob(&note, |b| b.push(0));
        assert_eq!(verify(&extended, NAME, &vk), Err(NoteError::BadSignature));
        // The all-zero signature is refused too (verify_strict).
        let zeroed = with_blob(&note, |b| b[4..].fill(0));
        assert_eq!(verify(&zeroed, NAME, &vk), Err(NoteError::BadSignature));
    }

    #[test]
    fn wrong_name_or_key_is_rejected() {
        let k = key();
        let vk = k.verifying_key();
        let other = other_key();
        let note = sign(&checkpoint(), NAME, &k);

        // The verifier expects another name.
        assert_eq!(
            verify(&note, "sluice.test/other", &vk),
            Err(NoteError::NoSignatureForKey)
        );
        // The note's line is renamed: both the name and the key id stop matching.
        let renamed = note.replace("\u{2014} sluice.test/audit ", "\u{2014} sluice.test/Audit ");
        assert_eq!(
            verify(&renamed, NAME, &vk),
            Err(NoteError::NoSignatureForKey)
        );
        // Another key's signature, under our name.
        let by_other = sign(&checkpoint(), NAME, &other);
        assert_eq!(
            verify(&by_other, NAME, &vk),
            Err(NoteError::NoSignatureForKey)
        );
        assert_eq!(
            verify(&note, NAME, &other.verifying_key()),
            Err(NoteError::NoSignatureForKey)
        );
        // Another key's signature relabelled with our key id: the id matches, the signature cannot.
        let our_id = key_id(NAME, &vk);
        let forged = with_blob(&by_other, |b| b[..4].copy_from_slice(&our_id));
        assert_eq!(verify(&forged, NAME, &vk), Err(NoteError::BadSignature));
    }

    #[test]
    fn unknown_signatures_are_ignored() {
        let k = key();
        let vk = k.verifying_key();
        let cp = checkpoint();
        let body = cp.body();
        let ours = sign(&cp, NAME, &k);
        let our_line = ours.strip_prefix(&format!("{body}\n")).unwrap();
        let theirs = sign(&cp, "witness.example/w1", &other_key());
        let their_line = theirs.strip_prefix(&format!("{body}\n")).unwrap();
        // A signature whose content is garbage but whose name and id are unknown does not matter either.
        let junk_line = format!(
            "\u{2014} witness.example/w2 {}\n",
            STANDARD.encode([9u8; 68])
        );

        for lines in [
            vec![their_line, our_line],
            vec![our_line, their_line],
            vec![their_line, &junk_line, our_line, their_line],
        ] {
            let note = format!("{body}\n{}", lines.concat());
            assert_eq!(verify(&note, NAME, &vk), Ok(cp.clone()));
        }
        let only_others = format!("{body}\n{their_line}{junk_line}");
        assert_eq!(
            verify(&only_others, NAME, &vk),
            Err(NoteError::NoSignatureForKey)
        );
        // A bad line by our key spoils the note even beside a good one.
        let bad_ours = with_blob(&ours, |b| b[10] ^= 1);
        let bad_line = bad_ours.strip_prefix(&format!("{body}\n")).unwrap();
        let note = format!("{body}\n{our_line}{bad_line}");
        assert_eq!(verify(&note, NAME, &vk), Err(NoteError::BadSignature));
    }

    #[test]
    fn malformed_notes_are_rejected_without_panicking() {
        let k = key();
        let vk = k.verifying_key();
        let good = sign(&checkpoint(), NAME, &k);
        let body = checkpoint().body();
        let sig_line = good.strip_prefix(&format!("{body}\n")).unwrap();
        let malformed = |note: &str, what: &str| match verify(note, NAME, &vk) {
            Err(NoteError::Malformed(_)) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        };

        malformed(&format!("{body}{sig_line}"), "missing blank line");
        malformed(good.trim_end_matches('\n'), "missing trailing newline");
        malformed(&format!("{body}\n"), "no signatures");
        malformed(&format!("{body}\n\n"), "empty signature block");
        malformed("", "empty note");
        malformed("\n\n", "only a blank line");
        malformed(&good.replace('\u{2014}', "-"), "hyphen for em dash");
        malformed(
            &good.replace("\u{2014} ", "\u{2014}"),
            "no space after dash",
        );
        malformed(
            &good.replace(&format!("{NAME} "), NAME),
            "no space after name",
        );
        malformed(
            &good.replace("\u{2014} sluice", "\u{2014}  sluice"),
            "empty name",
        );
        malformed(&format!("{good}\n"), "trailing blank line");
        malformed(&good.replace("tenant-1", "tenant\t1"), "control character");
        malformed(&good.replace("tenant-1", "tenant\r1"), "carriage return");
        let (head, b64) = sig_line.trim_end().rsplit_once(' ').unwrap();
        malformed(
            &format!("{body}\n{head} {}!\n", &b64[1..]),
            "bad sig base64",
        );
        malformed(&format!("{body}\n{head} \n"), "empty signature");
        malformed(
            &format!("{body}\n{head} {}\n", STANDARD.encode([1u8, 2, 3, 4])),
            "signature of a key id alone",
        );
        malformed(
            &format!("{body}\n{head} {}\n", b64.trim_end_matches('=')),
            "unpadded signature base64",
        );
        let many = format!("{body}\n{}", sig_line.repeat(MAX_SIGNATURES + 1));
        malformed(&many, "too many signatures");
        assert_eq!(
            verify(&format!("{body}\n{}", sig_line.repeat(3)), NAME, &vk),
            Ok(checkpoint())
        );

        // Bodies that are validly signed but are not checkpoints.
        let root64 = STANDARD.encode(checkpoint().root);
        let root31 = STANDARD.encode([5u8; 31]);
        let root33 = STANDARD.encode([5u8; 33]);
        let unpadded = root64.trim_end_matches('=').to_owned();
        let bad_bodies = [
            format!("origin\n12\n{root64}"),
            format!("origin\n12\n{root64}\nextension\n"),
            "origin\n12\n".to_owned(),
            format!("\n12\n{root64}\n"),
            format!("origin\n12\n{root31}\n"),
            format!("origin\n12\n{root33}\n"),
            format!("origin\n12\n{unpadded}\n"),
            "origin\n12\nnot base64!\n".to_owned(),
            "origin\n12\n\n".to_owned(),
            format!("origin\n12a\n{root64}\n"),
            format!("origin\n+12\n{root64}\n"),
            format!("origin\n-1\n{root64}\n"),
            format!("origin\n 12\n{root64}\n"),
            format!("origin\n12 \n{root64}\n"),
            format!("origin\n1_000\n{root64}\n"),
            format!("origin\n\n{root64}\n"),
            format!("origin\n007\n{root64}\n"),
            format!("origin\n00\n{root64}\n"),
            format!("origin\n18446744073709551616\n{root64}\n"),
            format!("origin\n\u{0661}2\n{root64}\n"),
        ];
        for b in &bad_bodies {
            assert!(
                matches!(Checkpoint::parse_body(b), Err(NoteError::Malformed(_))),
                "parse_body accepted {b:?}"
            );
            // Signed as is, so that only the body's shape is at fault.
            let note = sign_text(b, NAME, &k);
            assert!(
                matches!(verify(&note, NAME, &vk), Err(NoteError::Malformed(_))),
                "verify accepted {b:?}"
            );
        }
        assert_eq!(
            Checkpoint::parse_body(&format!("origin\n18446744073709551615\n{root64}\n"))
                .map(|c| c.size),
            Ok(u64::MAX)
        );
        assert_eq!(
            Checkpoint::parse_body(&format!("origin\n0\n{root64}\n")).map(|c| c.size),
            Ok(0)
        );
    }

    #[test]
    fn truncations_never_panic() {
        let k = key();
        let vk = k.verifying_key();
        let note = sign(&checkpoint(), NAME, &k);
        for end in 0..note.len() {
            if let Some(prefix) = note.get(..end) {
                assert!(verify(prefix, NAME, &vk).is_err());
                let _ = Checkpoint::parse_body(prefix);
            }
        }
    }

    #[test]
    fn verifier_key_round_trip() {
        let vk = key().verifying_key();
        let text = verifier_key_text(NAME, &vk);
        let id = key_id(NAME, &vk);
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert!(text.starts_with(&format!("{NAME}+{hex}+A")));
        assert_eq!(parse_verifier_key(&text), Ok((NAME.to_owned(), vk)));

        // Keys whose base64 holds a '+' must still split correctly: find one among a few seeds.
        let with_plus = (0u8..=255)
            .map(|seed| SigningKey::from_bytes(&[seed; 32]).verifying_key())
            .find(|vk| verifier_key_text("n", vk).matches('+').count() > 2)
            .unwrap();
        let text = verifier_key_text("n", &with_plus);
        assert_eq!(parse_verifier_key(&text), Ok(("n".to_owned(), with_plus)));
    }

    #[test]
    fn tampered_verifier_keys_are_rejected() {
        let vk = key().verifying_key();
        let text = verifier_key_text(NAME, &vk);
        let (name, rest) = text.split_once('+').unwrap();
        let (hex, key64) = rest.split_once('+').unwrap();
        let bad = |t: &str, what: &str| {
            assert!(
                matches!(parse_verifier_key(t), Err(NoteError::BadKey(_))),
                "{what}: accepted {t:?}"
            );
        };

        // Every other key id, one hex digit changed at a time.
        for i in 0..8 {
            for d in "0123456789abcdef".chars() {
                let mut h: Vec<char> = hex.chars().collect();
                if h[i] == d {
                    continue;
                }
                h[i] = d;
                let h: String = h.into_iter().collect();
                bad(&format!("{name}+{h}+{key64}"), "changed key id");
            }
        }
        bad(&format!("{name}.x+{hex}+{key64}"), "other name");
        bad(&format!("{name}+{}+{key64}", &hex[..7]), "short key id");
        bad(&format!("{name}+{hex}0+{key64}"), "long key id");
        bad(&format!("{name}+{}g+{key64}", &hex[..7]), "non-hex key id");
        bad(&format!("+{hex}+{key64}"), "empty name");
        bad(&format!("a b+{hex}+{key64}"), "name with a space");
        bad(&format!("{name}+{hex}"), "no key");
        bad(name, "name only");
        bad("", "empty");
        bad(&format!("{name}+{hex}+"), "empty key");
        bad(&format!("{name}+{hex}+{}", &key64[1..]), "bad base64");
        let mut typed = STANDARD.decode(key64).unwrap();
        typed[0] = 0x02;
        bad(
            &format!("{name}+{hex}+{}", STANDARD.encode(&typed)),
            "other algorithm",
        );
        bad(
            &format!("{name}+{hex}+{}", STANDARD.encode(&typed[..32])),
            "short key",
        );
        // The identity point is a valid encoding but a small-order key.
        let mut identity = [0u8; 33];
        identity[0] = ALG_ED25519;
        identity[1] = 1;
        bad(
            &format!("{name}+{hex}+{}", STANDARD.encode(identity)),
            "small-order key",
        );
        // A different (valid) key under the original id.
        let other = verifier_key_text(NAME, &other_key().verifying_key());
        let other64 = other.rsplit_once('+').unwrap().1;
        bad(&format!("{name}+{hex}+{other64}"), "swapped key");
    }

    // The example of golang.org/x/mod/sumdb/note's documentation: its published key, text and signature.
    const GO_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SIGNER_KEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIGNATURE: &str = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

    #[test]
    fn interoperates_with_the_go_reference_example() {
        let (name, vk) = parse_verifier_key(GO_VERIFIER_KEY).unwrap();
        assert_eq!(name, "PeterNeumann");
        assert_eq!(verifier_key_text(&name, &vk), GO_VERIFIER_KEY);
        assert_eq!(key_id(&name, &vk), [0xc7, 0x4f, 0x20, 0xa3]);

        // The base64 holds a '+' of its own, so cut the known prefix rather than split.
        let seed64 = GO_SIGNER_KEY
            .strip_prefix("PRIVATE+KEY+PeterNeumann+c74f20a3+")
            .unwrap();
        let typed = STANDARD.decode(seed64).unwrap();
        assert_eq!(typed[0], ALG_ED25519);
        let sk = SigningKey::from_bytes(&typed[1..].try_into().unwrap());
        assert_eq!(sk.verifying_key(), vk);

        let want = format!("{GO_TEXT}\n\u{2014} PeterNeumann {GO_SIGNATURE}\n");
        assert_eq!(sign_text(GO_TEXT, &name, &sk), want);
        assert_eq!(open(&want, &name, &vk), Ok(GO_TEXT));
        // Signature fine, but the text is not a checkpoint.
        assert!(matches!(
            verify(&want, &name, &vk),
            Err(NoteError::Malformed(_))
        ));
        let changed = want.replace("cryptography", "cryptographY");
        assert_eq!(open(&changed, &name, &vk), Err(NoteError::BadSignature));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            NoteError::NoSignatureForKey.to_string(),
            "the note has no signature by the expected key"
        );
        assert_eq!(malformed("x").to_string(), "malformed note: x");
    }
}
