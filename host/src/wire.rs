//! The OpenAI wire format: typed, validated views of the request fields the gateway uses, with every
//! other field kept verbatim (`rest`) so it passes through to OpenAI-compatible upstreams unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a request body is not a valid request: the offending parameter (a JSON path) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub param: Option<String>,
    pub message: String,
}

impl Invalid {
    /// A parameter with a bad value.
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            param: Some(param.into()),
            message: message.into(),
        }
    }

    /// A body that is wrong as a whole.
    pub fn body(message: impl Into<String>) -> Invalid {
        Invalid {
            param: None,
            message: message.into(),
        }
    }
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// Every other OpenAI parameter (`response_format`, `seed`, `tool_choice`, ...), passed through.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: MessageRole,
    /// A string, an array of content parts, or null (assistant messages with tool calls).
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn wants_usage_in_stream(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// Output token cap the client asked for (`max_completion_tokens` wins over the legacy field).
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Text of the message contents, for estimates and policies.
    pub fn text_parts(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .flat_map(|m| content_text(m.content.as_ref()))
    }

    /// Checks the ranges and shapes serde cannot express.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.model.is_empty() {
            return Err(Invalid::param("model", "`model` must not be empty"));
        }
        if self.messages.is_empty() {
            return Err(Invalid::param(
                "messages",
                "`messages` must contain at least one message",
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            match &m.content {
                None | Some(Value::Null) => {
                    let has_calls = m.rest.get("tool_calls").is_some_and(|v| !v.is_null());
                    if !(m.role == MessageRole::Assistant && has_calls) {
                        return Err(Invalid::param(
                            format!("messages[{i}].content"),
                            "`content` is required",
                        ));
                    }
                }
                Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    for (j, p) in parts.iter().enumerate() {
                        if !p.get("type").is_some_and(Value::is_string) {
                            return Err(Invalid::param(
                                format!("messages[{i}].content[{j}].type"),
                                "every content part needs a string `type`",
                            ));
                        }
                    }
                }
                Some(_) => {
                    return Err(Invalid::param(
                        format!("messages[{i}].content"),
                        "`content` must be a string or an array of content parts",
                    ));
                }
            }
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(Invalid::param(
                "temperature",
                "`temperature` must be between 0 and 2",
            ));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(Invalid::param("top_p", "`top_p` must be between 0 and 1"));
        }
        if let Some(n) = self.n
            && !(1..=128).contains(&n)
        {
            return Err(Invalid::param("n", "`n` must be between 1 and 128"));
        }
        if self.max_output_tokens() == Some(0) {
            return Err(Invalid::param(
                "max_tokens",
                "the output token cap must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The text pieces of a message content (string, or the `text` of text parts).
pub fn content_text(content: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match content {
        Some(Value::String(s)) => Box::new(std::iter::once(s.as_str())),
        Some(Value::Array(parts)) => Box::new(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str)),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

impl EmbeddingsRequest {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.model.is_empty() {
            return Err(Invalid::param("model", "`model` must not be empty"));
        }
        let ok = match &self.input {
            Value::String(s) => !s.is_empty(),
            Value::Array(items) => {
                !items.is_empty()
                    && (items
                        .iter()
                        .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                        || items.iter().all(Value::is_u64)
                        || items.iter().all(|v| {
                            v.as_array()
                                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_u64))
                        }))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Invalid::param(
                "input",
                "`input` must be a non-empty string, array of strings, or array of token arrays",
            ))
        }
    }

    /// The inputs as texts (token-array inputs have none).
    pub fn texts(&self) -> Vec<&str> {
        match &self.input {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Number of inputs.
    pub fn input_count(&self) -> usize {
        match &self.input {
            Value::Array(items) if items.iter().all(Value::is_u64) => 1,
            Value::Array(items) => items.len(),
            _ => 1,
        }
    }
}

/// Parses a JSON body into `T`, naming the offending field on failure.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    if std::str::from_utf8(body).is_err() {
        return Err(Invalid::body("the request body is not valid UTF-8"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Invalid::body(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." {
            Invalid::body(format!("invalid request: {inner}"))
        } else {
            Invalid::param(path.clone(), format!("invalid `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| Invalid::body(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// The most prompt tokens one image part can cost at any provider the gateway speaks to: OpenAI's documented
/// worst case, a high-detail image on gpt-4o-mini (2,833 base tokens plus 4 tiles of 5,667). Anthropic's
/// documented maximum is about 1,600 per image.
pub const IMAGE_TOKEN_BOUND: u64 = 25_501;

/// Tokens allowed per message, and per tool definition, for the framing an upstream adds around them.
const FRAMING_TOKENS: u64 = 8;

/// Upper bounds of what a chat request can be billed, computed before it is routed. Text of any kind is
/// counted by its UTF-8 bytes (no tokenizer yields more tokens than bytes): message contents, names, tool
/// calls, tool and function definitions, `response_format` schemas and every other field the gateway passes
/// through. Images count `IMAGE_TOKEN_BOUND` each, audio its encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatBound {
    /// Upper bound of the prompt tokens any upstream bills.
    pub prompt_tokens: u64,
    /// Completions generated: `n`, or `best_of` when larger. Each may use the whole output cap.
    pub choices: u32,
    /// Tokens billed at the output price beyond the choices' own: `prediction` content, which the model
    /// may reject and bill as completion tokens.
    pub extra_output_tokens: u64,
    /// The first part whose cost no bound covers (a `file` part, a content part of a type the gateway does
    /// not know, an earlier audio answer referred to by id), as a JSON path. Under a spend cap or a token rate
    /// limit such a request is refused.
    pub unbounded: Option<String>,
}

impl ChatBound {
    /// Output tokens billed at most when each choice generates `per_choice` tokens.
    pub fn output_tokens(&self, per_choice: u32) -> u64 {
        u64::from(per_choice)
            .saturating_mul(u64::from(self.choices))
            .saturating_add(self.extra_output_tokens)
    }
}

/// Counts the bytes of a value's JSON encoding without keeping them.
#[derive(Default)]
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self
            .0
            .saturating_add(u64::try_from(buf.len()).unwrap_or(u64::MAX));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of the JSON encoding of `value`.
fn json_bytes(value: &impl Serialize) -> u64 {
    let mut count = ByteCount::default();
    // Writing to a counter cannot fail, and every type here serialises.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn bytes_of(s: &str) -> u64 {
    u64::try_from(s.len()).unwrap_or(u64::MAX)
}

/// The bounds of a chat request (see `ChatBound`).
pub fn chat_bound(req: &ChatRequest) -> ChatBound {
    let mut unbounded = None;
    let mut prompt: u64 = 0;
    for (i, m) in req.messages.iter().enumerate() {
        prompt = prompt.saturating_add(FRAMING_TOKENS);
        match &m.content {
            Some(Value::String(s)) => prompt = prompt.saturating_add(bytes_of(s)),
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    match part_bound(part) {
                        Some(tokens) => prompt = prompt.saturating_add(tokens),
                        None => {
                            unbounded.get_or_insert_with(|| format!("messages[{i}].content[{j}]"));
                        }
                    }
                }
            }
            _ => {}
        }
        if m.rest.contains_key("audio") {
            // An earlier spoken answer, by id: its audio tokens are the upstream's to count.
            unbounded.get_or_insert_with(|| format!("messages[{i}].audio"));
        }
        if !m.rest.is_empty() {
            // `name`, `tool_calls` (their arguments are text the model reads), `tool_call_id`, ...
            prompt = prompt.saturating_add(json_bytes(&m.rest));
        }
    }
    if let Some(tools) = &req.tools {
        let framing = FRAMING_TOKENS.saturating_mul(u64::try_from(tools.len()).unwrap_or(u64::MAX));
        prompt = prompt
            .saturating_add(json_bytes(tools))
            .saturating_add(framing);
    }
    if !req.rest.is_empty() {
        // `functions`, `response_format` (a JSON schema the model is given), `tool_choice`, and every field
        // the gateway does not know: counted whole, so no new field adds cost unseen.
        prompt = prompt.saturating_add(json_bytes(&req.rest));
    }
    let best_of = req
        .rest
        .get("best_of")
        .and_then(Value::as_u64)
        .map_or(1, |b| u32::try_from(b).unwrap_or(u32::MAX));
    let extra_output_tokens = req.rest.get("prediction").map_or(0, json_bytes);
    ChatBound {
        prompt_tokens: prompt,
        choices: req.n.unwrap_or(1).max(best_of).max(1),
        extra_output_tokens,
        unbounded,
    }
}

/// Prompt tokens of one content part at most; `None` when no bound is known.
fn part_bound(part: &Value) -> Option<u64> {
    let text = |field: &str| part.get(field).and_then(Value::as_str).map_or(0, bytes_of);
    match part.get("type").and_then(Value::as_str)? {
        "text" => Some(text("text")),
        "refusal" => Some(text("refusal")),
        "image_url" | "image" => Some(IMAGE_TOKEN_BOUND),
        // Audio tokens run at most a few dozen per second, far below the bytes of any encoding of it.
        "input_audio" => Some(
            part.pointer("/input_audio/data")
                .and_then(Value::as_str)
                .map_or(0, bytes_of)
                .saturating_add(FRAMING_TOKENS),
        ),
        // A document becomes text and page images at the upstream: nothing here bounds how many pages a few
        // bytes (or a file id) hold.
        _ => None,
    }
}

/// An upper bound of the tokens of an embeddings input: UTF-8 bytes of each string, the length of each token
/// array, plus a per-input allowance for the special tokens a model adds.
pub fn embeddings_token_upper_bound(req: &EmbeddingsRequest) -> u64 {
    fn item(v: &Value) -> u64 {
        match v {
            Value::String(s) => u64::try_from(s.len()).unwrap_or(u64::MAX).saturating_add(8),
            Value::Number(_) => 1,
            Value::Array(items) if items.iter().all(Value::is_number) => u64::try_from(items.len())
                .unwrap_or(u64::MAX)
                .saturating_add(8),
            Value::Array(items) => items.iter().map(item).fold(0, u64::saturating_add),
            other => u64::try_from(other.to_string().len()).unwrap_or(u64::MAX),
        }
    }
    item(&req.input)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_pass_through() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}],
            "seed":7,"response_format":{"type":"json_object"},"tool_choice":"auto"}"#;
        let req: ChatRequest = parse_body(body).unwrap();
        req.validate().unwrap();
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["seed"], 7);
        assert_eq!(out["response_format"]["type"], "json_object");
        assert_eq!(out["tool_choice"], "auto");
        assert_eq!(out["messages"][0]["name"], "bob");
        assert!(out.get("stream").is_none(), "absent fields stay absent");
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = parse_body::<ChatRequest>(
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse_body::<ChatRequest>(br#"{"model":"m","messages":[],"max_tokens":"ten"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = parse_body::<ChatRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert!(e.message.contains("messages"), "{}", e.message);
        let e = parse_body::<ChatRequest>(b"{\"model\":").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_body::<ChatRequest>(b"{\"model\":\"\xff\"}").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    #[test]
    fn ranges_are_checked() {
        let base = |extra: &str| {
            let text =
                format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#);
            parse_body::<ChatRequest>(text.as_bytes())
                .unwrap()
                .validate()
        };
        assert!(base("").is_ok());
        assert_eq!(
            base(r#","temperature":3"#).unwrap_err().param.as_deref(),
            Some("temperature")
        );
        assert_eq!(base(r#","n":0"#).unwrap_err().param.as_deref(), Some("n"));
        assert_eq!(
            base(r#","max_tokens":0"#).unwrap_err().param.as_deref(),
            Some("max_tokens")
        );
        let empty = parse_body::<ChatRequest>(br#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(
            empty.validate().unwrap_err().param.as_deref(),
            Some("messages")
        );
    }

    fn bound(body: &str) -> ChatBound {
        chat_bound(&parse_body::<ChatRequest>(body.as_bytes()).unwrap())
    }

    #[test]
    fn the_prompt_bound_counts_bytes() {
        let b = bound(r#"{"model":"m","messages":[{"role":"user","content":"héllo"}]}"#);
        assert_eq!(
            b,
            ChatBound {
                prompt_tokens: 6 + 8,
                choices: 1,
                extra_output_tokens: 0,
                unbounded: None
            }
        );
        assert_eq!(b.output_tokens(100), 100);
    }

    #[test]
    fn the_bound_counts_everything_the_model_reads() {
        let tools = format!(
            r#"[{{"type":"function","function":{{"name":"f","description":"{}"}}}}]"#,
            "x".repeat(2_000_000)
        );
        let with_tools = bound(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":{tools}}}"#
        ));
        assert!(with_tools.prompt_tokens > 2_000_000, "{with_tools:?}");
        let schema = bound(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"response_format":{{"type":"json_schema","json_schema":{{"d":"{}"}}}}}}"#,
            "y".repeat(5000)
        ));
        assert!(schema.prompt_tokens > 5000);
        let images = bound(
            r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"text","text":"what is this"},
            {"type":"image_url","image_url":{"url":"https://e.com/a.png"}},
            {"type":"image_url","image_url":{"url":"https://e.com/b.png","detail":"high"}}]}]}"#,
        );
        assert_eq!(images.prompt_tokens, 8 + 12 + 2 * IMAGE_TOKEN_BOUND);
        let calls = bound(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"q\":\"a long argument\"}"}}]},
            {"role":"tool","tool_call_id":"c","content":"result"}]}"#,
        );
        assert!(calls.prompt_tokens > 8 * 3 + 2 + 6 + 15, "{calls:?}");
    }

    #[test]
    fn choices_and_predictions_multiply_the_output() {
        let b = bound(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":128,"max_tokens":100}"#,
        );
        assert_eq!((b.choices, b.output_tokens(100)), (128, 12_800));
        let b =
            bound(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,"best_of":5}"#);
        assert_eq!(b.choices, 5);
        let b = bound(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"prediction":{"type":"content","content":"0123456789"}}"#,
        );
        assert!(b.extra_output_tokens >= 10);
        assert_eq!(b.output_tokens(5), 5 + b.extra_output_tokens);
    }

    #[test]
    fn parts_without_a_bound_are_named() {
        let b = bound(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[
            {"type":"text","text":"read this"},{"type":"file","file":{"file_id":"file-1"}}]}]}"#,
        );
        assert_eq!(b.unbounded.as_deref(), Some("messages[1].content[1]"));
        let b =
            bound(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"hologram"}]}]}"#);
        assert_eq!(b.unbounded.as_deref(), Some("messages[0].content[0]"));
        let b = bound(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}"#,
        );
        assert_eq!((b.unbounded, b.prompt_tokens), (None, 8 + 4 + 8));
    }
}
