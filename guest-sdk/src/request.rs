//! Request helpers: metadata and label look-ups, the last user message, code detection and a token
//! estimate.

use crate::{Label, Request};

impl Label {
    /// A label `key = value`, for [`AuthDecision::Allow`](crate::AuthDecision::Allow) or
    /// [`Classification::labels`](crate::Classification).
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The first value of `key` among `labels`.
fn find<'a>(labels: &'a [Label], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.key == key)
        .map(|l| l.value.as_str())
}

impl Request {
    /// The value of request metadata `key`: the client's `x-sluice-meta-<key>` header (`user` for the OpenAI
    /// `user` field). Only the gateway's allowlisted keys reach a policy.
    pub fn meta(&self, key: &str) -> Option<&str> {
        find(&self.metadata, key)
    }

    /// The value of label `key`, added by an earlier slot (auth, then classify).
    pub fn label(&self, key: &str) -> Option<&str> {
        find(&self.labels, key)
    }

    /// The text of the last message whose role is `user`.
    pub fn last_user_text(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.text.as_str())
    }

    /// Whether any message looks like it holds code ([`looks_like_code`]).
    pub fn contains_code(&self) -> bool {
        self.messages.iter().any(|m| looks_like_code(&m.text))
    }
}

/// Markers that seldom occur in prose but often in source code.
const CODE_MARKERS: [&str; 14] = [
    "fn ",
    "def ",
    "#include",
    "import ",
    "=>",
    "->",
    "();",
    ") {",
    "};",
    "print(",
    "console.log",
    "println!",
    "select ",
    "const ",
];

/// A heuristic: whether `text` looks like it holds code. True for a Markdown code fence (```), or for at
/// least two distinct common code markers (`fn `, `def `, `#include`, `import `, `=>`, `();`, `) {`, ...),
/// compared case-insensitively; a single marker is too common in prose to count.
pub fn looks_like_code(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    let lower = text.to_lowercase();
    CODE_MARKERS.iter().filter(|m| lower.contains(*m)).count() >= 2
}

/// A rough token count for `text`: its characters divided by 4, rounded up (about right for English with
/// GPT-style tokenizers).
///
/// The host's [`Request::prompt_tokens`] is a different, safe upper bound: the prompt's UTF-8 bytes plus 8
/// per message, which budgets and the worst-case cost use. This estimate is cheaper to reason with and
/// closer to what a provider bills, but it can be lower than the real count; do not use it where
/// overspending matters.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Message, Role};

    fn request(messages: &[(&str, &str)]) -> Request {
        Request {
            request_id: "r".to_owned(),
            tenant_id: "t".to_owned(),
            key_id: "k".to_owned(),
            key_role: Role::Member,
            endpoint: Endpoint::Chat,
            model: "auto".to_owned(),
            messages: messages
                .iter()
                .map(|(role, text)| Message {
                    role: (*role).to_owned(),
                    text: (*text).to_owned(),
                })
                .collect(),
            max_tokens: None,
            temperature: None,
            stream: false,
            has_tools: false,
            metadata: vec![Label::new("tier", "premium"), Label::new("tier", "second")],
            prompt_tokens: 0,
            labels: vec![Label::new("team", "search")],
        }
    }

    #[test]
    fn metadata_and_labels() {
        let req = request(&[]);
        assert_eq!(req.meta("tier"), Some("premium"));
        assert_eq!(req.meta("team"), None);
        assert_eq!(req.label("team"), Some("search"));
        assert_eq!(req.label("tier"), None);
        let l = Label::new("k", String::from("v"));
        assert_eq!((l.key.as_str(), l.value.as_str()), ("k", "v"));
    }

    #[test]
    fn last_user_text() {
        let req = request(&[
            ("system", "be brief"),
            ("user", "first"),
            ("assistant", "ok"),
            ("user", "second"),
            ("tool", "result"),
        ]);
        assert_eq!(req.last_user_text(), Some("second"));
        assert_eq!(request(&[("system", "x")]).last_user_text(), None);
    }

    #[test]
    fn code_detection() {
        assert!(looks_like_code("fix this:\n```\nlet x = 1;\n```"));
        assert!(looks_like_code("def add(a, b) -> int:\n    return a + b"));
        assert!(looks_like_code("fn main() {\n    println!(\"hi\");\n}"));
        assert!(looks_like_code(
            "SELECT name FROM users; const x = () => 1;"
        ));
        assert!(!looks_like_code("What is the capital of France?"));
        // One marker alone is prose.
        assert!(!looks_like_code("Please import the spreadsheet for me."));
        assert!(request(&[("system", "x"), ("user", "```rust\nfn a() {}\n```")]).contains_code());
        assert!(!request(&[("user", "hello there")]).contains_code());
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Characters, not bytes: four 2-byte characters are one token.
        assert_eq!(estimate_tokens("éééé"), 1);
    }
}
