//! The structural features of a chat request, each scaled to about 0..1: what a complexity classifier
//! reads besides the text's embedding. The built-in classifier computes them in Wasm (through the guest SDK)
//! and `sluice route train` computes them on the host to fit a head, from this one definition.

/// How many features [`structural`] returns.
pub const COUNT: usize = 9;

/// The features' names, in order.
pub const NAMES: [&str; COUNT] = [
    "length",
    "turns",
    "code",
    "math",
    "constraints",
    "tools",
    "output",
    "reasoning",
    "pasted",
];

/// What the features read of a request (the fields of the policy contract's `request`).
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// Each message's text, in order.
    pub texts: &'a [&'a str],
    /// The question: the last user turn's text (empty without one).
    pub question: &'a str,
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

/// Words that ask for reasoning rather than recall (proofs, designs, analyses, comparisons, strategies), in
/// the corpus's languages: the embedding model reads English best, and these carry the ask in the others.
const REASONING_MARKERS: [&str; 46] = [
    "prove",
    "show that",
    "derive",
    "generaliz",
    "trade-off",
    "tradeoff",
    "design",
    "strategy",
    "minimum",
    "optimal",
    "why ",
    "explain why",
    "how would you",
    "analy",
    "investigat",
    "evaluate",
    "compare",
    "beweise",
    "zeige",
    "entwirf",
    "analysiere",
    "vergleiche",
    "démontre",
    "montre",
    "conçois",
    "analyse",
    "demuestra",
    "diseña",
    "analiza",
    "compara",
    "prove que",
    "projete",
    "analise",
    "dimostra",
    "progetta",
    "valuta",
    "discuti",
    "证明",
    "设计",
    "分析",
    "比较",
    "証明",
    "設計",
    "論じ",
    "説明してください",
    "検討",
];

/// Whether the question is a short instruction over a pasted text (a first paragraph under 150 bytes, then
/// more, 300 bytes in all): summarise, proofread, translate this. Its length is the input's, not the task's.
fn pasted(question: &str) -> bool {
    let head = question.split("\n\n").next().unwrap_or_default();
    question.len() > 300 && head.len() < 150 && question.contains("\n\n")
}

/// The share of `markers` found in `text`, saturating at three.
fn hits(text: &str, markers: &[&str]) -> f32 {
    let n = markers.iter().filter(|m| text.contains(*m)).count();
    (n as f32 / 3.0).min(1.0)
}

/// The features of a request given as its messages' `(role, text)`, in order: [`structural`] with the
/// question taken as the last `user` message.
pub fn of_messages<'a>(
    messages: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    prompt_tokens: u64,
    has_tools: bool,
    max_tokens: Option<u32>,
) -> [f32; COUNT] {
    let texts: Vec<&str> = messages.clone().map(|(_, text)| text).collect();
    let question = messages
        .filter(|(role, _)| *role == "user")
        .last()
        .map_or("", |(_, text)| text);
    structural(&Shape {
        texts: &texts,
        question,
        prompt_tokens,
        has_tools,
        max_tokens,
    })
}

/// The features of a request, in the order of [`NAMES`]: prompt length (4,000 tokens of upper bound count
/// as long), turns (10 messages count as many), code markers, mathematics (markers, digits and operators),
/// constraint words, tools offered, the output cap asked for (4,000 tokens count as long), reasoning words in
/// the question, and whether the question is an instruction over a pasted text.
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
        hits(&shape.question.to_lowercase(), &REASONING_MARKERS),
        if pasted(shape.question) { 1.0 } else { 0.0 },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_feature_reads_its_part_of_the_request() {
        let plain = structural(&Shape {
            texts: &["hello there"],
            question: "hello there",
            prompt_tokens: 10,
            has_tools: false,
            max_tokens: None,
        });
        assert_eq!(plain[1..], [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let busy = structural(&Shape {
            texts: &[
                "You must prove the theorem step by step, exactly.",
                "```rust\nfn main() {}\n``` compile error",
            ],
            question: "```rust\nfn main() {}\n``` compile error",
            prompt_tokens: 8_000,
            has_tools: true,
            max_tokens: Some(2_000),
        });
        assert_eq!(busy[0], 1.0, "length saturates");
        assert_eq!(busy[2], 1.0, "code: ``` fn and compile");
        assert!(busy[3] >= 2.0 / 3.0, "math: prove, theorem: {busy:?}");
        assert_eq!(busy[4], 1.0, "constraints: must, exactly, step by step");
        assert_eq!((busy[5], busy[6]), (1.0, 0.5));
        assert_eq!(
            (busy[7], busy[8]),
            (0.0, 0.0),
            "the question asks no reasoning"
        );
        let asked = structural(&Shape {
            texts: &[],
            question: "Beweise den Satz, dann vergleiche und analysiere beide Wege.",
            prompt_tokens: 20,
            has_tools: false,
            max_tokens: None,
        });
        assert_eq!(asked[7], 1.0, "three reasoning words, in German");
        let paste = format!("Summarize this:\n\n{}", "Words of an article. ".repeat(20));
        let pasted = structural(&Shape {
            texts: &[&paste],
            question: &paste,
            prompt_tokens: 120,
            has_tools: false,
            max_tokens: None,
        });
        assert_eq!(pasted[8], 1.0);
    }
}
