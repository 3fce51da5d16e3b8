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
    if !config.exists() && config == Path::new("sluice.toml") {
        super::init::run(&config, false)?;
    }
    let mut cfg =
        Config::load(&config, &env).with_context(|| format!("loading {}", config.display()))?;
    let _log_guard = init_logging(cfg.logging.format, &cfg.logging.filter);
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
