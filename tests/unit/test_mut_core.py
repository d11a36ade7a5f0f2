"""Behaviours the core suite did not reach (coverage gaps and surviving mutants, docs/testing.md).

* ``tiers.base.Tier``: the defaults a backend gets by implementing only the abstract primitives.
* ``tiers.sqlite.SqliteTier``: argument checks, rewrites that leave the keyword index as it was, the
  compute outcomes, eviction without a callback, rolled-back transactions.
* ``adapters.shared``: the handle's identity and the administrative checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from agentmem_plugin.adapters.shared import SharedMemory
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import (
    InvalidArgumentError,
    KeyNotFoundError,
    StorageError,
)
from agentmem_plugin.tiers.base import UNCHANGED, Tier, storage_errors
from agentmem_plugin.tiers.sqlite import SqliteTier

# -- a backend made of the abstract primitives alone ----------------------------------------------------------


class DictTier(Tier):
    """The smallest backend: a dict, with every optional method left to the base class."""

    name = "dict"

    def __init__(self, *, capacity: int | None = None, on_evict=None, clock=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(clock=clock)
        self._configure(capacity=capacity, on_evict=on_evict)
        self.data: dict[str, MemoryEntry] = {}

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        batch = self._normalized_batch(entries)
        with self._lock:
            live = {k: e for k, e in self.data.items() if not e.is_expired(self.clock())}
            for victim in self._capacity_victims(live, batch):
                self.data.pop(victim.key, None)
                batch.pop(victim.key, None)
            self.data.update({k: e.copy() for k, e in batch.items()})

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        now = self.clock()
        out = []
        for k in keys:
            e = self.data.get(k)
            out.append(None if e is None or e.is_expired(now) else e.copy())
        return out

    def delete_many(self, keys: Sequence[str]) -> int:
        return sum(self.data.pop(k, None) is not None for k in keys)

    def scan(self) -> list[MemoryEntry]:
        now = self.clock()
        return [e.copy() for e in self.data.values() if not e.is_expired(now)]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        return self._keyword_search_by_scan(query, limit)

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        return self._compute_by_parts(key, fn)

    def cleanup(self) -> list[str]:
        gone = [k for k, e in self.data.items() if e.is_expired(self.clock())]
        for k in gone:
            del self.data[k]
        return gone

    def count(self) -> int:
        return len(self.scan())

    def clear(self) -> None:
        self.data.clear()


def test_optional_capabilities_have_safe_defaults() -> None:
    tier = DictTier()
    assert tier.change_token() is None
    assert tier.namespaces() is None
    assert tier.archived_keys() == []
    assert tier.semantic_index() is None
    assert tier.in_transaction() is False
    with tier.transaction():
        tier.put(MemoryEntry("k", 1))
    assert tier.get("k").value == 1  # type: ignore[union-attr]
    for call in (
        tier.index_meta,
        lambda: tier.set_index_meta("model", 3),
        lambda: tier.changes(10),
        lambda: tier.ack_changes([]),
    ):
        with pytest.raises(NotImplementedError, match="the dict tier cannot feed a semantic index"):
            call()


def test_conveniences_are_built_from_the_primitives(clock) -> None:  # type: ignore[no-untyped-def]
    with DictTier(clock=clock) as tier:
        tier.put_many([MemoryEntry(k, k) for k in "abc"])
        tier.put(MemoryEntry("short", 1, ttl=5, clock=clock))
        assert len(tier) == 4 and tier.contains("a") and not tier.contains("zz")
        assert tier.delete("a") is True and tier.delete("a") is False
        clock.advance(10)
        assert sorted(tier.keys()) == ["b", "c"]
        assert tier.stats() == {
            "tier": "dict",
            "size": 2,
            "capacity": None,
            "hits": 0,
            "misses": 0,
            "writes": 0,
            "deletes": 0,
            "evictions": 0,
            "expirations": 0,
        }
        assert tier.neighbors(["c"], 1) == {"c": ["b"]}
        tier.put(MemoryEntry("d", "rare words here"))
        assert [e.key for e, _ in tier.keyword_search("rare")] == ["d"]


def test_default_compute_keeps_deletes_and_replaces() -> None:
    tier = DictTier()
    tier.put(MemoryEntry("k", 1))
    assert tier.compute("k", lambda e: UNCHANGED).value == 1  # type: ignore[arg-type,return-value,union-attr]
    assert tier.compute("k", lambda e: None) is None
    assert tier.data == {}
    assert tier.compute("k", lambda e: None) is None  # deleting nothing is no error
    made = tier.compute("k", lambda e: MemoryEntry("k", 0 if e is None else e.value + 1))
    assert made is not None and made.value == 0
    assert repr(UNCHANGED) == "UNCHANGED"


def test_default_put_if_newer_delete_if_and_versions() -> None:
    tier = DictTier()
    tier.put(MemoryEntry("k", "v5", version=5))
    written = tier.put_if_newer(
        [MemoryEntry("k", "v4", version=4), MemoryEntry("n", "new", version=1)]
    )
    assert [e.key for e in written] == ["n"]
    assert tier.get("k").value == "v5"  # type: ignore[union-attr]
    assert [e.key for e in tier.put_if_newer([MemoryEntry("k", "v6", version=6)])] == ["k"]
    assert tier.versions(["k", "n", "missing", "k"]) == {"k": 6, "n": 1}
    assert tier.delete_if({"k": 5}) == []  # holds 6, not 5
    assert tier.delete_if({"k": 6, "n": 1, "missing": 1}) == ["k", "n"]
    tier.put(MemoryEntry("o", 1, version=3))
    assert tier.delete_if({"o": 3}, older=True) == []  # not older than 3
    assert tier.delete_if({"o": 4}, older=True) == ["o"]


def test_capacity_victims_go_to_on_evict_lowest_priority_first() -> None:
    evicted: list[list[str]] = []
    tier = DictTier(capacity=2, on_evict=lambda es: evicted.append([e.key for e in es]))
    tier.put_many([MemoryEntry("keep", 1, priority=5), MemoryEntry("low", 2, priority=0)])
    tier.put(MemoryEntry("new", 3, priority=1))
    assert evicted == [["low"]]
    assert sorted(tier.keys()) == ["keep", "new"]
    tier.put(MemoryEntry("keep", 10, priority=5))  # a rewrite of a held key needs no room
    assert evicted == [["low"]]


def test_storage_errors_wraps_only_the_backend_library() -> None:
    class BackendFailure(Exception):
        __module__ = "fakebackend.client"

    with (
        pytest.raises(StorageError, match="fakedb failed while reading: boom"),
        storage_errors("fakedb", "reading", ("fakebackend",)),
    ):
        raise BackendFailure("boom")
    with pytest.raises(StorageError), storage_errors("fakedb", "reading", ("fakebackend",)):
        raise ConnectionResetError("reset")
    with (
        pytest.raises(KeyError),
        storage_errors("fakedb", "reading", ("fakebackend",)),
    ):  # someone else's error passes through
        raise KeyError("k")
    with (
        pytest.raises(InvalidArgumentError),
        storage_errors("fakedb", "reading", ("fakebackend",)),
    ):  # and so do ours
        raise InvalidArgumentError("bad")


# -- SQLite ---------------------------------------------------------------------------------------------------


def test_sqlite_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="synchronous"):
        SqliteTier(None, synchronous="OFF")
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidArgumentError, match="is not a file"):
        SqliteTier(tmp_path / "dir")


def test_sqlite_rewrite_with_the_same_text_keeps_the_scores(tmp_path: Path) -> None:
    tier = SqliteTier(tmp_path / "s.sqlite3")
    try:
        tier.put_many([MemoryEntry("a", "apple pie"), MemoryEntry("b", "apple tart crumble")])
        before = {e.key: s for e, s in tier.keyword_search("apple")}
        tier.put(MemoryEntry("a", "apple pie", priority=3))  # same text, other fields
        with tier.transaction():  # changed and changed back inside one transaction
            tier.put(MemoryEntry("b", "something else"))
            tier.put(MemoryEntry("b", "apple tart crumble"))
        assert {e.key: s for e, s in tier.keyword_search("apple")} == pytest.approx(before)
        tier.put(MemoryEntry("c", "the and of"))  # a document of stop words only: no terms
        assert [e.key for e, _ in tier.keyword_search("apple")] == list(before)
        assert tier.keyword_search("the") == []
    finally:
        tier.close()


def test_sqlite_compute_outcomes() -> None:
    tier = SqliteTier(None)
    try:
        assert tier.compute("k", lambda e: None) is None
        assert tier.count() == 0
        tier.put(MemoryEntry("k", 1))
        kept = tier.compute("k", lambda e: UNCHANGED)  # type: ignore[arg-type,return-value]
        assert kept is not None and kept.value == 1
        assert tier.compute("k", lambda e: None) is None
        assert tier.get("k") is None
    finally:
        tier.close()


def test_sqlite_evicts_for_capacity_without_a_callback() -> None:
    tier = SqliteTier(None, capacity=2)
    try:
        tier.put_many([MemoryEntry("hi", 1, priority=9), MemoryEntry("lo", 2)])
        tier.put(MemoryEntry("new", 3, priority=1))
        assert sorted(tier.keys()) == ["hi", "new"]
        assert tier.stats()["evictions"] == 1
    finally:
        tier.close()


def put_then_fail(tier: Tier, key: str) -> None:
    tier.put(MemoryEntry(key, 1))
    raise RuntimeError(f"abort after writing {key}")


def test_sqlite_transaction_rolls_back_on_error_nested_too() -> None:
    tier = SqliteTier(None)
    try:
        tier.put(MemoryEntry("kept", 1))
        with pytest.raises(RuntimeError), tier.transaction():
            put_then_fail(tier, "gone")
        assert tier.keys() == ["kept"]
        with tier.transaction():
            tier.put(MemoryEntry("outer", 1))
            with pytest.raises(RuntimeError), tier.transaction():
                put_then_fail(tier, "inner")
        assert sorted(tier.keys()) == ["kept", "outer"]
    finally:
        tier.close()


def test_sqlite_search_looks_past_expired_hits(clock) -> None:  # type: ignore[no-untyped-def]
    tier = SqliteTier(None, clock=clock)
    try:
        # the best matches expire; the search must still fill its limit from the live ones
        tier.put_many(
            [MemoryEntry(f"x{i}", "zebra zebra zebra", ttl=5, clock=clock) for i in range(6)]
            + [MemoryEntry(f"live{i}", f"zebra and a long tail of words {i}") for i in range(3)]
        )
        clock.advance(10)
        assert sorted(e.key for e, _ in tier.keyword_search("zebra", limit=2)) == [
            "live0",
            "live1",
        ]
        assert len(tier.keyword_search("zebra", limit=5)) == 3
    finally:
        tier.close()


# -- shared memory ------------------------------------------------------------------------------------------


def test_shared_handle_identity_and_checks() -> None:
    with pytest.raises(InvalidArgumentError, match="audit_size"):
        SharedMemory(audit_size=0)
    with pytest.raises(InvalidArgumentError, match="audit_size"):
        SharedMemory(audit_size=True)  # type: ignore[arg-type]
    shared = SharedMemory(audit_size=2)
    shared.create_shared_memory("a", {}, ["agent"])
    shared.create_shared_memory("b", {})
    handle = shared.access_memory("a", "agent")
    assert handle is not None
    assert (handle.memory_name, handle.agent_name) == ("a", "agent")
    assert repr(handle) == "SharedMemoryHandle(memory='a', agent='agent')"
    with pytest.raises(InvalidArgumentError, match="already exists"):
        shared.create_shared_memory("a", {})
    with pytest.raises(InvalidArgumentError, match="single str"):
        shared.synchronize_memories("a", "b", "k")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="itself"):
        shared.synchronize_memories("a", "a")
    with pytest.raises(KeyNotFoundError, match="known: 'a', 'b'"):
        shared.access_memory("c", "agent")
    assert len(shared.audit_log()) == 2  # bounded by audit_size


def test_concurrent_creation_of_one_name_makes_one_memory() -> None:
    shared = SharedMemory()
    errors: list[Exception] = []

    def create() -> None:
        try:
            shared.create_shared_memory("same", {"capacity": 5})
        except InvalidArgumentError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.memory_names == ["same"]
    assert len(errors) == 3


# -- public functions no core test reached ---------------------------------------------------------------------


def test_hybrid_ranking_fuses_then_spreads_to_stored_neighbours() -> None:
    from agentmem_plugin.search import hybrid_ranking

    # fuse (weight 0.5): b = 0.5 * 4/8 + 0.5 * 1 = 0.75, a = 0.5 * 1 = 0.5, c = 0.5 * 0 + 0.5 * 0 = 0
    keyword, dense = [("a", 8.0), ("b", 4.0)], [("b", 0.9), ("c", 0.5)]
    plain = hybrid_ranking(keyword, dense, limit=3, keyword_weight=0.5)
    assert plain == [("b", 0.75), ("a", 0.5), ("c", 0.0)]
    # stored order x, a, y, b (radius 1): x and y are a's neighbours, y is b's; c has none.
    # A neighbour gets weight * the best score beside it: y = 0.5 * 0.75, x = 0.5 * 0.5.
    asked: list[tuple[list[str], int]] = []

    def neighbors(keys: list[str], radius: int) -> dict[str, list[str]]:
        asked.append((sorted(keys), radius))
        return {"a": ["x", "y"], "b": ["y"], "c": []}

    ranked = hybrid_ranking(
        keyword,
        dense,
        limit=4,
        keyword_weight=0.5,
        context_weight=0.5,
        context_radius=1,
        neighbors=neighbors,
    )
    assert ranked == [("b", 0.75), ("a", 0.5), ("y", 0.375), ("x", 0.25)]
    assert asked == [(["a", "b", "c"], 1)]
    # no radius, no weight or no neighbour function: the plain fusion
    for off in ({"context_radius": 0}, {"context_weight": 0.0}, {"neighbors": None}):
        args = {"context_weight": 0.5, "context_radius": 1, "neighbors": neighbors, **off}
        assert hybrid_ranking(keyword, dense, limit=3, keyword_weight=0.5, **args) == plain  # type: ignore[arg-type]


def test_archive_change_token_follows_other_writers(tmp_path: Path) -> None:
    from agentmem_plugin.tiers.archive import ArchiveTier

    mine, other = (
        ArchiveTier(tmp_path / "a", encrypt=False),
        ArchiveTier(tmp_path / "a", encrypt=False),
    )
    before = mine.change_token()
    other.put(MemoryEntry("k", 1))
    after = mine.change_token()
    assert after != before
    assert mine.change_token() == after  # nothing written since
    assert mine.get("k").value == 1  # type: ignore[union-attr]
    assert ArchiveTier(store=_NoStamps(), encrypt=False).change_token() is None


class _NoStamps:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> None:
        self.blobs[name] = data

    def get(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def describe(self) -> str:
        return "memory"


def test_version_clock_reseed_keeps_versions_increasing() -> None:
    from agentmem_plugin.entry import next_version

    first = next_version()
    next_version.reseed()  # type: ignore[attr-defined]  (what a forked child runs)
    second, third = next_version(), next_version()
    assert first < second < third
    assert (second >> 10) > (first >> 10)  # the time part moved on, whatever node was drawn


def test_hybrid_ranking_defaults_and_how_many_neighbours_it_looks_up() -> None:
    from agentmem_plugin.search import hybrid_ranking

    keyword = [(f"k{i:02d}", float(100 - i)) for i in range(60)]
    asked: list[int] = []

    def neighbors(keys: list[str], radius: int) -> dict[str, list[str]]:
        asked.append(len(keys))
        return {keys[0]: ["beside"]}

    plain = hybrid_ranking(keyword, [], limit=3, keyword_weight=1.0)
    assert [k for k, _ in plain] == ["k00", "k01", "k02"]
    # contiguity is off unless both a weight and a radius are given
    assert (
        hybrid_ranking(
            keyword, [], limit=3, keyword_weight=1.0, context_radius=1, neighbors=neighbors
        )
        == plain
    )
    assert (
        hybrid_ranking(
            keyword, [], limit=3, keyword_weight=1.0, context_weight=0.5, neighbors=neighbors
        )
        == plain
    )
    assert asked == []
    # the best max(5 * limit, context_candidates) fused keys have their neighbours looked up
    args = {
        "keyword_weight": 1.0,
        "context_weight": 0.5,
        "context_radius": 1,
        "neighbors": neighbors,
    }
    hybrid_ranking(keyword, [], limit=1, **args)  # type: ignore[arg-type]
    hybrid_ranking(keyword, [], limit=11, **args)  # type: ignore[arg-type]
    hybrid_ranking(keyword, [], limit=1, context_candidates=7, **args)  # type: ignore[arg-type]
    assert asked == [50, 55, 7]
    ranked = hybrid_ranking(keyword, [], limit=2, **args)  # type: ignore[arg-type]
    assert ranked == [("k00", 1.0), ("k01", pytest.approx(99 / 100))]
    assert dict(hybrid_ranking(keyword, [], limit=61, **args))["beside"] == pytest.approx(0.5)  # type: ignore[arg-type]


# -- surviving mutants of the sampled run (docs/testing.md) -----------------------------------------------------


def test_audit_log_names_each_action_and_the_granted_mode() -> None:
    shared = SharedMemory()
    shared.create_shared_memory("m", {}, ["w"])
    handle = shared.access_memory("m", "w")
    assert handle is not None
    handle.store_many([("a", 1)])
    handle.cleanup()
    shared.grant_access("m", "r", read_only=True)
    shared.grant_access("m", "w2")
    records = shared.audit_log()
    assert [r.action for r in records] == [
        "create",
        "access",
        "store_many",
        "cleanup",
        "grant",
        "grant",
    ]
    assert [r.detail for r in records if r.action == "grant"] == ["read_only", "read_write"]


def test_neighbors_in_takes_radius_places_each_side() -> None:
    from agentmem_plugin.tiers.base import neighbors_in

    order = ["a", "b", "c", "d", "e"]
    assert neighbors_in(order, ["c"], 1) == {"c": ["b", "d"]}
    assert neighbors_in(order, ["c", "a", "e"], 2) == {
        "c": ["a", "b", "d", "e"],
        "a": ["b", "c"],
        "e": ["c", "d"],
    }
    assert neighbors_in(order, ["zz"], 1) == {}


def test_scan_based_keyword_search_indexes_the_tags() -> None:
    tier = DictTier()
    tier.put_many([MemoryEntry("a", "plain text", tags=["zebra"]), MemoryEntry("b", "other")])
    assert [e.key for e, _ in tier.keyword_search("zebra")] == ["a"]
    assert [e.key for e, _ in tier.keyword_search("a")] == []  # "a" is a stop word, not the key


def test_buffer_put_if_newer_compares_with_the_live_entry(clock) -> None:  # type: ignore[no-untyped-def]
    from agentmem_plugin.tiers.buffer import BufferTier

    tier = BufferTier(None, clock=clock)
    tier.put_many(
        [
            MemoryEntry("k", "v5", version=5),
            MemoryEntry("t", "expiring", version=9, ttl=1, clock=clock),
        ]
    )
    assert tier.put_if_newer([MemoryEntry("k", "v4", version=4)]) == []
    assert tier.get("k").value == "v5"  # type: ignore[union-attr]
    clock.advance(5)  # t expired: an older version may take its place
    assert [e.key for e in tier.put_if_newer([MemoryEntry("t", "again", version=2)])] == ["t"]
    assert tier.get("t").value == "again"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["sqlite", "archive", "buffer"])
def test_expirations_and_writes_are_counted(kind: str, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from agentmem_plugin.tiers.archive import ArchiveTier
    from agentmem_plugin.tiers.buffer import BufferTier

    tier: Tier = (
        SqliteTier(None, clock=clock)
        if kind == "sqlite"
        else ArchiveTier(tmp_path / "a", encrypt=False, clock=clock)
        if kind == "archive"
        else BufferTier(None, clock=clock)
    )
    try:
        tier.put_many([MemoryEntry(f"e{i}", i, ttl=1, clock=clock) for i in range(3)])
        clock.advance(5)
        assert sorted(tier.cleanup()) == ["e0", "e1", "e2"]
        tier.put(MemoryEntry("f", 0, ttl=1, clock=clock))
        clock.advance(5)
        tier.cleanup()
        assert tier.stats()["expirations"] == 4
        writes = tier.stats()["writes"]
        tier.compute("c", lambda e: MemoryEntry("c", 1))
        assert tier.stats()["writes"] == writes + 1
    finally:
        tier.close()


def test_sqlite_analytics(clock) -> None:  # type: ignore[no-untyped-def]
    tier = SqliteTier(None, clock=clock)
    try:
        assert tier.analytics() == {
            "total_items": 0,
            "average_access_count": 0.0,
            "max_access_count": 0,
            "tagged_items": 0,
        }
        tier.put_many(
            [
                MemoryEntry("a", 1, tags=["t"]),
                MemoryEntry("b", 2),
                MemoryEntry("gone", 3, ttl=1, clock=clock),
            ]
        )
        tier.get("a")
        tier.get("a")
        tier.get("gone")
        clock.advance(5)
        assert tier.analytics() == {
            "total_items": 2,
            "average_access_count": 1.0,
            "max_access_count": 2,
            "tagged_items": 1,
        }
    finally:
        tier.close()


def test_lru_preview_victims_agrees_with_what_eviction_would_do() -> None:
    from agentmem_plugin.policies import LRUEvictionPolicy

    lru = LRUEvictionPolicy(10)
    lru.add("mid", 3)
    lru.add("high", 9)
    # one new key of a higher priority than the lowest held: the lowest held goes, not the newcomer
    assert lru.preview_victims(1, [("new", 5)]) == ["mid"]
    assert lru.preview_victims(1, [("new", 1)]) == ["new"]
    # more than one victim for one new key
    assert lru.preview_victims(2, [("new", 5)]) == ["mid", "new"]
    # more victims asked than there are keys: every key, lowest priority first, the newcomer among them
    assert lru.preview_victims(5, [("new", 0)]) == ["new", "mid", "high"]
    assert len(lru) == 2  # nothing changed
    flat = LRUEvictionPolicy(10, priority_aware=False)
    flat.add("old", 9)
    assert flat.preview_victims(1, [("new", 0)]) == ["old"]


def test_buffer_capacity_counts_only_new_keys_and_hands_over_the_newcomer() -> None:
    from agentmem_plugin.tiers.buffer import BufferTier

    evicted: list[tuple[str, object]] = []
    tier = BufferTier(2, on_evict=lambda es: evicted.extend((e.key, e.value) for e in es))
    tier.put_many([MemoryEntry("a", 1, priority=9), MemoryEntry("b", 2, priority=9)])
    tier.put_many(
        [MemoryEntry("a", 10, priority=9), MemoryEntry("b", 20, priority=9)]
    )  # rewrites: no room needed
    assert evicted == [] and sorted(tier.keys()) == ["a", "b"]
    tier.put(
        MemoryEntry("low", "newcomer", priority=0)
    )  # lower than everything held: it is the victim
    assert evicted == [("low", "newcomer")]
    assert sorted(tier.keys()) == ["a", "b"]
    tier.put(MemoryEntry("c", 3, priority=9))  # the least recently used of the equals goes
    assert evicted[1:] == [("a", 10)]
    assert tier.stats()["evictions"] == 2
