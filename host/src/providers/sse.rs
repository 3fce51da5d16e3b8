//! Server-sent events: an incremental decoder for upstream streams and the encoder for client streams.

use bytes::{Buf, Bytes, BytesMut};

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into events as the bytes arrive, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
}

/// Events larger than this are treated as a broken upstream.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl SseDecoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes waiting for the end of an event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one is buffered. Events without data (comments, keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, sep) = find_boundary(&self.buf)?;
            let raw = self.buf.split_to(end);
            self.buf.advance(sep);
            let text = String::from_utf8_lossy(&raw);
            let mut event = None;
            let mut data: Option<String> = None;
            for line in text.lines().map(|l| l.trim_end_matches('\r')) {
                if let Some(v) = field(line, "data") {
                    match &mut data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(v);
                        }
                        None => data = Some(v.to_owned()),
                    }
                } else if let Some(v) = field(line, "event") {
                    event = Some(v.to_owned());
                }
            }
            if let Some(data) = data {
                return Some(SseEvent { event, data });
            }
        }
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Position of the first blank line (event end) and the length of the separator.
fn find_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// `data: <json>\n\n`.
pub fn data_event(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// Adds `usage.cost_micro_usd` (the request's cost at the deployment's prices) to an OpenAI response or
/// chunk that carries a `usage` object. `None` when there is none to extend.
pub fn with_usage_cost(json: &[u8], cost_micro_usd: u64) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let usage = v.get_mut("usage")?.as_object_mut()?;
    usage.insert(
        "cost_micro_usd".to_owned(),
        serde_json::Value::from(cost_micro_usd),
    );
    serde_json::to_vec(&v).ok()
}

/// Adds `usage.cost_micro_usd` to a parsed OpenAI response that carries a `usage` object (else nothing).
pub fn insert_usage_cost(json: &mut serde_json::Value, cost_micro_usd: u64) {
    if let Some(usage) = json
        .get_mut("usage")
        .and_then(serde_json::Value::as_object_mut)
    {
        usage.insert(
            "cost_micro_usd".to_owned(),
            serde_json::Value::from(cost_micro_usd),
        );
    }
}

/// The OpenAI end-of-stream marker.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        // Feed one byte at a time: the worst chunking an upstream can produce.
        let mut d = SseDecoder::default();
        let mut got = Vec::new();
        for b in text.as_bytes() {
            d.push(&[*b]);
            while let Some(e) = d.next_event() {
                got.push(e);
            }
        }
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "x\ny".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn incomplete_event_waits() {
        let mut d = SseDecoder::default();
        d.push(b"data: {\"partial\":");
        assert!(d.next_event().is_none());
        d.push(b"true}\n\n");
        assert_eq!(d.next_event().unwrap().data, "{\"partial\":true}");
    }
}

/// Bytes of generated text in an OpenAI-format chunk or response (`content`, `reasoning_content`,
/// `refusal` and tool-call `arguments` strings), counted in their JSON-escaped form, which is never shorter
/// than the text. A tokenizer never yields more tokens than bytes, so this bounds the tokens generated: it
/// prices answers whose upstream reported no usage (a stream cut short) without under-charging.
pub fn generated_text_bytes(json: &[u8]) -> u64 {
    const KEYS: [&[u8]; 4] = [
        b"\"content\"",
        b"\"reasoning_content\"",
        b"\"refusal\"",
        b"\"arguments\"",
    ];
    let mut total = 0u64;
    for key in KEYS {
        let mut from = 0;
        while let Some(at) = find(&json[from..], key) {
            let mut i = from + at + key.len();
            from = i;
            while json.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if json.get(i) != Some(&b':') {
                continue;
            }
            i += 1;
            while json.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if json.get(i) != Some(&b'"') {
                continue;
            }
            i += 1;
            let start = i;
            while let Some(&b) = json.get(i) {
                match b {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            total += u64::try_from(i.min(json.len()) - start).unwrap_or(0);
            from = i.min(json.len());
        }
    }
    total
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod generated_tests {
    use super::generated_text_bytes;

    #[test]
    fn counts_generated_strings_only() {
        let chunk = br#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello \"you\""}}]}"#;
        assert_eq!(generated_text_bytes(chunk), 13);
        let spaced = br#"{"choices":[{"delta":{"content" : "abc", "reasoning_content":"xy"}}]}"#;
        assert_eq!(generated_text_bytes(spaced), 5);
        let tool = br#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#;
        assert_eq!(generated_text_bytes(tool), 9);
        assert_eq!(
            generated_text_bytes(br#"{"choices":[{"delta":{"content":null}}]}"#),
            0
        );
        // A truncated string still counts what arrived.
        assert_eq!(generated_text_bytes(br#"{"content":"abc"#), 3);
    }
}
