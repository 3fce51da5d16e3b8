//! The last tree head the gateway signed for each log, kept outside the database: one small file per log
//! in a directory beside the signing key. A head is written (and synced) before its signature leaves the
//! sequencer, so an insider who rewrites the database and deletes its checkpoints still cannot get a
//! history signed that does not extend what was signed before: at start the stored entries must hash to
//! each head, and a log that does not is marked damaged and never signed again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::merkle::Hash;

/// Why the heads could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HeadsError {
    #[error("signed heads in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signed head file {path} is not `<size> <hex root>`")]
    Malformed { path: PathBuf },
}

/// The signed heads of every log, and where they live. `None` keeps them in memory only (tests of the
/// sequencer alone).
#[derive(Debug, Default)]
pub struct SignedHeads {
    dir: Option<PathBuf>,
    heads: HashMap<String, (u64, Hash)>,
}

impl SignedHeads {
    /// Heads kept in memory only.
    pub fn in_memory() -> SignedHeads {
        SignedHeads::default()
    }

    /// Reads every head in `dir`, creating the directory (0700) when it does not exist.
    pub fn open(dir: &Path) -> Result<SignedHeads, HeadsError> {
        let io = |source| HeadsError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let mut heads = HashMap::new();
        for file in std::fs::read_dir(dir).map_err(io)? {
            let path = file.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(log) = name.strip_suffix(".head").and_then(unescape) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| HeadsError::Io {
                path: path.clone(),
                source,
            })?;
            let head = parse(&text).ok_or(HeadsError::Malformed { path })?;
            heads.insert(log, head);
        }
        Ok(SignedHeads {
            dir: Some(dir.to_owned()),
            heads,
        })
    }

    /// The last head signed for `log`: (size, root).
    pub fn get(&self, log: &str) -> Option<(u64, Hash)> {
        self.heads.get(log).copied()
    }

    /// Every log with a head.
    pub fn logs(&self) -> impl Iterator<Item = (&str, (u64, Hash))> {
        self.heads.iter().map(|(log, head)| (log.as_str(), *head))
    }

    /// Records a head about to be signed, durably (written, synced, renamed into place, directory synced)
    /// before it returns. A head smaller than the one recorded is refused: the sequencer never goes back.
    pub fn record(&mut self, log: &str, size: u64, root: Hash) -> Result<(), HeadsError> {
        if self
            .heads
            .get(log)
            .is_some_and(|(signed, _)| *signed > size)
        {
            return Err(HeadsError::Io {
                path: self.dir.clone().unwrap_or_default(),
                source: std::io::Error::other(format!(
                    "log {log}: a head of size {size} is smaller than the one already signed"
                )),
            });
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{}.head", escape(log)));
            write_synced(&path, &format(size, &root))
                .map_err(|source| HeadsError::Io { path, source })?;
        }
        self.heads.insert(log.to_owned(), (size, root));
        Ok(())
    }
}

fn format(size: u64, root: &Hash) -> String {
    let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    format!("{size} {hex}\n")
}

fn parse(text: &str) -> Option<(u64, Hash)> {
    let (size, hex) = text.trim().split_once(' ')?;
    let size = size.parse().ok()?;
    if hex.len() != 64 {
        return None;
    }
    let mut root = [0u8; 32];
    for (i, byte) in root.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((size, root))
}

/// A log name as a file name: letters, digits, `-` and `_` stay; every other byte is `%XX`.
fn escape(log: &str) -> String {
    log.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unescape(name: &str) -> Option<String> {
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Replaces `path` with `text` so that a crash leaves the old or the new file, never a mix: written to a
/// temporary file beside it, synced, renamed into place, and the directory synced.
pub(crate) fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heads_survive_a_reopen_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let heads_dir = dir.path().join("heads");
        let mut heads = SignedHeads::open(&heads_dir).unwrap();
        heads.record("tenant-1", 3, [7; 32]).unwrap();
        heads.record("odd/name é", 9, [1; 32]).unwrap();
        heads.record("tenant-1", 5, [8; 32]).unwrap();
        assert!(heads.record("tenant-1", 4, [9; 32]).is_err());
        let reopened = SignedHeads::open(&heads_dir).unwrap();
        assert_eq!(reopened.get("tenant-1"), Some((5, [8; 32])));
        assert_eq!(reopened.get("odd/name é"), Some((9, [1; 32])));
        assert_eq!(reopened.logs().count(), 2);
        std::fs::write(heads_dir.join("bad.head"), "five abc").unwrap();
        assert!(matches!(
            SignedHeads::open(&heads_dir),
            Err(HeadsError::Malformed { .. })
        ));
    }
}
