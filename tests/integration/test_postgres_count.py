"""PostgresTier.count against a real server: it reads the namespace's count rows and its expired entries, not
its entries (rows read counted from EXPLAIN ANALYZE, not timed), and stays exact through batches, deletes,
expiry, clear, folds, concurrent writers, other namespaces and the migration of a store that had no counts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FakeClock
from integration.backends import drop_postgres_table, require_postgres, unique_table

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.postgres import _COUNT_ROWS_FOLDED, PostgresTier

Factory = Callable[..., PostgresTier]


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
        tier = PostgresTier(require_postgres(), **kwargs)
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def sql(query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def leaf_rows(plan: dict[str, Any]) -> int:
    children = plan.get("Plans", [])
    if not children:
        return int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))
    return sum(leaf_rows(c) for c in children)


def rows_read_by_count(tier: PostgresTier) -> int:
    with tier.pool.connection() as conn:
        conn.execute(f'ANALYZE "{tier.table}"')
        conn.execute(f'ANALYZE "{tier.table}_counts"')
        params = (tier.namespace, tier.clock(), tier.namespace)
        plan = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + tier._x["count"], params)
        return leaf_rows(plan.fetchone()[0][0]["Plan"])


def test_count_reads_count_rows_not_entries(make):
    tier = make(namespace="big")
    tier.put_many([MemoryEntry(f"k{i}", i) for i in range(3000)])
    tier.put_many([MemoryEntry(f"k{i}", -i) for i in range(100)])  # rewrites: no count change
    small = make(namespace="small")
    small.put_many([MemoryEntry(f"k{i}", i) for i in range(3)])
    assert (tier.count(), small.count()) == (3000, 3)
    assert rows_read_by_count(tier) <= 4  # one or two count rows, no entry: not 3,000
    assert rows_read_by_count(small) <= 4


def test_count_is_exact_through_every_kind_of_change(make, table):
    clock = FakeClock()
    tier = make(clock=clock)
    other = make(namespace="other", clock=clock)
    other.put_many([MemoryEntry(f"o{i}", i) for i in range(5)])
    tier.put_many([MemoryEntry(f"k{i}", i, clock=clock) for i in range(10)])
    tier.put(MemoryEntry("k0", "again"))
    tier.put_many([MemoryEntry("t1", 1, ttl=5, clock=clock), MemoryEntry("t2", 2, ttl=50, clock=clock)])
    assert tier.count() == 12
    clock.advance(10)
    assert tier.count() == 11  # t1 expired (still stored)
    assert tier.cleanup() == ["t1"]
    assert tier.count() == 11
    assert tier.delete_many(["k1", "k2", "missing"]) == 2
    assert tier.compute("k3", lambda _: None) is None
    assert tier.compute("new", lambda _: MemoryEntry("new", 1)) is not None
    assert tier.count() == len(tier.scan()) == 9
    tier.clear()
    assert (tier.count(), other.count()) == (0, 5)


def test_count_rows_are_folded_and_stay_exact(make, table):
    tier = make()
    for i in range(_COUNT_ROWS_FOLDED + 10):
        tier.put(MemoryEntry(f"k{i}", i))
    assert sql(f'SELECT count(*) FROM "{table}_counts"')[0][0] > _COUNT_ROWS_FOLDED
    assert tier.count() == _COUNT_ROWS_FOLDED + 10  # and folds
    assert sql(f'SELECT count(*), sum(n) FROM "{table}_counts"') == [(1, _COUNT_ROWS_FOLDED + 10)]
    assert tier.count() == _COUNT_ROWS_FOLDED + 10


def test_capacity_and_concurrent_writers_keep_count_exact(make, table):
    bounded = make(namespace="bounded", capacity=20)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            tier = make(namespace="bounded", capacity=20)
            free = make(namespace="free")
            for i in range(40):
                tier.put_many([MemoryEntry(f"w{n}-{i}", i), MemoryEntry(f"w{n}-{i}-b", i)])
                free.put(MemoryEntry(f"w{n}-{i}", i))
                if i % 7 == 0:
                    free.delete(f"w{n}-{i - 1}")
                    bounded.count()  # folds while others write
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = dict(sql(f'SELECT namespace, count(*) FROM "{table}" GROUP BY namespace'))
    assert stored["bounded"] == 20
    assert bounded.count() == 20
    assert make(namespace="free").count() == stored["free"]


def test_a_store_without_counts_is_counted_when_migrated(make, table):
    first = make(namespace="a")
    first.put_many([MemoryEntry(f"k{i}", i) for i in range(7)])
    make(namespace="b").put_many([MemoryEntry(f"k{i}", i) for i in range(3)])
    # the store as the previous version left it: no counts table, trigger or function, no migration 0005
    sql(f'DROP TABLE "{table}_counts"')
    sql(f'DROP TRIGGER "{table}_counted_i" ON "{table}"')
    sql(f'DROP TRIGGER "{table}_counted_d" ON "{table}"')
    sql(f'DROP FUNCTION "{table}_counted"()')
    sql(f"DELETE FROM \"{table}_migrations\" WHERE name = '0005_namespace_counts'")
    assert make(namespace="a").count() == 7
    assert make(namespace="b").count() == 3
