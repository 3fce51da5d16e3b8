//! Logging through the host: lines land in the gateway's log tagged with the request id.
//!
//! The host keeps at most 32 lines of at most 1 KiB per call and drops the rest, so log a line or two
//! per decision, not the prompt. Outside WebAssembly (a policy's unit tests on the build machine) there is
//! no host, and the lines go to standard error instead.

#[cfg(target_arch = "wasm32")]
use crate::__private::router::sluice::policy::log::{Level, emit};

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    #[cfg(target_arch = "wasm32")]
    emit(Level::Debug, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[debug] {message}");
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    #[cfg(target_arch = "wasm32")]
    emit(Level::Info, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[info] {message}");
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    #[cfg(target_arch = "wasm32")]
    emit(Level::Warn, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[warn] {message}");
}
