//! `sluice cache eval`: the cache's own lookup path over labelled pairs. Side `a` of every pair is stored in
//! one tenant's cache (its plan, its embedding by the host's embedder, one entry each), then side `b` is
//! looked up as a request would be: the exact tier, then the semantic tier at each threshold, with the guard
//! on and off. A pair is *served* when `b` gets the answer stored for its own `a`; any other hit is a
//! *false hit* (for a trap, whose `b` needs another answer, every hit is one).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::key::{self, Rules};
use super::{Answer, Cache, CacheConfig, Query};
use crate::admission::clock::SystemClock;
use crate::config::Tier;
use crate::inference::LocalEmbedder;
use crate::wire::ChatRequest;

/// The thresholds the report covers.
pub const THRESHOLDS: [f32; 5] = [0.90, 0.93, 0.95, 0.97, 0.99];

/// One labelled pair: two conversations, and whether one answer serves both.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// The pair's category (`paraphrase`, `negation`, ...), `conv/<subtype>` for conversations.
    pub category: String,
    pub a: Value,
    pub b: Value,
    pub same_answer: bool,
}

/// Reads `pairs.jsonl` and the conversation files (`conv-long/*.jsonl`, `conv-parts/*.jsonl`) of the
/// `fow-cache` data set in `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    let read = |path: &Path| -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            })
            .collect()
    };
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);
    for row in read(&dir.join("pairs.jsonl"))? {
        let (Some(id), Some(category), Some(a), Some(b), Some(same)) = (
            text(&row, "id"),
            text(&row, "category"),
            text(&row, "a"),
            text(&row, "b"),
            row.get("same_answer").and_then(Value::as_bool),
        ) else {
            anyhow::bail!("pairs.jsonl: a row without id, category, a, b or same_answer");
        };
        let user = |t: String| serde_json::json!([{"role": "user", "content": t}]);
        cases.push(Case {
            id,
            category,
            a: user(a),
            b: user(b),
            same_answer: same,
        });
    }
    for part in ["conv-long", "conv-parts"] {
        for domain in ["billing", "retail", "services"] {
            for row in read(&dir.join(part).join(format!("{domain}.jsonl")))? {
                let (Some(id), Some(subtype), Some(a), Some(b), Some(same)) = (
                    text(&row, "id"),
                    text(&row, "subtype"),
                    row.get("a").cloned(),
                    row.get("b").cloned(),
                    row.get("same_answer").and_then(Value::as_bool),
                ) else {
                    anyhow::bail!(
                        "{part}/{domain}.jsonl: a row without id, subtype, a, b or same_answer"
                    );
                };
                cases.push(Case {
                    id,
                    category: format!("conv/{subtype}"),
                    a,
                    b,
                    same_answer: same,
                });
            }
        }
    }
    Ok(cases)
}

/// Served and false hits of one category at one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pairs: usize,
    pub served: usize,
    pub false_hits: usize,
}

/// One setting's tallies by category.
#[derive(Debug, Clone)]
pub struct Run {
    pub threshold: f32,
    pub guard: bool,
    pub by_category: BTreeMap<String, Tally>,
}

impl Run {
    /// Pairs whose `b` shares `a`'s answer (`true`) or needs another (`false`), over the categories of
    /// the conversations (`conversation`) or of the single questions.
    pub fn total(&self, same_answer: bool, conversation: bool, cases: &[Case]) -> Tally {
        let mut t = Tally::default();
        for (category, tally) in &self.by_category {
            if category.starts_with("conv/") == conversation
                && cases
                    .iter()
                    .any(|c| &c.category == category && c.same_answer == same_answer)
            {
                t.pairs += tally.pairs;
                t.served += tally.served;
                t.false_hits += tally.false_hits;
            }
        }
        t
    }
}

/// One pair's own scores: how alike its two questions embed, and what the guard says of them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Detail {
    pub id: String,
    pub category: String,
    pub same_answer: bool,
    /// Cosine similarity of the two questions' embeddings.
    pub similarity: f32,
    /// Why the guard refuses `b` the answer of `a`, if it does.
    pub guard: Option<&'static str>,
}

/// The whole evaluation.
#[derive(Debug, Clone)]
pub struct Report {
    pub cases: Vec<Case>,
    pub runs: Vec<Run>,
    pub details: Vec<Detail>,
    pub embed_time: Duration,
}

impl Report {
    pub fn run(&self, threshold: f32, guard: bool) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| (r.threshold - threshold).abs() < 1e-6 && r.guard == guard)
    }
}

fn plan(conversation: &Value) -> anyhow::Result<key::Plan> {
    let chat: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "eval",
        "messages": conversation,
    }))?;
    let rules = Rules {
        enabled: true,
        cache_sampled: false,
    };
    let secret = key::TenantSecret::new([0; 32]);
    key::plan(&chat, &HeaderMap::new(), "eval".to_owned(), rules, &secret)?
        .map_err(|b| anyhow::anyhow!("the pair bypasses the cache ({})", b.as_str()))
}

async fn embed_all(embedder: &LocalEmbedder, texts: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(16) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let embedded = embedder
            .embed("eval", chunk.to_vec(), deadline)
            .await
            .map_err(|e| anyhow::anyhow!("embedding failed: {e:?}"))?;
        out.extend(embedded.into_iter().map(|e| e.vector));
    }
    Ok(out)
}

/// Stores every `a`, looks up every `b` at each threshold with the guard on and off.
pub async fn evaluate(cases: Vec<Case>, embedder: &LocalEmbedder) -> anyhow::Result<Report> {
    let plans_a = cases
        .iter()
        .map(|c| plan(&c.a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plans_b = cases
        .iter()
        .map(|c| plan(&c.b))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let question = |p: &key::Plan| p.question.clone().unwrap_or_default();
    let start = Instant::now();
    let vectors_a = embed_all(embedder, plans_a.iter().map(question).collect()).await?;
    let vectors_b = embed_all(embedder, plans_b.iter().map(question).collect()).await?;
    let embed_time = start.elapsed();
    let details = cases
        .iter()
        .zip(plans_a.iter().zip(&plans_b))
        .zip(vectors_a.iter().zip(&vectors_b))
        .map(|((case, (a, b)), (va, vb))| Detail {
            id: case.id.clone(),
            category: case.category.clone(),
            same_answer: case.same_answer,
            similarity: cosine(va, vb),
            guard: super::guard::conflict(&question(a), &question(b)),
        })
        .collect();
    let cache = Cache::new(
        CacheConfig {
            enabled: true,
            max_entries: cases.len().max(1),
            ..CacheConfig::default()
        },
        Arc::new(SystemClock),
        1,
        None,
    );
    let tenant = "eval";
    let digest = embedder.digest.to_owned();
    for (i, (plan, vector)) in plans_a.iter().zip(vectors_a).enumerate() {
        let pending = cache.pending(tenant, plan.clone(), Some((vector, digest.clone())));
        let answer = Answer {
            body: Bytes::from(i.to_string()),
            deployment: "eval".to_owned(),
            tier: Tier::Standard,
            checked: (),
        };
        cache.store(tenant, pending, answer);
    }
    let mut runs = Vec::new();
    for guard in [true, false] {
        for threshold in THRESHOLDS {
            let mut by_category: BTreeMap<String, Tally> = BTreeMap::new();
            for (i, (case, plan)) in cases.iter().zip(&plans_b).enumerate() {
                let query = Query {
                    vector: &vectors_b[i],
                    embedder: &digest,
                };
                let hit = cache
                    .lookup_exact(tenant, plan)
                    .or_else(|| cache.lookup_semantic(tenant, plan, query, threshold, guard));
                let tally = by_category.entry(case.category.clone()).or_default();
                tally.pairs += 1;
                let Some(hit) = hit else {
                    continue;
                };
                // The stored case: its answer serves `b` only if `b` shares this pair's `a` answer and the
                // entry is that `a` (or the very same conversation).
                let from = std::str::from_utf8(&hit.answer.body)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    .and_then(|j| cases.get(j));
                let own = from.is_some_and(|f| f.a == case.a);
                let identical = from.is_some_and(|f| f.a == case.b);
                if (case.same_answer && own) || identical {
                    tally.served += 1;
                } else {
                    tally.false_hits += 1;
                }
            }
            runs.push(Run {
                threshold,
                guard,
                by_category,
            });
        }
    }
    Ok(Report {
        cases,
        runs,
        details,
        embed_time,
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let categories: BTreeMap<&str, (bool, usize)> =
            self.cases.iter().fold(BTreeMap::new(), |mut m, c| {
                m.entry(c.category.as_str()).or_insert((c.same_answer, 0)).1 += 1;
                m
            });
        writeln!(
            f,
            "{} pairs; served = `b` got its own `a`'s answer, false = `b` got any other answer",
            self.cases.len()
        )?;
        for guard in [true, false] {
            writeln!(f, "\nguard {}", if guard { "on" } else { "off" })?;
            write!(f, "{:<34} {:>5}", "category (same answer?)", "pairs")?;
            for t in THRESHOLDS {
                write!(f, " {:>15}", format!("{t:.2} srv/false"))?;
            }
            writeln!(f)?;
            for (category, (same, n)) in &categories {
                write!(
                    f,
                    "{:<34} {n:>5}",
                    format!("{category} ({})", if *same { "yes" } else { "no" })
                )?;
                for t in THRESHOLDS {
                    let tally = self
                        .run(t, guard)
                        .and_then(|r| r.by_category.get(*category).copied())
                        .unwrap_or_default();
                    write!(
                        f,
                        " {:>15}",
                        format!(
                            "{}/{}",
                            pct(tally.served, n.to_owned()),
                            pct(tally.false_hits, *n)
                        )
                    )?;
                }
                writeln!(f)?;
            }
            let totals = [
                ("pairs: same answer", false, true),
                ("pairs: traps", false, false),
                ("conversations: same answer", true, true),
                ("conversations: traps", true, false),
            ];
            for (label, conversation, same) in totals {
                let of = |c: &Case| c.category.starts_with("conv/") == conversation;
                let n = self
                    .cases
                    .iter()
                    .filter(|c| of(c) && c.same_answer == same)
                    .count();
                write!(f, "{label:<34} {n:>5}")?;
                for t in THRESHOLDS {
                    let tally = self
                        .run(t, guard)
                        .map(|r| r.total(same, conversation, &self.cases))
                        .unwrap_or_default();
                    write!(
                        f,
                        " {:>15}",
                        format!("{}/{}", pct(tally.served, n), pct(tally.false_hits, n))
                    )?;
                }
                writeln!(f)?;
            }
        }
        writeln!(
            f,
            "\nembedding {} questions took {:.1?}",
            self.cases.len() * 2,
            self.embed_time
        )
    }
}
