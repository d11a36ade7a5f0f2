"""MemoryManager.search with a narrow filter, and Memory.search_by_vector."""

from __future__ import annotations

from typing import Any

import pytest

from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.errors import EmbeddingError, InvalidArgumentError


def test_a_narrow_filter_still_fills_the_limit() -> None:
    mm = MemoryManager(short_term_limit=500)
    for i in range(100):  # 100 notes match the query; only every 20th carries the tag
        mm.store(f"n{i}", f"meeting note number {i}", tags=["rare"] if i % 20 == 0 else ["common"])
    hits = mm.search("meeting note", limit=5, filter={"tags": ["rare"]})
    assert sorted(h["key"] for h in hits) == ["n0", "n20", "n40", "n60", "n80"]
    assert mm.search("meeting note", limit=5, filter={"tags": ["absent"]}) == []
    mm.close()


def test_search_by_vector_finds_the_stored_text(fake_embedder: Any) -> None:
    memory = Memory(embedder=fake_embedder)
    memory.store("a", "alpha")
    memory.store("b", "beta")
    vector = fake_embedder.embed_query("beta")
    hits = memory.search_by_vector(vector, limit=1)
    assert [h["key"] for h in hits] == ["b"]
    assert hits[0]["similarity"] == pytest.approx(1.0)
    with pytest.raises(EmbeddingError):
        memory.search_by_vector([0.1, 0.2], limit=1)  # wrong dimension
    with pytest.raises(EmbeddingError):
        memory.search_by_vector([float("nan")] * fake_embedder.dim, limit=1)
    with pytest.raises(InvalidArgumentError):
        Memory().search_by_vector(vector)
    memory.close()


def test_manager_reindex_switches_models(tmp_path: Any, fake_embedder: Any) -> None:
    from conftest import FakeHashEmbedder

    with MemoryManager(storage_path=tmp_path, embedder=fake_embedder) as mm:
        mm.store("a", "alpha", memory_type="long_term")
        mm.store("b", "beta", memory_type="long_term")
    other = FakeHashEmbedder(name="another-model", dim=8)
    with pytest.raises(EmbeddingError, match="reindex=True"):
        MemoryManager(storage_path=tmp_path, embedder=other)
    with MemoryManager(storage_path=tmp_path, embedder=other, reindex=True) as mm:
        assert sorted(other.embedded) == ["alpha", "beta"]
        assert [h["key"] for h in mm.search("beta", mode="semantic", limit=1)] == ["b"]
        assert mm.reindex() == 2
    with pytest.raises(InvalidArgumentError, match="embedder"):
        MemoryManager().reindex()
