//! Witnessed checkpoints, C2SP `tlog-witness` with `cosignature/v1` cosignatures.
//!
//! - [`Witness`] is the witness itself (`sluice witness serve`, a separate process with its own key and
//!   state): it cosigns a log's checkpoint only when a consistency proof shows it extends the last one it
//!   cosigned for that log, so an operator who rewrites history cannot get the rewrite cosigned.
//! - [`client`] is the gateway's side: it sends every new checkpoint to the configured witnesses in the
//!   background and keeps their cosignatures, which exports and `GET /v1/audit/checkpoint` publish.

pub mod client;
mod server;

pub use server::{AddError, Witness, serve};
