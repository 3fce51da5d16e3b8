//! The HTTP edge: the listener (TCP, TLS, first-byte and header timeouts, HTTP/1.1 and HTTP/2 limits),
//! graceful drain, the `(method, path)` route table (`routes`), and the request entry (`entry`: request
//! id, span, panic catching, metrics, responses). It is the only layer that knows hyper; it calls the
//! control plane and the data-plane pipeline, never the reverse.

mod entry;
pub mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Clock, SystemClock};
use crate::app::{App, ConfigSource, StartError};
use crate::config::{Config, TlsConfig};

pub use entry::{Body, RequestBody, handle};

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
        let app = Arc::new(App::build(&config, source, clock).await?);
        let tls = config.server.tls.as_ref().map(load_tls).transpose()?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.server.listen,
                source,
            })?;
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
        let builder = Arc::new(http_builder(&limits));
        let tracker = TaskTracker::new();
        let conn_shutdown = CancellationToken::new();
        let pruner = spawn_pruner(app.clone(), shutdown.clone());
        let max_connections = limits
            .max_connections
            .map_or_else(default_max_connections, |n| n as usize);
        let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
        let mut accept_log = AcceptLog::default();
        tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), max_connections, "listening");
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning, and say so once per interval.
                    app.metrics.accept_errors.inc();
                    accept_log.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            // At the cap the connection is closed at once: the client learns now, and the descriptors left
            // stay free for upstreams and the database.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                app.metrics.connections_refused.inc();
                accept_log.refused(max_connections);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn = Connection {
                app: app.clone(),
                builder: builder.clone(),
                stop: conn_shutdown.clone(),
                first_bytes: limits.header_read_timeout,
                idle: limits.idle_timeout,
                peer,
            };
            app.metrics.open_connections.inc();
            let (open, tls) = (app.clone(), tls.clone());
            tracker.spawn(async move {
                conn.serve(stream, tls).await;
                open.metrics.open_connections.dec();
                drop(slot);
            });
        }
        // Draining: readiness goes false, the listener closes, open connections finish what they have.
        app.start_draining();
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
        // Entries of requests whose clients left are still on their way: see them through, then cover every
        // log's last entries with a checkpoint.
        pruner.abort();
        app.close().await;
        tracing::info!("stopped");
    }
}

/// The connection cap when none is configured: half the process's open-file limit (the other half is for
/// upstream connections, the database and the policy compiler), at most 10,000.
fn default_max_connections() -> usize {
    open_file_limit().map_or(512, |n| (n / 2).clamp(16, 10_000))
}

/// The soft open-file limit, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Logs accept failures and refused connections at most once per interval, with how many there were: a
/// flood of them must not become a flood of log lines.
#[derive(Default)]
struct AcceptLog {
    since: Option<std::time::Instant>,
    failed: u64,
    refused: u64,
}

impl AcceptLog {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn failed(&mut self, e: &std::io::Error) {
        self.failed += 1;
        if self.due() {
            tracing::warn!(error = %e, failures = self.failed, refused = self.refused, "accept failed");
            self.reset();
        }
    }

    fn refused(&mut self, max: usize) {
        self.refused += 1;
        if self.due() {
            tracing::warn!(
                max_connections = max,
                failures = self.failed,
                refused = self.refused,
                "connections refused at the cap"
            );
            self.reset();
        }
    }

    fn due(&self) -> bool {
        self.since
            .is_none_or(|at| at.elapsed() >= AcceptLog::INTERVAL)
    }

    fn reset(&mut self) {
        *self = AcceptLog {
            since: Some(std::time::Instant::now()),
            ..AcceptLog::default()
        };
    }
}

/// hyper's connection builder with the server's limits.
fn http_builder(limits: &crate::config::ServerConfig) -> auto::Builder<TokioExecutor> {
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
    builder
}

/// Retention: prunes expired audit content (and the caches of tenants that keep none) hourly and once at
/// start; drops expired cache entries from memory and storage every second, so none outlives its TTL by more.
fn spawn_pruner(app: Arc<App>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => match app.prune(crate::storage::unix_now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "audit content past retention deleted"),
                    Err(e) => tracing::error!(error = %e, "audit retention pruning failed"),
                },
                _ = sweep.tick() => {
                    let swept = app.cache.sweep_expired();
                    if swept > 0 {
                        tracing::debug!(entries = swept, "expired cache entries dropped");
                    }
                }
            }
        }
    })
}

/// One accepted connection, before its protocol is known.
struct Connection {
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: CancellationToken,
    first_bytes: Duration,
    /// A connection with no request in flight this long is closed.
    idle: Duration,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>) {
        let Connection {
            app,
            builder,
            stop,
            first_bytes,
            idle,
            peer,
        } = self;
        match tls {
            Some(acceptor) => {
                // A connection still in its handshake when draining starts has nothing in flight.
                let handshake = tokio::select! {
                    r = tokio::time::timeout(first_bytes, acceptor.accept(stream)) => r,
                    () = stop.cancelled() => return,
                };
                match handshake {
                    Ok(Ok(tls_stream)) => {
                        serve_connection(app, &builder, tls_stream, stop, idle).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            None => {
                // hyper's header timer starts only after protocol detection: bound the wait for the first
                // byte here so silent connections do not pile up.
                let mut probe = [0u8; 1];
                let first = tokio::select! {
                    r = tokio::time::timeout(first_bytes, stream.peek(&mut probe)) => r,
                    () = stop.cancelled() => return,
                };
                if !matches!(first, Ok(Ok(n)) if n > 0) {
                    tracing::debug!(%peer, "no request bytes before the header timeout");
                    return;
                }
                serve_connection(app, &builder, stream, stop, idle).await;
            }
        }
    }
}

/// Requests in flight on one connection (their response bodies included), and since when there were none.
#[derive(Debug)]
struct Activity {
    state: std::sync::Mutex<(usize, tokio::time::Instant)>,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: std::sync::Mutex::new((0, tokio::time::Instant::now())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, tokio::time::Instant)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request until the returned guard is dropped.
    fn begin(self: &Arc<Activity>) -> Busy {
        self.lock().0 += 1;
        Busy(self.clone())
    }

    /// When the connection will have been idle for `idle`; `None` while a request is in flight.
    fn idle_deadline(&self, idle: Duration) -> Option<tokio::time::Instant> {
        let (busy, since) = *self.lock();
        (busy == 0).then(|| since + idle)
    }
}

/// One request in flight on a connection.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = tokio::time::Instant::now();
        }
    }
}

async fn serve_connection<I>(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    stop: CancellationToken,
    idle: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let counted = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let (app, busy) = (app.clone(), counted.begin());
        async move {
            let resp = entry::handle(app, req).await?;
            // The request stays in flight until its body (a stream, maybe) is done or dropped.
            Ok::<_, Infallible>(resp.map(|body| {
                body.map_frame(move |frame| {
                    let _in_flight = &busy;
                    frame
                })
                .boxed_unsync()
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        // hyper closes no idle HTTP/2 connection whose client answers pings: close any connection with
        // nothing in flight for `idle` (a GOAWAY for HTTP/2), so idle clients cannot hold descriptors.
        let deadline = activity
            .idle_deadline(idle)
            .unwrap_or_else(|| tokio::time::Instant::now() + idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(deadline) => {
                if activity.idle_deadline(idle).is_some_and(|d| d <= tokio::time::Instant::now()) {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error while closing");
    }
}
