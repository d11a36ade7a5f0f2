"""The spec's usage examples (memory-module.md) for Working Memory, Hierarchical Memory and Agent Memory
Integration, run as written. Adaptations, only where the spec's own code is broken, are marked ``ADAPTED``.
"""

from __future__ import annotations

from agentmem_plugin.adapters.agent import AgentMemory
from agentmem_plugin.adapters.hierarchical import HierarchicalMemory
from agentmem_plugin.adapters.working import WorkingMemory


def test_working_memory_example() -> None:
    # As written. (The spec's class builds Memory(persistence=True) without a storage path, which cannot
    # persist anywhere; ours keeps long-term in memory unless storage_path= is given.)
    working_memory = WorkingMemory()

    # Store different types of information
    working_memory.store_context("current_user", "Alice", importance=0.9)
    working_memory.store_context("temporary_calculation", 42, importance=0.3)
    working_memory.store_context(
        "learned_pattern", "user_prefers_detailed_explanations", importance=0.8
    )

    # Get active context for processing
    context = working_memory.get_active_context()

    # 0.9 > 0.8 goes long-term; 0.3 and 0.8 (not > 0.8) go short-term, most recent first.
    assert working_memory.long_term.retrieve("current_user") == "Alice"
    assert [(c["key"], c["source"]) for c in context[:2]] == [
        ("learned_pattern", "short_term"),
        ("temporary_calculation", "short_term"),
    ]
    # No query: long-term is searched with the recent context's text ("...user_prefers..."), which shares
    # the word "user" with current_user; so current_user follows, once, from long-term.
    assert context[2:] == [
        {"key": "current_user", "value": "Alice", "source": "long_term", "importance": 0.9}
    ]
    working_memory.close()


def test_hierarchical_memory_example() -> None:
    # As written (the spec's important/learned levels use persistence=True without a path: in memory here).
    hierarchical_memory = HierarchicalMemory()

    # Store at different levels
    hierarchical_memory.store("temp_calculation", 42, level="immediate")
    hierarchical_memory.store(
        "user_preference",
        "detailed_explanations",
        level="recent",
        metadata={"importance_score": 0.9},
    )
    hierarchical_memory.store("proven_strategy", "batch_processing_optimal", level="important")

    # Retrieve and promote through access
    result = hierarchical_memory.retrieve("user_preference")  # Will increase access count

    # Consolidate memory periodically
    hierarchical_memory.consolidate_memory()

    assert result == "detailed_explanations"
    # importance_score 0.9 > 0.8: promoted to "important" on access, and gone from "recent" (the spec's
    # check_promotion stored a copy in the next level and left the original behind).
    assert hierarchical_memory.level_of("user_preference") == "important"
    assert "user_preference" not in hierarchical_memory.levels["recent"]
    assert hierarchical_memory.level_of("temp_calculation") == "immediate"
    assert hierarchical_memory.level_of("proven_strategy") == "important"
    hierarchical_memory.close()


def test_agent_memory_integration_example(tmp_path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    # ADAPTED: `from agenticaiframework.agents import Agent` does not exist here, so MemoryEnabledAgent(Agent)
    # cannot be built; AgentMemory is the same memory API as a component. role/capabilities belong to the
    # agent, not its memory; config is kept as `agent.config`. The spec's hard-coded
    # storage_path=f"/data/{name}_memory.json" becomes storage_path=tmp_path (one directory per agent name),
    # and the default embedder is passed as the session's already-loaded MiniLM (same model, loaded once).
    memory_agent = AgentMemory(name="MemoryBot", storage_path=tmp_path, embedder=real_embedder)
    memory_agent.config.update({"memory_consolidation_interval": 3600})

    # Agent uses memory during operations
    memory_agent.remember("user_preference", "detailed_explanations", memory_type="long_term")
    memory_agent.remember("current_task", "data_analysis", memory_type="working", importance=0.7)

    # Agent recalls information
    preference = memory_agent.recall("user_preference")
    task = memory_agent.recall("current_task")

    # Agent searches memories
    search_results = memory_agent.search_memories("user preferences and settings")

    # Periodic memory consolidation
    memory_agent.consolidate_memories()

    assert preference == "detailed_explanations"
    assert task == "data_analysis"
    assert [r["key"] for r in search_results] == ["user_preference"]
    assert memory_agent.recall("learned_behaviors", memory_type="long_term") == {}
    memory_agent.close()
    assert (tmp_path / "MemoryBot" / "long_term").is_dir()
