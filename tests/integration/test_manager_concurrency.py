"""Real concurrency on one store: every acknowledged write survives, whatever moves run beside it.

Threads of one manager, and processes on one ``storage_path``, mix stores (to every tier), reads (which promote
and restore), consolidations and searches, with limits small enough that entries move between tiers all the
time. Each worker writes only its own keys and logs every write the manager acknowledged; at the end every key
holds its last acknowledged value (0 lost, 0 regressed) in exactly one tier.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from integration.backends import require_postgres, require_redis

from agentmem_plugin import MemoryManager

pytestmark = pytest.mark.slow

TIERS = ("short_term", "long_term", "external")


def _work(mm: MemoryManager, worker: int, steps: int, keys_each: int, seed: int) -> dict[str, int]:
    """Run a random mix of operations; return {key: last acknowledged value} of this worker's keys."""
    rng = random.Random(seed)
    acked: dict[str, int] = {}
    mine = [f"w{worker}-k{i}" for i in range(keys_each)]
    for step in range(steps):
        roll = rng.random()
        if roll < 0.45:
            key = rng.choice(mine)
            tier = rng.choices(TIERS, weights=(6, 3, 1))[0]
            mm.store(key, step, memory_type=tier, priority=rng.randint(-1, 1))
            acked[key] = step
        elif roll < 0.8:
            mm.retrieve(rng.choice(mine))  # promotes from long-term, restores from the archive
        elif roll < 0.9:
            mm.consolidate()
        else:
            mm.search(f"w{worker}", limit=5)
    return acked


def _check(mm: MemoryManager, acked: dict[str, int]) -> None:
    lost, regressed, doubled = [], [], []
    entries = mm.get_many(list(acked))
    for (key, value), entry in zip(acked.items(), entries, strict=True):
        if entry is None:
            lost.append(key)
        elif entry.value != value:
            regressed.append((key, entry.value, value))
        if sum(mm._tier(t).contains(key) for t in TIERS) > 1:
            doubled.append(key)
    assert (lost, regressed, doubled) == ([], [], [])


def _threads(mm: MemoryManager, n_threads: int, steps: int) -> dict[str, int]:
    results: list[dict[str, int]] = [{} for _ in range(n_threads)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = _work(mm, i, steps, 6, seed=i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return {k: v for r in results for k, v in r.items()}


@pytest.mark.parametrize("kind", ["memory", "directory"])
def test_eight_threads_moving_entries_all_the_time_lose_nothing(kind: str, tmp_path: Path) -> None:
    storage = {"storage_path": tmp_path / "store"} if kind == "directory" else {}
    with MemoryManager(
        short_term_limit=8, long_term_limit=16, enable_logging=False, **storage
    ) as mm:
        acked = _threads(mm, 8, 250)
        _check(mm, acked)
        assert (
            mm.get_stats()["archived"] > 0 and mm.get_stats()["promotions"] > 0
        )  # entries really moved
    if kind == "directory":
        with MemoryManager(short_term_limit=8, long_term_limit=16, **storage) as again:
            _check(again, acked)


def test_four_threads_on_redis_and_postgresql_lose_nothing(tmp_path: Path) -> None:
    urls = {
        "short_term": require_redis(),
        "long_term": require_postgres(),
        "archive": str(tmp_path / "archive"),
        "namespace": f"concurrency-{uuid.uuid4().hex[:12]}",
    }
    with MemoryManager(short_term_limit=8, long_term_limit=16, enable_logging=False, **urls) as mm:
        try:
            acked = _threads(mm, 4, 80)
            _check(mm, acked)
        finally:
            mm.clear_all()


def _process(settings: dict[str, Any], worker: int, steps: int, keys_each: int, out: Any) -> None:
    with MemoryManager(
        short_term_limit=8, long_term_limit=16, enable_logging=False, **settings
    ) as mm:
        out.put(_work(mm, worker, steps, keys_each, seed=100 + worker))


def _processes(settings: dict[str, Any], n: int, steps: int, keys_each: int) -> dict[str, int]:
    """Run *n* spawned worker processes on one store; return every key's last acknowledged value."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_process, args=(settings, i, steps, keys_each, out)) for i in range(n)
    ]
    for w in workers:
        w.start()
    acked: dict[str, int] = {}
    for _ in workers:
        acked.update(out.get(timeout=300))
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    return acked


def test_two_processes_on_one_storage_path_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared")
    MemoryManager(storage_path=path).close()  # create the store before the workers race to
    acked = _processes({"storage_path": path}, 2, 300, 8)
    with MemoryManager(short_term_limit=8, long_term_limit=16, storage_path=path) as mm:
        _check(mm, acked)


def test_three_processes_on_redis_and_postgresql_lose_nothing(tmp_path: Path) -> None:
    """No lock spans processes on servers: each move settles its copies against the third tier."""
    urls = {
        "short_term": require_redis(),
        "long_term": require_postgres(),
        "archive": str(tmp_path / "archive"),
        "namespace": f"concurrency-{uuid.uuid4().hex[:12]}",
    }
    acked = _processes(urls, 3, 150, 6)
    with MemoryManager(short_term_limit=8, long_term_limit=16, **urls) as mm:
        try:
            _check(mm, acked)
        finally:
            mm.clear_all()


def _archiver(path: str, worker: int, n: int) -> None:
    with MemoryManager(storage_path=path, enable_logging=False) as mm:
        for i in range(n):
            mm.store(f"w{worker}-{i}", {"worker": worker, "i": i}, memory_type="external")


def test_two_processes_archiving_into_one_storage_path_lose_nothing(tmp_path: Path) -> None:
    """Regression: each process cached the archive's key index and rewrote it whole (192 of 400 lost)."""
    path = str(tmp_path / "shared")
    MemoryManager(storage_path=path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_archiver, args=(path, i, 200)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0
    with MemoryManager(storage_path=path) as mm:
        archived = set(mm.keys("external"))
        assert archived == {f"w{w}-{i}" for w in range(2) for i in range(200)}
        assert mm.retrieve("w1-199") == {"worker": 1, "i": 199}
