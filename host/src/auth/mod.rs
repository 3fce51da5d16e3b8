//! Credentials to `Principal`: API keys checked against an in-memory key store (no database round trip
//! on the hot path), and the operator token for the control plane.

pub mod keys;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// A stored API key: never the secret, only its salted, peppered hash.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub last4: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey,
}

/// Who is asking. Every phase after `authenticate` holds one.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    pub method: AuthMethod,
}

/// Why a request is not authenticated. The message is safe to show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key: send `Authorization: Bearer slk_...`")]
    Missing,
    #[error(transparent)]
    Format(#[from] keys::KeyFormatError),
    /// Unknown id, wrong secret and revoked key look the same from outside.
    #[error("the API key is not valid")]
    Invalid,
    /// Two credentials that may name different keys: the gateway never picks one.
    #[error(
        "the request carries more than one credential (two `Authorization` or `x-api-key` headers, or both headers with different keys): send one"
    )]
    Conflicting,
}

struct LiveKey {
    tenant_id: Arc<str>,
    key_id: Arc<str>,
    role: Role,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// The live (non-revoked) keys by id, served from memory. Revocation removes the entry, so it takes
/// effect on the next request.
pub struct KeyStore {
    pepper: Vec<u8>,
    keys: RwLock<HashMap<Box<str>, Arc<LiveKey>>>,
    /// Verified against when the id is unknown, so unknown ids cost the same as wrong secrets.
    decoy: LiveKey,
}

impl KeyStore {
    pub fn new(pepper: &[u8], rows: Vec<KeyRow>) -> KeyStore {
        let store = KeyStore {
            pepper: pepper.to_vec(),
            keys: RwLock::new(HashMap::new()),
            decoy: LiveKey {
                tenant_id: Arc::from(""),
                key_id: Arc::from(""),
                role: Role::Member,
                salt: vec![0; 16],
                hash: vec![0; 32],
            },
        };
        for row in rows {
            store.insert(&row);
        }
        store
    }

    pub fn pepper(&self) -> &[u8] {
        &self.pepper
    }

    /// Adds a live key (ignored if the row is revoked).
    pub fn insert(&self, row: &KeyRow) {
        if row.revoked_at.is_some() {
            return;
        }
        let live = Arc::new(LiveKey {
            tenant_id: Arc::from(row.tenant_id.as_str()),
            key_id: Arc::from(row.id.as_str()),
            role: row.role,
            salt: row.salt.clone(),
            hash: row.hash.clone(),
        });
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(row.id.clone().into_boxed_str(), live);
    }

    pub fn remove(&self, key_id: &str) {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key_id);
    }

    /// Checks a presented key.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let parsed = keys::parse(presented)?;
        let found = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(parsed.id)
            .cloned();
        let candidate = found.as_deref().unwrap_or(&self.decoy);
        let ok = keys::verify(
            &self.pepper,
            &candidate.salt,
            parsed.secret,
            &candidate.hash,
        );
        match found {
            Some(key) if ok => Ok(Principal {
                tenant_id: key.tenant_id.clone(),
                key_id: key.key_id.clone(),
                role: key.role,
                method: AuthMethod::ApiKey,
            }),
            _ => Err(AuthError::Invalid),
        }
    }
}

/// The bearer token of an `Authorization` header, or the `x-api-key` header Anthropic clients send.
/// Both headers are accepted when they carry the same key; two of either, or two different keys, are
/// `Conflicting`.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let only = |name: &str| -> Result<Option<&str>, AuthError> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(AuthError::Conflicting);
        }
        Ok(first.map(|v| v.to_str().unwrap_or_default()))
    };
    let authorization = only(http::header::AUTHORIZATION.as_str())?.map(|v| {
        v.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim())
    });
    let api_key = only("x-api-key")?.map(str::trim);
    match (authorization, api_key) {
        (Some(a), Some(k)) if a != k => Err(AuthError::Conflicting),
        (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token),
        _ => Err(AuthError::Missing),
    }
}

/// Constant-time check of a presented operator token against the configured SHA-256.
pub fn operator_token_matches(presented: &str, expected_sha256: &[u8; 32]) -> bool {
    let digest = Sha256::digest(presented.as_bytes());
    bool::from(digest.as_slice().ct_eq(expected_sha256))
}
