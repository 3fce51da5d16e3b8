//! The structural features of a chat request, each scaled to about 0..1: what a complexity classifier
//! reads besides the text's embedding. The built-in classifier computes them in Wasm (through the guest SDK)
//! and `sluice route train` computes them on the host to fit a head, from this one definition.

/// How many features [`structural`] returns.
pub const COUNT: usize = 7;

/// The features' names, in order.
pub const NAMES: [&str; COUNT] = [
    "length",
    "turns",
    "code",
    "math",
    "constraints",
    "tools",
    "output",
];

/// What the features read of a request (the fields of the policy contract's `request`).
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// Each message's text, in order.
    pub texts: &'a [&'a str],
    /// The host's upper bound of the prompt's tokens.
    pub prompt_tokens: u64,
    /// Whether the request offers tools.
    pub has_tools: bool,
    /// The output cap the client asked for.
    pub max_tokens: Option<u32>,
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
    "select ",
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

/// The share of `markers` found in `text`, saturating at three.
fn hits(text: &str, markers: &[&str]) -> f32 {
    let n = markers.iter().filter(|m| text.contains(*m)).count();
    (n as f32 / 3.0).min(1.0)
}

/// The features of a request, in the order of [`NAMES`]: prompt length (4,000 tokens of upper bound count
/// as long), turns (10 messages count as many), code markers, mathematics (markers, digits and operators),
/// constraint words, tools offered, and the output cap asked for (4,000 tokens count as long).
pub fn structural(shape: &Shape<'_>) -> [f32; COUNT] {
    let text = shape.texts.join("\n").to_lowercase();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let operators = text.chars().filter(|c| "+-*/^=<>".contains(*c)).count();
    [
        (shape.prompt_tokens as f32 / 4_000.0).min(1.0),
        (shape.texts.len() as f32 / 10.0).min(1.0),
        hits(&text, &CODE_MARKERS),
        (hits(&text, &MATH_MARKERS) + ((digits + operators) as f32 / 40.0).min(0.5)).min(1.0),
        hits(&text, &CONSTRAINT_MARKERS),
        if shape.has_tools { 1.0 } else { 0.0 },
        (shape.max_tokens.unwrap_or(0) as f32 / 4_000.0).min(1.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_feature_reads_its_part_of_the_request() {
        let plain = structural(&Shape {
            texts: &["hello there"],
            prompt_tokens: 10,
            has_tools: false,
            max_tokens: None,
        });
        assert_eq!(plain[1..], [0.1, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let busy = structural(&Shape {
            texts: &[
                "You must prove the theorem step by step, exactly.",
                "```rust\nfn main() {}\n``` compile error",
            ],
            prompt_tokens: 8_000,
            has_tools: true,
            max_tokens: Some(2_000),
        });
        assert_eq!(busy[0], 1.0, "length saturates");
        assert_eq!(busy[2], 1.0, "code: ``` fn and compile");
        assert!(busy[3] >= 2.0 / 3.0, "math: prove, theorem: {busy:?}");
        assert_eq!(busy[4], 1.0, "constraints: must, exactly, step by step");
        assert_eq!((busy[5], busy[6]), (1.0, 0.5));
    }
}
