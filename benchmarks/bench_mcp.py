"""MCP tool-call latency through a real ``agentmem-mcp`` stdio subprocess, beside the same calls in process.

Run: ``.venv/bin/python benchmarks/bench_mcp.py [--n 200] [--searches 100]``

Three paths, same run, same machine, each on its own fresh store with the offline MiniLM embedder:

1. ``mcp stdio``: the SDK's ``ClientSession.call_tool`` to the server subprocess (JSON-RPC over pipes, FastMCP
   validation, a worker thread, compact JSON result);
2. ``MemoryService``: the server's own operation, called in this process (the same code minus the transport);
3. ``MemoryManager``: the bare library call (``store(..., memory_type="long_term")`` / ``search``).

``remember`` stores N distinct facts (each embedded); ``search`` runs hybrid searches (meaning + keywords, k=5)
over them. Each path does one search first, so the model is loaded before anything is timed; that first
search (the model load) and the server's start-up (process start to ``list_tools`` answered) are reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agentmem_mcp import MemoryService
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from agentmem_plugin import MemoryManager

SUBJECTS = ["Ada", "Bruno", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana"]
THINGS = ["likes hiking in the mountains", "is allergic to shellfish", "works as a nurse at night",
          "plays the cello on Sundays", "moved to Lisbon last spring", "has two cats and a parrot",
          "prefers green tea to coffee", "is learning Japanese", "drives an old red van",
          "collects vintage postcards"]  # fmt: skip
QUERIES = ["who enjoys outdoor walks?", "food they must avoid", "someone in healthcare",
           "musical instruments", "relocated to Portugal", "pets at home"]  # fmt: skip


def facts(n: int) -> list[str]:
    return [
        f"{SUBJECTS[i % len(SUBJECTS)]} {THINGS[(i // len(SUBJECTS)) % len(THINGS)]} (note {i})"
        for i in range(n)
    ]


@dataclass
class Run:
    model: float  # seconds: the first search, which loads the model
    remember: list[float]
    search: list[float]
    startup: float = 0.0  # seconds: process start to list_tools answered (stdio only)


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p95_ms(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20)[18] * 1000 if len(values) >= 20 else max(values) * 1000
    )


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


async def atimed(fn: Callable[[int], Awaitable[object]], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        out.append(time.perf_counter() - t0)
    return out


async def bench_stdio(store: Path, texts: list[str], searches: int) -> Run:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentmem_mcp", "--storage", str(store)],
        env=dict(os.environ),
    )
    t0 = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        first = await session.call_tool("search_memories", {"query": "warm up"})
        assert not first.isError
        model = time.perf_counter() - t1

        async def remember(i: int) -> None:
            result = await session.call_tool("remember", {"content": texts[i], "key": f"f{i}"})
            assert not result.isError

        async def search(i: int) -> None:
            result = await session.call_tool(
                "search_memories", {"query": QUERIES[i % len(QUERIES)], "k": 5}
            )
            assert not result.isError

        return Run(
            model, await atimed(remember, len(texts)), await atimed(search, searches), startup
        )


def bench_service(store: Path, texts: list[str], searches: int) -> Run:
    service = MemoryService(store)
    t1 = time.perf_counter()
    service.search("warm up")
    model = time.perf_counter() - t1
    try:
        return Run(
            model,
            timed(lambda i: service.remember(texts[i], key=f"f{i}"), len(texts)),
            timed(lambda i: service.search(QUERIES[i % len(QUERIES)], k=5), searches),
        )
    finally:
        service.close()


def bench_manager(store: Path, texts: list[str], searches: int) -> Run:
    with MemoryManager(storage_path=store, embedder="default", long_term_limit=100_000) as mm:
        t1 = time.perf_counter()
        mm.search("warm up")
        model = time.perf_counter() - t1
        return Run(
            model,
            timed(lambda i: mm.store(f"f{i}", texts[i], memory_type="long_term"), len(texts)),
            timed(lambda i: mm.search(QUERIES[i % len(QUERIES)], 5), searches),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="facts remembered per path")
    parser.add_argument("--searches", type=int, default=100, help="searches per path")
    args = parser.parse_args()
    texts = facts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {
            "mcp stdio": asyncio.run(bench_stdio(root / "stdio", texts, args.searches)),
            "MemoryService": bench_service(root / "service", texts, args.searches),
            "MemoryManager": bench_manager(root / "manager", texts, args.searches),
        }
    print(
        f"tool-call latency, {args.n} remembers and {args.searches} hybrid searches (k=5) per path"
    )
    print(
        f"  {'path':<15}{'remember p50':>14}{'p95':>10}{'search p50':>13}{'p95':>10}{'first search':>15}"
    )
    base = results["MemoryManager"]
    for name, r in results.items():
        print(
            f"  {name:<15}{p50_ms(r.remember):>11.2f} ms{p95_ms(r.remember):>7.2f} ms"
            f"{p50_ms(r.search):>10.2f} ms{p95_ms(r.search):>7.2f} ms{r.model:>13.2f} s"
        )
    mcp = results["mcp stdio"]
    over_remember = p50_ms(mcp.remember) - p50_ms(base.remember)
    over_search = p50_ms(mcp.search) - p50_ms(base.search)
    print(
        f"  mcp stdio p50 overhead over MemoryManager: remember {over_remember:+.2f} ms, search {over_search:+.2f} ms"
    )
    print(f"  server start-up to list_tools answered (no model loaded): {mcp.startup:.2f} s")


if __name__ == "__main__":
    main()
