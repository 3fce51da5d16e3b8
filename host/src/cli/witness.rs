//! `sluice witness serve`: a witness (C2SP tlog-witness) for a gateway's audit logs, as a process of its
//! own with its own key and state, so that whoever runs the gateway cannot get a rewritten history cosigned.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum WitnessAction {
    /// Serve `POST /add-checkpoint`; prints the witness's cosigner key for `[[audit.witnesses]]`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: std::net::SocketAddr,
        /// The witness's name (a schema-less URL such as `witness.example/w1`).
        #[arg(long)]
        name: String,
        /// The witness's signing key (a base64 32-byte seed); created (0600) when missing.
        #[arg(long)]
        key_file: PathBuf,
        /// The latest cosigned checkpoint of every log; written and synced before each answer.
        #[arg(long)]
        state: PathBuf,
        /// The gateway's verifier key (what `GET /.well-known/sluice-audit-keys` serves), text or a file.
        #[arg(long)]
        log_key: String,
        /// Only origins starting with this are witnessed (a gateway's logs are `<audit.origin>/<tenant>`).
        #[arg(long, default_value = "")]
        origin_prefix: String,
    },
}

pub async fn run(action: WitnessAction) -> anyhow::Result<()> {
    let WitnessAction::Serve {
        listen,
        name,
        key_file,
        state,
        log_key,
        origin_prefix,
    } = action;
    let key = signing_key(&key_file)?;
    let log_key = if Path::new(&log_key).is_file() {
        std::fs::read_to_string(&log_key)?.trim().to_owned()
    } else {
        log_key
    };
    let witness = crate::witness::Witness::open(&name, key, &log_key, &origin_prefix, &state)
        .map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("witness {name} on http://{}", listener.local_addr()?);
    println!("cosigner key: {}", witness.verifier_key());
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopping.cancel();
    });
    crate::witness::serve(listener, Arc::new(witness), stop).await;
    Ok(())
}

fn signing_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    if !path.exists() {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{}", crate::audit::new_key_text())?;
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    crate::audit::signing_key_from_text(&text)
        .with_context(|| format!("{} does not hold a base64 32-byte seed", path.display()))
}
