"""Reads hand out copies: a caller that mutates what it read cannot change the store (issue 15, item 7).

A read-only agent of a SharedMemory is the sharp case: whatever it does to the values, entries and hits it
reads, the shared memory and what the audit log says about it (only reads) stay true.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentmem_plugin import Memory, MemoryEntry, MemoryManager, SharedMemory
from agentmem_plugin.tiers.base import UNCHANGED
from agentmem_plugin.tiers.buffer import BufferTier

DOC = {"name": "alice", "langs": ["en", "fr"], "nested": {"n": 1}}
META = {"source": "chat", "refs": [1, 2]}


def _vandalize(obj: Any) -> None:
    """Change every mutable part of *obj* in place (what a careless or hostile reader would do)."""
    if isinstance(obj, MemoryEntry):
        _vandalize(obj.value)
        _vandalize(obj.metadata)
        obj.metadata["evil"] = True
        obj.value = "replaced"
        obj.priority = 99
        obj.tags = ("evil",)
    elif isinstance(obj, dict):
        for v in list(obj.values()):
            _vandalize(v)
        obj["evil"] = True
    elif isinstance(obj, list):
        for v in list(obj):
            _vandalize(v)
        obj.append("evil")


def _fill(store: Callable[..., None]) -> None:
    store("doc", DOC, metadata=META, tags=["profile"])
    store("list", [1, [2, 3]], tags=["profile"])
    store("plain", "profile text")


def _snapshot(memory: Memory) -> dict[str, Any]:
    entries = memory.tier.get_many(sorted(memory.keys()), touch=False)
    return {
        e.key: (e.value, e.metadata, e.tags, e.priority, e.version)
        for e in entries
        if e is not None
    }


@pytest.fixture(params=["buffer", "sqlite"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Memory:
    if request.param == "buffer":
        m = Memory(capacity=100)
    else:
        m = Memory(capacity=100, persistence=True, storage_path=tmp_path / "store")
    _fill(m.store)
    return m


def _read_everything(reader: Any) -> None:
    """Read every way there is, and vandalize each result."""
    for key in ("doc", "list", "plain"):
        _vandalize(reader.retrieve(key))
        _vandalize(reader.get_entry(key))
    for value in reader.retrieve_many(["doc", "list", "plain"]):
        _vandalize(value)
    for h in reader.search("profile", 10):
        _vandalize(h["value"])
        _vandalize(h["metadata"])
        h["tags"].append("evil")


def test_memory_reads_are_copies(memory: Memory) -> None:
    before = _snapshot(memory)
    _read_everything(memory)
    assert _snapshot(memory) == before
    assert memory.retrieve("doc") == DOC
    assert memory.get_entry("doc").metadata == META


def test_read_only_agent_cannot_change_shared_data() -> None:
    shared = SharedMemory()
    owner = shared.create_shared_memory("team", {"capacity": 50}, ["writer"])
    shared.grant_access("team", "reader", read_only=True)
    writer = shared.access_memory("team", "writer")
    reader = shared.access_memory("team", "reader")
    assert writer is not None and reader is not None
    _fill(writer.store)
    before = _snapshot(owner)

    _read_everything(reader)

    assert _snapshot(owner) == before
    assert writer.retrieve("doc") == DOC
    # The audit log says the reader only read; with the store unchanged that is the truth.
    actions = {r.action for r in shared.audit_log("team", agent="reader")}
    assert actions <= {"grant", "access", "retrieve", "get_entry", "retrieve_many", "search"}
    assert all(r.allowed for r in shared.audit_log("team", agent="reader"))


def test_update_callback_that_mutates_then_fails_changes_nothing(memory: Memory) -> None:
    before = _snapshot(memory)

    def bad(value: Any) -> Any:
        value["name"] = "mallory"
        value["langs"].append("xx")
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        memory.update("doc", bad)
    assert _snapshot(memory) == before
    returned = memory.update("doc", lambda v: {**v, "n": 2})
    _vandalize(returned)
    assert memory.retrieve("doc") == {**DOC, "n": 2}


def test_buffer_tier_read_paths_are_copies() -> None:
    tier = BufferTier(capacity=10)
    tier.put(MemoryEntry("k", {"a": [1]}, metadata={"m": [1]}, tags=["t"]))
    mine = MemoryEntry("mine", {"b": [2]})
    tier.put_many([mine])
    _vandalize(mine)  # the caller's own entry, after it was stored
    reads = [
        tier.get("k"),
        *tier.get_many(["k", "mine"]),
        *tier.scan(),
        *(e for e, _ in tier.keyword_search("t", 5)),
        tier.compute("k", lambda e: e),
    ]
    for entry in reads:
        assert entry is not None
        _vandalize(entry)
    tier.compute("k", lambda e: _vandalize(e) or UNCHANGED)
    assert tier.get("k").value == {"a": [1]}  # type: ignore[union-attr]
    assert tier.get("k").metadata == {"m": [1]}  # type: ignore[union-attr]
    assert tier.get("mine").value == {"b": [2]}  # type: ignore[union-attr]


def test_evicted_entries_handed_to_on_evict_are_copies() -> None:
    def vandal(victims: list[MemoryEntry]) -> None:
        for v in victims:
            _vandalize(v)
        raise RuntimeError("refuse the eviction")

    tier = BufferTier(capacity=1, on_evict=vandal)
    tier.put(MemoryEntry("a", {"x": [1]}))
    with pytest.raises(RuntimeError):
        tier.put(MemoryEntry("b", 2))
    assert tier.get("a").value == {"x": [1]}  # type: ignore[union-attr]


def _manager_snapshot(mm: MemoryManager) -> dict[str, Any]:
    keys = sorted(mm.keys())
    return {
        e.key: (e.value, e.metadata)
        for e in mm.get_many(keys)
        if e is not None  # get_many moves nothing
    }


def _manager_reads(mm: MemoryManager) -> None:
    for key in ("doc", "list", "plain", "deep"):
        _vandalize(mm.retrieve(key))
        _vandalize(mm.get_entry(key))
    for entry in mm.get_many(["doc", "list", "deep"]):
        _vandalize(entry)
    for entry in mm.get_many(["doc", "deep"], promote=True):
        _vandalize(entry)
    for h in mm.search("profile", 10):
        _vandalize(h["value"])
        _vandalize(h["metadata"])


def _manager(cache_size: int) -> MemoryManager:
    mm = MemoryManager(short_term_limit=10, cache_size=cache_size)
    _fill(mm.store)
    mm.store("deep", {"k": ["v"]}, memory_type="long_term", tags=["profile"])
    return mm


def test_manager_reads_are_copies_without_cache() -> None:
    """Promotion included: an entry read from long-term and moved into the buffer is the buffer's own copy."""
    with _manager(cache_size=0) as mm:
        before = _manager_snapshot(mm)
        _manager_reads(mm)
        assert _manager_snapshot(mm) == before


def test_manager_reads_are_copies_with_cache() -> None:
    with _manager(cache_size=256) as mm:
        before = _manager_snapshot(mm)
        _manager_reads(mm)
        assert _manager_snapshot(mm) == before
        mm.get_entry("doc")  # fills the cache
        _vandalize(mm.get_entry("doc"))  # served by the cache
        assert mm.retrieve("doc") == DOC
