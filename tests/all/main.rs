//! Integration tests: one binary, a module per subsystem. Real HTTP over real sockets, the gateway on
//! 127.0.0.1:0, in-process fake upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod audit;
mod bad_input;
mod cache;
mod cli;
mod compat;
mod data_plane;
mod edge;
mod layers;
mod local;
mod ops;
mod policy;
mod routing;
mod spend;
mod support;
mod tls;
// The build script's own check of the wasm target, tested here with stand-in toolchains.
#[path = "../../build/wasm_target.rs"]
mod wasm_target;
mod witness;
