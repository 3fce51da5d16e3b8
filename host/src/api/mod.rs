//! Control-plane endpoints (operator token) and the HTTP client the CLI uses to call them.

pub mod admin;
pub mod audit;
pub mod policies;
pub mod spend;
pub mod tenant;
