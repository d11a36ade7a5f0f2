"""A store over a manager that other code also uses: items moved between tiers stay visible to the store."""

from __future__ import annotations

import logging

import pytest
from agentmem_plugin import MemoryManager

from agentmem_langgraph import AgentMemStore


def test_items_promoted_or_archived_by_other_code_stay_visible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with MemoryManager(long_term_limit=3) as manager:
        with caplog.at_level(logging.WARNING):
            store = AgentMemStore(manager=manager)
        assert "long_term_limit is 3" in caplog.text
        for i in range(5):
            store.put(("docs",), f"k{i}", {"text": f"note {i}"})
        view = manager.with_namespace("docs")
        assert view.tier_of("k0") == "external"  # archived by the manager's limit
        assert view.retrieve("k4") == {
            "text": "note 4"
        }  # other code reads it: promoted to short-term
        assert view.tier_of("k4") == "short_term"
        assert store.get(("docs",), "k0").value == {"text": "note 0"}
        assert store.get(("docs",), "k4").value == {"text": "note 4"}
        assert "k4" in {item.key for item in store.search(("docs",))}
        assert store.list_namespaces() == [("docs",)]


async def test_an_async_embed_runs_on_the_callers_event_loop() -> None:
    """Regression: abatch ran an async embed on a new loop, so a semaphore of the app's loop hung it."""
    import asyncio
    import hashlib

    limiter = asyncio.Semaphore(1)  # owned by this loop, like an HTTP client's pool
    loops: list[asyncio.AbstractEventLoop] = []

    async def aembed(
        texts: list[str],
    ) -> list[list[float]]:  # a FAKE embedder: meaning does not matter here
        loops.append(asyncio.get_running_loop())
        async with limiter:
            return [[b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in texts]

    async def hold() -> None:
        async with limiter:
            await asyncio.sleep(0.2)

    with AgentMemStore(index={"embed": aembed, "dims": 8}) as store:
        loops.clear()  # construction is sync: its dimension probe ran on a private loop
        task = asyncio.create_task(hold())
        await asyncio.sleep(0)
        await asyncio.wait_for(store.aput(("u",), "k", {"text": "hello"}), timeout=30)
        await task
        found = await asyncio.wait_for(store.asearch(("u",), query="hello"), timeout=30)
        assert [item.key for item in found] == ["k"]
    assert loops and set(loops) == {asyncio.get_running_loop()}
