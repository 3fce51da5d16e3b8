//! The on-disk cache of compiled policies: Cranelift output keyed by the component's digest and the engine's
//! key, so a restart deserializes in milliseconds instead of recompiling.
//!
//! Loading native code from a file is only as safe as the file. Each artifact is stored with an
//! HMAC-SHA256 under a key derived from the gateway's pepper, and checked before wasmtime sees it: someone
//! who can write the cache folder but does not hold the pepper can make the gateway recompile, never run
//! their code. Anything that does not check out is ignored and replaced.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAC_LEN: usize = 32;

/// The cache folder and its MAC key.
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_key: String,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8; 32], bytes: &[u8]) -> Hmac<Sha256> {
    // A 32-byte key is always a valid HMAC key.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(bytes);
    m
}

impl ArtifactCache {
    /// A cache in `dir` (created if missing), keyed by `secret` (the pepper).
    pub fn new(dir: &Path, secret: &[u8], engine: &Engine) -> std::io::Result<ArtifactCache> {
        std::fs::create_dir_all(dir)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(
            &mac(&sha2_key(secret), b"sluice policy artifact cache v1")
                .finalize()
                .into_bytes(),
        );
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            key,
            engine_key: super::wasm::engine_key(engine),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of `digest`, if present and authentic.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
        let (tag, artifact) = bytes.split_at_checked(MAC_LEN)?;
        if mac(&self.key, artifact).verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "a cached policy artifact failed its MAC check; recompiling");
            return None;
        }
        match super::wasm::deserialize(engine, artifact) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a cached policy artifact does not load; recompiling");
                None
            }
        }
    }

    /// Stores a compilation (best effort: a failure only costs a recompilation later).
    pub fn put(&self, digest: &str, component: &Component) {
        let artifact = match component.serialize() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialize a compiled policy");
                return;
            }
        };
        let mut file = mac(&self.key, &artifact).finalize().into_bytes().to_vec();
        file.extend_from_slice(&artifact);
        let path = self.path(digest);
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
        let written = std::fs::write(&tmp, &file).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot write a policy artifact to the cache");
        }
    }
}

fn sha2_key(secret: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_round_trip_and_a_tampered_one_is_refused() {
        let runtime =
            super::super::wasm::Runtime::new(super::super::wasm::Limits::default()).unwrap();
        let engine = runtime.engine();
        let dir = tempfile::tempdir().unwrap();
        let cache =
            ArtifactCache::new(dir.path(), b"pepper-pepper-pepper-pepper-pepper", engine).unwrap();
        let component = super::super::wasm::compile(engine, super::super::builtin::ROUTER).unwrap();
        assert!(cache.get(engine, "abc").is_none());
        cache.put("abc", &component);
        let back = cache.get(engine, "abc").unwrap();
        assert!(
            runtime
                .link(&back)
                .unwrap()
                .exports(super::super::wasm::Slot::Route)
        );
        // Another pepper cannot vouch for it.
        let other =
            ArtifactCache::new(dir.path(), b"another-pepper-another-pepper-xx", engine).unwrap();
        assert!(other.get(engine, "abc").is_none());
        // One flipped byte anywhere: refused.
        let path = cache.path("abc");
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.get(engine, "abc").is_none());
        // A truncated file too.
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(cache.get(engine, "abc").is_none());
    }
}
