//! The built-in complexity classifier: features of the request (length, turns, code, math, constraint
//! words, tools, requested output) go through a small linear model and a logistic function to a score in
//! 0..1, and the score picks the tier.

use sluice_guest::prelude::*;

/// The request's features, each scaled to about 0..1.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Features {
    length: f32,
    turns: f32,
    code: f32,
    math: f32,
    constraints: f32,
    tools: f32,
    output: f32,
}

const CODE_MARKERS: [&str; 12] = [
    "```",
    "fn ",
    "def ",
    "class ",
    "function ",
    "#include",
    "import ",
    "=>",
    "();",
    "SELECT ",
    "stack trace",
    "compile",
];
const MATH_MARKERS: [&str; 10] = [
    "prove",
    "integral",
    "derivative",
    "equation",
    "theorem",
    "matrix",
    "probability",
    "solve",
    "√",
    "∑",
];
const CONSTRAINT_MARKERS: [&str; 10] = [
    "must",
    "exactly",
    "at least",
    "at most",
    "step by step",
    "without",
    "ensure",
    "format",
    "do not",
    "only",
];

fn hits(text: &str, markers: &[&str]) -> f32 {
    let n = markers.iter().filter(|m| text.contains(*m)).count();
    (n as f32 / 3.0).min(1.0)
}

fn features(req: &Request) -> Features {
    let text: String = req
        .messages
        .iter()
        .map(|m| m.text.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let operators = text.chars().filter(|c| "+-*/^=<>".contains(*c)).count();
    Features {
        // 4,000 bytes of prompt (about 1,000 tokens) count as "long".
        length: (req.prompt_tokens as f32 / 4_000.0).min(1.0),
        turns: (req.messages.len() as f32 / 10.0).min(1.0),
        code: hits(&text, &CODE_MARKERS),
        math: (hits(&text, &MATH_MARKERS) + ((digits + operators) as f32 / 40.0).min(0.5)).min(1.0),
        constraints: hits(&text, &CONSTRAINT_MARKERS),
        tools: if req.has_tools { 1.0 } else { 0.0 },
        output: (req.max_tokens.unwrap_or(0) as f32 / 4_000.0).min(1.0),
    }
}

/// The linear model: weights per feature and a bias, tuned by hand on the demo prompts.
fn score(f: &Features) -> f32 {
    let z = -2.2
        + 2.5 * f.length
        + 0.8 * f.turns
        + 2.6 * f.code
        + 2.6 * f.math
        + 1.6 * f.constraints
        + 1.2 * f.tools
        + 1.5 * f.output;
    1.0 / (1.0 + (-z).exp())
}

fn tier(score: f32) -> Tier {
    if score < 0.35 {
        Tier::Simple
    } else if score < 0.65 {
        Tier::Standard
    } else {
        Tier::Complex
    }
}

/// The classify slot.
fn classify(req: Request) -> Result<Classification, PolicyError> {
    let s = score(&features(&req));
    Ok(Classification {
        tier: tier(s),
        score: s,
        labels: vec![Label::new("complexity", format!("{s:.3}"))],
    })
}

sluice_guest::export_classifier!(classify);
