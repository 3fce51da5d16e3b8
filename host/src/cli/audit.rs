//! `sluice audit`: `export` saves a tenant's audit log from a running gateway; `verify` checks an export
//! offline and exits with 1 unless everything verifies.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use sluice_audit::offline::{Check, CheckError, check_file, key_text};

// No doc comments on the clap types: clap would turn them into help text.
#[derive(Subcommand)]
pub enum AuditAction {
    /// Save a tenant's audit log (entries, checkpoints, public key) to a file.
    Export {
        #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// A tenant key with the admin or owner role.
        #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
        api_key: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an export offline: exit 0 only when everything verifies.
    Verify {
        file: PathBuf,
        /// An older signed checkpoint (a file holding the note) the log must extend.
        #[arg(long)]
        since: Option<PathBuf>,
        /// The gateway's verifier key (text or a file holding it); without it the export's own key is used.
        #[arg(long)]
        public_key: Option<String>,
        /// A witness's cosigner key (text or a file holding it); repeat for several witnesses.
        #[arg(long = "witness-key")]
        witness_keys: Vec<String>,
        /// How many of the witness keys must have cosigned the checkpoint (default: 1 when any is given).
        #[arg(long)]
        min_witnesses: Option<usize>,
    },
}

/// Runs one `sluice audit` command.
pub async fn run(action: AuditAction) -> anyhow::Result<()> {
    match action {
        AuditAction::Export {
            gateway,
            api_key,
            out,
        } => export(&gateway, &api_key, &out).await,
        AuditAction::Verify {
            file,
            since,
            public_key,
            witness_keys,
            min_witnesses,
        } => {
            let witness_keys = witness_keys
                .into_iter()
                .map(key_text)
                .collect::<Result<Vec<_>, _>>()?;
            verify_file(
                &file,
                since.as_deref(),
                public_key,
                witness_keys,
                min_witnesses,
            )
        }
    }
}

/// `sluice audit export`: fetches the key's tenant's export and writes it to `out`.
async fn export(gateway: &str, api_key: &str, out: &Path) -> anyhow::Result<()> {
    let export = super::client::call(
        gateway,
        api_key,
        http::Method::GET,
        "/v1/audit/export",
        None,
    )
    .await?;
    std::fs::write(out, serde_json::to_vec_pretty(&export)?)
        .with_context(|| format!("writing {}", out.display()))?;
    let count = export["entries"].as_array().map_or(0, Vec::len);
    println!(
        "saved {count} entries and the signed checkpoint to {}",
        out.display()
    );
    Ok(())
}

/// `sluice audit verify`: prints what verifies, or `FAILED: ...` and exits with 1 (the same check as
/// `sluice-verify`).
fn verify_file(
    file: &Path,
    since: Option<&Path>,
    public_key: Option<String>,
    witness_keys: Vec<String>,
    min_witnesses: Option<usize>,
) -> anyhow::Result<()> {
    let since = since
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let check = Check {
        since,
        public_key: public_key.map(key_text).transpose()?,
        witness_keys,
        min_witnesses,
    };
    match check_file(file, &check) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        Err(CheckError::Input(e)) => Err(anyhow::anyhow!(e)),
        Err(e @ CheckError::Failed(_)) => {
            println!("{e}");
            std::process::exit(1);
        }
    }
}
