"""Scale benchmark: a namespace costs what it holds, a large namespace stays fast, hot paths beside raw clients.

Run (numbers in docs/benchmarks.md, "Scale"):

    nice -n 10 .venv/bin/python benchmarks/bench_scale.py many --backend sqlite --namespaces 1,100,1000,10000
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py many --backend postgres --namespaces 1,100,1000,10000
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py large --sizes 1000,100000,1000000
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py hybrid --size 100000 --torch-threads 1
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py hot
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py chroma --namespaces 10,100,1000
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py views --namespaces 1,100,1000,10000
    nice -n 10 .venv/bin/python benchmarks/bench_scale.py layout --namespaces 1,100,1000,10000

* ``many``: N namespaces x ``--per-ns`` LoCoMo turns in one store; in the target namespace, store / get /
  keyword top-10 p50 (and p95) beside the same namespace alone in a store of its own, same run.
* ``large``: one namespace of n memories (SQLite): fill rate, keyword top-10 p50/p95 on LoCoMo questions, RSS
  of the process, bytes on disk.
* ``hybrid``: one namespace of n memories behind ``Memory`` and ``MemoryManager`` (SQLite + Chroma): keyword,
  semantic and hybrid top-10 p50/p95, interleaved query by query, each beside semantic alone and the raw model
  encode + Chroma query of the same run (see :func:`bench_hybrid`).
* ``views``: the same through ``MemoryManager.with_namespace`` (store / get / keyword search / namespaces of a
  prefix) and the LangGraph store (get / search / list_namespaces), target beside alone, interleaved; a get in a
  random namespace (view cache misses); RSS of N views with and without the view cache's bound.
* ``layout``: semantic search through ``with_namespace`` at N namespaces (FAKE random vectors): fill, RSS, disk,
  Chroma collections, target beside alone and a random namespace (the small-namespace table of tiers/vectors.py).
* ``hot``: BufferTier store (evicting) and get beside a bare OrderedDict LRU; RedisTier put/get beside raw
  redis-py pipelined SET/GET; PostgresTier get beside a raw psycopg SELECT on the same pool, and its count at
  1,000 and ``--count-size`` entries. The Redis and PostgreSQL rows interleave ours and the reference op by
  op (same load on this shared machine for both), and report the commands or statements one call sends.

Only the public Tier API is used, so the same script measures an older checkout (``PYTHONPATH=<old tree>``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.sqlite import SqliteTier

LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"
PG_DSN = os.environ.get("AGENTMEM_BENCH_POSTGRES_DSN", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AGENTMEM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def locomo() -> tuple[list[str], list[str]]:
    """LoCoMo dev turns and questions (read from ../shared, never copied)."""
    data = orjson.loads(LOCOMO.read_bytes())
    turns, questions = [], []
    for conv in data:
        for name, session in conv["conversation"].items():
            if name.startswith("session_") and isinstance(session, list):
                turns += [f"{t['speaker']}: {t['text']}" for t in session]
        questions += [q["question"] for q in conv["qa"]]
    random.Random(5).shuffle(questions)
    return turns, questions


def quantiles(lat: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(lat, n=100)
    return q[49], q[94]


def latencies(fn: Callable[[int], object], n: int) -> list[float]:
    """Per-call latencies of fn(i) for i in range(n), in microseconds."""
    clock = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = clock()
        fn(i)
        out.append((clock() - t0) / 1000)
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def disk_bytes(path: Path) -> int:
    return sum(
        Path(str(path) + s).stat().st_size
        for s in ("", "-wal", "-shm")
        if Path(str(path) + s).exists()
    )


# -- many namespaces ---------------------------------------------------------------------------------------------


def open_tier(backend: str, where: Any, namespace: str, first: Tier | None) -> Tier:
    if backend == "sqlite":
        return SqliteTier(
            where,
            namespace=namespace,
            share_connection_with=first if isinstance(first, SqliteTier) else None,
        )
    from agentmem_plugin.tiers.postgres import PostgresTier

    pool = getattr(first, "pool", None)
    return PostgresTier(PG_DSN, table=where, namespace=namespace, pool=pool, max_size=2)


def fill_namespace(tier: Tier, turns: list[str], offset: int, n: int) -> None:
    tier.put_many([MemoryEntry(f"m{i}", turns[(offset + i) % len(turns)]) for i in range(n)])


def measure_namespace(
    tier: Tier, questions: list[str], per_ns: int, rounds: int
) -> dict[str, float]:
    rng = random.Random(3)
    keys = [f"m{rng.randrange(per_ns)}" for _ in range(rounds)]
    get = latencies(lambda i: tier.get(keys[i]), rounds)
    store = latencies(
        lambda i: tier.put(MemoryEntry(f"new-{i}", f"a new memory number {i}")), rounds
    )
    tier.delete_many([f"new-{i}" for i in range(rounds)])
    search = latencies(lambda i: tier.keyword_search(questions[i % len(questions)], 10), rounds)
    return {
        "get": quantiles(get)[0],
        "store": quantiles(store)[0],
        "kw50": quantiles(search)[0],
        "kw95": quantiles(search)[1],
    }


def bench_many(backend: str, counts: list[int], per_ns: int, rounds: int) -> None:
    turns, questions = locomo()
    print(
        f"\n{backend}: N namespaces x {per_ns} LoCoMo turns; target namespace vs the same namespace alone"
    )
    print(
        f"  {'namespaces':>10} {'fill/s':>9} | {'store p50':>9} {'alone':>7} | {'get p50':>8} {'alone':>7} | "
        f"{'kw p50':>8} {'alone':>7} {'ratio':>6} | {'kw p95':>8} {'alone':>7}   (us)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            run = uuid.uuid4().hex[:8]
            where_alone: Any = (
                Path(tmp) / f"alone-{run}.db" if backend == "sqlite" else f"bench_alone_{run}"
            )
            where: Any = (
                Path(tmp) / f"many-{run}.db" if backend == "sqlite" else f"bench_many_{run}"
            )
            alone = open_tier(backend, where_alone, "target", None)
            fill_namespace(alone, turns, 0, per_ns)
            target = open_tier(backend, where, "target", None)
            t0 = time.perf_counter()
            fill_namespace(target, turns, 0, per_ns)
            for n in range(1, count):
                other = open_tier(backend, where, f"user-{n}", target)
                fill_namespace(other, turns, n * 37, per_ns)
                if backend != "sqlite":
                    other.close()
            fill = count * per_ns / (time.perf_counter() - t0)
            a = measure_namespace(alone, questions, per_ns, rounds)
            m = measure_namespace(target, questions, per_ns, rounds)
            print(
                f"  {count:>10,} {fill:>9,.0f} | {m['store']:>9.0f} {a['store']:>7.0f} | {m['get']:>8.0f} "
                f"{a['get']:>7.0f} | {m['kw50']:>8.0f} {a['kw50']:>7.0f} {m['kw50'] / a['kw50']:>5.2f}x | "
                f"{m['kw95']:>8.0f} {a['kw95']:>7.0f}",
                flush=True,
            )
            for tier in (alone, target):
                drop = getattr(tier, "drop_tables", None)
                if drop is not None:
                    drop()
                tier.close()


# -- many namespaces behind the manager and the LangGraph store -------------------------------------------------


def fill_store(
    path: Path, names: list[str], turns: list[str], per_ns: int, *, items: bool
) -> float:
    """Write *per_ns* turns into each namespace of *names* in long-term of a store at *path*; return rows/s.

    Through one SqliteTier per namespace on one connection (the manager's own file and table), so the fill does
    not pay for opening a manager view per namespace; *items*: values are LangGraph-shaped dicts.
    """
    path.mkdir(parents=True, exist_ok=True)
    root = SqliteTier(path / "memory.sqlite3", table="long_term")
    t0 = time.perf_counter()
    for n, ns in enumerate(names):
        tier = SqliteTier(root.path, table="long_term", namespace=ns, share_connection_with=root)
        texts = [turns[(n * 37 + i) % len(turns)] for i in range(per_ns)]
        tier.put_many(
            [MemoryEntry(f"m{i}", {"text": t} if items else t) for i, t in enumerate(texts)]
        )
        tier.close()
    rate = len(names) * per_ns / (time.perf_counter() - t0)
    root.close()
    return rate


def interleaved(ops: list[Callable[[int], object]], rounds: int) -> list[float]:
    """p50 (us) of each op of *ops*, called in turn round by round (the same load on this machine for each)."""
    lat: list[list[float]] = [[] for _ in ops]
    clock = time.perf_counter_ns
    for i in range(rounds):
        for j, op in enumerate(ops):
            t0 = clock()
            op(i)
            lat[j].append((clock() - t0) / 1000)
    return [quantiles(x)[0] for x in lat]


def bench_views(counts: list[int], per_ns: int, rounds: int, cache: int, langgraph: bool) -> None:
    """The manager's views (store / get / keyword search in one namespace) and the LangGraph store at N namespaces.

    Each row's numbers are p50 in the target namespace of a store holding N namespaces beside the target alone in
    a store of its own, op by op interleaved; every call goes through ``with_namespace`` as integrations do. ``miss
    get``: a get in a random namespace each time (the namespace's view opened at its first get, and again after
    the cache dropped it once N exceeds ``view_cache_size``); get: ``get_many([key], promote=False)``, a read that
    moves nothing (a promotion would make the first pass a write). Then the
    RSS of N open views with the cache bound and without it (``view_cache_size`` above N).
    """
    from agentmem_plugin import MemoryManager

    turns, questions = locomo()
    print(
        f"\nMemoryManager (SQLite, storage_path, keyword): N namespaces x {per_ns} LoCoMo turns, target vs alone"
    )
    print(
        f"  {'namespaces':>10} {'fill/s':>8} | {'store':>6} {'alone':>6} | {'get':>6} {'alone':>6} | "
        f"{'search':>7} {'alone':>6} {'ratio':>6} | {'miss get':>8} | {'list pfx':>8} {'alone':>6}   (us p50)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        alone_dir = Path(tmp) / "alone"
        fill_store(alone_dir, ["target"], turns, per_ns, items=False)
        alone = MemoryManager(
            storage_path=alone_dir, embedder=None, long_term_limit=None, view_cache_size=cache
        )
        for count in counts:
            where = Path(tmp) / f"many-{count}"
            names = ["target"] + [f"user/{n:05d}" for n in range(1, count)]
            fill = fill_store(where, names, turns, per_ns, items=False)
            many = MemoryManager(
                storage_path=where, embedder=None, long_term_limit=None, view_cache_size=cache
            )
            rng = random.Random(7)
            keys = [f"m{rng.randrange(per_ns)}" for _ in range(rounds)]
            ops: list[Callable[[int], object]] = []
            for mm in (many, alone):
                ops += [
                    lambda i, mm=mm: mm.with_namespace("target").store(
                        f"new-{i}", f"a new memory {i}"
                    ),
                    lambda i, mm=mm, keys=keys: mm.with_namespace("target").get_many(
                        [keys[i]], promote=False
                    ),
                    lambda i, mm=mm: mm.with_namespace("target").search(
                        questions[i % len(questions)], limit=10, mode="keyword"
                    ),
                    lambda i, mm=mm: mm.namespaces("target"),
                ]
            st, gt, se, ls, st_a, gt_a, se_a, ls_a = interleaved(ops, rounds)
            for mm in (many, alone):
                for i in range(rounds):
                    mm.with_namespace("target").delete(f"new-{i}")
            misses = [rng.choice(names) for _ in range(rounds)]
            miss = quantiles(
                latencies(
                    lambda i, m=many, ns=misses: m.with_namespace(ns[i]).retrieve("m0"), rounds
                )
            )[0]
            print(
                f"  {count:>10,} {fill:>8,.0f} | {st:>6.0f} {st_a:>6.0f} | {gt:>6.0f} {gt_a:>6.0f} | "
                f"{se:>7.0f} {se_a:>6.0f} {se / se_a:>5.2f}x | {miss:>8.0f} | {ls:>8.0f} {ls_a:>6.0f}",
                flush=True,
            )
            many.close()
        alone.close()
        largest = max(counts)
        print(
            f"\nRSS of {largest:,} namespace views opened one after the other (with_namespace, one get each)"
        )
        for size in (cache, largest + 1):
            where = Path(tmp) / f"many-{largest}"
            mm = MemoryManager(
                storage_path=where, embedder=None, long_term_limit=None, view_cache_size=size
            )
            names = ["target"] + [f"user/{n:05d}" for n in range(1, largest)]
            before = rss_mb()
            t0 = time.perf_counter()
            for ns in names:
                mm.with_namespace(ns).retrieve("m0")
            took = time.perf_counter() - t0
            print(
                f"  view_cache_size={size:>6,}: +{rss_mb() - before:7.1f} MB "
                f"({(rss_mb() - before) * 1e3 / largest:5.1f} KB per namespace), {took:5.1f} s",
                flush=True,
            )
            mm.close()
        if langgraph:
            bench_langgraph(Path(tmp), counts, per_ns, rounds, cache, turns, questions)


def bench_langgraph(
    tmp: Path,
    counts: list[int],
    per_ns: int,
    rounds: int,
    cache: int,
    turns: list[str],
    questions: list[str],
) -> None:
    """AgentMemStore get / search / list_namespaces(prefix) in one user's namespace at N namespaces, beside alone."""
    from agentmem_langgraph import AgentMemStore

    from agentmem_plugin import MemoryManager

    def open_store(where: Path) -> Any:
        mm = MemoryManager(
            storage_path=where, embedder=None, long_term_limit=None, view_cache_size=cache
        )
        return AgentMemStore(manager=mm), mm

    print(
        f"\nAgentMemStore (SQLite, keyword): N namespaces x {per_ns} items, ('users', 'target') vs alone"
    )
    print(
        f"  {'namespaces':>10} | {'get':>6} {'alone':>6} | {'search':>7} {'alone':>6} {'ratio':>6} | "
        f"{'list pfx':>8} {'alone':>6} | {'list all':>9}   (us p50)"
    )
    alone_dir = tmp / "lg-alone"
    fill_store(alone_dir, ["users/target"], turns, per_ns, items=True)
    alone, alone_mm = open_store(alone_dir)
    for count in counts:
        where = tmp / f"lg-{count}"
        names = ["users/target"] + [f"users/{n:05d}" for n in range(1, count)]
        fill_store(where, names, turns, per_ns, items=True)
        store, mm = open_store(where)
        rng = random.Random(9)
        keys = [f"m{rng.randrange(per_ns)}" for _ in range(rounds)]
        ops: list[Callable[[int], object]] = []
        for st in (store, alone):
            ops += [
                lambda i, st=st, keys=keys: st.get(("users", "target"), keys[i]),
                lambda i, st=st: st.search(
                    ("users", "target"), query=questions[i % len(questions)], limit=10
                ),
                lambda i, st=st: st.list_namespaces(prefix=("users", "target")),
            ]
        gt, se, ls, gt_a, se_a, ls_a = interleaved(ops, rounds)
        every = quantiles(
            latencies(
                lambda i, s=store, n=count: s.list_namespaces(limit=n + 1), max(5, rounds // 20)
            )
        )[0]
        print(
            f"  {count:>10,} | {gt:>6.0f} {gt_a:>6.0f} | {se:>7.0f} {se_a:>6.0f} {se / se_a:>5.2f}x | "
            f"{ls:>8.0f} {ls_a:>6.0f} | {every:>9.0f}",
            flush=True,
        )
        store.close()
        mm.close()
    alone.close()
    alone_mm.close()


# -- one large namespace -----------------------------------------------------------------------------------------


def bench_large(sizes: list[int], rounds: int) -> None:
    turns, questions = locomo()
    print(
        "\nSQLite: one namespace of n memories (LoCoMo turns, each made unique), keyword top-10 on questions"
    )
    print(
        f"  {'memories':>10} {'fill s':>8} {'fill/s':>8} | {'kw p50':>8} {'kw p95':>8} (ms) | "
        f"{'RSS MB':>7} {'disk MB':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"large-{size}.db"
            tier = SqliteTier(path, namespace="big")
            t0 = time.perf_counter()
            for start in range(0, size, 10_000):
                tier.put_many(
                    [
                        MemoryEntry(f"m{i}", f"{turns[i % len(turns)]} (#{i})")
                        for i in range(start, min(size, start + 10_000))
                    ]
                )
            fill = time.perf_counter() - t0
            tier.keyword_search(
                questions[0], 10
            )  # warm the page cache as a long-lived process would be
            lat = latencies(
                lambda i, t=tier: t.keyword_search(questions[i % len(questions)], 10), rounds
            )
            p50, p95 = quantiles(lat)
            print(
                f"  {size:>10,} {fill:>8.1f} {size / fill:>8,.0f} | {p50 / 1000:>8.2f} {p95 / 1000:>8.2f}      | "
                f"{rss_mb():>7.0f} {disk_bytes(path) / 1e6:>8.0f}",
                flush=True,
            )
            tier.close()
            for s in ("", "-wal", "-shm"):
                Path(str(path) + s).unlink(missing_ok=True)


# -- hybrid in one large namespace -------------------------------------------------------------------------------

QUERY_CACHE_SUFFIX = "|query"


def fill_searchable(
    store: Any, cache_path: Path, cache_key: str, texts: list[str], size: int, *, manager: bool
) -> None:
    """Store *size* memories whose vectors are random unit vectors placed in the embedding cache first."""
    import numpy as np

    from agentmem_plugin.embeddings import EmbeddingCache

    rng = np.random.default_rng(7)
    cache = EmbeddingCache(cache_path)
    batch = 5000
    for offset in range(0, size, batch):
        chunk = [
            f"{texts[i % len(texts)]} (#{i})" for i in range(offset, min(offset + batch, size))
        ]
        vecs = rng.normal(size=(len(chunk), 384)).astype("float32")
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        cache.put_many(cache_key, chunk, vecs.tolist())
        items = [(f"m{offset + j}", text) for j, text in enumerate(chunk)]
        if manager:
            store.store_many(items, memory_type="long_term")
        else:
            store.store_many(items)
    cache.close()


def forget_query_vectors(cache_path: Path) -> None:
    """Drop the cached query vectors, so every measured query is embedded by the model (as a new question)."""
    import sqlite3

    conn = sqlite3.connect(str(cache_path), timeout=30)
    conn.execute(  # benchmark-owned file; the suffix is a constant, bound as a parameter
        "DELETE FROM embedding_cache WHERE model LIKE ?", ("%" + QUERY_CACHE_SUFFIX,)
    )
    conn.commit()
    conn.close()


def bench_hybrid(
    size: int, rounds: int, keep: Path | None, fronts: list[str], torch_threads: int
) -> None:
    """Keyword, semantic and hybrid top-10 at *size* memories in one namespace, interleaved query by query.

    Both front ends (``Memory`` and ``MemoryManager`` long-term) over their own SQLite + Chroma store; stored
    vectors are random unit vectors through the embedding cache (index size drives latency), every query a
    distinct LoCoMo question embedded by the model (its cached vector is dropped first). Each round runs every
    (front end, mode) pair once on a fresh question, in an order rotated from round to round, so all rows see
    the same load; "raw" is the model's encode plus the Chroma query of 10 on the Memory's very collection.
    """
    from agentmem_plugin import Memory, MemoryManager

    if torch_threads:
        import torch

        # on a loaded 2-core machine torch's 2 OpenMP threads thrash (p50 up to 10x, seen): same for all rows
        torch.set_num_threads(torch_threads)
    turns, questions = locomo()
    tmp_holder = None
    if keep is None:
        tmp_holder = tempfile.TemporaryDirectory()
        root = Path(tmp_holder.name)
    else:
        root = keep
    stores: dict[str, Any] = {}
    fills: dict[str, float] = {}
    for front in fronts:
        where = root / f"{front}-{size}"
        fresh = not where.exists()
        if front == "memory":
            store: Any = Memory(
                capacity=None, persistence=True, storage_path=where, embedder="default"
            )
        else:
            store = MemoryManager(
                storage_path=where, embedder="default", long_term_limit=None, enable_logging=False
            )
        if fresh:
            key = f"{_model_name()}#384"
            t0 = time.perf_counter()
            fill_searchable(
                store, where / "embeddings.sqlite3", key, turns, size, manager=front == "manager"
            )
            store.search(
                "warm up the index", limit=10, mode="semantic"
            )  # the first search syncs the index
            fills[front] = time.perf_counter() - t0
        forget_query_vectors(where / "embeddings.sqlite3")
        stores[front] = store
    model = stores[fronts[0]].embedder if fronts[0] == "memory" else None
    collection = stores["memory"]._semantic.index.collection if "memory" in stores else None
    for store in stores.values():  # warm up: page cache, model, Chroma's HNSW in memory
        for text in turns[:5]:
            for mode in ("keyword", "semantic", "hybrid"):
                store.search(text, limit=10, mode=mode)
    ops: list[tuple[str, str]] = [(f, m) for f in stores for m in ("keyword", "semantic", "hybrid")]
    if collection is not None and model is not None:
        ops.append(("raw", "encode+query"))
    lat: dict[tuple[str, str], list[float]] = {op: [] for op in ops}
    pool = questions * (1 + rounds * len(ops) // len(questions))
    clock = time.perf_counter_ns
    n = 0
    for r in range(rounds):
        for j in range(len(ops)):
            front, mode = ops[(r + j) % len(ops)]
            if n and n % len(questions) == 0:  # the questions come round again: embed them again too
                for f in stores:
                    forget_query_vectors(root / f"{f}-{size}" / "embeddings.sqlite3")
            q = pool[n]
            n += 1
            t0 = clock()
            if front == "raw":
                vector = model.inner.embed_query(q)  # type: ignore[union-attr]
                collection.query(query_embeddings=[vector], n_results=10, include=["distances"])  # type: ignore[union-attr]
            else:
                stores[front].search(q, limit=10, mode=mode)
            lat[(front, mode)].append((clock() - t0) / 1000)
    reused = len(questions) < n
    print(
        f"\none namespace of {size:,} memories, top-10, {rounds} rounds interleaved"
        f"{' (questions asked again: their cached vectors dropped first)' if reused else ''}"
    )
    for front in stores:
        if front in fills:
            print(f"  {front:<8} fill {fills[front]:8.1f} s ({size / fills[front]:,.0f}/s)")
    print(f"  {'front':<8} {'mode':<13} {'p50 ms':>8} {'p95 ms':>8}  {'vs semantic p50':>15}")
    for front, mode in ops:
        p50, p95 = quantiles(lat[(front, mode)])
        ref = quantiles(lat[(front, "semantic")])[0] if front != "raw" else None
        ratio = f"{p50 / ref:>14.2f}x" if ref else ""
        print(f"  {front:<8} {mode:<13} {p50 / 1000:>8.2f} {p95 / 1000:>8.2f}  {ratio}", flush=True)
    disk = {
        f: sum(p.stat().st_size for p in (root / f"{f}-{size}").rglob("*") if p.is_file())
        for f in stores
    }
    print(
        f"  RSS {rss_mb():.0f} MB; disk "
        + ", ".join(f"{f} {b / 1e6:.0f} MB" for f, b in disk.items())
    )
    for store in stores.values():
        store.close()
    if tmp_holder is not None:
        tmp_holder.cleanup()


def _model_name() -> str:
    from agentmem_plugin.embeddings import DEFAULT_MODEL_NAME

    return DEFAULT_MODEL_NAME


# -- hot paths ---------------------------------------------------------------------------------------------------


class BareLRU:
    """The physical reference: an OrderedDict LRU with nothing else."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict[str, object] = OrderedDict()

    def set(self, key: str, value: object) -> None:
        data = self.data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.capacity:
            data.popitem(last=False)

    def get(self, key: str) -> object:
        data = self.data
        value = data.get(key)
        if value is not None:
            data.move_to_end(key)
        return value


def paired(
    ref: Callable[[int], object], ours: Callable[[int], object], n: int
) -> tuple[list[float], ...]:
    """Latencies of ref(i) and ours(i), alternating op by op so both see the same load (microseconds)."""
    clock = time.perf_counter_ns
    out_ref, out_ours = [], []
    for i in range(n):
        t0 = clock()
        ref(i)
        t1 = clock()
        ours(i)
        t2 = clock()
        out_ref.append((t1 - t0) / 1000)
        out_ours.append((t2 - t1) / 1000)
    return out_ref, out_ours


def sent_per_call(
    wrap: Callable[[list[str]], Callable[[], None]], fn: Callable[[int], object]
) -> int:
    """How many commands/statements one fn(i) sends (*wrap* installs a recorder and returns its undo)."""
    sent: list[str] = []
    undo = wrap(sent)
    try:
        for i in range(10):
            fn(i)
    finally:
        undo()
    return round(len(sent) / 10)


def ratio_row(name: str, ours: list[float], ref: list[float], *, rate: bool = False) -> None:
    o, r = quantiles(ours)[0], quantiles(ref)[0]
    if rate:  # throughput relative to the reference: reference time / our time
        total_o, total_r = sum(ours), sum(ref)
        print(
            f"  {name:<44} p50 {o:8.2f} us  ref {r:8.2f} us   rate {total_r / total_o:5.2f}x of reference"
        )
    else:
        print(f"  {name:<44} p50 {o:8.2f} us  ref {r:8.2f} us   p50 {o / r:5.2f}x the reference")


def bench_hot(n: int, count_size: int) -> None:
    from agentmem_plugin.tiers.buffer import BufferTier

    print(f"\nhot paths, each beside its raw reference in the same run ({n:,} ops)")
    capacity = 10_000
    keys = [f"key-{i}" for i in range(n)]
    rng = random.Random(7)
    hot = [f"key-{rng.randrange(capacity)}" for _ in range(n)]
    entries = [MemoryEntry(k, i) for i, k in enumerate(keys)]

    def one_round() -> tuple[list[float], ...]:
        bare = BareLRU(capacity)
        buf = BufferTier(capacity)
        return (
            latencies(lambda i: bare.set(keys[i], i), n),
            latencies(lambda i: buf.put(entries[i]), n),
            latencies(lambda i: bare.get(hot[i]), n),
            latencies(lambda i: buf.get(hot[i]), n),
        )

    one_round()  # warm-up; the second round is reported
    ref, ours, ref_get, buf_get = one_round()
    ratio_row("BufferTier.put (evicting) vs OrderedDict set", ours, ref, rate=True)
    ratio_row("BufferTier.get (hit) vs OrderedDict get", buf_get, ref_get, rate=True)

    m = min(n, 5000)
    try:
        import redis

        from agentmem_plugin.tiers.redis import RedisTier

        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
    except Exception as exc:  # a benchmark reports what it cannot reach
        print(f"  redis: skipped ({exc})")
    else:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        value = orjson.dumps({"v": "x" * 64})

        def raw_set(i: int) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.set(f"{prefix}:raw:{i % 1000}", value)
            pipe.execute()

        def raw_get(i: int) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.get(f"{prefix}:raw:{i % 1000}")
            pipe.execute()

        tier = RedisTier(url=REDIS_URL, prefix=prefix, capacity=1000)

        def commands(sent: list[str]) -> Callable[[], None]:
            real = tier.client.execute_command

            def counting(*args: Any, **kwargs: Any) -> Any:
                sent.append(str(args[0]))
                return real(*args, **kwargs)

            tier.client.execute_command = counting
            return lambda: setattr(tier.client, "execute_command", real)

        def put(i: int) -> None:
            tier.put(MemoryEntry(f"k{i}", {"v": "x" * 64}))

        def get(i: int) -> None:
            tier.get(f"k{m - 1 - i % 1000}")

        def peek(i: int) -> None:
            tier.get(f"k{m - 1 - i % 1000}", touch=False)

        paired(raw_set, put, 200)  # warm-up: scripts loaded, connections open
        ref, ours = paired(raw_set, put, m)
        print(f"  (RedisTier: {sent_per_call(commands, put)} command per put, ", end="")
        print(f"{sent_per_call(commands, get)} per get)")
        ratio_row("RedisTier.put (capacity 1000, evicting)", ours, ref)
        ref, ours = paired(raw_get, get, m)
        ratio_row("RedisTier.get (hit, touch)", ours, ref)
        ref, ours = paired(raw_get, peek, m)
        ratio_row("RedisTier.get (touch=False)", ours, ref)
        tier.clear()
        tier.close()
        client.delete(*[f"{prefix}:raw:{i}" for i in range(1000)])

    try:
        import psycopg

        from agentmem_plugin.tiers.postgres import PostgresTier

        pg = PostgresTier(PG_DSN, table=f"bench_hot_{uuid.uuid4().hex[:8]}", max_size=2)
    except Exception as exc:
        print(f"  postgres: skipped ({exc})")
        return
    pg.put_many([MemoryEntry(f"k{i}", {"v": "x" * 64}) for i in range(1000)])
    select = f'SELECT key, value, expires_at FROM "{pg.table}" WHERE namespace = %s AND key = %s'

    def raw_pg(i: int) -> None:
        with pg.pool.connection() as conn:
            conn.execute(select, ("", f"k{i % 1000}")).fetchone()  # type: ignore[arg-type]

    def statements(sent: list[str]) -> Callable[[], None]:
        real = psycopg.Cursor.execute

        def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return real(self, query, *args, **kwargs)

        psycopg.Cursor.execute = counting  # type: ignore[method-assign]
        return lambda: setattr(psycopg.Cursor, "execute", real)

    def pg_get(i: int) -> None:
        pg.get(f"k{i % 1000}")

    def pg_peek(i: int) -> None:
        pg.get(f"k{i % 1000}", touch=False)

    paired(raw_pg, pg_get, 200)  # warm-up: statements prepared on the pool's connections
    print(f"  (PostgresTier: {sent_per_call(statements, pg_get)} statement per get)")
    ref, ours = paired(raw_pg, pg_get, m)
    ratio_row("PostgresTier.get (touch) vs raw SELECT, same pool", ours, ref)
    ref, ours = paired(raw_pg, pg_peek, m)
    ratio_row("PostgresTier.get (touch=False)", ours, ref)
    sizes = [1000] + ([count_size] if count_size > 1000 else [])
    done = 1000
    for size in sizes:
        while done < size:
            chunk = min(size, done + 10_000)
            pg.put_many([MemoryEntry(f"k{i}", {"v": "x" * 64}) for i in range(done, chunk)])
            done = chunk
        pg.count()
        lat = latencies(lambda i: pg.count(), 200)
        print(f"  {f'PostgresTier.count, {size:,} entries':<44} p50 {quantiles(lat)[0]:8.2f} us")
    pg.drop_tables()
    pg.close()


def bench_chroma(counts: list[int], per_ns: int, dim: int) -> None:
    """The semantic index's layout (one Chroma collection per namespace, cosine): what a namespace costs."""
    import chromadb
    import numpy as np

    print(
        f"\nChroma: one collection per namespace, {per_ns} random unit vectors of {dim} dims each"
    )
    print(
        f"  {'collections':>11} {'create s':>9} {'per ns ms':>9} | {'RSS MB':>7} {'RSS/ns KB':>9} | "
        f"{'disk MB':>8} {'disk/ns KB':>10} | {'open s':>7} {'query p50 ms':>12}"
    )
    rng = np.random.default_rng(1)
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            base = rss_mb()
            client = chromadb.PersistentClient(path=tmp)
            t0 = time.perf_counter()
            for n in range(count):
                vecs = rng.normal(size=(per_ns, dim)).astype("float32")
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                col = client.get_or_create_collection(f"ns-{n}", metadata={"hnsw:space": "cosine"})
                col.upsert(ids=[f"m{i}" for i in range(per_ns)], embeddings=vecs.tolist())
            create = time.perf_counter() - t0
            rss = rss_mb() - base
            disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
            t0 = time.perf_counter()
            fresh = chromadb.PersistentClient(path=tmp)
            col = fresh.get_collection("ns-0")
            q = rng.normal(size=(1, dim)).astype("float32")
            col.query(query_embeddings=q.tolist(), n_results=10)
            opened = time.perf_counter() - t0
            qv = q.tolist()
            lat = latencies(lambda i, c=col, v=qv: c.query(query_embeddings=v, n_results=10), 50)
            print(
                f"  {count:>11,} {create:>9.1f} {create / count * 1000:>9.1f} | {rss:>7.0f} "
                f"{rss * 1000 / count:>9.1f} | {disk / 1e6:>8.1f} {disk / 1e3 / count:>10.1f} | "
                f"{opened:>7.2f} {quantiles(lat)[0] / 1000:>12.2f}",
                flush=True,
            )
            del client, fresh


class RandomUnitEmbedder:
    """A FAKE embedder for layout benchmarks: a random unit vector per text, seeded by the text's hash.

    Index size, not meaning, drives latency here (as in bench_semantic); equal texts get equal vectors.
    """

    name = "bench-random-unit"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def _one(self, text: str) -> list[float]:
        import hashlib

        import numpy as np

        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype("float32")
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def bench_layout(counts: list[int], per_ns: int, rounds: int, dim: int) -> None:
    """Semantic search at N namespaces x *per_ns* memories through ``MemoryManager.with_namespace``.

    Fill (per namespace, with the FAKE random embedder), RSS growth of the process and bytes on disk of the
    store, the number of Chroma collections, then semantic top-10 p50 in the target namespace beside the same
    namespace alone in a store of its own (interleaved query by query) and in a random namespace.
    """
    from agentmem_plugin import MemoryManager

    turns, questions = locomo()
    print(
        f"\nSemantic layout: N namespaces x {per_ns} LoCoMo turns, FAKE random unit vectors of {dim} dims, "
        "semantic top-10 through with_namespace"
    )
    print(
        f"  {'namespaces':>10} {'fill s':>7} {'ms/ns':>6} | {'RSS MB':>7} {'KB/ns':>6} | {'disk MB':>8} "
        f"{'KB/ns':>6} | {'collections':>11} | {'search':>7} {'alone':>6} {'ratio':>6} | {'random ns':>9}  (us p50)"
    )

    def fill(mm: Any, ns: str, n: int) -> None:
        texts = {f"m{i}": f"{turns[(n * 37 + i) % len(turns)]} #{ns}-{i}" for i in range(per_ns)}
        mm.with_namespace(ns).store_many(texts, memory_type="long_term")

    def collections(mm: Any) -> int:
        return len(mm.with_namespace("target").long_term._semantic.client.list_collections())

    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            embedder = RandomUnitEmbedder(dim)
            alone = MemoryManager(
                storage_path=Path(tmp) / "alone", embedder=embedder, long_term_limit=None
            )
            fill(alone, "target", 0)
            base = rss_mb()
            many = MemoryManager(
                storage_path=Path(tmp) / "many", embedder=embedder, long_term_limit=None
            )
            names = [f"user-{n:05d}" for n in range(1, count)]
            t0 = time.perf_counter()
            for n, ns in enumerate(names, start=1):
                fill(many, ns, n)
            fill(many, "target", 0)
            took = time.perf_counter() - t0
            rss = rss_mb() - base
            files: dict[str, int] = {}
            for f in (Path(tmp) / "many").rglob("*"):
                if f.is_file():
                    part = f.name.removesuffix("-wal").removesuffix("-shm")
                    part = "archive/" if "archive" in f.parts else part
                    files[part] = files.get(part, 0) + f.stat().st_size
            disk = sum(files.values())
            ops = [
                lambda i, mm=mm: mm.with_namespace("target").search(
                    questions[i % len(questions)], limit=10, mode="semantic"
                )
                for mm in (many, alone)
            ]
            target, solo = interleaved(ops, rounds)
            rng = random.Random(3)
            picks = [rng.choice(names or ["target"]) for _ in range(rounds)]
            rand = quantiles(
                latencies(
                    lambda i, many=many, picks=picks: many.with_namespace(picks[i]).search(
                        questions[i % len(questions)], limit=10, mode="semantic"
                    ),
                    rounds,
                )
            )[0]
            print(
                f"  {count:>10,} {took:>7.1f} {took * 1e3 / count:>6.1f} | {rss:>7.0f} {rss * 1e3 / count:>6.0f} | "
                f"{disk / 1e6:>8.1f} {disk / 1e3 / count:>6.0f} | {collections(many):>11,} | {target:>7.0f} "
                f"{solo:>6.0f} {target / solo:>5.2f}x | {rand:>9.0f}",
                flush=True,
            )
            memories = count * per_ns
            print(
                "             disk per memory: "
                + ", ".join(
                    f"{name} {size / memories:,.0f} B"
                    for name, size in sorted(files.items(), key=lambda x: -x[1])
                    if size / memories >= 1
                ),
                flush=True,
            )
            many.close()
            alone.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    many = sub.add_parser("many")
    many.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    many.add_argument("--namespaces", default="1,100,1000,10000")
    many.add_argument("--per-ns", type=int, default=100)
    many.add_argument("--rounds", type=int, default=300)
    large = sub.add_parser("large")
    large.add_argument("--sizes", default="1000,100000")
    large.add_argument("--rounds", type=int, default=300)
    chroma = sub.add_parser("chroma")
    chroma.add_argument("--namespaces", default="10,100,1000")
    chroma.add_argument("--per-ns", type=int, default=100)
    chroma.add_argument("--dim", type=int, default=384)
    layout = sub.add_parser("layout")
    layout.add_argument("--namespaces", default="1,100,1000")
    layout.add_argument("--per-ns", type=int, default=100)
    layout.add_argument("--rounds", type=int, default=200)
    layout.add_argument("--dim", type=int, default=384)
    hybrid = sub.add_parser("hybrid")
    hybrid.add_argument("--size", type=int, default=100_000)
    hybrid.add_argument("--rounds", type=int, default=150)
    hybrid.add_argument("--fronts", default="memory,manager")
    hybrid.add_argument(
        "--keep", type=Path, default=None, help="reuse (or fill and keep) stores here"
    )
    hybrid.add_argument(
        "--torch-threads", type=int, default=0, help="torch.set_num_threads (0: its default)"
    )
    views = sub.add_parser("views")
    views.add_argument("--namespaces", default="1,100,1000,10000")
    views.add_argument("--per-ns", type=int, default=100)
    views.add_argument("--rounds", type=int, default=300)
    views.add_argument("--view-cache-size", type=int, default=1024)
    views.add_argument("--no-langgraph", action="store_true")
    hot = sub.add_parser("hot")
    hot.add_argument("-n", type=int, default=100_000)
    hot.add_argument("--count-size", type=int, default=100_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    if args.what == "many":
        bench_many(
            args.backend, [int(x) for x in args.namespaces.split(",")], args.per_ns, args.rounds
        )
    elif args.what == "views":
        bench_views(
            [int(x) for x in args.namespaces.split(",")],
            args.per_ns,
            args.rounds,
            args.view_cache_size,
            not args.no_langgraph,
        )
    elif args.what == "chroma":
        bench_chroma([int(x) for x in args.namespaces.split(",")], args.per_ns, args.dim)
    elif args.what == "layout":
        bench_layout(
            [int(x) for x in args.namespaces.split(",")], args.per_ns, args.rounds, args.dim
        )
    elif args.what == "large":
        bench_large([int(x) for x in args.sizes.split(",")], args.rounds)
    elif args.what == "hybrid":
        bench_hybrid(args.size, args.rounds, args.keep, args.fronts.split(","), args.torch_threads)
    else:
        bench_hot(args.n, args.count_size)


if __name__ == "__main__":
    main()
