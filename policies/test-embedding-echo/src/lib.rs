//! A test program, never served: shows a client the embedding its classifier was given, so a test can
//! compare it with the embedder's own. Uploaded for both the classify and the route slot. The classifier
//! puts one part of what it saw in the `echo` label, chosen by the `x-sluice-meta-part` header: `digest`
//! (the embedding model's), `dims` (the vector's length), or `N`, the vector's floats `32N..32N+32` as the
//! hex of their bits (256 characters, a label's most); `none` without an embedding. The router rejects the
//! request with that label as the reason, which the client reads in the 403.

wit_bindgen::generate!({ path: "../../wit", world: "any-policy" });

use exports::sluice::policy::{auth, classifier, embedding_classifier, router};
use sluice::policy::types::{Embedding, Label, PolicyError, Request, Tier};

struct Policy;

fn part(req: &Request) -> Option<&str> {
    req.metadata
        .iter()
        .find(|l| l.key == "part")
        .map(|l| l.value.as_str())
}

fn echo(req: &Request, embedding: Option<&Embedding>) -> String {
    let Some(e) = embedding else {
        return "none".to_owned();
    };
    match part(req) {
        Some("digest") => e.model_digest.clone(),
        Some("dims") => e.vector.len().to_string(),
        Some(n) => {
            let from = n.parse::<usize>().unwrap_or(0) * 32;
            e.vector
                .iter()
                .skip(from)
                .take(32)
                .map(|v| format!("{:08x}", v.to_bits()))
                .collect()
        }
        None => "no part asked".to_owned(),
    }
}

impl embedding_classifier::Guest for Policy {
    fn classify(
        req: Request,
        embedding: Option<Embedding>,
    ) -> Result<embedding_classifier::Classification, PolicyError> {
        Ok(embedding_classifier::Classification {
            tier: Tier::Simple,
            score: 0.0,
            labels: vec![Label {
                key: "echo".to_owned(),
                value: echo(&req, embedding.as_ref()),
            }],
        })
    }
}

impl classifier::Guest for Policy {
    fn classify(_: Request) -> Result<classifier::Classification, PolicyError> {
        Err(PolicyError {
            message: "this component classifies with the embedding".to_owned(),
        })
    }
}

impl router::Guest for Policy {
    fn route(input: router::RoutingInput) -> Result<router::Decision, PolicyError> {
        let echoed = input
            .req
            .labels
            .iter()
            .find(|l| l.key == "echo")
            .map_or_else(|| "no echo label".to_owned(), |l| l.value.clone());
        Ok(router::Decision::Reject(echoed))
    }
}

impl auth::Guest for Policy {
    fn authorize(_: Request) -> Result<auth::Decision, PolicyError> {
        Ok(auth::Decision::Allow(Vec::new()))
    }
}

export!(Policy);
