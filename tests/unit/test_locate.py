"""tiers.base.locate_in: where each key lives, asking tiers in read order (the manager and the semantic index)."""

from __future__ import annotations

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import locate_in
from agentmem_plugin.tiers.buffer import BufferTier


def test_the_first_tier_holding_a_key_wins_and_only_it_counts_the_read() -> None:
    short, long = BufferTier(), BufferTier()
    short.put(MemoryEntry("a", "short a"))
    long.put(MemoryEntry("a", "long a"))
    long.put(MemoryEntry("b", "long b"))
    found = locate_in([("short", short), ("long", long)], ["b", "a", "missing", "a"], touch=True)
    assert {k: (t, e.value) for k, (t, e) in found.items()} == {"a": ("short", "short a"), "b": ("long", "long b")}
    assert short.get("a", touch=False).access_count == 1  # asked twice, counted once
    assert long.get("a", touch=False).access_count == 0  # never asked of a later tier
    assert long.get("b", touch=False).access_count == 1
    untouched = locate_in([("short", short), ("long", long)], ["a", "b"])
    assert untouched["a"][1].access_count == 1 and untouched["b"][1].access_count == 1
