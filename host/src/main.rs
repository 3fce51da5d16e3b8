//! The `sluice` command: parse arguments, load the config, run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sluice::config::{Config, Env, LogFormat};
use sluice::{ConfigSource, Gateway};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Multi-tenant, OpenAI-compatible LLM gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Remote {
    /// Base URL of the running gateway.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Operator token (read from the environment; avoid passing it on the command line).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without an existing config file at the default path, a starter config is created.
    Serve {
        #[arg(long, short, default_value = "sluice.toml")]
        config: PathBuf,
    },
    /// Write a starter config (fake provider, no API keys needed) and print the operator token once.
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
        action: TenantAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage API keys on a running gateway.
    Key {
        #[command(subcommand)]
        action: KeyAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Export and verify tenant audit logs.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Internal: the gateway's policy compiler process (a component on stdin, its artifact on stdout).
    #[command(name = "compile-policy", hide = true)]
    CompilePolicy {
        #[arg(long)]
        max_memory_bytes: usize,
    },
    /// Test a policy offline; push, list, activate and roll back a tenant's policies.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(clap::Args)]
struct TenantRemote {
    /// Base URL of the running gateway.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// A tenant key with the admin or owner role.
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SlotArg {
    Auth,
    Classify,
    Route,
}

impl SlotArg {
    fn slot(self) -> sluice::policy::Slot {
        match self {
            SlotArg::Auth => sluice::policy::Slot::Auth,
            SlotArg::Classify => sluice::policy::Slot::Classify,
            SlotArg::Route => sluice::policy::Slot::Route,
        }
    }
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Run a policy component offline against a request (and a catalog) and print its decision and time.
    Test {
        /// The component (`.wasm`, built for wasm32-wasip2).
        file: PathBuf,
        /// The slot to run; default: the first the component exports.
        #[arg(long, value_enum)]
        slot: Option<SlotArg>,
        /// An OpenAI chat-completions request body (JSON file).
        #[arg(long)]
        request: PathBuf,
        /// The deployments the router sees (JSON array); default: the starter config's.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Request metadata, as the `x-sluice-meta-NAME` header would pass it (repeatable).
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        meta: Vec<String>,
        /// The tier the router is told; default: the built-in classifier's.
        #[arg(long)]
        tier: Option<String>,
        /// The remaining budget the router is told, in micro-USD; default: no cap.
        #[arg(long)]
        budget_micro_usd: Option<u64>,
        /// Deadline of a call in milliseconds (the gateway's default is 5): the call gets this many
        /// milliseconds of fuel, and a wall-clock backstop of max(4 × deadline, deadline + 20 ms).
        #[arg(long, default_value_t = 5)]
        deadline_ms: u64,
        /// Fuel per millisecond of deadline: the gateway's `policies.fuel_per_ms`.
        #[arg(long, default_value_t = sluice::policy::wasm::DEFAULT_FUEL_PER_MS, value_parser = clap::value_parser!(u64).range(1..))]
        fuel_per_ms: u64,
    },
    /// Upload a component for a slot of the key's tenant and activate it.
    Push {
        file: PathBuf,
        #[arg(long, value_enum)]
        slot: SlotArg,
        #[command(flatten)]
        remote: TenantRemote,
    },
    /// Show each slot's active version and every stored version.
    List {
        #[command(flatten)]
        remote: TenantRemote,
    },
    /// Activate a stored version of a slot.
    Activate {
        #[arg(long, value_enum)]
        slot: SlotArg,
        #[arg(long)]
        version: u32,
        #[command(flatten)]
        remote: TenantRemote,
    },
    /// Activate the version below the active one (from the first version: the built-in policy).
    Rollback {
        #[arg(long, value_enum)]
        slot: SlotArg,
        #[command(flatten)]
        remote: TenantRemote,
    },
}

#[derive(Subcommand)]
enum AuditAction {
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
    },
}

#[derive(Subcommand)]
enum TenantAction {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create a key; its plaintext is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Revoke {
        key_id: String,
    },
}

/// Logs go to stderr through a writer thread, so request handlers never wait on the write syscall. It is
/// not lossy: when its queue is full, handlers wait rather than drop lines. Keep the guard alive until exit
/// so the queue is flushed.
fn init_logging(format: LogFormat, filter: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

fn print_init(config: &Path, token: &str) {
    println!("Wrote {} and its pepper file.", config.display());
    println!("Operator token (shown once, stored only as a hash):\n\n    {token}\n");
    println!("export SLUICE_ADMIN_TOKEN={token}");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: Env = std::env::vars().collect();
    match cli.command {
        Command::Init { config, force } => {
            let made = sluice::init::init(&config, force)?;
            print_init(&config, &made.operator_token);
        }
        Command::Check { config } => {
            Config::load(&config, &env)?;
            println!("{}: OK", config.display());
        }
        Command::Serve { config } => {
            if !config.exists() && config == Path::new("sluice.toml") {
                let made = sluice::init::init(&config, false)?;
                print_init(&config, &made.operator_token);
            }
            let mut cfg = Config::load(&config, &env)
                .with_context(|| format!("loading {}", config.display()))?;
            let _log_guard = init_logging(cfg.logging.format, &cfg.logging.filter);
            // Tenant uploads meet Cranelift in a child process that holds no secret (see `compiler.rs`).
            match std::env::current_exe() {
                Ok(exe) => cfg.policies.compiler = sluice::policy::compiler::Compiler::Process(exe),
                Err(e) => {
                    tracing::warn!(error = %e, "this binary's path is unknown: policies compile in the gateway's process");
                }
            }
            let gateway = Gateway::bind(
                cfg,
                ConfigSource {
                    path: Some(config.clone()),
                    env,
                },
            )
            .await?;
            let addr = gateway.local_addr()?;
            eprintln!("sluice listening on {addr}");
            let token = gateway.shutdown_token();
            let app = gateway.app();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    tracing::error!("cannot install signal handlers");
                    return;
                };
                loop {
                    tokio::select! {
                        _ = term.recv() => break,
                        _ = int.recv() => break,
                        _ = hup.recv() => { let _ = app.reload_from_source(); }
                    }
                }
                tracing::info!("shutdown requested");
                token.cancel();
            });
            gateway.run().await;
        }
        Command::Tenant { action, remote } => {
            let out = match action {
                TenantAction::Create { name } => {
                    call(
                        &remote,
                        http::Method::POST,
                        "/admin/v1/tenants",
                        Some(serde_json::json!({"name": name})),
                    )
                    .await?
                }
                TenantAction::List => {
                    call(&remote, http::Method::GET, "/admin/v1/tenants", None).await?
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Key { action, remote } => {
            let out = match action {
                KeyAction::Create { tenant, name, role } => {
                    let path = format!("/admin/v1/tenants/{tenant}/keys");
                    call(
                        &remote,
                        http::Method::POST,
                        &path,
                        Some(serde_json::json!({"name": name, "role": role})),
                    )
                    .await?
                }
                KeyAction::List { tenant } => {
                    call(
                        &remote,
                        http::Method::GET,
                        &format!("/admin/v1/tenants/{tenant}/keys"),
                        None,
                    )
                    .await?
                }
                KeyAction::Revoke { key_id } => {
                    call(
                        &remote,
                        http::Method::DELETE,
                        &format!("/admin/v1/keys/{key_id}"),
                        None,
                    )
                    .await?
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Audit { action } => return audit(action).await,
        Command::Policy { action } => return policy(action).await,
        // No logging, no config: compile and exit.
        Command::CompilePolicy { max_memory_bytes } => {
            std::process::exit(sluice::policy::compiler::run_child(max_memory_bytes))
        }
    }
    Ok(())
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{what} `{item}` is not NAME=VALUE"))
        })
        .collect()
}

async fn policy(action: PolicyAction) -> anyhow::Result<()> {
    use sluice::policy::offline;
    let tenant_call = |remote: &TenantRemote, method, path: String, body| {
        let (gateway, key) = (remote.gateway.clone(), remote.api_key.clone());
        async move {
            if key.is_empty() {
                bail!("set SLUICE_API_KEY to a tenant key with the admin or owner role");
            }
            Ok::<_, anyhow::Error>(
                sluice::api::client::send(&gateway, &key, method, &path, body).await?,
            )
        }
    };
    let out = match action {
        PolicyAction::Test {
            file,
            slot,
            request,
            catalog,
            meta,
            tier,
            budget_micro_usd,
            deadline_ms,
            fuel_per_ms,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let request = std::fs::read_to_string(&request)
                .with_context(|| format!("reading {}", request.display()))?;
            let catalog = catalog
                .map(|p| {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    offline::catalog(&text).map_err(anyhow::Error::from)
                })
                .transpose()?;
            let tier = tier
                .map(|t| match t.as_str() {
                    "simple" => Ok(sluice::config::Tier::Simple),
                    "standard" => Ok(sluice::config::Tier::Standard),
                    "complex" => Ok(sluice::config::Tier::Complex),
                    other => Err(anyhow::anyhow!(
                        "--tier `{other}` is not one of simple, standard, complex"
                    )),
                })
                .transpose()?;
            let inputs = offline::Inputs {
                request,
                metadata: pairs(&meta, "--meta")?,
                catalog,
                tier,
                budget_micro_usd,
                labels: Vec::new(),
            };
            let limits = sluice::policy::wasm::Limits {
                deadline: std::time::Duration::from_millis(deadline_ms.max(1)),
                fuel_per_ms,
                ..sluice::policy::wasm::Limits::default()
            };
            let report = offline::run(&bytes, slot.map(SlotArg::slot), &inputs, limits, 101)?;
            println!("slot: {}", report.slot.as_str());
            for line in &report.log {
                println!("log: {line}");
            }
            match &report.decision {
                Ok(v) => println!("decision: {}", serde_json::to_string_pretty(v)?),
                Err(e) => {
                    println!("failed: {e}");
                    if let Some(why) = offline::stopped_by(e) {
                        println!("stopped by: {why}");
                    }
                }
            }
            if let Some(fuel) = report.fuel {
                println!(
                    "work: {fuel} fuel of {} ({:.1}% of what the {} ms deadline allows)",
                    report.fuel_limit,
                    fuel as f64 * 100.0 / report.fuel_limit.max(1) as f64,
                    report.deadline.as_millis()
                );
            }
            println!(
                "time: {} µs per call (median of {} fresh-instance calls); compile {} ms",
                report.call_median.as_micros(),
                report.calls,
                report.compile.as_millis()
            );
            if report.decision.is_err() {
                std::process::exit(1);
            }
            return Ok(());
        }
        PolicyAction::Push { file, slot, remote } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = format!("/v1/policies/{}", slot.slot().as_str());
            let body = Some(("application/wasm", bytes::Bytes::from(bytes)));
            tenant_call(&remote, http::Method::PUT, path, body).await?
        }
        PolicyAction::List { remote } => {
            tenant_call(&remote, http::Method::GET, "/v1/policies".to_owned(), None).await?
        }
        PolicyAction::Activate {
            slot,
            version,
            remote,
        } => {
            let path = format!("/v1/policies/{}/activate", slot.slot().as_str());
            let body = serde_json::json!({ "version": version }).to_string();
            let body = Some(("application/json", bytes::Bytes::from(body)));
            tenant_call(&remote, http::Method::POST, path, body).await?
        }
        PolicyAction::Rollback { slot, remote } => {
            let path = format!("/v1/policies/{}/rollback", slot.slot().as_str());
            tenant_call(&remote, http::Method::POST, path, None).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn audit(action: AuditAction) -> anyhow::Result<()> {
    match action {
        AuditAction::Export {
            gateway,
            api_key,
            out,
        } => {
            let export = sluice::api::client::call(
                &gateway,
                &api_key,
                http::Method::GET,
                "/v1/audit/export",
                None,
            )
            .await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&export)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let count = export["entries"].as_array().map_or(0, Vec::len);
            println!(
                "saved {count} entries and the signed checkpoint to {}",
                out.display()
            );
            Ok(())
        }
        AuditAction::Verify {
            file,
            since,
            public_key,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let export: sluice::audit::verify::Export = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an audit export", file.display()))?;
            let since = since
                .map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?;
            let key = public_key
                .map(|k| {
                    if Path::new(&k).is_file() {
                        std::fs::read_to_string(&k).map(|t| t.trim().to_owned())
                    } else {
                        Ok(k)
                    }
                })
                .transpose()?;
            match sluice::audit::verify::verify_export(&export, key.as_deref(), since.as_deref()) {
                Ok(report) => {
                    println!(
                        "OK: {} entries of log {} verify; root {}",
                        report.size,
                        report.origin,
                        sluice::audit::entry::hex(&report.root)
                    );
                    if let Some(old) = report.extends {
                        println!(
                            "OK: the log extends the older checkpoint of size {old} (append-only)"
                        );
                    }
                    if report.key_from_export {
                        println!(
                            "NOTE: checked against the public key inside the export; pin the gateway's key with \
                             --public-key to prove where the log came from"
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

async fn call(
    remote: &Remote,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    if remote.admin_token.is_empty() {
        bail!("set SLUICE_ADMIN_TOKEN to the operator token");
    }
    Ok(sluice::api::client::call(&remote.gateway, &remote.admin_token, method, path, body).await?)
}
