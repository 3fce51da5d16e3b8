//! `sluice cache eval`: the cache's lookup path over the `fow-cache` pairs (see `cache::eval`).

use std::path::PathBuf;

use clap::Subcommand;

use crate::cache::eval;
use crate::inference::{LocalModels, QueueLimits};

#[derive(Subcommand)]
pub enum CacheAction {
    /// Store side `a` of each labelled pair, look up side `b`, and print the share served and the false
    /// hits by category, at each threshold with the lexical guard on and off.
    Eval {
        /// The models folder (`sluice models pull`): the embedder and the `fow-cache` data.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Also write each pair's similarity and guard verdict to this file, one JSON object a line.
        #[arg(long)]
        details: Option<PathBuf>,
    },
}

pub async fn run(action: CacheAction) -> anyhow::Result<()> {
    match action {
        CacheAction::Eval { models, details } => {
            let cases = eval::load(&models.join("fow-cache"))?;
            let embedder = LocalModels::default()
                .embedder(&models, "all-minilm-l6-v2", QueueLimits::default())
                .map_err(|e| anyhow::anyhow!("{e} (run `sluice models pull`)"))?;
            let report = eval::evaluate(cases, &embedder).await?;
            print!("{report}");
            if let Some(path) = details {
                let mut out = String::new();
                for d in &report.details {
                    out.push_str(&serde_json::to_string(d)?);
                    out.push('\n');
                }
                std::fs::write(&path, out)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            Ok(())
        }
    }
}
