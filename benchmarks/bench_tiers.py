"""Tier benchmarks, each beside its physical reference measured in the same run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_tiers.py [--quick]``

* buffer (through ``Memory``): store with evictions, retrieve hits, an 80/20 retrieve/store mix,
  beside a bare ``OrderedDict`` LRU doing the same work;
* SQLite tier (through ``Memory(persistence=True)``): single durable ``store``, ``store_many`` of 100k
  entries, ``retrieve`` by key, keyword search at 100k, beside raw ``sqlite3`` on the same schema (FTS included);
* ``import agentmem_plugin`` time in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from agentmem_plugin import Memory
from agentmem_plugin.codec import encode_json, encode_value
from agentmem_plugin.search import document_text, words


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} ops/s"


def timed(fn: Callable[[int], object], n: int) -> tuple[float, list[float]]:
    """Run fn(i) for i in range(n): total seconds (untimed loop) and per-op latencies (timed loop), in us."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    total = time.perf_counter() - start
    lat = []
    clock = time.perf_counter_ns
    for i in range(min(n, 20000)):
        t0 = clock()
        fn(i)
        lat.append((clock() - t0) / 1000)
    return total, lat


def pct(lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100)
    return f"p50 {q[49]:7.2f} us  p95 {q[94]:7.2f} us"


def row(
    name: str, n: int, total: float, lat: list[float], ref: tuple[float, list[float]] | None = None
) -> None:
    line = f"  {name:<34}{rate(n, total)}  {pct(lat)}"
    if ref is not None:
        line += f"   = {ref[0] / total:5.2f}x of reference rate"
    print(line)


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


def bench_buffer(n: int) -> None:
    print(f"\nbuffer tier through Memory (capacity 10,000; {n:,} ops each)")
    capacity = 10_000
    keys = [f"key-{i}" for i in range(n)]
    rng = random.Random(7)
    hot = [f"key-{rng.randrange(capacity)}" for _ in range(n)]
    mix = [rng.random() < 0.8 for _ in range(n)]

    bare = BareLRU(capacity)
    ref_store = timed(lambda i: bare.set(keys[i], i), n)
    row("bare OrderedDict set+evict", n, *ref_store)
    memory = Memory(capacity=capacity)
    res = timed(lambda i: memory.store(keys[i], i), n)
    row("Memory.store (evicting)", n, *res, ref=ref_store)

    bare = BareLRU(capacity)
    memory = Memory(capacity=capacity)
    for i in range(capacity):
        bare.set(f"key-{i}", i)
        memory.store(f"key-{i}", i)
    ref_get = timed(lambda i: bare.get(hot[i]), n)
    row("bare OrderedDict get (hit)", n, *ref_get)
    res = timed(lambda i: memory.retrieve(hot[i]), n)
    row("Memory.retrieve (hit)", n, *res, ref=ref_get)

    def bare_mix(i: int) -> None:
        if mix[i]:
            bare.get(hot[i])
        else:
            bare.set(keys[i], i)

    def mem_mix(i: int) -> None:
        if mix[i]:
            memory.retrieve(hot[i])
        else:
            memory.store(keys[i], i)

    ref_mix = timed(bare_mix, n)
    row("bare OrderedDict 80/20 get/set", n, *ref_mix)
    res = timed(mem_mix, n)
    row("Memory 80/20 retrieve/store", n, *res, ref=ref_mix)

    # Reads hand out copies (a caller cannot change the store through what it read): the cost of copying a
    # small JSON document beside the int values above.
    doc = {
        "user": "alice",
        "tags": ["a", "b", "c"],
        "score": 0.5,
        "nested": {"n": 1, "l": [1, 2, 3]},
    }
    bare = BareLRU(capacity)
    memory = Memory(capacity=capacity)
    for i in range(capacity):
        bare.set(f"key-{i}", doc)
        memory.store(f"key-{i}", doc)
    ref_doc = timed(lambda i: bare.get(hot[i]), n)
    row("bare OrderedDict get (dict value)", n, *ref_doc)
    res = timed(lambda i: memory.retrieve(hot[i]), n)
    row("Memory.retrieve (hit, dict value)", n, *res, ref=ref_doc)
    res = timed(lambda i: memory.get_entry(hot[i]), n)
    row("Memory.get_entry (hit, dict value)", n, *res, ref=ref_doc)


LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"


def locomo_turns() -> list[str]:
    """Real conversational text: the LoCoMo dev turns (read from ../shared, never copied)."""
    import orjson

    data = orjson.loads(LOCOMO.read_bytes())
    turns = []
    for conv in data:
        c = conv["conversation"]
        for name, session in c.items():
            if name.startswith("session_") and isinstance(session, list):
                turns += [f"{t['speaker']}: {t['text']}" for t in session]
    return turns


def _fts_query(query: str) -> str | None:
    """Free text as an FTS5 query: its non-stop-words, each quoted, OR-ed."""
    terms = words(query)
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(terms)) if terms else None


def raw_schema_db(path: Path) -> sqlite3.Connection:
    """The physical reference: the entries table and a plain FTS5 index kept by triggers, with raw sqlite3.

    (The tier itself now keeps per-namespace BM25 postings instead of FTS5; see docs/storage.md, "Scale".)
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.executescript(
        """
        CREATE TABLE memories (
            id INTEGER PRIMARY KEY, namespace TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, value BLOB NOT NULL,
            search_text TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, expires_at REAL, ttl REAL,
            priority INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT '{}',
            access_count INTEGER NOT NULL DEFAULT 0, last_accessed REAL, seq INTEGER NOT NULL DEFAULT 0,
            UNIQUE (namespace, key)
        );
        CREATE INDEX memories_seq ON memories (seq);
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            search_text, content=memories, content_rowid='id', tokenize='porter unicode61'
        );
        CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts (rowid, search_text) VALUES (new.id, new.search_text);
        END;
        CREATE TRIGGER memories_au AFTER UPDATE OF search_text ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
            INSERT INTO memories_fts (rowid, search_text) VALUES (new.id, new.search_text);
        END;
        """
    )
    return conn


RAW_UPSERT = (
    "INSERT INTO memories (namespace, key, value, search_text, created_at, expires_at, ttl, priority, tags, metadata, "
    "access_count, last_accessed, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (namespace, key) DO UPDATE SET "
    "value = excluded.value, search_text = excluded.search_text, seq = excluded.seq"
)


def raw_row(i: int, key: str, text: str, now: float) -> tuple[object, ...]:
    """What raw code must at least do per row: encode the value and the search text."""
    return (
        "",
        key,
        encode_value(text),
        document_text(key, text),
        now,
        None,
        None,
        0,
        encode_json([]).decode(),
        "{}",
        0,
        None,
        i,
    )


def bench_sqlite(n_bulk: int, n_single: int) -> None:
    print(
        "\nSQLite tier through Memory(persistence=True) vs raw sqlite3 on the same schema (FTS included);"
    )
    print("texts: LoCoMo dialogue turns, cycled")
    rng = random.Random(11)
    turns = locomo_turns()
    texts = [f"{turns[i % len(turns)]} (#{i})" for i in range(n_bulk)]
    words = sorted(
        {w for t in turns[:500] for w in t.lower().split() if w.isalpha() and len(w) > 3}
    )
    keys = [f"k{i}" for i in range(n_bulk)]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        # store_many of n_bulk
        conn = raw_schema_db(tmpdir / "raw.sqlite3")
        now = time.time()
        t0 = time.perf_counter()
        rows = [raw_row(i, keys[i], texts[i], now) for i in range(n_bulk)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_UPSERT, rows)
        conn.execute("COMMIT")
        raw_bulk = time.perf_counter() - t0
        print(f"  {'raw executemany ' + format(n_bulk, ','):<34}{rate(n_bulk, raw_bulk)}")
        memory = Memory(capacity=None, persistence=True, storage_path=tmpdir / "ours")
        t0 = time.perf_counter()
        memory.store_many(zip(keys, texts))
        ours_bulk = time.perf_counter() - t0
        print(
            f"  {'Memory.store_many ' + format(n_bulk, ','):<34}{rate(n_bulk, ours_bulk)}"
            f"   = {raw_bulk / ours_bulk:5.2f}x of raw rate"
        )

        # retrieve by key
        sample = [keys[rng.randrange(n_bulk)] for _ in range(20000)]

        def raw_get(i: int) -> object:
            r = conn.execute(
                "SELECT value, expires_at FROM memories WHERE namespace = ? AND key = ?",
                ("", sample[i % len(sample)]),
            ).fetchone()
            return r

        ref = timed(raw_get, 20000)
        row("raw conn.execute get by key", 20000, *ref)
        res = timed(lambda i: memory.retrieve(sample[i % len(sample)]), 20000)
        row("Memory.retrieve", 20000, *res, ref=ref)

        # keyword search at n_bulk
        queries = [" ".join(rng.sample(words, 3)) for _ in range(50)]
        sql = (
            "SELECT m.key, bm25(memories_fts) FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid "
            "WHERE memories_fts MATCH ? ORDER BY 2 LIMIT 10"
        )
        ref = timed(lambda i: conn.execute(sql, (_fts_query(queries[i % 50]),)).fetchall(), 50)
        row(f"raw FTS5 bm25 top-10 @ {n_bulk:,}", 50, *ref)
        res = timed(lambda i: memory.search(queries[i % 50], limit=10), 50)
        row(f"Memory.search top-10 @ {n_bulk:,}", 50, *res, ref=ref)
        memory.close()

        # single durable stores (one transaction each)
        conn2 = raw_schema_db(tmpdir / "raw2.sqlite3")

        def raw_store(i: int) -> None:
            conn2.execute("BEGIN IMMEDIATE")
            conn2.execute(
                RAW_UPSERT, raw_row(i, f"s{i}-{time.perf_counter_ns()}", texts[i % n_bulk], now)
            )
            conn2.execute("COMMIT")

        ref = timed(raw_store, n_single)
        row("raw single-row transaction", n_single, *ref)
        single = Memory(capacity=None, persistence=True, storage_path=tmpdir / "single")
        res = timed(
            lambda i: single.store(f"s{i}-{time.perf_counter_ns()}", texts[i % n_bulk]), n_single
        )
        row("Memory.store (durable, one txn)", n_single, *res, ref=ref)
        single.close()
        conn.close()
        conn2.close()


def bench_import() -> None:
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t = time.perf_counter(); import agentmem_plugin; "
                "print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(float(out.stdout))
    print(
        f"\nimport agentmem_plugin: median {statistics.median(runs) * 1000:.0f} ms over 5 fresh interpreters"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    n = 50_000 if args.quick else 200_000
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")
    bench_buffer(n)
    bench_sqlite(10_000 if args.quick else 100_000, 500 if args.quick else 3000)
    bench_import()


if __name__ == "__main__":
    main()
