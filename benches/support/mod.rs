//! What the harness benches that drive the real `sluice` binary share: an OpenAI-compatible upstream on
//! its own thread, the gateway process with its secrets set, and its resident set.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// The upstream's answer to every chat completion.
pub const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"small-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#;

/// The operator token the gateway is started with.
pub const TOKEN: &str = "load-operator-token-0123456789";

/// An OpenAI-compatible upstream on its own runtime thread that answers every request with `ANSWER`
/// after `delay`.
pub fn start_upstream(delay: Duration) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut resp = http::Response::new(Full::new(Bytes::from_static(
                                ANSWER.as_bytes(),
                            )));
                            resp.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(resp)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// A running gateway; killed if the harness panics before its graceful stop, so none outlives a failed
/// run.
pub struct Gateway {
    child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Gateway {
    /// Starts `sluice serve` on `config` (written to `dir/sluice.toml`) and waits until it listens. The
    /// binary is this build's, or `SLUICE_BENCH_BIN` (another build, to compare two in one sitting).
    pub fn start(dir: &Path, config: &str) -> Gateway {
        std::fs::write(dir.join("sluice.toml"), config).unwrap();
        let binary = std::env::var_os("SLUICE_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(dir.join("sluice.toml"))
            .env("SLUICE_ADMIN_TOKEN", TOKEN)
            .env(
                "SLUICE_AUDIT_MASTER_KEY",
                "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=",
            )
            .env(
                "SLUICE_AUDIT_SIGNING_KEY",
                "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            )
            .env(
                "SLUICE_KEY_PEPPER",
                "load-pepper-load-pepper-load-pepper-0123",
            )
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut gateway = Gateway {
            child,
            addr: String::new(),
        };
        let mut line = String::new();
        let mut seen = String::new();
        gateway.addr = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "gateway exited early:\n{seen}"
            );
            seen.push_str(&line);
            if let Some(a) = line.trim().strip_prefix("sluice listening on ") {
                break a.to_owned();
            }
        };
        // Keep draining the gateway's logs, so a full pipe never blocks it.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        gateway
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The process's resident set, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The value at fraction `p` of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Creates tenant `name` with an admin key, as the operator with `token`; returns (tenant id, key).
pub async fn tenant(gateway: &str, token: &str, name: &str) -> (String, String) {
    sluice::cli::client::create_tenant_with_key(gateway, token, name, "bench", "admin")
        .await
        .unwrap()
}
