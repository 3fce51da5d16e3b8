"""Drives a gateway's local models with the official `openai` Python package.

Usage: python3 openai_local.py BASE_URL API_KEY
Exits non-zero with a message on the first mismatch; prints OK at the end.
"""
import math
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
messages = [{"role": "user", "content": "What is the capital of France?"}]

whole = client.chat.completions.create(model="local-chat", messages=messages, temperature=0)
text = whole.choices[0].message.content
assert text, whole

pieces, usage, finish = [], None, None
for chunk in client.chat.completions.create(
    model="local-chat",
    messages=messages,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
    if chunk.usage:
        usage = chunk.usage
assert "".join(pieces) == text, (pieces, text)
assert len(pieces) > 1, pieces
assert finish == whole.choices[0].finish_reason, finish
assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage

# The client asks for base64 by default and decodes it.
emb = client.embeddings.create(model="local-embed", input=["How do I reset my password?"])
vector = emb.data[0].embedding
assert len(vector) == 384, len(vector)
assert abs(math.sqrt(sum(v * v for v in vector)) - 1.0) < 1e-3

print("OK")
