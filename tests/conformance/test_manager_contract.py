"""The manager contract, written once and run over every tier set: in memory, a directory, Redis + PostgreSQL.

Every manager here has each tier wrapped in a :class:`~interleave.HookedTier`, inert until a test arms it: the
interleaving tests place a concurrent write exactly between a move's read and its write or delete, on every
tier set. For a tier set that shares one transaction (memory, directory) the concurrent writer is the same
manager in the same thread (another connection would wait for the move's transaction to end, which is the
point of it); on servers it is a second manager, as another process would be.

After each interleaving: the later write wins, the key is in exactly one tier, and (on durable sets) the same
holds after reopening.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance.interleave import HookedTier, hooked
from integration.backends import require_postgres, require_redis

from agentmem_plugin import MemoryManager
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.factory import build_tiers

KINDS = ["memory", "directory", "servers"]
_TIER_ARGS = {
    "short_term_limit",
    "storage_path",
    "archive",
    "short_term",
    "long_term",
    "namespace",
    "clock",
}


class Harness:
    """Opens managers of one tier set kind over one storage, each with hookable tiers."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.storage: dict[str, Any] = {}
        if kind == "directory":
            self.storage = {"storage_path": tmp / "store"}
        elif kind == "servers":
            self.storage = {
                "short_term": require_redis(),
                "long_term": require_postgres(),
                "archive": str(tmp / "archive"),
                "namespace": f"contract-{uuid.uuid4().hex[:12]}",
            }
        self.opened: list[MemoryManager] = []
        self.settings: dict[str, Any] = {}

    @property
    def durable(self) -> bool:
        return self.kind != "memory"

    @property
    def atomic(self) -> bool:
        return self.kind != "servers"

    def open(self, **settings: Any) -> MemoryManager:
        """A manager over this storage (*settings* are remembered for :meth:`reopen`)."""
        self.settings = settings
        args = {**self.storage, **settings}
        tier_args = {k: v for k, v in args.items() if k in _TIER_ARGS}
        manager_args = {
            k: v for k, v in args.items() if k not in _TIER_ARGS - {"clock", "namespace"}
        }
        manager_args.pop("short_term_limit", None)
        tiers = hooked(build_tiers(**tier_args))
        mm = MemoryManager(args.get("short_term_limit", 100), tiers=tiers, **manager_args)
        self.opened.append(mm)
        return mm

    def reopen(self) -> MemoryManager:
        return self.open(**self.settings)

    def writer(self, mm: MemoryManager) -> MemoryManager:
        """The "other writer": *mm* itself where the tiers share a transaction, else a second manager."""
        return mm if self.atomic else self.open(**self.settings)

    def close(self) -> None:
        for mm in self.opened[:1]:
            if self.kind == "servers":
                mm.clear_all()
        for mm in self.opened:
            mm.close()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path)
    try:
        yield h
    finally:
        h.close()


def hook(mm: MemoryManager, tier: str) -> HookedTier:
    wrapped = {"short": mm.short_tier, "long": mm.long_tier, "external": mm.external_tier}[tier]
    assert isinstance(wrapped, HookedTier)
    return wrapped


def holders(mm: MemoryManager, key: str) -> list[str]:
    """The tiers holding a live entry under *key* (read without counting or moving anything)."""
    return [
        name for name in ("short_term", "long_term", "external") if mm._tier(name).contains(key)
    ]


def settled(h: Harness, mm: MemoryManager, key: str, value: Any) -> None:
    """*key* holds *value* in exactly one tier, now and (for durable storage) after reopening."""
    assert len(holders(mm, key)) == 1, holders(mm, key)
    assert mm.get_many([key])[0].value == value  # type: ignore[union-attr]
    if h.durable:
        again = h.reopen()
        assert len(holders(again, key)) == 1, holders(again, key)
        assert again.retrieve(key) == value


# -- the plain contract ----------------------------------------------------------------------------------------


def test_overflow_promotion_and_archiving_lose_nothing(harness: Harness) -> None:
    mm = harness.open(short_term_limit=3, long_term_limit=4)
    for i in range(12):
        mm.store(f"k{i}", {"i": i}, priority=i % 3)
    assert (
        mm.short_tier.count() == 3 and mm.long_tier.count() == 4 and mm.external_tier.count() == 5
    )
    for i in range(12):
        assert mm.retrieve(f"k{i}") == {"i": i}
        assert len(holders(mm, f"k{i}")) == 1
    assert sorted(mm.keys(), key=lambda k: int(k[1:])) == [f"k{i}" for i in range(12)]


def test_storing_a_key_into_another_tier_moves_it(harness: Harness) -> None:
    mm = harness.open()
    mm.store("k", 1)
    for tier, value in (("long_term", 2), ("external", 3), ("short_term", 4), ("long_term", 5)):
        mm.store("k", value, memory_type=tier)
        assert holders(mm, "k") == [tier] and mm.get_many(["k"])[0].value == value  # type: ignore[union-attr]


def test_consolidate_reports_what_long_term_holds_afterwards(harness: Harness) -> None:
    mm = harness.open(batch_size=2)
    mm.store_many({f"k{i}": i for i in range(5)})
    assert mm.consolidate() == {"selected": 5, "moved": 5, "batches": 3, "failed": 0}
    assert mm.keys("short_term") == [] and sorted(mm.keys("long_term")) == [
        f"k{i}" for i in range(5)
    ]


def test_delete_removes_a_key_from_every_tier(harness: Harness) -> None:
    mm = harness.open()
    mm.store("a", 1)
    mm.store("b", 2, memory_type="long_term")
    mm.store("c", 3, memory_type="external")
    assert all(mm.delete(k) for k in "abc")
    assert mm.keys() == [] and not mm.delete("a")


def test_transaction_rolls_back_every_write_inside(harness: Harness) -> None:
    if harness.kind != "directory":
        pytest.skip(
            "only one SQLite database holding both tiers rolls back: a buffer or servers do not"
        )
    mm = harness.open()
    mm.store("kept", 1, memory_type="external")

    def failing_block() -> None:
        with mm.transaction():
            mm.store("a", 1)
            mm.store(
                "kept", 2, memory_type="long_term"
            )  # would end the archived copy, once committed
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_block()
    assert mm.keys("short_term") == [] and mm.keys("long_term") == []
    assert mm.retrieve("kept") == 1  # the archive's copy was never removed


# -- a concurrent write between a move's read and its write or delete: the later write wins ------------------------


def test_consolidation_keeps_a_write_made_after_its_scan(harness: Harness) -> None:
    mm = harness.open()
    other = harness.writer(mm)
    mm.store_many({"k": "v1", "j": "j1"})
    hook(mm, "short").after("scan", lambda: other.store("k", "v2"))
    report = mm.consolidate()
    assert report["selected"] == 2 and report["moved"] == 1  # j moved; k changed under the move
    settled(harness, mm, "k", "v2")
    assert holders(mm, "j") == ["long_term"]


def test_consolidation_takes_its_copy_back_when_the_source_changes_after_the_copy(
    harness: Harness,
) -> None:
    mm = harness.open()
    other = harness.writer(mm)
    mm.store("k", "v1")
    hook(mm, "long").after("put_if_newer", lambda: other.store("k", "v2"), key="k")
    assert mm.consolidate()["moved"] == 0
    settled(harness, mm, "k", "v2")
    assert holders(mm, "k") == ["short_term"]


def test_a_write_between_the_moves_check_and_its_copy_wins_and_the_copy_is_taken_back(
    harness: Harness,
) -> None:
    mm = harness.open()
    other = harness.writer(mm)
    mm.store("k", "v1")
    # between the move's check of the source and its write to the target, short-term gets a newer k; that
    # writer finds no older copy in long-term yet, so only the move can take its stale copy back
    hook(mm, "short").after("versions", lambda: other.store("k", "v2"), key="k")
    assert mm.consolidate()["moved"] == 0
    settled(harness, mm, "k", "v2")
    assert holders(mm, "k") == ["short_term"]


def test_a_copy_evicted_between_its_landing_and_the_sources_delete_returns_to_the_source(
    harness: Harness,
) -> None:
    if harness.atomic:
        pytest.skip(
            "inside one transaction spanning both tiers no write can land mid-move (an eviction's overflow "
            "waits for the transaction), so promotion skips this check there"
        )
    mm = harness.open(short_term_limit=2, cache_size=0)
    other = harness.writer(mm)
    mm.store("k", "v1", memory_type="long_term", priority=0)
    # promotion lands k in short-term; before long-term lets it go, two higher priorities evict it again
    hook(mm, "short").after(
        "versions", lambda: other.store_many({"a": 1, "b": 2}, priority=9), key="k"
    )
    assert mm.retrieve("k") == "v1"
    settled(harness, mm, "k", "v1")
    assert holders(mm, "k") == ["long_term"]


def test_promotion_keeps_a_long_term_write_made_after_the_read(harness: Harness) -> None:
    mm = harness.open(cache_size=0)
    other = harness.writer(mm)
    mm.store("k", "v1", memory_type="long_term")
    hook(mm, "long").after("get", lambda: other.store("k", "v2", memory_type="long_term"), key="k")
    assert mm.retrieve("k") == "v1"  # what was read, before the other write
    settled(harness, mm, "k", "v2")


def test_promotion_keeps_a_write_made_between_its_copy_and_its_delete(harness: Harness) -> None:
    mm = harness.open(cache_size=0)
    other = harness.writer(mm)
    mm.store("k", "v1", memory_type="long_term")
    hook(mm, "short").after(
        "put_if_newer", lambda: other.store("k", "v2", memory_type="long_term"), key="k"
    )
    mm.retrieve("k")
    settled(harness, mm, "k", "v2")


def test_promotion_into_a_full_short_term_that_evicts_the_copy_keeps_it_in_long_term(
    harness: Harness,
) -> None:
    mm = harness.open(short_term_limit=2, cache_size=0)
    mm.store_many({"a": 1, "b": 2}, priority=5)
    mm.store("low", "x", memory_type="long_term", priority=-1)
    assert mm.retrieve("low") == "x"  # promoted, then evicted at once (everything outranks it)
    assert holders(mm, "low") == ["long_term"] and holders(mm, "a") == ["short_term"]


def test_archiving_keeps_a_write_made_after_it_chose_its_victims(harness: Harness) -> None:
    mm = harness.open(long_term_limit=2)
    other = harness.writer(mm)
    mm.store("victim", "v1", memory_type="long_term", priority=-5)
    mm.store("a", 1, memory_type="long_term", priority=5)
    hook(mm, "long").after(
        "scan", lambda: other.store("victim", "v2", memory_type="long_term", priority=-5)
    )
    mm.store(
        "b", 2, memory_type="long_term", priority=5
    )  # above the limit: the lowest score is archived
    assert mm.get_many(["victim"])[0].value == "v2"  # type: ignore[union-attr]
    assert len(holders(mm, "victim")) == 1


def test_restore_from_the_archive_keeps_an_archive_write_made_after_the_read(
    harness: Harness,
) -> None:
    mm = harness.open(cache_size=0)
    other = harness.writer(mm)
    mm.store("k", "v1", memory_type="external")
    hook(mm, "external").after(
        "get", lambda: other.store("k", "v2", memory_type="external"), key="k"
    )
    assert mm.retrieve("k") == "v1"
    settled(harness, mm, "k", "v2")


def test_a_store_keeps_a_newer_write_to_another_tier_that_lands_before_it_ends(
    harness: Harness,
) -> None:
    mm = harness.open(cache_size=0)
    other = harness.writer(mm)
    mm.store("k", "v0", memory_type="external")
    hook(mm, "short").after(
        "put_many", lambda: other.store("k", "v2", memory_type="long_term"), key="k"
    )
    mm.store("k", "v1")  # older than v2, which landed while this store was removing older copies
    settled(harness, mm, "k", "v2")


def test_transfer_keeps_a_write_to_the_source_and_counts_what_the_target_holds(
    harness: Harness,
) -> None:
    mm = harness.open()
    src = HookedTier(BufferTier(10))
    mm.create_memory("src", {"tier": src})
    dst = mm.create_memory("dst", {"capacity": 2})
    src_memory = mm.get_memory("src")
    assert src_memory is not None
    src_memory.store_many({"a": 1, "b": 2, "k": "v1"})
    src.after("get_many", lambda: src_memory.store("k", "v2"))
    assert mm.transfer_memory("src", "dst", ["a", "b", "k"]) == 2
    assert src_memory.retrieve("k") == "v2" and dst.retrieve("k") is None
    assert sorted(dst.keys()) == ["a", "b"] and src_memory.keys() == ["k"]


def test_transfer_into_a_smaller_memory_reports_only_what_it_kept(harness: Harness) -> None:
    mm = harness.open()
    src = mm.create_memory("src", {"capacity": 10})
    dst = mm.create_memory("dst", {"capacity": 3})
    src.store_many({f"k{i}": i for i in range(6)})
    moved = mm.transfer_memory("src", "dst", [f"k{i}" for i in range(6)])
    assert moved == len(dst) == 3
    assert len(src) == 3 and set(src.keys()).isdisjoint(dst.keys())  # nothing lost, nothing in both


def test_transfer_of_a_memory_to_itself_moves_and_loses_nothing(harness: Harness) -> None:
    mm = harness.open()
    notes = mm.create_memory("notes", {"capacity": 10})
    notes.store_many({"a": 1, "b": 2})
    assert mm.transfer_memory("notes", "notes", ["a", "b"]) == 2
    assert sorted(notes.keys()) == ["a", "b"] and notes.retrieve("a") == 1


def test_the_read_cache_never_serves_a_value_another_writer_replaced(harness: Harness) -> None:
    mm = harness.open(cache_size=100)
    mm.store("k", "v1")
    assert mm.retrieve("k") == "v1"  # cached now (where a cache may be kept)
    if harness.kind == "directory":  # another process on the same directory
        other = MemoryManager(storage_path=harness.storage["storage_path"])
        harness.opened.append(other)
    else:
        other = harness.writer(mm)
    other.delete("k")
    assert mm.retrieve("k") is None
    other.store("k", "v3")
    assert mm.retrieve("k") == "v3"


def test_a_read_racing_a_write_does_not_cache_the_older_value(harness: Harness) -> None:
    mm = harness.open(cache_size=100)
    mm.store("k", "v1", memory_type="long_term")
    hook(mm, "long").after("get", lambda: mm.store("k", "v2", memory_type="long_term"), key="k")
    assert mm.retrieve("k") == "v1"
    assert mm.retrieve("k") == "v2"


# -- a write into the *third* tier mid-move (found by the four-thread Redis + PostgreSQL stress test) -------------
# A write to a tier the move neither reads nor writes removes the key's older copies from the other two. When
# that removal runs before the move's copy lands, only the move can notice: it settles its copy against the
# third tier once it landed. Another process is the only writer that can do this (inside one process the tier
# set's lock, or its shared transaction, orders the two), so these run on servers.

# move name: (how the key is stored first, the move's source and target, the third tier, what runs the move)
MOVES: dict[str, tuple[str, str, str, str]] = {
    "consolidation": ("short_term", "short", "long", "external"),
    "promotion": ("long_term", "long", "short", "external"),
    "restore": ("external", "external", "long", "short_term"),
    "archiving": ("long_term", "long", "external", "short_term"),
}


def _run_move(mm: MemoryManager, name: str) -> None:
    if name == "consolidation":
        mm.consolidate()
    elif name == "archiving":
        mm.store(
            "a", 1, memory_type="long_term", priority=5
        )  # above the limit: k (priority 0) is archived
    else:
        mm.retrieve("k")


@pytest.mark.parametrize("step", ["check", "copy", "delete"])
@pytest.mark.parametrize("name", list(MOVES))
def test_a_write_into_the_third_tier_mid_move_wins(harness: Harness, name: str, step: str) -> None:
    if harness.atomic:
        pytest.skip(
            "one transaction spans short- and long-term: a third-tier write's clean-up waits for it"
        )
    stored_as, source, target, third = MOVES[name]
    mm = harness.open(cache_size=0, long_term_limit=1)
    other = harness.writer(mm)
    mm.store("k", "v1", memory_type=stored_as)
    tier, method = {
        "check": (source, "versions"),  # between the move's check of the source and its copy
        "copy": (target, "put_if_newer"),  # between its copy and the source's delete
        "delete": (source, "delete_if"),  # after the source's delete, before the move's last checks
    }[step]
    hook(mm, tier).after(method, lambda: other.store("k", "v2", memory_type=third), key="k")
    _run_move(mm, name)
    assert hook(mm, tier).fired == [method]
    settled(harness, mm, "k", "v2")


def test_an_overflow_copy_is_settled_against_a_write_into_the_archive(tmp_path: Path) -> None:
    """Short-term in this process over PostgreSQL: the short-term of another process cannot see k."""
    storage = {
        "long_term": require_postgres(),
        "archive": str(tmp_path / "archive"),
        "namespace": f"contract-{uuid.uuid4().hex[:12]}",
    }
    mm = MemoryManager(1, tiers=hooked(build_tiers(short_term_limit=1, **storage)), cache_size=0)
    other = MemoryManager(1, tiers=build_tiers(short_term_limit=1, **storage), cache_size=0)
    try:
        assert not mm.tiers.atomic
        mm.store("k", "v1", priority=-5)
        # storing j evicts k into long-term; the other process's archive write of k lands (and finds no older
        # copy to remove) just before k's overflow copy reaches long-term
        hook(mm, "long").before(
            "put_if_newer", lambda: other.store("k", "v2", memory_type="external"), key="k"
        )
        mm.store("j", "x", priority=5)
        assert hook(mm, "long").fired == ["put_if_newer"]
        assert holders(mm, "k") == ["external"] and mm.retrieve("k") == "v2"
    finally:
        mm.clear_all()
        mm.close()
        other.close()


def test_threads_of_one_manager_on_servers_never_interleave_a_move_with_a_write(
    harness: Harness,
) -> None:
    if harness.atomic:
        pytest.skip("one transaction spans short- and long-term: writers already wait for a move")
    mm = harness.open(cache_size=0)
    mm.store("k", "v1", memory_type="long_term")
    done = threading.Event()

    def write() -> None:
        mm.store("k", "v2", memory_type="external")
        done.set()

    writer = threading.Thread(target=write)

    def mid_move() -> (
        None
    ):  # the promotion has copied k to short-term: the writer thread must wait for it
        writer.start()
        assert not done.wait(0.3)

    hook(mm, "short").after("put_if_newer", mid_move, key="k")
    assert mm.retrieve("k") == "v1"
    writer.join(timeout=30)
    assert done.is_set()
    settled(harness, mm, "k", "v2")


def test_a_delete_from_another_thread_waits_for_a_promotion_and_stays(harness: Harness) -> None:
    if harness.atomic:
        pytest.skip("one transaction spans short- and long-term: a delete already waits for a move")
    mm = harness.open(cache_size=0)
    mm.store("k", "v1", memory_type="long_term")
    deleter = threading.Thread(target=mm.delete, args=("k",))
    hook(mm, "long").after("versions", deleter.start, key="k")
    assert mm.retrieve("k") == "v1"
    deleter.join(timeout=30)
    assert holders(mm, "k") == [] and mm.retrieve("k") is None
