"""Drives a running Sluice gateway with the official `openai` Python package.

Usage: python3 openai_client.py BASE_URL API_KEY
Exits non-zero with a message on the first mismatch; prints OK at the end.
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)

# Non-streaming.
resp = client.chat.completions.with_raw_response.create(
    model="fake-small", messages=[{"role": "user", "content": "Say hello"}], seed=3
)
assert resp.headers["x-sluice-deployment"] == "fake-small", resp.headers
completion = resp.parse()
assert completion.choices[0].message.content == "Hello from the Sluice fake provider.", completion
assert completion.usage.completion_tokens > 0, completion.usage

# Streaming, with usage requested.
pieces, usage = [], None
for chunk in client.chat.completions.create(
    model="fake-small",
    messages=[{"role": "user", "content": "Say hello"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage
assert "".join(pieces) == "Hello from the Sluice fake provider.", pieces
assert len(pieces) > 1, pieces
assert usage is not None and usage.completion_tokens == len(pieces), usage

# Embeddings.
emb = client.embeddings.create(model="fake-embed", input=["one", "two"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 16, emb

# Models.
ids = [m.id for m in client.models.list()]
assert "fake-small" in ids and "fake-embed" in ids, ids

# An error: typed exception, our code, the documented shape.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("expected a NotFoundError")
except openai.NotFoundError as e:
    assert e.status_code == 404, e
    assert e.code == "model_not_found", e.body
    assert e.request_id is None or e.request_id  # header may be read by newer clients

# An error in the middle of a stream surfaces as an exception.
try:
    for _ in client.chat.completions.create(
        model="fake-reset", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        pass
    raise SystemExit("expected an APIError from the broken stream")
except openai.APIError as e:
    assert "upstream" in str(e).lower(), e

# A bad key.
try:
    openai.OpenAI(base_url=f"{base}/v1", api_key="slk_bad", max_retries=0).models.list()
    raise SystemExit("expected an AuthenticationError")
except openai.AuthenticationError as e:
    assert e.status_code == 401

print("OK")
