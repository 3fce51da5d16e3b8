//! Sluice: a multi-tenant, OpenAI-compatible LLM gateway.
//!
//! Crate map, from the edge down (dependencies point down this list; see `ARCHITECTURE.md`):
//! - [`cli`]: the `sluice` command line: its commands and the HTTP client they call a gateway with.
//! - [`edge`]: the HTTP edge: listener, TLS, drain, the route table, request entry; the only layer that
//!   knows hyper's server.
//! - [`control`]: operator and tenant endpoints behind one authenticate-check-audit wrapper.
//! - [`pipeline`]: the data-plane phases, one file each, over one `Call` per inference request.
//! - [`exchange`]: `Exchange`, the per-request context the control plane and the pipeline share, and the
//!   audit guard that gives every authenticated request exactly one entry.
//! - [`app`]: `App`, the shared state of a running gateway, built from a `Config`.
//! - [`error`]: error codes, their one mapping to HTTP, and domain errors -> `ApiError`.
//! - [`metrics`]: the Prometheus registry.
//! - [`wire`]: the OpenAI request format, typed and validated, unknown fields passed through.
//! - [`policy`]: the Wasm runtime, tenants' policies, the authorize / classify / route decisions.
//! - [`admission`]: rate limits, concurrency, budgets and their covers, cost from usage.
//! - [`cache`]: the response cache: tenant-scoped exact and semantic tiers, the guard, persistence.
//! - [`providers`]: routing snapshot, provider adapters (openai, anthropic, local, fake), SSE.
//! - [`inference`]: local models in this process, the `sluice-inference` crate (candle): chat, embedder,
//!   pinned files, fair workers.
//! - [`witness`]: witnessed checkpoints (C2SP tlog-witness): the witness, and the gateway's client of it.
//! - [`audit`]: the per-tenant verifiable audit log: the sequencer here, the format and the verifier in the
//!   `sluice-audit` crate.
//! - [`storage`]: sqlx, migrations, one repository per file.
//! - [`auth`]: API keys (format, hashing, in-memory key store) -> `Principal`.
//! - [`config`]: TOML -> validated `Config`; secrets from the environment or files.
//! - [`per_tenant`]: `PerTenant<T>`, the one map of a shared value per tenant.

// Functions stay short enough to read in one screen (the threshold is in `clippy.toml`).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod control;
pub mod edge;
pub mod error;
pub mod exchange;
pub use sluice_inference as inference;
pub mod metrics;
pub mod per_tenant;
pub mod pipeline;
pub mod policy;
pub mod providers;
pub mod storage;
pub mod wire;
pub mod witness;

pub use app::{App, ConfigSource};
pub use config::Config;
pub use edge::Gateway;
