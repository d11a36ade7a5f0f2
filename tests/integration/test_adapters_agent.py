"""AgentMemory: remember/recall per memory type, search, consolidation, execution, persistence per agent name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmem_plugin.adapters.agent import AgentMemory
from agentmem_plugin.errors import InvalidArgumentError


@pytest.fixture
def agent(fake_embedder, clock):  # type: ignore[no-untyped-def]
    memory = AgentMemory("bot", embedder=fake_embedder, clock=clock)
    yield memory
    memory.close()


def test_remember_routes_to_each_memory(agent) -> None:  # type: ignore[no-untyped-def]
    agent.remember("task", "data_analysis", importance=0.7)
    agent.remember("user", "Alice", memory_type="working", importance=0.9)
    agent.remember("pref", "detailed", memory_type="long_term", tags=["pref"], ttl=60)
    agent.remember("tip", "follow PEP 8", memory_type="semantic")
    assert agent.working_memory.short_term.retrieve("task") == "data_analysis"
    assert agent.working_memory.long_term.retrieve("user") == "Alice"
    assert agent.long_term_memory.get_entry("pref").tags == ("pref",)
    assert agent.semantic_memory.retrieve("tip") == "follow PEP 8"
    assert agent.recall("task", memory_type="working") == "data_analysis"
    assert agent.recall("user", memory_type="working") == "Alice"
    assert agent.recall("pref", memory_type="long_term") == "detailed"
    assert agent.recall("tip", memory_type="semantic") == "follow PEP 8"
    assert agent.recall("tip", memory_type="long_term") is None


def test_recall_without_type_searches_in_order_and_keeps_falsy_values(agent) -> None:  # type: ignore[no-untyped-def]
    agent.remember("k", "semantic", memory_type="semantic")
    assert agent.recall("k") == "semantic"
    agent.remember("k", "long", memory_type="long_term")
    assert agent.recall("k") == "long"
    agent.remember("k", "working-long", importance=0.95)
    assert agent.recall("k") == "working-long"
    agent.remember("k", 0, importance=0.1)
    assert agent.recall("k") == 0  # the spec's `or` chain would skip a falsy value
    assert agent.recall("missing") is None


def test_unknown_memory_type_and_options_are_refused(agent) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="'episodic'"):
        agent.remember("k", "v", memory_type="episodic")
    with pytest.raises(InvalidArgumentError, match="'episodic'"):
        agent.recall("k", memory_type="episodic")
    with pytest.raises(InvalidArgumentError, match="'ttl'"):
        agent.remember("k", "v", memory_type="working", ttl=3)
    with pytest.raises(InvalidArgumentError, match="'importance'"):
        agent.remember("k", "v", memory_type="long_term", importance=0.3)
    with pytest.raises(ValueError, match=r"1\.5"):
        agent.remember("k", "v", importance=1.5)
    assert agent.recall("k") is None


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-x", "x" * 65, "a b", 42, None])
def test_unsafe_agent_names_are_refused(tmp_path, fake_embedder, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="agent name"):
        AgentMemory(name, storage_path=tmp_path, embedder=fake_embedder)
    assert list(tmp_path.iterdir()) == []


def test_memories_persist_per_agent_name(tmp_path, fake_embedder, clock) -> None:  # type: ignore[no-untyped-def]
    with AgentMemory("MemoryBot", storage_path=tmp_path, embedder=fake_embedder, clock=clock) as a:
        a.remember("pref", "detailed", memory_type="long_term")
        a.remember("tip", "follow PEP 8", memory_type="semantic")
        a.remember("user", "Alice", importance=0.9)
        a.remember("scratch", 1, importance=0.1)
        a.remember("agent_config", {"verbose": True}, memory_type="long_term")
        a.learned_behaviors["greeting"] = "formal"
        a.consolidate_memories()
    assert sorted(p.name for p in (tmp_path / "MemoryBot").iterdir()) == [
        "long_term",
        "semantic",
        "working",
    ]
    with AgentMemory("MemoryBot", storage_path=tmp_path, embedder=fake_embedder, clock=clock) as a:
        assert a.recall("pref") == "detailed"
        assert a.recall("tip", memory_type="semantic") == "follow PEP 8"
        assert a.recall("user", memory_type="working") == "Alice"
        assert a.recall("scratch") is None  # working short-term is not persisted
        assert a.config == {"verbose": True}
        assert a.learned_behaviors == {"greeting": "formal"}
    with AgentMemory("OtherBot", storage_path=tmp_path, embedder=fake_embedder, clock=clock) as b:
        assert b.recall("pref") is None and b.recall("user") is None


def test_consolidate_copies_important_working_items_to_long_term(agent) -> None:  # type: ignore[no-untyped-def]
    agent.remember("user", "Alice", importance=0.9)
    agent.remember("task", "analysis", importance=0.7)
    assert agent.consolidate_memories() == 1
    entry = agent.long_term_memory.get_entry("user")
    assert entry.value == "Alice"
    assert set(entry.tags) == {"consolidated", "important"}
    assert entry.metadata["importance"] == 0.9
    assert agent.long_term_memory.retrieve("task") is None
    assert agent.long_term_memory.retrieve("learned_behaviors") == {}


def test_execute_with_memory_passes_context_and_records_the_run(agent) -> None:  # type: ignore[no-untyped-def]
    agent.remember("user", "Alice", importance=0.2)
    received: list[Any] = []

    def greet(greeting: str, *, context: list[dict[str, Any]]) -> str:
        received.extend(context)
        return f"{greeting}, {context[0]['value']}"

    assert agent.execute_with_memory(greet, "Hello") == "Hello, Alice"
    assert [c["key"] for c in received] == ["user"]
    runs = [k for k in agent.working_memory.short_term.keys() if k.startswith("execution_greet_")]
    assert len(runs) == 1
    entry = agent.working_memory.short_term.get_entry(runs[0])
    assert entry.value["result"] == "Hello, Alice"
    assert entry.value["args"] == "('Hello',)"
    assert entry.metadata["importance"] == 0.6


def test_execute_with_memory_without_context_parameter(agent) -> None:  # type: ignore[no-untyped-def]
    def add(a: int, b: int) -> int:
        return a + b

    assert agent.execute_with_memory(add, 2, b=3) == 5
    assert agent.execute_with_memory(add, 2, b=3) == 5
    runs = [k for k in agent.working_memory.short_term.keys() if k.startswith("execution_add_")]
    assert len(runs) == 2  # two runs in the same second do not overwrite each other


def test_execute_with_memory_records_unserializable_results_and_errors(agent) -> None:  # type: ignore[no-untyped-def]
    marker = object()
    assert agent.execute_with_memory(lambda: marker) is marker
    (key,) = agent.working_memory.short_term.keys()
    assert agent.recall(key)["result"] == repr(marker)

    def fail() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        agent.execute_with_memory(fail)
    (failed,) = [
        k for k in agent.working_memory.short_term.keys() if k.startswith("execution_fail_")
    ]
    assert "boom" in agent.recall(failed)["error"]


def test_search_memories_merges_deduplicates_and_ranks(real_embedder, clock) -> None:  # type: ignore[no-untyped-def]
    with AgentMemory("searcher", embedder=real_embedder, clock=clock) as agent:
        agent.remember(
            "python_tips", "Use descriptive names and follow PEP 8", memory_type="semantic"
        )
        agent.remember("cooking", "Salt the pasta water generously", memory_type="semantic")
        agent.remember("style_guide", "Follow PEP 8 naming rules", memory_type="semantic")
        agent.remember("style_guide", "Follow PEP 8 naming rules", memory_type="long_term")
        agent.remember("deadline", "The PEP 8 cleanup is due Friday", memory_type="long_term")
        results = agent.search_memories("PEP 8 coding guidelines", limit=3)
        keys = [r["key"] for r in results]
        assert len(keys) == len(set(keys)) == 3
        assert keys[0] == "style_guide"  # found by both searches
        assert results[0]["sources"] == ["semantic", "long_term"]
        assert "cooking" not in keys
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        assert len(agent.search_memories("PEP 8", limit=1)) == 1


def test_async_twins(agent) -> None:  # type: ignore[no-untyped-def]
    async def main() -> tuple[Any, Any, int]:
        await agent.aremember("user", "Alice", importance=0.9)
        await agent.aremember("pref", "short", memory_type="long_term")
        with pytest.raises(InvalidArgumentError):
            await agent.aremember("k", "v", memory_type="nowhere")
        hits = await agent.asearch_memories("short")
        return await agent.arecall("user"), hits, await agent.aconsolidate_memories()

    user, hits, copied = asyncio.run(main())
    assert user == "Alice" and copied == 1
    assert [h["key"] for h in hits] == ["pref"]
