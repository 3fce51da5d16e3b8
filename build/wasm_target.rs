//! Makes sure the toolchain building the gateway can build `wasm32-wasip2` components. rustup installs the
//! targets `rust-toolchain.toml` lists only when it installs the toolchain itself; on a machine whose
//! toolchain was already there, the target is missing and the build script installs it (when rustup is
//! present), or says exactly what to run. Shared by `build.rs` and a test of it (`tests/all/cli.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the policies are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What `ensure` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target was installed already.
    Present,
    /// It was missing and `rustup target add` installed it.
    Installed,
}

/// Whether the toolchain whose sysroot is `sysroot` has the target's standard library.
pub fn installed(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

/// The sysroot of `rustc`, as it reports it.
pub fn sysroot(rustc: &Path) -> Result<PathBuf, String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", rustc.display()))?;
    if !out.status.success() {
        return Err(format!("{} --print sysroot failed", rustc.display()));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

/// Installs the target with `rustup` (for `toolchain`, the one building this crate) unless the sysroot has
/// it. `Err` says why it could not, and what to run.
pub fn ensure(
    sysroot: &Path,
    rustup: Option<&Path>,
    toolchain: Option<&str>,
) -> Result<Outcome, String> {
    if installed(sysroot) {
        return Ok(Outcome::Present);
    }
    let by_hand = format!("install it with `rustup target add {TARGET}`");
    let Some(rustup) = rustup else {
        return Err(format!(
            "the {TARGET} target is not installed in {} and rustup was not found; {by_hand} \
             (or your toolchain manager's equivalent)",
            sysroot.display()
        ));
    };
    let mut cmd = Command::new(rustup);
    cmd.args(["target", "add", TARGET]);
    if let Some(toolchain) = toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    match cmd.status() {
        Ok(status) if status.success() && installed(sysroot) => Ok(Outcome::Installed),
        Ok(status) => Err(format!(
            "the {TARGET} target is not installed and `{} target add {TARGET}` did not install it ({status}); \
             {by_hand}",
            rustup.display()
        )),
        Err(e) => Err(format!(
            "the {TARGET} target is not installed and {} could not be run ({e}); {by_hand}",
            rustup.display()
        )),
    }
}

/// `rustup` on `PATH` (or where `RUSTUP_HOME`'s proxies put it), if there is one.
pub fn find_rustup(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .map(|dir| dir.join("rustup"))
        .find(|candidate| candidate.is_file())
}
