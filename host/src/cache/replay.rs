//! The one form the cache keeps an answer in, a complete `chat.completion`, and the conversions around it:
//! from a finished stream's chunks, to a replayed stream, and to the body a hit answers with.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::providers::Usage;
use crate::providers::sse::data_event;

/// Whether `body` is an answer the cache may keep: a `chat.completion` that **completed**, with one text
/// choice and no tool or function call, a finish reason of `stop` (or `length` when the output cap that
/// ended it is the client's own, `own_cap`), a usage report, and no error. A stream that failed, an answer
/// cut short by a cap the gateway lowered for a budget, or one without usage is never stored.
pub fn completed(v: &Value, own_cap: bool) -> bool {
    let finished = match v
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
    {
        Some("stop") => true,
        Some("length") => own_cap,
        _ => false,
    };
    finished
        && v.get("error").is_none_or(Value::is_null)
        && v.pointer("/usage/completion_tokens")
            .is_some_and(Value::is_u64)
        && single_text_choice(v)
}

fn single_text_choice(v: &Value) -> bool {
    let Some([choice]) = v
        .get("choices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return false;
    };
    let Some(message) = choice.get("message") else {
        return false;
    };
    message.get("content").is_some_and(Value::is_string)
        && message.get("tool_calls").is_none_or(Value::is_null)
        && message.get("function_call").is_none_or(Value::is_null)
}

/// A completion put together from a finished stream's events and its usage, if the stream was one text
/// choice and carried no error event. Whether it completed is for [`completed`] to say.
pub fn assemble(events: &[Bytes], usage: Option<Usage>) -> Option<Value> {
    let mut head = Map::new();
    let mut content = String::new();
    let mut finish = Value::Null;
    for event in events {
        let Some(json) = event.strip_prefix(b"data: ") else {
            continue;
        };
        let Ok(chunk) = serde_json::from_slice::<Value>(json.trim_ascii_end()) else {
            continue;
        };
        // An error event (vLLM sends one when generation fails mid-way): the answer is not whole.
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return None;
        }
        for field in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = chunk.get(field) {
                head.entry(field).or_insert_with(|| v.clone());
            }
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return None;
            }
            let delta = choice.get("delta");
            if delta.is_some_and(|d| {
                d.get("tool_calls").is_some_and(|t| !t.is_null())
                    || d.get("function_call").is_some_and(|t| !t.is_null())
            }) {
                return None;
            }
            if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
                content.push_str(text);
            }
            if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
                finish = f.clone();
            }
        }
    }
    let mut body = head;
    body.insert("object".into(), json!("chat.completion"));
    body.insert(
        "choices".into(),
        json!([{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]),
    );
    if let Some(u) = usage {
        body.insert("usage".into(), usage_json(u));
    }
    Some(Value::Object(body))
}

fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
    })
}

/// The stored completion as a hit answers it: a fresh `id` and `created`, and a cost of zero (the tokens
/// stay those of the answer, which no upstream was paid for this time).
pub fn hit_body(stored: &[u8], id: &str, created: u64) -> Bytes {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(stored) else {
        return Bytes::copy_from_slice(stored);
    };
    body.insert("id".into(), json!(id));
    body.insert("created".into(), json!(created));
    if let Some(Value::Object(usage)) = body.get_mut("usage") {
        usage.insert("cost_micro_usd".into(), json!(0));
    }
    serde_json::to_vec(&Value::Object(body))
        .map_or_else(|_| Bytes::copy_from_slice(stored), Bytes::from)
}

/// A hit's body replayed as the events of a stream (without `[DONE]`, which the stream sends once the
/// request's entry is durable): the role and the whole content, the finish reason, and the usage chunk
/// when the client asked for one.
pub fn replay(body: &[u8], include_usage: bool) -> Vec<Bytes> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let choice = v.pointer("/choices/0");
    let content = choice
        .and_then(|c| c.pointer("/message/content"))
        .cloned()
        .unwrap_or(json!(""));
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .cloned()
        .unwrap_or(json!("stop"));
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = json!({
            "id": v.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": v.get("created").cloned().unwrap_or(json!(0)),
            "model": v.get("model").cloned().unwrap_or(json!("")),
            "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        data_event(&serde_json::to_vec(&c).unwrap_or_default())
    };
    let mut events = vec![
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": null}]),
            None,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            None,
        ),
    ];
    if include_usage && let Some(usage) = v.get("usage") {
        events.push(chunk(json!([]), Some(usage)));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: Value) -> Bytes {
        data_event(&serde_json::to_vec(&json).unwrap())
    }

    #[test]
    fn a_stream_becomes_a_completion_and_replays_as_the_same_text() {
        let events = [
            event(
                json!({"id": "c1", "model": "m", "created": 5, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            ),
            event(json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hello"}}]})),
            event(
                json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": "stop"}]}),
            ),
        ];
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let v = assemble(&events, Some(usage)).unwrap();
        assert!(completed(&v, false));
        let body = serde_json::to_vec(&v).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let hit = hit_body(&body, "chatcmpl-new", 9);
        let h: Value = serde_json::from_slice(&hit).unwrap();
        assert_eq!(
            (h["id"].as_str(), h["usage"]["cost_micro_usd"].as_u64()),
            (Some("chatcmpl-new"), Some(0))
        );
        let replayed = replay(&hit, true);
        assert_eq!(replayed.len(), 3);
        let b = assemble(&replayed, None).unwrap();
        assert_eq!(b["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(replay(&hit, false).len(), 2, "no usage chunk unless asked");
    }

    #[test]
    fn tool_calls_and_several_choices_are_not_kept() {
        let tool = event(
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t"}]}}]}),
        );
        assert!(assemble(&[tool], None).is_none());
        let second = event(json!({"choices": [{"index": 1, "delta": {"content": "x"}}]}));
        assert!(assemble(&[second], None).is_none());
        let done = r#""finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        assert!(!completed(
            &format!(
                r#"{{"choices":[{{"message":{{"content":null,"tool_calls":[{{"id":"t"}}]}},{done}"#
            )
            .as_bytes()
            .parsed(),
            true
        ));
        assert!(!completed(
            &format!(
                r#"{{"choices":[{{"message":{{"content":"a"}},"finish_reason":"stop"}},{{"message":{{"content":"b"}},{done}"#
            )
            .as_bytes()
            .parsed(),
            true
        ));
        assert!(completed(
            &format!(r#"{{"choices":[{{"message":{{"content":"a"}},{done}"#)
                .as_bytes()
                .parsed(),
            false
        ));
    }

    trait Parsed {
        fn parsed(&self) -> Value;
    }

    impl Parsed for [u8] {
        fn parsed(&self) -> Value {
            serde_json::from_slice(self).unwrap()
        }
    }

    fn answer(finish: Value, usage: Option<Value>) -> Value {
        let mut v = json!({"object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "Paris"}, "finish_reason": finish}]});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }

    #[test]
    fn only_an_answer_that_completed_is_kept() {
        let usage = || Some(json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}));
        assert!(completed(&answer(json!("stop"), usage()), false));
        // Cut short by the cap: kept only when the cap was the client's own.
        assert!(completed(&answer(json!("length"), usage()), true));
        assert!(!completed(&answer(json!("length"), usage()), false));
        // No finish reason (a stream that broke off), another reason, no usage: not kept.
        assert!(!completed(&answer(Value::Null, usage()), true));
        assert!(!completed(&answer(json!("content_filter"), usage()), true));
        assert!(!completed(&answer(json!("stop"), None), true));
        assert!(!completed(&json!("not a completion"), true));
        let mut with_error = answer(json!("stop"), usage());
        with_error["error"] = json!({"message": "boom"});
        assert!(!completed(&with_error, true));
    }

    #[test]
    fn a_stream_with_an_error_event_is_not_assembled() {
        let events = [
            event(
                json!({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half an"}}]}),
            ),
            event(json!({"error": {"message": "generation failed", "type": "internal_error"}})),
        ];
        assert!(assemble(&events, None).is_none());
        // The same content without the error, but with no finish reason and no usage: assembled, not complete.
        let body = assemble(&events[..1], None).unwrap();
        assert!(!completed(&body, true));
    }
}
