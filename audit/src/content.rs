//! Audit content: prompts and responses are kept apart from the entries, encrypted with AES-256-GCM under
//! a per-tenant key derived (HKDF-SHA256) from the master key, with the tenant and entry index as associated
//! data. Entries hold salted commitments `SHA-256("sluice-content-v1" 0x00 ‖ salt ‖ content)`; once the
//! content and its salt are deleted (retention, erasure) the commitment reveals nothing, and the entry and
//! the chain still verify.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// What was said, with the salts of the commitments.
#[derive(Clone, PartialEq, Eq)]
pub struct Content {
    pub prompt_salt: [u8; 32],
    pub prompt: Vec<u8>,
    pub response_salt: [u8; 32],
    pub response: Vec<u8>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Content never goes to logs.
        f.debug_struct("Content")
            .field("prompt_bytes", &self.prompt.len())
            .field("response_bytes", &self.response.len())
            .finish()
    }
}

/// Salted commitment to a piece of content.
pub fn commit(salt: &[u8; 32], content: &[u8]) -> Hash {
    Sha256::new()
        .chain_update(b"sluice-content-v1\0")
        .chain_update(salt)
        .chain_update(content)
        .finalize()
        .into()
}

impl Content {
    /// Fresh random salts for this content.
    pub fn new(prompt: Vec<u8>, response: Vec<u8>) -> Content {
        let mut rng = rand::rng();
        let mut prompt_salt = [0u8; 32];
        let mut response_salt = [0u8; 32];
        rng.fill_bytes(&mut prompt_salt);
        rng.fill_bytes(&mut response_salt);
        Content {
            prompt_salt,
            prompt,
            response_salt,
            response,
        }
    }

    pub fn prompt_commitment(&self) -> Hash {
        commit(&self.prompt_salt, &self.prompt)
    }

    pub fn response_commitment(&self) -> Hash {
        commit(&self.response_salt, &self.response)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(72 + self.prompt.len() + self.response.len());
        out.extend_from_slice(&self.prompt_salt);
        out.extend_from_slice(&self.response_salt);
        out.extend_from_slice(
            &u64::try_from(self.prompt.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.prompt);
        out.extend_from_slice(&self.response);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Content> {
        let prompt_salt: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let response_salt: [u8; 32] = bytes.get(32..64)?.try_into().ok()?;
        let len = usize::try_from(u64::from_be_bytes(bytes.get(64..72)?.try_into().ok()?)).ok()?;
        let rest = bytes.get(72..)?;
        if len > rest.len() {
            return None;
        }
        let (prompt, response) = rest.split_at(len);
        Some(Content {
            prompt_salt,
            prompt: prompt.to_vec(),
            response_salt,
            response: response.to_vec(),
        })
    }
}

/// Encrypts and decrypts content; holds the master key.
pub struct Sealer {
    master: [u8; 32],
    /// Derived per-tenant ciphers, so HKDF and the AES key schedule run once per tenant, not per entry.
    ciphers: std::sync::RwLock<std::collections::HashMap<String, std::sync::Arc<Aes256Gcm>>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("stored content fails authentication (modified, or sealed under another key or index)")]
    Authentication,
    #[error("stored content is malformed")]
    Malformed,
}

fn aad(tenant: &str, index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(tenant.len() + 9);
    out.extend_from_slice(tenant.as_bytes());
    out.push(0);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

impl Sealer {
    pub fn new(master: [u8; 32]) -> Sealer {
        Sealer {
            master,
            ciphers: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    fn cipher(&self, tenant: &str) -> std::sync::Arc<Aes256Gcm> {
        if let Some(c) = self
            .ciphers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
        {
            return c.clone();
        }
        let hk = Hkdf::<Sha256>::new(Some(b"sluice-audit-content"), &self.master);
        let mut key = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(tenant.as_bytes(), &mut key);
        let cipher = std::sync::Arc::new(Aes256Gcm::new(&key.into()));
        self.ciphers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant.to_owned(), cipher.clone());
        cipher
    }

    /// Returns (nonce, ciphertext).
    pub fn seal(
        &self,
        tenant: &str,
        index: u64,
        content: &Content,
    ) -> Result<(Vec<u8>, Vec<u8>), ContentError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let plaintext = content.to_bytes();
        let ciphertext = self
            .cipher(tenant)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad(tenant, index),
                },
            )
            .map_err(|_| ContentError::Malformed)?;
        Ok((nonce.to_vec(), ciphertext))
    }

    pub fn open(
        &self,
        tenant: &str,
        index: u64,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Content, ContentError> {
        if nonce.len() != 12 {
            return Err(ContentError::Malformed);
        }
        let plaintext = self
            .cipher(tenant)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad(tenant, index),
                },
            )
            .map_err(|_| ContentError::Authentication)?;
        Content::from_bytes(&plaintext).ok_or(ContentError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let s = Sealer::new([3; 32]);
        let c = Content::new(b"the prompt".to_vec(), b"the answer".to_vec());
        let (nonce, ct) = s.seal("t1", 5, &c).unwrap();
        assert!(
            !ct.windows(10).any(|w| w == b"the prompt"),
            "ciphertext hides the text"
        );
        assert_eq!(s.open("t1", 5, &nonce, &ct).unwrap(), c);
        assert_eq!(
            s.open("t1", 6, &nonce, &ct),
            Err(ContentError::Authentication),
            "bound to the index"
        );
        assert_eq!(
            s.open("t2", 5, &nonce, &ct),
            Err(ContentError::Authentication),
            "bound to the tenant"
        );
        assert_eq!(
            Sealer::new([4; 32]).open("t1", 5, &nonce, &ct),
            Err(ContentError::Authentication)
        );
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert_eq!(
            s.open("t1", 5, &nonce, &bad),
            Err(ContentError::Authentication)
        );
    }

    #[test]
    fn commitments_depend_on_salt_and_content() {
        let c = Content::new(b"p".to_vec(), b"r".to_vec());
        assert_eq!(c.prompt_commitment(), commit(&c.prompt_salt, b"p"));
        assert_ne!(c.prompt_commitment(), commit(&[0; 32], b"p"));
        assert_ne!(c.prompt_commitment(), commit(&c.prompt_salt, b"q"));
    }
}
