"""MemoryFederation: placement and replication, lost and failing nodes, read-repair, last-writer-wins sync."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from agentmem_plugin.adapters.federation import (
    FEDERATION_METADATA_KEY,
    MemoryFederation,
    version_of,
)
from agentmem_plugin.errors import InvalidArgumentError, StorageError
from agentmem_plugin.memory import Memory


def make(names: list[str], rf: int = 1, clock: Any = None) -> MemoryFederation:
    federation = MemoryFederation(clock=clock)
    for name in names:
        federation.add_node(name, Memory(capacity=None), replication_factor=rf)
    return federation


def holders(federation: MemoryFederation, key: str) -> set[str]:
    return {name for name, memory in federation.nodes.items() if memory.exists(key)}


def values(federation: MemoryFederation, key: str) -> dict[str, Any]:
    return {
        name: memory.retrieve(key)
        for name, memory in federation.nodes.items()
        if memory.exists(key)
    }


# -- membership and bad input --------------------------------------------------------------------------------


def test_bad_arguments_raise_invalid_argument_naming_them() -> None:
    federation = make(["a", "b"])
    for rf in (0, -1, True, 2.0, "2"):
        with pytest.raises(InvalidArgumentError, match="replication_factor"):
            federation.add_node("c", Memory(), replication_factor=rf)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="'a'"):
        federation.add_node("a", Memory())
    with pytest.raises(InvalidArgumentError, match="Memory"):
        federation.add_node("c", {})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="'ghost'"):
        federation.remove_node("ghost")
    with pytest.raises(InvalidArgumentError, match="'ghost'"):
        federation.federated_store("k", 1, primary_node="ghost")
    with pytest.raises(InvalidArgumentError, match="'ghost'"):
        federation.federated_retrieve("k", preferred_nodes=["a", "ghost"])
    with pytest.raises(InvalidArgumentError, match="no nodes"):
        MemoryFederation().federated_store("k", 1)
    assert list(federation.nodes) == ["a", "b"]
    assert all(len(m) == 0 for m in federation.nodes.values())


def test_bad_value_stores_nothing_anywhere() -> None:
    federation = make(["a", "b", "c"], rf=3)
    with pytest.raises(InvalidArgumentError):
        federation.federated_store("k", 1, ttl=-5)
    with pytest.raises(TypeError):
        federation.federated_store("k", object())
    assert holders(federation, "k") == set()


# -- placement -----------------------------------------------------------------------------------------------


def test_replication_factor_respected_and_keys_never_mangled() -> None:
    names = ["n1", "n2", "n3", "n4", "n5"]
    federation = make(names, rf=3)
    keys = [f"key-{i}" for i in range(60)]
    for key in keys:
        stored = federation.federated_store(key, {"k": key})
        assert stored == federation.replicas_of(key)
        assert len(stored) == 3
        assert holders(federation, key) == set(stored)
    every_key = set().union(*(set(m.keys()) for m in federation.nodes.values()))
    assert every_key == set(keys)  # the same key on replicas: no "replica_" names
    primaries = {federation.node_of(key) for key in keys}
    assert primaries == set(names)  # hashing spreads the primaries over the nodes
    assert all(federation.federated_retrieve(key) == {"k": key} for key in keys)


def test_explicit_primary_uses_its_replication_factor() -> None:
    federation = MemoryFederation()
    federation.add_node("primary", Memory(), replication_factor=3)
    federation.add_node("backup1", Memory(), replication_factor=1)
    federation.add_node("backup2", Memory(), replication_factor=1)
    assert sorted(federation.federated_store("big", 1, primary_node="primary")) == [
        "backup1",
        "backup2",
        "primary",
    ]
    assert federation.federated_store("small", 2, primary_node="backup2") == ["backup2"]
    assert holders(federation, "small") == {"backup2"}
    big = make(["x"], rf=5)
    assert big.federated_store("k", 1) == ["x"]  # capped at the number of nodes


def test_placement_is_deterministic_and_stable_under_membership_change() -> None:
    one = make(["a", "b", "c", "d"], rf=2)
    two = make(["d", "c", "b", "a"], rf=2)
    keys = [f"k{i}" for i in range(100)]
    assert [one.node_of(k) for k in keys] == [two.node_of(k) for k in keys]
    before = {k: one.node_of(k) for k in keys}
    one.remove_node("d")
    moved = [k for k in keys if one.node_of(k) != before[k]]
    assert moved == [k for k in keys if before[k] == "d"]  # only d's keys move


def test_version_and_user_metadata_are_kept_with_each_copy() -> None:
    federation = make(["a", "b"], rf=2)
    federation.federated_store("k", "v", metadata={"importance": 0.7}, tags=["t"], priority=3)
    for memory in federation.nodes.values():
        entry = memory.get_entry("k")
        assert entry.metadata["importance"] == 0.7
        assert entry.tags == ("t",) and entry.priority == 3
        assert FEDERATION_METADATA_KEY in entry.metadata
        assert version_of(entry) > (0.0, 0, "")


# -- lost and failing nodes ----------------------------------------------------------------------------------


def test_removed_node_data_is_still_served_and_re_replicated() -> None:
    federation = make(["a", "b", "c", "d"], rf=2)
    keys = [f"k{i}" for i in range(40)]
    for key in keys:
        federation.federated_store(key, key.upper())
    lost_keys = set(federation.nodes["b"].keys())
    assert lost_keys
    federation.remove_node("b")
    for key in keys:
        assert federation.federated_retrieve(key) == key.upper()
        # read-repair restored two copies on the remaining nodes, where placement now wants them
        assert holders(federation, key) == set(federation.replicas_of(key))


def test_cleared_node_is_read_repaired() -> None:
    federation = make(["a", "b", "c"], rf=3)
    federation.federated_store("k", "v")
    federation.nodes["a"].clear()
    assert federation.federated_retrieve("k", preferred_nodes=["a"]) == "v"
    assert federation.nodes["a"].retrieve("k") == "v"


def test_key_outside_its_owners_is_found_and_moved_to_them() -> None:
    federation = make(["a", "b", "c"], rf=1)
    owner = federation.node_of("k")
    other = next(n for n in federation.nodes if n != owner)
    federation.nodes[other].store("k", "stray")
    assert federation.federated_retrieve("k") == "stray"
    assert federation.nodes[owner].retrieve("k") == "stray"
    assert federation.federated_retrieve("missing") is None


def test_closed_node_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    federation = MemoryFederation()
    broken = Memory(persistence=True, storage_path=tmp_path / "broken")
    federation.add_node("broken", broken, replication_factor=2)
    federation.add_node("ok1", Memory(), replication_factor=2)
    federation.add_node("ok2", Memory(), replication_factor=2)
    federation.federated_store("k", "before", primary_node="broken")
    assert holders(federation, "k") >= {"broken"}
    broken.close()
    with caplog.at_level(logging.WARNING, logger="agentmem_plugin.adapters.federation"):
        assert federation.federated_retrieve("k") == "before"
        stored = federation.federated_store("k", "after", primary_node="broken")
        assert federation.federated_retrieve("k", preferred_nodes=["broken"]) == "after"
        report = federation.synchronize_federation()
    assert "broken" not in stored and len(stored) == 2  # the next nodes took the copies
    assert [federation.nodes[n].retrieve("k") for n in ("ok1", "ok2")] == ["after", "after"]
    assert report["failed"] >= 1
    assert any("'broken'" in r.getMessage() for r in caplog.records)


def test_all_nodes_failing_raises_storage_error(tmp_path: Path) -> None:
    federation = MemoryFederation()
    memory = Memory(persistence=True, storage_path=tmp_path / "only")
    federation.add_node("only", memory)
    memory.close()
    with pytest.raises(StorageError, match="'k'"):
        federation.federated_store("k", 1)


# -- versions: newer always wins -----------------------------------------------------------------------------


def test_partitioned_node_is_repaired_by_sync_and_never_wins(clock: Any) -> None:
    federation = make(["a", "b", "c"], rf=3, clock=clock)
    federation.federated_store("k", "v1")
    federation.federated_store("other", "x1")
    assert values(federation, "k") == {"a": "v1", "b": "v1", "c": "v1"}
    partitioned = federation.remove_node("c")  # c keeps its old data
    clock.advance(1)
    federation.federated_store("k", "v2")
    federation.add_node("c", partitioned, replication_factor=3)
    assert partitioned.retrieve("k") == "v1"  # stale
    report = federation.synchronize_federation()
    assert report == {"keys": 2, "copied": 0, "updated": 1, "failed": 0}
    assert values(federation, "k") == {"a": "v2", "b": "v2", "c": "v2"}
    assert federation.synchronize_federation() == {
        "keys": 2,
        "copied": 0,
        "updated": 0,
        "failed": 0,
    }


def test_stale_node_read_returns_newest_and_is_repaired(clock: Any) -> None:
    federation = make(["a", "b", "c"], rf=3, clock=clock)
    federation.federated_store("k", "v1")
    partitioned = federation.remove_node("a")
    federation.federated_store("k", "v2")  # same clock reading: the counter still orders the writes
    federation.add_node("a", partitioned, replication_factor=3)
    assert federation.federated_retrieve("k", preferred_nodes=["a"]) == "v2"
    assert values(federation, "k") == {"a": "v2", "b": "v2", "c": "v2"}


def test_stale_node_added_first_still_loses(clock: Any) -> None:
    # Order of nodes must not matter: the stale node is first in every listing.
    federation = make(["x", "y"], rf=2, clock=clock)
    federation.federated_store("k", "old")
    stale = federation.remove_node("x")
    fresh = federation.remove_node("y")
    restored = MemoryFederation(clock=clock)
    restored.add_node("x", stale, replication_factor=2)
    clock.advance(5)
    restored.add_node("y", fresh, replication_factor=2)
    restored.remove_node("x")
    restored.federated_store("k", "new")
    restored.add_node("x", stale, replication_factor=2)
    assert stale.retrieve("k") == "old"
    restored.synchronize_federation()
    assert values(restored, "k") == {"x": "new", "y": "new"}


def test_repair_never_overwrites_a_newer_value(clock: Any) -> None:
    federation = make(["a", "b"], rf=2, clock=clock)
    federation.federated_store("k", "v1")
    old = federation.nodes["a"].get_entry("k")
    clock.advance(1)
    federation.federated_store("k", "v2")
    # A late, stale replica arrives (e.g. a repair computed before v2 was written): it must be ignored.
    assert federation._write_if_newer("a", federation.nodes["a"], old) is False
    assert values(federation, "k") == {"a": "v2", "b": "v2"}
    # And a direct, unversioned write loses to any federated write at the next sync.
    federation.nodes["b"].store("k", "direct")
    federation.synchronize_federation()
    assert values(federation, "k") == {"a": "v2", "b": "v2"}


def test_versions_are_monotonic_even_when_the_clock_stands_still(clock: Any) -> None:
    federation = make(["a", "b"], rf=2, clock=clock)
    for i in range(20):
        federation.federated_store("k", i)
    assert values(federation, "k") == {"a": 19, "b": 19}


def test_sync_copies_unreplicated_entries_to_their_owners() -> None:
    federation = make(["a", "b", "c"], rf=2)
    federation.nodes["a"].store("direct", "d")  # written around the federation
    report = federation.synchronize_federation()
    owners = set(federation.replicas_of("direct"))
    assert holders(federation, "direct") == owners | {"a"}
    assert report["copied"] == len(owners - {"a"})
    assert federation.federated_retrieve("direct") == "d"


def test_a_node_that_refuses_an_older_write_is_not_reported_as_holding_it(clock: Any) -> None:
    """Regression: federated_store() listed a node that kept its newer version instead of the write."""
    shared = Memory()
    ahead = make(["n"], rf=1, clock=clock)
    ahead.remove_node("n")
    ahead.add_node("n", shared, replication_factor=1)
    clock.advance(10)
    ahead.federated_store("k", "newer")  # written with a later clock reading
    behind = MemoryFederation(clock=lambda: clock() - 10)  # a federation whose clock lags
    behind.add_node("n", shared, replication_factor=1)
    assert behind.federated_store("k", "older") == []  # the node kept its newer version
    assert shared.retrieve("k") == "newer"
