"""Helpers for tests against real Redis and PostgreSQL servers (not a test module).

* The servers are found at ``AGENTMEM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and
  ``AGENTMEM_TEST_POSTGRES_DSN`` (default ``postgresql://127.0.0.1:5432/test``, trust auth).
* A test needing a server calls :func:`require_redis` / :func:`require_postgres`: it is skipped, with the reason,
  when the server cannot be reached, and fails instead when ``AGENTMEM_REQUIRE_SERVICES=1`` (CI).
* Every test works under a unique Redis prefix / PostgreSQL table (a uuid), and removes it afterwards:
  :class:`DisposableRedisTier` and :class:`DisposablePostgresTier` delete their data when closed.
* :class:`TcpProxy` stands between a tier and its server, so a test can make the server "go away".
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import uuid
from typing import Any

import pytest

from agentmem_plugin.errors import StorageError
from agentmem_plugin.tiers.postgres import PostgresTier
from agentmem_plugin.tiers.redis import RedisTier

REDIS_URL = os.environ.get("AGENTMEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("AGENTMEM_TEST_POSTGRES_DSN", "postgresql://127.0.0.1:5432/test")
TEST_PREFIX = "agentmem-test"


def unavailable(reason: str) -> None:
    """Skip the calling test for *reason*, or fail it when ``AGENTMEM_REQUIRE_SERVICES=1``."""
    if os.environ.get("AGENTMEM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (and AGENTMEM_REQUIRE_SERVICES=1 requires it)")
    pytest.skip(reason)


@functools.lru_cache(maxsize=1)
def _redis_problem() -> str | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {REDIS_URL}: {exc}"
    finally:
        client.close()
    return None


@functools.lru_cache(maxsize=1)
def _postgres_problem() -> str | None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_DSN}: {exc}"
    return None


def require_redis() -> str:
    """Return the test Redis URL, or skip (fail under AGENTMEM_REQUIRE_SERVICES=1) when it is unreachable."""
    problem = _redis_problem()
    if problem:
        unavailable(problem)
    return REDIS_URL


def require_postgres() -> str:
    """Return the test PostgreSQL DSN, or skip (fail under AGENTMEM_REQUIRE_SERVICES=1) when unreachable."""
    problem = _postgres_problem()
    if problem:
        unavailable(problem)
    return POSTGRES_DSN


def unique_prefix() -> str:
    return f"{TEST_PREFIX}-{uuid.uuid4().hex}"


def unique_table() -> str:
    return f"t_{uuid.uuid4().hex}"


def delete_redis_prefix(prefix: str) -> int:
    """Delete every Redis key under ``{prefix}:`` (SCAN + UNLINK); return how many."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return int(client.unlink(*names)) if names else 0
    finally:
        client.close()


def redis_keys(prefix: str) -> list[str]:
    """The Redis keys under ``{prefix}:``, sorted."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000))
    finally:
        client.close()


def drop_postgres_table(table: str) -> None:
    """Drop everything a PostgresTier's migrations created for *table*: tables (their indexes and triggers go
    with them), the sequence, the trigger functions and the namespace-terms function of the keyword index."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for name in (
            table,
            f"{table}_outbox",
            f"{table}_index_meta",
            f"{table}_migrations",
            f"{table}_counts",
        ):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sql.Identifier(f"{table}_seq")))
        conn.execute(
            sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(f"{table}_changed"))
        )
        conn.execute(
            sql.SQL("DROP FUNCTION IF EXISTS {}(text, tsvector)").format(
                sql.Identifier(f"{table}_ns_terms")
            )
        )
        conn.execute(
            sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(f"{table}_counted"))
        )


def postgres_functions(table: str) -> list[str]:
    """Names of the functions whose name starts with *table* (what :func:`drop_postgres_table` must drop)."""
    import psycopg

    with psycopg.connect(POSTGRES_DSN) as conn:
        rows = conn.execute(
            "SELECT proname FROM pg_proc WHERE starts_with(proname, %s) ORDER BY proname", (table,)
        ).fetchall()
    return [r[0] for r in rows]


def postgres_relations(table: str) -> list[str]:
    """Names of the relations (tables, indexes, sequences) whose name starts with *table*."""
    import psycopg

    with psycopg.connect(POSTGRES_DSN) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE starts_with(relname, %s) ORDER BY relname", (table,)
        ).fetchall()
    return [r[0] for r in rows]


class DisposableRedisTier(RedisTier):
    """A RedisTier for tests: a unique prefix unless given, and :meth:`close` deletes its namespace's keys."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", unique_prefix())
        super().__init__(require_redis(), **kwargs)

    def close(self) -> None:
        if not self._closed:
            with contextlib.suppress(StorageError):
                self.drop()
        super().close()


class DisposablePostgresTier(PostgresTier):
    """A PostgresTier for tests: a unique table unless given, and :meth:`close` drops its tables."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("table", unique_table())
        kwargs.setdefault("max_size", 2)
        super().__init__(require_postgres(), **kwargs)

    def close(self) -> None:
        if not self._closed:
            with contextlib.suppress(StorageError):
                self.drop_tables()
        super().close()


class TcpProxy:
    """A TCP relay on 127.0.0.1 to *target*; :meth:`stop` closes every connection, as a server going away would."""

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))  # the same port again: the server "comes back"
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopped:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream)
            self._start(self._pump, upstream, client)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop accepting and cut every relayed connection (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        for s in sockets:
            s.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the buffer tier as the reference of capacity, priority, LRU and TTL behaviour ------------------------------


def random_ops(seed: int, n: int, *, keys: int = 12) -> list[tuple[Any, ...]]:
    """A reproducible mix of puts (with priorities and TTLs), batch puts, reads, deletes and clock steps."""
    import random

    rng = random.Random(seed)
    names = [f"k{i}" for i in range(keys)]
    ops: list[tuple[Any, ...]] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.4:
            ttl = rng.choice([None, None, None, 5.0, 20.0])
            ops.append(("put", rng.choice(names), rng.choice([0, 0, 1, 2]), ttl))
        elif roll < 0.55:
            batch = [(rng.choice(names), rng.choice([0, 1])) for _ in range(rng.randint(1, 4))]
            ops.append(("put_many", batch))
        elif roll < 0.8:
            ops.append(("get", rng.choice(names)))
        elif roll < 0.9:
            ops.append(("delete", rng.choice(names)))
        else:
            ops.append(("advance", rng.choice([1.0, 3.0, 10.0])))
    return ops


def apply_op(tier: Any, op: tuple[Any, ...], clock: Any) -> None:
    """Apply one op of :func:`random_ops` to *tier* (the clock step is applied by the caller, once)."""
    from agentmem_plugin.entry import MemoryEntry

    kind = op[0]
    if kind == "put":
        _, key, priority, ttl = op
        tier.put(
            MemoryEntry(key, {"v": key, "t": clock.now}, ttl=ttl, priority=priority, clock=clock)
        )
    elif kind == "put_many":
        tier.put_many([MemoryEntry(k, k, priority=p, clock=clock) for k, p in op[1]])
    elif kind == "get":
        tier.get(op[1])
    elif kind == "delete":
        tier.delete(op[1])


# -- capacity under concurrent writers -------------------------------------------------------------------------------


class EvictionLog:
    """An ``on_evict`` callback recording ``(key, value)`` of every evicted entry, in call order.

    *delay* seconds of work per call widen the window between choosing victims and removing them, where a
    tier that is not atomic would let another writer slip in.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.events: list[tuple[str, Any]] = []
        self.delay = delay
        self._guard = threading.Lock()

    def __call__(self, entries: list[Any]) -> None:
        if self.delay:
            import time

            time.sleep(self.delay)
        with self._guard:
            self.events.extend((e.key, e.value) for e in entries)


def race_writers(
    tier: Any,
    observer: Any,
    log: EvictionLog,
    *,
    threads: int = 4,
    rounds: int = 60,
    keys_per_thread: int = 8,
) -> tuple[dict[str, int], list[int], list[str], list[BaseException]]:
    """*threads* threads rewrite their own keys through *tier* (the value is the round number), with reads.

    Each key has a single writer, so before rewriting it the writer knows what must be there: the value it
    wrote last, or nothing if and only if *log* (the tier's ``on_evict``) received exactly that value. Every
    tenth round stores a batch of three keys. Meanwhile *observer* (another client of the same namespace)
    polls the count. Return the last value written to each key, the counts seen, the violations found and
    the errors raised.
    """
    from agentmem_plugin.entry import MemoryEntry

    last: dict[str, int] = {}
    guard = threading.Lock()
    errors: list[BaseException] = []
    violations: list[str] = []
    counts: list[int] = []
    done = threading.Event()

    def check(key: str) -> None:
        mine = last.get(key)
        if mine is None:
            return
        current = tier.get(key, touch=False)
        if current is None:
            if (key, mine) not in log.events:
                violations.append(f"{key}={mine} vanished without reaching on_evict")
        elif current.value != mine:
            violations.append(f"{key} holds {current.value}, not the {mine} written last")

    def writer(n: int) -> None:
        try:
            for i in range(rounds):
                if i % 10 == 9:
                    batch = [MemoryEntry(f"w{n}-b{j}", i, priority=j % 2) for j in range(3)]
                    for e in batch:
                        check(e.key)
                    tier.put_many(batch)
                else:
                    key = f"w{n}-{i % keys_per_thread}"
                    check(key)
                    batch = [MemoryEntry(key, i, priority=i % 3)]
                    tier.put(batch[0])
                with guard:
                    last.update((e.key, i) for e in batch)
                tier.get(f"w{n}-{(i * 7) % keys_per_thread}")
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    def watch() -> None:
        import time

        while not done.is_set():
            counts.append(observer.count())
            time.sleep(0.001)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    watcher.join()
    return last, counts, violations, errors


def lost_writes(
    last: dict[str, int], final: dict[str, Any], evictions: list[tuple[str, Any]]
) -> list[str]:
    """Keys whose last written value is neither in the tier nor the last value handed to ``on_evict``."""
    last_evicted = dict(evictions)  # the later eviction of a key wins
    return [
        key
        for key, value in last.items()
        if final.get(key) != value and (key in final or last_evicted.get(key) != value)
    ]
