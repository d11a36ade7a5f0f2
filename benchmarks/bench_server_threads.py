"""Store + retrieve throughput of one MemoryManager on Redis + PostgreSQL, from 1 and 4 threads.

Measures what the tier set's lock (threads of one process write and move one at a time on servers) costs. Run
the same script on an older checkout for the "before" column::

    .venv/bin/python benchmarks/bench_server_threads.py
    PYTHONPATH=/tmp/wt-before .venv/bin/python benchmarks/bench_server_threads.py

Needs the Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, database ``test``) servers.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid

from agentmem_plugin import MemoryManager


def run(n_threads: int, ops: int) -> float:
    """Return store+retrieve operations per second with *n_threads* threads doing *ops* of each."""
    urls = {
        "short_term": "redis://127.0.0.1:6379/0",
        "long_term": "postgresql://127.0.0.1:5432/test",
        "archive": tempfile.mkdtemp(),
        "namespace": f"bench-threads-{uuid.uuid4().hex[:8]}",
    }
    with MemoryManager(
        short_term_limit=200, long_term_limit=None, enable_logging=False, embedder=None, **urls
    ) as mm:

        def work(i: int) -> None:
            for j in range(ops):
                kind = "long_term" if j % 3 == 0 else "short_term"
                mm.store(f"t{i}-{j % 50}", j, memory_type=kind)
                mm.retrieve(f"t{i}-{(j * 7) % 50}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        mm.clear_all()
    return n_threads * ops * 2 / elapsed


def main() -> None:
    """Print the throughput at 1 and 4 threads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300, help="stores (and retrieves) per thread")
    args = parser.parse_args()
    for n in (1, 4):
        print(f"{n} threads: {run(n, args.ops):,.0f} ops/s")


if __name__ == "__main__":
    main()
