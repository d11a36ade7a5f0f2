"""FAKE helpers of the tests (importable by name: the tests directory is on sys.path)."""

from __future__ import annotations

import hashlib
import math
import threading


class FakeClock:
    """A mutable clock: call it for the current time, ``advance()`` it by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FakeRecordingEmbed:
    """A FAKE embedding function (no meaning): SHA-256-derived vectors; records every text it embeds.

    Used where only *what* gets embedded matters (index fields, index=False), never for meaning.
    """

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.texts: list[str] = []
        self.threads: set[int] = set()
        self.__qualname__ = "fake-recording-embed"

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.texts.extend(texts)
        self.threads.add(threading.get_ident())
        out = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            raw = [(b - 127.5) / 127.5 for b in digest[: self.dim]]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            out.append([x / norm for x in raw])
        return out

    def documents(self) -> list[str]:
        """The texts embedded as documents (the store's dimension probe left out)."""
        return [t for t in self.texts if t != "dimension probe"]
