//! Configuration: the TOML file (`raw`) validated in one step into strong types. Secrets come from the
//! environment map or files, never inline, and never print.

mod raw;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use raw::RawConfig;

/// The process environment, passed in rather than read ad hoc (tests pass their own).
pub type Env = HashMap<String, String>;

/// A configuration mistake, naming the field and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML for Sluice: {0}")]
    Parse(String),
    #[error("config field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A secret value that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub logging: LoggingConfig,
    pub audit: AuditConfig,
    pub policies: PolicyConfig,
    pub cache: CacheConfig,
    pub routing: RoutingConfig,
}

/// Fuel per millisecond of deadline, unless the operator sets `policies.fuel_per_ms`: about what a busy loop
/// (the `loop` mode of `policies/test-hostile`) burns in a millisecond of wall-clock on one idle core, so that
/// running out of fuel happens at about the deadline on an idle machine.
///
/// Measured 2026-11-24 on the 2-core development machine, idle (a throwaway test in a debug build; the Wasm
/// code is Cranelift's optimized output either way): the loop given a fixed budget (10^8 fuel once, then 10^9
/// four times) under a 1 s deadline, so that the 4 s backstop stays far, timed until it ran out of fuel.
/// Three runs gave 4.7 to 6.4 million fuel per ms, 6.4 million in the least disturbed calls; rounded down to
/// 6 million, a loop stops after 0.9 to 1.3 deadlines. The built-in classifier on a 4.5 KB prompt (string
/// scanning; wasmtime charges `memory.copy` and `memory.fill` one unit per byte), instantiation included,
/// burned 5.0 to 6.9 million per ms: ordinary policy code runs out at about its deadline too.
pub const DEFAULT_FUEL_PER_MS: u64 = 6_000_000;

/// How the gateway compiles policy components (the compilation itself is `policy::compiler`).
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// On the blocking pool of the gateway's own runtime.
    #[default]
    InProcess,
    /// In a child process: this executable (the `sluice` binary), run as `sluice compile-policy`.
    Process(PathBuf),
}

/// Limits of tenant policies.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub default_deadline: Duration,
    pub max_deadline: Duration,
    /// Fuel per millisecond of a call's deadline (positive).
    pub fuel_per_ms: u64,
    pub max_memory_bytes: usize,
    pub max_upload_bytes: usize,
    pub compile_timeout: Duration,
    /// Heap the compiler process may use (its `RLIMIT_DATA`), in bytes.
    pub compile_memory_bytes: u64,
    /// Most policy versions, and bytes of them, a tenant stores (over all slots).
    pub max_versions: u32,
    pub max_stored_bytes: u64,
    /// CPU time a tenant's policy calls may use per second, in milliseconds.
    pub cpu_ms_per_second: u64,
    /// The pool tenant policy calls run on.
    pub pool: PoolConfig,
    pub quarantine_after: u32,
    pub cache_dir: Option<PathBuf>,
    /// Where components are compiled. Not a config file setting: `sluice serve` compiles in a child process
    /// of its own binary; embedders (and most tests) compile in-process.
    pub compiler: Compiler,
    /// How the CPU time of a policy call is read; `None` is the calling thread's CPU clock. Not a config
    /// file setting: tests that stand for a host which never scheduled a call give a clock that stands
    /// still.
    pub cpu_clock: Option<fn() -> Duration>,
}

/// The size and bounds of the pool tenant policy calls run on (`policy::pool`).
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Threads that run policy calls.
    pub workers: usize,
    /// Most calls of one tenant running at once.
    pub per_tenant: usize,
    /// Most calls waiting, over all tenants, and for one tenant.
    pub queue: usize,
    pub queue_per_tenant: usize,
}

/// The audit log's signing key and batching.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub origin: String,
    /// Ed25519 seed of the checkpoint signing key.
    pub signing_key: Secret,
    /// Master key of the content encryption (base64 of 32 bytes).
    pub master_key: Secret,
    pub retention_days: u32,
    pub batch_max: usize,
    pub checkpoint_interval: Duration,
    /// Where the last signed head of each log is kept, outside the database.
    pub heads_dir: PathBuf,
    pub max_concurrent_exports: usize,
    pub witnesses: Vec<WitnessConfig>,
}

/// A witness the gateway asks to cosign every checkpoint (`[[audit.witnesses]]`).
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// The witness's submission prefix, without a trailing `/`; requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's cosigner verifier key text (checked when the gateway starts).
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Most open client connections; `None` derives it from the open-file limit when serving.
    pub max_connections: Option<u32>,
    pub metrics_tenant_label: TenantLabel,
    pub h2_max_concurrent_streams: u32,
    pub shutdown_grace: Duration,
}

/// How `/metrics` names a request's tenant. Tenant ids are kept out by default: they are credentials'
/// neighbours and say nothing to a dashboard reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantLabel {
    /// The name the operator gave the tenant.
    Name,
    Id,
    /// No tenant label: requests are counted across tenants.
    None,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: String,
    pub max_connections: u32,
    pub durability: Durability,
}

/// What a committed transaction survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Power loss: every commit is fsynced.
    Fsync,
    /// A crash of the process, not of the machine: commits reach the OS, the fsync waits for checkpoints.
    Os,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// SHA-256 of the operator token; the token itself is never kept.
    pub token_sha256: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Server-side secret mixed into every API-key hash; kept outside the database.
    pub pepper: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub format: LogFormat,
    pub filter: String,
}

/// Providers, deployments and logical models: the part of the config that reloads on SIGHUP.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub providers: Vec<ProviderConfig>,
    pub deployments: Vec<DeploymentConfig>,
    /// Logical model name -> deployment names in fallback order.
    pub models: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    OpenAi {
        base_url: http::Uri,
        api_key: Option<Secret>,
    },
    Anthropic {
        base_url: http::Uri,
        api_key: Option<Secret>,
        version: String,
    },
    Fake(FakeScript),
    /// Models run in this process (`inference`).
    Local(LocalSettings),
}

/// Where a local provider's model files are and how each model's queue is bounded.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The folder `sluice models pull` fills: one folder per catalog model.
    pub models_dir: PathBuf,
    pub queue: crate::inference::QueueLimits,
    /// `on_missing = "fetch"`: `serve` pulls missing files, and without network starts with a stand-in.
    pub fetch_missing: bool,
}

/// What the in-process fake provider answers.
#[derive(Debug, Clone)]
pub struct FakeScript {
    pub reply: String,
    pub latency: Duration,
    pub chunk_interval: Duration,
    pub status: Option<http::StatusCode>,
    pub reset_after_chunks: Option<u64>,
    pub embedding_dims: usize,
    pub panic: bool,
}

impl FakeScript {
    /// A fake that answers `reply` at once (the stand-in for a local model whose files are missing).
    pub fn stand_in(reply: String) -> FakeScript {
        FakeScript {
            reply,
            latency: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            status: None,
            reset_after_chunks: None,
            embedding_dims: 384,
            panic: false,
        }
    }
}

/// The operator's limits (`[cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Off unless the operator turns it on (`[cache] enabled = true`).
    pub enabled: bool,
    /// Entries per index (a tenant's answers for one model family) before the least recently used goes.
    pub max_entries: usize,
    /// The largest answer kept, in bytes.
    pub max_entry_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            enabled: false,
            max_entries: 10_000,
            max_entry_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Simple,
    Standard,
    Complex,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Simple => "simple",
            Tier::Standard => "standard",
            Tier::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentKind {
    Chat,
    Embeddings,
}

/// Prices in integer micro-USD per million tokens (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input_micro_usd_per_mtok: u64,
    pub output_micro_usd_per_mtok: u64,
}

#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    pub name: String,
    pub provider: String,
    pub upstream_model: String,
    pub kind: DeploymentKind,
    pub tier: Tier,
    pub region: String,
    pub price: Price,
    pub max_concurrent: Option<u32>,
    /// Output tokens the gateway asks for when a budget applies and the client set no `max_tokens`, so that
    /// the budget reservation is a true bound.
    pub max_output_tokens: u32,
    /// SHA-256 (hex) of a local model's weights, recorded in the audit entries it answers.
    pub model_digest: Option<String>,
}

/// `max_output_tokens` when a deployment does not set it: every current chat model accepts this many.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;

impl Config {
    /// Reads and validates a config file; relative paths inside it are resolved against its folder.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, env)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str, base_dir: &Path, env: &Env) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        validate(raw, base_dir, env)
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Reads a secret from a file (trimmed) or an environment variable; the file wins when both are named.
fn read_secret(
    base: &Path,
    env: &Env,
    file: Option<&str>,
    env_var: Option<&str>,
    field: &str,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(file) = file {
        let path = resolve(base, file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            field_err(
                format!("{field}_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        return Ok(Some(Secret(text.trim().to_owned())));
    }
    if let Some(var) = env_var {
        return Ok(env.get(var).map(|v| Secret(v.trim().to_owned())));
    }
    Ok(None)
}

fn ms(v: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(v.unwrap_or(default))
}

fn validate(raw: RawConfig, base: &Path, env: &Env) -> Result<Config, ConfigError> {
    if raw.version != 1 {
        return Err(field_err(
            "version",
            format!("unsupported version {}, expected 1", raw.version),
        ));
    }
    let server = validate_server(raw.server, base)?;
    let storage = StorageConfig {
        url: raw
            .storage
            .url
            .unwrap_or_else(|| "sqlite://sluice.db".to_owned()),
        max_connections: raw.storage.max_connections.unwrap_or(8).max(1),
        durability: match raw.storage.durability.as_deref() {
            None | Some("fsync") => Durability::Fsync,
            Some("os") => Durability::Os,
            Some(other) => {
                return Err(field_err(
                    "storage.durability",
                    format!("`{other}` is not one of fsync, os"),
                ));
            }
        },
    };
    if !(storage.url.starts_with("sqlite:")) {
        return Err(field_err(
            "storage.url",
            "only sqlite: URLs are supported by this build (PostgreSQL is planned)",
        ));
    }
    let admin = validate_admin(raw.admin, base, env)?;
    let pepper = read_secret(
        base,
        env,
        raw.auth.pepper_file.as_deref(),
        Some(
            raw.auth
                .pepper_env
                .as_deref()
                .unwrap_or("SLUICE_KEY_PEPPER"),
        ),
        "auth.pepper",
    )?
    .ok_or_else(|| {
        field_err(
            "auth.pepper_env",
            format!(
                "environment variable {} is not set and no auth.pepper_file is given",
                raw.auth
                    .pepper_env
                    .as_deref()
                    .unwrap_or("SLUICE_KEY_PEPPER")
            ),
        )
    })?;
    if pepper.expose().len() < 32 {
        return Err(field_err(
            "auth.pepper",
            "the pepper must be at least 32 characters",
        ));
    }
    let logging = LoggingConfig {
        format: match raw.logging.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(field_err(
                    "logging.format",
                    format!("`{other}` is not one of text, json"),
                ));
            }
        },
        filter: raw.logging.filter.unwrap_or_else(|| "info".to_owned()),
    };
    let audit = validate_audit(raw.audit, base, env)?;
    let policies = validate_policies(raw.policies, base, &storage.url)?;
    let cache = validate_cache(&raw.cache)?;
    let routing = validate_routing(raw.providers, raw.deployments, raw.models, base, env)?;
    Ok(Config {
        cache,
        server,
        storage,
        admin,
        auth: AuthConfig { pepper },
        logging,
        audit,
        policies,
        routing,
    })
}

fn validate_cache(raw: &raw::RawCache) -> Result<CacheConfig, ConfigError> {
    let defaults = CacheConfig::default();
    let positive = |field: &str, v: Option<u64>, default: usize| match v {
        None => Ok(default),
        Some(0) => Err(field_err(field, "must be at least 1")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    Ok(CacheConfig {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        max_entries: positive("cache.max_entries", raw.max_entries, defaults.max_entries)?,
        max_entry_bytes: positive(
            "cache.max_entry_bytes",
            raw.max_entry_bytes,
            defaults.max_entry_bytes,
        )?,
    })
}

fn validate_policies(
    raw: raw::RawPolicies,
    base: &Path,
    storage_url: &str,
) -> Result<PolicyConfig, ConfigError> {
    let ms = |field: &str, v: Option<u64>, default: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            return Err(field_err(
                format!("policies.{field}"),
                format!("must be between 1 and {max}"),
            ));
        }
        Ok(Duration::from_millis(v))
    };
    let default_deadline = ms("default_deadline_ms", raw.default_deadline_ms, 5, 1_000)?;
    let max_deadline = ms("max_deadline_ms", raw.max_deadline_ms, 50, 1_000)?;
    if default_deadline > max_deadline {
        return Err(field_err(
            "policies.default_deadline_ms",
            "must not exceed policies.max_deadline_ms",
        ));
    }
    let fuel_per_ms = raw.fuel_per_ms.unwrap_or(DEFAULT_FUEL_PER_MS);
    if fuel_per_ms == 0 {
        return Err(field_err("policies.fuel_per_ms", "must be positive"));
    }
    let memory_mib = raw.max_memory_mib.unwrap_or(32);
    if !(1..=1024).contains(&memory_mib) {
        return Err(field_err(
            "policies.max_memory_mib",
            "must be between 1 and 1024",
        ));
    }
    let max_upload = raw.max_upload_bytes.unwrap_or(4 << 20);
    if !(1_024..=64 << 20).contains(&max_upload) {
        return Err(field_err(
            "policies.max_upload_bytes",
            "must be between 1024 and 67108864",
        ));
    }
    let compile_timeout = ms(
        "compile_timeout_ms",
        raw.compile_timeout_ms,
        10_000,
        600_000,
    )?;
    let quarantine_after = raw.quarantine_after.unwrap_or(5);
    if quarantine_after == 0 {
        return Err(field_err("policies.quarantine_after", "must be positive"));
    }
    let cache_dir = match raw.cache_dir {
        Some(dir) => Some(base.join(dir)),
        // Beside the database, which is opened as its URL says (relative to the working directory).
        None => sqlite_file(storage_url).map(|db| {
            Path::new(db)
                .parent()
                .map_or_else(|| PathBuf::from("policy-cache"), |p| p.join("policy-cache"))
        }),
    };
    let count = |field: &str, v: Option<usize>, default: usize, max: usize| match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(field_err(
            format!("policies.{field}"),
            format!("must be between 1 and {max}"),
        )),
    };
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let workers = count("workers", raw.workers, cores, 256)?;
    let queue = count("queue", raw.queue, 1_024, 1 << 20)?;
    let pool = PoolConfig {
        workers,
        per_tenant: count(
            "workers_per_tenant",
            raw.workers_per_tenant,
            workers.div_ceil(2),
            workers,
        )?,
        queue,
        // One tenant may hold at most the whole queue; the pool keeps room for the others regardless
        // (`policy::pool`: the longest line gives way).
        queue_per_tenant: count(
            "queue_per_tenant",
            raw.queue_per_tenant,
            (queue / 4).clamp(1, 256),
            queue,
        )?,
    };
    Ok(PolicyConfig {
        pool,
        default_deadline,
        max_deadline,
        fuel_per_ms,
        max_memory_bytes: usize::try_from(memory_mib << 20).unwrap_or(usize::MAX),
        max_upload_bytes: usize::try_from(max_upload).unwrap_or(usize::MAX),
        compile_timeout,
        compile_memory_bytes: raw.compile_memory_mib.unwrap_or(1024).clamp(64, 1 << 20) << 20,
        max_versions: raw.max_versions.unwrap_or(20).max(1),
        cpu_ms_per_second: raw.cpu_ms_per_second.unwrap_or(500).max(1),
        max_stored_bytes: raw.max_stored_mib.unwrap_or(50).clamp(1, 1 << 20) << 20,
        quarantine_after,
        cache_dir,
        compiler: Compiler::InProcess,
        cpu_clock: None,
    })
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:" && !path.contains("mode=memory")).then_some(path)
}

fn validate_server(raw: raw::RawServer, base: &Path) -> Result<ServerConfig, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        field_err(
            "server.listen",
            format!("`{listen_text}` is not an IP:port socket address"),
        )
    })?;
    let tls = raw.tls.map(|t| TlsConfig {
        cert_path: resolve(base, &t.cert_path),
        key_path: resolve(base, &t.key_path),
    });
    if tls.is_none() && !listen.ip().is_loopback() && !raw.insecure_plaintext.unwrap_or(false) {
        return Err(field_err(
            "server.tls",
            "plain HTTP is only allowed on a loopback address; configure [server.tls] or set \
             server.insecure_plaintext = true behind a TLS-terminating proxy",
        ));
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(4 * 1024 * 1024);
    if max_body_bytes == 0 {
        return Err(field_err("server.max_body_bytes", "must be positive"));
    }
    let h2 = raw.h2_max_concurrent_streams.unwrap_or(128);
    Ok(ServerConfig {
        listen,
        tls,
        max_body_bytes,
        max_header_bytes: usize::try_from(raw.max_header_bytes.unwrap_or(64 * 1024))
            .unwrap_or(usize::MAX)
            .max(1024),
        max_headers: usize::try_from(raw.max_headers.unwrap_or(100))
            .unwrap_or(usize::MAX)
            .max(8),
        header_read_timeout: ms(raw.header_read_timeout_ms, 10_000),
        idle_timeout: Duration::from_secs(raw.idle_timeout_s.unwrap_or(60).max(1)),
        max_connections: match raw.max_connections {
            Some(0) => return Err(field_err("server.max_connections", "must be positive")),
            n => n,
        },
        metrics_tenant_label: match raw.metrics_tenant_label.as_deref() {
            None | Some("name") => TenantLabel::Name,
            Some("id") => TenantLabel::Id,
            Some("none") => TenantLabel::None,
            Some(_) => {
                return Err(field_err(
                    "server.metrics_tenant_label",
                    "must be `name`, `id` or `none`",
                ));
            }
        },
        h2_max_concurrent_streams: u32::try_from(h2)
            .map_err(|_| field_err("server.h2_max_concurrent_streams", "must fit in 32 bits"))?,
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_s.unwrap_or(30)),
    })
}

fn validate_admin(raw: raw::RawAdmin, base: &Path, env: &Env) -> Result<AdminConfig, ConfigError> {
    if let Some(hex) = raw.token_sha256 {
        let bytes = decode_hex32(&hex)
            .ok_or_else(|| field_err("admin.token_sha256", "must be 64 hex characters"))?;
        return Ok(AdminConfig {
            token_sha256: bytes,
        });
    }
    let env_var = raw
        .token_env
        .clone()
        .unwrap_or_else(|| "SLUICE_ADMIN_TOKEN".to_owned());
    let token = read_secret(
        base,
        env,
        raw.token_file.as_deref(),
        Some(&env_var),
        "admin.token",
    )?
    .ok_or_else(|| {
        field_err(
            "admin.token_env",
            format!(
                "environment variable {env_var} is not set and neither admin.token_file nor \
                 admin.token_sha256 is given"
            ),
        )
    })?;
    if token.expose().len() < 16 {
        return Err(field_err(
            "admin.token",
            "the operator token must be at least 16 characters",
        ));
    }
    Ok(AdminConfig {
        token_sha256: Sha256::digest(token.expose().as_bytes()).into(),
    })
}

/// A required 32-byte audit key (base64) from `audit.<name>_file` or `audit.<name>_env`.
fn audit_key(
    base: &Path,
    env: &Env,
    name: &str,
    file: Option<&str>,
    env_var: Option<&str>,
    default_env: &str,
) -> Result<Secret, ConfigError> {
    let var = env_var.unwrap_or(default_env);
    let key =
        read_secret(base, env, file, Some(var), &format!("audit.{name}"))?.ok_or_else(|| {
            field_err(
                format!("audit.{name}_env"),
                format!(
                    "environment variable {var} is not set and no audit.{name}_file is given \
                 (`sluice init` writes one)"
                ),
            )
        })?;
    if key32_from_text(key.expose()).is_none() {
        return Err(field_err(
            format!("audit.{name}"),
            "must be 32 bytes, base64-encoded",
        ));
    }
    Ok(key)
}

fn validate_audit(raw: raw::RawAudit, base: &Path, env: &Env) -> Result<AuditConfig, ConfigError> {
    let origin = raw.origin.unwrap_or_else(|| "sluice".to_owned());
    if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
        return Err(field_err(
            "audit.origin",
            "must be non-empty, without spaces or `+`",
        ));
    }
    let signing_key = audit_key(
        base,
        env,
        "signing_key",
        raw.signing_key_file.as_deref(),
        raw.signing_key_env.as_deref(),
        "SLUICE_AUDIT_SIGNING_KEY",
    )?;
    let master_key = audit_key(
        base,
        env,
        "master_key",
        raw.master_key_file.as_deref(),
        raw.master_key_env.as_deref(),
        "SLUICE_AUDIT_MASTER_KEY",
    )?;
    Ok(AuditConfig {
        origin,
        signing_key,
        master_key,
        retention_days: raw.retention_days.unwrap_or(365),
        batch_max: usize::try_from(raw.batch_max.unwrap_or(1024))
            .unwrap_or(usize::MAX)
            .clamp(1, 65_536),
        checkpoint_interval: ms(raw.checkpoint_interval_ms, 1_000),
        heads_dir: match (&raw.heads_dir, &raw.signing_key_file) {
            (Some(dir), _) => base.join(dir),
            (None, Some(key)) => base
                .join(key)
                .parent()
                .map_or_else(|| base.to_owned(), Path::to_owned)
                .join("audit-heads"),
            (None, None) => base.join("audit-heads"),
        },
        max_concurrent_exports: usize::try_from(raw.max_concurrent_exports.unwrap_or(2).max(1))
            .unwrap_or(1),
        witnesses: raw
            .witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let field = |f: &str| format!("audit.witnesses[{i}].{f}");
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(field_err(
                        field("url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                if w.key.trim().splitn(3, '+').count() != 3 {
                    return Err(field_err(
                        field("key"),
                        "must be a verifier key `name+keyid+key`",
                    ));
                }
                Ok(WitnessConfig {
                    url: w.url.trim_end_matches('/').to_owned(),
                    key: w.key.trim().to_owned(),
                })
            })
            .collect::<Result<_, _>>()?,
    })
}

pub use sluice_audit::{decode_hex32, key32_from_text};

fn parse_base_url(
    field: &str,
    url: Option<String>,
    default: &str,
) -> Result<http::Uri, ConfigError> {
    let text = url.unwrap_or_else(|| default.to_owned());
    let uri: http::Uri = text
        .trim_end_matches('/')
        .parse()
        .map_err(|e| field_err(field, format!("`{text}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(field_err(
                field,
                "the URL must start with http:// or https://",
            ));
        }
    }
    if uri.host().is_none() {
        return Err(field_err(field, "the URL has no host"));
    }
    Ok(uri)
}

pub(crate) fn price_micro(field: &str, usd: f64) -> Result<u64, ConfigError> {
    if !usd.is_finite() || !(0.0..=1_000_000.0).contains(&usd) {
        return Err(field_err(
            field,
            "must be a price in USD between 0 and 1,000,000",
        ));
    }
    // Integer micro-USD keeps cost arithmetic exact; prices finer than a micro-dollar are rounded.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "range checked above"
    )]
    Ok((usd * 1_000_000.0).round() as u64)
}

fn validate_routing(
    providers: Vec<raw::RawProvider>,
    deployments: Vec<raw::RawDeployment>,
    models: Vec<raw::RawModel>,
    base: &Path,
    env: &Env,
) -> Result<RoutingConfig, ConfigError> {
    // Sections in order, each checked against the names the ones before it defined.
    let mut provider_kinds = HashMap::new();
    let providers = validate_providers(providers, base, env, &mut provider_kinds)?;
    // Deployment and model names share one namespace: clients use both as `model`.
    let mut names = HashSet::new();
    let deployments = validate_deployments(deployments, &provider_kinds, &mut names)?;
    let models = validate_models(models, &deployments, &mut names)?;
    Ok(RoutingConfig {
        providers,
        deployments,
        models,
    })
}

/// The `[[providers]]` section. Adds every provider's name and kind to `provider_kinds` (deployments are
/// checked against their provider's kind).
fn validate_providers(
    providers: Vec<raw::RawProvider>,
    base: &Path,
    env: &Env,
    provider_kinds: &mut HashMap<String, String>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out_providers = Vec::with_capacity(providers.len());
    for (i, p) in providers.into_iter().enumerate() {
        let f = |name: &str| format!("providers[{i}].{name}");
        if p.name.is_empty() {
            return Err(field_err(f("name"), "must not be empty"));
        }
        if provider_kinds
            .insert(p.name.clone(), p.kind.clone())
            .is_some()
        {
            return Err(field_err(
                f("name"),
                format!("duplicate provider `{}`", p.name),
            ));
        }
        out_providers.push(validate_provider(i, p, base, env)?);
    }
    Ok(out_providers)
}

/// One provider (`providers[i]`) whose name was checked already: its API key, kind and timeouts.
fn validate_provider(
    i: usize,
    p: raw::RawProvider,
    base: &Path,
    env: &Env,
) -> Result<ProviderConfig, ConfigError> {
    let f = |name: &str| format!("providers[{i}].{name}");
    reject_fake_only(i, &p)?;
    let api_key = read_secret(
        base,
        env,
        p.api_key_file.as_deref(),
        p.api_key_env.as_deref(),
        &f("api_key"),
    )?;
    // A named variable that is unset is a mistake, not a provider without a key.
    if let (Some(var), None) = (&p.api_key_env, &api_key) {
        return Err(field_err(
            f("api_key_env"),
            format!("environment variable {var} is not set"),
        ));
    }
    let kind = match p.kind.as_str() {
        "openai" => ProviderKind::OpenAi {
            base_url: parse_base_url(&f("base_url"), p.base_url, "https://api.openai.com/v1")?,
            api_key,
        },
        "anthropic" => ProviderKind::Anthropic {
            base_url: parse_base_url(&f("base_url"), p.base_url, "https://api.anthropic.com/v1")?,
            api_key,
            version: p
                .anthropic_version
                .unwrap_or_else(|| "2023-06-01".to_owned()),
        },
        "fake" => fake_provider(i, &p)?,
        "local" => local_provider(i, &p, base)?,
        other => {
            return Err(field_err(
                f("kind"),
                format!("`{other}` is not one of openai, anthropic, local, fake"),
            ));
        }
    };
    Ok(ProviderConfig {
        name: p.name,
        kind,
        timeouts: Timeouts {
            connect: ms(p.connect_timeout_ms, 5_000),
            first_byte: ms(p.first_byte_timeout_ms, 60_000),
            total: ms(p.total_timeout_ms, 600_000),
        },
    })
}

/// The fake and local providers' own settings are an error on another kind: they would silently do nothing.
fn reject_fake_only(i: usize, p: &raw::RawProvider) -> Result<(), ConfigError> {
    let fake_only = [
        ("reply", p.reply.is_some()),
        ("latency_ms", p.latency_ms.is_some()),
        ("chunk_interval_ms", p.chunk_interval_ms.is_some()),
        ("status", p.status.is_some()),
        ("reset_after_chunks", p.reset_after_chunks.is_some()),
        ("embedding_dims", p.embedding_dims.is_some()),
        ("panic", p.panic.is_some()),
    ];
    if p.kind != "fake"
        && let Some((name, _)) = fake_only.iter().find(|(_, set)| *set)
    {
        return Err(field_err(
            format!("providers[{i}].{name}"),
            "only valid for kind = \"fake\"",
        ));
    }
    let local_only = [
        ("models_dir", p.models_dir.is_some()),
        ("queue", p.queue.is_some()),
        ("queue_per_tenant", p.queue_per_tenant.is_some()),
        ("on_missing", p.on_missing.is_some()),
    ];
    if p.kind != "local"
        && let Some((name, _)) = local_only.iter().find(|(_, set)| *set)
    {
        return Err(field_err(
            format!("providers[{i}].{name}"),
            "only valid for kind = \"local\"",
        ));
    }
    Ok(())
}

/// The script of a `kind = "fake"` provider (`providers[i]`).
fn fake_provider(i: usize, p: &raw::RawProvider) -> Result<ProviderKind, ConfigError> {
    let f = |name: &str| format!("providers[{i}].{name}");
    if p.base_url.is_some() {
        return Err(field_err(f("base_url"), "not valid for kind = \"fake\""));
    }
    let status = match p.status {
        None => None,
        Some(code) => Some(
            http::StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| field_err(f("status"), "must be an HTTP error status (400-599)"))?,
        ),
    };
    Ok(ProviderKind::Fake(FakeScript {
        reply: p
            .reply
            .clone()
            .unwrap_or_else(|| "Hello from the Sluice fake provider.".to_owned()),
        latency: ms(p.latency_ms, 0),
        chunk_interval: ms(p.chunk_interval_ms, 0),
        status,
        reset_after_chunks: p.reset_after_chunks,
        embedding_dims: usize::try_from(p.embedding_dims.unwrap_or(16))
            .ok()
            .filter(|d| (1..=8192).contains(d))
            .ok_or_else(|| field_err(f("embedding_dims"), "must be 1 to 8192"))?,
        panic: p.panic.unwrap_or(false),
    }))
}

/// The settings of a `kind = "local"` provider (`providers[i]`): where its model files are and how its
/// models' queues are bounded.
fn local_provider(
    i: usize,
    p: &raw::RawProvider,
    base: &Path,
) -> Result<ProviderKind, ConfigError> {
    let f = |name: &str| format!("providers[{i}].{name}");
    for (name, set) in [
        ("base_url", p.base_url.is_some()),
        ("api_key_env", p.api_key_env.is_some()),
        ("api_key_file", p.api_key_file.is_some()),
        ("anthropic_version", p.anthropic_version.is_some()),
    ] {
        if set {
            return Err(field_err(f(name), "not valid for kind = \"local\""));
        }
    }
    let defaults = crate::inference::QueueLimits::default();
    let capacity = match p.queue {
        None => defaults.capacity,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| field_err(f("queue"), "must be 1 to 100000"))?,
    };
    let per_tenant = match p.queue_per_tenant {
        None => capacity.div_ceil(2),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=capacity).contains(n))
            .ok_or_else(|| field_err(f("queue_per_tenant"), "must be 1 to `queue`"))?,
    };
    let fetch_missing = match p.on_missing.as_deref() {
        None | Some("error") => false,
        Some("fetch") => true,
        Some(other) => {
            return Err(field_err(
                f("on_missing"),
                format!("`{other}` is not one of error, fetch"),
            ));
        }
    };
    let dir = p.models_dir.as_deref().unwrap_or("models");
    Ok(ProviderKind::Local(LocalSettings {
        fetch_missing,
        models_dir: base.join(dir),
        queue: crate::inference::QueueLimits {
            capacity,
            per_tenant,
        },
    }))
}

/// The `[[deployments]]` section, against the providers defined. Adds every deployment's name to `names`.
fn validate_deployments(
    deployments: Vec<raw::RawDeployment>,
    provider_kinds: &HashMap<String, String>,
    names: &mut HashSet<String>,
) -> Result<Vec<DeploymentConfig>, ConfigError> {
    let mut out_deployments = Vec::with_capacity(deployments.len());
    for (i, d) in deployments.into_iter().enumerate() {
        let f = |name: &str| format!("deployments[{i}].{name}");
        if d.name.is_empty() || d.name == "auto" {
            return Err(field_err(
                f("name"),
                "must be non-empty and not the reserved name `auto`",
            ));
        }
        if !names.insert(d.name.clone()) {
            return Err(field_err(
                f("name"),
                format!("duplicate deployment `{}`", d.name),
            ));
        }
        let Some(provider_kind) = provider_kinds.get(&d.provider) else {
            return Err(field_err(
                f("provider"),
                format!("no provider named `{}`", d.provider),
            ));
        };
        out_deployments.push(validate_deployment(i, d, provider_kind)?);
    }
    Ok(out_deployments)
}

/// One deployment (`deployments[i]`) whose name and provider were checked already.
fn validate_deployment(
    i: usize,
    d: raw::RawDeployment,
    provider_kind: &str,
) -> Result<DeploymentConfig, ConfigError> {
    let f = |name: &str| format!("deployments[{i}].{name}");
    let kind = match d.kind.as_deref() {
        None | Some("chat") => DeploymentKind::Chat,
        Some("embeddings") => DeploymentKind::Embeddings,
        Some(other) => {
            return Err(field_err(
                f("kind"),
                format!("`{other}` is not one of chat, embeddings"),
            ));
        }
    };
    if kind == DeploymentKind::Embeddings && provider_kind == "anthropic" {
        return Err(field_err(
            f("kind"),
            "Anthropic providers do not serve embeddings",
        ));
    }
    let mut model_digest = None;
    if provider_kind == "local" {
        let wanted = match kind {
            DeploymentKind::Chat => crate::inference::catalog::ModelKind::Chat,
            DeploymentKind::Embeddings => crate::inference::catalog::ModelKind::Embeddings,
        };
        let package = crate::inference::package(&d.model, wanted)
            .map_err(|e| field_err(f("model"), e.to_string()))?;
        model_digest = Some(package.weights().sha256.to_owned());
    }
    let tier = match d.tier.as_deref() {
        Some("simple") => Tier::Simple,
        None | Some("standard") => Tier::Standard,
        Some("complex") => Tier::Complex,
        Some(other) => {
            return Err(field_err(
                f("tier"),
                format!("`{other}` is not one of simple, standard, complex"),
            ));
        }
    };
    let price = deployment_price(i, d.price)?;
    if d.max_concurrent == Some(0) {
        return Err(field_err(f("max_concurrent"), "must be at least 1"));
    }
    if d.max_output_tokens == Some(0) {
        return Err(field_err(f("max_output_tokens"), "must be at least 1"));
    }
    Ok(DeploymentConfig {
        name: d.name,
        provider: d.provider,
        upstream_model: d.model,
        kind,
        tier,
        region: d.region.unwrap_or_else(|| "global".to_owned()),
        price,
        max_concurrent: d.max_concurrent,
        max_output_tokens: d.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        model_digest,
    })
}

/// A deployment's price in micro-USD; without one it costs nothing.
fn deployment_price(i: usize, price: Option<raw::RawPrice>) -> Result<Price, ConfigError> {
    let f = |name: &str| format!("deployments[{i}].{name}");
    Ok(match price {
        None => Price::default(),
        Some(p) => Price {
            input_micro_usd_per_mtok: price_micro(&f("price.input_per_mtok"), p.input_per_mtok)?,
            output_micro_usd_per_mtok: price_micro(&f("price.output_per_mtok"), p.output_per_mtok)?,
        },
    })
}

/// The `[[models]]` section: each model names deployments defined above, all of one kind. `names` holds
/// the deployment names; model names join them.
fn validate_models(
    models: Vec<raw::RawModel>,
    deployments: &[DeploymentConfig],
    names: &mut HashSet<String>,
) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let mut out_models = Vec::with_capacity(models.len());
    for (i, m) in models.into_iter().enumerate() {
        let f = |name: &str| format!("models[{i}].{name}");
        if m.name.is_empty() || m.name == "auto" {
            return Err(field_err(
                f("name"),
                "must be non-empty and not the reserved name `auto`",
            ));
        }
        if !names.insert(m.name.clone()) {
            return Err(field_err(
                f("name"),
                format!("`{}` is already a deployment or model name", m.name),
            ));
        }
        if m.deployments.is_empty() {
            return Err(field_err(
                f("deployments"),
                "must name at least one deployment",
            ));
        }
        let mut kinds = HashSet::new();
        for (j, d) in m.deployments.iter().enumerate() {
            let Some(dep) = deployments.iter().find(|x| &x.name == d) else {
                return Err(field_err(
                    format!("models[{i}].deployments[{j}]"),
                    format!("no deployment named `{d}`"),
                ));
            };
            kinds.insert(dep.kind == DeploymentKind::Chat);
        }
        // Fallback must not switch a request between chat and embeddings.
        if kinds.len() > 1 {
            return Err(field_err(
                f("deployments"),
                "mixes chat and embeddings deployments",
            ));
        }
        out_models.push((m.name, m.deployments));
    }
    Ok(out_models)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env() -> Env {
        HashMap::from([
            (
                "SLUICE_ADMIN_TOKEN".to_owned(),
                "operator-token-0123456789".to_owned(),
            ),
            (
                "SLUICE_KEY_PEPPER".to_owned(),
                "pepper-pepper-pepper-pepper-pepper-0".to_owned(),
            ),
            ("UPSTREAM_API_KEY".to_owned(), "sk-upstream".to_owned()),
            (
                "SLUICE_AUDIT_SIGNING_KEY".to_owned(),
                "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_owned(),
            ),
            (
                "SLUICE_AUDIT_MASTER_KEY".to_owned(),
                "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=".to_owned(),
            ),
        ])
    }

    const ISSUE_EXAMPLE: &str = r#"
version = 1
[server]
listen = "127.0.0.1:8080"
[storage]
url = "sqlite://sluice.db"
[admin]
token_env = "SLUICE_ADMIN_TOKEN"
[[providers]]
name = "upstream"
kind = "openai"
base_url = "http://127.0.0.1:9999/v1"
api_key_env = "UPSTREAM_API_KEY"
[[deployments]]
name = "small"
provider = "upstream"
model = "small-model"
tier = "simple"
region = "eu"
price = { input_per_mtok = 0.10, output_per_mtok = 0.40 }
"#;

    fn err(text: &str) -> String {
        Config::from_toml(text, Path::new("."), &env())
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn witnesses_take_a_cosigner_key_whose_base64_holds_plus_signs() {
        let key = "witness.example/w1+5222e616+BIDXBET9FhnMstHfFeOG21ykKbjDMJK+ieoKqqGIdAiD";
        let text = format!(
            "{ISSUE_EXAMPLE}\n[[audit.witnesses]]\nurl = \"http://127.0.0.1:7380/\"\nkey = \"{key}\"\n"
        );
        let c = Config::from_toml(&text, Path::new("."), &env()).unwrap();
        assert_eq!(c.audit.witnesses.len(), 1);
        assert_eq!(c.audit.witnesses[0].url, "http://127.0.0.1:7380");
        assert_eq!(c.audit.witnesses[0].key, key);
        let bad = text.replace("http://127.0.0.1:7380/", "ftp://w");
        assert!(
            err(&bad).contains("audit.witnesses[0].url"),
            "{}",
            err(&bad)
        );
        let bad = text.replace(key, "not-a-key");
        assert!(
            err(&bad).contains("audit.witnesses[0].key"),
            "{}",
            err(&bad)
        );
    }

    #[test]
    fn one_tenants_share_of_the_policy_queue_is_at_most_the_queue() {
        let with = |lines: &str| format!("{ISSUE_EXAMPLE}\n[policies]\n{lines}\n");
        let c = Config::from_toml(&with("queue = 16"), Path::new("."), &env()).unwrap();
        assert_eq!(
            (c.policies.pool.queue, c.policies.pool.queue_per_tenant),
            (16, 4)
        );
        let c = Config::from_toml(&with(""), Path::new("."), &env()).unwrap();
        assert_eq!(
            (c.policies.pool.queue, c.policies.pool.queue_per_tenant),
            (1024, 256)
        );
        let e = err(&with("queue = 16\nqueue_per_tenant = 256"));
        assert_eq!(
            e, "config field `policies.queue_per_tenant`: must be between 1 and 16",
            "{e}"
        );
        let c = Config::from_toml(
            &with("queue = 16\nqueue_per_tenant = 16"),
            Path::new("."),
            &env(),
        )
        .unwrap();
        assert_eq!(c.policies.pool.queue_per_tenant, 16);
    }

    #[test]
    fn the_documented_shape_is_accepted() {
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("."), &env()).unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        let d = &c.routing.deployments[0];
        assert_eq!(d.tier, Tier::Simple);
        assert_eq!(d.region, "eu");
        assert_eq!(d.price.input_micro_usd_per_mtok, 100_000);
        assert_eq!(d.price.output_micro_usd_per_mtok, 400_000);
        match &c.routing.providers[0].kind {
            ProviderKind::OpenAi { api_key, base_url } => {
                assert_eq!(api_key.as_ref().unwrap().expose(), "sk-upstream");
                assert_eq!(base_url.path(), "/v1");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            !format!("{c:?}").contains("sk-upstream"),
            "secrets must not print"
        );
    }

    #[test]
    fn golden_config_errors_name_the_field() {
        let typo = ISSUE_EXAMPLE.replace("listen =", "listn =");
        insta::assert_snapshot!(err(&typo), @r###"
            config is not valid TOML for Sluice: TOML parse error at line 4, column 1
              |
            4 | listn = "127.0.0.1:8080"
              | ^^^^^
            unknown field `listn`, expected one of `listen`, `insecure_plaintext`, `tls`, `max_body_bytes`, `max_header_bytes`, `max_headers`, `header_read_timeout_ms`, `idle_timeout_s`, `max_connections`, `metrics_tenant_label`, `h2_max_concurrent_streams`, `shutdown_grace_s`
            "###);
        let bad_tier = ISSUE_EXAMPLE.replace("\"simple\"", "\"simplest\"");
        insta::assert_snapshot!(err(&bad_tier), @"config field `deployments[0].tier`: `simplest` is not one of simple, standard, complex");
        let bad_provider = ISSUE_EXAMPLE.replace("provider = \"upstream\"", "provider = \"nope\"");
        insta::assert_snapshot!(err(&bad_provider), @"config field `deployments[0].provider`: no provider named `nope`");
        let bad_version = ISSUE_EXAMPLE.replace("version = 1", "version = 2");
        insta::assert_snapshot!(err(&bad_version), @"config field `version`: unsupported version 2, expected 1");
        let missing_env = ISSUE_EXAMPLE.replace("UPSTREAM_API_KEY", "MISSING_KEY");
        insta::assert_snapshot!(err(&missing_env), @"config field `providers[0].api_key_env`: environment variable MISSING_KEY is not set");
        let public_plain = ISSUE_EXAMPLE.replace("127.0.0.1:8080", "0.0.0.0:8080");
        insta::assert_snapshot!(err(&public_plain), @"config field `server.tls`: plain HTTP is only allowed on a loopback address; configure [server.tls] or set server.insecure_plaintext = true behind a TLS-terminating proxy");
        let negative = ISSUE_EXAMPLE.replace("0.10", "-1.0");
        insta::assert_snapshot!(err(&negative), @"config field `deployments[0].price.input_per_mtok`: must be a price in USD between 0 and 1,000,000");
        let fake_field = ISSUE_EXAMPLE.replace("api_key_env", "reply = \"x\"\napi_key_env");
        insta::assert_snapshot!(err(&fake_field), @r###"
            config field `providers[0].reply`: only valid for kind = "fake"
            "###);
    }

    #[test]
    fn policy_fuel_is_positive_and_defaults_to_the_calibrated_rate() {
        let zero = format!("{ISSUE_EXAMPLE}\n[policies]\nfuel_per_ms = 0\n");
        insta::assert_snapshot!(err(&zero), @"config field `policies.fuel_per_ms`: must be positive");
        let set = format!("{ISSUE_EXAMPLE}\n[policies]\nfuel_per_ms = 7\n");
        let c = Config::from_toml(&set, Path::new("."), &env()).unwrap();
        assert_eq!(c.policies.fuel_per_ms, 7);
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("."), &env()).unwrap();
        assert_eq!(c.policies.fuel_per_ms, DEFAULT_FUEL_PER_MS);
    }

    #[test]
    fn logical_models_must_name_known_deployments() {
        let text = format!(
            "{ISSUE_EXAMPLE}\n[[models]]\nname = \"chat\"\ndeployments = [\"small\", \"big\"]\n"
        );
        insta::assert_snapshot!(err(&text), @"config field `models[0].deployments[1]`: no deployment named `big`");
        let ok =
            format!("{ISSUE_EXAMPLE}\n[[models]]\nname = \"chat\"\ndeployments = [\"small\"]\n");
        let c = Config::from_toml(&ok, Path::new("."), &env()).unwrap();
        assert_eq!(
            c.routing.models,
            vec![("chat".to_owned(), vec!["small".to_owned()])]
        );
    }

    #[test]
    fn missing_pepper_and_token_fail_startup() {
        let mut e = env();
        e.remove("SLUICE_KEY_PEPPER");
        let msg = Config::from_toml(ISSUE_EXAMPLE, Path::new("."), &e)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("auth.pepper_env"), "{msg}");
        let mut e = env();
        e.remove("SLUICE_ADMIN_TOKEN");
        let msg = Config::from_toml(ISSUE_EXAMPLE, Path::new("."), &e)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("admin.token_env"), "{msg}");
    }
}
