//! What a request may do with the cache, and its keys: the bypass rules, the **exact key** (of the canonical
//! request) and the **context key** (of everything but the last user message: system prompt, earlier turns,
//! tools, response format, sampling and every other parameter).
//!
//! Keys are HMAC-SHA256 of canonical JSON (object keys sorted, no whitespace) behind a domain tag, under the
//! tenant's own secret ([`TenantSecret`]): two requests of one tenant share a key only if they ask the same
//! thing, and the same question from two tenants has unrelated keys, so the stored keys neither link tenants
//! nor let anyone with the database confirm a guessed prompt. Each tenant's entries also live in maps of
//! their own.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha2::Sha256;

use crate::wire::{ChatRequest, Message, MessageRole};

pub type Key = [u8; 32];

/// A tenant's secret for its cache keys (derived from the gateway's master key; never stored).
#[derive(Clone)]
pub struct TenantSecret([u8; 32]);

impl TenantSecret {
    pub fn new(bytes: [u8; 32]) -> TenantSecret {
        TenantSecret(bytes)
    }

    /// An HMAC under the secret, its input starting with `domain`.
    fn mac(&self, domain: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(domain);
        mac
    }
}

impl std::fmt::Debug for TenantSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantSecret(..)")
    }
}

/// The request header that raises (never lowers) the tenant's semantic threshold.
pub const THRESHOLD_HEADER: &str = "x-sluice-cache-threshold";

/// Why a request neither reads nor fills the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// The operator turned the cache off, or the tenant did.
    Disabled,
    /// The tenant keeps no content, so the gateway keeps no answers either.
    ZeroRetention,
    /// `temperature > 0` and the tenant did not opt in to caching sampled answers.
    Sampled,
    /// `n > 1`: several choices.
    Choices,
    /// `logprobs` or `top_logprobs`.
    Logprobs,
    /// Tool calls or tool results in the conversation.
    Tools,
    /// `Cache-Control: no-store`.
    NoStore,
    /// There is no user message to answer.
    NoQuestion,
}

impl Bypass {
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::Disabled => "disabled",
            Bypass::ZeroRetention => "zero_retention",
            Bypass::Sampled => "sampled",
            Bypass::Choices => "choices",
            Bypass::Logprobs => "logprobs",
            Bypass::Tools => "tools",
            Bypass::NoStore => "no_store",
            Bypass::NoQuestion => "no_question",
        }
    }
}

/// The keys of a cacheable request and what it may do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The deployment family: the model the client named, with the tier when the request was classified.
    pub family: String,
    pub exact: Key,
    pub context: Key,
    /// The last user message's text, for the semantic tier and the lexical guard; `None` when it is not
    /// plain text (images, audio): exact tier only.
    pub question: Option<String>,
    /// `false` under `Cache-Control: no-cache`: the answer is fetched afresh (and stored).
    pub read: bool,
    /// The similarity a semantic hit needs, when the request raised the tenant's
    /// (`x-sluice-cache-threshold`).
    pub threshold: Option<f32>,
}

/// The tenant's settings as the rules read them.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub enabled: bool,
    pub cache_sampled: bool,
}

/// A malformed `x-sluice-cache-threshold`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{THRESHOLD_HEADER}` must be a number between 0 and 1 (it can only raise the tenant's threshold)"
)]
pub struct BadThreshold;

/// The request's plan, or why it bypasses the cache. `family` names the deployments that may answer;
/// `secret` is the tenant's.
pub fn plan(
    chat: &ChatRequest,
    headers: &HeaderMap,
    family: String,
    rules: Rules,
    secret: &TenantSecret,
) -> Result<Result<Plan, Bypass>, BadThreshold> {
    let threshold = threshold(headers)?;
    Ok(bypass(chat, headers, rules).map_or_else(
        || {
            let question = question_index(chat).ok_or(Bypass::NoQuestion)?;
            let context = context_key(chat, &family, question, secret);
            let asked = &chat.messages[question];
            let mut h = secret.mac(b"sluice-cache-exact\0");
            h.update(&context);
            h.update(&canonical(
                &serde_json::to_value(asked).unwrap_or(Value::Null),
            ));
            Ok(Plan {
                family,
                exact: h.finalize().into_bytes().into(),
                context,
                question: text_of(asked),
                read: !cache_control(headers, "no-cache"),
                threshold,
            })
        },
        Err,
    ))
}

/// The request's last user turn: the question its answer is about.
fn question_index(chat: &ChatRequest) -> Option<usize> {
    chat.messages
        .iter()
        .rposition(|m| m.role == MessageRole::User)
}

/// The text of the request's question (its last user turn; `None` when that turn is not text): what the
/// semantic tier embeds, and what the classifier's embedding is of, so one embedding serves both.
pub fn question_text(chat: &ChatRequest) -> Option<String> {
    text_of(&chat.messages[question_index(chat)?])
}

/// The first rule the request breaks.
fn bypass(chat: &ChatRequest, headers: &HeaderMap, rules: Rules) -> Option<Bypass> {
    if !rules.enabled {
        return Some(Bypass::Disabled);
    }
    if cache_control(headers, "no-store") {
        return Some(Bypass::NoStore);
    }
    if chat.n.is_some_and(|n| n > 1) {
        return Some(Bypass::Choices);
    }
    if chat.temperature.is_some_and(|t| t > 0.0) && !rules.cache_sampled {
        return Some(Bypass::Sampled);
    }
    let logprobs = chat
        .rest
        .get("logprobs")
        .is_some_and(|v| v != &Value::Bool(false))
        || chat.rest.get("top_logprobs").is_some_and(|v| !v.is_null());
    if logprobs {
        return Some(Bypass::Logprobs);
    }
    if chat.messages.iter().any(uses_tools) {
        return Some(Bypass::Tools);
    }
    None
}

/// A tool result, or an assistant turn that called tools.
fn uses_tools(m: &Message) -> bool {
    matches!(m.role, MessageRole::Tool | MessageRole::Function)
        || m.rest.get("tool_calls").is_some_and(|v| !v.is_null())
        || m.rest.get("function_call").is_some_and(|v| !v.is_null())
}

fn cache_control(headers: &HeaderMap, directive: &str) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case(directive))
}

fn threshold(headers: &HeaderMap) -> Result<Option<f32>, BadThreshold> {
    let Some(value) = headers.get(THRESHOLD_HEADER) else {
        return Ok(None);
    };
    let t: f32 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or(BadThreshold)?;
    if (0.0..=1.0).contains(&t) {
        Ok(Some(t))
    } else {
        Err(BadThreshold)
    }
}

/// Everything that shapes the answer except the question itself: the family, every parameter but the
/// transport ones (`stream`, `stream_options`) and the end-user id, and the turns before and after it.
fn context_key(chat: &ChatRequest, family: &str, question: usize, secret: &TenantSecret) -> Key {
    let mut params = serde_json::to_value(chat).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut params {
        for transport in ["model", "messages", "stream", "stream_options", "user"] {
            map.remove(transport);
        }
    }
    let turns = |ms: &[Message]| serde_json::to_value(ms).unwrap_or(Value::Null);
    let context = serde_json::json!({
        "family": family,
        "params": params,
        "before": turns(&chat.messages[..question]),
        "after": turns(&chat.messages[question + 1..]),
    });
    let mut h = secret.mac(b"sluice-cache-context\0");
    h.update(&canonical(&context));
    h.finalize().into_bytes().into()
}

/// A message's text: a string, or text parts only (joined by newlines).
fn text_of(m: &Message) -> Option<String> {
    match m.content.as_ref()? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Option<Vec<&str>> = parts
                .iter()
                .map(|p| {
                    (p.get("type")?.as_str()? == "text")
                        .then(|| p.get("text")?.as_str())
                        .flatten()
                })
                .collect();
            texts.map(|t| t.join("\n"))
        }
        _ => None,
    }
}

/// Canonical JSON: object keys sorted by their bytes, no whitespace, numbers as serde_json prints them.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            // A scalar's JSON text has no object in it, so this is already canonical.
            out.extend_from_slice(serde_json::to_string(scalar).unwrap_or_default().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    const ON: Rules = Rules {
        enabled: true,
        cache_sampled: false,
    };

    fn secret() -> TenantSecret {
        TenantSecret::new([7; 32])
    }

    fn planned(body: Value, headers: &HeaderMap) -> Result<Plan, Bypass> {
        plan(&chat(body), headers, "m".to_owned(), ON, &secret()).unwrap()
    }

    #[test]
    fn the_same_request_of_two_tenants_has_unrelated_keys() {
        let body =
            || serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let a = plan(
            &chat(body()),
            &HeaderMap::new(),
            "m".to_owned(),
            ON,
            &TenantSecret::new([1; 32]),
        )
        .unwrap()
        .unwrap();
        let b = plan(
            &chat(body()),
            &HeaderMap::new(),
            "m".to_owned(),
            ON,
            &TenantSecret::new([2; 32]),
        )
        .unwrap()
        .unwrap();
        assert_ne!(a.exact, b.exact);
        assert_ne!(a.context, b.context);
    }

    fn ask(messages: Value) -> Plan {
        planned(
            serde_json::json!({"model": "m", "messages": messages}),
            &HeaderMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn the_exact_key_ignores_transport_and_key_order_but_nothing_that_shapes_the_answer() {
        let one = planned(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                "seed": 1, "response_format": {"type": "json_object", "schema": {"b": 1, "a": 2}}}),
            &HeaderMap::new(),
        )
        .unwrap();
        let same = planned(
            serde_json::json!({"response_format": {"schema": {"a": 2, "b": 1}, "type": "json_object"},
                "seed": 1, "messages": [{"content": "hi", "role": "user"}], "model": "other", "user": "u7"}),
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(one.exact, same.exact);
        assert_eq!(one.context, same.context);
        for changed in [
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 2}),
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}),
        ] {
            let other = planned(changed, &HeaderMap::new()).unwrap();
            assert_ne!(other.context, one.context);
            assert_ne!(other.exact, one.exact);
        }
        let family = plan(
            &chat(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1,
                "response_format": {"type": "json_object", "schema": {"b": 1, "a": 2}}})),
            &HeaderMap::new(),
            "other-family".to_owned(),
            ON,
            &secret(),
        )
        .unwrap()
        .unwrap();
        assert_ne!(family.context, one.context, "the family is part of the key");
    }

    #[test]
    fn the_context_key_covers_the_system_prompt_and_earlier_turns_but_not_the_question() {
        let base = ask(serde_json::json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is Rust?"}]));
        let other_question = ask(serde_json::json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is Go?"}]));
        assert_eq!(base.context, other_question.context);
        assert_ne!(base.exact, other_question.exact);
        assert_eq!(base.question.as_deref(), Some("What is Rust?"));
        let other_system = ask(serde_json::json!([
            {"role": "system", "content": "You are verbose."},
            {"role": "user", "content": "What is Rust?"}]));
        assert_ne!(base.context, other_system.context);
        let earlier_turn = ask(serde_json::json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "What is Rust?"}]));
        assert_ne!(base.context, earlier_turn.context);
    }

    #[test]
    fn each_bypass_rule() {
        let m = || serde_json::json!([{"role": "user", "content": "hi"}]);
        let none = HeaderMap::new();
        let cases = [
            (
                serde_json::json!({"model": "m", "messages": m(), "temperature": 0.7}),
                Bypass::Sampled,
            ),
            (
                serde_json::json!({"model": "m", "messages": m(), "n": 2}),
                Bypass::Choices,
            ),
            (
                serde_json::json!({"model": "m", "messages": m(), "logprobs": true}),
                Bypass::Logprobs,
            ),
            (
                serde_json::json!({"model": "m", "messages": m(), "top_logprobs": 2}),
                Bypass::Logprobs,
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c", "content": "42"},
                    {"role": "user", "content": "and?"}]}),
                Bypass::Tools,
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "system", "content": "s"}]}),
                Bypass::NoQuestion,
            ),
        ];
        for (body, why) in cases {
            assert_eq!(planned(body.clone(), &none).unwrap_err(), why, "{body}");
        }
        let mut no_store = HeaderMap::new();
        no_store.insert("cache-control", "max-age=0, No-Store".parse().unwrap());
        assert_eq!(
            planned(
                serde_json::json!({"model": "m", "messages": m()}),
                &no_store
            )
            .unwrap_err(),
            Bypass::NoStore
        );
        let mut no_cache = HeaderMap::new();
        no_cache.insert("cache-control", "no-cache".parse().unwrap());
        let fresh = planned(
            serde_json::json!({"model": "m", "messages": m()}),
            &no_cache,
        )
        .unwrap();
        assert!(!fresh.read, "no-cache fetches afresh");
        let sampled = plan(
            &chat(serde_json::json!({"model": "m", "messages": m(), "temperature": 0.7})),
            &none,
            "m".to_owned(),
            Rules {
                enabled: true,
                cache_sampled: true,
            },
            &secret(),
        )
        .unwrap();
        assert!(
            sampled.is_ok(),
            "a tenant may opt in to caching sampled answers"
        );
        let off = plan(
            &chat(serde_json::json!({"model": "m", "messages": m()})),
            &none,
            "m".to_owned(),
            Rules {
                enabled: false,
                cache_sampled: false,
            },
            &secret(),
        )
        .unwrap();
        assert_eq!(off.unwrap_err(), Bypass::Disabled);
        // Tools offered but not used yet: cacheable, and part of the context.
        let tools = planned(
            serde_json::json!({"model": "m", "messages": m(), "tools": [{"type": "function",
                "function": {"name": "f"}}]}),
            &none,
        )
        .unwrap();
        assert_ne!(tools.context, ask(m()).context);
    }

    #[test]
    fn the_threshold_header_is_a_number_in_the_unit_interval() {
        let body =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (value, ok) in [
            ("0.97", Some(0.97)),
            ("1", Some(1.0)),
            ("2", None),
            ("-0.1", None),
            ("high", None),
            ("NaN", None),
        ] {
            let mut h = HeaderMap::new();
            h.insert(THRESHOLD_HEADER, value.parse().unwrap());
            let got = plan(&chat(body.clone()), &h, "m".to_owned(), ON, &secret());
            match ok {
                Some(t) => assert_eq!(got.unwrap().unwrap().threshold, Some(t)),
                None => assert_eq!(got.unwrap_err(), BadThreshold, "{value}"),
            }
        }
    }

    #[test]
    fn text_parts_are_a_question_and_images_are_exact_only() {
        let parts = ask(serde_json::json!([{"role": "user", "content": [
            {"type": "text", "text": "Describe"}, {"type": "text", "text": "this"}]}]));
        assert_eq!(parts.question.as_deref(), Some("Describe\nthis"));
        let image = ask(serde_json::json!([{"role": "user", "content": [
            {"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]));
        assert_eq!(image.question, None);
    }
}
