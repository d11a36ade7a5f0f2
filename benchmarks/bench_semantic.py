"""Semantic tier benchmarks, each beside its raw reference measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_semantic.py [--quick]``

1. Embedding throughput: ``Memory(persistence=True, embedder="default").store_many(texts)`` (embedding, SQLite,
   outbox, Chroma upsert) vs raw ``SentenceTransformer.encode(texts, batch_size=32)`` on the same texts.
2. Query latency at 10k and 100k memories: ``Memory.search(q, mode="semantic")`` (and hybrid) vs raw
   ``encode(q)`` + ``collection.query`` on the very same Chroma collection. To keep the run short, the stored
   memories get random unit vectors through the embedding cache (index size, not vector meaning, drives query
   latency); every query is a distinct real LoCoMo question, embedded by the model on both sides.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_locomo import DATA, turns_of

from agentmem_plugin import Memory
from agentmem_plugin.embeddings import EmbeddingCache, default_embedder


def pct(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[94] * 1000


def corpus() -> tuple[list[str], list[str]]:
    data = orjson.loads(DATA.read_bytes())
    texts = [text for sample in data for _, text in turns_of(sample["conversation"])]
    questions = [qa["question"] for sample in data for qa in sample["qa"]]
    return texts, questions


def bench_throughput(texts: list[str]) -> None:
    embedder = default_embedder()
    model = embedder.model
    model.encode(["warm up"], batch_size=32)
    half = len(texts) // 2
    raw_texts, our_texts = (
        texts[:half],
        texts[half : 2 * half],
    )  # distinct texts: no cache can help us
    t0 = time.perf_counter()
    model.encode(raw_texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    raw = len(raw_texts) / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(capacity=None, persistence=True, storage_path=tmp, embedder="default")
        t0 = time.perf_counter()
        memory.store_many((f"t{i}", text) for i, text in enumerate(our_texts))
        ours = len(our_texts) / (time.perf_counter() - t0)
        memory.close()
    print(f"embedding throughput ({half} LoCoMo turns each side, batch 32)")
    print(f"  raw SentenceTransformer.encode       {raw:8.1f} texts/s")
    print(
        f"  Memory.store_many (embed+SQLite+Chroma) {ours:5.1f} texts/s   = {ours / raw:.2f}x of raw"
    )


def fill(
    memory: Memory, cache_path: Path, texts: list[str], start: int, count: int, dim: int
) -> None:
    """Store *count* memories whose vectors are random unit vectors placed in the embedding cache first."""
    rng = random.Random(start)
    cache = EmbeddingCache(cache_path)
    batch = 5000
    for offset in range(start, start + count, batch):
        chunk = [
            f"{texts[i % len(texts)]} (#{i})"
            for i in range(offset, min(offset + batch, start + count))
        ]
        vectors = []
        for _ in chunk:
            v = [rng.gauss(0, 1) for _ in range(dim)]
            n = sum(x * x for x in v) ** 0.5
            vectors.append([x / n for x in v])
        cache.put_many(memory.embedder.cache_key, chunk, vectors)  # type: ignore[union-attr]
        memory.store_many((f"m{offset + j}", text) for j, text in enumerate(chunk))
    cache.close()


def bench_queries(texts: list[str], questions: list[str], sizes: list[int], n_queries: int) -> None:
    embedder = default_embedder()
    model = embedder.model
    dim = embedder.dim
    rng = random.Random(3)
    pool = rng.sample(questions, min(len(questions), 3 * n_queries * len(sizes)))
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(capacity=None, persistence=True, storage_path=tmp, embedder="default")
        collection = memory._semantic.index.collection  # type: ignore[union-attr]  # the very same index
        stored = 0
        for size in sizes:
            t0 = time.perf_counter()
            fill(memory, Path(tmp) / "embeddings.sqlite3", texts, stored, size - stored, dim)
            build = time.perf_counter() - t0
            stored = size
            raw_lat, sem_lat, hyb_lat = [], [], []
            for _ in range(n_queries):
                q_raw, q_sem, q_hyb = pool.pop(), pool.pop(), pool.pop()
                t0 = time.perf_counter()
                vector = model.encode([q_raw], normalize_embeddings=True, show_progress_bar=False)
                collection.query(query_embeddings=vector, n_results=10, include=["distances"])
                raw_lat.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                memory.search(q_sem, limit=10, mode="semantic")
                sem_lat.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                memory.search(q_hyb, limit=10, mode="hybrid")
                hyb_lat.append(time.perf_counter() - t0)
            r50, r95 = pct(raw_lat)
            s50, s95 = pct(sem_lat)
            h50, h95 = pct(hyb_lat)
            print(
                f"\nquery latency at {size:,} memories (filled in {build:.0f} s; {n_queries} distinct questions each)"
            )
            print(f"  raw encode + chroma query       p50 {r50:6.1f} ms  p95 {r95:6.1f} ms")
            print(
                f"  Memory.search(mode='semantic')  p50 {s50:6.1f} ms  p95 {s95:6.1f} ms   = {s50 / r50:.2f}x raw p50"
            )
            print(
                f"  Memory.search(mode='hybrid')    p50 {h50:6.1f} ms  p95 {h95:6.1f} ms   (BM25 + dense + context)"
            )
        memory.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    texts, questions = corpus()
    bench_throughput(texts[:600] if args.quick else texts[:3000])
    bench_queries(
        texts, questions, [2_000] if args.quick else [10_000, 100_000], 30 if args.quick else 100
    )


if __name__ == "__main__":
    main()
