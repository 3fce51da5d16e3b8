//! `sluice route train` and `sluice route eval`: a complexity classifier fitted and measured on a labelled
//! corpus (see `policy::learn`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::inference::{LocalEmbedder, LocalModels, QueueLimits};
use crate::policy::{builtin, learn, offline};

/// The embedding model the built-in classifier's head reads.
const EMBEDDER: &str = "all-minilm-l6-v2";

#[derive(Subcommand)]
pub enum RouteAction {
    /// Fit the classifier's heads on a corpus's `train` rows and write `head.bin` (embedding and structural
    /// features) and `structural.bin` (the structural features alone, the fallback) for `include_bytes!`.
    Train {
        /// The labelled corpus (JSON lines: id, tier, split, messages, optional max_tokens and tools).
        data: PathBuf,
        /// Where the two head files go.
        #[arg(long)]
        out: PathBuf,
        /// The models folder (`sluice models pull`): the embedder.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// The split to train on.
        #[arg(long, default_value = "train")]
        split: String,
        /// L2 penalty on the standardised weights.
        #[arg(long, default_value_t = learn::FitOptions::default().l2)]
        l2: f64,
        /// Gradient steps.
        #[arg(long, default_value_t = learn::FitOptions::default().steps)]
        steps: usize,
    },
    /// Run a classifier and a router over a labelled corpus and print the agreement per tier, the confusion
    /// matrix, the share routed to each tier and the cost against everything on the complex tier, at the
    /// classifier's own tiers and re-tiered by score at other thresholds.
    Eval {
        /// The labelled corpus (JSON lines: id, tier, optional split, messages, max_tokens, tools).
        data: PathBuf,
        /// Only the rows of this split (e.g. `heldout`); default: every row.
        #[arg(long)]
        split: Option<String>,
        /// A classifier component (`.wasm`); default: the built-in one.
        #[arg(long)]
        classifier: Option<PathBuf>,
        /// A router component (`.wasm`); default: the built-in one.
        #[arg(long)]
        router: Option<PathBuf>,
        /// The deployments the router sees (JSON array, as for `sluice policy test`); default: one per tier
        /// at typical prices.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// The models folder (`sluice models pull`): the embedder, for a classifier that reads the
        /// embedding.
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn embedder(models: &Path) -> anyhow::Result<std::sync::Arc<LocalEmbedder>> {
    LocalModels::default()
        .embedder(models, EMBEDDER, QueueLimits::default())
        .map_err(|e| anyhow::anyhow!("{e} (run `sluice models pull`)"))
}

pub async fn run(action: RouteAction) -> anyhow::Result<()> {
    match action {
        RouteAction::Train {
            data,
            out,
            models,
            split,
            l2,
            steps,
        } => {
            let text = String::from_utf8(read(&data)?)?;
            let rows = learn::load(&text, Some(&split))
                .with_context(|| format!("reading {}", data.display()))?;
            let embedder = embedder(&models)?;
            let embeddings = learn::embed(&rows, &embedder).await?;
            let opts = learn::FitOptions {
                l2,
                steps,
                ..learn::FitOptions::default()
            };
            let trained = learn::train(&rows, &embeddings, opts);
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let head = learn::head_file(trained.dims, Some(embedder.digest), &trained.head);
            let fallback = learn::head_file(0, None, &trained.fallback);
            for (name, bytes) in [("head.bin", head), ("structural.bin", fallback)] {
                let path = out.join(name);
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!(
                "trained on the {} simple and complex rows of {} in split `{split}` ({} without a text \
                 question: structural head only), {} embedding dimensions of {EMBEDDER} sha256:{}; wrote {}",
                trained.fitted,
                trained.rows,
                trained.skipped,
                trained.dims,
                embedder.digest,
                out.display()
            );
            println!("structural weights:");
            let features = &trained.head.weights[trained.dims..];
            for (i, name) in sluice_features::NAMES.iter().enumerate() {
                println!(
                    "  {name:>12}: {:>8.3} with the embedding, {:>8.3} alone",
                    features[i], trained.fallback.weights[i]
                );
            }
            Ok(())
        }
        RouteAction::Eval {
            data,
            split,
            classifier,
            router,
            catalog,
            models,
        } => {
            let text = String::from_utf8(read(&data)?)?;
            let rows = learn::load(&text, split.as_deref())
                .with_context(|| format!("reading {}", data.display()))?;
            let classifier = classifier.as_deref().map(read).transpose()?;
            let router = router.as_deref().map(read).transpose()?;
            let catalog = match catalog {
                Some(p) => offline::catalog(&String::from_utf8(read(&p)?)?)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => learn::reference_catalog(),
            };
            let setup = learn::Setup {
                classifier: classifier.as_deref().unwrap_or(builtin::CLASSIFIER),
                router: router.as_deref().unwrap_or(builtin::ROUTER),
                catalog,
            };
            // The embedding only for a classifier that reads it; without the model files it runs without.
            let reads = crate::policy::wasm::Runtime::new(Default::default())?
                .load(setup.classifier)?
                .reads_embedding();
            let embeddings = if reads {
                match embedder(&models) {
                    Ok(e) => learn::embed(&rows, &e).await?,
                    Err(e) => {
                        println!("no embedding: {e}");
                        vec![None; rows.len()]
                    }
                }
            } else {
                vec![None; rows.len()]
            };
            let report = learn::evaluate(&rows, &embeddings, &setup, &learn::THRESHOLDS)?;
            println!(
                "{}{}",
                data.display(),
                split.map_or_else(String::new, |s| format!(", split {s}"))
            );
            print!("{report}");
            Ok(())
        }
    }
}
