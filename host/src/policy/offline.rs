//! Running a policy without a gateway: what `sluice policy test FILE.wasm --request REQ.json` does. The
//! request file is an OpenAI chat-completions body; the catalog file a JSON array of deployments shaped like
//! the config's (`name`, `tier`, `region`, `price = {input_per_mtok, output_per_mtok}` in USD, optional
//! `health` and `recent_latency_ms`). The component runs under the same limits as in the gateway: fuel for
//! its deadline's work and the wall-clock backstop, and the report says which one stopped it.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::view::{cap_labels, messages, wit_tier};
use super::wasm::{self, PolicyFailure, Slot, wit};
use crate::config::Tier;
use crate::wire::{self, ChatRequest};

/// One deployment of a catalog file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    #[serde(default = "standard")]
    pub tier: String,
    #[serde(default = "global")]
    pub region: String,
    pub price: CatalogPrice,
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub recent_latency_ms: Option<u32>,
}

fn standard() -> String {
    "standard".to_owned()
}

fn global() -> String {
    "global".to_owned()
}

/// Prices in USD per million tokens, as in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// A mistake in the inputs of an offline run, naming the file and field.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("the request: {0}")]
    Request(String),
    #[error("the catalog: {0}")]
    Catalog(String),
    #[error("the component: {0}")]
    Component(#[from] PolicyFailure),
    #[error("the component exports none of the slots (auth, classify, route)")]
    NoSlot,
}

fn parse_tier(s: &str) -> Option<Tier> {
    match s {
        "simple" => Some(Tier::Simple),
        "standard" => Some(Tier::Standard),
        "complex" => Some(Tier::Complex),
        _ => None,
    }
}

/// Parses a catalog file.
pub fn catalog(json: &str) -> Result<Vec<wit::Deployment>, OfflineError> {
    let entries: Vec<CatalogEntry> =
        crate::wire::parse_body(json.as_bytes()).map_err(|e| OfflineError::Catalog(e.message))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |f: &str| format!("[{i}].{f}");
            let tier = parse_tier(&e.tier).ok_or_else(|| {
                OfflineError::Catalog(format!(
                    "{}: `{}` is not one of simple, standard, complex",
                    field("tier"),
                    e.tier
                ))
            })?;
            let health = match e.health.as_deref() {
                None | Some("healthy") => wit::Health::Healthy,
                Some("degraded") => wit::Health::Degraded,
                Some("down") => wit::Health::Down,
                Some(other) => {
                    return Err(OfflineError::Catalog(format!(
                        "{}: `{other}` is not one of healthy, degraded, down",
                        field("health")
                    )));
                }
            };
            let price = |f: &str, usd: f64| {
                crate::config::price_micro(&field(f), usd)
                    .map_err(|e| OfflineError::Catalog(e.to_string()))
            };
            Ok(wit::Deployment {
                tier: wit_tier(tier),
                region: e.region,
                input_micro_usd_per_mtok: price("price.input_per_mtok", e.price.input_per_mtok)?,
                output_micro_usd_per_mtok: price("price.output_per_mtok", e.price.output_per_mtok)?,
                health,
                recent_latency_ms: e.recent_latency_ms,
                name: e.name,
            })
        })
        .collect()
}

/// The inputs of an offline run besides the component.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The request file's text (an OpenAI chat-completions body).
    pub request: String,
    /// `x-sluice-meta-*` metadata, as `(name, value)`.
    pub metadata: Vec<(String, String)>,
    /// The catalog the router sees; the starter catalog when `None`.
    pub catalog: Option<Vec<wit::Deployment>>,
    /// The tier the router is told; `None`: the built-in classifier's.
    pub tier: Option<Tier>,
    pub budget_micro_usd: Option<u64>,
    pub labels: Vec<(String, String)>,
    /// The question's embedding, for a classifier that reads it.
    pub embedding: Option<wit::Embedding>,
}

/// What the policy decided, the work it took, and how long one fresh-instance call took.
#[derive(Debug)]
pub struct Report {
    pub slot: Slot,
    /// The decision as JSON, or the failure.
    pub decision: Result<serde_json::Value, PolicyFailure>,
    pub log: Vec<String>,
    /// Fuel the first call used (when it decided), and the fuel of the deadline.
    pub fuel: Option<u64>,
    pub fuel_limit: u64,
    pub deadline: Duration,
    pub compile: Duration,
    /// Median of the timed calls (instantiate + call + drop), after one warm-up.
    pub call_median: Duration,
    pub calls: usize,
}

/// The starter config's deployments (`sluice init`), for runs without `--catalog`.
pub(super) fn starter_catalog() -> Vec<wit::Deployment> {
    let d = |name: &str, tier, input, output| wit::Deployment {
        name: name.to_owned(),
        tier,
        region: "eu".to_owned(),
        input_micro_usd_per_mtok: input,
        output_micro_usd_per_mtok: output,
        health: wit::Health::Healthy,
        recent_latency_ms: None,
    };
    vec![
        d("small", wit::Tier::Simple, 100_000, 400_000),
        d("large", wit::Tier::Complex, 3_000_000, 15_000_000),
    ]
}

fn request(inputs: &Inputs) -> Result<wit::Request, OfflineError> {
    let chat = parse_request(&inputs.request)?;
    let label = |(k, v): &(String, String)| wit::Label {
        key: k.clone(),
        value: v.clone(),
    };
    Ok(view(
        &chat,
        inputs.metadata.iter().map(label).collect(),
        inputs.labels.iter().map(label).collect(),
    ))
}

/// A chat-completions body, parsed and checked as the gateway does. `Err` says what is wrong with it.
pub fn parse_request(body: &str) -> Result<ChatRequest, OfflineError> {
    let chat: ChatRequest =
        crate::wire::parse_body(body.as_bytes()).map_err(|e| OfflineError::Request(e.message))?;
    chat.validate()
        .map_err(|e| OfflineError::Request(e.message))?;
    Ok(chat)
}

/// What a policy sees of `chat` when an admin key of an offline tenant sends it.
pub(super) fn view(
    chat: &ChatRequest,
    mut metadata: Vec<wit::Label>,
    labels: Vec<wit::Label>,
) -> wit::Request {
    if let Some(user) = &chat.user {
        metadata.push(wit::Label {
            key: "user".to_owned(),
            value: user.clone(),
        });
    }
    wit::Request {
        request_id: "offline".to_owned(),
        tenant_id: "offline-tenant".to_owned(),
        key_id: "offline-key".to_owned(),
        key_role: wit::Role::Admin,
        endpoint: wit::Endpoint::Chat,
        model: chat.model.clone(),
        messages: messages(chat),
        max_tokens: chat.max_output_tokens(),
        temperature: chat.temperature,
        stream: chat.is_stream(),
        has_tools: chat.tools.as_ref().is_some_and(|t| !t.is_empty()),
        metadata,
        prompt_tokens: wire::chat_bound(chat).prompt_tokens,
        labels,
    }
}

fn labels_json(labels: &[wit::Label]) -> serde_json::Value {
    labels
        .iter()
        .map(|l| (l.key.clone(), serde_json::Value::from(l.value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn tier_str(t: wit::Tier) -> &'static str {
    match t {
        wit::Tier::Simple => "simple",
        wit::Tier::Standard => "standard",
        wit::Tier::Complex => "complex",
    }
}

/// Which limit stopped a policy, in words for the `sluice policy test` output; `None` for other failures.
pub fn stopped_by(failure: &PolicyFailure) -> Option<&'static str> {
    match failure {
        PolicyFailure::OutOfFuel { .. } => Some(
            "fuel: the policy did more work than its deadline allows, on any machine (the gateway counts this toward quarantine)",
        ),
        PolicyFailure::TooMuchCpu { .. } => Some(
            "CPU time: the policy ran on the CPU for longer than its deadline allows, doing work fuel does not count (a one-instruction loop, touching fresh memory pages); the gateway counts this toward quarantine",
        ),
        PolicyFailure::Overloaded { .. } => Some(
            "the wall-clock backstop: this machine did not give the policy its deadline of CPU time in ten backstops; not the policy's fault (the gateway answers 503 and does not count it)",
        ),
        _ => None,
    }
}

/// Runs one slot of `bytes` (the given one, or the first the component exports) `calls` times.
pub fn run(
    bytes: &[u8],
    slot: Option<Slot>,
    inputs: &Inputs,
    limits: wasm::Limits,
    calls: usize,
) -> Result<Report, OfflineError> {
    let runtime = wasm::Runtime::new(limits)?;
    let start = Instant::now();
    let policy = runtime.load(bytes)?;
    let compile = start.elapsed();
    let slot = match slot {
        Some(s) if policy.exports(s) => s,
        Some(s) => return Err(PolicyFailure::MissingSlot(s.as_str()).into()),
        None => Slot::ALL
            .into_iter()
            .find(|s| policy.exports(*s))
            .ok_or(OfflineError::NoSlot)?,
    };
    let req = request(inputs)?;
    let tier = match inputs.tier {
        Some(t) => wit_tier(t),
        None if slot == Slot::Route => {
            let classifier = runtime.load(super::builtin::CLASSIFIER)?;
            runtime
                .classify(&classifier, &req, inputs.embedding.as_ref(), None)
                .map_or(wit::Tier::Standard, |o| o.value.tier)
        }
        None => wit::Tier::Standard,
    };
    let input = wasm::RoutingInput {
        req: req.clone(),
        tier,
        candidates: inputs.catalog.clone().unwrap_or_else(starter_catalog),
        budget: wit::Budget {
            remaining_micro_usd: inputs.budget_micro_usd,
        },
    };
    type Decided = (serde_json::Value, Vec<String>, u64);
    let once = || -> Result<Decided, PolicyFailure> {
        match slot {
            Slot::Auth => runtime.authorize(&policy, &req, None).map(|o| {
                let v = match o.value {
                    wasm::AuthDecision::Allow(labels) => {
                        serde_json::json!({"allow": {"labels": labels_json(&cap_labels(labels))}})
                    }
                    wasm::AuthDecision::Deny(reason) => serde_json::json!({"deny": reason}),
                };
                (v, o.log, o.fuel)
            }),
            Slot::Classify => runtime.classify(&policy, &req, inputs.embedding.as_ref(), None).map(|o| {
                let c = o.value;
                (
                    serde_json::json!({"tier": tier_str(c.tier), "score": c.score, "labels": labels_json(&cap_labels(c.labels))}),
                    o.log,
                    o.fuel,
                )
            }),
            Slot::Route => runtime.route(&policy, &input, None).map(|o| {
                let v = match o.value {
                    wasm::RouteDecision::Route(names) => {
                        let unknown: Vec<&String> = names
                            .iter()
                            .filter(|n| !input.candidates.iter().any(|c| &c.name == *n))
                            .collect();
                        serde_json::json!({"tier": tier_str(tier), "route": names, "not_in_catalog": unknown})
                    }
                    wasm::RouteDecision::Reject(reason) => serde_json::json!({"reject": reason}),
                };
                (v, o.log, o.fuel)
            }),
        }
    };
    let first = once();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let _ = once();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let call_median = times.get(times.len() / 2).copied().unwrap_or_default();
    let (decision, log, fuel) = match first {
        Ok((v, log, fuel)) => (Ok(v), log, Some(fuel)),
        Err(e) => (Err(e), Vec::new(), None),
    };
    Ok(Report {
        slot,
        decision,
        log,
        fuel,
        fuel_limit: limits.fuel(limits.deadline),
        deadline: limits.deadline,
        compile,
        call_median,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = r#"{"model":"auto","messages":[{"role":"user","content":"Prove that the integral of a derivative is the function, step by step, and ensure the format is exactly LaTeX."}]}"#;

    #[test]
    fn the_builtin_router_runs_offline_against_a_catalog() {
        let catalog = catalog(
            r#"[{"name":"cheap","tier":"simple","region":"eu","price":{"input_per_mtok":0.1,"output_per_mtok":0.4}},
                {"name":"big","tier":"complex","region":"eu","price":{"input_per_mtok":3,"output_per_mtok":15}}]"#,
        )
        .unwrap();
        let inputs = Inputs {
            request: REQUEST.to_owned(),
            catalog: Some(catalog),
            ..Inputs::default()
        };
        let report = run(
            super::super::builtin::ROUTER,
            None,
            &inputs,
            wasm::Limits::default(),
            3,
        )
        .unwrap();
        assert_eq!(report.slot, Slot::Route);
        let decision = report.decision.unwrap();
        assert_eq!(decision["tier"], "complex");
        assert_eq!(decision["route"][0], "big");
        assert_eq!(report.calls, 3);
        let fuel = report.fuel.unwrap();
        assert!(fuel > 0 && fuel < report.fuel_limit, "{fuel}");
    }

    #[test]
    fn the_report_says_whether_fuel_cpu_time_or_the_backstop_stopped_the_policy() {
        let inputs = Inputs {
            request: REQUEST.to_owned(),
            metadata: vec![("hostile".to_owned(), "loop".to_owned())],
            ..Inputs::default()
        };
        let hostile = super::super::builtin::TEST_HOSTILE;
        // As in the gateway: fuel stops the loop (50 ms, so that a busy test machine still lets it run out
        // before the backstop)...
        let limits = wasm::Limits {
            deadline: Duration::from_millis(50),
            ..wasm::Limits::default()
        };
        let report = run(hostile, Some(Slot::Classify), &inputs, limits, 0).unwrap();
        let err = report.decision.unwrap_err();
        assert!(matches!(err, PolicyFailure::OutOfFuel { .. }), "{err}");
        assert!(stopped_by(&err).unwrap().starts_with("fuel:"));
        assert_eq!(report.fuel, None);
        // ...unless it has more fuel than time and the host gave it no CPU: then the backstop, and the
        // machine is to blame.
        let limits = wasm::Limits {
            fuel_per_ms: 1 << 40,
            cpu_clock: || Duration::ZERO,
            ..wasm::Limits::default()
        };
        let report = run(hostile, Some(Slot::Classify), &inputs, limits, 0).unwrap();
        let err = report.decision.unwrap_err();
        assert!(matches!(err, PolicyFailure::Overloaded { .. }), "{err}");
        assert!(
            stopped_by(&err)
                .unwrap()
                .starts_with("the wall-clock backstop:")
        );
        assert!(err.to_string().contains("in 250ms"), "{err}");
        // ...and with the CPU it gets, a loop of more fuel than time is its own fault: CPU time stops it.
        let limits = wasm::Limits {
            fuel_per_ms: 1 << 40,
            ..wasm::Limits::default()
        };
        let report = run(hostile, Some(Slot::Classify), &inputs, limits, 0).unwrap();
        let err = report.decision.unwrap_err();
        assert!(matches!(err, PolicyFailure::TooMuchCpu { .. }), "{err}");
        assert!(stopped_by(&err).unwrap().starts_with("CPU time:"));
    }

    #[test]
    fn bad_inputs_name_what_is_wrong() {
        let err = catalog(
            r#"[{"name":"x","tier":"huge","price":{"input_per_mtok":1,"output_per_mtok":1}}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("[0].tier"), "{err}");
        let inputs = Inputs {
            request: r#"{"model":"auto"}"#.to_owned(),
            ..Inputs::default()
        };
        let err = run(
            super::super::builtin::ROUTER,
            None,
            &inputs,
            wasm::Limits::default(),
            1,
        )
        .unwrap_err();
        assert!(matches!(err, OfflineError::Request(_)), "{err}");
        let err = run(b"not wasm", None, &inputs, wasm::Limits::default(), 1).unwrap_err();
        assert!(err.to_string().contains("not a WebAssembly file"), "{err}");
        let err = run(
            super::super::builtin::ROUTER,
            Some(Slot::Auth),
            &inputs,
            wasm::Limits::default(),
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`auth` slot"), "{err}");
    }
}
