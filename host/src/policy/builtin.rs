//! The built-in policies, compiled from `policies/` by the build script and embedded in the binary. They
//! serve every tenant that has not uploaded its own.

/// The complexity classifier (`policies/classifier`).
pub const CLASSIFIER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sluice_policy_classifier.wasm"));

/// The tiered router (`policies/router`).
pub const ROUTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sluice_policy_router.wasm"));

/// A test program that misbehaves on request (`policies/test-hostile`); never served.
#[cfg(test)]
pub const TEST_HOSTILE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sluice_policy_test_hostile.wasm"));
