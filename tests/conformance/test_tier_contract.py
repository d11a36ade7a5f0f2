"""The tier contract (agentmem_plugin/tiers/base.py), written once and run against every backend."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FakeHashEmbedder

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import SerializationError
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.jsonfile import JsonFileTier
from agentmem_plugin.tiers.sqlite import SqliteTier

TierFactory = Callable[..., Tier]

BACKENDS = [
    "buffer",
    "sqlite-memory",
    "sqlite-file",
    "jsonfile",
    "chroma-ephemeral",
    "chroma-persistent",
    "archive",
    "archive-encrypted",
    "redis",
    "postgres",
]

ARCHIVE_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def build_tier(
    kind: str, tmp_path: Path, n: int, *, chroma_port: int | None = None, **kwargs: object
) -> Tier:
    """Return a fresh tier of backend *kind* (the n-th one of a test, so files never collide).

    Chroma tiers embed with the FAKE hash embedder: the contract is about storage, not meaning.
    ``"chroma-http"`` talks to a ``chroma run`` server on 127.0.0.1:*chroma_port* (see test_chroma_server.py).
    """
    if kind == "buffer":
        kwargs.setdefault("capacity", None)
        return BufferTier(**kwargs)  # type: ignore[arg-type]
    if kind == "sqlite-memory":
        return SqliteTier(None, **kwargs)  # type: ignore[arg-type]
    if kind == "sqlite-file":
        return SqliteTier(tmp_path / f"store{n}.sqlite3", **kwargs)  # type: ignore[arg-type]
    if kind == "jsonfile":
        return JsonFileTier(tmp_path / f"store{n}.json", **kwargs)  # type: ignore[arg-type]
    if kind in ("archive", "archive-encrypted"):
        from agentmem_plugin.tiers.archive import ArchiveTier

        key = ARCHIVE_KEY if kind == "archive-encrypted" else None
        return ArchiveTier(tmp_path / f"archive{n}", key=key, encrypt=key is not None, **kwargs)  # type: ignore[arg-type]
    if kind in ("redis", "postgres"):
        # real servers (skipped when unreachable, see tests/integration/backends.py): a unique prefix or table
        # per tier, deleted when the tier is closed
        from integration.backends import DisposablePostgresTier, DisposableRedisTier

        if kind == "redis":
            return DisposableRedisTier(**kwargs)
        return DisposablePostgresTier(**kwargs)
    from agentmem_plugin.tiers.chroma import ChromaTier

    if kind == "chroma-ephemeral":
        return ChromaTier(FakeHashEmbedder(), **kwargs)  # type: ignore[arg-type]
    if kind == "chroma-persistent":
        return ChromaTier(FakeHashEmbedder(), path=tmp_path / f"chroma{n}", **kwargs)  # type: ignore[arg-type]
    if kind == "chroma-http":
        assert chroma_port is not None, "chroma-http needs a running server"
        # one server serves every test: a unique namespace gives each tier its own collection
        kwargs.setdefault("namespace", f"contract-{uuid.uuid4().hex}")
        return ChromaTier(FakeHashEmbedder(), host="127.0.0.1", port=chroma_port, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {kind!r}")


@pytest.fixture(params=BACKENDS)
def make_tier(request: pytest.FixtureRequest, tmp_path, clock) -> Iterator[TierFactory]:
    made: list[Tier] = []

    def factory(**kwargs: object) -> Tier:
        kwargs.setdefault("clock", clock)
        tier = build_tier(request.param, tmp_path, len(made), **kwargs)
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def entry(key: str, value: object = None, clock=None, **kw: object) -> MemoryEntry:
    return MemoryEntry(key, key.upper() if value is None else value, clock=clock, **kw)  # type: ignore[arg-type]


def test_put_get_roundtrip_keeps_every_field(make_tier, clock):
    tier = make_tier()
    e = entry(
        "k",
        {"a": [1, 2.5, "x", None, True]},
        clock,
        ttl=30,
        priority=3,
        metadata={"importance": 0.9, "source": "chat"},
        tags=["t1", "t2"],
    )
    tier.put(e)
    got = tier.get("k", touch=False)
    assert got is not None
    assert got.value == {"a": [1, 2.5, "x", None, True]}
    assert (got.ttl, got.priority, got.tags) == (30.0, 3, ("t1", "t2"))
    assert got.metadata == {"importance": 0.9, "source": "chat"}
    assert got.created_at == clock.now
    assert got.expires_at == clock.now + 30
    assert got.access_count == 0


def test_missing_key_is_none(make_tier):
    tier = make_tier()
    assert tier.get("nope") is None
    assert tier.get_many(["a", "b"]) == [None, None]
    assert not tier.contains("nope")


def test_put_replaces(make_tier, clock):
    tier = make_tier()
    tier.put(entry("k", 1, clock, tags=["old"]))
    tier.put(entry("k", 2, clock, tags=["new"]))
    got = tier.get("k")
    assert got is not None and got.value == 2 and got.tags == ("new",)
    assert tier.count() == 1


def test_put_many_later_duplicate_wins(make_tier, clock):
    tier = make_tier()
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock), entry("a", 3, clock)])
    assert [e.value if e else None for e in tier.get_many(["a", "b"])] == [3, 2]
    assert tier.count() == 2


def test_get_many_preserves_order(make_tier, clock):
    tier = make_tier()
    tier.put_many([entry(k, i, clock) for i, k in enumerate("abcde")])
    got = tier.get_many(["e", "x", "a", "c"])
    assert [g.value if g else None for g in got] == [4, None, 0, 2]


def test_touch_counts_reads(make_tier, clock):
    tier = make_tier()
    tier.put(entry("k", 1, clock))
    clock.advance(5)
    tier.get("k")
    clock.advance(5)
    got = tier.get("k")
    assert got is not None and got.access_count == 2 and got.last_accessed == clock.now
    untouched = tier.get("k", touch=False)
    assert untouched is not None and untouched.access_count == 2


def test_delete_many_counts_live_removals(make_tier, clock):
    tier = make_tier()
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock, ttl=1)])
    clock.advance(2)  # b expired
    assert tier.delete_many(["a", "b", "zz"]) == 1
    assert tier.count() == 0
    assert not tier.delete("a")


def test_expired_entries_are_invisible(make_tier, clock):
    tier = make_tier()
    tier.put_many(
        [
            entry("short", "x", clock, ttl=10),
            entry("long", "y", clock, ttl=100),
            entry("never", "z", clock),
        ]
    )
    clock.advance(9.999)
    assert tier.get("short") is not None
    clock.advance(0.001)  # exactly created_at + ttl: expired
    assert tier.get("short") is None
    assert not tier.contains("short")
    assert sorted(tier.keys()) == ["long", "never"]
    assert tier.count() == 2
    assert [e.key for e, _ in tier.keyword_search("SHORT")] == []


def test_cleanup_returns_expired_keys(make_tier, clock):
    tier = make_tier()
    tier.put_many(
        [entry(f"t{i}", i, clock, ttl=i + 1) for i in range(5)] + [entry("keep", 1, clock)]
    )
    clock.advance(3)
    assert sorted(tier.cleanup()) == ["t0", "t1", "t2"]
    assert tier.cleanup() == []
    assert sorted(tier.keys()) == ["keep", "t3", "t4"]


def test_scan_returns_live_snapshot(make_tier, clock):
    tier = make_tier()
    tier.put_many([entry(k, k, clock) for k in "xyz"])
    snapshot = tier.scan()
    tier.delete("x")
    assert sorted(e.key for e in snapshot) == ["x", "y", "z"]
    assert sorted(tier.keys()) == ["y", "z"]


def test_keyword_search_ranks_and_limits(make_tier, clock):
    tier = make_tier()
    tier.put_many(
        [
            entry("py", "Use descriptive variable names, follow PEP 8, write unit tests", clock),
            entry("js", "Minimize DOM manipulation, use event delegation, optimize loops", clock),
            entry(
                "tests",
                "unit tests and integration tests catch regressions in tests",
                clock,
                tags=["qa"],
            ),
            entry("cooking", "simmer the sauce slowly", clock),
        ]
    )
    hits = tier.keyword_search("unit tests", 10)
    keys = [e.key for e, _ in hits]
    assert keys[0] == "tests" and "py" in keys and "cooking" not in keys
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert len(tier.keyword_search("unit tests", 1)) == 1
    assert tier.keyword_search("", 10) == [] and tier.keyword_search("the of and", 10) == []
    assert [e.key for e, _ in tier.keyword_search("qa", 5)] == ["tests"]  # tags are searchable
    assert [e.key for e, _ in tier.keyword_search("optimizing", 5)] == ["js"]  # stemming


def test_keyword_search_follows_updates_and_deletes(make_tier, clock):
    tier = make_tier()
    tier.put(entry("k", "apples and pears", clock))
    assert [e.key for e, _ in tier.keyword_search("apples", 5)] == ["k"]
    tier.put(entry("k", "bananas", clock))
    assert tier.keyword_search("apples", 5) == []
    assert [e.key for e, _ in tier.keyword_search("bananas", 5)] == ["k"]
    tier.delete("k")
    assert tier.keyword_search("bananas", 5) == []


def test_compute_is_read_modify_write(make_tier, clock):
    tier = make_tier()
    seen: list[object] = []

    def bump(current: MemoryEntry | None) -> MemoryEntry:
        seen.append(None if current is None else current.value)
        if current is None:
            return entry("n", 1, clock)
        current.value += 1
        return current

    tier.compute("n", bump)
    tier.compute("n", bump)
    result = tier.compute("n", bump)
    assert seen == [None, 1, 2] and result is not None and result.value == 3
    assert tier.compute("n", lambda cur: None) is None
    assert tier.get("n") is None


def test_capacity_evicts_lowest_priority_lru_through_callback(make_tier, clock):
    evicted: list[str] = []
    tier = make_tier(capacity=3, on_evict=lambda es: evicted.extend(e.key for e in es))
    tier.put(entry("vip", 1, clock, priority=5))
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock)])
    clock.advance(1)
    tier.get("a")  # b is now the least recently used priority-0 entry
    clock.advance(1)
    tier.put(entry("c", 3, clock))
    assert evicted == ["b"]
    assert sorted(tier.keys()) == ["a", "c", "vip"]
    assert tier.count() == 3


def test_capacity_drops_expired_before_evicting(make_tier, clock):
    evicted: list[str] = []
    tier = make_tier(capacity=2, on_evict=lambda es: evicted.extend(e.key for e in es))
    tier.put_many([entry("old", 1, clock, ttl=1), entry("a", 2, clock)])
    clock.advance(5)
    tier.put(entry("b", 3, clock))
    assert evicted == []  # the expired entry made room; expired entries never reach on_evict
    assert sorted(tier.keys()) == ["a", "b"]


def test_failing_eviction_callback_rolls_back_the_write(make_tier, clock):
    def refuse(entries: list[MemoryEntry]) -> None:
        raise RuntimeError("long-term store is down")

    tier = make_tier(capacity=2, on_evict=refuse)
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock)])
    with pytest.raises(RuntimeError, match="long-term store is down"):
        tier.put_many([entry("b", 20, clock), entry("c", 3, clock)])
    assert sorted(tier.keys()) == ["a", "b"]
    got = tier.get("b")
    assert got is not None and got.value == 2


def test_unserializable_value_changes_nothing(make_tier, clock):
    tier = make_tier()
    tier.put(entry("k", "old", clock))
    with pytest.raises(SerializationError, match="'k'"):
        tier.put_many([entry("j", 1, clock), entry("k", {1, 2}, clock)])
    assert tier.get("j") is None
    got = tier.get("k")
    assert got is not None and got.value == "old"


def test_large_values_roundtrip(make_tier, clock):
    tier = make_tier()
    big = {"rows": [{"i": i, "text": "lorem ipsum " * 5} for i in range(2000)]}
    tier.put(entry("big", big, clock))
    got = tier.get("big")
    assert got is not None and got.value == big


def test_clear_and_stats(make_tier, clock):
    tier = make_tier()
    tier.put_many([entry(k, 1, clock) for k in "abc"])
    tier.get("a")
    tier.get("zz")
    stats = tier.stats()
    assert (
        stats["size"] == 3 and stats["hits"] == 1 and stats["misses"] == 1 and stats["writes"] == 3
    )
    tier.clear()
    assert tier.count() == 0 and tier.keys() == []


def test_concurrent_puts_and_computes_lose_nothing(make_tier, clock):
    tier = make_tier()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                tier.put(entry(f"w{n}-{i}", i, clock))
                tier.compute(
                    "counter",
                    lambda cur: (
                        entry("counter", 1, clock)
                        if cur is None
                        else MemoryEntry("counter", cur.value + 1, clock=clock)
                    ),
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counter = tier.get("counter")
    assert counter is not None and counter.value == 200
    assert tier.count() == 201


def test_neighbors_are_live_keys_in_insertion_order_and_an_expired_key_has_none(make_tier, clock):
    """``Tier.neighbors`` promises neighbours "for each live key": an expired key gets no entry, and an expired
    key is skipped as a neighbour (the archive reads its key index alone and may list an expired neighbour,
    as its docstring says, so only the first half is asked of it)."""
    tier = make_tier()
    tier.put_many([entry(k, k, clock, ttl=5 if k == "d" else None) for k in "abcde"])
    assert tier.neighbors(["c", "zz"], 1) == {"c": ["b", "d"]}
    clock.advance(5)
    got = tier.neighbors(["d", "c"], 1)
    assert "d" not in got
    if not isinstance(tier, _archive_type()):
        assert got == {"c": ["b", "e"]}


def _archive_type() -> type:
    from agentmem_plugin.tiers.archive import ArchiveTier

    return ArchiveTier
