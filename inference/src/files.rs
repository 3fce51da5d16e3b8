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
    #[error(
        "model file {} (or its package folder) is a symlink; model files are read only as plain files \
         under the models folder. Replace it with the file, or run `sluice models pull --dir {}`",
        path.display(), dir.display()
    )]
    Symlink { path: PathBuf, dir: PathBuf },
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
    if through_symlink(dir, package, file) {
        return Err(FileError::Symlink {
            path,
            dir: dir.to_owned(),
        });
    }
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

/// The files of `package` that are not in `dir` with the pinned size and digest, as plain files.
pub fn needed<'a>(dir: &Path, package: &'a Package) -> Vec<&'a PinnedFile> {
    package
        .files
        .iter()
        .filter(|f| through_symlink(dir, package, f) || !is_intact(&path_of(dir, package, f), f))
        .collect()
}

fn is_intact(path: &Path, file: &PinnedFile) -> bool {
    // Not through a symlink: a link is never a model file (the pull then refuses it).
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.len() == file.size
        && sha256_of_file(path).is_ok_and(|d| hex(&d) == file.sha256)
}

/// Whether the package folder or the file itself is a symlink (the models folder may be one: it is the
/// operator's choice; what is inside is the pull's).
fn through_symlink(dir: &Path, package: &Package, file: &PinnedFile) -> bool {
    let link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    link(&dir.join(package.name)) || link(&path_of(dir, package, file))
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_model_file_that_is_a_link_is_neither_intact_nor_read() {
        let package = super::super::catalog::find("smollm2-135m-instruct").unwrap();
        let file = &package.files[0];
        let models = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let elsewhere = outside.path().join("any");
        std::fs::write(&elsewhere, b"not the model").unwrap();
        std::fs::create_dir_all(models.path().join(package.name)).unwrap();
        symlink(&elsewhere, path_of(models.path(), package, file)).unwrap();
        assert_eq!(needed(models.path(), package).len(), package.files.len());
        assert!(matches!(
            read_verified(models.path(), package, file),
            Err(FileError::Symlink { .. })
        ));
        // The package folder itself linked elsewhere.
        let models = tempfile::tempdir().unwrap();
        symlink(outside.path(), models.path().join(package.name)).unwrap();
        assert!(matches!(
            read_verified(models.path(), package, file),
            Err(FileError::Symlink { .. })
        ));
    }
}
