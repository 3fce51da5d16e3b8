//! Chat Completions <-> Anthropic Messages translation, both directions, streaming included.
//!
//! Everything here is pure code over `serde_json::Value`: the caller does the HTTP and SSE framing.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Usage;

/// Why a translation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's request uses something Anthropic cannot express, or is malformed.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// JSON path of the offending field, e.g. `messages[2].content[1].type`.
        field: String,
        /// Human-readable explanation, safe to show to the client.
        reason: String,
    },
    /// Anthropic answered with something we cannot understand.
    #[error("upstream sent an unexpected body: {0}")]
    UnexpectedUpstream(String),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
    TranslateError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

fn unexpected(reason: impl Into<String>) -> TranslateError {
    TranslateError::UnexpectedUpstream(reason.into())
}

/// Anthropic accepts only these encodings; checking here gives the client a precise error instead of an
/// opaque upstream 400.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// OpenAI treats an explicit `null` like an absent field, so every lookup must too.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------------------------------------
// Request: chat completions -> messages
// ---------------------------------------------------------------------------------------------------------

/// OpenAI chat request JSON -> Anthropic `/v1/messages` request JSON.
/// `upstream_model` replaces the `model` field. `default_max_tokens` is used when the request has neither
/// `max_completion_tokens` nor `max_tokens` (Anthropic requires max_tokens).
pub fn chat_to_messages(
    req: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| invalid("body", "the request must be a JSON object"))?;
    reject_unsupported(obj)?;

    let (system, messages) = convert_messages(obj.get("messages"))?;

    let mut out = Map::new();
    out.insert("model".into(), Value::from(upstream_model));
    out.insert(
        "max_tokens".into(),
        Value::from(max_tokens(obj, default_max_tokens)?),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::from(system));
    }
    out.insert("messages".into(), Value::Array(messages));

    for key in ["temperature", "top_p"] {
        if let Some(v) = present(obj, key) {
            if !v.is_number() {
                return Err(invalid(key, "must be a number"));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = convert_stop(present(obj, "stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(stream) = present(obj, "stream") {
        if !stream.is_boolean() {
            return Err(invalid("stream", "must be a boolean"));
        }
        out.insert("stream".into(), stream.clone());
    }
    if let Some(user) = present(obj, "user") {
        let user = user
            .as_str()
            .ok_or_else(|| invalid("user", "must be a string"))?;
        out.insert("metadata".into(), json!({ "user_id": user }));
    }

    let tools = match present(obj, "tools") {
        Some(tools) => convert_tools(tools)?,
        None => Vec::new(),
    };
    let tool_choice = convert_tool_choice(
        present(obj, "tool_choice"),
        present(obj, "parallel_tool_calls"),
        !tools.is_empty(),
    )?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }

    Ok(Value::Object(out))
}

/// Fields whose meaning would be silently lost upstream are refused, so the client learns the request cannot
/// be honoured instead of getting a subtly different answer. Anything not listed here (`seed`,
/// `stream_options`, penalties, `store`, ...) only tunes sampling or bookkeeping and is dropped.
fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(n) = present(obj, "n")
        && n.as_u64() != Some(1)
    {
        return Err(invalid(
            "n",
            "Anthropic models return a single choice; only `n: 1` is supported",
        ));
    }
    if let Some(logprobs) = present(obj, "logprobs")
        && logprobs.as_bool() != Some(false)
    {
        return Err(invalid(
            "logprobs",
            "log probabilities are not available from Anthropic models",
        ));
    }
    if let Some(top) = present(obj, "top_logprobs")
        && top.as_u64() != Some(0)
    {
        return Err(invalid(
            "top_logprobs",
            "log probabilities are not available from Anthropic models",
        ));
    }
    if let Some(bias) = present(obj, "logit_bias")
        && bias.as_object().is_none_or(|m| !m.is_empty())
    {
        return Err(invalid(
            "logit_bias",
            "token biasing is not supported by Anthropic models",
        ));
    }
    if let Some(format) = present(obj, "response_format") {
        let kind = format.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(invalid(
                "response_format.type",
                format!(
                    "only `text` is supported for Anthropic models, got {}",
                    kind.map_or_else(|| "no type".to_owned(), |k| format!("`{k}`"))
                ),
            ));
        }
    }
    for legacy in ["functions", "function_call"] {
        if present(obj, legacy).is_some() {
            return Err(invalid(
                legacy,
                "legacy function calling is not supported; use `tools` and `tool_choice`",
            ));
        }
    }
    if present(obj, "audio").is_some() {
        return Err(invalid(
            "audio",
            "audio output is not supported by Anthropic models",
        ));
    }
    if let Some(modalities) = present(obj, "modalities") {
        let text_only = modalities
            .as_array()
            .is_some_and(|m| m.iter().all(|x| x.as_str() == Some("text")));
        if !text_only {
            return Err(invalid(
                "modalities",
                "Anthropic models only produce `text` output",
            ));
        }
    }
    Ok(())
}

fn max_tokens(obj: &Map<String, Value>, default: u64) -> Result<u64, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = present(obj, key) {
            return v
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(key, "must be a positive integer"));
        }
    }
    Ok(default)
}

fn convert_stop(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let sequences: Vec<Value> = match stop {
        None => return Ok(None),
        Some(Value::String(s)) => vec![Value::from(s.as_str())],
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(invalid(format!("stop[{i}]"), "must be a string"));
                }
            }
            items.clone()
        }
        Some(_) => {
            return Err(invalid("stop", "must be a string or an array of strings"));
        }
    };
    Ok((!sequences.is_empty()).then_some(Value::Array(sequences)))
}

/// One Anthropic message under construction.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Anthropic wants strictly alternating roles, so a turn with the same role as the previous one is folded
/// into it. Empty turns are dropped because Anthropic rejects messages without content.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut()
        && last.role == role
    {
        last.blocks.extend(blocks);
        return;
    }
    turns.push(Turn { role, blocks });
}

fn convert_messages(messages: Option<&Value>) -> Result<(String, Vec<Value>), TranslateError> {
    let list = match messages {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | Some(Value::Null) | None => {
            return Err(invalid("messages", "must be a non-empty array"));
        }
        Some(_) => return Err(invalid("messages", "must be an array")),
    };

    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let path = format!("messages[{i}]");
        let msg = message
            .as_object()
            .ok_or_else(|| invalid(&path, "must be an object"))?;
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{path}.role"), "must be a string"))?;
        match role {
            "system" | "developer" => {
                if let Some(text) = plain_text(present(msg, "content"), &path)?
                    && !text.is_empty()
                {
                    system.push(text);
                }
            }
            "user" => {
                let content = present(msg, "content").ok_or_else(|| {
                    invalid(format!("{path}.content"), "user messages need content")
                })?;
                push_turn(&mut turns, "user", content_blocks(content, &path, true)?);
            }
            "assistant" => {
                if present(msg, "function_call").is_some() {
                    return Err(invalid(
                        format!("{path}.function_call"),
                        "legacy function calling is not supported; use `tool_calls`",
                    ));
                }
                let mut blocks = match present(msg, "content") {
                    Some(content) => content_blocks(content, &path, false)?,
                    None => Vec::new(),
                };
                if let Some(calls) = present(msg, "tool_calls") {
                    blocks.extend(tool_use_blocks(calls, &path)?);
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let tool_use_id = msg
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{path}.tool_call_id"), "must be a string"))?;
                let mut block = Map::new();
                block.insert("type".into(), Value::from("tool_result"));
                block.insert("tool_use_id".into(), Value::from(tool_use_id));
                // Anthropic rejects empty text, and a result without content is valid, so omit it instead.
                if let Some(text) = plain_text(present(msg, "content"), &path)?
                    && !text.is_empty()
                {
                    block.insert("content".into(), Value::from(text));
                }
                push_turn(&mut turns, "user", vec![Value::Object(block)]);
            }
            "function" => {
                return Err(invalid(
                    format!("{path}.role"),
                    "legacy `function` messages are not supported; use `tool`",
                ));
            }
            other => {
                return Err(invalid(
                    format!("{path}.role"),
                    format!("unknown role `{other}`"),
                ));
            }
        }
    }

    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "must contain at least one non-empty user, assistant or tool message",
        ));
    }
    let messages = turns
        .into_iter()
        .map(|t| json!({ "role": t.role, "content": t.blocks }))
        .collect();
    Ok((system.join("\n\n"), messages))
}

/// Text of a system, developer or tool message: a string or an array of text parts (joined by newlines so
/// adjacent parts do not run into each other).
fn plain_text(content: Option<&Value>, path: &str) -> Result<Option<String>, TranslateError> {
    match content {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(part_text(part, &part_path)?),
                    Some(other) => {
                        return Err(invalid(
                            format!("{part_path}.type"),
                            format!("only `text` parts are supported here, got `{other}`"),
                        ));
                    }
                    None => return Err(invalid(format!("{part_path}.type"), "must be a string")),
                }
            }
            Ok(Some(texts.join("\n")))
        }
        Some(_) => Err(invalid(
            format!("{path}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

fn part_text(part: &Value, part_path: &str) -> Result<String, TranslateError> {
    part.get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{part_path}.text"), "must be a string"))
}

/// Content of a user or assistant message as Anthropic blocks. Empty text is skipped because Anthropic
/// rejects empty text blocks, and clients routinely send `""` next to tool calls.
fn content_blocks(
    content: &Value,
    path: &str,
    images_allowed: bool,
) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({ "type": "text", "text": s })]),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part_text(part, &part_path)?;
                        if !text.is_empty() {
                            blocks.push(json!({ "type": "text", "text": text }));
                        }
                    }
                    Some("image_url") if images_allowed => {
                        blocks.push(image_block(part.get("image_url"), &part_path)?);
                    }
                    Some("image_url") => {
                        return Err(invalid(
                            format!("{part_path}.type"),
                            "images are only supported in user messages",
                        ));
                    }
                    Some(other) => {
                        return Err(invalid(
                            format!("{part_path}.type"),
                            format!(
                                "content part type `{other}` is not supported for Anthropic models"
                            ),
                        ));
                    }
                    None => return Err(invalid(format!("{part_path}.type"), "must be a string")),
                }
            }
            Ok(blocks)
        }
        _ => Err(invalid(
            format!("{path}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

fn image_block(image_url: Option<&Value>, part_path: &str) -> Result<Value, TranslateError> {
    let field = format!("{part_path}.image_url.url");
    // The spec says an object with `url`, but a bare string is unambiguous and some clients send it.
    let url = match image_url {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => v
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&field, "must be a string"))?,
        None => return Err(invalid(&field, "must be a string")),
    };

    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(&field, "malformed data URL"))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            invalid(
                &field,
                "data URLs must be base64-encoded (`data:<media type>;base64,<data>`)",
            )
        })?;
        if !IMAGE_MEDIA_TYPES.contains(&media_type) {
            return Err(invalid(
                &field,
                format!(
                    "unsupported image type `{media_type}`; Anthropic accepts {}",
                    IMAGE_MEDIA_TYPES.join(", ")
                ),
            ));
        }
        if data.is_empty() {
            return Err(invalid(&field, "data URL has no data"));
        }
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }

    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(invalid(
        &field,
        "must be an http(s) URL or a base64 `data:` URL",
    ))
}

fn tool_use_blocks(calls: &Value, path: &str) -> Result<Vec<Value>, TranslateError> {
    let calls = calls
        .as_array()
        .ok_or_else(|| invalid(format!("{path}.tool_calls"), "must be an array"))?;
    let mut blocks = Vec::with_capacity(calls.len());
    for (k, call) in calls.iter().enumerate() {
        let call_path = format!("{path}.tool_calls[{k}]");
        if let Some(kind) = call.get("type")
            && kind.as_str() != Some("function")
        {
            return Err(invalid(
                format!("{call_path}.type"),
                "only `function` tool calls are supported",
            ));
        }
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{call_path}.id"), "must be a string"))?;
        let function = call
            .get("function")
            .ok_or_else(|| invalid(format!("{call_path}.function"), "must be an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{call_path}.function.name"), "must be a string"))?;
        let args_path = format!("{call_path}.function.arguments");
        let arguments = match function.get("arguments") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(invalid(&args_path, "must be a string of JSON")),
        };
        // Clients send "" for argument-less calls; Anthropic needs an object either way.
        let input = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(arguments)
                .map_err(|e| invalid(&args_path, format!("not valid JSON: {e}")))?
        };
        if !input.is_object() {
            return Err(invalid(&args_path, "must encode a JSON object"));
        }
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(
                format!("{path}.type"),
                "only `function` tools are supported",
            ));
        }
        let function = tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(format!("{path}.function"), "must be an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{path}.function.name"), "must be a string"))?;
        let schema = match present(function, "parameters") {
            None => json!({ "type": "object", "properties": {} }),
            Some(p) if p.is_object() => p.clone(),
            Some(_) => {
                return Err(invalid(
                    format!("{path}.function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        };
        let mut converted = Map::new();
        converted.insert("name".into(), Value::from(name));
        if let Some(description) = present(function, "description") {
            let description = description.as_str().ok_or_else(|| {
                invalid(format!("{path}.function.description"), "must be a string")
            })?;
            converted.insert("description".into(), Value::from(description));
        }
        converted.insert("input_schema".into(), schema);
        out.push(Value::Object(converted));
    }
    Ok(out)
}

fn convert_tool_choice(
    choice: Option<&Value>,
    parallel: Option<&Value>,
    has_tools: bool,
) -> Result<Option<Value>, TranslateError> {
    let disable_parallel = match parallel {
        None => false,
        Some(Value::Bool(allowed)) => !allowed,
        Some(_) => return Err(invalid("parallel_tool_calls", "must be a boolean")),
    };
    let converted = match choice {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!(
                        "unknown value `{other}`; expected `auto`, `required`, `none` or a function"
                    ),
                ));
            }
        }),
        Some(Value::Object(obj)) => {
            if obj.get("type").and_then(Value::as_str) != Some("function") {
                return Err(invalid("tool_choice.type", "must be `function`"));
            }
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name", "must be a string"))?;
            Some(json!({ "type": "tool", "name": name }))
        }
        Some(_) => {
            return Err(invalid(
                "tool_choice",
                "must be a string or a function object",
            ));
        }
    };
    // Anthropic rejects `tool_choice` without `tools`, while OpenAI clients send it harmlessly.
    if !has_tools {
        return Ok(None);
    }
    if !disable_parallel {
        return Ok(converted);
    }
    let mut converted = converted.unwrap_or_else(|| json!({ "type": "auto" }));
    // `none` has no parallelism to restrict, and Anthropic does not accept the flag there.
    if converted.get("type").and_then(Value::as_str) != Some("none")
        && let Some(obj) = converted.as_object_mut()
    {
        obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Ok(Some(converted))
}

// ---------------------------------------------------------------------------------------------------------
// Response: messages -> chat completions
// ---------------------------------------------------------------------------------------------------------

/// Anthropic non-streaming response JSON -> OpenAI `chat.completion` JSON. `id` and `model` are what the
/// gateway wants the client to see; `created` is a unix timestamp in seconds.
pub fn messages_to_chat(
    resp: &Value,
    id: &str,
    model: &str,
    created: u64,
) -> Result<(Value, Usage), TranslateError> {
    if is_error(resp) {
        return Err(unexpected(describe(resp)));
    }
    let obj = resp
        .as_object()
        .ok_or_else(|| unexpected("the response is not a JSON object"))?;
    let content = obj
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| unexpected("the response has no `content` array"))?;

    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for (i, block) in content.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let piece = block.get("text").and_then(Value::as_str).ok_or_else(|| {
                    unexpected(format!("content[{i}] is a text block without text"))
                })?;
                text.get_or_insert_default().push_str(piece);
            }
            Some("tool_use") => tool_calls.push(tool_call_from_block(block, i)?),
            // Thinking and server-tool blocks have no Chat Completions counterpart.
            _ => {}
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert("content".into(), text.map_or(Value::Null, Value::from));
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }

    let usage = usage_from(obj.get("usage"));
    let stop_reason = obj.get("stop_reason").and_then(Value::as_str);
    let chat = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(stop_reason),
        }],
        "usage": usage_json(usage),
    });
    Ok((chat, usage))
}

fn tool_call_from_block(block: &Value, i: usize) -> Result<Value, TranslateError> {
    let id = block
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| unexpected(format!("content[{i}] is a tool_use block without an id")))?;
    let name = block
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| unexpected(format!("content[{i}] is a tool_use block without a name")))?;
    let arguments = block
        .get("input")
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        // end_turn, stop_sequence, and reasons OpenAI has no name for (pause_turn, refusal, ...).
        _ => "stop",
    }
}

/// Cached prompt tokens are billed input too, so they count towards `prompt_tokens`.
fn input_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
    .fold(0, u64::saturating_add)
}

fn usage_from(usage: Option<&Value>) -> Usage {
    usage.map_or_else(Usage::default, |u| Usage {
        prompt_tokens: input_tokens(u),
        completion_tokens: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens),
    })
}

/// Whether a body is an Anthropic error (`{"type":"error","error":{"type":..,"message":..}}`).
pub fn is_error(body: &Value) -> bool {
    // Proxies in front of Anthropic sometimes drop the outer `type`, so only a different one disqualifies.
    body.get("type")
        .is_none_or(|kind| kind.as_str() == Some("error"))
        && body
            .get("error")
            .and_then(|e| e.get("message"))
            .is_some_and(Value::is_string)
}

/// An error event or body as the log may see it (`describe_body`): never its message.
fn describe(body: &Value) -> String {
    super::describe_body(body.to_string().as_bytes())
}

// ---------------------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------------------

/// Turns Anthropic streaming events into OpenAI `chat.completion.chunk` JSON objects.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Keyed by Anthropic content block index: Anthropic numbers all blocks, OpenAI only tool calls.
    tools: HashMap<u64, StreamedTool>,
    usage: Usage,
    finished: bool,
}

impl StreamTranslator {
    /// `include_usage`: the client asked for `stream_options.include_usage`; then the final chunk carries usage
    /// (OpenAI style: a last chunk with `"choices": []` and a `usage` object).
    pub fn new(id: String, model: String, created: u64, include_usage: bool) -> Self {
        Self {
            id,
            model,
            created,
            include_usage,
            tools: HashMap::new(),
            usage: Usage::default(),
            finished: false,
        }
    }

    /// Feed one SSE event (its `event:` name and its parsed `data:` JSON). Returns the OpenAI chunks to send now
    /// (possibly none). An Anthropic `error` event returns Err(TranslateError::UnexpectedUpstream(message)).
    pub fn on_event(&mut self, event: &str, data: &Value) -> Result<Vec<Value>, TranslateError> {
        // The `event:` line is optional in SSE; the payload repeats the name in `type`.
        let kind = if event.is_empty() {
            data.get("type").and_then(Value::as_str).unwrap_or_default()
        } else {
            event
        };
        match kind {
            "message_start" => {
                if let Some(usage) = data.get("message").and_then(|m| m.get("usage")) {
                    self.usage = usage_from(Some(usage));
                }
                Ok(vec![self.chunk(
                    json!({ "role": "assistant", "content": "" }),
                    None,
                )])
            }
            "content_block_start" => self.on_block_start(data),
            "content_block_delta" => self.on_block_delta(data),
            "content_block_stop" => self.on_block_stop(data),
            "message_delta" => {
                if let Some(usage) = data.get("usage") {
                    // Counts here are cumulative, so they replace what we have rather than add to it.
                    if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
                        self.usage.completion_tokens = output;
                    }
                    // Newer API versions repeat input counts here; never let a partial repeat lower them.
                    if usage.get("input_tokens").is_some() {
                        self.usage.prompt_tokens =
                            self.usage.prompt_tokens.max(input_tokens(usage));
                    }
                }
                match data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    Some(reason) => Ok(vec![
                        self.chunk(json!({}), Some(finish_reason(Some(reason)))),
                    ]),
                    None => Ok(Vec::new()),
                }
            }
            "message_stop" => {
                self.finished = true;
                if !self.include_usage {
                    return Ok(Vec::new());
                }
                Ok(vec![json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_json(self.usage),
                })])
            }
            "error" => Err(unexpected(describe(data))),
            // ping, and event types added after this was written, carry nothing for us.
            _ => Ok(Vec::new()),
        }
    }

    /// Token usage seen so far (input tokens from message_start, output tokens from message_delta).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// True once `message_stop` was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn on_block_start(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let block = data
            .get("content_block")
            .ok_or_else(|| unexpected("content_block_start without content_block"))?;
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let index = block_index(data)?;
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected("tool_use block without an id"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected("tool_use block without a name"))?;
                let tool_index = self.tools.len();
                self.tools.insert(
                    index,
                    StreamedTool {
                        index: tool_index,
                        sent_arguments: false,
                    },
                );
                Ok(vec![self.chunk(
                    json!({ "tool_calls": [{
                        "index": tool_index,
                        "id": id,
                        "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }] }),
                    None,
                )])
            }
            Some("text") => match block.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => {
                    Ok(vec![self.chunk(json!({ "content": text }), None)])
                }
                _ => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }

    fn on_block_delta(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let delta = data
            .get("delta")
            .ok_or_else(|| unexpected("content_block_delta without delta"))?;
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = delta
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected("text_delta without text"))?;
                Ok(vec![self.chunk(json!({ "content": text }), None)])
            }
            Some("input_json_delta") => {
                let partial = delta
                    .get("partial_json")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected("input_json_delta without partial_json"))?;
                let index = block_index(data)?;
                let tool = self.tools.get_mut(&index).ok_or_else(|| {
                    unexpected(format!(
                        "input_json_delta for block {index}, which is not a tool_use"
                    ))
                })?;
                // Anthropic opens every tool input with an empty delta; forwarding it is pure noise.
                if partial.is_empty() {
                    return Ok(Vec::new());
                }
                tool.sent_arguments = true;
                let tool_index = tool.index;
                Ok(vec![self.arguments_chunk(tool_index, partial)])
            }
            // thinking, signature and citation deltas have no Chat Completions counterpart.
            _ => Ok(Vec::new()),
        }
    }

    fn on_block_stop(&self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let index = block_index(data)?;
        match self.tools.get(&index) {
            // A tool without arguments streams only an empty delta, and clients that parse the accumulated
            // arguments would choke on "", so close it with the empty object Anthropic means.
            Some(tool) if !tool.sent_arguments => Ok(vec![self.arguments_chunk(tool.index, "{}")]),
            _ => Ok(Vec::new()),
        }
    }

    fn arguments_chunk(&self, tool_index: usize, arguments: &str) -> Value {
        self.chunk(
            json!({ "tool_calls": [{ "index": tool_index, "function": { "arguments": arguments } }] }),
            None,
        )
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::from(self.id.as_str()));
        chunk.insert("object".into(), Value::from("chat.completion.chunk"));
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::from(self.model.as_str()));
        chunk.insert(
            "choices".into(),
            json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason }]),
        );
        // OpenAI puts `usage: null` on every chunk but the last when usage was requested; strict clients
        // type the field on that basis.
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        Value::Object(chunk)
    }
}

/// A tool_use block seen in the stream.
#[derive(Debug)]
struct StreamedTool {
    /// Position among the message's tool calls, which is what OpenAI's `index` means.
    index: usize,
    sent_arguments: bool,
}

fn block_index(data: &Value) -> Result<u64, TranslateError> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| unexpected("content block event without an index"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Snapshots list keys sorted whether or not serde_json's `preserve_order` feature is enabled in the
    /// crate this file is built in.
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }

    fn translate(req: Value) -> Value {
        chat_to_messages(&req, "claude-upstream", 1024).expect("request should translate")
    }

    /// The field an InvalidField error names, so rejections are checked for the right reason.
    fn rejected_field(req: Value) -> String {
        match chat_to_messages(&req, "claude-upstream", 1024) {
            Err(TranslateError::InvalidField { field, .. }) => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    fn run_stream(include_usage: bool, events: &[(&str, Value)]) -> (Vec<Value>, StreamTranslator) {
        let mut t = StreamTranslator::new(
            "chatcmpl-1".into(),
            "gw-model".into(),
            1_700_000_000,
            include_usage,
        );
        let mut chunks = Vec::new();
        for (event, data) in events {
            chunks.extend(t.on_event(event, data).expect("event should translate"));
        }
        (chunks, t)
    }

    fn text_stream_events() -> Vec<(&'static str, Value)> {
        vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]
    }

    #[test]
    fn request_simple_chat() {
        let out = translate(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi there"}],
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "user": "user-42",
        }));
        insta::assert_json_snapshot!(sorted(&out), @r###"
            {
              "max_tokens": 100,
              "messages": [
                {
                  "content": [
                    {
                      "text": "Hi there",
                      "type": "text"
                    }
                  ],
                  "role": "user"
                }
              ],
              "metadata": {
                "user_id": "user-42"
              },
              "model": "claude-upstream",
              "stop_sequences": [
                "END"
              ],
              "stream": true,
              "temperature": 0.5,
              "top_p": 0.9
            }
            "###);
    }

    #[test]
    fn request_system_and_developer_merged_in_order() {
        let out = translate(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "First"},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Second"},
                {"role": "assistant", "content": "Premier"},
            ],
            "stop": ["a", "b"],
        }));
        insta::assert_json_snapshot!(sorted(&out), @r###"
            {
              "max_tokens": 1024,
              "messages": [
                {
                  "content": [
                    {
                      "text": "First",
                      "type": "text"
                    },
                    {
                      "text": "Second",
                      "type": "text"
                    }
                  ],
                  "role": "user"
                },
                {
                  "content": [
                    {
                      "text": "Premier",
                      "type": "text"
                    }
                  ],
                  "role": "assistant"
                }
              ],
              "model": "claude-upstream",
              "stop_sequences": [
                "a",
                "b"
              ],
              "system": "You are terse.\n\nAnswer in French."
            }
            "###);
    }

    #[test]
    fn request_user_parts_with_both_image_kinds() {
        let out = translate(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare these"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
            ]}],
        }));
        insta::assert_json_snapshot!(sorted(&out), @r###"
            {
              "max_tokens": 1024,
              "messages": [
                {
                  "content": [
                    {
                      "text": "Compare these",
                      "type": "text"
                    },
                    {
                      "source": {
                        "data": "iVBORw0KGgo=",
                        "media_type": "image/png",
                        "type": "base64"
                      },
                      "type": "image"
                    },
                    {
                      "source": {
                        "type": "url",
                        "url": "https://example.com/cat.jpg"
                      },
                      "type": "image"
                    }
                  ],
                  "role": "user"
                }
              ],
              "model": "claude-upstream"
            }
            "###);
    }

    #[test]
    fn request_tools_choice_calls_and_results() {
        let out = translate(json!({
            "model": "gpt-4o",
            "max_completion_tokens": 300,
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "Weather in Paris and the time?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                {"role": "user", "content": "Thanks, summarise."},
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "get_time"}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
        }));
        insta::assert_json_snapshot!(sorted(&out), @r###"
            {
              "max_tokens": 300,
              "messages": [
                {
                  "content": [
                    {
                      "text": "Weather in Paris and the time?",
                      "type": "text"
                    }
                  ],
                  "role": "user"
                },
                {
                  "content": [
                    {
                      "id": "call_1",
                      "input": {
                        "city": "Paris"
                      },
                      "name": "get_weather",
                      "type": "tool_use"
                    },
                    {
                      "id": "call_2",
                      "input": {},
                      "name": "get_time",
                      "type": "tool_use"
                    }
                  ],
                  "role": "assistant"
                },
                {
                  "content": [
                    {
                      "content": "18C, cloudy",
                      "tool_use_id": "call_1",
                      "type": "tool_result"
                    },
                    {
                      "content": "14:05",
                      "tool_use_id": "call_2",
                      "type": "tool_result"
                    },
                    {
                      "text": "Thanks, summarise.",
                      "type": "text"
                    }
                  ],
                  "role": "user"
                }
              ],
              "model": "claude-upstream",
              "tool_choice": {
                "disable_parallel_tool_use": true,
                "name": "get_weather",
                "type": "tool"
              },
              "tools": [
                {
                  "description": "Current weather",
                  "input_schema": {
                    "properties": {
                      "city": {
                        "type": "string"
                      }
                    },
                    "required": [
                      "city"
                    ],
                    "type": "object"
                  },
                  "name": "get_weather"
                },
                {
                  "input_schema": {
                    "properties": {},
                    "type": "object"
                  },
                  "name": "get_time"
                }
              ]
            }
            "###);
    }

    #[test]
    fn request_tool_choice_values() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |extra: Value| {
            let mut req = json!({"messages": [{"role": "user", "content": "x"}], "tools": tools});
            for (k, v) in extra.as_object().unwrap() {
                req[k] = v.clone();
            }
            translate(req).get("tool_choice").cloned()
        };
        assert_eq!(
            choice(json!({"tool_choice": "auto"})),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "required"})),
            Some(json!({"type": "any"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "none"})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(choice(json!({})), None);
        assert_eq!(
            choice(json!({"parallel_tool_calls": false})),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "required", "parallel_tool_calls": false})),
            Some(json!({"type": "any", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "none", "parallel_tool_calls": false})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(json!({"tool_choice": "auto", "parallel_tool_calls": true})),
            Some(json!({"type": "auto"}))
        );
        // Without tools Anthropic would reject a tool_choice, so it is dropped.
        let out = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
        );
        assert_eq!(out.get("tool_choice"), None);
        assert_eq!(out.get("tools"), None);
    }

    #[test]
    fn request_max_tokens_precedence_and_default() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let max = |req: Value| translate(req)["max_tokens"].clone();
        assert_eq!(
            max(json!({"messages": msgs, "max_completion_tokens": 7, "max_tokens": 9})),
            json!(7)
        );
        assert_eq!(max(json!({"messages": msgs, "max_tokens": 9})), json!(9));
        assert_eq!(
            max(json!({"messages": msgs, "max_tokens": null})),
            json!(1024)
        );
        assert_eq!(max(json!({"messages": msgs})), json!(1024));
        assert_eq!(
            rejected_field(json!({"messages": msgs, "max_tokens": 0})),
            "max_tokens"
        );
        assert_eq!(
            rejected_field(json!({"messages": msgs, "max_completion_tokens": "many"})),
            "max_completion_tokens"
        );
    }

    #[test]
    fn request_drops_harmless_fields() {
        let out = translate(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "stream_options": {"include_usage": true},
            "seed": 7,
            "presence_penalty": 0.3,
            "frequency_penalty": 0.2,
            "n": 1,
            "logprobs": false,
            "logit_bias": {},
            "response_format": {"type": "text"},
        }));
        let mut keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["max_tokens", "messages", "model"]);
        assert_eq!(out["model"], "claude-upstream");
    }

    #[test]
    fn request_rejections_name_the_field() {
        let user = json!({"role": "user", "content": "x"});
        let with = |key: &str, value: Value| {
            let mut req = json!({"messages": [user.clone()]});
            req[key] = value;
            rejected_field(req)
        };
        assert_eq!(with("n", json!(2)), "n");
        assert_eq!(with("logprobs", json!(true)), "logprobs");
        assert_eq!(with("top_logprobs", json!(3)), "top_logprobs");
        assert_eq!(with("logit_bias", json!({"50256": -100})), "logit_bias");
        assert_eq!(
            with("response_format", json!({"type": "json_object"})),
            "response_format.type"
        );
        assert_eq!(
            with(
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
            ),
            "response_format.type"
        );
        assert_eq!(with("functions", json!([{"name": "f"}])), "functions");
        assert_eq!(
            with("audio", json!({"voice": "alloy", "format": "mp3"})),
            "audio"
        );
        assert_eq!(with("modalities", json!(["text", "audio"])), "modalities");
        assert_eq!(
            with("tools", json!([{"type": "web_search"}])),
            "tools[0].type"
        );
        assert_eq!(with("tool_choice", json!("sometimes")), "tool_choice");
        assert_eq!(with("stop", json!(5)), "stop");

        assert_eq!(rejected_field(json!({"model": "m"})), "messages");
        assert_eq!(rejected_field(json!({"messages": []})), "messages");
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "system", "content": "only me"}]})),
            "messages"
        );
        assert_eq!(rejected_field(json!("not an object")), "body");
        assert_eq!(
            rejected_field(json!({"messages": [
                {"role": "system", "content": "s"},
                user.clone(),
                {"role": "user", "content": [
                    {"type": "text", "text": "listen"},
                    {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}},
                ]},
            ]})),
            "messages[2].content[1].type"
        );
        assert_eq!(
            rejected_field(
                json!({"messages": [user.clone(), {"role": "assistant", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
                ]}]})
            ),
            "messages[1].tool_calls[0].function.arguments"
        );
        assert_eq!(
            rejected_field(
                json!({"messages": [user.clone(), {"role": "assistant", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1,2]"}},
                ]}]})
            ),
            "messages[1].tool_calls[0].function.arguments"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "assistant", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ]}]})),
            "messages[0].content[0].type"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            ]}]})),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
            ]}]})),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            ]}]})),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "tool", "content": "r"}]})),
            "messages[0].tool_call_id"
        );
        assert_eq!(
            rejected_field(
                json!({"messages": [{"role": "function", "name": "f", "content": "r"}]})
            ),
            "messages[0].role"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "robot", "content": "r"}]})),
            "messages[0].role"
        );
        assert_eq!(
            rejected_field(json!({"messages": [{"role": "user"}]})),
            "messages[0].content"
        );
    }

    #[test]
    fn rejection_message_is_readable() {
        let err = chat_to_messages(
            &json!({"messages": [{"role": "user", "content": "x"}], "n": 3}),
            "m",
            10,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `n`: Anthropic models return a single choice; only `n: 1` is supported"
        );
    }

    #[test]
    fn response_text() {
        let resp = json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": ", world"},
            ],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 5},
        });
        let (chat, usage) =
            messages_to_chat(&resp, "chatcmpl-9", "gw-model", 1_700_000_000).unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 5
            }
        );
        insta::assert_json_snapshot!(sorted(&chat), @r###"
            {
              "choices": [
                {
                  "finish_reason": "stop",
                  "index": 0,
                  "message": {
                    "content": "Hello, world",
                    "role": "assistant"
                  }
                }
              ],
              "created": 1700000000,
              "id": "chatcmpl-9",
              "model": "gw-model",
              "object": "chat.completion",
              "usage": {
                "completion_tokens": 5,
                "prompt_tokens": 12,
                "total_tokens": 17
              }
            }
            "###);
    }

    #[test]
    fn response_tool_use() {
        let resp = json!({
            "id": "msg_02",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "days": 2}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "output_tokens": 30, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 3},
        });
        let (chat, usage) =
            messages_to_chat(&resp, "chatcmpl-9", "gw-model", 1_700_000_000).unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 123,
                completion_tokens: 30
            }
        );
        insta::assert_json_snapshot!(sorted(&chat), @r###"
            {
              "choices": [
                {
                  "finish_reason": "tool_calls",
                  "index": 0,
                  "message": {
                    "content": null,
                    "role": "assistant",
                    "tool_calls": [
                      {
                        "function": {
                          "arguments": "{\"city\":\"Paris\",\"days\":2}",
                          "name": "get_weather"
                        },
                        "id": "toolu_1",
                        "type": "function"
                      },
                      {
                        "function": {
                          "arguments": "{}",
                          "name": "get_time"
                        },
                        "id": "toolu_2",
                        "type": "function"
                      }
                    ]
                  }
                }
              ],
              "created": 1700000000,
              "id": "chatcmpl-9",
              "model": "gw-model",
              "object": "chat.completion",
              "usage": {
                "completion_tokens": 30,
                "prompt_tokens": 123,
                "total_tokens": 153
              }
            }
            "###);
    }

    #[test]
    fn response_unexpected_bodies() {
        let err = messages_to_chat(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            "id",
            "m",
            0,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::UnexpectedUpstream(m) if m.contains("type `overloaded_error`") && !m.contains("Overloaded")),
            "{err:?}"
        );
        let err =
            messages_to_chat(&json!({"type": "message", "usage": {}}), "id", "m", 0).unwrap_err();
        assert!(
            matches!(err, TranslateError::UnexpectedUpstream(_)),
            "{err:?}"
        );
        let err = messages_to_chat(&json!([1, 2]), "id", "m", 0).unwrap_err();
        assert!(
            matches!(err, TranslateError::UnexpectedUpstream(_)),
            "{err:?}"
        );
        let err = messages_to_chat(
            &json!({"content": [{"type": "tool_use", "name": "f", "input": {}}]}),
            "id",
            "m",
            0,
        )
        .unwrap_err();
        assert!(
            matches!(err, TranslateError::UnexpectedUpstream(_)),
            "{err:?}"
        );
    }

    #[test]
    fn finish_reason_mapping() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(Some("pause_turn")), "stop");
        assert_eq!(finish_reason(Some("refusal")), "stop");
        assert_eq!(finish_reason(None), "stop");
        let resp =
            json!({"content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens"});
        let (chat, _) = messages_to_chat(&resp, "id", "m", 0).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn usage_sums() {
        let u = usage_from(Some(&json!({"input_tokens": 10, "output_tokens": 4})));
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 4
            }
        );
        let u = usage_from(Some(
            &json!({"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 4}),
        ));
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 115,
                completion_tokens: 4
            }
        );
        assert_eq!(usage_from(None), Usage::default());
        assert_eq!(
            usage_json(u),
            json!({"prompt_tokens": 115, "completion_tokens": 4, "total_tokens": 119})
        );
        let resp = json!({"content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 1}});
        let (chat, usage) = messages_to_chat(&resp, "id", "m", 0).unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 1
            }
        );
        assert_eq!(chat["usage"]["total_tokens"], 13);
        assert_eq!(chat["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn error_bodies_are_recognised_and_described_without_their_message() {
        let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "the prompt `secret canary` is too long"}});
        assert!(is_error(&body));
        let described = describe(&body);
        assert!(!described.contains("canary"), "{described}");
        assert!(
            described.contains("type `invalid_request_error`"),
            "{described}"
        );
        assert!(is_error(&json!({"error": {"message": "no outer type"}})));
        assert!(!is_error(
            &json!({"type": "message", "error": {"message": "x"}})
        ));
        assert!(!is_error(&json!({"type": "error"})));
        assert!(!is_error(&json!("error")));
    }

    #[test]
    fn stream_text_without_usage() {
        let (chunks, t) = run_stream(false, &text_stream_events());
        assert!(t.finished());
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 25,
                completion_tokens: 15
            }
        );
        insta::assert_json_snapshot!(sorted(&Value::Array(chunks)), @r###"
            [
              {
                "choices": [
                  {
                    "delta": {
                      "content": "",
                      "role": "assistant"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "content": "Hello"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "content": " world"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {},
                    "finish_reason": "stop",
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              }
            ]
            "###);
    }

    #[test]
    fn stream_text_with_usage() {
        let (chunks, t) = run_stream(true, &text_stream_events());
        assert!(t.finished());
        insta::assert_json_snapshot!(sorted(&Value::Array(chunks)), @r###"
            [
              {
                "choices": [
                  {
                    "delta": {
                      "content": "",
                      "role": "assistant"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk",
                "usage": null
              },
              {
                "choices": [
                  {
                    "delta": {
                      "content": "Hello"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk",
                "usage": null
              },
              {
                "choices": [
                  {
                    "delta": {
                      "content": " world"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk",
                "usage": null
              },
              {
                "choices": [
                  {
                    "delta": {},
                    "finish_reason": "stop",
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk",
                "usage": null
              },
              {
                "choices": [],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk",
                "usage": {
                  "completion_tokens": 15,
                  "prompt_tokens": 25,
                  "total_tokens": 40
                }
              }
            ]
            "###);
    }

    #[test]
    fn stream_not_finished_before_message_stop() {
        let events = text_stream_events();
        let (_, t) = run_stream(true, &events[..events.len() - 1]);
        assert!(!t.finished());
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 25,
                completion_tokens: 15
            }
        );
    }

    #[test]
    fn stream_event_name_falls_back_to_data_type() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 1, false);
        let out = t
            .on_event("", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["choices"][0]["delta"], json!({"content": "hi"}));
    }

    #[test]
    fn stream_tool_use() {
        let events = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "content": [], "model": "claude-x", "usage": {"input_tokens": 400, "cache_read_input_tokens": 50, "output_tokens": 2}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 2}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 60}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let (chunks, t) = run_stream(false, &events);
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 450,
                completion_tokens: 60
            }
        );
        insta::assert_json_snapshot!(sorted(&Value::Array(chunks)), @r###"
            [
              {
                "choices": [
                  {
                    "delta": {
                      "content": "",
                      "role": "assistant"
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "content": "Checking."
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "tool_calls": [
                        {
                          "function": {
                            "arguments": "",
                            "name": "get_weather"
                          },
                          "id": "toolu_a",
                          "index": 0,
                          "type": "function"
                        }
                      ]
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "tool_calls": [
                        {
                          "function": {
                            "arguments": "{\"city\": "
                          },
                          "index": 0
                        }
                      ]
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "tool_calls": [
                        {
                          "function": {
                            "arguments": "\"Paris\"}"
                          },
                          "index": 0
                        }
                      ]
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "tool_calls": [
                        {
                          "function": {
                            "arguments": "",
                            "name": "get_time"
                          },
                          "id": "toolu_b",
                          "index": 1,
                          "type": "function"
                        }
                      ]
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {
                      "tool_calls": [
                        {
                          "function": {
                            "arguments": "{}"
                          },
                          "index": 1
                        }
                      ]
                    },
                    "finish_reason": null,
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              },
              {
                "choices": [
                  {
                    "delta": {},
                    "finish_reason": "tool_calls",
                    "index": 0
                  }
                ],
                "created": 1700000000,
                "id": "chatcmpl-1",
                "model": "gw-model",
                "object": "chat.completion.chunk"
              }
            ]
            "###);
    }

    #[test]
    fn stream_tool_without_arguments_gets_empty_object() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 1, false);
        let start = t
            .on_event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_z", "name": "now", "input": {}}}))
            .unwrap();
        assert_eq!(start.len(), 1);
        let empty = t
            .on_event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}))
            .unwrap();
        assert!(empty.is_empty());
        let stop = t
            .on_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            )
            .unwrap();
        assert_eq!(stop.len(), 1);
        assert_eq!(
            stop[0]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
        );
    }

    #[test]
    fn stream_json_delta_for_unknown_block_is_unexpected() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 1, false);
        let err = t
            .on_event("content_block_delta", &json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}))
            .unwrap_err();
        assert!(
            matches!(err, TranslateError::UnexpectedUpstream(_)),
            "{err:?}"
        );
    }

    #[test]
    fn stream_message_delta_input_tokens_never_lower_the_count() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 1, false);
        t.on_event("message_start", &json!({"message": {"usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}}})).unwrap();
        t.on_event("message_delta", &json!({"delta": {"stop_reason": null}, "usage": {"input_tokens": 10, "output_tokens": 8}})).unwrap();
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 100,
                completion_tokens: 8
            }
        );
        let out = t
            .on_event("message_delta", &json!({"delta": {"stop_reason": "max_tokens"}, "usage": {"input_tokens": 10, "cache_read_input_tokens": 95, "output_tokens": 9}}))
            .unwrap();
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 105,
                completion_tokens: 9
            }
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn stream_error_event() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 1, true);
        let err = t
            .on_event("error", &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
            .unwrap_err();
        // The event is described, never quoted: upstream messages may quote the prompt.
        assert!(
            matches!(&err, TranslateError::UnexpectedUpstream(m) if m.contains("type `overloaded_error`") && !m.contains("Overloaded")),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("upstream sent an unexpected body: error body of ")
        );
        assert!(!t.finished());
    }
}
