"""moves.move and moves.place, from the guarantees in their docstring: a move never loses a write.

"Verify transfer" (the spec's consolidation step): the source gives a key up only once the target is seen to
hold it, read back after the write. These tests use targets that do not keep what they were given.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.moves import move, place
from agentmem_plugin.tiers.buffer import BufferTier


class ForgetfulTier(BufferTier):
    """A target that acknowledges every write and keeps none (a silently failing backend)."""

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        return None

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        return list(entries)


def filled(*keys: str) -> BufferTier:
    tier = BufferTier(None)
    tier.put_many([MemoryEntry(k, k.upper()) for k in keys])
    return tier


def test_a_copy_the_target_did_not_keep_stays_in_the_source() -> None:
    source, target = filled("a", "b"), ForgetfulTier(None)
    result = move(source.scan(), source, target)
    assert result.moved == []
    assert sorted(result.refused) == ["a", "b"]
    assert sorted(source.keys()) == ["a", "b"]


@pytest.mark.parametrize("replace", [False, True])
def test_read_back_is_what_keeps_the_source_copy_inside_a_transaction(replace: bool) -> None:
    # read_inside=True (one transaction spans both tiers) skips the after-the-fact check for evicted copies,
    # so the read-back of the target is the only thing standing between a silent write failure and a loss.
    source, target = filled("a", "b"), ForgetfulTier(None)
    result = move(source.scan(), source, target, read_inside=True, replace=replace)
    assert result.moved == []
    assert sorted(result.refused) == ["a", "b"]
    assert sorted(source.keys()) == ["a", "b"]


def test_capacity_eviction_inside_a_transaction_keeps_the_evicted_copy() -> None:
    source, target = filled("a", "b", "c"), BufferTier(2)
    result = move(source.scan(), source, target, read_inside=True)
    assert len(result.moved) == 2
    assert sorted(source.keys() + target.keys()) == ["a", "b", "c"]
    assert source.keys() == result.refused


def test_replace_mode_is_verified_too() -> None:
    source, target = filled("a"), ForgetfulTier(None)
    result = move(source.scan(), source, target, replace=True)
    assert (result.moved, result.refused, source.keys()) == ([], ["a"], ["a"])


def test_a_copy_evicted_at_once_for_capacity_stays_in_the_source() -> None:
    # A target of capacity 1 keeps one of the two copies; the other must not vanish from both tiers.
    source, target = filled("a", "b"), BufferTier(1)
    result = move(source.scan(), source, target)
    assert len(result.moved) == 1 and len(result.refused) == 1
    (kept,) = target.keys()
    assert [e.key for e in result.moved] == [kept]
    assert source.keys() == result.refused
    assert sorted(source.keys() + target.keys()) == ["a", "b"]


def test_a_key_rewritten_since_it_was_read_stays_with_its_newer_version() -> None:
    source = filled("a", "b")
    read = source.scan()
    source.put_many([MemoryEntry("a", "newer", version=read[0].version + 5)])
    target = BufferTier(None)
    result = move(read, source, target)
    assert result.stale == ["a"]
    assert [e.key for e in result.moved] == ["b"]
    assert source.get_many(["a"])[0].value == "newer"  # type: ignore[union-attr]
    assert target.keys() == ["b"]


def test_a_newer_copy_in_the_target_is_not_replaced_and_the_source_copy_goes() -> None:
    source, target = filled("a"), BufferTier(None)
    held = source.scan()[0]
    target.put_many([MemoryEntry("a", "target's newer", version=held.version + 1)])
    result = move([held], source, target)
    assert [e.key for e in result.moved] == ["a"]
    assert source.keys() == []
    assert target.get_many(["a"])[0].value == "target's newer"  # type: ignore[union-attr]
    # with replace=True the target's own entry is replaced whatever its version
    source2, target2 = filled("a"), BufferTier(None)
    entry = source2.scan()[0]
    target2.put_many([MemoryEntry("a", "other memory", version=entry.version + 1)])
    result = move([entry], source2, target2, replace=True)
    assert [e.key for e in result.moved] == ["a"]
    assert target2.get_many(["a"])[0].value == "A"  # type: ignore[union-attr]


def test_moving_within_one_tier_reports_what_it_holds() -> None:
    tier = filled("a", "b")
    entries = tier.scan()
    tier.delete_many(["b"])
    result = move(entries, tier, tier)
    assert [e.key for e in result.moved] == ["a"]
    assert result.stale == ["b"]
    assert tier.keys() == ["a"]


def test_nothing_to_move() -> None:
    source, target = filled("a"), BufferTier(None)
    result = move([], source, target)
    assert (result.moved, result.stale, result.refused) == ([], [], [])
    assert source.keys() == ["a"]


def test_place_removes_only_older_copies_elsewhere() -> None:
    short, long, archive = BufferTier(None), BufferTier(None), BufferTier(None)
    long.put_many([MemoryEntry("old", 1, version=1)])
    archive.put_many([MemoryEntry("old", 1, version=1), MemoryEntry("newer", 2, version=100)])
    fresh = [MemoryEntry("old", "fresh", version=50), MemoryEntry("newer", "stale", version=50)]
    later: list[object] = []
    place(fresh, short, [long, short], outside=[archive], after=later.append)
    assert sorted(short.keys()) == ["newer", "old"]
    assert long.keys() == []
    assert sorted(archive.keys()) == ["newer", "old"]  # the outside tier waits for the commit
    for run in later:
        run()  # type: ignore[operator]
    assert archive.keys() == ["newer"]  # version 100 outranks the write of version 50
    place([MemoryEntry("x", 1, version=5)], short, [], outside=[archive])
    assert "x" in short.keys()


class RacingSource(BufferTier):
    """A source another writer changes right before the move's compare-and-delete (between steps 2 and 3)."""

    def __init__(self, *, rewrite: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        super().__init__(None)
        self.rewrite, self.remove = list(rewrite), list(remove)

    def delete_if(self, versions, *, older=False):  # type: ignore[no-untyped-def]
        if self.rewrite or self.remove:
            self.put_many([MemoryEntry(k, f"newer {k}") for k in self.rewrite])
            self.delete_many(self.remove)
            self.rewrite, self.remove = [], []
        return super().delete_if(versions, older=older)


def test_a_write_landing_mid_move_wins_and_its_stale_copy_is_taken_back() -> None:
    source = RacingSource(rewrite=["b"], remove=["c"])
    source.put_many([MemoryEntry(k, k.upper()) for k in "abcd"])
    read = source.scan()
    source.put_many([MemoryEntry("d", "rewritten before the move")])  # stale at step 1
    target = BufferTier(None)
    result = move(read, source, target)
    assert [e.key for e in result.moved] == ["a"]
    assert sorted(result.stale) == ["b", "c", "d"]  # step 1's and step 3's together
    # b: the newer write stays in the source, the copy is taken back from the target
    assert source.get_many(["b"])[0].value == "newer b"  # type: ignore[union-attr]
    assert "b" not in target.keys()
    # c was deleted meanwhile: nothing newer to protect, the copy is not taken back
    assert "c" not in source.keys()
    assert sorted(target.keys()) == ["a", "c"]


def test_a_version_zero_entry_is_moved_only_once_it_landed() -> None:
    # entries written before versions existed have version 0: "missing from the target" must not pass for it
    source = BufferTier(None)
    source.put_many([MemoryEntry("legacy", 1, version=0)])
    result = move(source.scan(), source, ForgetfulTier(None), read_inside=True)
    assert (result.moved, result.refused, source.keys()) == ([], ["legacy"], ["legacy"])
