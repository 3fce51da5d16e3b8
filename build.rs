//! Builds the built-in policies (`policies/`, a workspace of its own) as `wasm32-wasip2` components, so the
//! gateway can embed them (`host/src/policy/builtin.rs` includes them from `OUT_DIR`), and the example tenant
//! policies (`examples/custom-router` and `examples/secret-guard`, crates of their own on the guest SDK), so
//! the tests and the load harness can run them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/wasm_target.rs"]
mod wasm_target;

/// Builds the Cargo project at `dir` for wasm32-wasip2 in release mode into `target_dir`, or exits with a
/// build warning naming `what`.
fn build_wasm(cargo: &OsString, dir: &Path, target_dir: &Path, what: &str) {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .args([
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    // The outer build's settings are for the host; these builds are for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_LTO",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!("cargo:warning=building {what} failed ({other:?}); see the errors above");
            std::process::exit(1);
        }
    }
}

/// The commit the sources are at, or `unknown` outside a git checkout. Reruns the script when HEAD moves.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // Only files that exist: a missing one would rerun the script on every build.
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).map(|p| root.join(p))
            && path.is_file()
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    head
}

/// Stops the build with `message` as its error.
fn fail(message: &str) -> ! {
    println!("cargo:warning={message}");
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// Copies `target_dir`'s release build of `name`.wasm to `out` as `copy`.
fn copy_wasm(target_dir: &Path, name: &str, out: &Path, copy: &str) {
    let built = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    if let Err(e) = std::fs::copy(&built, out.join(copy)) {
        println!("cargo:warning=cannot copy {}: {e}", built.display());
        std::process::exit(1);
    }
}

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    // The SDK and the example by their sources only: a developer's `target/` inside them must not rerun this.
    for watched in [
        "policies/Cargo.toml",
        "policies/Cargo.lock",
        "policies/classifier",
        "policies/router",
        "policies/test-hostile",
        "policies/test-bad-export",
        "policies/test-secrets-import",
        "policies/test-http-import",
        "policies/test-v0-1-0",
        "policies/test-embedding-echo",
        "features/src",
        "features/Cargo.toml",
        "wit",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "guest-sdk/Cargo.lock",
        "examples/custom-router/src",
        "examples/custom-router/Cargo.toml",
        "examples/custom-router/Cargo.lock",
        "examples/secret-guard/src",
        "examples/secret-guard/Cargo.toml",
        "examples/secret-guard/Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("build").display());
    println!("cargo:rustc-env=SLUICE_COMMIT={}", commit(&root));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = PathBuf::from(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    let sysroot = wasm_target::sysroot(&rustc).unwrap_or_else(|e| fail(&e));
    let rustup = wasm_target::find_rustup(std::env::var_os("PATH").as_deref());
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    match wasm_target::ensure(&sysroot, rustup.as_deref(), toolchain.as_deref()) {
        Ok(wasm_target::Outcome::Present) => {}
        Ok(wasm_target::Outcome::Installed) => println!(
            "cargo:warning=installed the {} target with rustup, for the built-in policies",
            wasm_target::TARGET
        ),
        Err(e) => fail(&e),
    }

    // One target folder for both: they share wit-bindgen and the SDK, compiled once.
    let policies_target = out.join("wasm-target");
    build_wasm(
        &cargo,
        &root.join("policies"),
        &policies_target,
        "the built-in policies",
    );
    for name in [
        "sluice_policy_classifier",
        "sluice_policy_router",
        "sluice_policy_test_hostile",
        "sluice_policy_test_bad_export",
        "sluice_policy_test_secrets_import",
        "sluice_policy_test_http_import",
        "sluice_policy_test_v0_1_0",
        "sluice_policy_test_embedding_echo",
    ] {
        copy_wasm(&policies_target, name, &out, &format!("{name}.wasm"));
    }

    let examples_target = &policies_target;
    for (dir, name) in [
        ("custom-router", "custom_router"),
        ("secret-guard", "secret_guard"),
    ] {
        build_wasm(
            &cargo,
            &root.join("examples").join(dir),
            examples_target,
            &format!("the example policy examples/{dir}"),
        );
        copy_wasm(examples_target, name, &out, &format!("example_{name}.wasm"));
    }
}
