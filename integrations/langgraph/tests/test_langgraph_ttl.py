"""TTL in minutes kept by the store; omit_expired (both ways); refresh on read; default_ttl; sweepers (sync, async)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from agentmem_plugin.errors import InvalidArgumentError
from langgraph.store.base import GetOp, PutOp, SearchOp
from lg_fakes import FakeClock

from agentmem_langgraph import AgentMemStore


def test_item_expires_after_its_ttl_in_minutes(ttl_store: AgentMemStore, clock: FakeClock) -> None:
    ttl_store.put(("t",), "k", {"v": 1}, ttl=1)
    entry = ttl_store.manager.with_namespace(("t",)).long_tier.get("k", touch=False)
    assert entry is not None and entry.ttl is None  # the store keeps the expiry, not the tier
    assert entry.metadata["_lg_expires_at"] == clock.now + 60.0
    clock.advance(59)
    assert ttl_store.get(("t",), "k", refresh_ttl=False) is not None
    clock.advance(2)
    assert ttl_store.get(("t",), "k", refresh_ttl=False) is None
    assert ttl_store.search(("t",)) == []
    assert ttl_store.list_namespaces() == []  # expired items are omitted everywhere


def test_get_refreshes_the_ttl_unless_told_not_to(
    ttl_store: AgentMemStore, clock: FakeClock
) -> None:
    ttl_store.put(("t",), "k", {"v": 1}, ttl=1)
    first = ttl_store.get(("t",), "k")
    clock.advance(50)
    assert ttl_store.get(("t",), "k") is not None  # refreshes: expiry is now + 60 s
    clock.advance(50)
    again = ttl_store.get(("t",), "k", refresh_ttl=False)
    assert again is not None
    assert first is not None and (again.created_at, again.updated_at) == (
        first.created_at,
        first.updated_at,
    )
    clock.advance(11)
    assert ttl_store.get(("t",), "k") is None


def test_search_refreshes_the_ttl_of_what_it_returns(
    ttl_store: AgentMemStore, clock: FakeClock
) -> None:
    ttl_store.put(("t",), "seen", {"text": "apples"}, ttl=1)
    ttl_store.put(("t",), "unseen", {"text": "pears"}, ttl=1)
    clock.advance(40)
    assert [i.key for i in ttl_store.search(("t",), filter={"text": "apples"})] == ["seen"]
    assert [i.key for i in ttl_store.search(("t",), query="apples", limit=1)] == ["seen"]
    ttl_store.search(("t",), refresh_ttl=False)
    clock.advance(40)
    assert ttl_store.get(("t",), "seen", refresh_ttl=False) is not None
    assert ttl_store.get(("t",), "unseen", refresh_ttl=False) is None


def test_items_without_ttl_never_expire(ttl_store: AgentMemStore, clock: FakeClock) -> None:
    ttl_store.put(("t",), "k", {"v": 1})
    clock.advance(10 * 365 * 86400)
    assert ttl_store.get(("t",), "k") is not None


def test_ttl_config_default_and_refresh_on_read(where: Path | None, clock: FakeClock) -> None:
    ttl = {"default_ttl": 2, "refresh_on_read": False, "omit_expired": True}
    with AgentMemStore(where, ttl=ttl, clock=clock) as store:  # type: ignore[arg-type]
        assert store.ttl_config == ttl
        store.put(("t",), "default", {"v": 1})  # gets default_ttl
        store.put(("t",), "forever", {"v": 2}, ttl=None)  # an explicit None never expires
        store.put(("t",), "short", {"v": 3}, ttl=0.5)
        clock.advance(100)
        assert store.get(("t",), "short") is None
        assert store.get(("t",), "default") is not None  # read, but refresh_on_read is False
        clock.advance(21)
        assert store.get(("t",), "default", refresh_ttl=True) is None
        assert store.get(("t",), "forever") is not None
        store.put(("t",), "again", {"v": 4})
        clock.advance(100)
        # An explicit refresh still works.
        assert store.get(("t",), "again", refresh_ttl=True) is not None
        clock.advance(100)
        assert store.get(("t",), "again") is not None


def test_put_restarts_the_ttl_and_keeps_created_at(
    ttl_store: AgentMemStore, clock: FakeClock
) -> None:
    ttl_store.put(("t",), "k", {"v": 1}, ttl=1)
    clock.advance(50)
    ttl_store.put(("t",), "k", {"v": 2}, ttl=1)
    clock.advance(50)
    item = ttl_store.get(("t",), "k", refresh_ttl=False)
    assert item is not None and item.value == {"v": 2}
    assert item.updated_at.timestamp() - item.created_at.timestamp() == pytest.approx(50)


def test_sweep_ttl_deletes_expired_rows(ttl_store: AgentMemStore, clock: FakeClock) -> None:
    ttl_store.put(("t", "a"), "k1", {"v": 1}, ttl=1)
    ttl_store.put(("t", "b"), "k2", {"v": 2}, ttl=1)
    ttl_store.put(("t", "b"), "k3", {"v": 3})
    assert ttl_store.sweep_ttl() == 0
    clock.advance(61)
    assert ttl_store.manager.namespaces() == ["t/a", "t/b"]  # expired rows still on disk
    assert ttl_store.sweep_ttl() == 2
    assert ttl_store.manager.namespaces() == ["t/b"]
    assert ttl_store.get(("t", "b"), "k3") is not None


def test_background_sweeper_deletes_expired_rows(where: Path | None, clock: FakeClock) -> None:
    with AgentMemStore(where, ttl={"sweep_interval_minutes": 1}, clock=clock) as store:
        store.put(("t",), "k", {"v": 1}, ttl=1)
        clock.advance(61)
        future = store.start_ttl_sweeper(sweep_interval_minutes=0.0005)  # every 30 ms
        assert not store.start_ttl_sweeper().done()  # a second start starts nothing
        deadline = time.monotonic() + 10
        while store.manager.namespaces() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.manager.namespaces() == []
        assert store.stop_ttl_sweeper(timeout=5) is True
        assert future.result(timeout=5) is None
        assert store.stop_ttl_sweeper() is True  # not running: nothing to stop


def test_close_stops_the_sweeper(where: Path | None) -> None:
    store = AgentMemStore(where, ttl={"sweep_interval_minutes": 60})
    future = store.start_ttl_sweeper()
    store.close()
    assert future.result(timeout=5) is None


def test_batch_get_and_search_ops_carry_refresh_ttl(
    ttl_store: AgentMemStore, clock: FakeClock
) -> None:
    ttl_store.batch([PutOp(("t",), "a", {"v": 1}, ttl=1), PutOp(("t",), "b", {"v": 2}, ttl=1)])
    clock.advance(50)
    ttl_store.batch(
        [GetOp(("t",), "a", refresh_ttl=True), SearchOp(("t",), filter={"v": 2}, refresh_ttl=False)]
    )
    clock.advance(20)
    assert [i.key for i in ttl_store.search(("t",), refresh_ttl=False)] == ["a"]


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        ({"default_ttl": -1}, "default_ttl"),
        ({"default_ttl": "soon"}, "'soon'"),
        ({"refresh_on_read": "yes"}, "refresh_on_read"),
        ({"sweep_interval_minutes": 0}, "sweep_interval_minutes"),
        ({"ttl_minutes": 5}, "ttl_minutes"),
        ([("default_ttl", 5)], "TTLConfig"),
    ],
)
def test_bad_ttl_config_is_refused(tmp_path: Path, ttl: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        AgentMemStore(tmp_path / "s", ttl=ttl)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert not (tmp_path / "s").exists()


def test_bad_sweep_interval_is_refused(store: AgentMemStore) -> None:
    with pytest.raises(InvalidArgumentError, match="-1"):
        store.start_ttl_sweeper(sweep_interval_minutes=-1)


@pytest.mark.parametrize("ttl", [None, {"default_ttl": 5}, {"omit_expired": False}])
def test_without_omit_expired_expired_items_stay_until_a_sweep(
    where: Path | None, clock: FakeClock, ttl: dict[str, object] | None
) -> None:
    """LangGraph's default (``omit_expired`` False): expired but unswept items are still read and listed."""
    with AgentMemStore(where, ttl=ttl, clock=clock) as store:  # type: ignore[arg-type]
        store.put(("keep",), "k", {"data": "still here"}, ttl=1)
        clock.advance(120)
        assert store.get(("keep",), "k", refresh_ttl=False) is not None
        assert [i.key for i in store.search(("keep",), refresh_ttl=False)] == ["k"]
        assert ("keep",) in store.list_namespaces(prefix=("keep",))
        assert store.sweep_ttl() == 1
        assert store.get(("keep",), "k") is None


def test_omit_expired_refresh_never_resurrects_and_pages_before_the_limit(
    ttl_store: AgentMemStore, clock: FakeClock
) -> None:
    ns = ("page",)
    for key in (
        "a",
        "expired",
        "b",
        "c",
    ):  # oldest first: the expired item sits inside the first page
        ttl_store.put(ns, key, {"k": key}, ttl=1 if key == "expired" else 10)
        clock.advance(1)
    clock.advance(90)
    assert ttl_store.get(ns, "expired", refresh_ttl=True) is None
    assert [i.key for i in ttl_store.search(ns, limit=2)] == ["a", "b"]  # filtered before the page
    assert [i.key for i in ttl_store.search(ns, limit=2, offset=2)] == ["c"]
    view = ttl_store.manager.with_namespace(ns)
    stored = view.long_tier.get("expired", touch=False)
    assert stored is not None and stored.metadata["_lg_expires_at"] < clock.now  # not refreshed


async def test_async_store_sweeper_methods_are_coroutines(
    where: Path | None, clock: FakeClock
) -> None:
    from agentmem_langgraph import AsyncAgentMemStore

    async with AsyncAgentMemStore(where, ttl={"sweep_interval_minutes": 1}, clock=clock) as store:
        await store.aput(("t",), "k", {"v": 1}, ttl=1)
        clock.advance(61)
        assert await store.sweep_ttl() == 1
        await store.aput(("t",), "k2", {"v": 2}, ttl=1)
        clock.advance(61)
        task = await store.start_ttl_sweeper(sweep_interval_minutes=0.0005)  # every 30 ms
        assert await store.start_ttl_sweeper() is task  # while one runs, the same task
        for _ in range(500):
            if await store.aget(("t",), "k2", refresh_ttl=False) is None:
                break
            await asyncio.sleep(0.02)
        assert await store.aget(("t",), "k2", refresh_ttl=False) is None
        assert await store.stop_ttl_sweeper(timeout=5) is True
        assert task.done()
        assert await store.stop_ttl_sweeper() is True
