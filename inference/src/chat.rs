//! In-process chat model engine: GGUF quantized llama-family models on CPU with candle.
//!
//! A [`ChatModel`] is loaded once and shared (it is `Send + Sync`). Each request calls
//! [`ChatModel::start`] to get a [`Generation`], which owns its own KV cache and is driven
//! step by step with [`Generation::step`], so a scheduler can interleave many generations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as SamplerKind};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use serde::Serialize;
use tokenizers::Tokenizer;

/// Maximum number of prompt tokens processed by one prefill [`Generation::step`].
pub const PREFILL_CHUNK: usize = 64;

/// Maximum number of stop sequences accepted in [`Sampling::stop`].
pub const MAX_STOP_SEQUENCES: usize = 4;

/// Temperatures below this are treated as greedy decoding (argmax).
const GREEDY_EPSILON: f64 = 1e-7;

/// Name under which the chat template is registered in the minijinja environment.
const TEMPLATE_NAME: &str = "chat";
/// A message's content in the rendered template is `OPEN index CLOSE` (private-use characters, which no
/// template writes and which are not in a role name).
const OPEN: char = '\u{F8F0}';
const CLOSE: char = '\u{F8F1}';

/// Vocabulary tokens that end an assistant turn in addition to the GGUF EOS token.
const END_OF_TURN_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// Errors of the chat engine.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The model file could not be read or is not a usable GGUF llama model.
    #[error("cannot load chat model {}: {message}", path.display())]
    Load {
        /// The GGUF file that failed to load.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The chat template failed to render.
    #[error("chat template error: {0}")]
    Template(String),
    /// Tokenization or detokenization failed.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The rendered prompt plus one completion token does not fit the context.
    #[error(
        "prompt has {prompt_tokens} tokens, which leaves no room in the context of {context_length} tokens"
    )]
    PromptTooLong {
        /// Tokens of the rendered prompt.
        prompt_tokens: usize,
        /// Context length of the model.
        context_length: usize,
    },
    /// The sampling parameters are invalid (e.g. negative temperature, too many stop sequences).
    #[error("invalid sampling parameters: {0}")]
    InvalidSampling(String),
    /// The forward pass or the sampler failed (candle error text).
    #[error("inference error: {0}")]
    Inference(String),
    /// [`Generation::step`] was called after the generation finished.
    #[error("generation already finished")]
    AlreadyFinished,
}

impl From<candle_core::Error> for ChatError {
    fn from(e: candle_core::Error) -> Self {
        ChatError::Inference(e.to_string())
    }
}

/// One chat message: a role (`system`, `user`, `assistant`, ...) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Role of the author of the message.
    pub role: String,
    /// Text of the message.
    pub content: String,
}

impl ChatMessage {
    /// Builds a message from a role and a content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Sampling parameters of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Completion tokens at most.
    pub max_tokens: usize,
    /// Softmax temperature; 0 (or nearly 0) means greedy decoding (argmax).
    pub temperature: f64,
    /// Nucleus sampling probability mass, if any.
    pub top_p: Option<f64>,
    /// Random seed; with `temperature > 0` the same seed gives the same output.
    pub seed: u64,
    /// Up to [`MAX_STOP_SEQUENCES`] stop sequences; the output ends before the first match,
    /// which is not included.
    pub stop: Vec<String>,
}

impl Default for Sampling {
    /// Greedy decoding of at most 256 tokens without stop sequences.
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

/// Result of one [`Generation::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Prompt chunk processed, nothing to emit yet.
    Prefilled,
    /// New text to emit (may be empty when the text is held back: an incomplete UTF-8
    /// sequence, or a possible prefix of a stop sequence).
    Text(String),
    /// Finished; `text` is the last text to emit (anything held back that is not part of a
    /// stop sequence).
    Finished {
        /// Last text to emit.
        text: String,
        /// Why the generation ended.
        reason: Finish,
    },
}

/// Why a generation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An EOS / end-of-turn token (e.g. `<|im_end|>`) or a stop sequence.
    Stop,
    /// `max_tokens` reached or the context is full.
    Length,
}

/// Options of [`ChatModel::load_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Convert weights whose quantized matmul has no SIMD kernel in candle 0.11 on x86_64
    /// (Q4_1, Q5_0, Q5_1, Q8_1: scalar `vec_dot`) to Q8_0, which has an AVX2 kernel. About
    /// 4x faster decoding for a Q4_1 model, at the cost of ~1.7x the weight memory (Q8_0 is
    /// 8.5 bits/weight vs 5 for Q4_1), a transient peak of about twice that while loading,
    /// and a slightly different (not worse) rounding of the weights. Default: true on
    /// x86_64, false elsewhere.
    pub requantize_slow_types: bool,
}

impl Default for LoadOptions {
    /// Requantize on x86_64 only.
    fn default() -> Self {
        Self {
            requantize_slow_types: cfg!(target_arch = "x86_64"),
        }
    }
}

/// A loaded chat model: quantized weights, tokenizer, chat template and end tokens.
///
/// Loaded once and shared across threads (e.g. in an `Arc`); it is never mutated, each
/// [`Generation`] works on its own clone of the weights' handle.
pub struct ChatModel {
    weights: ModelWeights,
    tokenizer: Arc<Tokenizer>,
    /// The same tokenizer with special tokens read as text: for message content, so no one can write a
    /// control token (`<|im_start|>`) into the prompt.
    text_tokenizer: Tokenizer,
    templates: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
    end_ids: Arc<[u32]>,
    context_length: usize,
    device: Device,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("context_length", &self.context_length)
            .field("end_ids", &self.end_ids)
            .finish_non_exhaustive()
    }
}

impl ChatModel {
    /// Loads the GGUF at `path` (weights, tokenizer, chat template, eos token(s), context
    /// length from metadata `llama.context_length`).
    ///
    /// The context length is capped at candle's `quantized_llama::MAX_SEQ_LEN` (4096): the
    /// rotary tables of candle 0.11 are precomputed for that many positions only.
    pub fn load(path: &Path) -> Result<ChatModel, ChatError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// Like [`ChatModel::load`], with explicit [`LoadOptions`].
    pub fn load_with(path: &Path, options: LoadOptions) -> Result<ChatModel, ChatError> {
        let bytes = std::fs::read(path).map_err(|e| ChatError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_reader(&mut std::io::Cursor::new(bytes), path, options)
    }

    /// The model from the bytes of a GGUF file (already read and checked against its digest); `label`
    /// names the file in errors.
    pub fn from_gguf_bytes(bytes: Vec<u8>, label: &Path) -> Result<ChatModel, ChatError> {
        Self::from_reader(
            &mut std::io::Cursor::new(bytes),
            label,
            LoadOptions::default(),
        )
    }

    fn from_reader<R: std::io::Read + std::io::Seek>(
        file: &mut R,
        path: &Path,
        options: LoadOptions,
    ) -> Result<ChatModel, ChatError> {
        let load_err = |message: String| ChatError::Load {
            path: path.to_path_buf(),
            message,
        };
        let content = gguf_file::Content::read(file).map_err(|e| load_err(e.to_string()))?;
        let meta = Metadata::from_content(&content).map_err(load_err)?;
        let mut tokenizer = Tokenizer::from_gguf(&content)
            .map_err(|e| load_err(format!("tokenizer from GGUF metadata: {e}")))?;
        fix_pre_tokenizer(&mut tokenizer, meta.pre_tokenizer.as_deref());
        let templates = template_env(&meta.chat_template).map_err(load_err)?;
        let end_ids = end_token_ids(&tokenizer, meta.eos_id);
        let mut text_tokenizer = tokenizer.clone();
        text_tokenizer.set_encode_special_tokens(true);
        let device = Device::Cpu;
        let weights =
            load_weights(content, file, &device, options).map_err(|e| load_err(e.to_string()))?;
        Ok(ChatModel {
            weights,
            bos_token: token_text(&tokenizer, meta.bos_id),
            eos_token: token_text(&tokenizer, meta.eos_id),
            tokenizer: Arc::new(tokenizer),
            text_tokenizer,
            templates,
            end_ids: end_ids.into(),
            context_length: meta.context_length.min(MAX_SEQ_LEN),
            device,
        })
    }

    /// Context length in tokens (prompt plus completion).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Tokens of `text` with the model's tokenizer (no special tokens added).
    pub fn count_tokens(&self, text: &str) -> Result<usize, ChatError> {
        Ok(self.encode(text)?.len())
    }

    /// Decodes token ids to text (special tokens skipped), as one piece.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ChatError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| ChatError::Tokenizer(e.to_string()))
    }

    /// Renders the chat template over `messages` with the generation prompt; returns the
    /// prompt text.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ChatError> {
        let template = self
            .templates
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::Template(format!("{e:#}")))?;
        let messages: Vec<minijinja::Value> = messages.iter().map(message_value).collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template
            .render(ctx)
            .map_err(|e| ChatError::Template(format!("{e:#}")))
    }

    /// Prepares one generation: renders, tokenizes, and clones the weights' handle so the
    /// generation has its own KV cache. No forward pass yet.
    ///
    /// Errors with [`ChatError::PromptTooLong`] if the prompt plus 1 token does not fit the
    /// context length, and with [`ChatError::InvalidSampling`] for invalid parameters.
    pub fn start(
        &self,
        messages: &[ChatMessage],
        sampling: Sampling,
    ) -> Result<Generation, ChatError> {
        let sampler = logits_processor(&sampling)?;
        let prompt_ids = self.prompt_ids(messages)?;
        self.check_fits(prompt_ids.len())?;
        // Cheap: every weight in `ModelWeights` is a `QMatMul` (whose quantized variant is
        // `QMatMul::QTensor(Arc<QTensor>)`), an `RmsNorm`/`Embedding` holding a `Tensor`, or
        // the rotary tables (`Tensor`), and `candle_core::Tensor` is `Arc<Tensor_>`. Cloning
        // therefore only bumps reference counts; the clone starts with `kv_cache: None` in
        // every layer because `self.weights` is never run.
        let weights = self.weights.clone();
        Ok(Generation {
            weights,
            tokenizer: Arc::clone(&self.tokenizer),
            end_ids: Arc::clone(&self.end_ids),
            device: self.device.clone(),
            prompt_ids,
            prefilled: 0,
            prefill_chunk: PREFILL_CHUNK,
            logits: None,
            generated: Vec::new(),
            sampler,
            max_tokens: sampling.max_tokens,
            context_length: self.context_length,
            detok: Detokenizer::default(),
            stops: StopFilter::new(sampling.stop),
            finished: false,
        })
    }

    /// The prompt's tokens: the chat template rendered over `messages`, its own text tokenized with its
    /// control tokens, each message's content tokenized as text (a `<|im_start|>` a user writes stays the
    /// characters it is made of). The template is rendered with a placeholder for each content, and the
    /// content tokenized where the placeholder landed; a template that copies a content twice gets it
    /// twice, one that leaves it out gets none.
    pub fn prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ChatError> {
        let placeholders: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage::new(m.role.clone(), format!("{OPEN}{i}{CLOSE}")))
            .collect();
        let rendered = self.render(&placeholders)?;
        let broken = || ChatError::Template("the template altered a message placeholder".into());
        let mut ids = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(at) = rest.find(OPEN) {
            ids.extend(self.encode(&rest[..at])?);
            let after = &rest[at + OPEN.len_utf8()..];
            let end = after.find(CLOSE).ok_or_else(broken)?;
            let index: usize = after[..end].parse().map_err(|_| broken())?;
            let content = &messages.get(index).ok_or_else(broken)?.content;
            ids.extend(self.encode_text(content)?);
            rest = &after[end + CLOSE.len_utf8()..];
        }
        ids.extend(self.encode(rest)?);
        Ok(ids)
    }

    /// Tokenizes template text without adding special tokens (the special tokens it writes, such as
    /// `<|im_start|>`, are recognised).
    fn encode(&self, text: &str) -> Result<Vec<u32>, ChatError> {
        ids(&self.tokenizer, text)
    }

    /// Tokenizes what someone else wrote: special tokens in it are text.
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, ChatError> {
        ids(&self.text_tokenizer, text)
    }

    /// Errors unless `prompt_tokens` plus one completion token fits the context.
    fn check_fits(&self, prompt_tokens: usize) -> Result<(), ChatError> {
        if prompt_tokens == 0 {
            return Err(ChatError::Tokenizer("the rendered prompt is empty".into()));
        }
        if prompt_tokens + 1 > self.context_length {
            return Err(ChatError::PromptTooLong {
                prompt_tokens,
                context_length: self.context_length,
            });
        }
        Ok(())
    }
}

/// `text`'s token ids by `tokenizer`, without added special tokens.
fn ids(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, ChatError> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| ChatError::Tokenizer(e.to_string()))?;
    Ok(encoding.get_ids().to_vec())
}

/// Quantized types whose CPU matmul is scalar on x86_64 in candle 0.11.
const SLOW_X86_TYPES: [GgmlDType; 4] = [
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_1,
];

/// Builds the model weights, first requantizing slow weight types to Q8_0 if asked to.
fn load_weights<R: std::io::Read + std::io::Seek>(
    content: gguf_file::Content,
    file: &mut R,
    device: &Device,
    options: LoadOptions,
) -> candle_core::Result<ModelWeights> {
    let slow = content
        .tensor_infos
        .values()
        .any(|t| SLOW_X86_TYPES.contains(&t.ggml_dtype));
    if !(options.requantize_slow_types && slow) {
        return ModelWeights::from_gguf(content, file, device);
    }
    let mut gguf = requantized_gguf(&content, file, device)?;
    let content = gguf_file::Content::read(&mut gguf)?;
    ModelWeights::from_gguf(content, &mut gguf, device)
}

/// An in-memory copy of the GGUF with every tensor of a [`SLOW_X86_TYPES`] type converted
/// to Q8_0 (`quantized_llama` only loads from a GGUF reader, so this is the way in).
fn requantized_gguf<R: std::io::Read + std::io::Seek>(
    content: &gguf_file::Content,
    file: &mut R,
    device: &Device,
) -> candle_core::Result<std::io::Cursor<Vec<u8>>> {
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let tensor = content.tensor(file, name, device)?;
        let tensor = if SLOW_X86_TYPES.contains(&tensor.dtype()) {
            QTensor::quantize(&tensor.dequantize(device)?, GgmlDType::Q8_0)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut gguf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut gguf, &metadata, &tensor_refs)?;
    gguf.set_position(0);
    Ok(gguf)
}

/// The GGUF metadata the engine needs besides weights and tokenizer.
struct Metadata {
    chat_template: String,
    context_length: usize,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    /// `tokenizer.ggml.pre`, the llama.cpp pre-tokenizer name.
    pre_tokenizer: Option<String>,
}

impl Metadata {
    /// Reads the chat template, context length and bos/eos ids.
    fn from_content(content: &gguf_file::Content) -> Result<Self, String> {
        let get = |key: &str| content.metadata.get(key);
        let chat_template = get("tokenizer.chat_template")
            .ok_or("missing metadata `tokenizer.chat_template`")?
            .to_string()
            .map_err(|e| format!("`tokenizer.chat_template`: {e}"))?
            .clone();
        let context_length = get("llama.context_length")
            .and_then(value_to_u64)
            .ok_or("missing or non-integer metadata `llama.context_length`")?;
        Ok(Self {
            chat_template,
            context_length: usize::try_from(context_length).map_err(|e| e.to_string())?,
            bos_id: get("tokenizer.ggml.bos_token_id").and_then(value_to_u32),
            eos_id: get("tokenizer.ggml.eos_token_id").and_then(value_to_u32),
            pre_tokenizer: get("tokenizer.ggml.pre")
                .and_then(|v| v.to_string().ok())
                .cloned(),
        })
    }
}

/// Pre-tokenizer names for which candle's `from_gguf` builds a dedicated pipeline.
const CANDLE_KNOWN_PRE_TOKENIZERS: [&str; 4] = ["qwen2", "smaug-bpe", "lfm2", "llama3"];

/// Replaces the pre-tokenizer of candle's fallback GPT-2 pipeline, which uses
/// `ByteLevel::default()` and so adds a prefix space to every segment between special
/// tokens (`<|im_start|>assistant` becomes `<|im_start|>Ġassistant`). llama.cpp and the
/// Hugging Face tokenizers of these models do not add it; `smollm` also splits digits
/// individually (llama.cpp regex `\p{N}`, HF `Digits(individual_digits=true)`).
fn fix_pre_tokenizer(tokenizer: &mut Tokenizer, pre: Option<&str>) {
    use tokenizers::pre_tokenizers::{
        PreTokenizerWrapper, byte_level::ByteLevel, digits::Digits, sequence::Sequence,
    };
    if pre.is_some_and(|p| CANDLE_KNOWN_PRE_TOKENIZERS.contains(&p)) {
        return;
    }
    let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
    let pre_tokenizer = if pre == Some("smollm") {
        Sequence::new(vec![Digits::new(true).into(), byte_level]).into()
    } else {
        byte_level
    };
    tokenizer.with_pre_tokenizer(Some::<PreTokenizerWrapper>(pre_tokenizer));
}

/// An unsigned integer metadata value of any width, if it is one.
fn value_to_u64(value: &gguf_file::Value) -> Option<u64> {
    use gguf_file::Value as V;
    match value {
        V::U8(v) => Some(u64::from(*v)),
        V::U16(v) => Some(u64::from(*v)),
        V::U32(v) => Some(u64::from(*v)),
        V::U64(v) => Some(*v),
        V::I8(v) => u64::try_from(*v).ok(),
        V::I16(v) => u64::try_from(*v).ok(),
        V::I32(v) => u64::try_from(*v).ok(),
        V::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// A token id metadata value, if it is one.
fn value_to_u32(value: &gguf_file::Value) -> Option<u32> {
    value_to_u64(value).and_then(|v| u32::try_from(v).ok())
}

/// The text of token `id` in the vocabulary, or an empty string.
fn token_text(tokenizer: &Tokenizer, id: Option<u32>) -> String {
    id.and_then(|id| tokenizer.id_to_token(id))
        .unwrap_or_default()
}

/// The GGUF EOS id plus the end-of-turn tokens present in the vocabulary.
fn end_token_ids(tokenizer: &Tokenizer, eos_id: Option<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = eos_id.into_iter().collect();
    for token in END_OF_TURN_TOKENS {
        if let Some(id) = tokenizer.token_to_id(token)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// A minijinja environment holding the compiled chat template, configured like Hugging
/// Face's `apply_chat_template` (trim_blocks, lstrip_blocks, `raise_exception`).
fn template_env(source: &str) -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| format!("chat template syntax: {e}"))?;
    env.set_syntax(syntax);
    env.add_function("raise_exception", raise_exception);
    env.add_template_owned(TEMPLATE_NAME, source.to_owned())
        .map_err(|e| format!("chat template: {e:#}"))?;
    Ok(env)
}

/// A message as a template value: a map with `role` and `content`.
fn message_value(message: &ChatMessage) -> minijinja::Value {
    let map = std::collections::BTreeMap::from([
        ("role", minijinja::Value::from(message.role.as_str())),
        ("content", minijinja::Value::from(message.content.as_str())),
    ]);
    minijinja::Value::from(map)
}

/// The `raise_exception(msg)` helper used by Hugging Face chat templates.
fn raise_exception(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        message,
    ))
}

/// Validates `sampling` and builds the matching candle logits processor.
fn logits_processor(sampling: &Sampling) -> Result<LogitsProcessor, ChatError> {
    let invalid = |msg: String| Err(ChatError::InvalidSampling(msg));
    let t = sampling.temperature;
    if !t.is_finite() || t < 0.0 {
        return invalid(format!("temperature must be >= 0, got {t}"));
    }
    if let Some(p) = sampling.top_p
        && !(0.0..=1.0).contains(&p)
    {
        return invalid(format!("top_p must be in [0, 1], got {p}"));
    }
    if sampling.stop.len() > MAX_STOP_SEQUENCES {
        return invalid(format!(
            "at most {MAX_STOP_SEQUENCES} stop sequences, got {}",
            sampling.stop.len()
        ));
    }
    let kind = match sampling.top_p {
        _ if t < GREEDY_EPSILON => SamplerKind::ArgMax,
        Some(p) if p < GREEDY_EPSILON => SamplerKind::ArgMax,
        Some(p) if p < 1.0 => SamplerKind::TopP { p, temperature: t },
        _ => SamplerKind::All { temperature: t },
    };
    Ok(LogitsProcessor::from_sampling(sampling.seed, kind))
}

/// One generation in progress: owns its KV cache (inside its clone of the weights), the
/// sampler state, and the incremental detokenizer. `Send`, so it can move between threads.
pub struct Generation {
    weights: ModelWeights,
    tokenizer: Arc<Tokenizer>,
    end_ids: Arc<[u32]>,
    device: Device,
    prompt_ids: Vec<u32>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    prefill_chunk: usize,
    /// Logits of the last position, waiting to be sampled.
    logits: Option<Tensor>,
    generated: Vec<u32>,
    sampler: LogitsProcessor,
    max_tokens: usize,
    context_length: usize,
    detok: Detokenizer,
    stops: StopFilter,
    finished: bool,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("prompt_tokens", &self.prompt_ids.len())
            .field("prefilled", &self.prefilled)
            .field("completion_tokens", &self.generated.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Generation {
    /// Token count of the rendered prompt.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_ids.len()
    }

    /// Tokens sampled so far (an EOS token is not counted; a token that completes a stop
    /// sequence is).
    pub fn completion_tokens(&self) -> usize {
        self.generated.len()
    }

    /// Ids of the tokens sampled so far (without the EOS token).
    pub fn generated_ids(&self) -> &[u32] {
        &self.generated
    }

    /// Whether the whole prompt is in the KV cache (the next step decodes).
    pub fn is_prefilled(&self) -> bool {
        self.prefilled >= self.prompt_ids.len()
    }

    /// Whether the generation has finished.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sets how many prompt tokens one prefill step processes (at least 1; the default is
    /// [`PREFILL_CHUNK`]; `usize::MAX` prefills in one pass). Only meaningful before the
    /// first step.
    pub fn set_prefill_chunk(&mut self, chunk: usize) {
        self.prefill_chunk = chunk.max(1);
    }

    /// One unit of work: while the prompt is not yet processed, one prefill chunk of at most
    /// [`PREFILL_CHUNK`] prompt tokens; afterwards one decode step (one token).
    pub fn step(&mut self) -> Result<Step, ChatError> {
        if self.finished {
            return Err(ChatError::AlreadyFinished);
        }
        if self.max_tokens == 0 {
            return Ok(self.finish(Finish::Length, String::new()));
        }
        if self.prefilled < self.prompt_ids.len() {
            self.prefill()?;
            return Ok(Step::Prefilled);
        }
        self.decode()
    }

    /// Runs the next prompt chunk through the model at its position in the sequence.
    fn prefill(&mut self) -> Result<(), ChatError> {
        let start = self.prefilled;
        let end = start
            .saturating_add(self.prefill_chunk)
            .min(self.prompt_ids.len());
        let chunk = self.prompt_ids.get(start..end).unwrap_or_default();
        let logits = forward(&mut self.weights, &self.device, chunk, start)?;
        self.prefilled = end;
        if end == self.prompt_ids.len() {
            self.logits = Some(logits);
        }
        Ok(())
    }

    /// Samples one token and turns it into text, finishing on EOS, a stop sequence, or a
    /// length limit.
    fn decode(&mut self) -> Result<Step, ChatError> {
        let logits = match self.logits.take() {
            Some(logits) => logits,
            None => self.forward_last_token()?,
        };
        let token = self.sampler.sample(&logits)?;
        if self.end_ids.contains(&token) {
            return self.finish_flushing(Finish::Stop, String::new());
        }
        self.generated.push(token);
        let text = self.detok.next(&self.tokenizer, &self.generated)?;
        match self.stops.push(&text) {
            Filtered::Stopped(text) => Ok(self.finish(Finish::Stop, text)),
            Filtered::Emit(text) if self.at_length_limit() => {
                self.finish_flushing(Finish::Length, text)
            }
            Filtered::Emit(text) => Ok(Step::Text(text)),
        }
    }

    /// Feeds the last sampled token at its position and returns the next logits.
    fn forward_last_token(&mut self) -> Result<Tensor, ChatError> {
        let last = self
            .generated
            .last()
            .copied()
            .ok_or_else(|| ChatError::Inference("no token to feed".into()))?;
        let position = self.prompt_ids.len() + self.generated.len() - 1;
        forward(&mut self.weights, &self.device, &[last], position)
    }

    /// Whether `max_tokens` is reached or the context is full.
    fn at_length_limit(&self) -> bool {
        let completion = self.generated.len();
        completion >= self.max_tokens || self.prompt_ids.len() + completion >= self.context_length
    }

    /// Finishes after flushing held-back text; `text` is already-filtered text to prepend.
    /// The flushed text may still complete a stop sequence, which then wins.
    fn finish_flushing(&mut self, reason: Finish, mut text: String) -> Result<Step, ChatError> {
        let tail = self.detok.flush(&self.tokenizer, &self.generated)?;
        match self.stops.push(&tail) {
            Filtered::Stopped(rest) => {
                text.push_str(&rest);
                Ok(self.finish(Finish::Stop, text))
            }
            Filtered::Emit(rest) => {
                text.push_str(&rest);
                text.push_str(&self.stops.take_pending());
                Ok(self.finish(reason, text))
            }
        }
    }

    /// Marks the generation finished and releases its KV cache.
    fn finish(&mut self, reason: Finish, text: String) -> Step {
        self.finished = true;
        self.logits = None;
        self.weights.clear_kv_cache();
        Step::Finished { text, reason }
    }
}

/// Runs `tokens` (at positions `index_pos..`) through `weights`, appending to its KV cache,
/// and returns the logits of the last token.
///
/// Chunks with `index_pos > 0` are correct in candle 0.11: `quantized_llama` builds a
/// rectangular `(seq_len, index_pos + seq_len)` causal mask and narrows the rotary tables
/// at `index_pos`.
fn forward(
    weights: &mut ModelWeights,
    device: &Device,
    tokens: &[u32],
    index_pos: usize,
) -> Result<Tensor, ChatError> {
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    let logits = weights.forward(&input, index_pos)?;
    Ok(logits.squeeze(0)?)
}

/// Incremental detokenizer: emits the text of newly generated tokens so that the
/// concatenation of all emitted pieces equals decoding all tokens at once.
///
/// Like Hugging Face's text-generation-inference, it decodes a short window
/// `ids[prefix_offset..]` and emits what extends past the already emitted
/// `ids[prefix_offset..read_offset]`, holding back while the text ends with U+FFFD (an
/// incomplete UTF-8 sequence split across tokens).
#[derive(Debug, Default)]
struct Detokenizer {
    prefix_offset: usize,
    read_offset: usize,
}

impl Detokenizer {
    /// New text after the last id of `ids` was appended (possibly empty).
    fn next(&mut self, tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, ChatError> {
        let (prefix, full) = self.window(tokenizer, ids)?;
        if full.len() <= prefix.len() || full.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let Some(new_text) = full.strip_prefix(prefix.as_str()) else {
            return Ok(String::new());
        };
        let new_text = new_text.to_owned();
        self.prefix_offset = self.read_offset;
        self.read_offset = ids.len();
        Ok(new_text)
    }

    /// Everything not yet emitted, even an incomplete UTF-8 tail (decoded lossily).
    fn flush(&mut self, tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, ChatError> {
        let (prefix, full) = self.window(tokenizer, ids)?;
        self.prefix_offset = ids.len();
        self.read_offset = ids.len();
        let rest = full.strip_prefix(prefix.as_str()).unwrap_or_default();
        Ok(rest.to_owned())
    }

    /// Decodes `ids[prefix_offset..read_offset]` and `ids[prefix_offset..]`.
    fn window(&self, tokenizer: &Tokenizer, ids: &[u32]) -> Result<(String, String), ChatError> {
        let decode = |slice: Option<&[u32]>| {
            tokenizer
                .decode(slice.unwrap_or_default(), true)
                .map_err(|e| ChatError::Tokenizer(e.to_string()))
        };
        let prefix = decode(ids.get(self.prefix_offset..self.read_offset))?;
        let full = decode(ids.get(self.prefix_offset..))?;
        Ok((prefix, full))
    }
}

/// Outcome of feeding text through the [`StopFilter`].
#[derive(Debug, PartialEq, Eq)]
enum Filtered {
    /// Text that can be emitted (the rest is held back).
    Emit(String),
    /// A stop sequence matched; the text before it that was not emitted yet.
    Stopped(String),
}

/// Holds back text that might be the start of a stop sequence until disambiguated.
#[derive(Debug, Default)]
struct StopFilter {
    stops: Vec<String>,
    pending: String,
}

impl StopFilter {
    /// A filter for the non-empty sequences of `stops`.
    fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        Self {
            stops,
            pending: String::new(),
        }
    }

    /// Appends `text`; returns what can be emitted now, or the text before a match.
    fn push(&mut self, text: &str) -> Filtered {
        self.pending.push_str(text);
        if let Some(at) = self.earliest_match() {
            self.pending.truncate(at);
            return Filtered::Stopped(self.take_pending());
        }
        let keep_from = self.holdback_start();
        let rest = self.pending.split_off(keep_from);
        Filtered::Emit(std::mem::replace(&mut self.pending, rest))
    }

    /// Returns and clears the held-back text.
    fn take_pending(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Byte offset of the earliest full match of any stop sequence in the pending text.
    fn earliest_match(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
    }

    /// Start of the longest suffix of the pending text that is a prefix of a stop sequence
    /// (the pending length when there is none).
    fn holdback_start(&self) -> usize {
        let text = self.pending.as_str();
        text.char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let suffix = text.get(i..).unwrap_or_default();
                self.stops.iter().any(|s| s.starts_with(suffix))
            })
            .unwrap_or(text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(stops: &[&str]) -> StopFilter {
        StopFilter::new(stops.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn stop_filter_passes_text_without_stops() {
        let mut f = filter(&[]);
        assert_eq!(f.push("hello"), Filtered::Emit("hello".into()));
    }

    #[test]
    fn stop_filter_holds_back_possible_prefix() {
        let mut f = filter(&["END"]);
        assert_eq!(f.push("abc E"), Filtered::Emit("abc ".into()));
        assert_eq!(f.push("N"), Filtered::Emit(String::new()));
        assert_eq!(f.push("x"), Filtered::Emit("ENx".into()));
    }

    #[test]
    fn stop_filter_matches_across_pushes() {
        let mut f = filter(&["END", "xyz"]);
        assert_eq!(f.push("abEN"), Filtered::Emit("ab".into()));
        assert_eq!(f.push("D tail"), Filtered::Stopped(String::new()));
    }

    #[test]
    fn stop_filter_earliest_match_wins() {
        let mut f = filter(&["cd", "b"]);
        assert_eq!(f.push("abcd"), Filtered::Stopped("a".into()));
    }

    #[test]
    fn stop_filter_handles_multibyte_text() {
        let mut f = filter(&["é!"]);
        assert_eq!(f.push("caféé"), Filtered::Emit("café".into()));
        assert_eq!(f.push("!"), Filtered::Stopped(String::new()));
    }

    #[test]
    fn stop_filter_overlapping_prefix() {
        let mut f = filter(&["aab"]);
        assert_eq!(f.push("aa"), Filtered::Emit(String::new()));
        assert_eq!(f.push("a"), Filtered::Emit("a".into()));
        assert_eq!(f.push("b"), Filtered::Stopped(String::new()));
    }

    #[test]
    fn sampling_validation() {
        let bad_temp = Sampling {
            temperature: -1.0,
            ..Sampling::default()
        };
        assert!(matches!(
            logits_processor(&bad_temp),
            Err(ChatError::InvalidSampling(_))
        ));
        let too_many_stops = Sampling {
            stop: vec!["a".into(); 5],
            ..Sampling::default()
        };
        assert!(matches!(
            logits_processor(&too_many_stops),
            Err(ChatError::InvalidSampling(_))
        ));
    }

    #[test]
    fn model_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<ChatModel>();
        send::<Generation>();
    }
}
