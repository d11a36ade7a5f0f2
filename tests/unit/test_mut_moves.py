"""moves.settle and move's step 6 (settling against the other tiers), from their docstrings.

A key lives in one tier: a copy a move wrote must not shadow a newer write that landed in a third tier, and the
third tier's older copy must not outlive the move. No test of the core suite reached these with an effect (the
contract tests that do need a server), so every mutant of ``settle`` survived (docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.moves import move, settle
from agentmem_plugin.tiers.buffer import BufferTier


def tier_with(*entries: MemoryEntry) -> BufferTier:
    tier = BufferTier(None)
    tier.put_many(list(entries))
    return tier


def at(key: str, version: int, value: object = None) -> MemoryEntry:
    return MemoryEntry(key, f"{key}@{version}" if value is None else value, version=version)


def held(tier: BufferTier) -> dict[str, int]:
    return tier.versions(tier.keys())


# -- settle -----------------------------------------------------------------------------------------------------


def test_settle_takes_back_a_copy_older_than_a_write_elsewhere() -> None:
    here, there = tier_with(at("k", 1)), tier_with(at("k", 2))
    assert settle({"k": 1}, here, [there]) == ["k"]
    assert held(here) == {} and held(there) == {"k": 2}


def test_settle_removes_older_copies_elsewhere_and_keeps_its_own() -> None:
    here, there = tier_with(at("k", 2)), tier_with(at("k", 1), at("other", 1))
    assert settle({"k": 2}, here, [there]) == []
    assert held(here) == {"k": 2}
    assert held(there) == {"other": 1}  # only the key settled, and only its older copy


def test_settle_leaves_the_same_version_in_both_tiers() -> None:
    # Two moves of one write into two tiers: neither may remove the other's copy (each would remove one, and
    # the write would be gone from both).
    here, there = tier_with(at("k", 3)), tier_with(at("k", 3))
    assert settle({"k": 3}, here, [there]) == []
    assert held(here) == {"k": 3} and held(there) == {"k": 3}


def test_settle_skips_its_own_tier_and_reads_every_other() -> None:
    here = tier_with(at("a", 1), at("b", 5))
    first, second = tier_with(at("a", 2)), tier_with(at("b", 4))
    assert settle({"a": 1, "b": 5}, here, [first, here, second]) == ["a"]
    assert held(here) == {"b": 5}
    assert held(first) == {"a": 2} and held(second) == {}


def test_settle_reports_several_keys_taken_back_in_order() -> None:
    here = tier_with(at("z", 1), at("m", 1), at("a", 1))
    there = tier_with(at("z", 2), at("m", 2), at("a", 2))
    assert settle({"z": 1, "m": 1, "a": 1}, here, [there]) == ["a", "m", "z"]
    assert held(here) == {}


def test_settle_takes_back_only_the_copy_it_landed() -> None:
    # A newer write replaced the copy in *tier* after it landed: that write is no copy, it stays.
    here, there = tier_with(at("k", 3)), tier_with(at("k", 2))
    assert settle({"k": 1}, here, [there]) == []
    assert held(here) == {"k": 3}
    assert held(there) == {"k": 2}  # newer than the copy settled, so it is not "older" either


def test_settle_with_nothing_landed_touches_nothing() -> None:
    here, there = tier_with(at("k", 1)), tier_with(at("k", 2))
    assert settle({}, here, [there]) == []
    assert held(here) == {"k": 1} and held(there) == {"k": 2}


# -- move with others (step 6) ---------------------------------------------------------------------------------


class WriteElsewhereFirst(BufferTier):
    """A target: right before the move's copies land, another writer stores newer versions in a third tier."""

    def __init__(self, third: BufferTier, writes: Sequence[MemoryEntry]) -> None:
        super().__init__(None)
        self.third, self.writes = third, list(writes)

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        self.third.put_many(self.writes)
        self.writes = []
        return super().put_if_newer(entries)


def test_a_write_into_a_third_tier_before_the_copy_lands_wins() -> None:
    source = tier_with(at("a", 1), at("b", 1))
    third = BufferTier(None)
    target = WriteElsewhereFirst(third, [at("a", 2)])
    result = move(source.scan(), source, target, others=[third])
    assert [e.key for e in result.moved] == ["b"]
    assert result.stale == ["a"]
    assert held(source) == {}
    assert held(target) == {"b": 1}
    assert held(third) == {"a": 2}  # the newer write is the only copy left


def test_a_move_removes_older_copies_from_the_third_tier() -> None:
    source = tier_with(at("a", 5))
    third = tier_with(at("a", 4))
    target = BufferTier(None)
    result = move(source.scan(), source, target, others=[third])
    assert [e.key for e in result.moved] == ["a"] and result.stale == []
    assert held(target) == {"a": 5} and held(third) == {} and held(source) == {}


def test_without_others_a_third_tier_is_not_read() -> None:
    source = tier_with(at("a", 1))
    third = BufferTier(None)
    target = WriteElsewhereFirst(third, [at("a", 2)])
    result = move(source.scan(), source, target)
    assert [e.key for e in result.moved] == ["a"]
    assert held(target) == {"a": 1} and held(third) == {"a": 2}


def test_replace_moves_between_memories_ignore_the_third_tier() -> None:
    # replace: two independent memories (transfer_memory); the target's key is replaced whatever the versions
    source = tier_with(at("a", 1))
    third = tier_with(at("a", 9))
    target = tier_with(at("a", 7))
    result = move(source.scan(), source, target, replace=True, others=[third])
    assert [e.key for e in result.moved] == ["a"]
    assert held(target) == {"a": 1} and held(third) == {"a": 9}


# -- writes landing mid-move (steps 3 to 5) ---------------------------------------------------------------------


class HookedSource(BufferTier):
    """A source that runs *before_delete* once, right before the move's compare-and-delete (step 3)."""

    def __init__(self, before_delete) -> None:  # type: ignore[no-untyped-def]
        super().__init__(None)
        self.before_delete = before_delete

    def delete_if(self, versions, *, older=False):  # type: ignore[no-untyped-def]
        hook, self.before_delete = self.before_delete, None
        if hook is not None:
            hook(self)
        return super().delete_if(versions, older=older)


def test_a_replace_move_takes_its_copy_back_when_the_source_was_rewritten_meanwhile() -> None:
    source = HookedSource(lambda s: s.put(at("b", 9)))
    source.put_many([at("a", 1), at("b", 1)])
    target = tier_with(at("b", 5))  # another memory's own b: replaced whatever its version
    result = move(source.scan(), source, target, replace=True)
    assert [e.key for e in result.moved] == ["a"]
    assert result.stale == ["b"]
    assert held(source) == {"b": 9}
    assert held(target) == {"a": 1}  # b's stale copy is taken back: the newer write is the only b


class RewrittenAfterWrite(BufferTier):
    """A target another writer rewrites right after the move's write (between steps 2 and 3)."""

    def __init__(self, rewrite: MemoryEntry) -> None:
        super().__init__(None)
        self.rewrite: MemoryEntry | None = rewrite

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        super().put_many(entries)
        if self.rewrite is not None:
            rewrite, self.rewrite = self.rewrite, None
            super().put_many([rewrite])


def test_a_replace_move_keeps_the_source_copy_when_the_target_holds_another_write() -> None:
    # replace: the target must hold exactly the copy; a newer write of its own is not the copy moved
    source = tier_with(at("a", 1))
    target = RewrittenAfterWrite(at("a", 8, "the target's own newer write"))
    result = move(source.scan(), source, target, replace=True)
    assert result.moved == [] and result.refused == ["a"]
    assert held(source) == {"a": 1}
    assert held(target) == {"a": 8}


def test_a_version_zero_key_deleted_meanwhile_keeps_its_moved_copy() -> None:
    # deleted from the source mid-move: there is no newer write to protect, so the copy stays in the target
    source = HookedSource(lambda s: s.delete_many(["old"]))
    source.put_many([at("old", 0)])
    target = BufferTier(None)
    result = move(source.scan(), source, target)
    assert result.stale == ["old"]
    assert held(target) == {"old": 0} and held(source) == {}


@pytest.mark.parametrize("version", [0, 7])
def test_a_copy_evicted_from_the_target_after_it_landed_returns_to_the_source(version: int) -> None:
    target = BufferTier(1)  # another write landing there after the copy evicts it (capacity 1)
    source = HookedSource(lambda s: target.put(at("intruder", 50)))
    source.put_many([at("k", version)])
    result = move(source.scan(), source, target)
    assert result.moved == [] and result.refused == ["k"]
    assert held(source) == {"k": version}  # the write is not lost
    assert held(target) == {"intruder": 50}


def test_refused_reports_copies_refused_at_once_and_copies_evicted_later() -> None:
    target = BufferTier(1)  # keeps one of the two copies, then loses it to another write
    source = HookedSource(lambda s: target.put(at("intruder", 50)))
    source.put_many([at("a", 1), at("b", 1)])
    result = move(source.scan(), source, target)
    assert result.moved == [] and sorted(result.refused) == ["a", "b"]
    assert held(source) == {"a": 1, "b": 1}


def test_a_copy_refused_at_once_is_not_settled_against_the_third_tier() -> None:
    source = tier_with(at("a", 1), at("b", 1))
    third = tier_with(at("b", 0))
    target = BufferTier(1)  # keeps the later copy, b; a is evicted at once and stays in the source
    result = move(source.scan(), source, target, others=[third])
    assert [e.key for e in result.moved] == ["b"] and result.refused == ["a"]
    assert held(source) == {"a": 1} and held(target) == {"b": 1}
    assert held(third) == {}  # b's older copy went: b's copy landed


def test_a_copy_evicted_from_the_target_and_returned_removes_an_older_copy_from_the_third_tier() -> None:
    # the copy returns to the source, which holds the key again: the third tier's older copy must not outlive it
    target = BufferTier(1)
    source = HookedSource(lambda s: target.put(at("intruder", 50)))
    source.put_many([at("k", 7)])
    third = tier_with(at("k", 3), at("other", 1))
    result = move(source.scan(), source, target, others=[third])
    assert result.moved == [] and result.refused == ["k"]
    assert held(source) == {"k": 7}
    assert held(third) == {"other": 1}


def test_a_copy_evicted_from_the_target_and_returned_yields_to_a_newer_write_in_the_third_tier() -> None:
    # a newer write of the key landed in the third tier: the returned copy must not shadow it from the source
    target = BufferTier(1)
    third = BufferTier(None)

    def meanwhile(source: BufferTier) -> None:
        third.put(at("k", 9, "newer"))
        target.put(at("intruder", 50))

    source = HookedSource(meanwhile)
    source.put_many([at("k", 7)])
    result = move(source.scan(), source, target, others=[third])
    assert result.moved == [] and result.refused == ["k"]
    assert held(source) == {}
    assert held(third) == {"k": 9}


def test_stale_lists_a_key_rewritten_in_the_source_and_one_taken_back_for_the_third_tier() -> None:
    # two reasons a moved copy is stale in one move: a write landed in the source meanwhile (a), a newer write of
    # the key is in the third tier (b); both are reported
    source = HookedSource(lambda s: s.put(at("a", 9)))
    source.put_many([at("a", 1), at("b", 1), at("c", 1)])
    third = tier_with(at("b", 5))
    target = BufferTier(None)
    result = move(source.scan(), source, target, others=[third])
    assert sorted(result.stale) == ["a", "b"]
    assert [e.key for e in result.moved] == ["c"]
    assert held(source) == {"a": 9}
    assert held(target) == {"c": 1}
    assert held(third) == {"b": 5}
