//! Sluice: a multi-tenant, OpenAI-compatible LLM gateway.
//!
//! Crate map, in the order a request flows (see `ARCHITECTURE.md`):
//! - [`config`]: TOML -> validated `Config`; secrets from the environment or files.
//! - [`server`]: listener, TLS, limits, shutdown, reload; `server::pipeline` runs the phases.
//! - [`wire`]: the OpenAI request format, typed and validated, unknown fields passed through.
//! - [`auth`]: API keys (format, hashing, in-memory key store) -> `Principal`.
//! - [`policy`]: authorize / classify / route decisions (built-in behaviour until Wasm policies land).
//! - [`admission`]: limits and budgets (none yet), and cost from usage.
//! - [`cache`]: the response cache seam (bypass in this build).
//! - [`providers`]: routing snapshot, provider adapters (openai, anthropic, fake), SSE.
//! - [`audit`]: the per-tenant verifiable audit log (entries, Merkle tree, signed checkpoints, sequencer).
//! - [`storage`]: sqlx, migrations, repositories.
//! - [`api`]: control-plane endpoints.
//! - [`error`]: error codes and their one mapping to HTTP.
//! - [`cli`]: the `sluice` command (arguments, each command, the HTTP client it calls a gateway with).

pub mod admission;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod policy;
pub mod providers;
pub mod server;
pub mod storage;
pub mod wire;

pub use config::Config;
pub use server::{ConfigSource, Gateway};
