//! Builds the built-in policies (`policies/`, a workspace of its own) as `wasm32-wasip2` components, so the
//! gateway can embed them (`host/src/policy/builtin.rs` includes them from `OUT_DIR`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    for watched in ["policies", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("policies-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("policies"))
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    // The outer build's settings are for the host; the policies build for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
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
                "cargo:warning=building the built-in policies failed ({other:?}); is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
            );
            std::process::exit(1);
        }
    }
    for name in [
        "sluice_policy_classifier",
        "sluice_policy_router",
        "sluice_policy_test_hostile",
    ] {
        let built = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{name}.wasm"));
        if let Err(e) = std::fs::copy(&built, out.join(format!("{name}.wasm"))) {
            println!("cargo:warning=cannot copy {}: {e}", built.display());
            std::process::exit(1);
        }
    }
}
