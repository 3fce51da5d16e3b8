"""Writes prompts.jsonl, the built-in classifier's labelled corpus, from the hand-written seeds.

Every `seeds_*.py` module exports `SEEDS`. Each seed becomes one row (`source: hand-written`); a seed with
`wrap=True` also becomes framed variants, in its own language: one under a system prompt, one with a
short lead-in on its last user turn (`source: generated:<frame>`); a standard seed gets one of the two.
A variant keeps its seed's tier and group. A group is held out iff the SHA-256 of its name is 0 mod 4,
so a seed and its variants are always on the same side. Deterministic: run `python3 generate.py` from this directory.
"""

import hashlib
import importlib
import json
import pathlib
import sys

sys.dont_write_bytecode = True
from collections import Counter

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SYSTEMS = {
    "en": ["You are a helpful assistant.", "You are the internal assistant of Northwind Ltd. Be accurate and concise."],
    "de": ["Du bist ein hilfreicher Assistent.", "Du bist der interne Assistent der Firma Nordwind GmbH. Antworte präzise."],
    "fr": ["Tu es un assistant serviable.", "Tu es l'assistant interne de la société Nordvent. Réponds avec précision."],
    "es": ["Eres un asistente útil.", "Eres el asistente interno de la empresa Vientonorte. Responde con precisión."],
    "pt": ["Você é um assistente prestativo.", "Você é o assistente interno da empresa Ventonorte. Responda com precisão."],
    "it": ["Sei un assistente disponibile.", "Sei l'assistente interno dell'azienda Ventonord. Rispondi con precisione."],
    "zh": ["你是一个乐于助人的助手。", "你是北风公司的内部助手，请准确简洁地回答。"],
    "ja": ["あなたは親切なアシスタントです。", "あなたは北風株式会社の社内アシスタントです。正確かつ簡潔に答えてください。"],
}

LEADS = {
    "en": ["Quick question: ", "Please help me with this. ", "Hey, "],
    "de": ["Kurze Frage: ", "Kannst du mir bitte helfen? ", "Hallo, "],
    "fr": ["Petite question : ", "Peux-tu m'aider ? ", "Bonjour, "],
    "es": ["Una pregunta rápida: ", "¿Me ayudas con esto? ", "Hola, "],
    "pt": ["Uma pergunta rápida: ", "Pode me ajudar com isso? ", "Olá, "],
    "it": ["Una domanda veloce: ", "Mi aiuti con questo? ", "Ciao, "],
    "zh": ["问一下：", "请帮我看看：", "你好，"],
    "ja": ["ちょっと質問です。", "手伝ってください。", "すみません、"],
}

TOOLS = {
    "weather": {"name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    "booking": {"name": "book_table", "description": "Book a restaurant table",
                "parameters": {"type": "object", "properties": {"restaurant": {"type": "string"}, "time": {"type": "string"},
                                                               "people": {"type": "integer"}}, "required": ["time", "people"]}},
    "search": {"name": "search", "description": "Search the web",
               "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
    "read_file": {"name": "read_file", "description": "Read a file of the repository",
                  "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    "run_shell": {"name": "run_shell", "description": "Run a shell command in the sandbox",
                  "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
}


def tools_for(seed):
    text = " ".join(m["content"] for m in seed.messages).lower()
    if "weather" in text:
        names = ["weather"]
    elif "book" in text or "table" in text:
        names = ["booking", "search"]
    elif seed.tier == "complex":
        names = ["read_file", "run_shell"]
    else:
        names = ["search"]
    return [{"type": "function", "function": TOOLS[n]} for n in names]


def split_of(group):
    return "heldout" if int(hashlib.sha256(group.encode()).hexdigest(), 16) % 4 == 0 else "train"


def row(seed, rid, source, messages):
    r = {
        "id": rid,
        "tier": seed.tier,
        "domain": seed.domain,
        "language": seed.lang,
        "source": source,
        "group": seed.id,
        "split": split_of(seed.id),
        "messages": messages,
    }
    if seed.max_tokens is not None:
        r["max_tokens"] = seed.max_tokens
    if seed.tools:
        r["tools"] = tools_for(seed)
    return r


def pick(options, key):
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def variants(seed):
    lang = seed.lang if seed.lang in SYSTEMS else "en"
    if seed.messages[0]["role"] != "system":
        system = pick(SYSTEMS[lang], seed.id + "/system")
        yield "system-prompt", [{"role": "system", "content": system}] + seed.messages
    lead = pick(LEADS[lang], seed.id + "/lead")
    last = dict(seed.messages[-1])
    body = last["content"]
    if lang in ("en", "de", "fr", "es", "pt", "it") and body[:1].isupper() and not body[1:2].isupper():
        body = body[0].lower() + body[1:]
    last["content"] = lead + body
    yield "lead-in", seed.messages[:-1] + [last]


def main():
    seeds = []
    for path in sorted(HERE.glob("seeds_*.py")):
        seeds.extend(importlib.import_module(path.stem).SEEDS)
    rows = []
    for seed in seeds:
        rows.append(row(seed, seed.id, "hand-written", seed.messages))
        if seed.wrap:
            framed = list(variants(seed))
            if seed.tier == "standard":
                # one variant for a standard seed, so standard stays near a sixth of the rows
                framed = [pick(framed, seed.id + "/variant")]
            for i, (frame, messages) in enumerate(framed, 1):
                rows.append(row(seed, f"{seed.id}-v{i}", f"generated:{frame}", messages))
    rows.sort(key=lambda r: r["id"])
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for r in rows:
        assert r["messages"] and r["messages"][-1]["role"] == "user", r["id"]
        assert all(m["role"] in ("system", "user", "assistant") and m["content"].strip() for m in r["messages"]), r["id"]
    with open(HERE / "prompts.jsonl", "w", encoding="utf-8") as out:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    hand = sum(r["source"] == "hand-written" for r in rows)
    print(f"{len(rows)} rows, {hand} hand-written seeds")
    for key in ("tier", "language", "split"):
        counts = Counter(r[key] for r in rows)
        print(f"{key}: " + ", ".join(f"{k} {v} ({v * 100 / len(rows):.1f}%)" for k, v in sorted(counts.items())))
    held = Counter(r["tier"] for r in rows if r["split"] == "heldout")
    print("heldout by tier: " + ", ".join(f"{k} {v}" for k, v in sorted(held.items())))


if __name__ == "__main__":
    main()
