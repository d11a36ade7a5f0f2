from __future__ import annotations

import asyncio
import time

import pytest

from agentmem_plugin import BufferTier, KeyNotFoundError, Memory, MemoryEntry

# -- basics ----------------------------------------------------------------------------------------


@pytest.fixture
def mem(clock) -> Memory:
    return Memory(capacity=100, clock=clock)


def test_store_retrieve_delete_exists(mem: Memory) -> None:
    assert mem.retrieve("k") is None
    assert not mem.exists("k")
    mem.store("k", {"a": 1})
    assert mem.retrieve("k") == {"a": 1}
    assert mem.exists("k")
    assert "k" in mem
    assert 5 not in mem
    assert len(mem) == 1
    assert mem.size == 1
    assert mem.keys() == ["k"]
    assert mem.delete("k") is True
    assert mem.delete("k") is False
    assert mem.retrieve("k") is None
    assert "k" not in mem
    assert len(mem) == 0


def test_keys_lists_every_live_key(mem: Memory) -> None:
    for i in range(10):
        mem.store(f"k{i}", i)
    assert sorted(mem.keys()) == sorted(f"k{i}" for i in range(10))
    assert len(mem) == 10


def test_clear(mem: Memory) -> None:
    mem.store("a", 1, tags=["t"])
    mem.store("b", 2)
    mem.clear()
    assert len(mem) == 0
    assert mem.keys() == []
    assert mem.search("t") == []
    mem.store("c", 3)
    assert mem.keys() == ["c"]


def test_ttl_expiry_invisible_everywhere(mem: Memory, clock) -> None:
    mem.store("short", "apple pie", ttl=10)
    mem.store("long", "apple tart", ttl=100)
    mem.store("forever", "apple juice")
    clock.advance(9.999)
    assert mem.retrieve("short") == "apple pie"
    assert len(mem) == 3
    clock.advance(0.001)  # exactly created_at + ttl
    assert mem.retrieve("short") is None
    assert not mem.exists("short")
    live_keys = mem.keys()
    assert "short" not in live_keys
    assert len(mem) == 2
    assert {h["key"] for h in mem.search("apple")} == {"long", "forever"}
    assert mem.retrieve_many(["short", "long"]) == [None, "apple tart"]
    with pytest.raises(KeyNotFoundError):
        mem.get_entry("short")
    assert mem.delete("short") is False


def test_expired_invisible_to_keys_len_search_without_prior_read(mem: Memory, clock) -> None:
    mem.store("a", "zebra", ttl=5)
    mem.store("b", "zebra")
    clock.advance(5)
    assert mem.keys() == ["b"]
    mem.store("c", "zebra", ttl=5)
    clock.advance(5)
    assert [h["key"] for h in mem.search("zebra")] == ["b"]
    mem.store("d", 1, ttl=1)
    clock.advance(1)
    assert len(mem) == 1


def test_cleanup_returns_count(mem: Memory, clock) -> None:
    for i in range(5):
        mem.store(f"t{i}", i, ttl=10 + i)
    mem.store("keep", 1)
    assert mem.cleanup() == 0
    clock.advance(12)
    assert mem.cleanup() == 3
    assert sorted(mem.keys()) == ["keep", "t3", "t4"]
    assert mem.cleanup() == 0
    clock.advance(100)
    assert mem.cleanup() == 2
    assert mem.keys() == ["keep"]


def test_default_ttl(clock) -> None:
    mem = Memory(capacity=10, default_ttl=30, clock=clock)
    mem.store("d", 1)
    mem.store("own", 2, ttl=100)
    assert mem.get_entry("d").expires_at == clock() + 30
    clock.advance(30)
    assert mem.retrieve("d") is None
    assert mem.retrieve("own") == 2
    assert mem.get_stats()["default_ttl"] == 30


def test_store_replaces_with_new_ttl(mem: Memory, clock) -> None:
    mem.store("k", "old", ttl=10)
    clock.advance(5)
    mem.store("k", "new", ttl=20)
    clock.advance(10)  # past the old expiry
    assert mem.retrieve("k") == "new"
    clock.advance(10)  # created at +5, ttl 20 -> expires at +25
    assert mem.retrieve("k") is None
    mem.store("p", 1, ttl=5)
    mem.store("p", 2)  # no ttl: never expires now
    clock.advance(1000)
    assert mem.retrieve("p") == 2
    assert len(mem) == 1


def test_store_replace_updates_priority_tags_metadata(mem: Memory) -> None:
    mem.store("k", 1, priority=3, tags=["a"], metadata={"m": 1})
    mem.store("k", 2, tags=["b"])
    e = mem.get_entry("k")
    assert (e.value, e.priority, e.tags, e.metadata) == (2, 0, ("b",), {})


# -- search ----------------------------------------------------------------------------------------


def test_search_returns_hits_best_first(mem: Memory) -> None:
    mem.store("a", "data processing data processing", tags=["work"], metadata={"src": "x"})
    mem.store("b", "data analysis of the weather")
    mem.store("c", "cooking recipes")
    hits = mem.search("data processing")
    assert [h["key"] for h in hits] == ["a", "b"]
    assert set(hits[0]) == {"key", "value", "score", "tags", "metadata"}
    assert hits[0]["value"] == "data processing data processing"
    assert hits[0]["tags"] == ["work"]
    assert hits[0]["metadata"] == {"src": "x"}
    assert hits[0]["score"] > hits[1]["score"] > 0


def test_search_limit(mem: Memory) -> None:
    for i in range(15):
        mem.store(f"k{i}", f"common word {i}")
    assert len(mem.search("common")) == 10
    assert len(mem.search("common", limit=3)) == 3
    assert len(mem.search("common", limit=50)) == 15


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "the and of"])
def test_search_empty_query(mem: Memory, query: str) -> None:
    mem.store("k", "the and of things")
    assert mem.search(query) == []


def test_tags_and_keys_are_searchable(mem: Memory) -> None:
    mem.store("x1", {"body": "nothing special"}, tags=["urgent"])
    mem.store("invoices:2024", "nothing special")
    assert [h["key"] for h in mem.search("urgent")] == ["x1"]
    assert [h["key"] for h in mem.search("invoice")] == ["invoices:2024"]
    assert [h["key"] for h in mem.search("body")] == ["x1"]  # dict keys too


def test_search_sees_updates_and_deletes(mem: Memory) -> None:
    mem.store("k", "apples")
    assert [h["key"] for h in mem.search("apple")] == ["k"]
    mem.store("k", "oranges")
    assert mem.search("apple") == []
    assert [h["key"] for h in mem.search("orange")] == ["k"]
    mem.delete("k")
    assert mem.search("orange") == []


def test_search_does_not_count_as_access(mem: Memory) -> None:
    mem.store("k", "apples")
    mem.search("apple")
    stats = mem.get_stats()
    assert stats["hits"] == 0
    assert mem.get_entry("k").access_count == 1


# -- values ----------------------------------------------------------------------------------------


def test_retrieve_returns_normalized_values(mem: Memory) -> None:
    mem.store("t", (1, 2, (3, 4)))
    assert mem.retrieve("t") == [1, 2, [3, 4]]
    mem.store("d", {"x": (1,)})
    assert mem.retrieve("d") == {"x": [1]}


def test_caller_mutation_after_store_does_not_leak(mem: Memory) -> None:
    original = {"list": [1, 2], "nested": {"a": "b"}}
    meta = {"m": [1]}
    mem.store("k", original, metadata=meta)
    original["list"].append(3)
    original["nested"]["a"] = "changed"
    original["new"] = True
    meta["m"].append(2)
    assert mem.retrieve("k") == {"list": [1, 2], "nested": {"a": "b"}}
    assert mem.get_entry("k").metadata == {"m": [1]}


def test_get_entry_returns_copy(mem: Memory, clock) -> None:
    mem.store("k", "v", ttl=60, priority=2, metadata={"m": 1}, tags=["t"])
    e = mem.get_entry("k")
    assert isinstance(e, MemoryEntry)
    assert (e.key, e.value, e.priority, e.tags, e.metadata) == ("k", "v", 2, ("t",), {"m": 1})
    assert e.expires_at == clock() + 60
    assert e.access_count == 1
    assert e.last_accessed == clock()
    e.metadata["m"] = 99
    e.value = "hacked"
    e.priority = 100
    e2 = mem.get_entry("k")
    assert (e2.value, e2.priority, e2.metadata) == ("v", 2, {"m": 1})
    assert e2.access_count == 2


def test_get_entry_missing_raises(mem: Memory) -> None:
    with pytest.raises(KeyNotFoundError, match="nope"):
        mem.get_entry("nope")
    with pytest.raises(KeyError):
        mem.get_entry("nope")


# -- update ----------------------------------------------------------------------------------------


def test_update_counter(mem: Memory) -> None:
    assert mem.update("n", lambda n: n + 1, default=0) == 1
    assert mem.update("n", lambda n: n + 1, default=0) == 2
    assert mem.update("n", lambda n: n * 10, default=0) == 20
    assert mem.retrieve("n") == 20


def test_update_keeps_ttl_priority_tags_metadata(mem: Memory, clock) -> None:
    mem.store("k", 1, ttl=10, priority=4, tags=["t"], metadata={"m": 1})
    expires = mem.get_entry("k").expires_at
    clock.advance(5)
    assert mem.update("k", lambda v: v + 1) == 2
    e = mem.get_entry("k")
    assert (e.value, e.priority, e.tags, e.metadata, e.expires_at) == (
        2,
        4,
        ("t",),
        {"m": 1},
        expires,
    )
    clock.advance(5)
    assert mem.retrieve("k") is None


def test_update_expired_starts_from_default(mem: Memory, clock) -> None:
    mem.store("k", 100, ttl=1)
    clock.advance(1)
    assert mem.update("k", lambda v: v + 1, default=0) == 1


def test_update_normalizes_and_errors_leave_value(mem: Memory) -> None:
    mem.store("k", [1])
    assert mem.update("k", lambda v: (*v, 2)) == [1, 2]
    assert mem.retrieve("k") == [1, 2]

    def boom(v: object) -> object:
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        mem.update("k", boom)
    assert mem.retrieve("k") == [1, 2]


def test_update_new_entry_gets_default_ttl(clock) -> None:
    mem = Memory(capacity=10, default_ttl=5, clock=clock)
    mem.update("n", lambda n: n + 1, default=0)
    clock.advance(5)
    assert mem.retrieve("n") is None


# -- batches ---------------------------------------------------------------------------------------


def test_store_many_with_dict(mem: Memory, clock) -> None:
    assert (
        mem.store_many({"a": 1, "b": [2]}, ttl=10, priority=2, tags=["x"], metadata={"m": 1}) == 2
    )
    assert mem.retrieve_many(["a", "b"]) == [1, [2]]
    e = mem.get_entry("b")
    assert (e.priority, e.tags, e.metadata, e.expires_at) == (2, ("x",), {"m": 1}, clock() + 10)


def test_store_many_with_pairs_and_generator(mem: Memory) -> None:
    assert mem.store_many([("a", 1), ("b", 2)]) == 2
    assert mem.store_many((f"g{i}", i) for i in range(3)) == 3
    assert sorted(mem.keys()) == ["a", "b", "g0", "g1", "g2"]
    assert mem.store_many([]) == 0
    assert mem.store_many([("dup", 1), ("dup", 2)]) == 2
    assert mem.retrieve("dup") == 2


def test_store_many_with_entries(mem: Memory, clock) -> None:
    e1 = MemoryEntry("e1", (1, 2), ttl=7, priority=3, tags=["t"], clock=clock)
    e2 = MemoryEntry("e2", "x", clock=clock)
    assert mem.store_many([e1, e2, ("p", 0)], ttl=100) == 3
    assert mem.retrieve_many(["e1", "e2", "p"]) == [[1, 2], "x", 0]
    got = mem.get_entry("e1")
    assert got.priority == 3
    assert got.expires_at == clock() + 7  # entries keep their own ttl
    assert e1.value == (1, 2)  # the caller's entry was copied, not normalized in place


def test_retrieve_many_order_and_missing(mem: Memory) -> None:
    mem.store_many({"a": 1, "b": 2, "c": 3})
    assert mem.retrieve_many(["c", "missing", "a", "b", "a"]) == [3, None, 1, 2, 1]
    assert mem.retrieve_many([]) == []


# -- stats -----------------------------------------------------------------------------------------


def test_get_stats(clock) -> None:
    mem = Memory(capacity=2, memory_type="long_term", clock=clock)
    s = mem.get_stats()
    assert s["size"] == 0
    assert s["capacity"] == 2
    assert s["hit_rate"] == 0.0
    assert s["memory_type"] == "long_term"
    mem.store("a", 1)
    mem.store("b", 2, ttl=5)
    mem.retrieve("a")
    mem.retrieve("a")
    mem.retrieve("zz")
    clock.advance(5)
    mem.store("c", 3)  # "b" expired, no eviction needed
    mem.store("d", 4)  # evicts "a"
    s = mem.get_stats()
    assert s["size"] == 2
    assert s["hits"] == 2
    assert s["misses"] == 1
    assert s["hit_rate"] == pytest.approx(2 / 3)
    assert s["evictions"] == 1
    assert s["expirations"] == 1
    assert s["memory_type"] == "long_term"
    assert s["capacity"] == 2


# -- capacity --------------------------------------------------------------------------------------


def test_capacity_evicts_lowest_priority_lru_first(clock) -> None:
    evicted: list[list[str]] = []
    mem = Memory(capacity=3, clock=clock, on_evict=lambda es: evicted.append([e.key for e in es]))
    mem.store("hi", 1, priority=5)
    mem.store("lo1", 1)
    mem.store("lo2", 1)
    mem.retrieve("lo1")  # lo2 is now the LRU of priority 0
    mem.store("lo3", 1)
    assert evicted == [["lo2"]]
    assert sorted(mem.keys()) == ["hi", "lo1", "lo3"]
    mem.exists("lo1")  # exists does not touch
    mem.store("lo4", 1)
    assert evicted[-1] == ["lo1"]
    assert len(mem) == 3
    assert mem.get_stats()["evictions"] == 2


def test_on_evict_receives_entries_not_expired_ones(clock) -> None:
    got: list[MemoryEntry] = []
    mem = Memory(capacity=2, clock=clock, on_evict=got.extend)
    mem.store("dying", "x", ttl=1)
    mem.store("old", {"v": 1}, tags=["t"])
    clock.advance(1)
    mem.store("new", 2)  # over capacity: the expired entry goes first, silently
    assert got == []
    assert sorted(mem.keys()) == ["new", "old"]
    mem.store("newer", 3)
    assert [e.key for e in got] == ["old"]
    assert got[0].value == {"v": 1}
    assert got[0].tags == ("t",)


def test_store_many_over_capacity_evicts_batch(clock) -> None:
    got: list[list[str]] = []
    mem = Memory(capacity=3, clock=clock, on_evict=lambda es: got.append([e.key for e in es]))
    mem.store("keep", 0, priority=1)
    mem.store_many({f"k{i}": i for i in range(5)})
    assert sorted(mem.keys()) == ["k3", "k4", "keep"]
    assert got == [["k0", "k1", "k2"]]


def test_priority_entry_survives_many_low_priority_writes(clock) -> None:
    mem = Memory(capacity=5, clock=clock)
    mem.store("vip", "important", priority=1)
    for i in range(500):
        mem.store(f"low{i}", i)
    assert mem.retrieve("vip") == "important"
    assert len(mem) == 5


def test_just_written_low_priority_can_be_the_victim(clock) -> None:
    mem = Memory(capacity=2, clock=clock)
    mem.store("a", 1, priority=2)
    mem.store("b", 1, priority=2)
    mem.store("c", 1, priority=0)
    assert sorted(mem.keys()) == ["a", "b"]


def _snapshot(mem: Memory) -> tuple[dict[str, object], int]:
    keys = sorted(mem.tier.keys())
    return ({k: mem.tier.get(k, touch=False).value for k in keys}, mem.get_stats()["size"])  # type: ignore[union-attr]


def test_on_evict_raising_undoes_the_write(clock) -> None:
    def refuse(entries: list[MemoryEntry]) -> None:
        raise RuntimeError("archive offline")

    mem = Memory(capacity=3, clock=clock, on_evict=refuse)
    mem.store_many({"a": 1, "b": {"x": 2}, "c": [3]})
    before = _snapshot(mem)
    with pytest.raises(RuntimeError, match="archive offline"):
        mem.store("d", 4)
    assert _snapshot(mem) == before
    with pytest.raises(RuntimeError):
        mem.store_many({"a": 9, "e": 5})
    assert _snapshot(mem) == before
    assert mem.retrieve("a") == 1
    mem.store("b", "replace")  # a plain replacement evicts nothing, so it succeeds
    assert mem.retrieve("b") == "replace"
    assert mem.get_stats()["evictions"] == 0


def test_on_evict_failure_keeps_eviction_order(clock) -> None:
    calls: list[list[str]] = []
    fail = [True]

    def flaky(entries: list[MemoryEntry]) -> None:
        calls.append([e.key for e in entries])
        if fail[0]:
            raise RuntimeError("once")

    mem = Memory(capacity=3, clock=clock, on_evict=flaky)
    mem.store("a", 1)
    mem.store("b", 2)
    mem.store("c", 3)
    with pytest.raises(RuntimeError):
        mem.store("d", 4)
    fail[0] = False
    mem.store("d", 4)  # the write was undone, so "a" is still the least recently used
    assert calls == [["a"], ["a"]]
    assert sorted(mem.keys()) == ["b", "c", "d"]


# -- async twins -----------------------------------------------------------------------------------


async def test_async_twins_match_sync(clock) -> None:
    sync = Memory(capacity=10, clock=clock)
    amem = Memory(capacity=10, clock=clock)

    sync.store("a", (1, 2), ttl=50, tags=["x"])
    await amem.astore("a", (1, 2), ttl=50, tags=["x"])
    assert sync.store_many({"b": "data processing", "c": "more data"}) == 2
    assert await amem.astore_many({"b": "data processing", "c": "more data"}) == 2

    assert await amem.aretrieve("a") == sync.retrieve("a") == [1, 2]
    assert await amem.aretrieve_many(["a", "zz", "c"]) == sync.retrieve_many(["a", "zz", "c"])
    assert await amem.asearch("data", 5) == sync.search("data", 5)
    assert await amem.aupdate("n", lambda n: n + 1, 0) == sync.update("n", lambda n: n + 1, 0) == 1
    assert await amem.aexists("b") is sync.exists("b") is True
    assert sorted(await amem.akeys()) == sorted(sync.keys())
    ae, se = await amem.aget_entry("a"), sync.get_entry("a")
    assert ae == se
    with pytest.raises(KeyNotFoundError):
        await amem.aget_entry("missing")
    with pytest.raises(KeyNotFoundError):
        sync.get_entry("missing")
    assert await amem.adelete("b") is sync.delete("b") is True
    assert await amem.adelete("b") is sync.delete("b") is False
    clock.advance(50)
    assert await amem.acleanup() == sync.cleanup() == 1
    astats, sstats = await amem.aget_stats(), sync.get_stats()
    assert astats == sstats
    await amem.aclear()
    sync.clear()
    assert await amem.akeys() == sync.keys() == []


async def test_async_errors_propagate(clock) -> None:
    from agentmem_plugin import InvalidKeyError, SerializationError

    mem = Memory(clock=clock)
    with pytest.raises(InvalidKeyError):
        await mem.astore("", 1)
    with pytest.raises(SerializationError):
        await mem.astore("k", object())
    assert await mem.akeys() == []


class SlowTier(BufferTier):
    def put(self, entry: MemoryEntry) -> None:
        time.sleep(0.3)  # a slow backend write (not a TTL wait)
        super().put(entry)


async def test_async_store_does_not_block_event_loop(clock) -> None:
    mem = Memory(tier=SlowTier(10, clock=clock))
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    start = ticks
    await mem.astore("k", "v")
    during = ticks - start
    stop.set()
    await task
    assert mem.retrieve("k") == "v"
    assert during >= 5, f"event loop was blocked: only {during} heartbeats during a 0.3 s write"
