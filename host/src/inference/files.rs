//! Model files on disk, checked against the catalog's digests. A file is read once, hashed, and loaded from
//! the bytes that were hashed, so what runs is exactly what was checked.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::catalog::{Package, PinnedFile};

/// Why a pinned file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "model file {} is missing; fetch it with `sluice models pull --dir {}`",
        path.display(), dir.display()
    )]
    Missing { path: PathBuf, dir: PathBuf },
    #[error("cannot read model file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model file {} has SHA-256 {found}, not the pinned {expected}; it is not loaded. Delete it and run \
         `sluice models pull --dir {}`",
        path.display(), dir.display()
    )]
    WrongDigest {
        path: PathBuf,
        dir: PathBuf,
        found: String,
        expected: &'static str,
    },
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where `file` of `package` lies under the models folder `dir`.
pub fn path_of(dir: &Path, package: &Package, file: &PinnedFile) -> PathBuf {
    dir.join(package.name).join(file.name)
}

/// Reads `file` of `package` from `dir` and checks its SHA-256; the bytes returned are the ones checked.
pub fn read_verified(
    dir: &Path,
    package: &Package,
    file: &PinnedFile,
) -> Result<Vec<u8>, FileError> {
    let path = path_of(dir, package, file);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::Missing {
                path,
                dir: dir.to_owned(),
            });
        }
        Err(source) => return Err(FileError::Unreadable { path, source }),
    };
    let found = hex(&Sha256::digest(&bytes));
    if found != file.sha256 {
        return Err(FileError::WrongDigest {
            path,
            dir: dir.to_owned(),
            found,
            expected: file.sha256,
        });
    }
    Ok(bytes)
}

/// The files of `package` that are not in `dir` with the pinned size and digest.
pub fn needed<'a>(dir: &Path, package: &'a Package) -> Vec<&'a PinnedFile> {
    package
        .files
        .iter()
        .filter(|f| !is_intact(&path_of(dir, package, f), f))
        .collect()
}

fn is_intact(path: &Path, file: &PinnedFile) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    meta.len() == file.size && sha256_of_file(path).is_ok_and(|d| hex(&d) == file.sha256)
}

/// SHA-256 of a file, read in pieces.
pub fn sha256_of_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}
