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
        assert mm.namespaces() == [""]  # relative to the manager's own namespace
    finally:
        mm.clear_all()
        mm.close()


def _worker(urls: dict[str, str], namespace: str, worker: int, n: int) -> None:
    # long_term_limit below the total: overflow must never go to a per-process temporary archive
    mm = _open(
        urls,
        namespace,
        short_term_limit=50,
        long_term_limit=100,
        cache_size=0,
        enable_logging=False,
    )
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


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_server_gone_then_back_the_manager_recovers(
    urls: dict[str, str], namespace: str, server: str
) -> None:
    from urllib.parse import urlsplit

    from integration.backends import TcpProxy

    from agentmem_plugin.errors import BackendUnavailableError

    role = "short_term" if server == "redis" else "long_term"
    target = urlsplit(urls[role])
    proxy = TcpProxy("127.0.0.1", target.port or 0)
    port = proxy.port
    via_proxy = {
        **urls,
        role: urls[role].replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{port}"),
    }
    if (
        server == "postgres"
    ):  # trust auth ignores the password: it is there to prove it never reaches a message
        via_proxy[role] = via_proxy[role].replace("://", "://postgres:s3cret@", 1)
    mm = _open(via_proxy, namespace, short_term_limit=5, cache_size=0)
    direct = _open(urls, namespace, short_term_limit=5, cache_size=0)
    try:
        mm.store("before", "stored before the outage", memory_type=role)
        other = "long_term" if role == "short_term" else "short_term"
        mm.store("moving", "old value", memory_type=other)
        proxy.stop()  # the server goes away
        with pytest.raises(BackendUnavailableError):
            mm.store("moving", "new value", memory_type=role)  # a move that fails ...
        assert direct.retrieve("moving") == "old value"  # ... keeps the old value where it was
        with pytest.raises(BackendUnavailableError) as info:
            mm.store("during", "never acknowledged", memory_type=role)
        assert "s3cret" not in str(info.value)
        assert "s3cret" not in repr(info.value.__cause__) and "s3cret" not in repr(
            info.value.__context__
        )
        assert direct.retrieve("during") is None  # nothing half-written
        assert direct.retrieve("before") == "stored before the outage"
        proxy = TcpProxy("127.0.0.1", target.port or 0, listen_port=port)  # ... and comes back
        mm.store("after", "stored after the outage", memory_type=role)
        assert mm.retrieve("before") == "stored before the outage"
        assert direct.retrieve("after") == "stored after the outage"
    finally:
        proxy.stop()
        direct.clear_all()
        direct.close()
        mm.close()


def test_views_borrow_the_roots_connections(urls: dict[str, str], namespace: str) -> None:
    mm = _open(urls, namespace)
    try:
        views = [mm.with_namespace(f"{namespace}-{i}") for i in range(5)]
        assert {id(v.long_tier._pool) for v in views} == {id(mm.long_tier._pool)}  # type: ignore[attr-defined]
        assert {id(v.short_tier._client) for v in views} == {id(mm.short_tier._client)}  # type: ignore[attr-defined]
        views[0].store("k", "v")
        views[0].close()  # closes only the view: the shared pool and client stay open
        assert mm.with_namespace(f"{namespace}-0").retrieve("k") == "v"
        mm.with_namespace(f"{namespace}-0").clear_all()
    finally:
        mm.close()


def test_a_write_racing_a_promotion_is_not_lost(urls: dict[str, str], namespace: str) -> None:
    """Another process rewrites a key in long-term while this one promotes the old version (review finding)."""
    a = _open(urls, namespace)
    b = _open(urls, namespace)
    try:
        a.store("k", "v1", memory_type="long_term")
        real_get = a.long_tier.get

        def get_then_interleave(key: str, *args: Any, **kwargs: Any) -> Any:
            entry = real_get(key, *args, **kwargs)
            b.store("k", "v2 by the other process", memory_type="long_term")
            return entry

        a.long_tier.get = get_then_interleave  # type: ignore[method-assign]
        a.retrieve("k")  # promotes the v1 it read
        a.long_tier.get = real_get  # type: ignore[method-assign]
        assert b.retrieve("k") == "v2 by the other process"
        assert a.retrieve("k") == "v2 by the other process"
    finally:
        a.clear_all()
        a.close()
        b.close()


def test_a_write_racing_a_consolidation_is_not_lost(urls: dict[str, str], namespace: str) -> None:
    from agentmem_plugin.policies import ImportanceConsolidationPolicy

    b = _open(urls, namespace)

    class Interleave(ImportanceConsolidationPolicy):
        def select_entries_to_consolidate(self, entries: Any, now: float) -> Any:
            chosen = list(entries)  # the snapshot holds k = v1
            b.store("k", "v2 by the other process")  # ... and another process rewrites k meanwhile
            return chosen

    a = _open(urls, namespace, consolidation_policy=Interleave())
    try:
        a.store("k", "v1")
        a.consolidate()
        assert b.retrieve("k") == "v2 by the other process"
        assert a.retrieve("k") == "v2 by the other process"
    finally:
        a.clear_all()
        a.close()
        b.close()
