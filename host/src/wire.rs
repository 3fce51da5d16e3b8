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

/// A conservative estimate of prompt tokens: UTF-8 bytes plus a per-message allowance. A tokenizer never
/// yields more tokens than bytes, so this is an upper bound of what an upstream bills.
pub fn prompt_token_upper_bound(req: &ChatRequest) -> u64 {
    let bytes: usize = req.text_parts().map(str::len).sum();
    let per_message = 8 * req.messages.len();
    u64::try_from(bytes + per_message).unwrap_or(u64::MAX)
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

    #[test]
    fn prompt_estimate_bounds_bytes() {
        let req: ChatRequest = parse_body(
            r#"{"model":"m","messages":[{"role":"user","content":"héllo"}]}"#.as_bytes(),
        )
        .unwrap();
        assert_eq!(prompt_token_upper_bound(&req), 6 + 8);
    }
}
