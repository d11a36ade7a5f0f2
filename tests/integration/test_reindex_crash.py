"""A reindex killed with SIGKILL at a random moment is finished on the next open (issue 15, item 5).

Real processes, the real offline model (all-MiniLM-L6-v2), a store of 2,000 entries: a child reindexes over and
over and is killed ``kill -9`` at random moments; afterwards the store opens and semantic search covers every
entry (the vector count equals the entry count).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chromadb")

from agentmem_plugin import Memory
from agentmem_plugin.tiers.chroma import REBUILDING

ENTRIES = 2000
KILLS = 3

CHILD = textwrap.dedent(
    """
    import sys
    from agentmem_plugin import Memory

    memory = Memory(capacity=None, persistence=True, storage_path=sys.argv[1], embedder="default")
    print("ready", flush=True)
    while True:
        memory.reindex()
        print("reindexed", flush=True)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _kill_mid_reindex(store: Path, delay: float) -> None:
    """Start a child that reindexes *store* in a loop; SIGKILL it *delay* seconds after it opened the store."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"the child did not open the store: {line!r}"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def _covered(store: Path) -> None:
    with Memory(capacity=None, persistence=True, storage_path=store, embedder="default") as memory:
        assert memory.size == ENTRIES
        index = memory._semantic
        assert index is not None
        assert index.index.count() == ENTRIES
        # every entry has its vector (read exactly: an approximate HNSW query for k = all may miss one)
        expected = [f"turn-{i}" for i in range(ENTRIES)]
        indexed = index.index.present(expected)
        assert indexed == set(expected)  # and count() == ENTRIES above: no vector beside them
        hits = memory.search("what was said", limit=10, mode="semantic")  # and it answers by meaning
        assert len(hits) == 10 and all(h["key"] in indexed for h in hits)


@pytest.mark.slow
def test_reindex_killed_at_random_moments_is_finished_on_open(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    store = tmp_path / "store"
    rng = random.Random(os.getpid())
    with Memory(capacity=None, persistence=True, storage_path=store, embedder="default") as memory:
        memory.store_many(
            {
                f"turn-{i}": f"speaker {i % 7} said thing number {i} about topic {i % 13}"
                for i in range(ENTRIES)
            }
        )
        started = time.perf_counter()
        memory.reindex()  # embeddings are cached now: a reindex is mostly Chroma writes
        duration = time.perf_counter() - started
    for _ in range(KILLS):
        _kill_mid_reindex(store, rng.uniform(0.05, max(0.1, duration)))
        _covered(store)


# -- the same, in process and fast (a fake embedder) ------------------------------------------------------------


def _open(store: Path, embedder: Any, **kwargs: Any) -> Memory:
    return Memory(capacity=None, persistence=True, storage_path=store, embedder=embedder, **kwargs)


def _vectors(memory: Memory) -> int:
    assert memory._semantic is not None
    return memory._semantic.index.count()


def test_an_interrupted_rebuild_is_recorded_and_finished_on_open(
    tmp_path: Path, fake_embedder: Any
) -> None:
    store = tmp_path / "store"
    with _open(store, fake_embedder) as memory:
        memory.store_many({f"k{i}": f"text {i}" for i in range(300)})
        tier = memory.tier.inner  # type: ignore[attr-defined]
        # What a process killed half-way through reindex() leaves: the rebuild recorded as in progress and
        # part of the vectors.
        assert memory._semantic is not None
        memory._semantic.index.delete([f"k{i}" for i in range(100, 300)])
        tier.set_index_meta(REBUILDING + fake_embedder.name, fake_embedder.dim)
    with _open(store, fake_embedder) as memory:
        assert _vectors(memory) == 300
        assert memory.tier.index_meta() == (fake_embedder.name, fake_embedder.dim)
        assert len(memory.search("text", limit=400, mode="semantic")) == 300


def test_a_rebuild_that_fails_stays_recorded_as_interrupted(
    tmp_path: Path, fake_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    with _open(store, fake_embedder) as memory:
        memory.store_many({f"k{i}": f"text {i}" for i in range(300)})
        assert memory._semantic is not None
        real = memory._semantic.index.upsert
        calls = []

        def failing(*args: Any, **kwargs: Any) -> None:
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("disk full")
            real(*args, **kwargs)

        monkeypatch.setattr(memory._semantic.index, "upsert", failing)
        with pytest.raises(RuntimeError):
            memory.reindex()
        assert memory.tier.index_meta() == (REBUILDING + fake_embedder.name, fake_embedder.dim)
    with _open(store, fake_embedder) as memory:
        assert _vectors(memory) == 300


def test_a_store_whose_vector_database_is_damaged_opens_and_rebuilds(
    tmp_path: Path, fake_embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    with _open(store, fake_embedder) as memory:
        memory.store_many({f"k{i}": f"text {i}" for i in range(300)})
    database = store / "chroma" / "chroma.sqlite3"
    database.write_bytes(os.urandom(database.stat().st_size))
    with _open(
        store, fake_embedder
    ) as memory:  # was: chromadb InternalError "file is not a database"
        assert _vectors(memory) == 300
        assert len(memory.search("text", limit=400, mode="semantic")) == 300
    assert "cannot be opened" in caplog.text
    assert (store / "chroma.damaged-1" / "chroma.sqlite3").exists()  # moved aside, not deleted
