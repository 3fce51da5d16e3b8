"""Cache hits as the official `openai` Python package sees them, on a gateway with the cache on and local
models: an exact hit replayed as a stream, and a semantic hit for a rewording.

Usage: python3 openai_cache.py BASE_URL API_KEY
Exits non-zero with a message on the first mismatch; prints OK at the end.
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
ask = lambda text: [{"role": "user", "content": text}]

raw = client.chat.completions.with_raw_response.create(
    model="local-chat", messages=ask("How do I reset my password?"), temperature=0
)
assert raw.headers["x-sluice-cache"] == "miss", raw.headers
whole = raw.parse()
text = whole.choices[0].message.content
assert text, whole

raw = client.chat.completions.with_raw_response.create(
    model="local-chat",
    messages=ask("How do I reset my password?"),
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
assert raw.headers["x-sluice-cache"] == "hit-exact", raw.headers
pieces, usage, finish = [], None, None
for chunk in raw.parse():
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
    if chunk.usage:
        usage = chunk.usage
assert "".join(pieces) == text, (pieces, text)
assert finish == whole.choices[0].finish_reason, finish
assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage

raw = client.chat.completions.with_raw_response.create(
    model="local-chat", messages=ask("how do I reset my password"), temperature=0
)
assert raw.headers["x-sluice-cache"] == "hit-semantic", raw.headers
assert float(raw.headers["x-sluice-cache-similarity"]) >= 0.95, raw.headers
assert raw.parse().choices[0].message.content == text

# A negation of the question is not served the stored answer.
raw = client.chat.completions.with_raw_response.create(
    model="local-chat", messages=ask("How do I not reset my password?"), temperature=0
)
assert raw.headers["x-sluice-cache"] == "miss", raw.headers
print("OK")
