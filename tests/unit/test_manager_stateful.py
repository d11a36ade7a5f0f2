"""A hypothesis state machine drives a MemoryManager with all three tiers and tiny limits against a dict model.

Every rule that moves entries (promotion on read, consolidation, overflow into long-term, archiving past
``long_term_limit``, restore from the archive, transfer between named memories) runs among stores and deletes;
after each step the manager holds exactly the model's keys and values, each key in exactly one tier.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from conftest import hypothesis_examples
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from agentmem_plugin import MemoryManager

KEYS = st.sampled_from([f"k{i}" for i in range(8)])
VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2))
TIERS = st.sampled_from(["short_term", "long_term", "external"])
NAMES = ("short_term", "long_term", "external")


class ManagerMachine(RuleBasedStateMachine):
    """The manager against ``{key: value}`` (what a user reads back), plus two named memories."""

    PERSISTENT = False

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, Any] = {}
        self.named: dict[str, dict[str, Any]] = {"a": {}, "b": {}}
        self.directory = (
            tempfile.mkdtemp(prefix="agentmem-manager-machine-") if self.PERSISTENT else None
        )
        self.mm = self._open()

    def _open(self) -> MemoryManager:
        return MemoryManager(
            short_term_limit=3,
            long_term_limit=3,
            storage_path=self.directory,
            cache_size=4,
            embedder=self.embedder(),
        )

    def embedder(self) -> Any:
        """None: these machines check moves, not search (see SearchCoverageMachine)."""
        return None

    @initialize()
    def named_memories(self) -> None:
        self.mm.create_memory("a", {"capacity": 4})
        self.mm.create_memory("b", {"capacity": 2})

    @rule(key=KEYS, value=VALUES, tier=TIERS, priority=st.integers(-1, 1))
    def store(self, key: str, value: Any, tier: str, priority: int) -> None:
        self.mm.store(key, value, memory_type=tier, priority=priority)
        self.model[key] = value

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=4), tier=TIERS)
    def store_many(self, items: dict[str, Any], tier: str) -> None:
        assert self.mm.store_many(items, memory_type=tier) == len(items)
        self.model.update(items)

    @rule(key=KEYS)
    def retrieve(self, key: str) -> None:
        assert self.mm.retrieve(key) == self.model.get(key)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        assert self.mm.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule()
    def consolidate(self) -> None:
        report = self.mm.consolidate()
        assert report["moved"] == report["selected"] and report["failed"] == 0

    @rule(keys=st.lists(KEYS, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        got = self.mm.get_many(keys)
        assert [None if e is None else e.value for e in got] == [self.model.get(k) for k in keys]

    @rule(key=KEYS, value=VALUES, name=st.sampled_from(["a", "b"]))
    def store_named(self, key: str, value: Any, name: str) -> None:
        memory = self.mm.get_memory(name)
        assert memory is not None
        memory.store(key, value)
        self.named[name][key] = value
        self._sync_named(name)

    @rule(
        source=st.sampled_from(["a", "b"]),
        dest=st.sampled_from(["a", "b"]),
        keys=st.lists(KEYS, max_size=3),
    )
    def transfer(self, source: str, dest: str, keys: list[str]) -> None:
        moved = self.mm.transfer_memory(source, dest, keys)
        wanted = [k for k in dict.fromkeys(keys) if k in self.named[source]]
        if source == dest:
            assert moved == len(wanted)  # nothing moves; all of them are "in the target" already
            return
        target = self.mm.get_memory(dest)
        assert target is not None
        landed = [k for k in wanted if target.exists(k)]
        assert moved == len(
            landed
        )  # what the target holds afterwards; the rest stays in the source
        for key in landed:
            self.named[dest][key] = self.named[source].pop(key)
        self._sync_named(dest)
        self._sync_named(source)

    def _sync_named(self, name: str) -> None:
        """A named memory is a bounded Memory: capacity may drop entries; the model follows what it kept."""
        memory = self.mm.get_memory(name)
        assert memory is not None
        held = set(memory.keys())
        assert held <= set(self.named[name])  # it never holds what the model says it should not
        self.named[name] = {k: v for k, v in self.named[name].items() if k in held}

    @rule()
    def reopen(self) -> None:
        if self.directory is None:
            return
        self.mm.close()
        self.mm = self._open()
        self.named = {"a": {}, "b": {}}  # named memories live in the process
        self.named_memories()

    @invariant()
    def holds_the_model_each_key_in_one_tier(self) -> None:
        where: dict[str, list[str]] = {}
        for name in NAMES:
            for key in self.mm.keys(name):
                where.setdefault(key, []).append(name)
        assert {k: len(v) for k, v in where.items()} == dict.fromkeys(self.model, 1)
        assert len(self.mm.keys("short_term")) <= 3 and len(self.mm.keys("long_term")) <= 3
        values = self.mm.get_many(list(self.model))
        assert [e.value for e in values if e is not None] == list(self.model.values())
        for name, model in self.named.items():
            memory = self.mm.get_memory(name)
            assert memory is not None
            assert {k: memory.retrieve(k) for k in memory.keys()} == model

    def teardown(self) -> None:
        self.mm.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def test_manager_in_memory_matches_the_model() -> None:
    run_state_machine_as_test(
        ManagerMachine,
        settings=settings(
            max_examples=hypothesis_examples(50, deep=150), stateful_step_count=40, deadline=None
        ),
    )


def test_manager_on_disk_matches_the_model_across_reopens() -> None:
    class OnDisk(ManagerMachine):
        PERSISTENT = True

    run_state_machine_as_test(
        OnDisk, settings=settings(max_examples=25, stateful_step_count=25, deadline=None)
    )


class SearchCoverageMachine(ManagerMachine):
    """Any sequence of stores, reads, deletes, consolidations and overflows keeps every live key findable.

    ``set(search(q, mode="semantic", limit=n_all))`` equals the set of live keys, whatever tier each sits in.
    The embedder is a FAKE (hash vectors): which keys are found, not how they rank, is checked.
    """

    def embedder(self) -> Any:
        from conftest import FakeHashEmbedder

        return FakeHashEmbedder()

    @invariant()
    def semantic_search_finds_every_live_key(self) -> None:
        n_all = max(1, len(self.model))
        found = [h["key"] for h in self.mm.search("anything at all", limit=n_all, mode="semantic")]
        assert len(found) == len(set(found))
        assert set(found) == set(self.model)
        hybrid = self.mm.search("anything at all", limit=n_all)
        assert {h["key"] for h in hybrid} == set(self.model)


def test_semantic_search_sees_every_live_key_whatever_its_tier() -> None:
    run_state_machine_as_test(
        SearchCoverageMachine,
        settings=settings(
            max_examples=hypothesis_examples(15, deep=40), stateful_step_count=25, deadline=None
        ),
    )


def test_semantic_search_sees_every_live_key_across_reopens() -> None:
    class OnDisk(SearchCoverageMachine):
        PERSISTENT = True

    run_state_machine_as_test(
        OnDisk,
        settings=settings(
            max_examples=hypothesis_examples(5, deep=10), stateful_step_count=20, deadline=None
        ),
    )
