"""A reference model of Memory's observable semantics, as a hypothesis state machine.

This is a plain module (no tests). :class:`MemoryModelMachine` drives a real ``Memory`` and a
plain-Python model side by side and checks that they agree. To run the same rules against another
backend, subclass it, override :meth:`~MemoryModelMachine.make_memory` (and
:meth:`~MemoryModelMachine.reopen` for a backend that can be closed and reopened), set
``clock_factory`` and run it with ``hypothesis.stateful.run_state_machine_as_test``.

Semantics reproduced by the model (the buffer tier's contract):

* store/replace marks the key most recently used; retrieving a live key marks it MRU;
  ``exists`` does not.
* An entry is expired when ``now >= created_at + ttl``; it is then invisible, and removed
  when touched.
* On a write that makes the number of held entries exceed the capacity, first every expired
  entry is removed, then, while still over capacity, the least recently used key among those
  of the lowest priority is evicted (this can be the key just written).
* ``keys()``/``len()`` remove expired entries (``KEYS_REAP_EXPIRED``), so ``cleanup()`` returns
  the number of entries that expired since the last such call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agentmem_plugin import Memory
from agentmem_plugin.entry import Clock

KEYS = st.sampled_from(list("abcdefgh"))
VALUES = st.integers(min_value=-1000, max_value=1000)
TTLS = st.none() | st.integers(min_value=1, max_value=10)
PRIORITIES = st.integers(min_value=0, max_value=2)
ADVANCES = st.integers(min_value=0, max_value=6) | st.sampled_from([0.5, 2.25])


@dataclass
class ModelEntry:
    value: Any
    priority: int
    last_use: int
    expires_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class MemoryModelMachine(RuleBasedStateMachine):
    """Memory(capacity=CAPACITY, clock=fake clock) against a dict-based model."""

    CAPACITY = 5
    START_TIME = 1_000_000.0
    KEYS_REAP_EXPIRED = True
    #: Whether reading an expired key (retrieve/exists/delete) removes it, as the buffer does. The SQLite
    #: tier keeps reads read-only: expired rows stay (invisible) until cleanup or a write needs the room.
    READS_REAP_EXPIRED = True
    #: Builds the fake clock: ``clock_factory(start)`` returns a callable with ``advance(seconds)``.
    clock_factory: Callable[[float], Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        factory = type(self).clock_factory
        if factory is None:
            raise RuntimeError("set clock_factory on the machine class before running it")
        self.clock = factory(self.START_TIME)
        self.memory = self.make_memory(self.clock)
        self.model: dict[
            str, ModelEntry
        ] = {}  # entries the memory still holds (live or not yet reaped)
        self.tick = 0

    # -- hooks for other backends ------------------------------------------------------------------

    def make_memory(self, clock: Clock) -> Memory:
        """Return the memory under test (override for another backend)."""
        return Memory(capacity=self.CAPACITY, clock=clock)

    def reopen(self) -> None:
        """Close and reopen ``self.memory`` (persistent backends); the default does nothing."""

    def teardown(self) -> None:
        self.memory.close()

    # -- model helpers -----------------------------------------------------------------------------

    def _now(self) -> float:
        return float(self.clock())

    def _next_tick(self) -> int:
        self.tick += 1
        return self.tick

    def _live(self) -> dict[str, ModelEntry]:
        now = self._now()
        return {k: e for k, e in self.model.items() if not e.expired(now)}

    def _reap_all(self) -> int:
        now = self._now()
        dead = [k for k, e in self.model.items() if e.expired(now)]
        for k in dead:
            del self.model[k]
        return len(dead)

    def _reap(self, key: str) -> ModelEntry | None:
        entry = self.model.get(key)
        if entry is not None and entry.expired(self._now()):
            if self.READS_REAP_EXPIRED:
                del self.model[key]
            return None
        return entry

    # -- rules -------------------------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES, ttl=TTLS, priority=PRIORITIES)
    def store(self, key: str, value: int, ttl: int | None, priority: int) -> None:
        self.memory.store(key, value, ttl=ttl, priority=priority)
        now = self._now()
        self.model.pop(key, None)
        self.model[key] = ModelEntry(
            value, priority, self._next_tick(), None if ttl is None else now + ttl
        )
        if len(self.model) > self.CAPACITY:
            self._reap_all()
            while len(self.model) > self.CAPACITY:
                victim = min(
                    self.model, key=lambda k: (self.model[k].priority, self.model[k].last_use)
                )
                del self.model[victim]

    @rule(key=KEYS)
    def retrieve(self, key: str) -> None:
        got = self.memory.retrieve(key)
        entry = self._reap(key)
        if entry is None:
            assert got is None, (key, got)
        else:
            assert got == entry.value, (key, got, entry.value)
            entry.last_use = self._next_tick()

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        removed = self.memory.delete(key)
        entry = self._reap(key)
        assert removed == (entry is not None), key
        self.model.pop(key, None)

    @rule(key=KEYS)
    def exists(self, key: str) -> None:
        assert self.memory.exists(key) == (self._reap(key) is not None), key

    @rule(seconds=ADVANCES)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def cleanup(self) -> None:
        assert self.memory.cleanup() == self._reap_all()

    @rule(seconds=ADVANCES)
    def advance_then_cleanup(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.cleanup()

    @rule()
    def keys(self) -> None:
        assert sorted(self.memory.keys()) == sorted(self._live())
        if self.KEYS_REAP_EXPIRED:
            self._reap_all()

    @rule()
    def do_reopen(self) -> None:
        self.reopen()

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def keys_match_model(self) -> None:
        live = self._live()
        assert sorted(self.memory.keys()) == sorted(live)
        assert len(self.memory) == len(live)
        if self.KEYS_REAP_EXPIRED:
            self._reap_all()

    @invariant()
    def within_capacity(self) -> None:
        assert len(self.memory) <= self.CAPACITY
