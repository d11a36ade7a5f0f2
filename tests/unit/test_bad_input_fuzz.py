"""Bad input, generally: every public call succeeds or raises an AgentMemError, and a refused call changes nothing.

Hypothesis drives the public methods of ``Memory`` (in memory and on disk), ``MemoryManager`` (in memory, on disk
and as a namespace view) and the adapters (``SharedMemory`` handles, ``WorkingMemory``, ``HierarchicalMemory``,
``MemoryFederation``, ``AgentMemory``) with one generated bad value
in one parameter at a time: wrong types, bools for ints, NaN/inf, ints beyond 64 bits, lone-surrogate strings, a
str where a list is expected, unknown config keys. A refused call must leave the store equal to a snapshot taken
before it (every tier's keys, and every entry's value, metadata, tags, priority and version).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem_plugin import (
    AgentMemory,
    HierarchicalMemory,
    Memory,
    MemoryEntry,
    MemoryFederation,
    MemoryManager,
    SharedMemory,
    WorkingMemory,
)
from agentmem_plugin.errors import AgentMemError

SURROGATE = os.fsdecode(b"caf\xe9")  # 'caf\udce9': a lone surrogate, not encodable as UTF-8

BAD: list[Any] = [
    None,
    True,
    False,
    0,
    -5,
    2**64,
    -(2**70),
    10**30,
    math.nan,
    math.inf,
    -math.inf,
    1.5,
    "",
    "10",
    "yesterday",
    SURROGATE,
    "a\x00b",
    b"bytes",
    ["k"],
    ("k", SURROGATE),
    {"k": 1},
    {SURROGATE: 1},
    {"capacty": 5},
    {1: "x"},
    object(),
    lambda v: v,
]

bad_values = st.sampled_from(BAD)

Call = Callable[[Any, Any], object]

# One parameter takes the bad value; the others are good.
MEMORY_CALLS: dict[str, Call] = {
    "store.key": lambda m, b: m.store(b, 1),
    "store.value": lambda m, b: m.store("k", b),
    "store.value-nested": lambda m, b: m.store("k", {"v": [b]}),
    "store.ttl": lambda m, b: m.store("k", 1, ttl=b),
    "store.priority": lambda m, b: m.store("k", 1, priority=b),
    "store.metadata": lambda m, b: m.store("k", 1, metadata=b),
    "store.metadata-value": lambda m, b: m.store("k", 1, metadata={"m": b}),
    "store.tags": lambda m, b: m.store("k", 1, tags=b),
    "store.tag": lambda m, b: m.store("k", 1, tags=["ok", b]),
    "retrieve": lambda m, b: m.retrieve(b),
    "get_entry": lambda m, b: m.get_entry(b),
    "delete": lambda m, b: m.delete(b),
    "exists": lambda m, b: m.exists(b),
    "retrieve_many": lambda m, b: m.retrieve_many(b),
    "retrieve_many.item": lambda m, b: m.retrieve_many(["a", b]),
    "search.query": lambda m, b: m.search(b),
    "search.limit": lambda m, b: m.search("alpha", limit=b),
    "search.mode": lambda m, b: m.search("alpha", mode=b),
    "update.key": lambda m, b: m.update(b, lambda v: 1, default=0),
    "update.result": lambda m, b: m.update("a", lambda v: b),
    "store_many.items": lambda m, b: m.store_many(b),
    "store_many.item": lambda m, b: m.store_many([("c", 1), (b, 2)]),
    "store_many.value": lambda m, b: m.store_many([("c", 1), ("d", b)]),
    "store_many.ttl": lambda m, b: m.store_many([("c", 1)], ttl=b),
    "store_many.priority": lambda m, b: m.store_many([("c", 1)], priority=b),
    "store_many.tags": lambda m, b: m.store_many([("c", 1)], tags=b),
    "store_many.entry": lambda m, b: m.store_many([MemoryEntry("c", b)]),
}

MANAGER_CALLS: dict[str, Call] = {
    **{
        name: call
        for name, call in MEMORY_CALLS.items()
        if not name.startswith(("update", "retrieve_many"))
    },
    "store.memory_type": lambda m, b: m.store("k", 1, memory_type=b),
    "store_many.memory_type": lambda m, b: m.store_many([("c", 1)], memory_type=b),
    "get_many": lambda m, b: m.get_many(b),
    "get_many.item": lambda m, b: m.get_many(["a", b]),
    "get_many.promote": lambda m, b: m.get_many(["a"], promote=b),
    "tier_of": lambda m, b: m.tier_of(b),
    "keys.memory_type": lambda m, b: m.keys(b),
    "search.memory_type-item": lambda m, b: m.search("alpha", memory_types=["short_term", b]),
    "search.filter": lambda m, b: m.search("alpha", filter=b),
    "search.filter-tags": lambda m, b: m.search("alpha", filter={"tags": b}),
    "with_namespace": lambda m, b: m.with_namespace(b),
    "namespaces.prefix": lambda m, b: m.namespaces(b),
    "consolidate.retries": lambda m, b: m.consolidate(retries=b),
    "create_memory.name": lambda m, b: m.create_memory(b, {"capacity": 5}),
    "create_memory.config": lambda m, b: m.create_memory("fuzz", b),
    "create_memory.config-value": lambda m, b: m.create_memory("fuzz", {"capacity": b}),
    "transfer_memory.keys": lambda m, b: m.transfer_memory("named", "named", b),
    "transfer_memory.source": lambda m, b: m.transfer_memory(b, "named", ["a"]),
}

MEMORY_ARGS = {
    "capacity",
    "memory_type",
    "persistence",
    "default_ttl",
    "keyword_weight",
    "context_weight",
    "context_radius",
    "reindex",
}
MANAGER_ARGS = {
    "short_term_limit",
    "long_term_limit",
    "enable_logging",
    "namespace",
    "cache_size",
    "consolidation_threshold",
    "consolidation_interval",
    "batch_size",
    "encrypt",
    "reindex",
}

# Found by this test (they raised TypeError/AttributeError), fixed with validate_memory_types, validate_key and
# the archive key's type check.
MANAGER_LOOKUPS: dict[str, Call] = {
    "search.memory_types": lambda m, b: m.search("alpha", memory_types=b),
    "get_memory": lambda m, b: m.get_memory(b),
    "constructor.archive_key": lambda m, b: MemoryManager(archive_key=b).close(),
}


@pytest.mark.parametrize("call", sorted(MANAGER_LOOKUPS))
def test_bad_input_to_lookups_and_the_archive_key(call: str) -> None:
    with MemoryManager() as mm:
        for bad in ([1], {"k": 1}, 5, True):
            _check(lambda b=bad: MANAGER_LOOKUPS[call](mm, b), mm, call, bad)


def _entries(tier: Any) -> dict[str, Any]:
    keys = sorted(tier.keys())
    return {
        e.key: (e.value, e.metadata, e.tags, e.priority, e.version, e.expires_at)
        for e in tier.get_many(keys, touch=False)
        if e is not None
    }


def snapshot(target: Any) -> Any:
    if isinstance(target, MemoryManager):
        tiers = target.tiers
        return tuple(_entries(t) for t in (tiers.short, tiers.long, tiers.external))
    if isinstance(target, Memory):
        return _entries(target.tier)
    if isinstance(target, WorkingMemory):
        return (_entries(target.short_term.tier), _entries(target.long_term.tier))
    if isinstance(target, HierarchicalMemory):
        return tuple(_entries(level.tier) for level in target.levels.values())
    if isinstance(target, MemoryFederation):
        return tuple(_entries(node.tier) for node in target.nodes.values())
    if isinstance(target, AgentMemory):
        return (snapshot(target.working_memory), _entries(target.long_term_memory.tier))
    raise AssertionError(target)


def _check(call: Callable[[], object], target: Any, what: str, bad: Any) -> None:
    before = snapshot(target)
    try:
        call()
    except AgentMemError:
        after = snapshot(target)
        assert after == before, f"{what}({bad!r}) was refused but changed the store"
    except Exception as exc:  # pragma: no cover - what this test exists to find
        pytest.fail(f"{what}({bad!r:.60}) raised {type(exc).__name__}, not an AgentMemError: {exc}")


def _fill(target: Any) -> None:
    target.store("a", {"v": 1}, tags=["alpha"])
    target.store("b", "alpha beta", priority=3)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module", params=["buffer", "sqlite"])
def memory(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Memory]:
    if request.param == "buffer":
        m = Memory(capacity=50)
    else:
        m = Memory(capacity=50, persistence=True, storage_path=workdir / "memory")
    _fill(m)
    yield m
    m.close()


@pytest.fixture(scope="module", params=["memory", "disk", "view"])
def manager(request: pytest.FixtureRequest, workdir: Path) -> Iterator[MemoryManager]:
    root = MemoryManager(
        short_term_limit=5,
        storage_path=None if request.param == "memory" else workdir / f"mm-{request.param}",
    )
    mm = root.with_namespace(("user", "fuzz")) if request.param == "view" else root
    _fill(mm)
    mm.store("deep", "alpha long", memory_type="long_term")
    mm.create_memory("named", {"capacity": 10}).store("a", 1)
    yield mm
    root.close()


@FUZZ
@given(call=st.sampled_from(sorted(MEMORY_CALLS)), bad=bad_values)
def test_memory_methods(memory: Memory, call: str, bad: Any) -> None:
    _check(lambda: MEMORY_CALLS[call](memory, bad), memory, call, bad)


@FUZZ
@given(call=st.sampled_from(sorted(MANAGER_CALLS)), bad=bad_values)
def test_manager_methods(manager: MemoryManager, call: str, bad: Any) -> None:
    _check(lambda: MANAGER_CALLS[call](manager, bad), manager, call, bad)
    named = manager.get_memory("fuzz")
    if named is not None:  # a create_memory that worked: make room for the next one
        named.close()
        manager._memories.pop("fuzz")


@FUZZ
@given(arg=st.sampled_from(sorted(MEMORY_ARGS)), bad=bad_values)
def test_memory_constructor(arg: str, bad: Any) -> None:
    try:
        Memory(**{arg: bad}).close()
    except AgentMemError:
        pass
    except Exception as exc:
        pytest.fail(f"Memory({arg}={bad!r:.60}) raised {type(exc).__name__}: {exc}")


@FUZZ
@given(arg=st.sampled_from(sorted(MANAGER_ARGS)), bad=bad_values)
def test_manager_constructor(arg: str, bad: Any) -> None:
    try:
        MemoryManager(**{arg: bad}).close()
    except AgentMemError:
        pass
    except Exception as exc:
        pytest.fail(f"MemoryManager({arg}={bad!r:.60}) raised {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    "kwargs",
    [{"cache_size": "256"}, {"consolidation_interval": -5}, {"short_term_limit": 2**70}],
)
def test_manager_constructor_examples_of_the_issue(kwargs: dict[str, Any]) -> None:
    ((name, bad),) = kwargs.items()
    with pytest.raises(AgentMemError, match=name) as info:
        MemoryManager(**kwargs)
    assert repr(bad)[:20] in str(info.value)


def test_memory_context_weight_nan_is_refused() -> None:
    with pytest.raises(AgentMemError, match="nan"):
        Memory(context_weight=math.nan)


SHARED_CALLS: dict[str, Call] = {
    "access_memory.memory": lambda s, b: s.access_memory(b, "w"),
    "access_memory.agent": lambda s, b: s.access_memory("team", b),
    "grant_access.agent": lambda s, b: s.grant_access("team", b),
    "grant_access.read_only": lambda s, b: s.grant_access("team", "x", read_only=b),
    "revoke_access.agent": lambda s, b: s.revoke_access("team", b),
    "permissions": lambda s, b: s.permissions(b),
    "audit_log": lambda s, b: s.audit_log(b),
    "create_shared_memory.name": lambda s, b: s.create_shared_memory(b, {}),
    "create_shared_memory.config": lambda s, b: s.create_shared_memory("other", b),
    "create_shared_memory.agents": lambda s, b: s.create_shared_memory("other2", {}, b),
    **{
        f"handle.{n}": (lambda s, b, c=c: c(s.access_memory("team", "w"), b))
        for n, c in MEMORY_CALLS.items()
    },
}


@FUZZ
@given(call=st.sampled_from(sorted(SHARED_CALLS)), bad=bad_values)
def test_shared_memory(call: str, bad: Any) -> None:
    shared = SharedMemory()
    team = shared.create_shared_memory("team", {"capacity": 20}, ["w"])
    _fill(team)
    _check(lambda: SHARED_CALLS[call](shared, bad), team, call, bad)


WORKING_CALLS: dict[str, Call] = {
    "store_context.key": lambda w, b: w.store_context(b, "v"),
    "store_context.value": lambda w, b: w.store_context("k", b),
    "store_context.importance": lambda w, b: w.store_context("k", "v", importance=b),
    "get_active_context.max_items": lambda w, b: w.get_active_context(max_items=b),
    "get_active_context.query": lambda w, b: w.get_active_context(query=b),
}


@pytest.fixture(scope="module")
def working() -> Iterator[WorkingMemory]:
    w = WorkingMemory()
    w.store_context("a", "alpha", importance=0.9)
    w.store_context("b", "beta", importance=0.1)
    yield w
    w.close()


@FUZZ
@given(call=st.sampled_from(sorted(WORKING_CALLS)), bad=bad_values)
def test_working_memory(working: WorkingMemory, call: str, bad: Any) -> None:
    _check(lambda: WORKING_CALLS[call](working, bad), working, call, bad)


@pytest.mark.parametrize("backend", ["buffer", "sqlite"])
@pytest.mark.parametrize("where", ["key", "value", "tag", "metadata-key", "metadata-value"])
def test_a_lone_surrogate_is_refused_on_every_backend(
    tmp_path: Path, backend: str, where: str
) -> None:
    """The buffer used to accept what SQLite refuses (and then serve it, or fail to save it)."""
    memory = (
        Memory() if backend == "buffer" else Memory(persistence=True, storage_path=tmp_path / "m")
    )
    with memory:
        _fill(memory)
        store: dict[str, Callable[[], object]] = {
            "key": lambda: memory.store(SURROGATE, 1),
            "value": lambda: memory.store("k", SURROGATE),
            "tag": lambda: memory.store("k", 1, tags=[SURROGATE]),
            "metadata-key": lambda: memory.store("k", 1, metadata={SURROGATE: 1}),
            "metadata-value": lambda: memory.store("k", 1, metadata={"m": SURROGATE}),
        }
        before = snapshot(memory)
        with pytest.raises(AgentMemError, match=r"caf|UTF-8"):
            store[where]()
        assert snapshot(memory) == before
        assert memory.retrieve("k") is None


HIERARCHICAL_CALLS: dict[str, Call] = {
    "store.key": lambda h, b: h.store(b, "v"),
    "store.value": lambda h, b: h.store("k", b),
    "store.level": lambda h, b: h.store("k", "v", level=b),
    "store.metadata": lambda h, b: h.store("k", "v", metadata=b),
    "retrieve.key": lambda h, b: h.retrieve(b),
    "validate.key": lambda h, b: h.validate(b),
    "level_of.key": lambda h, b: h.level_of(b),
    "get_item.key": lambda h, b: h.get_item(b),
}


@pytest.fixture(scope="module")
def hierarchical() -> Iterator[HierarchicalMemory]:
    h = HierarchicalMemory(levels={"immediate": 5, "recent": 5})
    h.store("a", "alpha")
    h.store("b", {"v": 1}, level="recent", metadata={"importance_score": 0.9})
    yield h
    h.close()


@FUZZ
@given(call=st.sampled_from(sorted(HIERARCHICAL_CALLS)), bad=bad_values)
def test_hierarchical_memory(hierarchical: HierarchicalMemory, call: str, bad: Any) -> None:
    _check(lambda: HIERARCHICAL_CALLS[call](hierarchical, bad), hierarchical, call, bad)


FEDERATION_CALLS: dict[str, Call] = {
    "federated_store.key": lambda f, b: f.federated_store(b, "v"),
    "federated_store.value": lambda f, b: f.federated_store("k", b),
    "federated_store.primary_node": lambda f, b: f.federated_store("k", "v", primary_node=b),
    "federated_store.ttl": lambda f, b: f.federated_store("k", "v", ttl=b),
    "federated_store.priority": lambda f, b: f.federated_store("k", "v", priority=b),
    "federated_store.tags": lambda f, b: f.federated_store("k", "v", tags=b),
    "federated_retrieve.key": lambda f, b: f.federated_retrieve(b),
    "federated_retrieve.preferred_nodes": lambda f, b: f.federated_retrieve("a", preferred_nodes=b),
    "node_of.key": lambda f, b: f.node_of(b),
    "replicas_of.key": lambda f, b: f.replicas_of(b),
    "replication_factor.name": lambda f, b: f.replication_factor(b),
    "add_node.name": lambda f, b: f.add_node(b, Memory()),
    "add_node.memory": lambda f, b: f.add_node("new", b),
    "add_node.replication_factor": lambda f, b: f.add_node("new", Memory(), replication_factor=b),
}


@FUZZ
@given(call=st.sampled_from(sorted(FEDERATION_CALLS)), bad=bad_values)
def test_memory_federation(call: str, bad: Any) -> None:
    federation = MemoryFederation()
    federation.add_node("n1", Memory(), replication_factor=2)
    federation.add_node("n2", Memory())
    federation.federated_store("a", "alpha")
    _check(lambda: FEDERATION_CALLS[call](federation, bad), federation, call, bad)


AGENT_CALLS: dict[str, Call] = {
    "remember.key": lambda a, b: a.remember(b, "v"),
    "remember.value": lambda a, b: a.remember("k", b),
    "remember.memory_type": lambda a, b: a.remember("k", "v", memory_type=b),
    "recall.key": lambda a, b: a.recall(b),
    "recall.memory_type": lambda a, b: a.recall("a", memory_type=b),
    "search_memories.query": lambda a, b: a.search_memories(b),
    "search_memories.limit": lambda a, b: a.search_memories("alpha", limit=b),
}


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentMemory]:
    a = AgentMemory("fuzz")
    a.remember("a", "alpha")
    yield a
    a.close()


@FUZZ
@given(call=st.sampled_from(sorted(AGENT_CALLS)), bad=bad_values)
def test_agent_memory(agent: AgentMemory, call: str, bad: Any) -> None:
    _check(lambda: AGENT_CALLS[call](agent, bad), agent, call, bad)

