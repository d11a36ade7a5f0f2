"""Fixtures: a fake clock, stores in memory and on disk, a FAKE recording embedder, the real MiniLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lg_fakes import FakeClock, FakeRecordingEmbed

from agentmem_langgraph import AgentMemStore


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture(params=["memory", "disk"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """None for an in-memory store, a directory under tmp_path for an on-disk one."""
    return None if request.param == "memory" else tmp_path / "store"


@pytest.fixture
def store(where: Path | None) -> Iterator[AgentMemStore]:
    """A store without an index (keyword search), in memory and on disk."""
    with AgentMemStore(where) as s:
        yield s


@pytest.fixture
def ttl_store(where: Path | None, clock: FakeClock) -> Iterator[AgentMemStore]:
    """A store on a fake clock, in memory and on disk, hiding expired items (``omit_expired=True``)."""
    with AgentMemStore(where, ttl={"omit_expired": True}, clock=clock) as s:
        yield s


@pytest.fixture
def fake_embed() -> FakeRecordingEmbed:
    """A FAKE recording embedding function (8 dimensions)."""
    return FakeRecordingEmbed()


@pytest.fixture(scope="session")
def minilm() -> str:
    """Load the real offline all-MiniLM-L6-v2 once per session; returns the ``embed`` value that selects it."""
    from agentmem_plugin.embeddings import default_embedder

    assert default_embedder().dim == 384
    return "default"


@pytest.fixture
def semantic_store(where: Path | None, minilm: str) -> Iterator[AgentMemStore]:
    """A store with the real MiniLM index (hybrid search), in memory and on disk."""
    with AgentMemStore(where, index={"embed": minilm, "dims": 384}) as s:
        yield s
