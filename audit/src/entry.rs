//! Audit entries and their canonical encoding: a version byte, then every field in a fixed order, integers
//! as fixed-width big-endian, strings and byte strings as a u32 big-endian length followed by the bytes,
//! optional hashes as a presence byte followed by 32 bytes. Decoding accepts exactly what encoding
//! produces (no trailing bytes, no unknown version), so an entry has one byte form and one leaf hash.
//!
//! Version 2 adds one field at the end, `model_digest`; an entry without one is written as version 1,
//! byte for byte as before, so logs written by older builds and newer ones verify alike.

use super::merkle::Hash;

/// The encoding version of an entry without a model digest.
pub const VERSION: u8 = 1;
/// The encoding version of an entry with a model digest (the fields of version 1, then the digest).
pub const VERSION_MODEL_DIGEST: u8 = 2;

/// What kind of event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A data-plane or tenant API request that reached authentication.
    Request,
    /// An operator or tenant-admin action (key created, key revoked, ...).
    Admin,
}

/// Whether the request's content was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMark {
    /// The request carried no content (model listing, admin action, audit read).
    None,
    /// Content exists and is committed to by the commitments (stored encrypted apart from the entry).
    Committed,
    /// Content existed but the tenant keeps none (zero retention): nothing was written.
    NotRetained,
}

/// One audit entry, as hashed into the tenant's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub index: u64,
    /// Leaf hash of the entry before this one (all zeros for index 0): the hash chain.
    #[serde(with = "hex32")]
    pub prev_leaf: Hash,
    pub kind: EntryKind,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
    pub tenant_id: String,
    pub key_id: String,
    pub request_id: String,
    pub trace_id: String,
    /// `chat`, `embeddings`, `models`, `audit.export`, `admin.key_created`, ...
    pub endpoint: String,
    /// What an admin action acted on (a key id, a tenant id); empty for requests.
    pub subject: String,
    pub model_requested: String,
    pub deployment: String,
    pub tier: String,
    pub region: String,
    /// `hit-exact`, `hit-semantic`, `miss`, `bypass`.
    pub cache: String,
    /// Digests and decisions of the policies that decided the request (`builtin` until Wasm policies land).
    pub policy: String,
    pub status: u16,
    /// Empty when the request succeeded.
    pub error_code: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micro_usd: u64,
    pub latency_us: u64,
    pub content: ContentMark,
    /// Salted SHA-256 commitment to the prompt, when content is committed.
    #[serde(with = "opt_hex32")]
    pub prompt_commitment: Option<Hash>,
    /// Salted SHA-256 commitment to the response, when content is committed.
    #[serde(with = "opt_hex32")]
    pub response_commitment: Option<Hash>,
    /// SHA-256 (hex) of the weights of the local model that answered; empty for remote providers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_digest: String,
}

/// The endpoints whose request entries are inference: they count in the daily spend totals.
pub const INFERENCE_ENDPOINTS: [&str; 2] = ["chat", "embeddings"];

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown entry version {0}")]
    Version(u8),
    #[error("entry ends early while reading {0}")]
    Truncated(&'static str),
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    #[error("unknown value {value} for {field}")]
    BadTag { field: &'static str, value: u8 },
    #[error("{0} trailing bytes after the entry")]
    Trailing(usize),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    // Strings are bounded far below 4 GiB by the request limits; the length and bytes always agree.
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_opt_hash(out: &mut Vec<u8>, h: &Option<Hash>) {
    match h {
        None => out.push(0),
        Some(h) => {
            out.push(1);
            out.extend_from_slice(h);
        }
    }
}

impl Entry {
    /// An entry of `kind` with its identity set and every other field empty; the sequencer assigns `index`
    /// and `prev_leaf`. The one place an entry's fields are listed outside decoding.
    fn blank(kind: EntryKind, tenant_id: &str, key_id: &str, endpoint: &str) -> Entry {
        Entry {
            index: 0,
            prev_leaf: [0; 32],
            kind,
            timestamp_ms: crate::now_ms(),
            tenant_id: tenant_id.to_owned(),
            key_id: key_id.to_owned(),
            request_id: String::new(),
            trace_id: String::new(),
            endpoint: endpoint.to_owned(),
            subject: String::new(),
            model_requested: String::new(),
            deployment: String::new(),
            tier: String::new(),
            region: String::new(),
            cache: String::new(),
            policy: String::new(),
            status: 0,
            error_code: String::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micro_usd: 0,
            latency_us: 0,
            content: ContentMark::None,
            prompt_commitment: None,
            response_commitment: None,
            model_digest: String::new(),
        }
    }

    /// The entry of a request made with a tenant credential (data plane or tenant self-service).
    pub fn request(tenant_id: &str, key_id: &str, endpoint: &str) -> Entry {
        Entry::blank(EntryKind::Request, tenant_id, key_id, endpoint)
    }

    /// The entry of an operator action on a tenant (`admin.key_created`, ...), written to that tenant's log.
    pub fn admin(tenant_id: &str, action: &str, subject: &str) -> Entry {
        Entry {
            subject: subject.to_owned(),
            status: 200,
            ..Entry::blank(EntryKind::Admin, tenant_id, "operator", action)
        }
    }

    /// The canonical byte form, which the leaf hash covers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(if self.model_digest.is_empty() {
            VERSION
        } else {
            VERSION_MODEL_DIGEST
        });
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.prev_leaf);
        out.push(match self.kind {
            EntryKind::Request => 1,
            EntryKind::Admin => 2,
        });
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        for s in [
            &self.tenant_id,
            &self.key_id,
            &self.request_id,
            &self.trace_id,
            &self.endpoint,
            &self.subject,
            &self.model_requested,
            &self.deployment,
            &self.tier,
            &self.region,
            &self.cache,
            &self.policy,
        ] {
            put_str(&mut out, s);
        }
        out.extend_from_slice(&self.status.to_be_bytes());
        put_str(&mut out, &self.error_code);
        for n in [
            self.prompt_tokens,
            self.completion_tokens,
            self.cost_micro_usd,
            self.latency_us,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.push(match self.content {
            ContentMark::None => 0,
            ContentMark::Committed => 1,
            ContentMark::NotRetained => 2,
        });
        put_opt_hash(&mut out, &self.prompt_commitment);
        put_opt_hash(&mut out, &self.response_commitment);
        if !self.model_digest.is_empty() {
            put_str(&mut out, &self.model_digest);
        }
        out
    }

    /// Parses the canonical form; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader { rest: bytes };
        let version = r.u8("version")?;
        if version != VERSION && version != VERSION_MODEL_DIGEST {
            return Err(DecodeError::Version(version));
        }
        let index = r.u64("index")?;
        let prev_leaf = r.hash("prev_leaf")?;
        let kind = match r.u8("kind")? {
            1 => EntryKind::Request,
            2 => EntryKind::Admin,
            value => {
                return Err(DecodeError::BadTag {
                    field: "kind",
                    value,
                });
            }
        };
        let timestamp_ms = r.u64("timestamp")?;
        let tenant_id = r.string("tenant_id")?;
        let key_id = r.string("key_id")?;
        let request_id = r.string("request_id")?;
        let trace_id = r.string("trace_id")?;
        let endpoint = r.string("endpoint")?;
        let subject = r.string("subject")?;
        let model_requested = r.string("model_requested")?;
        let deployment = r.string("deployment")?;
        let tier = r.string("tier")?;
        let region = r.string("region")?;
        let cache = r.string("cache")?;
        let policy = r.string("policy")?;
        let status = u16::from_be_bytes(r.array::<2>("status")?);
        let error_code = r.string("error_code")?;
        let prompt_tokens = r.u64("prompt_tokens")?;
        let completion_tokens = r.u64("completion_tokens")?;
        let cost_micro_usd = r.u64("cost_micro_usd")?;
        let latency_us = r.u64("latency_us")?;
        let content = match r.u8("content")? {
            0 => ContentMark::None,
            1 => ContentMark::Committed,
            2 => ContentMark::NotRetained,
            value => {
                return Err(DecodeError::BadTag {
                    field: "content",
                    value,
                });
            }
        };
        let prompt_commitment = r.opt_hash("prompt_commitment")?;
        let response_commitment = r.opt_hash("response_commitment")?;
        let model_digest = if version == VERSION_MODEL_DIGEST {
            let digest = r.string("model_digest")?;
            // Version 2 exists to carry a digest: an empty one would give the entry a second byte form.
            if digest.is_empty() {
                return Err(DecodeError::BadTag {
                    field: "model_digest",
                    value: 0,
                });
            }
            digest
        } else {
            String::new()
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::Trailing(r.rest.len()));
        }
        Ok(Entry {
            index,
            prev_leaf,
            kind,
            timestamp_ms,
            tenant_id,
            key_id,
            request_id,
            trace_id,
            endpoint,
            subject,
            model_requested,
            deployment,
            tier,
            region,
            cache,
            policy,
            status,
            error_code,
            prompt_tokens,
            completion_tokens,
            cost_micro_usd,
            latency_us,
            content,
            prompt_commitment,
            response_commitment,
            model_digest,
        })
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array::<8>(field)?))
    }
    fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        self.array::<32>(field)
    }
    fn opt_hash(&mut self, field: &'static str) -> Result<Option<Hash>, DecodeError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => Ok(Some(self.hash(field)?)),
            value => Err(DecodeError::BadTag { field, value }),
        }
    }
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = u32::from_be_bytes(self.array::<4>(field)?);
        let bytes = self.take(len as usize, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8(field))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

mod hex32 {
    use super::Hash;
    pub fn serialize<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(h))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        crate::decode_hex32(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
    }
}

mod opt_hex32 {
    use super::Hash;
    pub fn serialize<S: serde::Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_some(&super::hex(h)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        text.map(|t| {
            crate::decode_hex32(&t)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(index: u64) -> Entry {
        Entry {
            index,
            prev_leaf: [index as u8; 32],
            kind: EntryKind::Request,
            timestamp_ms: 1_795_000_000_000 + index,
            tenant_id: "tenant-a".into(),
            key_id: "AbCdEf012345".into(),
            request_id: format!("req-{index}"),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            endpoint: "chat".into(),
            subject: String::new(),
            model_requested: "default".into(),
            deployment: "fake-small".into(),
            tier: "simple".into(),
            region: "eu".into(),
            cache: "bypass".into(),
            policy: "builtin".into(),
            status: 200,
            error_code: String::new(),
            prompt_tokens: 12,
            completion_tokens: 3,
            cost_micro_usd: 42,
            latency_us: 321,
            content: ContentMark::Committed,
            prompt_commitment: Some([9; 32]),
            response_commitment: None,
            model_digest: String::new(),
        }
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let e = sample(7);
        let bytes = e.encode();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Entry::decode(&longer), Err(DecodeError::Trailing(1)));
        for cut in 0..bytes.len() {
            assert!(
                Entry::decode(&bytes[..cut]).is_err(),
                "a prefix of {cut} bytes decoded"
            );
        }
        // Version 2 bytes must carry the digest at the end.
        let mut v2 = bytes.clone();
        v2[0] = VERSION_MODEL_DIGEST;
        assert_eq!(
            Entry::decode(&v2),
            Err(DecodeError::Truncated("model_digest"))
        );
        let mut v3 = bytes.clone();
        v3[0] = 3;
        assert_eq!(Entry::decode(&v3), Err(DecodeError::Version(3)));
    }

    #[test]
    fn a_model_digest_is_added_at_the_end_under_version_2() {
        let plain = sample(3);
        let mut local = sample(3);
        local.model_digest =
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into();
        let (a, b) = (plain.encode(), local.encode());
        assert_eq!(a[0], VERSION);
        assert_eq!(b[0], VERSION_MODEL_DIGEST);
        // Everything but the version byte is the version 1 form, then the digest.
        assert_eq!(a[1..], b[1..a.len()]);
        assert_eq!(b.len(), a.len() + 4 + 64);
        assert_eq!(Entry::decode(&b).unwrap(), local);
        // An empty digest under version 2 would be a second form of a version 1 entry.
        let mut empty = a.clone();
        empty[0] = VERSION_MODEL_DIGEST;
        empty.extend_from_slice(&0u32.to_be_bytes());
        assert!(Entry::decode(&empty).is_err());
        // The readable form names the digest only when there is one.
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("model_digest").is_none());
        let json = serde_json::to_value(&local).unwrap();
        assert_eq!(json["model_digest"], local.model_digest.as_str());
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = sample(1).encode();
        let mut changed = sample(1);
        changed.cost_micro_usd += 1;
        assert_ne!(changed.encode(), base);
        let mut changed = sample(1);
        changed.tenant_id.push('x');
        assert_ne!(changed.encode(), base);
        // Length prefixes keep field boundaries: moving a character between fields changes the bytes.
        let mut a = sample(1);
        a.deployment = "ab".into();
        a.tier = "c".into();
        let mut b = sample(1);
        b.deployment = "a".into();
        b.tier = "bc".into();
        assert_ne!(a.encode(), b.encode());
    }
}
