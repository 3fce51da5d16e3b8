//! The server: listener, TLS, connection limits, graceful shutdown, reload, and the request pipeline
//! (`pipeline`) behind the router (`router`).

pub mod metrics;
mod pipeline;
mod router;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, BudgetSet, Clock, LimitSet, Scope, SystemClock};
use crate::audit::{AuditLog, Signer};
use crate::auth::KeyStore;
use crate::config::{Config, ConfigError, Env, ServerConfig, TlsConfig};
use crate::providers::{BuildError, RoutingSnapshot};
use crate::storage::{Storage, StorageError};
use metrics::Metrics;

pub use pipeline::{Finished, audit_unavailable, authenticate};
pub use router::{Body, RequestCtx, json_response};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Providers(#[from] BuildError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("audit log: {0}")]
    Audit(String),
    #[error("policies: {0}")]
    Policy(String),
}

/// Where the running config came from, so SIGHUP can read it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env: Env,
}

/// Shared state of a running gateway.
pub struct App {
    pub limits: ServerConfig,
    pub routing: ArcSwap<RoutingSnapshot>,
    pub keys: KeyStore,
    pub storage: Storage,
    pub metrics: Metrics,
    pub audit: AuditLog,
    /// Rate limits, concurrency, token caps and budgets, in memory.
    pub admission: Admission,
    /// The Wasm runtime, the built-in policies and every tenant's uploaded ones.
    pub policies: crate::policy::Policies,
    /// Work that outlives its request (audit entries of streams whose client left); awaited on shutdown.
    pub background: TaskTracker,
    admin_token_sha256: [u8; 32],
    draining: AtomicBool,
    source: ConfigSource,
}

impl App {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn admin_token_sha256(&self) -> &[u8; 32] {
        &self.admin_token_sha256
    }

    /// Validates a new config and swaps the routing snapshot atomically. On error the old snapshot stays.
    pub fn reload(&self, config: &Config) -> Result<(), BuildError> {
        let snapshot = RoutingSnapshot::build(&config.routing)?;
        self.routing.store(Arc::new(snapshot));
        Ok(())
    }

    /// Re-reads the config file (SIGHUP). Failures are logged and counted; the old snapshot keeps serving.
    pub fn reload_from_source(&self) -> Result<(), String> {
        let Some(path) = &self.source.path else {
            return Err("the gateway was started without a config file".to_owned());
        };
        let outcome = Config::load(path, &self.source.env)
            .map_err(|e: ConfigError| e.to_string())
            .and_then(|c| self.reload(&c).map_err(|e| e.to_string()));
        let code = if outcome.is_ok() { "ok" } else { "invalid" };
        self.metrics
            .config_reloads
            .get_or_create(&metrics::ErrorLabels { code })
            .inc();
        match &outcome {
            Ok(()) => tracing::info!(path = %path.display(), "routing snapshot reloaded"),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "config reload rejected; keeping the old routing snapshot")
            }
        }
        outcome
    }
}

/// Loads limits and budgets, charges what budget covers still hold (requests a previous run left in flight,
/// at their full amount, in an audit entry per cover), then rebuilds the current windows' spend from the
/// durable daily totals.
async fn restore_admission(
    storage: &Storage,
    audit: &AuditLog,
    admission: &Admission,
) -> Result<(), StartError> {
    for (tenant, scope, json) in storage.admission_limits().await? {
        match (
            Scope::decode(&scope),
            serde_json::from_str::<LimitSet>(&json),
        ) {
            (Some(scope), Ok(limits)) => admission.set_limits(&tenant, &scope, limits),
            _ => {
                tracing::error!(tenant = %tenant, scope = %scope, "unreadable stored limits ignored")
            }
        }
    }
    for (tenant, scope, daily, monthly) in storage.admission_budgets().await? {
        let budget = BudgetSet {
            daily_micro_usd: daily,
            monthly_micro_usd: monthly,
        };
        match Scope::decode(&scope) {
            Some(Scope::Tenant) => admission.set_budget(&tenant, None, budget),
            Some(Scope::Key(key)) => admission.set_budget(&tenant, Some(&key), budget),
            _ => {
                tracing::error!(tenant = %tenant, scope = %scope, "unreadable stored budget ignored")
            }
        }
    }
    for c in storage.open_covers().await? {
        // The gateway stopped with requests in flight under this cover: they may have cost all of it.
        let entry = crate::audit::entry::Entry {
            index: 0,
            prev_leaf: [0; 32],
            kind: crate::audit::entry::EntryKind::Request,
            timestamp_ms: crate::audit::now_ms(),
            tenant_id: c.tenant_id.clone(),
            key_id: c.key_id.clone(),
            request_id: String::new(),
            trace_id: String::new(),
            endpoint: c.endpoint.clone(),
            subject: "usage:cover".to_owned(),
            model_requested: String::new(),
            deployment: String::new(),
            tier: String::new(),
            region: String::new(),
            cache: String::new(),
            policy: String::new(),
            status: 500,
            error_code: "interrupted".to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micro_usd: c.micro_usd,
            latency_us: 0,
            content: crate::audit::entry::ContentMark::None,
            prompt_commitment: None,
            response_commitment: None,
        };
        audit
            .append_settling(entry, None, c.micro_usd)
            .await
            .map_err(|e| StartError::Audit(format!("charging a budget cover: {e}")))?;
        tracing::warn!(tenant = %c.tenant_id, key = %c.key_id, endpoint = %c.endpoint, micro_usd = c.micro_usd, "requests interrupted by a restart charged at their budget cover");
    }
    let today = crate::admission::window::day_of(admission.clock().now_ns());
    let month_start = crate::admission::window::month_start(today);
    for row in storage.spend_since(None, month_start).await? {
        admission.record_spend(&row.tenant_id, &row.key_id, row.day, row.micro_usd);
    }
    Ok(())
}

/// A bound, not yet running gateway.
pub struct Gateway {
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
}

fn load_tls(cfg: &TlsConfig) -> Result<TlsAcceptor, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::Tls(format!("{}: {e}", cfg.cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key_path)
        .map_err(|e| StartError::Tls(format!("{}: {e}", cfg.key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

impl Gateway {
    /// Opens storage, loads keys and routing, and binds the listener.
    pub async fn bind(config: Config, source: ConfigSource) -> Result<Gateway, StartError> {
        Gateway::bind_with_clock(config, source, Arc::new(SystemClock)).await
    }

    /// `bind` with the clock admission runs on (tests move time without sleeping).
    pub async fn bind_with_clock(
        config: Config,
        source: ConfigSource,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, StartError> {
        let storage = Storage::open(
            &config.storage.url,
            config.storage.max_connections,
            config.storage.durability,
        )
        .await?;
        let keys = KeyStore::new(
            config.auth.pepper.expose().as_bytes(),
            storage.list_keys(None).await?,
        );
        let routing = RoutingSnapshot::build(&config.routing)?;
        let signing_key = crate::audit::signing_key_from_text(config.audit.signing_key.expose())
            .ok_or_else(|| {
                StartError::Audit("the signing key is not a base64 32-byte seed".to_owned())
            })?;
        let (audit, _writer) = AuditLog::open(
            storage.clone(),
            Signer::new(config.audit.origin.clone(), signing_key),
            crate::audit::content::Sealer::new(
                crate::audit::key32_from_text(config.audit.master_key.expose()).ok_or_else(
                    || StartError::Audit("the master key is not base64 of 32 bytes".to_owned()),
                )?,
            ),
            config.audit.retention_days,
            config.audit.batch_max,
            config.audit.checkpoint_interval,
        )
        .await?;
        let policies = crate::policy::Policies::load(
            &config.policies,
            config.auth.pepper.expose().as_bytes(),
            Some(storage.clone()),
        )
        .await
        .map_err(|e| StartError::Policy(e.to_string()))?;
        let admission = Admission::new(clock);
        restore_admission(&storage, &audit, &admission).await?;
        let tls = config.server.tls.as_ref().map(load_tls).transpose()?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.server.listen,
                source,
            })?;
        let app = Arc::new(App {
            limits: config.server.clone(),
            routing: ArcSwap::from_pointee(routing),
            keys,
            storage,
            metrics: Metrics::new(),
            audit,
            admission,
            policies,
            background: TaskTracker::new(),
            admin_token_sha256: config.admin.token_sha256,
            draining: AtomicBool::new(false),
            source,
        });
        Ok(Gateway {
            app,
            listener,
            tls,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains in-flight requests and streams for up to
    /// the grace period.
    pub async fn run(self) {
        let Gateway {
            app,
            listener,
            tls,
            shutdown,
        } = self;
        let limits = app.limits.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            // hyper's own hard limits sit above ours, so requests between the two get our JSON 431 and only
            // absurd ones are cut off by hyper.
            .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024))
            .max_headers(limits.max_headers * 2);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(Some(64))
            .max_local_error_reset_streams(Some(256))
            .keep_alive_interval(Some(limits.idle_timeout))
            .keep_alive_timeout(Duration::from_secs(20));
        let builder = Arc::new(builder);
        let tracker = TaskTracker::new();
        let conn_shutdown = CancellationToken::new();
        // Retention: prune expired audit content hourly (and once at start).
        let pruner = {
            let app = app.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = every.tick() => match app.audit.prune(crate::storage::unix_now()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(deleted = n, "audit content past retention deleted"),
                            Err(e) => tracing::error!(error = %e, "audit retention pruning failed"),
                        },
                    }
                }
            })
        };
        tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "listening");
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let builder = builder.clone();
            let tls = tls.clone();
            let stop = conn_shutdown.clone();
            let first_bytes = limits.header_read_timeout;
            tracker.spawn(async move {
                match tls {
                    Some(acceptor) => {
                        // A connection still in its handshake when draining starts has nothing in flight.
                        let handshake = tokio::select! {
                            r = tokio::time::timeout(first_bytes, acceptor.accept(stream)) => r,
                            () = stop.cancelled() => return,
                        };
                        match handshake {
                            Ok(Ok(tls_stream)) => {
                                serve_connection(app, &builder, tls_stream, stop).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    None => {
                        // hyper's header timer starts only after protocol detection: bound the wait for the
                        // first byte here so silent connections do not pile up.
                        let mut probe = [0u8; 1];
                        let first = tokio::select! {
                            r = tokio::time::timeout(first_bytes, stream.peek(&mut probe)) => r,
                            () = stop.cancelled() => return,
                        };
                        if !matches!(first, Ok(Ok(n)) if n > 0) {
                            tracing::debug!(%peer, "no request bytes before the header timeout");
                            return;
                        }
                        serve_connection(app, &builder, stream, stop).await;
                    }
                }
            });
        }
        // Draining: readiness goes false, the listener closes, open connections finish what they have.
        app.draining.store(true, Ordering::Relaxed);
        drop(listener);
        conn_shutdown.cancel();
        tracker.close();
        tracing::info!(connections = tracker.len(), grace = ?limits.shutdown_grace, "draining");
        if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = tracker.len(),
                "grace period over; closing remaining connections"
            );
        }
        // Entries of streams whose clients left are still on their way: see them through, then cover every
        // log's last entries with a checkpoint.
        pruner.abort();
        app.background.close();
        app.background.wait().await;
        // No request is in flight: what budget covers hold beyond that goes back, so the next start charges
        // only requests whose outcome is unknown (those cut off by the grace period).
        let slack = app.admission.release_covers();
        if !slack.is_empty()
            && let Err(e) = app.audit.lower_covers(slack).await
        {
            tracing::error!(error = %e, "budget covers could not be lowered; the next start charges them");
        }
        app.audit.flush().await;
        app.storage.close().await;
        tracing::info!("stopped");
    }
}

async fn serve_connection<I>(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| router::handle(app.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error while draining");
            }
        }
    }
}
