"""Server tiers beside their embedded twins, measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_backends.py [--n 2000] [--searches 50]``

* ``RedisTier`` (short-term, over TCP) beside ``BufferTier`` (in process);
* ``PostgresTier`` (long-term, over TCP) beside ``SqliteTier`` on a file;

each doing the same work: ``put`` of n single entries, ``get`` (counted reads) of n random keys, and keyword
``search`` over the n entries. Prints ops/s and the median latency of each, and the server tier's rate as a
fraction of its twin's. A backend whose server is unreachable is reported and skipped. Everything written
is removed afterwards (a unique Redis prefix and PostgreSQL table).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import StorageError
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.sqlite import SqliteTier

VOCABULARY = (
    "garden python coffee meeting travel budget invoice report deploy server memory agent "
    "user prefers dark mode language english french lisbon paris tea pasta vegetarian music "
    "running weekly review project deadline friday monday release notes database backup"
)
WORDS = VOCABULARY.split()


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=12)) for _ in range(n)]


def measure(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    """Run fn(i) for i in range(n); return (ops per second, median latency in microseconds)."""
    lat = []
    clock = time.perf_counter_ns
    start = clock()
    for i in range(n):
        t0 = clock()
        fn(i)
        lat.append((clock() - t0) / 1000)
    total = (clock() - start) / 1e9
    return n / total, statistics.median(lat)


def run(tier: Tier, n: int, searches: int) -> dict[str, tuple[float, float]]:
    docs = texts(n)
    rng = random.Random(11)
    order = [rng.randrange(n) for _ in range(n)]
    queries = [" ".join(rng.sample(WORDS, 2)) for _ in range(searches)]
    out = {
        "put": measure(lambda i: tier.put(MemoryEntry(f"k{i}", {"text": docs[i], "i": i})), n),
        "get": measure(lambda i: tier.get(f"k{order[i]}"), n),
        "search": measure(lambda i: tier.keyword_search(queries[i], 10), searches),
    }
    assert tier.count() == n
    return out


def report(
    title: str,
    server: dict[str, tuple[float, float]],
    twin: dict[str, tuple[float, float]],
    names: tuple[str, str],
) -> None:
    print(f"\n{title}")
    print(f"  {'op':<8}{names[0]:>28}{names[1]:>28}   server/twin")
    for op in ("put", "get", "search"):
        (s_rate, s_p50), (t_rate, t_p50) = server[op], twin[op]
        print(
            f"  {op:<8}{s_rate:>12,.0f} ops/s p50 {s_p50:>7.1f}us"
            f"{t_rate:>12,.0f} ops/s p50 {t_p50:>7.1f}us   {s_rate / t_rate:9.3f}x"
        )


def bench_redis(url: str, n: int, searches: int) -> None:
    from agentmem_plugin.tiers.redis import RedisTier

    try:
        server = RedisTier(url, prefix=f"agentmem-bench-{uuid.uuid4().hex}", namespace="bench")
    except StorageError as exc:
        print(f"\nRedis skipped: {exc}")
        return
    try:
        redis_result = run(server, n, searches)
    finally:
        server.drop()
        server.close()
    report(
        f"short-term: RedisTier ({server.url}) vs BufferTier, n={n}",
        redis_result,
        run(BufferTier(None), n, searches),
        ("RedisTier", "BufferTier"),
    )


def bench_postgres(dsn: str, n: int, searches: int) -> None:
    from agentmem_plugin.tiers.postgres import PostgresTier

    try:
        server = PostgresTier(dsn, table=f"bench_{uuid.uuid4().hex}")
    except StorageError as exc:
        print(f"\nPostgreSQL skipped: {exc}")
        return
    try:
        pg_result = run(server, n, searches)
    finally:
        server.drop_tables()
        server.close()
    with tempfile.TemporaryDirectory() as tmp:
        twin = SqliteTier(Path(tmp) / "bench.sqlite3")
        try:
            sqlite_result = run(twin, n, searches)
        finally:
            twin.close()
    report(
        f"long-term: PostgresTier ({server.dsn}) vs SqliteTier (file), n={n}",
        pg_result,
        sqlite_result,
        ("PostgresTier", "SqliteTier"),
    )


def _manager_worker(
    redis_url: str, dsn: str, namespace: str, worker: int, ops: int, out: Any
) -> None:
    import logging

    from agentmem_plugin import MemoryManager

    logging.getLogger("agentmem_plugin").setLevel(logging.ERROR)  # the "no archive" warning, once per worker
    mm = MemoryManager(short_term=redis_url, long_term=dsn, namespace=namespace, short_term_limit=200,
                       cache_size=0, enable_logging=False)  # fmt: skip
    latencies = []
    try:
        for i in range(ops):
            start = time.perf_counter()
            if (
                i % 4 == 3
            ):  # one read for three writes; reads of older keys promote across the servers
                assert mm.retrieve(f"w{worker}-{i - 3}") == {"w": worker, "i": i - 3}
            else:
                mm.store(f"w{worker}-{i}", {"w": worker, "i": i}, priority=i % 3)
            latencies.append(time.perf_counter() - start)
    finally:
        mm.close()
    out.put(latencies)


def bench_shared_manager(redis_url: str, dsn: str, workers: int, ops: int) -> None:
    """*workers* processes share one Redis + PostgreSQL manager; then check nothing was lost."""
    import multiprocessing

    from agentmem_plugin import MemoryManager

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_manager_worker, args=(redis_url, dsn, namespace, w, ops, out))
             for w in range(workers)]  # fmt: skip
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    latencies = sorted(x for _ in procs for x in out.get())
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    mm = MemoryManager(
        short_term=redis_url, long_term=dsn, namespace=namespace, short_term_limit=200
    )
    try:
        written = {f"w{w}-{i}" for w in range(workers) for i in range(ops) if i % 4 != 3}
        present = set(mm.keys())
        lost = len(written - present)
        print(f"\nshared manager: {workers} processes x {ops} ops (3 writes : 1 read), Redis short-term "
              f"(limit 200) + PostgreSQL long-term")  # fmt: skip
        print(f"  {len(latencies) / elapsed:,.0f} ops/s in all, p50 {statistics.median(latencies) * 1e6:,.0f} us, "
              f"p95 {latencies[int(len(latencies) * 0.95)] * 1e6:,.0f} us; "
              f"{len(written):,} keys written, {lost} lost, exit codes {[p.exitcode for p in procs]}")  # fmt: skip
    finally:
        mm.clear_all()
        mm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="entries to put and get (default 2000)")
    parser.add_argument("--searches", type=int, default=50, help="keyword searches (default 50)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument(
        "--workers", type=int, default=4, help="processes sharing one manager (default 4)"
    )
    parser.add_argument(
        "--ops", type=int, default=10_000, help="operations per worker (default 10000)"
    )
    args = parser.parse_args()
    bench_redis(args.redis_url, args.n, args.searches)
    bench_postgres(args.postgres_dsn, args.n, args.searches)
    if args.workers > 0:
        bench_shared_manager(args.redis_url, args.postgres_dsn, args.workers, args.ops)


if __name__ == "__main__":
    main()
