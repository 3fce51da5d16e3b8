//! Learned classifier heads: a linear model over the request's embedding and its structural features,
//! written by `sluice route train` and embedded in the component with `include_bytes!`.
//!
//! The file: the magic `SLHEAD01`, the embedding's dimensions and the number of structural features (each a
//! little-endian `u32`), the embedding model's SHA-256 (64 hex digits; zeros for a head without an
//! embedding), then `dims + features + 1` little-endian `f32`: the embedding's weights, the features'
//! weights, the bias. The score is the logistic of the weighted sum.

use crate::{Embedding, Request};

pub use sluice_features::{COUNT as STRUCTURAL, NAMES as STRUCTURAL_NAMES};

const MAGIC: &[u8; 8] = b"SLHEAD01";
const HEADER: usize = 8 + 4 + 4 + 64;

/// A parsed head.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    dims: usize,
    features: usize,
    digest: String,
    weights: Vec<f32>,
}

/// The structural features of a request (prompt length, turns, code, mathematics, constraint words, tools,
/// requested output, reasoning words, pasted input), as `sluice route train` computes them.
pub fn structural(req: &Request) -> [f32; STRUCTURAL] {
    sluice_features::of_messages(
        req.messages
            .iter()
            .map(|m| (m.role.as_str(), m.text.as_str())),
        req.prompt_tokens,
        req.has_tools,
        req.max_tokens,
    )
}

/// The dot product of two vectors (over the shorter one's length).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logistic function: a score in 0..1.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Softmax of `logits` in place: probabilities that sum to 1 (for a head with one output per tier).
pub fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    if sum > 0.0 {
        for l in logits.iter_mut() {
            *l /= sum;
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

impl LinearHead {
    /// Parses a head file. `Err` names what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<LinearHead, String> {
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err("not a Sluice head (no SLHEAD01 magic)".to_owned());
        }
        let (Some(dims), Some(features)) = (u32_at(bytes, 8), u32_at(bytes, 12)) else {
            return Err("a truncated head header".to_owned());
        };
        let digest = std::str::from_utf8(&bytes[16..HEADER.min(bytes.len())])
            .ok()
            .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or("a head header without the embedding model's SHA-256")?;
        let count = dims + features + 1;
        let body = &bytes[HEADER..];
        if body.len() != count * 4 {
            return Err(format!(
                "a head of {dims} + {features} weights and a bias needs {} bytes of weights, not {}",
                count * 4,
                body.len()
            ));
        }
        let weights = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(LinearHead {
            dims,
            features,
            digest: if dims == 0 {
                String::new()
            } else {
                format!("sha256:{digest}")
            },
            weights,
        })
    }

    /// The embedding dimensions the head reads (0 for a structural-only head).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The embedding model the head was trained on: `sha256:<hex>`, empty for a structural-only head.
    pub fn model_digest(&self) -> &str {
        &self.digest
    }

    /// Whether the head can read this embedding: the same model and dimensions it was trained on.
    pub fn reads(&self, embedding: &Embedding) -> bool {
        self.dims > 0
            && embedding.model_digest == self.digest
            && embedding.vector.len() == self.dims
    }

    /// The score of an embedding and the structural features. `Err` when the head cannot read the
    /// embedding ([`reads`](Self::reads)) or the features are not the head's.
    pub fn score(
        &self,
        embedding: &Embedding,
        structural: &[f32],
    ) -> Result<f32, crate::PolicyError> {
        if !self.reads(embedding) {
            return Err(crate::PolicyError::new(format!(
                "the head reads {} dimensions of {}, not {} of {}",
                self.dims,
                self.digest,
                embedding.vector.len(),
                embedding.model_digest
            )));
        }
        self.weighted(&embedding.vector, structural)
    }

    /// The score of the structural features alone, for a head trained without an embedding.
    pub fn score_structural(&self, structural: &[f32]) -> Result<f32, crate::PolicyError> {
        if self.dims != 0 {
            return Err(crate::PolicyError::new("the head needs an embedding"));
        }
        self.weighted(&[], structural)
    }

    fn weighted(&self, embedding: &[f32], structural: &[f32]) -> Result<f32, crate::PolicyError> {
        if structural.len() != self.features {
            return Err(crate::PolicyError::new(format!(
                "the head reads {} structural features, not {}",
                self.features,
                structural.len()
            )));
        }
        let (e, rest) = self.weights.split_at(self.dims);
        let (s, bias) = rest.split_at(self.features);
        let z = dot(e, embedding) + dot(s, structural) + bias.first().copied().unwrap_or(0.0);
        Ok(sigmoid(z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dims: u32, features: u32, digest: &str, weights: &[f32]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(dims.to_le_bytes());
        b.extend(features.to_le_bytes());
        b.extend(digest.as_bytes());
        for w in weights {
            b.extend(w.to_le_bytes());
        }
        b
    }

    #[test]
    fn a_head_scores_the_weighted_sum_of_its_embedding_and_features() {
        let digest = "ab".repeat(32);
        let head = LinearHead::parse(&file(2, 1, &digest, &[1.0, -1.0, 2.0, 0.5])).unwrap();
        let e = Embedding {
            model_digest: format!("sha256:{digest}"),
            vector: vec![0.6, 0.8],
        };
        let z: f32 = 0.6 - 0.8 + 2.0 * 0.25 + 0.5;
        assert!((head.score(&e, &[0.25]).unwrap() - sigmoid(z)).abs() < 1e-6);
        let other = Embedding {
            model_digest: format!("sha256:{}", "cd".repeat(32)),
            vector: vec![0.6, 0.8],
        };
        assert!(
            head.score(&other, &[0.25]).is_err(),
            "another model's vector"
        );
        assert!(head.score(&e, &[0.25, 1.0]).is_err(), "other features");
        assert!(head.score_structural(&[0.25]).is_err());
    }

    #[test]
    fn a_damaged_file_is_refused_by_name() {
        let digest = "0".repeat(64);
        let good = file(0, 2, &digest, &[1.0, 1.0, 0.0]);
        let head = LinearHead::parse(&good).unwrap();
        assert_eq!(head.score_structural(&[0.0, 0.0]).unwrap(), 0.5);
        assert!(LinearHead::parse(&good[..good.len() - 1]).is_err());
        assert!(LinearHead::parse(b"SLHEAD01").is_err());
        assert!(LinearHead::parse(b"not a head at all, just words").is_err());
        assert!(LinearHead::parse(&file(0, 2, &"x".repeat(64), &[1.0, 1.0, 0.0])).is_err());
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let mut l = [1.0, 3.0, 2.0];
        softmax(&mut l);
        assert!((l.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(l[1] > l[2] && l[2] > l[0]);
    }
}
