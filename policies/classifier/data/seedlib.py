"""Helpers for writing hand-written seeds compactly.

A seed is one hand-written prompt (possibly a whole conversation). Seeds are grouped by domain and
language in a `Book`; the seed id is derived from the tier prefix, domain, language and the position
inside that (domain, language) list, so appending seeds never renames existing ones.
"""

PREFIX = {"simple": "sm", "standard": "st", "complex": "cx"}


class M:
    """A seed with options. `user` is the final user turn; `history` alternates user/assistant turns,
    starting with a user turn; `wrap=False` keeps generate.py from composing variants of it."""

    def __init__(self, user, *, system=None, history=(), max_tokens=None, tools=False, wrap=True):
        self.user = user
        self.system = system
        self.history = list(history)
        self.max_tokens = max_tokens
        self.tools = tools
        self.wrap = wrap


class Seed:
    __slots__ = ("id", "tier", "domain", "lang", "messages", "max_tokens", "tools", "wrap")

    def __init__(self, id, tier, domain, lang, messages, max_tokens, tools, wrap):
        self.id = id
        self.tier = tier
        self.domain = domain
        self.lang = lang
        self.messages = messages
        self.max_tokens = max_tokens
        self.tools = tools
        self.wrap = wrap


class Book:
    def __init__(self, tier):
        assert tier in PREFIX, tier
        self.tier = tier
        self.seeds = []
        self._count = {}

    def add(self, domain, lang, entries):
        for entry in entries:
            m = entry if isinstance(entry, M) else M(entry)
            key = (domain, lang)
            self._count[key] = self._count.get(key, 0) + 1
            sid = f"{PREFIX[self.tier]}-{domain}-{lang}-{self._count[key]:03d}"
            messages = []
            if m.system:
                messages.append({"role": "system", "content": m.system.strip()})
            assert len(m.history) % 2 == 0, sid
            for i, turn in enumerate(m.history):
                messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": turn.strip()})
            messages.append({"role": "user", "content": m.user.strip()})
            self.seeds.append(Seed(sid, self.tier, domain, lang, messages, m.max_tokens, m.tools, m.wrap))
        return self
