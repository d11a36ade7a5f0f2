"""Shared fixtures: real SQLite/Chroma storage under tmp_path, the real MiniLM embedder, a FAKE embedding model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agentmem_plugin import MemoryManager
from langchain_core.embeddings import DeterministicFakeEmbedding


@pytest.fixture
def fake_embeddings() -> DeterministicFakeEmbedding:
    """A FAKE LangChain embedding model (hash-seeded random vectors, no meaning): for tests where meaning does not matter."""
    return DeterministicFakeEmbedding(size=6)


@pytest.fixture
def semantic_manager(tmp_path) -> Iterator[MemoryManager]:  # type: ignore[no-untyped-def]
    """A persistent MemoryManager under tmp_path with the real offline MiniLM embedder (meaning matters)."""
    with MemoryManager(storage_path=tmp_path / "semantic", embedder="default") as manager:
        yield manager
