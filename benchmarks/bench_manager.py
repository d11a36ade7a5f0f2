"""MemoryManager benchmarks, each beside the bare tier measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_manager.py [--quick]``

1. ``retrieve`` latency for a hit in each tier (cache, short-term, long-term, external), beside a bare ``get`` of
   that tier. Hits in long-term and the archive move the entry (promotion, restore), so each is measured on a
   fresh key.
2. Consolidation throughput: N entries from short-term into long-term (persistent, verified batches), beside raw
   ``SqliteTier.put_many`` of the same entries.
3. Cross-tier ``search`` p50 at N entries (keyword; LoCoMo turns), beside the long-term tier's own FTS5 search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import orjson
from bench_locomo import DATA, turns_of

from agentmem_plugin import MemoryEntry, MemoryManager
from agentmem_plugin.tiers.sqlite import SqliteTier


def lat(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    values = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        values.append((time.perf_counter_ns() - t0) / 1000)
    q = statistics.quantiles(values, n=100)
    return q[49], q[94]


def texts(n: int) -> list[str]:
    data = orjson.loads(DATA.read_bytes())
    turns = [t for s in data for _, t in turns_of(s["conversation"])]
    return [f"{turns[i % len(turns)]} (#{i})" for i in range(n)]


def bench_retrieve(tmp: Path, n: int) -> None:
    mm = MemoryManager(
        short_term_limit=n + 10, long_term_limit=10 * n, storage_path=tmp / "r", cache_size=n
    )
    mm.store_many({f"s{i}": i for i in range(n)})
    mm.store_many({f"l{i}": i for i in range(n)}, memory_type="long_term")
    mm.store_many({f"e{i}": i for i in range(n)}, memory_type="external")
    for i in range(n):
        mm.retrieve(f"s{i}")  # now cached too
    print(f"retrieve latency, one hit per tier ({n} keys each, persistent manager)")
    p50, p95 = lat(lambda i: mm.retrieve(f"s{i}"), n)
    print(f"  {'MemoryManager.retrieve, cache hit':<44} p50 {p50:8.1f} us  p95 {p95:8.1f} us")
    mm._cache.clear()
    ref = lat(lambda i: mm.short_tier.get(f"s{i}"), n)
    p50, p95 = lat(lambda i: mm.retrieve(f"s{i}"), n)
    print(f"  {'bare short-term get':<44} p50 {ref[0]:8.1f} us  p95 {ref[1]:8.1f} us")
    print(
        f"  {'MemoryManager.retrieve, short-term hit':<44} p50 {p50:8.1f} us  p95 {p95:8.1f} us  = {p50 / ref[0]:.2f}x bare"
    )
    ref = lat(lambda i: mm.long_tier.get(f"l{i}", touch=False), n)
    p50, p95 = lat(lambda i: mm.retrieve(f"l{i}"), n)
    print(f"  {'bare long-term get':<44} p50 {ref[0]:8.1f} us  p95 {ref[1]:8.1f} us")
    print(
        f"  {'MemoryManager.retrieve, long-term hit':<44} p50 {p50:8.1f} us  p95 {p95:8.1f} us  (promotes: a write)"
    )
    ref = lat(lambda i: mm.external_tier.get(f"e{i}", touch=False), n)
    p50, p95 = lat(lambda i: mm.retrieve(f"e{i}"), n)
    print(f"  {'bare archive get':<44} p50 {ref[0]:8.1f} us  p95 {ref[1]:8.1f} us")
    print(
        f"  {'MemoryManager.retrieve, external hit':<44} p50 {p50:8.1f} us  p95 {p95:8.1f} us  (restores: two writes)"
    )
    mm.close()


def bench_consolidation(tmp: Path, n: int) -> None:
    values = texts(n)
    raw = SqliteTier(tmp / "raw.sqlite3", table="long_term")
    entries = [MemoryEntry(f"k{i}", v) for i, v in enumerate(values)]
    t0 = time.perf_counter()
    raw.put_many(entries)
    raw_s = time.perf_counter() - t0
    raw.close()
    mm = MemoryManager(
        short_term_limit=n + 10, long_term_limit=10 * n, storage_path=tmp / "c", batch_size=1000
    )
    mm.store_many((f"k{i}", v) for i, v in enumerate(values))
    t0 = time.perf_counter()
    report = mm.consolidate()
    ours = time.perf_counter() - t0
    print(
        f"\nconsolidation of {n:,} entries (LoCoMo turns) from short-term into long-term, persistent"
    )
    print(f"  {'raw SqliteTier.put_many (same entries)':<44} {n / raw_s:10,.0f} entries/s")
    print(
        f"  {'MemoryManager.consolidate (verified batches)':<44} {report['moved'] / ours:10,.0f} entries/s  = {raw_s / ours:.2f}x raw"
    )
    t0 = time.perf_counter()
    queries = [v.split(":", 1)[1][:60] for v in values[:: max(1, n // 50)]][:50]
    ref = lat(lambda i: mm.long_tier.keyword_search(queries[i % len(queries)], 10), len(queries))
    p50, p95 = lat(lambda i: mm.search(queries[i % len(queries)], 10), len(queries))
    print(f"\ncross-tier search at {n:,} entries (keyword; {len(queries)} queries)")
    print(
        f"  {'long-term FTS5 search alone':<44} p50 {ref[0] / 1000:8.1f} ms  p95 {ref[1] / 1000:8.1f} ms"
    )
    print(
        f"  {'MemoryManager.search (all three tiers)':<44} p50 {p50 / 1000:8.1f} ms  p95 {p95 / 1000:8.1f} ms  = {p50 / ref[0]:.2f}x"
    )
    mm.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_retrieve(Path(tmp), 300 if args.quick else 2000)
        bench_consolidation(Path(tmp), 10_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
