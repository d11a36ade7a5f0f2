"""The query of a hybrid search is embedded on a helper thread while the keyword side runs (embed_query_beside)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.embeddings import BESIDE_THREADS, embed_query_beside
from agentmem_plugin.errors import EmbeddingError
from agentmem_plugin.tiers.sqlite import SqliteTier
from tests.conftest import FakeHashEmbedder

WAIT = 10.0  # seconds; a wait that runs out fails the test (nothing here waits that long when it works)


class SafeFakeEmbedder(FakeHashEmbedder):
    """The FAKE hash embedder, declared safe to call from a helper thread."""

    query_thread_safe = True


class ThreadRecordingEmbedder(SafeFakeEmbedder):
    """The FAKE hash embedder (declared thread-safe), recording the thread of each query; *gate* holds queries."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.started = threading.Event()
        self.gate = gate

    def embed_query(self, text: str) -> list[float]:
        self.threads.append(threading.get_ident())
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT), "the gate was never opened"
        return super().embed_query(text)


def test_the_vector_comes_from_a_helper_thread() -> None:
    embedder = ThreadRecordingEmbedder()
    vector = embed_query_beside(embedder, "where does Ana work?")
    assert vector() == FakeHashEmbedder().vector("where does Ana work?")
    assert embedder.threads and embedder.threads[0] != threading.get_ident()


def test_the_embedder_error_is_raised_by_the_returned_function() -> None:
    class Failing(SafeFakeEmbedder):
        def embed_query(self, text: str) -> list[float]:
            raise EmbeddingError(f"cannot embed {text!r}")

    vector = embed_query_beside(Failing(), "tea")
    with pytest.raises(EmbeddingError, match="cannot embed 'tea'"):
        vector()


def test_with_every_helper_busy_the_caller_embeds_itself() -> None:
    gate = threading.Event()
    busy = [ThreadRecordingEmbedder(gate) for _ in range(BESIDE_THREADS)]
    waiting = [embed_query_beside(e, f"q{i}") for i, e in enumerate(busy)]
    try:
        for e in busy:
            assert e.started.wait(WAIT)
        extra = ThreadRecordingEmbedder()
        vector = embed_query_beside(extra, "one more")
        assert not extra.threads  # not started: no helper was free
        assert vector() == FakeHashEmbedder().vector("one more")
        assert extra.threads == [threading.get_ident()]
    finally:
        gate.set()
    for i, result in enumerate(waiting):
        assert result() == FakeHashEmbedder().vector(f"q{i}")
    # the helpers are free again: the next query goes to one of them
    again = ThreadRecordingEmbedder()
    embed_query_beside(again, "later")()
    assert again.threads[0] != threading.get_ident()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("held", [False, True], ids=["idle", "lock-held-at-fork"])
def test_a_forked_child_gets_helpers_of_its_own(held: bool) -> None:
    from agentmem_plugin import embeddings

    # the parent's pool exists
    embed_query_beside(ThreadRecordingEmbedder(), "made in the parent")()
    lock = embeddings._HELPERS._lock
    if held:  # as if another thread were starting a helper at the fork
        lock.acquire()
    pid = -1
    try:
        pid = os.fork()
    finally:
        if held and pid != 0:
            lock.release()
    if pid == 0:  # the child: its copy of the pool has no threads; a new one must serve it
        code = 1
        try:
            done = threading.Event()
            result: list[Any] = []

            def run() -> None:
                child = ThreadRecordingEmbedder()
                result.append(embed_query_beside(child, "child")())
                result.append(child.threads[0] != threading.get_ident())  # a helper ran it
                done.set()

            threading.Thread(target=run, daemon=True).start()
            if done.wait(WAIT) and result == [FakeHashEmbedder().vector("child"), True]:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_embedder_not_declared_thread_safe_runs_in_the_callers_thread_when_asked() -> None:
    embedder = ThreadRecordingEmbedder()
    embedder.query_thread_safe = False  # type: ignore[misc]
    vector = embed_query_beside(embedder, "tea")
    assert not embedder.threads  # nothing ran yet: the vector is embedded when asked for
    assert vector() == FakeHashEmbedder().vector("tea")
    assert embedder.threads == [threading.get_ident()]


def test_a_cached_embedder_declares_what_its_inner_embedder_declares() -> None:
    from agentmem_plugin.embeddings import CachedEmbedder, SentenceTransformerEmbedder

    assert CachedEmbedder(SafeFakeEmbedder()).query_thread_safe is True
    assert CachedEmbedder(FakeHashEmbedder()).query_thread_safe is False
    assert SentenceTransformerEmbedder.query_thread_safe is True  # the local models declare it

    inner = ThreadRecordingEmbedder()
    embed_query_beside(CachedEmbedder(inner), "through the cache")()
    assert inner.threads[0] != threading.get_ident()


def test_the_callers_context_variables_go_to_the_helper() -> None:
    import contextvars

    request: contextvars.ContextVar[str] = contextvars.ContextVar("request")

    class ContextReading(ThreadRecordingEmbedder):
        def embed_query(self, text: str) -> list[float]:
            return super().embed_query(f"{text} for {request.get('nobody')}")

    embedder = ContextReading()
    token = request.set("req-42")
    try:
        vector = embed_query_beside(embedder, "tea")()
    finally:
        request.reset(token)
    assert embedder.threads[0] != threading.get_ident()
    assert vector == FakeHashEmbedder().vector("tea for req-42")


def test_manager_semantic_search_embeds_in_the_callers_thread(tmp_path: Path) -> None:
    embedder = ThreadRecordingEmbedder()
    manager = MemoryManager(storage_path=tmp_path, embedder=embedder, enable_logging=False)
    for k, v in TEXTS:
        manager.store(k, v, memory_type="long_term")
    assert manager.search("where is the bakery", mode="semantic")
    assert embedder.threads[-1] == threading.get_ident()  # no keyword side to run beside it
    manager.close()


def _keyword_waits_for_the_embedding(monkeypatch: pytest.MonkeyPatch, embedder: Any) -> list[str]:
    """Make SQLite's keyword search wait until the query embedding has started (it fails the search if not)."""
    calls: list[str] = []
    original = SqliteTier.keyword_search

    def keyword_search(self: SqliteTier, query: str, limit: int = 10) -> Any:
        if query == "Ana bakery" and not calls:
            calls.append(query)
            # serial code embeds after the keyword side: this wait would run out
            assert embedder.started.wait(WAIT), (
                "the keyword side did not run while the query was embedded"
            )
        return original(self, query, limit)

    monkeypatch.setattr(SqliteTier, "keyword_search", keyword_search)
    return calls


TEXTS = [
    ("a", "Ana works at the bakery on Main Street"),
    ("b", "the bakery opens at six"),
    ("c", "Ben plays chess on Sundays"),
    ("d", "it rained all week"),
]


def test_memory_hybrid_runs_the_keyword_side_while_embedding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = Memory(capacity=None, embedder=FakeHashEmbedder())
    for k, v in TEXTS:
        serial.store(k, v)
    expected = serial.search("Ana bakery", mode="hybrid", explain=True)
    serial.close()

    embedder = ThreadRecordingEmbedder()
    memory = Memory(capacity=None, persistence=True, storage_path=tmp_path, embedder=embedder)
    for k, v in TEXTS:
        memory.store(k, v)
    calls = _keyword_waits_for_the_embedding(monkeypatch, embedder)
    got = memory.search("Ana bakery", mode="hybrid", explain=True)
    assert calls == ["Ana bakery"]
    assert embedder.threads[-1] != threading.get_ident()
    assert got == expected  # the same hits, scores and explanations as the serial search
    assert got[0]["key"] == "a"
    memory.close()


def test_manager_hybrid_runs_the_keyword_side_while_embedding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = MemoryManager(
        storage_path=tmp_path / "serial", embedder=FakeHashEmbedder(), enable_logging=False
    )
    for k, v in TEXTS:
        serial.store(k, v, memory_type="long_term")
    before = serial.search("Ana bakery", mode="hybrid")
    serial.close()

    embedder = ThreadRecordingEmbedder()
    manager = MemoryManager(storage_path=tmp_path / "m", embedder=embedder, enable_logging=False)
    for k, v in TEXTS:
        manager.store(k, v, memory_type="long_term")
    calls = _keyword_waits_for_the_embedding(monkeypatch, embedder)
    got = manager.search("Ana bakery", mode="hybrid")
    assert calls == ["Ana bakery"]
    assert got == before
    assert got[0]["key"] == "a"
    manager.close()


def test_a_hybrid_search_inside_a_transaction_does_not_deadlock(tmp_path: Path) -> None:
    # the transaction holds the SQLite tier's lock: the keyword side must run in the thread that holds it
    manager = MemoryManager(
        storage_path=tmp_path, embedder=ThreadRecordingEmbedder(), enable_logging=False
    )
    hits: list[Any] = []

    def work() -> None:
        with manager.transaction():
            for k, v in TEXTS:
                manager.store(k, v, memory_type="long_term")
            hits.extend(manager.search("Ana bakery", mode="hybrid"))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "the search inside the transaction never returned"
    assert hits and hits[0]["key"] == "a"
    manager.close()


def test_the_helper_threads_are_named_for_the_library() -> None:
    embedder = ThreadRecordingEmbedder()
    embed_query_beside(embedder, "name")()
    names = {t.ident: t.name for t in threading.enumerate()}
    assert names[embedder.threads[0]].startswith("agentmem-embed")
