//! In-process sentence embedder: all-MiniLM-L6-v2 (BERT, 384 dims) on CPU via candle.
//!
//! Embeddings are mean-pooled over the attention mask and L2-normalised, matching
//! `sentence-transformers/all-MiniLM-L6-v2`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// Maximum number of tokens per input, including `[CLS]` and `[SEP]`; longer inputs are truncated.
pub const MAX_TOKENS: usize = 256;

const MODEL_FILE: &str = "model.safetensors";
const TOKENIZER_FILE: &str = "tokenizer.json";
const CONFIG_FILE: &str = "config.json";

/// Errors from loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A model file was read but its contents are invalid.
    #[error("invalid {}: {message}", path.display())]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// Tokenisation of an input failed.
    #[error("tokenizer error: {0}")]
    Tokenize(String),
    /// The forward pass failed.
    #[error("inference error: {0}")]
    Inference(#[from] candle_core::Error),
}

/// One sentence embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// L2-normalised vector of length [`Embedder::dims`].
    pub vector: Vec<f32>,
    /// Token count of the input after truncation, including special tokens.
    pub tokens: usize,
}

/// A loaded sentence-embedding model. `Send + Sync`; load once and share via `Arc`.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`;
    /// errors name the missing or invalid file.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let weights = read_file(&dir.join(MODEL_FILE))?;
        let tokenizer = read_file(&dir.join(TOKENIZER_FILE))?;
        let config = read_file(&dir.join(CONFIG_FILE))?;
        Embedder::from_bytes(weights, &tokenizer, &config)
    }

    /// The embedder from the bytes of `model.safetensors`, `tokenizer.json` and `config.json` (already
    /// read and checked against their digests).
    pub fn from_bytes(
        weights: Vec<u8>,
        tokenizer: &[u8],
        config: &[u8],
    ) -> Result<Embedder, EmbedError> {
        let config = load_config(Path::new(CONFIG_FILE), config)?;
        let tokenizer = load_tokenizer(Path::new(TOKENIZER_FILE), tokenizer)?;
        let device = Device::Cpu;
        let model = load_model(Path::new(MODEL_FILE), weights, &config, &device)?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
        })
    }

    /// Embedding dimensionality (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// One L2-normalised embedding per input, mean-pooled over the attention mask,
    /// truncated to [`MAX_TOKENS`] tokens, with each input's token count.
    ///
    /// Inputs are sorted by length and run in padded groups of similar length; a group
    /// never pads any input by more than [`PAD_SLACK`] (measured: padding a mixed batch
    /// to its longest input is slower than one pass per input, while similar-length
    /// inputs batch well).
    pub fn embed(&self, inputs: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
        let encodings = inputs
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        let lens: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| lens[i]);
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        for group in length_groups(&order, &lens) {
            let batch: Vec<&Encoding> = group.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in group.iter().zip(self.forward_padded(&batch, 0)?) {
                vectors[i] = vector;
            }
        }
        let embeddings = vectors
            .into_iter()
            .zip(&encodings)
            .map(|(vector, enc)| Embedding {
                vector,
                tokens: enc.get_ids().len(),
            })
            .collect();
        Ok(embeddings)
    }

    fn tokenize(&self, text: &str) -> Result<Encoding, EmbedError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))
    }

    /// Runs BERT over right-padded encodings and returns pooled, normalised vectors.
    fn forward_padded(
        &self,
        encodings: &[&Encoding],
        min_len: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if encodings.is_empty() {
            return Ok(Vec::new());
        }
        let longest = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let len = longest.max(min_len).min(MAX_TOKENS);
        let (ids, mask) = padded_inputs(encodings, len);
        let shape = (encodings.len(), len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let pooled = normalize(&mean_pool(&hidden, &mask)?)?;
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// Largest padding (in tokens, beyond 1/8 of the shortest input) tolerated within one batch group.
const PAD_SLACK: usize = 4;
/// Maximum inputs per forward pass.
const MAX_GROUP: usize = 32;

/// Splits `order` (indices sorted by ascending token length) into runs whose longest
/// input exceeds the shortest by at most `PAD_SLACK + shortest / 8` tokens.
fn length_groups<'a>(order: &'a [usize], lens: &[usize]) -> Vec<&'a [usize]> {
    let len = |i: usize| lens[i];
    let mut groups = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        let shortest = len(order[start]);
        let split = end == order.len()
            || end - start >= MAX_GROUP
            || len(order[end]) > shortest + PAD_SLACK + shortest / 8;
        if split {
            groups.push(&order[start..end]);
            start = end;
        }
    }
    groups
}

/// Flattens encodings into row-major `ids` and `mask`, each right-padded with zeros to `len`.
fn padded_inputs(encodings: &[&Encoding], len: usize) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(encodings.len() * len);
    let mut mask = Vec::with_capacity(encodings.len() * len);
    for enc in encodings {
        let n = enc.get_ids().len().min(len);
        ids.extend_from_slice(&enc.get_ids()[..n]);
        mask.extend(std::iter::repeat_n(1u32, n));
        ids.extend(std::iter::repeat_n(0u32, len - n));
        mask.extend(std::iter::repeat_n(0u32, len - n));
    }
    (ids, mask)
}

/// Mean of `hidden` (batch, seq, dims) over positions where `mask` (batch, seq) is 1.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    summed.broadcast_div(&counts)
}

/// Divides each row of `x` (batch, dims) by its L2 norm.
fn normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norm)
}

fn read_file(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|source| EmbedError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, err: impl std::fmt::Display) -> EmbedError {
    EmbedError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn load_config(path: &Path, bytes: &[u8]) -> Result<Config, EmbedError> {
    let config: Config = serde_json::from_slice(bytes).map_err(|e| invalid(path, e))?;
    if config.max_position_embeddings < MAX_TOKENS {
        let msg = format!(
            "max_position_embeddings {} < {MAX_TOKENS}",
            config.max_position_embeddings
        );
        return Err(invalid(path, msg));
    }
    Ok(config)
}

/// Loads the tokenizer, dropping its own padding, truncating to [`MAX_TOKENS`], and reading special
/// tokens written in the text as text.
fn load_tokenizer(path: &Path, bytes: &[u8]) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| invalid(path, e))?;
    tokenizer.with_padding(None);
    // The text is someone's message: a `[SEP]` or `[CLS]` in it is text, not a marker (the post-processor
    // still adds the real ones).
    tokenizer.set_encode_special_tokens(true);
    let truncation = TruncationParams {
        max_length: MAX_TOKENS,
        ..TruncationParams::default()
    };
    tokenizer
        .with_truncation(Some(truncation))
        .map_err(|e| invalid(path, e))?;
    Ok(tokenizer)
}

/// Loads BERT weights without mmap (safe code only). `BertModel::load` accepts
/// tensor names with or without a `bert.` prefix.
fn load_model(
    path: &Path,
    bytes: Vec<u8>,
    config: &Config,
    device: &Device,
) -> Result<BertModel, EmbedError> {
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
        .map_err(|e| invalid(path, e))?;
    BertModel::load(vb, config).map_err(|e| invalid(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_grouped_by_similar_length_in_order() {
        let lens = [3usize, 40, 4, 41, 200, 5];
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| lens[i]);
        let groups: Vec<Vec<usize>> = length_groups(&order, &lens)
            .into_iter()
            .map(<[usize]>::to_vec)
            .collect();
        assert_eq!(groups, [vec![0, 2, 5], vec![1, 3], vec![4]]);
    }

    #[test]
    fn the_embedder_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Embedder>();
    }
}
