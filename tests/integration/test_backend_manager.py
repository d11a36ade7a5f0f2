"""A MemoryManager on real servers: Redis short-term + PostgreSQL long-term, chosen by URL, shared by processes."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
from integration.backends import require_postgres, require_redis

from agentmem_plugin import MemoryManager

pytestmark = pytest.mark.slow


@pytest.fixture
def urls() -> dict[str, str]:
    return {"short_term": require_redis(), "long_term": require_postgres()}


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _open(urls: dict[str, str], namespace: str, **kwargs: Any) -> MemoryManager:
    return MemoryManager(namespace=namespace, **urls, **kwargs)


def test_overflow_and_promotion_across_servers(urls: dict[str, str], namespace: str) -> None:
    mm = _open(urls, namespace, short_term_limit=5, cache_size=0)
    try:
        for i in range(20):
            mm.store(f"k{i}", {"text": f"note {i} about the garden"}, priority=i % 3)
        assert mm.short_tier.count() == 5
        assert mm.long_tier.count() == 15
        assert all(
            mm.retrieve(f"k{i}") == {"text": f"note {i} about the garden"} for i in range(20)
        )
        hits = mm.search("garden note", limit=30)
        assert {h["key"] for h in hits} == {f"k{i}" for i in range(20)}
        assert mm.namespaces(namespace) == [namespace]
    finally:
        mm.clear_all()
        mm.close()


def _worker(urls: dict[str, str], namespace: str, worker: int, n: int) -> None:
    # long_term_limit below the total: overflow must never go to a per-process temporary archive
    mm = _open(urls, namespace, short_term_limit=50, long_term_limit=100, cache_size=0, enable_logging=False)
    try:
        for i in range(n):
            mm.store(f"w{worker}-{i}", {"worker": worker, "i": i}, priority=i % 4)
            if i % 5 == 4:  # read back an older one: promotes it across the servers
                assert mm.retrieve(f"w{worker}-{i - 3}") == {"worker": worker, "i": i - 3}
    finally:
        mm.close()


def test_four_processes_share_one_manager_and_lose_nothing(
    urls: dict[str, str], namespace: str
) -> None:
    n = 150
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(urls, namespace, w, n)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    mm = _open(urls, namespace, short_term_limit=50, cache_size=0)
    try:
        keys = set(mm.keys())
        expected = {f"w{w}-{i}" for w in range(4) for i in range(n)}
        assert keys == expected
        assert mm.short_tier.count() <= 50
        assert len(mm.keys("short_term")) + len(mm.keys("long_term")) == len(
            expected
        )  # one tier per key
        assert all(
            mm.retrieve(f"w{w}-{i}") == {"worker": w, "i": i}
            for w in range(4)
            for i in range(0, n, 7)
        )
    finally:
        mm.clear_all()
        mm.close()
