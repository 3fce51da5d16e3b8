//! The phases of an inference request, one file each, in the order they run (`pipeline::phases` calls
//! them): each is a `run` over the request's `Call` that returns `Flow::Next` to go on or
//! `Flow::Answer` to end the request with a reply; `Err` ends it with that error, which is audited.

pub(super) mod admit;
pub(super) mod authorize;
pub(super) mod cache;
pub(super) mod candidates;
pub(super) mod classify;
pub(super) mod forward;
pub(super) mod reserve;
pub(super) mod respond;
pub(super) mod route;
pub(super) mod validate;
