//! `sluice policy`: `test` runs a policy component offline; `push`, `list`, `activate` and `rollback` manage
//! a tenant's policies on a running gateway with a tenant key.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Subcommand;

use crate::policy::{Slot, offline, wasm};

// No doc comments on the clap types: clap would turn them into help text.
#[derive(clap::Args)]
pub struct TenantRemote {
    /// Base URL of the running gateway.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// A tenant key with the admin or owner role.
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SlotArg {
    Auth,
    Classify,
    Route,
}

impl SlotArg {
    fn slot(self) -> Slot {
        match self {
            SlotArg::Auth => Slot::Auth,
            SlotArg::Classify => Slot::Classify,
            SlotArg::Route => Slot::Route,
        }
    }
}

#[derive(Subcommand)]
pub enum PolicyAction {
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
        #[arg(long, default_value_t = wasm::DEFAULT_FUEL_PER_MS, value_parser = clap::value_parser!(u64).range(1..))]
        fuel_per_ms: u64,
        /// The models folder (`sluice models pull`): the embedder, for a classifier that reads the request's
        /// embedding; without it such a classifier runs without one.
        #[arg(long, default_value = "models")]
        models: PathBuf,
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

/// What `sluice policy test` runs: a component, the inputs it is called with, and its limits.
struct OfflineTest {
    slot: Option<SlotArg>,
    inputs: offline::Inputs,
    limits: wasm::Limits,
}

/// Runs one `sluice policy` command. `test` exits with 1 when the policy call fails; the remote commands
/// print the gateway's JSON answer.
pub async fn run(action: PolicyAction) -> anyhow::Result<()> {
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
            models,
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
            let tier = tier.as_deref().map(parse_tier).transpose()?;
            let inputs = offline::Inputs {
                request,
                metadata: pairs(&meta, "--meta")?,
                catalog,
                tier,
                budget_micro_usd,
                labels: Vec::new(),
                embedding: None,
            };
            let limits = wasm::Limits {
                deadline: std::time::Duration::from_millis(deadline_ms.max(1)),
                fuel_per_ms,
                ..wasm::Limits::default()
            };
            let mut inputs = inputs;
            inputs.embedding = question_embedding(&bytes, &inputs.request, &models).await?;
            let test = OfflineTest {
                slot,
                inputs,
                limits,
            };
            return offline_test(&bytes, test);
        }
        PolicyAction::Push { file, slot, remote } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = format!("/v1/policies/{}", slot.slot().as_str());
            let body = Some(("application/wasm", Bytes::from(bytes)));
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
            let body = Some(("application/json", Bytes::from(body)));
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

/// The request's question embedded as the gateway does, when the component's classifier reads it (the
/// built-in classifier does, to tell the router's tier) and the embedder is in `models`.
async fn question_embedding(
    bytes: &[u8],
    request: &str,
    models: &std::path::Path,
) -> anyhow::Result<Option<wasm::Embedding>> {
    let policy = wasm::Runtime::new(wasm::Limits::default())?.load(bytes)?;
    let reads = policy.reads_embedding() || policy.exports(wasm::Slot::Route);
    if !reads {
        return Ok(None);
    }
    // A bad request is `offline::run`'s to report.
    let Some(question) = offline::parse_request(request)
        .ok()
        .and_then(|chat| crate::cache::key::question_text(&chat))
    else {
        return Ok(None);
    };
    let embedder = match crate::inference::LocalModels::default().embedder(
        models,
        "all-minilm-l6-v2",
        crate::inference::QueueLimits::default(),
    ) {
        Ok(e) => e,
        Err(e) => {
            println!("embedding: none ({e})");
            return Ok(None);
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut made = embedder
        .embed("offline", vec![question], deadline)
        .await
        .map_err(|e| anyhow::anyhow!("embedding the question: {e:?}"))?;
    Ok(made.pop().map(|e| wasm::Embedding {
        model_digest: format!("sha256:{}", embedder.digest),
        vector: e.vector,
    }))
}

/// `sluice policy test`: runs the component and prints its slot, log, decision, work and time; exits with 1
/// when the call failed.
fn offline_test(bytes: &[u8], test: OfflineTest) -> anyhow::Result<()> {
    let report = offline::run(
        bytes,
        test.slot.map(SlotArg::slot),
        &test.inputs,
        test.limits,
        101,
    )?;
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
    Ok(())
}

/// Parses `--tier`.
fn parse_tier(tier: &str) -> anyhow::Result<crate::config::Tier> {
    match tier {
        "simple" => Ok(crate::config::Tier::Simple),
        "standard" => Ok(crate::config::Tier::Standard),
        "complex" => Ok(crate::config::Tier::Complex),
        other => Err(anyhow::anyhow!(
            "--tier `{other}` is not one of simple, standard, complex"
        )),
    }
}

/// Splits each `NAME=VALUE` of a repeatable flag.
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

/// Calls a tenant endpoint with the tenant key, which must be set.
async fn tenant_call(
    remote: &TenantRemote,
    method: http::Method,
    path: String,
    body: Option<(&str, Bytes)>,
) -> anyhow::Result<serde_json::Value> {
    if remote.api_key.is_empty() {
        bail!("set SLUICE_API_KEY to a tenant key with the admin or owner role");
    }
    Ok(super::client::send(&remote.gateway, &remote.api_key, method, &path, body).await?)
}
