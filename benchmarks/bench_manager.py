"""MemoryManager benchmarks, each beside the bare tier measured in the same run (and, optionally, another build).

Run: ``.venv/bin/python benchmarks/bench_manager.py [--quick] [--before DIR]``

1. ``retrieve`` latency for a hit in each tier (cache, short-term, long-term, external), beside a bare ``get`` of
   that tier. Hits in long-term and the archive move the entry (promotion, restore), so each is measured on a
   fresh key.
2. Consolidation throughput: N entries from short-term into long-term (persistent, verified batches), beside raw
   ``SqliteTier.put_many`` of the same entries.
3. Cross-tier ``search`` p50 at N entries (keyword; LoCoMo turns), beside the long-term tier's own FTS5 search.
4. ``store`` p50 into short-term (no embedder: what a store costs without the model).
5. (this checkout only) Search with memories spread over the three tiers beside the same memories all in
   long-term, for keyword, semantic and hybrid search. The embedder is a fast FAKE (random unit vectors from a
   hash of the text, dimension 384, cached): index size, not meaning, drives latency.

Rows 1-4 pass ``embedder=None`` on both sides, so a build whose default is semantic is compared like for like.

``--before DIR`` runs the same measurements, in the same run, against the package found in *DIR* (a checkout of
an earlier commit, e.g. ``git worktree add /tmp/before <commit>``) and prints both side by side; ``--rounds N``
alternates the two sides N times and keeps each side's best, so a busy moment does not decide the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def _filled(path: Path, n: int, cache: int) -> MemoryManager:
    mm = MemoryManager(
        short_term_limit=n + 10,
        long_term_limit=10 * n,
        storage_path=path,
        cache_size=cache,
        embedder=None,
    )
    mm.store_many({f"s{i}": i for i in range(n)})
    mm.store_many({f"l{i}": i for i in range(n)}, memory_type="long_term")
    mm.store_many({f"e{i}": i for i in range(n)}, memory_type="external")
    return mm


def bench_retrieve(tmp: Path, n: int) -> dict[str, float]:
    cached = _filled(tmp / "cached", n, n)
    for i in range(n):
        cached.retrieve(f"s{i}")  # now cached
    out = {"retrieve: cache hit": lat(lambda i: cached.retrieve(f"s{i}"), n)[0]}
    cached.close()
    mm = _filled(tmp / "uncached", n, 0)
    out["bare short-term get"] = lat(lambda i: mm.short_tier.get(f"s{i}"), n)[0]
    out["retrieve: short-term hit"] = lat(lambda i: mm.retrieve(f"s{i}"), n)[0]
    out["bare long-term get"] = lat(lambda i: mm.long_tier.get(f"l{i}", touch=False), n)[0]
    out["retrieve: long-term hit (promotes)"] = lat(lambda i: mm.retrieve(f"l{i}"), n)[0]
    out["bare archive get"] = lat(lambda i: mm.external_tier.get(f"e{i}", touch=False), n)[0]
    out["retrieve: external hit (restores)"] = lat(lambda i: mm.retrieve(f"e{i}"), n)[0]
    out["store: short-term p50"] = lat(lambda i: mm.store(f"n{i}", i), n)[0]
    mm.close()
    return out


def bench_consolidation(tmp: Path, n: int) -> dict[str, float]:
    values = texts(n)
    raw = SqliteTier(tmp / "raw.sqlite3", table="long_term")
    entries = [MemoryEntry(f"k{i}", v) for i, v in enumerate(values)]
    t0 = time.perf_counter()
    raw.put_many(entries)
    raw_s = time.perf_counter() - t0
    raw.close()
    mm = MemoryManager(
        short_term_limit=n + 10,
        long_term_limit=10 * n,
        storage_path=tmp / "c",
        batch_size=1000,
        embedder=None,
    )
    mm.store_many((f"k{i}", v) for i, v in enumerate(values))
    t0 = time.perf_counter()
    report = mm.consolidate()
    ours = time.perf_counter() - t0
    assert report["moved"] == n, report
    queries = [v.split(":", 1)[1][:60] for v in values[:: max(1, n // 50)]][:50]
    ref = lat(lambda i: mm.long_tier.keyword_search(queries[i % len(queries)], 10), len(queries))
    p50, _ = lat(lambda i: mm.search(queries[i % len(queries)], 10), len(queries))
    mm.close()
    return {
        "raw put_many entries/s": n / raw_s,
        "consolidate entries/s": n / ours,
        "consolidate / raw": raw_s / ours,
        "long-term FTS5 search p50": ref[0],
        "search, all tiers p50": p50,
    }


class FastFakeEmbedder:
    """A FAKE embedder: a random unit vector per text, from its hash (no meaning; latency is the index's)."""

    name = "bench-fast-fake"
    dim = 384

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        out = []
        for text in texts:
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            v = rng.standard_normal(self.dim)
            out.append((v / np.linalg.norm(v)).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def bench_spread(tmp: Path, n: int) -> dict[str, float]:
    """Search p50 with *n* memories spread over the three tiers, beside the same memories all in long-term."""
    values = texts(n)
    queries = [v.split(":", 1)[1][:60] for v in values[:: max(1, n // 50)]][:50]
    third = n // 3
    out: dict[str, float] = {}
    for layout in ("long-term only", "spread over 3 tiers"):
        spread = layout.startswith("spread")
        mm = MemoryManager(
            short_term_limit=third if spread else 10,
            long_term_limit=third if spread else 10 * n,
            storage_path=tmp / layout.replace(" ", "-"),
            embedder=FastFakeEmbedder(),
        )
        mm.store_many({f"k{i}": v for i, v in enumerate(values)}, memory_type="long_term")
        if spread:  # a third read back (promoted), a third archived by the limit
            for i in range(third):
                mm.retrieve(f"k{i}")
        counts = {t: len(mm.keys(t)) for t in ("short_term", "long_term", "external")}
        assert sum(counts.values()) == n, counts
        for mode in ("keyword", "semantic", "hybrid"):
            mm.search(queries[0], 10, mode=mode)  # warm: the archive's word index, the query cache
            out[f"{mode} search p50, {layout}"] = lat(
                lambda i, m=mode, mm=mm: mm.search(queries[i % len(queries)], 10, mode=m),
                len(queries),
            )[0]
        mm.close()
    for mode in ("keyword", "semantic", "hybrid"):
        out[f"{mode}: spread / long-term only"] = (
            out[f"{mode} search p50, spread over 3 tiers"] / out[f"{mode} search p50, long-term only"]
        )
    return out


def measure(quick: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = bench_retrieve(Path(tmp), 300 if quick else 2000)
        out.update(bench_consolidation(Path(tmp), 10_000 if quick else 100_000))
    return out


def _run(checkout: Path | None, quick: bool) -> dict[str, float]:
    """Measure in a fresh interpreter: this checkout's package, or the one in *checkout*."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout.resolve())
    cmd = [sys.executable, __file__, "--json", *(["--quick"] if quick else [])]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    """The best of each measure over *runs* (highest rate, lowest latency): the least disturbed run."""
    return {
        name: (max if "/s" in name or "/ raw" in name else min)(r[name] for r in runs)
        for name in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--before", type=Path, help="also measure the package in this checkout")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate before/after this many times"
    )
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.quick)))
        return
    before_runs: list[dict[str, float]] = []
    after_runs: list[dict[str, float]] = []
    for _ in range(args.rounds):  # alternated, so both sides see the same machine
        if args.before is not None:
            before_runs.append(_run(args.before, args.quick))
        after_runs.append(_run(None, args.quick))
    before = _best(before_runs) if before_runs else {}
    after = _best(after_runs)
    n = "10,000" if args.quick else "100,000"
    print(f"MemoryManager, persistent (storage_path); consolidation and search at {n} LoCoMo turns")
    print(f"best of {args.rounds} alternated run(s) per side")
    print(f"  {'measure':<40} {'before':>12} {'after':>12} {'after/before':>13}")
    for name, value in after.items():
        unit = "" if "/s" in name or "/ raw" in name else " us"
        old = before.get(name)
        ratio = f"{value / old:12.2f}x" if old else ""
        shown_old = f"{old:12,.1f}" if old is not None else f"{'':12}"
        print(f"  {name + unit:<40} {shown_old} {value:12,.1f} {ratio:>13}")
    size = 900 if args.quick else 9000
    with tempfile.TemporaryDirectory() as tmp:
        spread = bench_spread(Path(tmp), size)
    print(f"\nsearch with {size:,} memories spread over the three tiers vs all in long-term (this build)")
    for name, value in spread.items():
        unit = "x" if "/" in name else " us"
        print(f"  {name:<48} {value:12,.2f}{unit}")


if __name__ == "__main__":
    main()
