"""Shared fixtures: a fake clock so TTL behaviour is tested without sleeping."""

from __future__ import annotations

import pytest
from hypothesis import settings

# -- hypothesis budgets ------------------------------------------------------------------------------------------
# The stateful machines are most of the core suite's time. By default they run a smaller number of examples
# (each still the full step count); `pytest --hypothesis-profile=deep` runs every one at its deep budget (what
# they ran before the suite was made faster, issue 20). The budgets of both are written next to each machine.
settings.register_profile("deep", settings.get_profile("default"))


def hypothesis_examples(default: int, deep: int) -> int:
    """How many examples a costly property runs: *deep* under ``--hypothesis-profile=deep``, else *default*."""
    return deep if settings.get_current_profile_name() == "deep" else default


class FakeClock:
    """A mutable clock: call it for the current time, ``advance()`` it by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


@pytest.fixture
def clock() -> FakeClock:
    """A fresh FakeClock starting at 1_000_000.0."""
    return FakeClock(1_000_000.0)


@pytest.fixture(scope="session")
def clock_factory() -> type[FakeClock]:
    """The FakeClock class, for tests needing a fresh clock per example (hypothesis machines)."""
    return FakeClock


# -- embedders for the semantic layer ------------------------------------------------------------------------


class FakeHashEmbedder:
    """A FAKE embedder: deterministic unit vectors derived from a SHA-256 of the text (no meaning at all).

    Equal texts get equal vectors, different texts nearly unrelated ones. Counts its calls and records the
    texts it embedded (``embedded`` for documents, ``queries`` for queries), so tests can check what was
    (re-)embedded.
    """

    def __init__(self, *, name: str = "fake-hash-embedder", dim: int = 16) -> None:
        self._name = name
        self._dim = dim
        self.calls = 0
        self.embedded: list[str] = []
        self.queries: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def vector(self, text: str) -> list[float]:
        import hashlib
        import math

        raw: list[float] = []
        counter = 0
        while len(raw) < self._dim:
            digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8", "surrogatepass")).digest()
            raw.extend((b - 127.5) / 127.5 for b in digest)
            counter += 1
        raw = raw[: self._dim]
        norm = math.sqrt(sum(x * x for x in raw))
        return [x / norm for x in raw]

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.embedded.extend(texts)
        return [self.vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        self.queries.append(text)
        return self.vector(text)

    def __repr__(self) -> str:
        return f"FakeHashEmbedder(name={self._name!r}, dim={self._dim})"


class CountingEmbedder:
    """Wraps an embedder and records every text it is asked to embed (documents and queries apart)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.documents: list[str] = []
        self.queries: list[str] = []
        self.document_calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.document_calls += 1
        self.documents.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.inner.embed_query(text)


@pytest.fixture
def fake_embedder() -> FakeHashEmbedder:
    """A fresh FAKE hash embedder (name "fake-hash-embedder", dim 16): for tests where meaning does not matter."""
    return FakeHashEmbedder()


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The real offline all-MiniLM-L6-v2 (loaded once per session): for tests where meaning matters."""
    from agentmem_plugin.embeddings import default_embedder

    embedder = default_embedder()
    assert embedder.dim == 384  # loads the model now, once
    return embedder


def pytest_unconfigure(config: pytest.Config) -> None:
    """After the run, let chromadb's HTTP client sockets be reclaimed quietly.

    chromadb's HttpClient leaves its connections to the garbage collector; at interpreter exit each one would
    print an "unclosed socket" ResourceWarning. Inside tests every warning still fails the test.
    """
    import gc
    import socket
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            if type(obj) is socket.socket and obj.family == socket.AF_INET and obj.fileno() != -1:
                try:
                    host = obj.getpeername()[0]
                except OSError:
                    continue
                if host == "127.0.0.1":  # only the test servers' connections (chroma, moto)
                    obj.close()
        gc.collect()
