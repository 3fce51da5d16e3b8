//! A tenant's complexity classifier: a linear head over the request's embedding (the gateway's MiniLM
//! vector of its last user turn) and its structural features, trained by `sluice route train` on the
//! tenant's own labelled prompts into `weights/` (until then they are the built-in classifier's). Without
//! an embedding a head over the structural features alone decides, and the `classifier` label says which.
//! The score picks the tier.

use sluice_guest::head::{LinearHead, structural};
use sluice_guest::prelude::*;

/// The head over the embedding and the structural features.
const HEAD: &[u8] = include_bytes!("../weights/head.bin");
/// The head over the structural features alone: the fallback.
const FALLBACK: &[u8] = include_bytes!("../weights/structural.bin");

/// The score is the head's confidence that the request needs the complex tier: below `SIMPLE` it is
/// simple, from `COMPLEX` on complex, and the undecided band between is standard.
const SIMPLE: f32 = 0.45;
const COMPLEX: f32 = 0.55;

fn tier(score: f32) -> Tier {
    if score < SIMPLE {
        Tier::Simple
    } else if score < COMPLEX {
        Tier::Standard
    } else {
        Tier::Complex
    }
}

/// The classify slot.
fn classify(req: Request, embedding: Option<Embedding>) -> Result<Classification, PolicyError> {
    let features = structural(&req);
    let head = LinearHead::parse(HEAD).map_err(PolicyError::new)?;
    let (score, by) = match embedding.as_ref().filter(|e| head.reads(e)) {
        Some(e) => (head.score(e, &features)?, "embedding"),
        None => {
            let fallback = LinearHead::parse(FALLBACK).map_err(PolicyError::new)?;
            (fallback.score_structural(&features)?, "structural")
        }
    };
    Ok(Classification {
        tier: tier(score),
        score,
        labels: vec![
            Label::new("complexity", format!("{score:.3}")),
            Label::new("classifier", by),
        ],
    })
}

sluice_guest::export_embedding_classifier!(classify);
