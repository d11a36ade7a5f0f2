"""The spec's usage examples for "Shared Memory" and "Memory Federation", run as written.

Source: /work/shared/spec/memory-module.md, section "Memory Sharing and Synchronization". Only the imports are
ours (the spec's classes live in ``agentmem_plugin.adapters``); every adaptation is marked ``ADAPTED``.
"""

from __future__ import annotations

from pathlib import Path

from agentmem_plugin.adapters.federation import MemoryFederation
from agentmem_plugin.adapters.shared import SharedMemory
from agentmem_plugin.memory import Memory


def test_shared_memory_usage(tmp_path: Path) -> None:
    shared_mem = SharedMemory()

    # Create shared memory for team collaboration
    team_memory = shared_mem.create_shared_memory(
        "team_knowledge",
        # ADAPTED: the spec passes {"capacity": 5000, "persistence": True}; a persistent Memory needs a
        # storage_path (the spec's own Memory has one in its persistence examples), so we add a tmp one.
        {"capacity": 5000, "persistence": True, "storage_path": tmp_path / "team_knowledge"},
        allowed_agents=["agent_1", "agent_2", "agent_3"],
    )

    # Agent accesses shared memory
    agent_memory = shared_mem.access_memory("team_knowledge", "agent_1")
    if agent_memory:
        agent_memory.store("shared_insight", "parallel processing is optimal for large datasets")

    # What the example implies: the insight is in the team memory, visible to the other agents.
    assert agent_memory is not None
    assert (
        team_memory.retrieve("shared_insight")
        == "parallel processing is optimal for large datasets"
    )
    other = shared_mem.access_memory("team_knowledge", "agent_2")
    assert other is not None
    assert other.retrieve("shared_insight") == "parallel processing is optimal for large datasets"
    assert shared_mem.access_memory("team_knowledge", "outsider") is None
    team_memory.close()


def test_shared_memory_grant_revoke_and_sync_as_in_the_spec_class() -> None:
    # The spec's class body also documents grant/revoke/synchronize; exercised with its signatures.
    shared_mem = SharedMemory()
    a = shared_mem.create_shared_memory("a", {"capacity": 100})
    b = shared_mem.create_shared_memory("b", {"capacity": 100})
    shared_mem.grant_access("a", "agent_1")
    a.store("x", 1)
    a.store("y", 2)
    shared_mem.synchronize_memories("a", "b", ["x"])
    assert b.keys() == ["x"]
    shared_mem.synchronize_memories("a", "b")
    assert sorted(b.keys()) == ["x", "y"]
    shared_mem.revoke_access("a", "agent_1")
    assert shared_mem.access_memory("a", "agent_1") is None


def test_memory_federation_usage() -> None:
    federation = MemoryFederation()

    # Add nodes with different replication factors
    federation.add_node("primary", Memory(capacity=10000), replication_factor=3)
    federation.add_node("backup1", Memory(capacity=5000), replication_factor=1)
    federation.add_node("backup2", Memory(capacity=5000), replication_factor=1)

    # Store with replication
    federation.federated_store(
        "critical_data", {"important": "information"}, primary_node="primary"
    )

    # Retrieve from federated memory
    data = federation.federated_retrieve("critical_data")

    assert data == {"important": "information"}
    # Replication factor 3 on the primary: all three nodes hold the key, under the same name (the spec's own
    # code stored replicas as "replica_critical_data"; we deliberately do not).
    for memory in federation.nodes.values():
        assert memory.retrieve("critical_data") == {"important": "information"}
        assert memory.keys() == ["critical_data"]
    federation.synchronize_federation()
    assert federation.federated_retrieve("critical_data") == {"important": "information"}
