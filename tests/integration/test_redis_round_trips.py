"""RedisTier round trips against a real server: every store (evicting or not) and every get, touch included,
is one command sent (counted at the client, not timed), and the packed replies and arguments those single
round trips carry decode to the very entries written, expiry bookkeeping included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from integration.backends import delete_redis_prefix, require_redis, unique_prefix

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.redis import RedisTier


@pytest.fixture
def prefix() -> Iterator[str]:
    require_redis()
    name = unique_prefix()
    yield name
    delete_redis_prefix(name)


@pytest.fixture
def make(prefix: str) -> Iterator[Any]:
    made: list[RedisTier] = []

    def factory(**kwargs: Any) -> RedisTier:
        kwargs.setdefault("prefix", prefix)
        tier = RedisTier(require_redis(), **kwargs)
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def count_commands(tier: RedisTier) -> list[Any]:
    """Record the name of every command the tier's client sends from now on."""
    sent: list[Any] = []
    client = tier.client
    real = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return real(*args, **kwargs)

    client.execute_command = counting
    return sent


def test_every_store_and_get_is_one_round_trip(make):
    tier = make(capacity=4)
    sent = count_commands(tier)
    for i in range(4):
        tier.put(MemoryEntry(f"k{i}", i))
    assert sent == ["EVALSHA"] * 4
    sent.clear()
    tier.put_many([MemoryEntry(f"b{i}", i) for i in range(3)])  # full: three evicted in the same script
    tier.put(MemoryEntry("k9", 9))  # and one more
    assert sent == ["EVALSHA"] * 2
    assert tier.count() == 4
    sent.clear()
    assert tier.get("k9").value == 9  # type: ignore[union-attr]
    assert tier.get("k0") is None  # evicted
    assert [e and e.value for e in tier.get_many(["b0", "b1", "b2"])] == [0, 1, 2]
    assert tier.get("k9", touch=False).access_count == 1  # type: ignore[union-attr]
    assert sent == ["EVALSHA"] * 4


def test_a_get_counts_the_read_and_moves_it_to_the_end_of_the_lru_order(make):
    tier = make(capacity=2)
    tier.put(MemoryEntry("a", 1))
    tier.put(MemoryEntry("b", 2))
    first = tier.get("a")
    second = tier.get("a")
    assert first is not None and second is not None
    assert (first.access_count, second.access_count) == (1, 2)
    tier.put(MemoryEntry("c", 3))  # the least recently used is b now
    assert sorted(tier.keys()) == ["a", "c"]


@pytest.mark.parametrize(
    "value",
    [
        "line one\nline two, with commas,\n\n",
        {"nested": ["a\nb", 1, 2.5, None, True], "unicode": "é中"},
        "x" * 20_000,  # compressed: binary bytes in the packed reply
        "",
    ],
)
def test_packed_replies_decode_to_the_entry_written(make, clock, value):
    tier = make(clock=clock, compression_threshold=1024)
    written = MemoryEntry(
        "k,\n1", value, ttl=60, priority=7, metadata={"m": "a\nb"}, tags=["t,1", "t\n2"], clock=clock
    )
    tier.put(written)
    got = tier.get("k,\n1")
    assert got is not None
    assert (got.value, got.tags, got.metadata, got.priority) == (value, ("t,1", "t\n2"), {"m": "a\nb"}, 7)
    assert (got.ttl, got.expires_at, got.created_at) == (60, written.expires_at, written.created_at)
    assert (got.access_count, got.last_accessed, got.version) == (1, clock.now, written.version)


def test_rewriting_without_ttl_forgets_the_old_expiry(make, clock):
    tier = make(clock=clock)
    tier.put(MemoryEntry("k", 1, ttl=5, clock=clock))
    ek = tier._entry_prefix + "k"
    assert tier.client.pttl(ek) > 0
    tier.put(MemoryEntry("k", 2, clock=clock))
    assert tier.client.pttl(ek) == -1  # Redis will not collect it
    clock.advance(10)
    assert tier.cleanup() == []
    assert tier.get("k").value == 2  # type: ignore[union-attr]


def test_a_write_after_redis_collected_the_entry_is_not_purged_later(make, clock):
    tier = make(clock=clock)
    tier.put(MemoryEntry("k", 1, ttl=5, clock=clock))
    tier.client.delete(tier._entry_prefix + "k")  # what Redis does once the expiry has passed
    tier.put(MemoryEntry("k", 2, clock=clock))  # no TTL this time
    clock.advance(10)
    assert tier.cleanup() == []
    assert tier.get("k").value == 2  # type: ignore[union-attr]


def test_a_hash_left_behind_does_not_lend_its_expiry_to_a_new_write(make, clock):
    tier = make(clock=clock)
    ek = tier._entry_prefix + "k"
    tier.client.hset(ek, mapping={"v": b"1", "s": b"99"})  # a hash whose index entry is gone (a clear)
    tier.client.pexpire(ek, 600_000)
    tier.put(MemoryEntry("k", 2, clock=clock))
    assert tier.client.pttl(ek) == -1
    assert tier.get("k").value == 2  # type: ignore[union-attr]


def test_a_script_redis_no_longer_holds_is_loaded_again(make):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    tier._shas["get"] = "0" * 40  # as after SCRIPT FLUSH or a restart, without flushing the shared server
    assert tier.get("k").value == 1  # type: ignore[union-attr]
