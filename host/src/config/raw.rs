//! The TOML file as written by operators: plain serde structs, every unknown field rejected.
//! Runtime code never sees these; `super::validate` turns them into strong types.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version of this file. Only `1` exists.
    pub version: u32,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub policies: RawPolicies,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
    #[serde(default)]
    pub models: Vec<RawModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Socket address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy). Default false.
    pub insecure_plaintext: Option<bool>,
    pub tls: Option<RawTls>,
    /// Largest request body in bytes. Default 4 MiB.
    pub max_body_bytes: Option<u64>,
    /// Largest total size of request headers in bytes. Default 64 KiB.
    pub max_header_bytes: Option<u64>,
    /// Most request headers. Default 100.
    pub max_headers: Option<u64>,
    /// Time allowed to receive a request's headers, in milliseconds. Default 10,000.
    pub header_read_timeout_ms: Option<u64>,
    /// A connection with no request in flight is closed after this many seconds (HTTP/1.1 and HTTP/2;
    /// HTTP/2 connections are pinged at this interval too). Default 60, at least 1.
    pub idle_timeout_s: Option<u64>,
    /// Most open client connections; more are closed as they are accepted. Default: half the process's
    /// open-file limit, at most 10,000.
    pub max_connections: Option<u32>,
    /// How `/metrics` names a request's tenant: `name` (the name the operator gave it), `id`, or `none`.
    /// Default `name`.
    pub metrics_tenant_label: Option<String>,
    /// HTTP/2 concurrent streams per connection. Default 128.
    pub h2_max_concurrent_streams: Option<u64>,
    /// Time given to in-flight requests and streams on shutdown, in seconds. Default 30.
    pub shutdown_grace_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain. Relative paths are relative to the config file.
    pub cert_path: String,
    /// PEM private key.
    pub key_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// sqlx URL. Default `sqlite://sluice.db` (relative to the working directory).
    pub url: Option<String>,
    /// Connection pool size. Default 8.
    pub max_connections: Option<u32>,
    /// `fsync` (default): a commit (an audit batch) survives power loss. `os`: it survives a crash of the
    /// process (kill -9) but not of the machine; commits skip the fsync and are much faster.
    pub durability: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Environment variable holding the operator token. Default `SLUICE_ADMIN_TOKEN`.
    pub token_env: Option<String>,
    /// File holding the operator token.
    pub token_file: Option<String>,
    /// Hex SHA-256 of the operator token, so the config never holds it in plain (`sluice init` writes it).
    pub token_sha256: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Environment variable holding the API-key pepper. Default `SLUICE_KEY_PEPPER`.
    pub pepper_env: Option<String>,
    /// File holding the API-key pepper (at least 32 bytes).
    pub pepper_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// The response cache for every tenant (each can still turn its own off). Default false.
    pub enabled: Option<bool>,
    /// Entries per index (one tenant's answers for one model family) before the least recently used goes.
    /// Default 10000.
    pub max_entries: Option<u64>,
    /// The largest answer stored, in bytes. Default 262144.
    pub max_entry_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Log origin prefix; each tenant's log is `<origin>/<tenant id>`, and the signing key is named `<origin>`.
    /// Default `sluice`.
    pub origin: Option<String>,
    /// File holding the Ed25519 checkpoint signing key (32-byte seed, base64).
    pub signing_key_file: Option<String>,
    /// Environment variable holding the signing key. Default `SLUICE_AUDIT_SIGNING_KEY`.
    pub signing_key_env: Option<String>,
    /// File holding the content master key (32 bytes, base64); per-tenant content keys derive from it.
    pub master_key_file: Option<String>,
    /// Environment variable holding the content master key. Default `SLUICE_AUDIT_MASTER_KEY`.
    pub master_key_env: Option<String>,
    /// Days prompts and responses are kept (tenants may override it; 0 keeps none). Default 365.
    pub retention_days: Option<u32>,
    /// Most entries committed in one transaction. Default 1024.
    pub batch_max: Option<u64>,
    /// Least time between two checkpoints of one log, in milliseconds. Default 1,000.
    pub checkpoint_interval_ms: Option<u64>,
    /// Directory of the last signed head of each log, kept outside the database. Default `audit-heads`
    /// beside the signing key file, or beside the config file when the key comes from the environment.
    pub heads_dir: Option<String>,
    /// Most audit exports streaming at once (more are 429). Default 2.
    pub max_concurrent_exports: Option<u32>,
    /// Witnesses asked to cosign every checkpoint (C2SP tlog-witness).
    #[serde(default)]
    pub witnesses: Vec<RawWitness>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWitness {
    /// The witness's submission prefix (`http://` or `https://`); checkpoints go to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's cosigner verifier key, `name+keyid+base64(0x04 || key)` (what `sluice witness serve`
    /// prints).
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    /// Deadline of one policy call, in milliseconds, for tenants that set none. Default 5.
    pub default_deadline_ms: Option<u64>,
    /// Longest deadline a tenant may choose, in milliseconds. Default 50.
    pub max_deadline_ms: Option<u64>,
    /// Fuel (Wasm work units, about one per instruction) a policy call gets per millisecond of its deadline.
    /// Default `policy::wasm::DEFAULT_FUEL_PER_MS`, what a busy loop burns per millisecond on an idle core.
    pub fuel_per_ms: Option<u64>,
    /// Linear memory one policy call may use, in MiB. Default 32.
    pub max_memory_mib: Option<u64>,
    /// Largest component a tenant may upload, in bytes. Default 4 MiB (4194304).
    pub max_upload_bytes: Option<u64>,
    /// Longest compilation of an upload, in milliseconds, before it is refused. Default 10,000.
    pub compile_timeout_ms: Option<u64>,
    /// Heap the compiler process may use, in MiB (its `RLIMIT_DATA`); past it the upload is refused.
    /// Default 1024.
    pub compile_memory_mib: Option<u64>,
    /// Most policy versions a tenant stores, over all slots. Default 20.
    pub max_versions: Option<u32>,
    /// CPU time a tenant's policy calls may use per second, in milliseconds (a bucket of one second's worth).
    /// Default 500.
    pub cpu_ms_per_second: Option<u64>,
    /// Most bytes of policy versions a tenant stores, over all slots, in MiB. Default 50.
    pub max_stored_mib: Option<u64>,
    /// Threads that run tenant policy calls (off the async workers). Default: the machine's cores.
    pub workers: Option<usize>,
    /// Most policy calls of one tenant running at once. Default: half the workers, rounded up.
    pub workers_per_tenant: Option<usize>,
    /// Most policy calls waiting for a thread, over all tenants. Default 1024.
    pub queue: Option<usize>,
    /// Most policy calls of one tenant waiting for a thread, at most `queue`; past it `auth` is 429 and
    /// `classify` and `route` use the built-ins. When the whole queue is full, the tenant with the most calls
    /// waiting gives way to one with fewer. Default a quarter of `queue`, at most 256.
    pub queue_per_tenant: Option<usize>,
    /// Consecutive failures (trap, out of fuel, error, invalid decision) after which a tenant's policy is
    /// quarantined until a new version is uploaded or activated; a call stopped by the wall-clock backstop
    /// (host overload) does not count. Default 5.
    pub quarantine_after: Option<u32>,
    /// Folder of compiled policy artifacts, so restarts do not recompile. Default: `policy-cache` beside
    /// the SQLite database; no cache for an in-memory database.
    pub cache_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// `tracing` filter directive. Default `info`; `RUST_LOG` overrides it.
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    /// `openai`, `anthropic`, `local` or `fake`.
    pub kind: String,
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Environment variable holding the provider API key.
    pub api_key_env: Option<String>,
    /// File holding the provider API key.
    pub api_key_file: Option<String>,
    /// TCP + TLS connect timeout in milliseconds. Default 5,000.
    pub connect_timeout_ms: Option<u64>,
    /// Time until the upstream's response headers, in milliseconds. Default 60,000.
    pub first_byte_timeout_ms: Option<u64>,
    /// Time until the whole response was read, in milliseconds. Default 600,000.
    pub total_timeout_ms: Option<u64>,
    /// `anthropic-version` header (anthropic only). Default `2023-06-01`.
    pub anthropic_version: Option<String>,
    /// Local only: the folder of model files (`sluice models pull --dir`), relative to the config file.
    /// Default `models`.
    pub models_dir: Option<String>,
    /// Local only: requests waiting or running on one model before more are refused (503). Default 64.
    pub queue: Option<u64>,
    /// Local only: of those, at most this many for one tenant (429). Default half of `queue`.
    pub queue_per_tenant: Option<u64>,
    /// Local only: what `serve` does when model files are missing: `error` (default: refuse to start,
    /// naming the file) or `fetch` (pull them; without network, start with a stand-in that says what is
    /// missing). A file with the wrong digest is always an error.
    pub on_missing: Option<String>,
    /// Fake only: the answer's text. Default a fixed greeting.
    pub reply: Option<String>,
    /// Fake only: delay before the answer, in milliseconds. Default 0.
    pub latency_ms: Option<u64>,
    /// Fake only: delay between streamed chunks, in milliseconds. Default 0.
    pub chunk_interval_ms: Option<u64>,
    /// Fake only: answer every request with this HTTP status and an error body.
    pub status: Option<u16>,
    /// Fake only: break streams after this many chunks, as a connection reset would.
    pub reset_after_chunks: Option<u64>,
    /// Fake only: embedding vector size. Default 16.
    pub embedding_dims: Option<u64>,
    /// Fake only: panic inside the request handler, to exercise the gateway's panic handling. Default false.
    pub panic: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    /// The name clients use as `model`.
    pub name: String,
    pub provider: String,
    /// The model name sent upstream.
    pub model: String,
    /// `chat` (default) or `embeddings`.
    pub kind: Option<String>,
    /// `simple`, `standard` (default) or `complex`.
    pub tier: Option<String>,
    /// Region or jurisdiction label. Default `global`.
    pub region: Option<String>,
    pub price: Option<RawPrice>,
    /// Most requests in flight to this deployment at once.
    pub max_concurrent: Option<u32>,
    /// Output tokens requested upstream when a budget applies and the client set no `max_tokens`. Default
    /// 4096.
    pub max_output_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per million input tokens.
    pub input_per_mtok: f64,
    /// USD per million output tokens.
    pub output_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Logical model name clients use as `model`.
    pub name: String,
    /// Deployments serving it, tried in this order.
    pub deployments: Vec<String>,
}
