"""The Redis tier's hot paths against a real server: a store that evicts (no callback) and a get are one
round trip each (commands counted at the client, not timed), with the LRU/priority victims and change feed
of the multi-step path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from integration.backends import delete_redis_prefix, require_redis, unique_prefix

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.redis import RedisTier


@pytest.fixture
def tier() -> Iterator[RedisTier]:
    url = require_redis()
    prefix = unique_prefix()
    made = RedisTier(url, prefix=prefix, capacity=3)
    yield made
    made.close()
    delete_redis_prefix(prefix)


def count_commands(tier: RedisTier) -> list[Any]:
    sent: list[Any] = []
    client = tier._client
    real = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return real(*args, **kwargs)

    client.execute_command = counting
    return sent


def test_store_that_evicts_and_get_are_one_round_trip_each(tier):
    tier.put_many([MemoryEntry("a", 1, priority=1), MemoryEntry("b", 2), MemoryEntry("c", 3)])
    tier.get("b")  # b is now more recent than c
    tier.set_index_meta("model", 4)
    tier.ack_changes(tier.changes(100))
    sent = count_commands(tier)
    tier.put(MemoryEntry("d", 4))  # full: evicts c (lowest priority, least recently used)
    assert len(sent) == 1
    assert sorted(tier.keys()) == ["a", "b", "d"]
    sent.clear()
    assert tier.get("d").value == 4  # type: ignore[union-attr]
    assert len(sent) == 1
    assert {k for _, k in tier.changes(100)} == {"c", "d"}  # the semantic feed saw the eviction
    assert tier.stats()["evictions"] == 1
    tier.put(
        MemoryEntry("low", 0, priority=-1)
    )  # lower than everything present: it is the victim itself
    assert sorted(tier.keys()) == ["a", "b", "d"]
