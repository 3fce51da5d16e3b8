//! Builds the built-in policies (`policies/`, a workspace of its own) as `wasm32-wasip2` components, so the
//! gateway can embed them (`host/src/policy/builtin.rs` includes them from `OUT_DIR`), and the example tenant
//! policies (`examples/custom-router` and `examples/secret-guard`, crates of their own on the guest SDK), so
//! the tests and the load harness can run them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

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
            println!(
                "cargo:warning=building {what} failed ({other:?}); is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
            );
            std::process::exit(1);
        }
    }
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
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

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
