"""PostgresTier reads against a real server: a get is one SELECT (statements counted at the connection, not
timed), and the reads it records reach the database whole: with the next write's transaction (an LRU eviction
right after reads sees them), by a timer, at 1024 keys, on stats and close, from many threads and processes,
only onto the write of the key that was read."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from integration.backends import drop_postgres_table, require_postgres, unique_table

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.tiers.postgres import PostgresTier

Factory = Callable[..., PostgresTier]
SLOW = 3600.0  # a flush interval no test outlives: only what the test does flushes


@pytest.fixture
def table() -> Iterator[str]:
    require_postgres()
    name = unique_table()
    yield name
    drop_postgres_table(name)


@pytest.fixture
def make(table: str) -> Iterator[Factory]:
    made: list[PostgresTier] = []

    def factory(**kwargs: Any) -> PostgresTier:
        kwargs.setdefault("table", table)
        kwargs.setdefault("max_size", 2)
        kwargs.setdefault("touch_flush_interval", SLOW)
        tier = PostgresTier(require_postgres(), **kwargs)
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def stored(table: str, key: str, namespace: str = "") -> tuple[int, float | None]:
    """(access_count, last_accessed) of *key* as the database holds it, read on a connection of its own."""
    import psycopg

    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        row = conn.execute(
            f'SELECT access_count, last_accessed FROM "{table}" WHERE namespace = %s AND key = %s',
            (namespace, key),
        ).fetchone()
    assert row is not None, key
    return int(row[0]), row[1]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement any psycopg connection of this process sends (BEGIN/COMMIT included), as text."""
    import psycopg

    sent: list[str] = []
    real_execute, real_many = psycopg.Cursor.execute, psycopg.Cursor.executemany
    real_command = psycopg.Connection._exec_command

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.decode() if isinstance(query, bytes) else str(query))
        return real_execute(self, query, *args, **kwargs)

    def executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.decode() if isinstance(query, bytes) else str(query))
        return real_many(self, query, *args, **kwargs)

    def command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(command.decode() if isinstance(command, bytes) else str(command))
        return real_command(self, command, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", executemany)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", command)
    return sent


def test_a_get_is_one_select_and_the_flush_one_update(make, table, statements):
    tier = make()
    tier.put_many([MemoryEntry(f"k{i}", i) for i in range(3)])
    statements.clear()
    for n in range(1, 4):
        got = tier.get("k1")
        assert got is not None and got.value == 1
        assert got.access_count == n  # this process sees its own reads before they are written
    assert tier.get("missing") is None
    assert tier.get("k2", touch=False).access_count == 0  # type: ignore[union-attr]
    assert len(statements) == 5
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements), statements
    assert stored(table, "k1")[0] == 0  # nothing written yet
    statements.clear()
    tier.flush()
    assert len(statements) == 1 and "UPDATE" in statements[0]
    assert stored(table, "k1")[0] == 3
    assert tier.get("k1", touch=False).access_count == 3  # type: ignore[union-attr]
    statements.clear()
    tier.flush()  # nothing recorded: nothing sent
    assert statements == []


def test_an_eviction_right_after_reads_sees_them(make, table):
    evicted: list[str] = []
    tier = make(capacity=3, on_evict=lambda entries: evicted.extend(e.key for e in entries))
    for key in ("a", "b", "c"):
        tier.put(MemoryEntry(key, key))
    assert tier.get("a") is not None  # recorded only: a is now the most recently used
    tier.put(MemoryEntry("d", "d"))  # full: the least recently used goes, which is b, not a
    assert evicted == ["b"]
    assert sorted(tier.keys()) == ["a", "c", "d"]
    assert stored(table, "a")[0] == 1  # written in the eviction's transaction


def test_stats_and_scan_right_after_reads_see_them(make, table):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    for _ in range(4):
        tier.get("k")
    assert {e.key: e.access_count for e in tier.scan()} == {"k": 4}
    assert [e.access_count for e, _ in tier.keyword_search("k")] == [4]
    stats = tier.stats()
    assert stats["hits"] == 4
    assert stored(table, "k")[0] == 4  # stats wrote them: the database agrees with the counters


def test_a_flushed_count_survives_close_and_reopen(make, table):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    for _ in range(3):
        tier.get("k")
    tier.close()
    assert stored(table, "k")[0] == 3
    again = make()
    assert again.get("k", touch=False).access_count == 3  # type: ignore[union-attr]
    assert again.get("k").access_count == 4  # type: ignore[union-attr]


def test_the_timer_writes_reads_without_any_other_call(make, table):
    tier = make(touch_flush_interval=0.05)
    tier.put(MemoryEntry("k", 1))
    tier.get("k")
    tier.get("k")
    deadline = time.monotonic() + 10
    while stored(table, "k")[0] != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored(table, "k")[0] == 2
    assert tier.get("k", touch=False).access_count == 2  # type: ignore[union-attr]  (not counted twice)


def test_1024_keys_read_are_written_without_waiting(make, table):
    tier = make()
    tier.put_many([MemoryEntry(f"k{i}", i) for i in range(1100)])
    for i in range(1100):
        tier.get(f"k{i}")
    assert stored(table, "k0")[0] == 1  # the 1024th key flushed the first 1024
    assert stored(table, "k1099")[0] == 0  # recorded after: pending until the next flush
    tier.flush()
    assert stored(table, "k1099")[0] == 1


def test_a_read_of_an_older_write_never_counts_on_a_newer_one(make, table):
    reader, writer = make(), make()
    reader.put(MemoryEntry("k", "old"))
    assert reader.get("k").value == "old"  # type: ignore[union-attr]
    writer.put(MemoryEntry("k", "new"))  # another writer (process) replaces the entry meanwhile
    reader.flush()
    assert stored(table, "k")[0] == 0  # the read was of the old write (compare-and-set on version)
    assert reader.get("k", touch=False).access_count == 0  # type: ignore[union-attr]


def test_rewriting_the_entry_read_is_not_counted_twice(make, table):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    got = tier.get("k")
    assert got is not None and got.access_count == 1
    tier.put(got)  # a move writes the entry back as read, count included
    tier.flush()
    assert stored(table, "k")[0] == 1
    tier.put_many([MemoryEntry("k", 2), MemoryEntry("other", 0)])  # a new write of k starts from 0
    assert tier.get("k", touch=False).access_count == 0  # type: ignore[union-attr]


def test_compute_sees_the_reads_recorded(make, table):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    tier.get("k")
    tier.get("k")
    seen: list[int] = []

    def bump(current: MemoryEntry | None) -> MemoryEntry | None:
        assert current is not None
        seen.append(current.access_count)
        return MemoryEntry("k", current.value + 1, access_count=current.access_count)

    tier.compute("k", bump)
    assert seen == [2]
    assert stored(table, "k")[0] == 2
    tier.close()
    assert stored(table, "k")[0] == 2  # nothing left to add twice


def test_threads_of_one_tier_lose_no_read(make, table):
    tier = make(touch_flush_interval=0.01)  # flushes racing the reads
    tier.put_many([MemoryEntry(f"k{i}", i) for i in range(4)])
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for i in range(100):
                assert tier.get(f"k{i % 4}") is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tier.close()
    assert sum(stored(table, f"k{i}")[0] for i in range(4)) == 400
    assert [stored(table, f"k{i}")[0] for i in range(4)] == [100] * 4


def test_processes_reading_one_key_add_up(make, table):
    tier = make()
    tier.put(MemoryEntry("k", 1))
    script = textwrap.dedent(
        f"""
        from agentmem_plugin.tiers.postgres import PostgresTier
        tier = PostgresTier({require_postgres()!r}, table={table!r}, max_size=1, touch_flush_interval=0.01)
        for _ in range(50):
            assert tier.get("k") is not None
        tier.close()
        """
    )
    children = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    for _ in range(50):
        tier.get("k")
    assert [c.wait(timeout=120) for c in children] == [0, 0]
    tier.close()
    assert stored(table, "k")[0] == 150


def test_interval_zero_writes_every_read_as_it_happens(make, table, statements):
    tier = make(touch_flush_interval=0)
    tier.put(MemoryEntry("k", 1))
    statements.clear()
    assert tier.get("k").access_count == 1  # type: ignore[union-attr]
    assert len(statements) == 1 and "UPDATE" in statements[0]
    assert stored(table, "k")[0] == 1


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True])
def test_a_bad_flush_interval_is_refused(make, bad):
    with pytest.raises(InvalidArgumentError, match="touch_flush_interval"):
        make(touch_flush_interval=bad)
