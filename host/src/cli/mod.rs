//! The `sluice` command line: its clap arguments and the dispatch to each command group.
//!
//! - [`serve`]: `serve` (the gateway itself, with logging and signals) and `check`.
//! - [`init`]: `init`, the starter config, pepper and key files, and the operator token.
//! - [`tenant`]: `tenant` and `key`, operator commands against a running gateway.
//! - [`policy`]: `policy test` (offline) and a tenant's `policy push` / `list` / `activate` / `rollback`.
//! - [`audit`]: `audit export` and the offline `audit verify`.
//! - [`cache`]: `cache eval`, the response cache measured on labelled paraphrases and traps.
//! - [`route`]: `route train` and `route eval`, the complexity classifier fitted and measured on a labelled
//!   corpus.
//! - [`models`]: `models pull` and `models list`, the local models' files by digest.
//! - [`client`]: the HTTP client the remote commands (and the load bench) call a gateway with.
//!
//! `anyhow` is used here only: this is the application layer.

pub mod audit;
pub mod cache;
pub mod client;
pub mod init;
pub mod models;
pub mod policy;
pub mod route;
pub mod serve;
pub mod tenant;
pub mod witness;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Env;

// No doc comments on the clap types: clap would turn them into help text.
#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Multi-tenant, OpenAI-compatible LLM gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway. Without an existing config file at the default path, a starter config is created.
    Serve {
        #[arg(long, short, default_value = "sluice.toml")]
        config: PathBuf,
    },
    /// Write a starter config (local models, no API keys needed) and print the operator token once.
    Init {
        #[arg(long, short, default_value = "sluice.toml")]
        config: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Check a config file and exit.
    Check {
        #[arg(long, short, default_value = "sluice.toml")]
        config: PathBuf,
    },
    /// Manage tenants on a running gateway.
    Tenant {
        #[command(subcommand)]
        action: tenant::TenantAction,
        #[command(flatten)]
        remote: tenant::Remote,
    },
    /// Manage API keys on a running gateway.
    Key {
        #[command(subcommand)]
        action: tenant::KeyAction,
        #[command(flatten)]
        remote: tenant::Remote,
    },
    /// Export and verify tenant audit logs.
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Internal: the gateway's policy compiler process (a component on stdin, its artifact on stdout).
    #[command(name = "compile-policy", hide = true)]
    CompilePolicy {
        #[arg(long)]
        max_memory_bytes: usize,
        /// The compiler's own heap limit (RLIMIT_DATA), in bytes.
        #[arg(long)]
        max_compile_bytes: Option<u64>,
        /// The compiler's CPU-time limit (RLIMIT_CPU), in seconds.
        #[arg(long)]
        max_cpu_seconds: Option<u64>,
    },
    /// Test a policy offline; push, list, activate and roll back a tenant's policies.
    Policy {
        #[command(subcommand)]
        action: policy::PolicyAction,
    },
    /// Measure the response cache on labelled paraphrases and traps.
    Cache {
        #[command(subcommand)]
        action: cache::CacheAction,
    },
    /// Train and measure a complexity classifier on a labelled corpus.
    Route {
        #[command(subcommand)]
        action: route::RouteAction,
    },
    /// Fetch and list the local models' files, pinned by digest.
    Models {
        #[command(subcommand)]
        action: models::ModelsAction,
    },
    /// Run a witness that cosigns a gateway's audit checkpoints (C2SP tlog-witness).
    Witness {
        #[command(subcommand)]
        action: witness::WitnessAction,
    },
    /// Print what this binary is: its version, the commit it was built from, the policy contract versions
    /// it runs, and the SHA-256 of every model file it will load.
    Version,
}

/// Runs one parsed command. Commands that fail a check (`policy test`, `audit verify`) and
/// `compile-policy` end the process with their own exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: Env = std::env::vars().collect();
    match cli.command {
        Command::Init { config, force } => init::run(&config, force).map(drop),
        Command::Check { config } => serve::check(&config, &env),
        Command::Serve { config } => serve::serve(config, env).await,
        Command::Tenant { action, remote } => tenant::tenant(action, &remote).await,
        Command::Key { action, remote } => tenant::key(action, &remote).await,
        Command::Audit { action } => audit::run(action).await,
        Command::Policy { action } => policy::run(action).await,
        Command::Witness { action } => witness::run(action).await,
        Command::Models { action } => models::run(action).await,
        Command::Cache { action } => cache::run(action).await,
        Command::Route { action } => route::run(action).await,
        Command::Version => {
            print!("{}", version());
            Ok(())
        }
        // No logging, no config: compile and exit.
        Command::CompilePolicy {
            max_memory_bytes,
            max_compile_bytes,
            max_cpu_seconds,
        } => std::process::exit(crate::policy::compiler::run_child(
            max_memory_bytes,
            max_compile_bytes,
            max_cpu_seconds,
        )),
    }
}

/// `sluice version`'s text: facts a security team can check against a build.
pub fn version() -> String {
    use std::fmt::Write;
    let mut out = format!(
        "sluice {}\ncommit {}\npolicy contract sluice:policy@{}\n",
        env!("CARGO_PKG_VERSION"),
        env!("SLUICE_COMMIT"),
        crate::policy::wasm::CONTRACT_VERSIONS.join(", @"),
    );
    for package in crate::inference::catalog::CATALOG {
        for file in package.files {
            let _ = writeln!(
                out,
                "file {}/{} sha256:{} ({} {})",
                package.name, file.name, file.sha256, package.project, package.version
            );
        }
    }
    out
}
