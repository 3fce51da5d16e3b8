//! `sluice init`: a starter config that works with no API keys (local models in this process, a frontier
//! provider for the complex tier when its key is in the environment), a pepper file, and an operator token
//! printed once and stored only as its SHA-256.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::auth::keys::random_base62;

/// What `init` made; the token is shown to the operator once and never written anywhere.
pub struct Initialized {
    pub operator_token: String,
}

impl std::fmt::Debug for Initialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initialized { .. }")
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Which provider serves the complex tier in the starter config: the first whose API key is in the
/// environment when `init` runs, else the local model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontier {
    OpenAi,
    Anthropic,
    Local,
}

impl Frontier {
    /// From the environment `init` runs in.
    pub fn from_env(env: &crate::config::Env) -> Frontier {
        let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
        if set("OPENAI_API_KEY") {
            Frontier::OpenAi
        } else if set("ANTHROPIC_API_KEY") {
            Frontier::Anthropic
        } else {
            Frontier::Local
        }
    }

    fn section(self) -> &'static str {
        match self {
            Frontier::OpenAi => {
                r#"
# The complex tier goes to OpenAI (OPENAI_API_KEY was set when this file was written).
[[providers]]
name = "openai"
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[[deployments]]
name = "gpt-4o"
provider = "openai"
model = "gpt-4o"
tier = "complex"
region = "us"
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
"#
            }
            Frontier::Anthropic => {
                r#"
# The complex tier goes to Anthropic (ANTHROPIC_API_KEY was set when this file was written).
[[providers]]
name = "anthropic"
kind = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"

[[deployments]]
name = "claude-sonnet"
provider = "anthropic"
model = "claude-sonnet-4-5"
tier = "complex"
region = "us"
price = { input_per_mtok = 3.00, output_per_mtok = 15.00 }
"#
            }
            Frontier::Local => {
                r#"
# No OPENAI_API_KEY or ANTHROPIC_API_KEY was set when this file was written, so the complex tier is the
# local model too (its deployment name says so). Add a frontier provider here for hard prompts.
[[deployments]]
name = "local-chat-for-complex"
provider = "local"
model = "smollm2-135m-instruct"
tier = "complex"
region = "local"
max_output_tokens = 512
"#
            }
        }
    }
}

/// The starter configuration text.
pub fn starter_config(
    token_sha256_hex: &str,
    pepper_file: &str,
    audit_key_file: &str,
    master_key_file: &str,
    db_url: &str,
    frontier: Frontier,
) -> String {
    let frontier = frontier.section();
    format!(
        r#"# Sluice configuration (format version 1). Reference: docs/configuration.md
version = 1

[server]
listen = "127.0.0.1:8080"

[storage]
url = "{db_url}"

[admin]
# SHA-256 of the operator token `sluice init` printed once. Use token_env or token_file instead if you prefer.
token_sha256 = "{token_sha256_hex}"

[auth]
# Secret mixed into every API-key hash; keep it outside the database and back it up.
pepper_file = "{pepper_file}"

[audit]
# Ed25519 key that signs audit checkpoints. Its public half is served at /.well-known/sluice-audit-keys.
signing_key_file = "{audit_key_file}"
# Master key of the encryption of stored prompts and responses (per-tenant keys derive from it).
master_key_file = "{master_key_file}"
# Days prompts and responses are kept; tenants can be set to 0 (keep none).
retention_days = 365

# Models run in this process: no server, no API key, and nothing leaves the machine. Their files are pinned
# by SHA-256; `sluice serve` fetches missing ones on start (on_missing = "fetch"), `sluice models pull`
# ahead of time. A file with another digest is never loaded.
[[providers]]
name = "local"
kind = "local"
models_dir = "models"
on_missing = "fetch"

[[deployments]]
name = "local-chat"
provider = "local"
model = "smollm2-135m-instruct"
tier = "simple"
region = "local"
max_output_tokens = 512

[[deployments]]
name = "local-embed"
provider = "local"
model = "all-minilm-l6-v2"
kind = "embeddings"
tier = "simple"
region = "local"
{frontier}
# A logical model: tried in order, the next one on connect errors, 5xx and timeouts. `model: "auto"`
# picks a deployment by the request's complexity tier instead.
[[models]]
name = "default"
deployments = ["local-chat"]
"#
    )
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; pass --force to overwrite it")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn write_private(path: &Path, text: &str) -> Result<(), InitError> {
    let err = |source| InitError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, text).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// `sluice init` (and `sluice serve` without the default config): writes the starter files and prints the
/// operator token once.
pub fn run(config: &Path, force: bool) -> anyhow::Result<String> {
    let env: crate::config::Env = std::env::vars().collect();
    let token = init(config, force, Frontier::from_env(&env))?.operator_token;
    println!("Wrote {} and its pepper file.", config.display());
    println!("Operator token (shown once, stored only as a hash):\n\n    {token}\n");
    println!("export SLUICE_ADMIN_TOKEN={token}");
    Ok(token)
}

/// Writes `config_path` and a pepper file beside it.
pub fn init(config_path: &Path, force: bool, frontier: Frontier) -> Result<Initialized, InitError> {
    if config_path.exists() && !force {
        return Err(InitError::Exists(config_path.display().to_string()));
    }
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = config_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sluice");
    let pepper_name = format!("{stem}.pepper");
    let pepper_path = dir.join(&pepper_name);
    if !pepper_path.exists() || force {
        write_private(&pepper_path, &random_base62(48))?;
    }
    let audit_key_name = format!("{stem}.audit-key");
    let audit_key_path = dir.join(&audit_key_name);
    if !audit_key_path.exists() || force {
        write_private(&audit_key_path, &crate::audit::new_key_text())?;
    }
    let master_key_name = format!("{stem}.content-key");
    let master_key_path = dir.join(&master_key_name);
    if !master_key_path.exists() || force {
        write_private(&master_key_path, &crate::audit::new_key_text())?;
    }
    let token = format!("sluice_op_{}", random_base62(40));
    let digest = hex(&Sha256::digest(token.as_bytes()));
    let db = format!("sqlite://{stem}.db");
    write_private(
        config_path,
        &starter_config(
            &digest,
            &pepper_name,
            &audit_key_name,
            &master_key_name,
            &db,
            frontier,
        ),
    )?;
    Ok(Initialized {
        operator_token: token,
    })
}
