//! Validate: the body, read only now that the client is authenticated, parsed into the typed request. `Err`
//! is 400 naming the parameter, or the edge's 413 / 415.

use bytes::Bytes;

use crate::error::ApiError;
use crate::exchange::{BodyRead, Exchange, Phase};
use crate::pipeline::call::{Typed, parse_chat, parse_embeddings};
use crate::providers::Endpoint;

pub(in crate::pipeline) async fn run(
    ex: &mut Exchange,
    body: BodyRead,
    endpoint: Endpoint,
) -> Result<(Typed, Bytes), ApiError> {
    let bytes = body.await?;
    let _timer = ex.phase(Phase::Validate);
    let request = match endpoint {
        Endpoint::Chat => parse_chat(&bytes),
        Endpoint::Embeddings => parse_embeddings(&bytes),
    };
    Ok((request?, bytes))
}
