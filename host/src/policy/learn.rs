//! A complexity classifier trained and measured on a labelled corpus: what `sluice route train` and
//! `sluice route eval` do.
//!
//! A corpus is JSON lines, one labelled request each: `id`, `tier` (`simple`, `standard` or `complex`),
//! optionally `split` (`train`, `heldout`), `messages` and, as in a chat-completions body, `max_tokens` and
//! `tools`; other keys (`domain`, `language`, `source`, ...) are ignored. Each row becomes what the gateway
//! makes of that body: the request a policy sees (parsed and checked by the gateway's parser) and the
//! embedding of its question (the last user turn, by the gateway's embedder), so what is trained and
//! measured here is what serves.
//!
//! Training fits one logistic head over the embedding and the structural features, and one over the
//! structural features alone (the fallback without an embedding), on the simple and complex rows (simple 0,
//! complex 1): the score is how sure the head is that a prompt needs the complex tier, and the classifier
//! calls the band around ½ standard. Full-batch Adam on standardised inputs, each tier weighted by the
//! inverse of its share, deterministic. Evaluation runs the classifier and router components themselves.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::offline;
use super::view::wit_tier;
use super::wasm::{self, PolicyFailure, RouteDecision, RoutingInput, wit};
use crate::config::Tier;
use crate::inference::LocalEmbedder;

/// The tiers, in the order of the report's rows and columns.
pub const TIERS: [Tier; 3] = [Tier::Simple, Tier::Standard, Tier::Complex];

/// Output tokens assumed for a request without `max_tokens`, to price it (as the guest SDK assumes).
pub const ASSUMED_OUTPUT_TOKENS: u64 = 1_024;

/// What is wrong with a corpus, a component, or the embedder.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("line {line}: {detail}")]
    Line { line: usize, detail: String },
    #[error("no rows{0}")]
    Empty(String),
    #[error("the embedder: {0}")]
    Embed(String),
    #[error("the component: {0}")]
    Component(#[from] PolicyFailure),
    #[error("the catalog has no deployment of the complex tier")]
    NoComplex,
}

/// One labelled request as the policies see it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub tier: Tier,
    pub split: Option<String>,
    pub request: wit::Request,
    /// The text the embedding is of (`None`: the last user turn is not text).
    pub question: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    id: String,
    tier: String,
    #[serde(default)]
    split: Option<String>,
    messages: serde_json::Value,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
}

fn parse_tier(s: &str) -> Option<Tier> {
    TIERS.into_iter().find(|t| t.as_str() == s)
}

/// The rows of a corpus file, those of `split` only when given. `Err` names the line.
pub fn load(text: &str, split: Option<&str>) -> Result<Vec<Row>, LearnError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| LearnError::Line {
            line: i + 1,
            detail,
        };
        let l: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let tier = parse_tier(&l.tier).ok_or_else(|| {
            bad(format!(
                "tier `{}` is not one of simple, standard, complex",
                l.tier
            ))
        })?;
        if split.is_some_and(|s| l.split.as_deref() != Some(s)) {
            continue;
        }
        let mut body = serde_json::json!({"model": "auto", "messages": l.messages});
        if let Some(m) = l.max_tokens {
            body["max_tokens"] = m;
        }
        if let Some(t) = l.tools {
            body["tools"] = t;
        }
        let chat = offline::parse_request(&body.to_string())
            .map_err(|e| bad(format!("{} ({})", e, l.id)))?;
        rows.push(Row {
            question: crate::cache::key::question_text(&chat),
            request: offline::view(&chat, Vec::new(), Vec::new()),
            id: l.id,
            tier,
            split: l.split,
        });
    }
    if rows.is_empty() {
        return Err(LearnError::Empty(
            split.map_or_else(String::new, |s| format!(" in split `{s}`")),
        ));
    }
    Ok(rows)
}

/// The question's embedding of each row (`None` where there is no text question), by `embedder` as the
/// gateway embeds it, in batches.
pub async fn embed(
    rows: &[Row],
    embedder: &LocalEmbedder,
) -> Result<Vec<Option<wit::Embedding>>, LearnError> {
    const BATCH: usize = 16;
    let mut out: Vec<Option<wit::Embedding>> = vec![None; rows.len()];
    let asked: Vec<(usize, String)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.question.clone()?)))
        .collect();
    for batch in asked.chunks(BATCH) {
        let texts = batch.iter().map(|(_, q)| q.clone()).collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        let vectors = embedder
            .embed("offline", texts, deadline)
            .await
            .map_err(|e| LearnError::Embed(format!("{e:?}")))?;
        for ((i, _), v) in batch.iter().zip(vectors) {
            out[*i] = Some(wit::Embedding {
                model_digest: format!("sha256:{}", embedder.digest),
                vector: v.vector,
            });
        }
    }
    Ok(out)
}

/// The structural features of a request, as the guest SDK computes them in the classifier.
pub fn structural(req: &wit::Request) -> [f32; sluice_features::COUNT] {
    sluice_features::of_messages(
        req.messages
            .iter()
            .map(|m| (m.role.as_str(), m.text.as_str())),
        req.prompt_tokens,
        req.has_tools,
        req.max_tokens,
    )
}

/// A tier's target score.
fn target(t: Tier) -> f64 {
    match t {
        Tier::Simple => 0.0,
        Tier::Standard => 0.5,
        Tier::Complex => 1.0,
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A fitted logistic head: weights over its inputs and a bias, on the inputs' own scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Fit {
    pub fn score(&self, x: &[f32]) -> f32 {
        let z: f64 = self
            .weights
            .iter()
            .zip(x)
            .map(|(w, v)| f64::from(*w) * f64::from(*v))
            .sum::<f64>()
            + f64::from(self.bias);
        sigmoid(z) as f32
    }
}

/// How a head is fitted.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// L2 penalty on the standardised weights.
    pub l2: f64,
    pub steps: usize,
    pub learning_rate: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            l2: 1e-2,
            steps: 1_500,
            learning_rate: 0.05,
        }
    }
}

/// Logistic regression of `tiers`' targets on `x` (one row per example), each tier weighted by the inverse
/// of its share so that the rare middle tier counts as much as the others. Deterministic.
pub fn fit(x: &[Vec<f32>], tiers: &[Tier], opts: FitOptions) -> Fit {
    let n = x.len();
    let d = x.first().map_or(0, Vec::len);
    if n == 0 {
        return Fit {
            weights: vec![0.0; d],
            bias: 0.0,
        };
    }
    let mut count = [0usize; 3];
    for t in tiers {
        count[*t as usize] += 1;
    }
    let weight: Vec<f64> = tiers
        .iter()
        .map(|t| n as f64 / (3.0 * count[*t as usize].max(1) as f64))
        .collect();
    let total: f64 = weight.iter().sum();
    // Standardise each input: the embedding's coordinates are small, the features near 0..1.
    let mut mean = vec![0.0f64; d];
    let mut sd = vec![0.0f64; d];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v) / n as f64;
        }
    }
    for row in x {
        for ((s, m), v) in sd.iter_mut().zip(&mean).zip(row) {
            *s += (f64::from(*v) - m).powi(2) / n as f64;
        }
    }
    let sd: Vec<f64> = sd
        .into_iter()
        .map(|v| if v.sqrt() > 1e-9 { v.sqrt() } else { 1.0 })
        .collect();
    let z: Vec<Vec<f64>> = x
        .iter()
        .map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&sd)
                .map(|((v, m), s)| (f64::from(*v) - m) / s)
                .collect()
        })
        .collect();
    let y: Vec<f64> = tiers.iter().map(|t| target(*t)).collect();
    let mut w = vec![0.0f64; d];
    let mut b = 0.0f64;
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let (mut mw, mut vw) = (vec![0.0f64; d], vec![0.0f64; d]);
    let (mut mb, mut vb) = (0.0f64, 0.0f64);
    let mut grad = vec![0.0f64; d];
    for step in 1..=opts.steps {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = 0.0;
        for ((row, yi), wi) in z.iter().zip(&y).zip(&weight) {
            let p = sigmoid(row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b);
            let e = (p - yi) * wi / total;
            for (g, v) in grad.iter_mut().zip(row) {
                *g += e * v;
            }
            gb += e;
        }
        let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        for j in 0..d {
            let g = grad[j] + opts.l2 * w[j];
            mw[j] = beta1 * mw[j] + (1.0 - beta1) * g;
            vw[j] = beta2 * vw[j] + (1.0 - beta2) * g * g;
            w[j] -= opts.learning_rate * (mw[j] / c1) / ((vw[j] / c2).sqrt() + eps);
        }
        mb = beta1 * mb + (1.0 - beta1) * gb;
        vb = beta2 * vb + (1.0 - beta2) * gb * gb;
        b -= opts.learning_rate * (mb / c1) / ((vb / c2).sqrt() + eps);
    }
    // Back to the inputs' own scale: w·(x - mean)/sd + b.
    let weights: Vec<f64> = w.iter().zip(&sd).map(|(w, s)| w / s).collect();
    let bias = b - weights.iter().zip(&mean).map(|(w, m)| w * m).sum::<f64>();
    Fit {
        weights: weights.into_iter().map(|v| v as f32).collect(),
        bias: bias as f32,
    }
}

/// A head file as the guest SDK's `LinearHead::parse` reads it: the magic, the embedding's dimensions and
/// the features' count, the embedding model's SHA-256 (hex; zeros without an embedding), the weights and
/// the bias.
pub fn head_file(dims: usize, model_sha256: Option<&str>, fit: &Fit) -> Vec<u8> {
    let features = fit.weights.len() - dims;
    let mut b = b"SLHEAD01".to_vec();
    b.extend(u32::try_from(dims).unwrap_or(u32::MAX).to_le_bytes());
    b.extend(u32::try_from(features).unwrap_or(u32::MAX).to_le_bytes());
    b.extend(model_sha256.unwrap_or(&"0".repeat(64)).as_bytes());
    for w in fit.weights.iter().chain([&fit.bias]) {
        b.extend(w.to_le_bytes());
    }
    b
}

/// The two heads training writes, and how they score their own training rows.
#[derive(Debug)]
pub struct Trained {
    /// Over the embedding then the structural features.
    pub head: Fit,
    /// Over the structural features alone.
    pub fallback: Fit,
    pub dims: usize,
    pub rows: usize,
    /// Simple and complex rows the heads were fitted on (standard ones are not).
    pub fitted: usize,
    /// Of those, rows the embedding head left out for want of an embedding.
    pub skipped: usize,
}

/// Fits both heads on the simple and complex rows of `rows` and their embeddings. (Fitted with the standard
/// rows as a middle target, the heads place every kind of prompt less surely: measured on the corpus, the
/// simple and complex agreement falls by about ten points.)
pub fn train(rows: &[Row], embeddings: &[Option<wit::Embedding>], opts: FitOptions) -> Trained {
    let mut with = Vec::new();
    let mut with_tiers = Vec::new();
    let mut without = Vec::new();
    let mut tiers = Vec::new();
    for (row, e) in rows.iter().zip(embeddings) {
        if row.tier == Tier::Standard {
            continue;
        }
        let f = structural(&row.request);
        without.push(f.to_vec());
        tiers.push(row.tier);
        if let Some(e) = e {
            with.push(e.vector.iter().copied().chain(f).collect::<Vec<f32>>());
            with_tiers.push(row.tier);
        }
    }
    let dims = with.first().map_or(0, |v| v.len() - sluice_features::COUNT);
    Trained {
        head: fit(&with, &with_tiers, opts),
        fallback: fit(&without, &tiers, opts),
        dims,
        rows: rows.len(),
        fitted: without.len(),
        skipped: without.len() - with.len(),
    }
}

/// The tier of a score under the thresholds `(simple, complex)`: below the first simple, from the second on
/// complex.
pub fn tier_of(score: f32, (simple, complex): (f32, f32)) -> Tier {
    if score < simple {
        Tier::Simple
    } else if score < complex {
        Tier::Standard
    } else {
        Tier::Complex
    }
}

fn host_tier(t: wit::Tier) -> Tier {
    match t {
        wit::Tier::Simple => Tier::Simple,
        wit::Tier::Standard => Tier::Standard,
        wit::Tier::Complex => Tier::Complex,
    }
}

/// The components and catalog an evaluation runs.
#[derive(Debug)]
pub struct Setup<'a> {
    pub classifier: &'a [u8],
    pub router: &'a [u8],
    pub catalog: Vec<wit::Deployment>,
}

/// One row as the classifier saw it.
#[derive(Debug, Clone)]
struct Judged {
    label: Tier,
    tier: Tier,
    score: f32,
}

/// An evaluation at one setting of the thresholds.
#[derive(Debug, Clone)]
pub struct Sheet {
    /// `None`: the classifier's own tiers; else the score re-tiered at `(simple, complex)`.
    pub thresholds: Option<(f32, f32)>,
    /// `confusion[label][classified]`.
    pub confusion: [[usize; 3]; 3],
    /// Requests by the tier of the deployment the router chose first.
    pub routed: [usize; 3],
    /// Requests the router rejected.
    pub rejected: usize,
    pub cost_micro_usd: f64,
    /// The same requests with every one told the complex tier.
    pub all_complex_micro_usd: f64,
}

impl Sheet {
    /// The share of `label`'s rows classified as `label`.
    pub fn agreement(&self, label: Tier) -> f64 {
        let row = self.confusion[label as usize];
        let total: usize = row.iter().sum();
        row[label as usize] as f64 / total.max(1) as f64
    }

    fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }
}

/// What `sluice route eval` prints.
#[derive(Debug)]
pub struct Evaluation {
    pub rows: usize,
    /// Rows the classifier failed on (left out of the sheets), with the first failure.
    pub failed: usize,
    pub first_failure: Option<String>,
    /// How often each `classifier` label came back (the built-in one says `embedding` or `structural`).
    pub by: BTreeMap<String, usize>,
    pub reads_embedding: bool,
    pub sheets: Vec<Sheet>,
}

/// What the classifier said of each row it did not fail on.
struct Judgements<'r> {
    judged: Vec<(&'r Row, Judged)>,
    failed: usize,
    first_failure: Option<String>,
    by: BTreeMap<String, usize>,
}

fn judge<'r>(
    runtime: &wasm::Runtime,
    classifier: &wasm::Policy,
    rows: &'r [Row],
    embeddings: &[Option<wit::Embedding>],
) -> Judgements<'r> {
    let reads = classifier.reads_embedding();
    let mut out = Judgements {
        judged: Vec::with_capacity(rows.len()),
        failed: 0,
        first_failure: None,
        by: BTreeMap::new(),
    };
    for (row, e) in rows.iter().zip(embeddings) {
        let e = if reads { e.as_ref() } else { None };
        match runtime.classify(classifier, &row.request, e, None) {
            Ok(called) => {
                let c = called.value;
                if let Some(l) = c.labels.into_iter().find(|l| l.key == "classifier") {
                    *out.by.entry(l.value).or_insert(0) += 1;
                }
                out.judged.push((
                    row,
                    Judged {
                        label: row.tier,
                        tier: host_tier(c.tier),
                        score: c.score,
                    },
                ));
            }
            Err(err) => {
                out.failed += 1;
                out.first_failure
                    .get_or_insert_with(|| format!("{}: {err}", row.id));
            }
        }
    }
    out
}

/// The thresholds `route eval` re-tiers the score at, besides the classifier's own tiers.
pub const THRESHOLDS: [(f32, f32); 3] = [(0.35, 0.65), (0.4, 0.6), (0.5, 0.5)];

/// Runs the classifier on every row (with its embedding when it reads one), then the router on the
/// classifier's tier and on each re-tiering in `thresholds`, and totals it all.
pub fn evaluate(
    rows: &[Row],
    embeddings: &[Option<wit::Embedding>],
    setup: &Setup<'_>,
    thresholds: &[(f32, f32)],
) -> Result<Evaluation, LearnError> {
    let runtime = wasm::Runtime::new(wasm::Limits::default())?;
    let classifier = runtime.load(setup.classifier)?;
    if !classifier.exports(wasm::Slot::Classify) {
        return Err(PolicyFailure::MissingSlot("classify").into());
    }
    let router = runtime.load(setup.router)?;
    if !router.exports(wasm::Slot::Route) {
        return Err(PolicyFailure::MissingSlot("route").into());
    }
    if !setup.catalog.iter().any(|d| d.tier == wit::Tier::Complex) {
        return Err(LearnError::NoComplex);
    }
    let reads = classifier.reads_embedding();
    let Judgements {
        judged,
        failed,
        first_failure,
        by,
    } = judge(&runtime, &classifier, rows, embeddings);
    let route = |row: &Row, tier: Tier| -> Result<Option<&wit::Deployment>, LearnError> {
        let input = RoutingInput {
            req: row.request.clone(),
            tier: wit_tier(tier),
            candidates: setup.catalog.clone(),
            budget: wit::Budget {
                remaining_micro_usd: None,
            },
        };
        Ok(match runtime.route(&router, &input, None)?.value {
            RouteDecision::Route(names) => names
                .first()
                .and_then(|n| setup.catalog.iter().find(|d| &d.name == n)),
            RouteDecision::Reject(_) => None,
        })
    };
    let cost = |row: &Row, d: &wit::Deployment| -> f64 {
        let output = row
            .request
            .max_tokens
            .map_or(ASSUMED_OUTPUT_TOKENS, u64::from);
        (row.request.prompt_tokens as f64 * d.input_micro_usd_per_mtok as f64
            + output as f64 * d.output_micro_usd_per_mtok as f64)
            / 1e6
    };
    let mut all_complex = 0.0;
    for (row, _) in &judged {
        if let Some(d) = route(row, Tier::Complex)? {
            all_complex += cost(row, d);
        }
    }
    let settings = std::iter::once(None).chain(thresholds.iter().copied().map(Some));
    let mut sheets = Vec::new();
    for thresholds in settings {
        let mut sheet = Sheet {
            thresholds,
            confusion: [[0; 3]; 3],
            routed: [0; 3],
            rejected: 0,
            cost_micro_usd: 0.0,
            all_complex_micro_usd: all_complex,
        };
        for (row, j) in &judged {
            let tier = thresholds.map_or(j.tier, |t| tier_of(j.score, t));
            sheet.confusion[j.label as usize][tier as usize] += 1;
            match route(row, tier)? {
                Some(d) => {
                    sheet.routed[host_tier(d.tier) as usize] += 1;
                    sheet.cost_micro_usd += cost(row, d);
                }
                None => sheet.rejected += 1,
            }
        }
        sheets.push(sheet);
    }
    Ok(Evaluation {
        rows: rows.len(),
        failed,
        first_failure,
        by,
        reads_embedding: reads,
        sheets,
    })
}

/// A catalog of one deployment per tier, at list prices typical of each (USD per million tokens: 0.10 /
/// 0.40, 0.60 / 2.40, 3 / 15), for an evaluation without a catalog of the tenant's.
pub fn reference_catalog() -> Vec<wit::Deployment> {
    let d = |name: &str, tier, input, output| wit::Deployment {
        name: name.to_owned(),
        tier,
        region: "global".to_owned(),
        input_micro_usd_per_mtok: input,
        output_micro_usd_per_mtok: output,
        health: wit::Health::Healthy,
        recent_latency_ms: None,
    };
    vec![
        d("simple-tier", wit::Tier::Simple, 100_000, 400_000),
        d("standard-tier", wit::Tier::Standard, 600_000, 2_400_000),
        d("complex-tier", wit::Tier::Complex, 3_000_000, 15_000_000),
    ]
}

fn pct(part: usize, whole: usize) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole.max(1) as f64)
}

impl fmt::Display for Sheet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.thresholds {
            None => writeln!(f, "the classifier's own tiers")?,
            Some((s, c)) => writeln!(f, "re-tiered by score: simple below {s}, complex from {c}")?,
        }
        let total = self.total();
        write!(f, "  agreement:")?;
        for t in TIERS {
            let row = self.confusion[t as usize];
            let n: usize = row.iter().sum();
            write!(
                f,
                "  {} {} ({}/{n})",
                t.as_str(),
                pct(row[t as usize], n),
                row[t as usize]
            )?;
        }
        let agree: usize = TIERS
            .iter()
            .map(|t| self.confusion[*t as usize][*t as usize])
            .sum();
        writeln!(f, "  overall {}", pct(agree, total))?;
        write!(f, "  routed to:")?;
        for t in TIERS {
            write!(
                f,
                "  {} {}",
                t.as_str(),
                pct(self.routed[t as usize], total)
            )?;
        }
        if self.rejected > 0 {
            write!(f, "  rejected {}", pct(self.rejected, total))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  confusion (rows: label, columns: classified):\n    {:>9} {:>9} {:>9} {:>9}",
            "", "simple", "standard", "complex"
        )?;
        for t in TIERS {
            let row = self.confusion[t as usize];
            writeln!(
                f,
                "    {:>9} {:>9} {:>9} {:>9}",
                t.as_str(),
                row[0],
                row[1],
                row[2]
            )?;
        }
        writeln!(
            f,
            "  cost: ${:.4} routed vs ${:.4} all to the complex tier ({} of it)",
            self.cost_micro_usd / 1e6,
            self.all_complex_micro_usd / 1e6,
            format_args!(
                "{:.1}%",
                self.cost_micro_usd * 100.0 / self.all_complex_micro_usd.max(1e-9)
            )
        )
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rows; the classifier {} the embedding",
            self.rows,
            if self.reads_embedding {
                "reads"
            } else {
                "does not read"
            }
        )?;
        if !self.by.is_empty() {
            let by: Vec<String> = self.by.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(f, "classified by: {}", by.join(", "))?;
        }
        if self.failed > 0 {
            writeln!(
                f,
                "the classifier failed on {} rows (left out), first: {}",
                self.failed,
                self.first_failure.as_deref().unwrap_or("")
            )?;
        }
        writeln!(
            f,
            "cost: the prompt's token bound and max_tokens (else {ASSUMED_OUTPUT_TOKENS}) output tokens at the \
             router's first choice's prices"
        )?;
        for s in &self.sheets {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, tier: &str, split: &str, text: &str) -> String {
        serde_json::json!({"id": id, "tier": tier, "split": split, "domain": "x",
            "messages": [{"role": "user", "content": text}]})
        .to_string()
    }

    #[test]
    fn a_corpus_is_read_through_the_gateways_parser_and_filtered_by_split() {
        let text = [
            line("a", "simple", "train", "hi"),
            String::new(),
            line("b", "complex", "heldout", "Prove it."),
        ]
        .join("\n");
        let all = load(&text, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].question.as_deref(), Some("Prove it."));
        assert!(all[1].request.prompt_tokens > 0);
        let held = load(&text, Some("heldout")).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].tier, Tier::Complex);
        let err = load(&text, Some("nope")).unwrap_err();
        assert!(err.to_string().contains("split `nope`"), "{err}");
        let err = load(&line("c", "hard", "train", "x"), None).unwrap_err();
        assert!(err.to_string().starts_with("line 1: tier `hard`"), "{err}");
        let bad = r#"{"id":"d","tier":"simple","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#;
        let err = load(bad, None).unwrap_err();
        assert!(err.to_string().contains("max_tokens"), "{err}");
    }

    #[test]
    fn a_fit_separates_the_tiers_and_orders_the_middle_one_between() {
        // One informative input and one constant: the head must learn the first and ignore the second.
        let x: Vec<Vec<f32>> = (0..60)
            .map(|i| vec![(i % 3) as f32 * 10.0 + (i % 7) as f32 * 0.1, 5.0])
            .collect();
        let tiers: Vec<Tier> = (0..60).map(|i| TIERS[i % 3]).collect();
        let fit = fit(&x, &tiers, FitOptions::default());
        let s = |v: f32| fit.score(&[v, 5.0]);
        assert!(s(0.2) < 0.35, "{}", s(0.2));
        assert!((0.35..0.65).contains(&s(10.2)), "{}", s(10.2));
        assert!(s(20.2) >= 0.65, "{}", s(20.2));
        assert_eq!(
            fit,
            super::fit(&x, &tiers, FitOptions::default()),
            "deterministic"
        );
    }

    #[test]
    fn a_head_file_has_the_layout_the_guest_sdk_reads() {
        let fit = Fit {
            weights: vec![1.0, 2.0, 3.0],
            bias: -1.0,
        };
        let b = head_file(2, Some(&"ab".repeat(32)), &fit);
        assert_eq!(&b[..8], b"SLHEAD01");
        assert_eq!(b[8..12], 2u32.to_le_bytes());
        assert_eq!(b[12..16], 1u32.to_le_bytes());
        assert_eq!(&b[16..80], "ab".repeat(32).as_bytes());
        assert_eq!(b.len(), 80 + 4 * 4);
        assert_eq!(b[92..96], (-1.0f32).to_le_bytes());
        let structural = head_file(0, None, &fit);
        assert_eq!(&structural[16..80], "0".repeat(64).as_bytes());
    }
}
