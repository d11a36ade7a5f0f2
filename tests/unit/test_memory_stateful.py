from __future__ import annotations

import shutil
import tempfile

import pytest
from conftest import hypothesis_examples
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from memory_model import MemoryModelMachine

from agentmem_plugin import BufferTier, Memory
from agentmem_plugin.entry import Clock
from agentmem_plugin.policies import LRUEvictionPolicy

SETTINGS = settings(max_examples=200, stateful_step_count=50, deadline=None)


def test_buffer_memory_matches_model(clock_factory) -> None:
    class BufferMachine(MemoryModelMachine):
        pass

    BufferMachine.clock_factory = clock_factory
    run_state_machine_as_test(BufferMachine, settings=SETTINGS)


class _MRUPolicy(LRUEvictionPolicy):
    """A deliberately wrong policy: evicts from the wrong end (most recently used, highest priority)."""

    def select_victim(self) -> str | None:
        if not self._order:
            return None
        return next(reversed(self._buckets[self._order[0]]))

    def preview_victims(self, n: int, incoming=()) -> list[str]:
        full = super().preview_victims(len(self) + len(incoming), incoming)
        return full[-n:] if n > 0 else []


def test_persistent_memory_matches_model_with_reopen(clock_factory) -> None:
    """The same rules against Memory(persistence=True) on a real SQLite file, reopened at random."""

    class PersistentMachine(MemoryModelMachine):
        KEYS_REAP_EXPIRED = False
        READS_REAP_EXPIRED = False

        def make_memory(self, clock: Clock) -> Memory:
            if not hasattr(self, "directory"):
                self.directory = tempfile.mkdtemp(prefix="agentmem-stateful-")
            return Memory(
                capacity=self.CAPACITY, persistence=True, storage_path=self.directory, clock=clock
            )

        def reopen(self) -> None:
            self.memory.close()
            self.memory = self.make_memory(self.clock)

        def teardown(self) -> None:
            super().teardown()
            shutil.rmtree(self.directory, ignore_errors=True)

    PersistentMachine.clock_factory = clock_factory
    run_state_machine_as_test(
        PersistentMachine,
        settings=settings(
            max_examples=hypothesis_examples(25, deep=60), stateful_step_count=40, deadline=None
        ),
    )


def test_model_catches_a_wrong_eviction_order(clock_factory) -> None:
    """The machine is not vacuous: a memory with the wrong eviction order is caught."""

    class BrokenMachine(MemoryModelMachine):
        def make_memory(self, clock: Clock) -> Memory:
            tier = BufferTier(self.CAPACITY, clock=clock)
            tier._lru = _MRUPolicy(self.CAPACITY)
            return Memory(tier=tier)

    BrokenMachine.clock_factory = clock_factory
    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            BrokenMachine,
            settings=settings(SETTINGS, database=None, phases=[Phase.generate], print_blob=False),
        )
