"""Many threads on one Memory: no exceptions, capacity always honoured, no lost updates."""

from __future__ import annotations

import random
import sys
import threading
import time

from agentmem_plugin import Memory

THREADS = 8
OPS_PER_THREAD = 10_000
CAPACITY = 256
COUNTER = "shared-counter"


def test_threads_hammer_one_memory() -> None:
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often to widen race windows
    try:
        _hammer()
    finally:
        sys.setswitchinterval(old_interval)


def _hammer() -> None:
    mem = Memory(capacity=CAPACITY)
    tier = mem.tier
    mem.store(COUNTER, 0, priority=10)
    errors: list[BaseException] = []
    sizes_seen: list[int] = []
    update_calls = [0] * THREADS
    start = threading.Barrier(THREADS + 1)
    done = threading.Event()

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            start.wait()
            for i in range(OPS_PER_THREAD):
                key = f"k{rng.randrange(600)}"
                r = rng.random()
                if i % 500 == 0:
                    hits = mem.search("value data", limit=5)
                    assert len(hits) <= 5
                elif r < 0.35:
                    mem.store(key, {"value": i, "data": "value data"}, ttl=rng.choice([None, 3600]))
                elif r < 0.65:
                    v = mem.retrieve(key)
                    assert v is None or isinstance(v, dict)
                elif r < 0.75:
                    mem.delete(key)
                elif r < 0.80:
                    mem.store_many({f"{key}-a": 1, f"{key}-b": 2})
                else:
                    mem.update(COUNTER, lambda c: c + 1, default=0)
                    update_calls[n] += 1
        except BaseException as exc:  # collected and re-raised by the main thread
            errors.append(exc)

    def checker() -> None:
        try:
            start.wait()
            while not done.is_set():
                sizes_seen.append(len(mem))
                with tier._lock:  # internals are consistent only under the tier's lock
                    n = len(tier._entries)  # type: ignore[attr-defined]
                    assert n <= CAPACITY, n
                    assert len(tier._lru) == n  # type: ignore[attr-defined]
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    check = threading.Thread(target=checker)
    for t in [*workers, check]:
        t.start()
    t0 = time.monotonic()
    for t in workers:
        t.join(timeout=120)
    done.set()
    check.join(timeout=10)
    elapsed = time.monotonic() - t0

    assert not any(t.is_alive() for t in [*workers, check])
    assert errors == []
    assert sizes_seen, "the checker never sampled"
    assert max(sizes_seen) <= CAPACITY
    assert len(mem) <= CAPACITY
    assert len(mem.keys()) == len(mem)
    assert sum(update_calls) > 0
    assert mem.retrieve(COUNTER) == sum(update_calls)
    assert mem.get_stats()["evictions"] > 0  # capacity pressure was real
    assert elapsed < 60
